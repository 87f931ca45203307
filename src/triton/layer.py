"""The fused KAN layer on the GPU: forward, grad_x and the weight gradients.

Two ways to apply the local bases (basis.py, blocks.py):

- dense tile (``path="dense"``, FlashAttention-style): for a block of samples and a block
  of inputs, the ``k+1`` local values are spread into a basis tile
  ``[BLOCK_B, BLOCK_I * BLOCK_J]`` (``BLOCK_J`` columns of each input's ``n_basis + 1``:
  the bases, then the base function in column ``n_basis``), which lives only in
  registers and feeds ``tl.dot`` against the matching rows of the weights. Forward,
  grad_x (``grad_y @ W^T`` contracted with the derivative tile) and the weight gradient
  (``tile^T @ grad_y``) all take this form.
- local support (``path="local"``, for large G): forward and grad_x gather only the
  ``k+1`` weight rows of each sample's span, ``O(B * in * out * (k + 2))`` work whatever
  G is. The weight gradient always uses the dense tile (a local scatter would need
  atomics).

The weight gradient is reduced over the batch in two stages: each program sums a chunk of
the batch into its own slot of a ``[chunks, in, n_basis + 1, out]`` buffer, then the
launcher sums the chunks (no atomics, so the result does not depend on scheduling).
Nothing of size ``[B, in, n_basis]`` or ``[B, in, out]`` is ever stored.

Shapes (all tensors contiguous, one dtype, float32; bf16/fp16 callers convert first):
x `[B, in]`, grid `[in, n_knots]` (each row sorted), spline_weight `[in, n_basis, out]`
with ``n_basis = n_knots - k - 1``, base_weight `[in, out]`, grad_y / y `[B, out]`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .basis import _local_bases, _silu
from .blocks import (_add_base_row, _add_gathered_rows, _basis_tile, _batch_block,
                     _block_range, _flat_basis_tile, _input_weights, _load_batch_block,
                     _load_weight_rows, _load_x_block, _load_x_column, _output_block,
                     _sample_block, _weight_grad_partial)
from .launch import (LaunchConfig, check_args, choose_path, new_output, precision,
                     weight_gradient)

__all__ = ["kan_forward", "kan_backward"]


@triton.jit
def _load_block(x_ptr, grid_ptr, offs_b, b_ok, offs_i, n_in, n_knots, LOG_NK: tl.constexpr,
                K: tl.constexpr, BASE: tl.constexpr):
    """Per (sample, input) of a [BLOCK_B, BLOCK_I] block: span, local bases and their
    derivatives, base function and its derivative (all zero on padding)."""
    x, t_row, s, use, ok, _ = _load_x_block(x_ptr, grid_ptr, offs_b, b_ok, offs_i, n_in,
                                            n_knots, LOG_NK)
    N, dN = _local_bases(x, t_row, s, use, n_knots, K)
    base, dbase = _silu(x, ok, BASE)
    return s, N, dN, base, dbase


@triton.jit
def _kan_fwd_dense_kernel(x_ptr, grid_ptr, sw_ptr, bw_ptr, y_ptr, n_batch, n_in, n_out,
                          n_knots, K: tl.constexpr, BASE: tl.constexpr, LOG_NK: tl.constexpr,
                          PREC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_I: tl.constexpr,
                          BLOCK_J: tl.constexpr, BLOCK_O: tl.constexpr):
    """y[b, o] for a [BLOCK_B, BLOCK_O] block: sum over inputs and column blocks of
    tl.dot(basis tile, weight rows)."""
    n_basis = n_knots - K - 1
    offs_b, b_ok, offs_o, o_ok = _output_block(n_batch, n_out, BLOCK_B, BLOCK_O)
    acc = tl.zeros((BLOCK_B, BLOCK_O), dtype=tl.float32)
    for i0 in range(0, n_in, BLOCK_I):
        offs_i = i0 + tl.arange(0, BLOCK_I)
        s, N, dN, base, dbase = _load_block(x_ptr, grid_ptr, offs_b, b_ok, offs_i, n_in,
                                            n_knots, LOG_NK, K, BASE)
        for j0 in range(0, n_basis + BASE, BLOCK_J):
            tile = _flat_basis_tile(s, N, base, j0, n_basis, K, BASE, BLOCK_J)
            w = _load_weight_rows(sw_ptr, bw_ptr, i0, j0, n_in, n_basis, n_out, offs_o, o_ok,
                                  BASE, BLOCK_I, BLOCK_J)
            acc = tl.dot(tile, w, acc, input_precision=PREC)
    y_ptrs, y_ok = _batch_block(y_ptr, offs_b, b_ok, offs_o, o_ok, n_out)
    tl.store(y_ptrs, acc, mask=y_ok)


@triton.jit
def _kan_fwd_local_kernel(x_ptr, grid_ptr, sw_ptr, bw_ptr, y_ptr, n_batch, n_in, n_out,
                          n_knots, K: tl.constexpr, BASE: tl.constexpr, LOG_NK: tl.constexpr,
                          BLOCK_B: tl.constexpr, BLOCK_O: tl.constexpr):
    """y[b, o] for a [BLOCK_B, BLOCK_O] block from the k+1 weight rows of each span."""
    n_basis = n_knots - K - 1
    offs_b, b_ok, offs_o, o_ok = _output_block(n_batch, n_out, BLOCK_B, BLOCK_O)
    acc = tl.zeros((BLOCK_B, BLOCK_O), dtype=tl.float32)
    for i in range(0, n_in):
        x, t_row, s, use, _ = _load_x_column(x_ptr, grid_ptr, offs_b, b_ok, i, n_in, n_knots,
                                             LOG_NK)
        N, dN = _local_bases(x, t_row, s, use, n_knots, K)
        acc = _add_gathered_rows(acc, N, _input_weights(sw_ptr, i, n_basis, n_out), s, use,
                                 n_basis, n_out, offs_o, o_ok, K, False)
        if BASE:
            base, dbase = _silu(x, b_ok, BASE)
            acc = _add_base_row(acc, base, bw_ptr, i, n_out, offs_o, o_ok)
    y_ptrs, y_ok = _batch_block(y_ptr, offs_b, b_ok, offs_o, o_ok, n_out)
    tl.store(y_ptrs, acc, mask=y_ok)


@triton.jit
def _kan_bwd_x_dense_kernel(x_ptr, grid_ptr, sw_ptr, bw_ptr, gy_ptr, gx_ptr, n_batch, n_in,
                            n_out, n_knots, K: tl.constexpr, BASE: tl.constexpr,
                            LOG_NK: tl.constexpr, PREC: tl.constexpr, BLOCK_B: tl.constexpr,
                            BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr,
                            BLOCK_O: tl.constexpr):
    """grad_x for a [BLOCK_B, BLOCK_I] block: D = grad_y @ W^T by tl.dot over the outputs
    (one column block at a time), contracted with the derivative tile."""
    n_basis = n_knots - K - 1
    i0 = tl.program_id(1) * BLOCK_I
    offs_b, b_ok = _sample_block(n_batch, BLOCK_B)
    offs_i, i_ok = _block_range(i0, n_in, BLOCK_I)
    s, N, dN, base, dbase = _load_block(x_ptr, grid_ptr, offs_b, b_ok, offs_i, n_in, n_knots,
                                        LOG_NK, K, BASE)
    g = tl.zeros((BLOCK_B, BLOCK_I), dtype=tl.float32)
    for j0 in range(0, n_basis + BASE, BLOCK_J):
        D = tl.zeros((BLOCK_B, BLOCK_I * BLOCK_J), dtype=tl.float32)
        for o0 in range(0, n_out, BLOCK_O):
            offs_o, o_ok = _block_range(o0, n_out, BLOCK_O)
            gy = _load_batch_block(gy_ptr, offs_b, b_ok, offs_o, o_ok, n_out)
            w = _load_weight_rows(sw_ptr, bw_ptr, i0, j0, n_in, n_basis, n_out, offs_o, o_ok,
                                  BASE, BLOCK_I, BLOCK_J)
            D = tl.dot(gy, tl.trans(w), D, input_precision=PREC)
        slope = _basis_tile(s, dN, dbase, j0, n_basis, K, BASE, BLOCK_J)
        g += tl.sum(tl.reshape(D, (BLOCK_B, BLOCK_I, BLOCK_J)) * slope, axis=2)
    gx_ptrs, gx_ok = _batch_block(gx_ptr, offs_b, b_ok, offs_i, i_ok, n_in)
    tl.store(gx_ptrs, g, mask=gx_ok)


@triton.jit
def _kan_bwd_x_local_kernel(x_ptr, grid_ptr, sw_ptr, bw_ptr, gy_ptr, gx_ptr, n_batch, n_in,
                            n_out, n_knots, K: tl.constexpr, BASE: tl.constexpr,
                            LOG_NK: tl.constexpr, BLOCK_B: tl.constexpr,
                            BLOCK_O: tl.constexpr):
    """grad_x[b, i] for BLOCK_B samples of one input from the k+1 weight rows of each span:
    sum_o grad_y[b, o] * (sum_r dB_r(x) w[s-k+r, o] + silu'(x) base_weight[i, o])."""
    i = tl.program_id(1)
    n_basis = n_knots - K - 1
    offs_b, b_ok = _sample_block(n_batch, BLOCK_B)
    x, t_row, s, use, offs = _load_x_column(x_ptr, grid_ptr, offs_b, b_ok, i, n_in, n_knots,
                                            LOG_NK)
    N, dN = _local_bases(x, t_row, s, use, n_knots, K)
    base, dbase = _silu(x, b_ok, BASE)
    w_row = _input_weights(sw_ptr, i, n_basis, n_out)
    g = tl.zeros((BLOCK_B,), dtype=tl.float32)
    for o0 in range(0, n_out, BLOCK_O):
        offs_o, o_ok = _block_range(o0, n_out, BLOCK_O)
        gy = _load_batch_block(gy_ptr, offs_b, b_ok, offs_o, o_ok, n_out)
        comb = _add_gathered_rows(tl.zeros((BLOCK_B, BLOCK_O), dtype=tl.float32), dN, w_row,
                                  s, use, n_basis, n_out, offs_o, o_ok, K, False)
        if BASE:
            comb = _add_base_row(comb, dbase, bw_ptr, i, n_out, offs_o, o_ok)
        g += tl.sum(gy * comb, axis=1)
    tl.store(gx_ptr + offs, g, mask=b_ok)


@triton.jit
def _kan_bwd_w_kernel(x_ptr, grid_ptr, gy_ptr, part_ptr, n_batch, n_in, n_out, n_knots,
                      chunk_len, n_jblocks, K: tl.constexpr, BASE: tl.constexpr,
                      LOG_NK: tl.constexpr, PREC: tl.constexpr, BLOCK_B: tl.constexpr,
                      BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_O: tl.constexpr):
    """Stage 1 of the weight gradient: for one chunk of the batch, one block of augmented
    rows (inputs x columns) and one block of outputs, sum_b tile[b, :]^T grad_y[b, :] by
    tl.dot, written to part[chunk, i, j, o] (part: [chunks, in, n_basis + 1, out])."""
    n_basis = n_knots - K - 1
    # The bases themselves (D = 0), unscaled (no row_scale: x_ptr stands in, never read).
    _weight_grad_partial(x_ptr, grid_ptr, x_ptr, gy_ptr, part_ptr, n_batch, n_in, n_out,
                         n_knots, n_basis + 1, chunk_len, n_jblocks, K, 0, 0, BASE, LOG_NK,
                         PREC, BLOCK_B, BLOCK_I, BLOCK_J, BLOCK_O)


def kan_forward(x: torch.Tensor, grid: torch.Tensor, spline_weight: torch.Tensor,
                base_weight: torch.Tensor, k: int, base: int, path: str | None = None
                ) -> torch.Tensor:
    """y `[B, out]` = base(x) @ base_weight + sum_j B_j(x) spline_weight[:, j, :].

    x: `[B, in]`, grid: `[in, n_knots]`, spline_weight: `[in, n_knots-k-1, out]`,
    base_weight: `[in, out]`; float32, contiguous, on one device. base: 0 (none) or
    1 (SiLU). path: "dense", "local" or None (by ``choose_path``).
    """
    check_args(x, grid, spline_weight, k, base_weight=base_weight)
    n_batch, n_in = x.shape
    n_basis, n_out = spline_weight.shape[1], spline_weight.shape[2]
    y, launch = new_output(x, n_out)
    if not launch:
        return y
    cfg = LaunchConfig(n_basis, k, base)
    path = path or choose_path(n_basis, base)
    if path == "dense":
        grid_shape = (triton.cdiv(n_batch, cfg.block_b), triton.cdiv(n_out, cfg.block_o))
        _kan_fwd_dense_kernel[grid_shape](
            x, grid, spline_weight, base_weight, y, n_batch, n_in, n_out, grid.shape[1],
            K=k, BASE=base, **cfg.tile_meta(precision()))
    elif path == "local":
        grid_shape = (triton.cdiv(n_batch, cfg.local_block_b),
                      triton.cdiv(n_out, cfg.local_block_o))
        _kan_fwd_local_kernel[grid_shape](
            x, grid, spline_weight, base_weight, y, n_batch, n_in, n_out, grid.shape[1],
            K=k, BASE=base, **cfg.local_meta())
    else:
        raise ValueError(f'path: expected "dense", "local" or None, got {path!r}')
    return y


def kan_backward(x: torch.Tensor, grid: torch.Tensor, spline_weight: torch.Tensor,
                 base_weight: torch.Tensor, grad_y: torch.Tensor, k: int, base: int,
                 need_x: bool, need_spline: bool, need_base: bool, path: str | None = None):
    """(grad_x `[B, in]`, grad_spline_weight `[in, n_basis, out]`, grad_base_weight
    `[in, out]`), None where not needed. grad_y: `[B, out]`, contiguous, like x.

    grad_spline_weight[i, j, o] = sum_b B_j(x[b, i]) grad_y[b, o];
    grad_base_weight[i, o] = sum_b silu(x[b, i]) grad_y[b, o] (zero without a base);
    grad_x[b, i] = sum_o grad_y[b, o] (sum_j dB_j/dx w[i, j, o] + silu'(x) bw[i, o]).
    path: for grad_x, as in ``kan_forward``; the weight gradient always uses the tile.
    """
    check_args(x, grid, spline_weight, k, base_weight=base_weight)
    if grad_y.dtype != x.dtype or not grad_y.is_contiguous():
        raise TypeError(f"grad_y: expected a contiguous {x.dtype} tensor, got {grad_y.dtype}")
    n_batch, n_in = x.shape
    n_basis, n_out = spline_weight.shape[1], spline_weight.shape[2]
    n_knots = grid.shape[1]
    cfg = LaunchConfig(n_basis, k, base)
    path = path or choose_path(n_basis, base)
    prec = precision()
    empty = n_batch == 0 or n_in == 0 or n_out == 0

    grad_x = None
    if need_x:
        grad_x = torch.zeros_like(x)
        if not empty and path == "dense":
            grid_shape = (triton.cdiv(n_batch, cfg.block_b), triton.cdiv(n_in, cfg.block_i))
            _kan_bwd_x_dense_kernel[grid_shape](
                x, grid, spline_weight, base_weight, grad_y, grad_x, n_batch, n_in, n_out,
                n_knots, K=k, BASE=base, **cfg.tile_meta(prec))
        elif not empty and path == "local":
            grid_shape = (triton.cdiv(n_batch, cfg.local_block_b), n_in)
            _kan_bwd_x_local_kernel[grid_shape](
                x, grid, spline_weight, base_weight, grad_y, grad_x, n_batch, n_in, n_out,
                n_knots, K=k, BASE=base, **cfg.local_meta())
        elif path not in ("dense", "local"):
            raise ValueError(f'path: expected "dense", "local" or None, got {path!r}')

    grad_sw = grad_bw = None
    need_base = need_base and bool(base)
    if need_spline or need_base:
        n_cols = n_basis + 1  # the base column is always allocated (zero without a base)
        total = weight_gradient(_kan_bwd_w_kernel, (x, grid, grad_y), x, n_knots, n_out,
                                n_cols, cfg, K=k, BASE=base, **cfg.tile_meta(prec))
        # Copies, not views: with one input both slices are contiguous views of `total`,
        # and a custom op's outputs must not alias each other (torch.library checks).
        if need_spline:
            grad_sw = total[:, :n_basis, :].clone(memory_format=torch.contiguous_format)
        if need_base:
            grad_bw = total[:, n_basis, :].clone(memory_format=torch.contiguous_format)
    return grad_x, grad_sw, grad_bw
