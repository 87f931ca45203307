"""Launch configuration shared by the layer and derivative launchers: block sizes, the
dense/local path choice, tl.dot precision, argument checks, the `[B, out]` output and its
trivial cases, and the weight gradient's batch chunks and two-stage launch. Plain Python
(no kernels); ``scripts/triton_static_check.py`` compiles every configuration
``LaunchConfig`` can return.
"""

from __future__ import annotations

import torch
import triton

from . import basis

# Smallest padded per-input column count (n_basis + 1 rounded up to a power of two) for
# which "auto" takes the local-support path in float32 without TF32: the dense tile then
# does >= 64 multiply-adds per (sample, input, output) for k + 2 useful ones, while the
# local path does one gathered load per multiply-add. An estimate from throughput ratios,
# not a measurement (no GPU was available when this was written): re-tune with
# bench/test_bench_gpu.py.
LOCAL_MIN_COLUMNS = 64
# With TF32 tensor cores the dense tile is ~8x cheaper per multiply-add.
LOCAL_MIN_COLUMNS_TF32 = 512

# Stage-1 programs the weight gradient aims for (chunks x row blocks x output blocks):
# enough to fill a large GPU several times over. Fixed, not read from the device, so the
# summation order (and the result) depends on the problem only.
_TARGET_PROGRAMS = 1024
_MAX_CHUNKS = 64


def interpreting() -> bool:
    """Whether the kernels were built for the interpreter (TRITON_INTERPRET=1 when the
    kernel modules were imported)."""
    return not isinstance(basis._span, triton.runtime.JITFunction)


def next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def precision() -> str:
    """tl.dot's float32 mode: TF32 tensor cores only where torch allows them for matmuls."""
    return "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee"


class LaunchConfig:
    """Block sizes and launch options of one call: ``tile_meta`` for the dense-tile kernels
    (tl.dot), ``local_meta`` for the local-support ones. The interpreter gets the smallest
    legal tiles (tl.dot needs every dimension >= 16) so that tests stay fast and exercise
    the block loops; it ignores the launch options."""

    def __init__(self, n_basis: int, k: int, base: int):
        interp = interpreting()
        n_cols = n_basis + (1 if base else 0)
        k_tile = 16 if interp else 32  # columns of the basis tile fed to one tl.dot
        # 32 sample rows (not 64): the ieee weight-gradient tiles then reduce over 32 rows
        # and stop spilling (372 B at 64), and BLOCK_J = 32 forwards too (1.2 KB at 64).
        self.block_b = 16 if interp else 32
        self.block_o = 16 if interp else 64
        self.block_j = min(next_pow2(n_cols), k_tile)
        self.block_i = max(1, k_tile // self.block_j)
        self.n_jblocks = triton.cdiv(n_cols, self.block_j)
        self.log_nk = max(1, (n_basis + k - 1).bit_length())  # ceil(log2(n_knots - 1))
        # Launch options from scripts/triton_static_check.py (sm_90, triton 3.9; table in
        # bench/RESULTS.md). maxnreg is always given: without it the bundled ptxas 13 caps
        # these .reqntid kernels at 32 registers and spills kilobytes (5.4 KB in the dense
        # forward). One pipeline stage: with Triton's default 3 the dense forward needs
        # 255 registers and still spills; with 1 it fits.
        self.tile_options = dict(num_warps=4, num_stages=1, maxnreg=255)
        # Each thread keeps the span, knots and bases of every sample row it covers: 32
        # rows over 8 warps fit 128 registers without spills at k = 3 (25% occupancy),
        # where 64 rows over 4 warps needed 255 registers and still spilled 64 B. The state
        # grows with k: at k = 15, 128 registers spill 1.6-1.8 KB in the forward, 255 only
        # 68-116 B (at one block per SM); k = 4, 5 are not measured yet.
        self.local_block_b = 16 if interp else 32
        self.local_block_o = 16 if interp else 64
        self.local_options = dict(num_warps=8, maxnreg=128 if k <= 3 else 255)

    def tile_meta(self, prec: str) -> dict:
        """Block constexprs and launch options of a dense-tile kernel."""
        return dict(LOG_NK=self.log_nk, PREC=prec, BLOCK_B=self.block_b, BLOCK_I=self.block_i,
                    BLOCK_J=self.block_j, BLOCK_O=self.block_o, **self.tile_options)

    def local_meta(self) -> dict:
        """Block constexprs and launch options of a local-support kernel."""
        return dict(LOG_NK=self.log_nk, BLOCK_B=self.local_block_b,
                    BLOCK_O=self.local_block_o, **self.local_options)


def choose_path(n_basis: int, base: int) -> str:
    """"dense" or "local" for a problem with n_basis bases per input (see layer.py)."""
    padded = next_pow2(n_basis + (1 if base else 0))
    limit = LOCAL_MIN_COLUMNS_TF32 if torch.backends.cuda.matmul.allow_tf32 else LOCAL_MIN_COLUMNS
    return "local" if padded >= limit else "dense"


def check_args(x, grid, spline_weight, k, **more):
    """dtype, contiguity and n_basis of the arguments; ``more``: further named tensors
    (None skipped)."""
    if x.dtype != torch.float32:
        raise TypeError(f"x: the triton kernels take float32, got {x.dtype}")
    named = {"x": x, "grid": grid, "spline_weight": spline_weight, **more}
    for name, t in named.items():
        if t is None:
            continue
        if t.dtype != x.dtype:
            raise TypeError(f"{name}: expected dtype {x.dtype} like x, got {t.dtype}")
        if not t.is_contiguous():
            raise ValueError(f"{name}: expected a contiguous tensor")
    if grid.shape[1] - k - 1 != spline_weight.shape[1]:
        raise ValueError(
            f"spline_weight: expected n_basis = n_knots - k - 1 = {grid.shape[1] - k - 1}, "
            f"got {spline_weight.shape[1]}")


def batch_chunks(n_batch: int, n_in: int, n_out: int, n_cols: int, cfg: LaunchConfig) -> int:
    """Batch chunks of stage 1. The partial buffer (chunks x the weight-gradient size) is
    kept within max(2 x that size, B * (in + out)) elements, so the backward's extra
    memory stays O(B * (in + out) + params)."""
    programs = triton.cdiv(n_in, cfg.block_i) * cfg.n_jblocks * triton.cdiv(n_out, cfg.block_o)
    size = max(1, n_in * n_cols * n_out)
    memory_cap = max(2 * size, n_batch * (n_in + n_out)) // size
    chunks = min(triton.cdiv(_TARGET_PROGRAMS, programs), triton.cdiv(n_batch, cfg.block_b),
                 _MAX_CHUNKS, memory_cap)
    return max(1, chunks)


def chunk_layout(n_batch: int, n_in: int, n_out: int, n_cols: int, cfg: LaunchConfig):
    """(chunks, chunk_len): stage 1's batch chunks, each a whole number of sample blocks."""
    chunks = batch_chunks(n_batch, n_in, n_out, n_cols, cfg)
    chunk_len = triton.cdiv(triton.cdiv(n_batch, chunks), cfg.block_b) * cfg.block_b
    return triton.cdiv(n_batch, chunk_len), chunk_len


def new_output(x: torch.Tensor, n_out: int):
    """(y `[B, out]` like x, whether a kernel must fill it): no launch when B or out is 0
    (y empty) or without inputs (y zero)."""
    n_batch, n_in = x.shape
    y = torch.empty(n_batch, n_out, dtype=x.dtype, device=x.device)
    if n_batch == 0 or n_out == 0:
        return y, False
    if n_in == 0:
        return y.zero_(), False
    return y, True


def weight_gradient(kernel, args, x: torch.Tensor, n_knots: int, n_out: int, n_cols: int,
                    cfg: LaunchConfig, **meta) -> torch.Tensor:
    """`[in, n_cols, out]` weight gradient in two stages: the stage-1 kernel (arguments
    ``args``, then the partial buffer and the sizes; constexprs and launch options
    ``meta``) sums each batch chunk into part[chunk], then a fixed-order sum over the
    chunks (no atomics, so the result does not depend on scheduling)."""
    n_batch, n_in = x.shape
    if n_batch == 0 or n_in == 0 or n_out == 0:
        return x.new_zeros(n_in, n_cols, n_out)
    chunks, chunk_len = chunk_layout(n_batch, n_in, n_out, n_cols, cfg)
    part = torch.empty(chunks, n_in, n_cols, n_out, dtype=x.dtype, device=x.device)
    grid_shape = (triton.cdiv(n_in, cfg.block_i) * cfg.n_jblocks,
                  triton.cdiv(n_out, cfg.block_o), chunks)
    kernel[grid_shape](*args, part, n_batch, n_in, n_out, n_knots, chunk_len, cfg.n_jblocks,
                       **meta)
    # Stage 2: a fixed-order sum over the chunks.
    return part[0] if chunks == 1 else part.sum(dim=0)
