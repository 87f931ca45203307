"""Spline derivatives on the GPU, for gradients taken with ``create_graph=True``
(double backward, PINNs; see pykan_fast/autograd.py).

``spline_derivative`` is ``sum_i row_scale[b, i] sum_j w[i, j, o] B^(D)_j(x[b, i])`` by
local support (like the layer's local forward); ``spline_derivative_backward`` gives its
``T_D`` / ``T_D+1`` by local support (like the local grad_x) and its weight gradient by the
layer's two-stage tile reduction. The D-th derivative bases come from
``basis._derivative_bases`` (as ``local_basis_derivative`` in src/cpp/spline_basis.hpp).

Shapes: x, row_scale `[B, in]`, grid `[in, n_knots]`, spline_weight `[in, n_basis, out]`,
grad_y / y `[B, out]`; float32, contiguous.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .basis import _derivative_bases, _nan_where_not_finite
from .blocks import (_add_gathered_rows, _batch_block, _block_range, _gather_row,
                     _input_weights, _load_batch_block, _load_x_column, _output_block,
                     _sample_block, _weight_grad_partial)
from .launch import LaunchConfig, check_args, new_output, precision, weight_gradient

__all__ = ["spline_derivative", "spline_derivative_backward"]


@triton.jit
def _spline_derivative_kernel(x_ptr, grid_ptr, sw_ptr, rs_ptr, y_ptr, n_batch, n_in, n_out,
                              n_knots, K: tl.constexpr, D: tl.constexpr,
                              HAS_SCALE: tl.constexpr, LOG_NK: tl.constexpr,
                              BLOCK_B: tl.constexpr, BLOCK_O: tl.constexpr):
    """y[b, o] = sum_i row_scale[b, i] sum_r B^(D)_{s-K+r}(x[b, i]) w[i, s-K+r, o] for a
    [BLOCK_B, BLOCK_O] block, from the K+1 weight rows of each span."""
    n_basis = n_knots - K - 1
    offs_b, b_ok, offs_o, o_ok = _output_block(n_batch, n_out, BLOCK_B, BLOCK_O)
    acc = tl.zeros((BLOCK_B, BLOCK_O), dtype=tl.float32)
    for i in range(0, n_in):
        x, t_row, s, use, offs = _load_x_column(x_ptr, grid_ptr, offs_b, b_ok, i, n_in,
                                                n_knots, LOG_NK)
        values = _derivative_bases(x, t_row, s, use, n_knots, K, D)
        scale = None
        if HAS_SCALE:
            # Zeroed where the row does not count (MASK), so an inf scale times a 0 basis
            # outside the grid stays 0.
            scale = tl.load(rs_ptr + offs, mask=b_ok, other=0.0)
        acc = _add_gathered_rows(acc, values, _input_weights(sw_ptr, i, n_basis, n_out), s,
                                 use, n_basis, n_out, offs_o, o_ok, K, True, scale)
    y_ptrs, y_ok = _batch_block(y_ptr, offs_b, b_ok, offs_o, o_ok, n_out)
    tl.store(y_ptrs, acc, mask=y_ok)


@triton.jit
def _spline_derivative_t_kernel(x_ptr, grid_ptr, sw_ptr, gy_ptr, t0_ptr, t1_ptr, n_batch,
                                n_in, n_out, n_knots, K: tl.constexpr, D: tl.constexpr,
                                NEED_T0: tl.constexpr, NEED_T1: tl.constexpr,
                                LOG_NK: tl.constexpr, BLOCK_B: tl.constexpr,
                                BLOCK_O: tl.constexpr):
    """t0[b, i] = sum_o grad_y[b, o] sum_r B^(D)_{s-K+r}(x[b, i]) w[i, s-K+r, o] and t1
    the same with B^(D+1), for BLOCK_B samples of one input. NaN where x is not finite
    (t0 only for D >= 1), as the C++ kernel: the bases are 0 there, not their slopes."""
    i = tl.program_id(1)
    n_basis = n_knots - K - 1
    offs_b, b_ok = _sample_block(n_batch, BLOCK_B)
    x, t_row, s, use, offs = _load_x_column(x_ptr, grid_ptr, offs_b, b_ok, i, n_in, n_knots,
                                            LOG_NK)
    if NEED_T0:
        values0 = _derivative_bases(x, t_row, s, use, n_knots, K, D)
    if NEED_T1:
        values1 = _derivative_bases(x, t_row, s, use, n_knots, K, D + 1)
    w_row = _input_weights(sw_ptr, i, n_basis, n_out)
    t0 = tl.zeros((BLOCK_B,), dtype=tl.float32)
    t1 = tl.zeros((BLOCK_B,), dtype=tl.float32)
    for o0 in range(0, n_out, BLOCK_O):
        offs_o, o_ok = _block_range(o0, n_out, BLOCK_O)
        gy = _load_batch_block(gy_ptr, offs_b, b_ok, offs_o, o_ok, n_out)
        comb0 = tl.zeros((BLOCK_B, BLOCK_O), dtype=tl.float32)
        comb1 = tl.zeros((BLOCK_B, BLOCK_O), dtype=tl.float32)
        # Not _add_gathered_rows: one gathered row feeds both sums.
        for r in tl.static_range(K + 1):
            w, ok = _gather_row(w_row, s, use, r, n_basis, n_out, offs_o, o_ok, K)
            if NEED_T0:
                comb0 += tl.where(ok, values0[r], 0.0)[:, None] * w
            if NEED_T1:
                comb1 += tl.where(ok, values1[r], 0.0)[:, None] * w
        if NEED_T0:
            t0 += tl.sum(gy * comb0, axis=1)
        if NEED_T1:
            t1 += tl.sum(gy * comb1, axis=1)
    if NEED_T0:
        if D >= 1:
            t0 = _nan_where_not_finite(t0, x)
        tl.store(t0_ptr + offs, t0, mask=b_ok)
    if NEED_T1:
        tl.store(t1_ptr + offs, _nan_where_not_finite(t1, x), mask=b_ok)


@triton.jit
def _spline_derivative_w_kernel(x_ptr, grid_ptr, rs_ptr, gy_ptr, part_ptr, n_batch, n_in,
                                n_out, n_knots, chunk_len, n_jblocks, K: tl.constexpr,
                                D: tl.constexpr, HAS_SCALE: tl.constexpr,
                                LOG_NK: tl.constexpr, PREC: tl.constexpr,
                                BLOCK_B: tl.constexpr, BLOCK_I: tl.constexpr,
                                BLOCK_J: tl.constexpr, BLOCK_O: tl.constexpr):
    """Stage 1 of grad_weight[i, j, o] = sum_b row_scale[b, i] B^(D)_j(x[b, i])
    grad_y[b, o], as the layer's weight gradient: for one chunk of the batch, one block of
    (input, column) rows and one block of outputs, tl.dot(tile^T, grad_y) into
    part[chunk, i, j, o] (part: `[chunks, in, n_basis, out]`)."""
    n_basis = n_knots - K - 1
    _weight_grad_partial(x_ptr, grid_ptr, rs_ptr, gy_ptr, part_ptr, n_batch, n_in, n_out,
                         n_knots, n_basis, chunk_len, n_jblocks, K, D, HAS_SCALE, 0, LOG_NK,
                         PREC, BLOCK_B, BLOCK_I, BLOCK_J, BLOCK_O)


def _check_derivative(x, grid, spline_weight, row_scale, grad_y, k, order):
    check_args(x, grid, spline_weight, k, row_scale=row_scale, grad_y=grad_y)
    if order < 0:
        raise ValueError(f"order: expected a derivative order >= 0, got {order}")
    n_batch, n_in = x.shape
    for name, t, shape in (("row_scale", row_scale, (n_batch, n_in)),
                           ("grad_y", grad_y, (n_batch, spline_weight.shape[2]))):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"{name}: expected shape {list(shape)}, got {list(t.shape)}")


def spline_derivative(x: torch.Tensor, grid: torch.Tensor, spline_weight: torch.Tensor,
                      row_scale: torch.Tensor | None, k: int, order: int) -> torch.Tensor:
    """y `[B, out]`, y[b, o] = sum_i row_scale[b, i] sum_j spline_weight[i, j, o]
    B^(order)_j(x[b, i]) (row_scale None: ones; B^(order) = 0 for order > k).

    x, row_scale: `[B, in]`, grid: `[in, n_knots]`, spline_weight: `[in, n_knots-k-1, out]`;
    float32, contiguous, on one device. Local support: K+1 gathered weight rows per
    (sample, input), whatever G is.
    """
    _check_derivative(x, grid, spline_weight, row_scale, None, k, order)
    n_batch, n_in = x.shape
    n_basis, n_out = spline_weight.shape[1], spline_weight.shape[2]
    y, launch = new_output(x, n_out)
    if not launch:
        return y
    cfg = LaunchConfig(n_basis, k, 0)
    grid_shape = (triton.cdiv(n_batch, cfg.local_block_b), triton.cdiv(n_out, cfg.local_block_o))
    _spline_derivative_kernel[grid_shape](
        x, grid, spline_weight, x if row_scale is None else row_scale, y, n_batch, n_in, n_out,
        grid.shape[1], K=k, D=order, HAS_SCALE=row_scale is not None, **cfg.local_meta())
    return y


def spline_derivative_backward(x: torch.Tensor, grid: torch.Tensor,
                               spline_weight: torch.Tensor, row_scale: torch.Tensor | None,
                               grad_y: torch.Tensor, k: int, order: int, need_t0: bool,
                               need_t1: bool, need_weight: bool):
    """(t0 `[B, in]`, t1 `[B, in]`, grad_weight `[in, n_basis, out]`) of
    :func:`spline_derivative`, None where not needed. grad_y: `[B, out]`.

    t0[b, i] = sum_o grad_y[b, o] sum_j spline_weight[i, j, o] B^(order)_j(x[b, i]);
    t1 the same with order + 1 (both NaN where x is not finite, t0 only for order >= 1);
    grad_weight[i, j, o] = sum_b row_scale[b, i] B^(order)_j(x[b, i]) grad_y[b, o],
    reduced over the batch in two stages (no atomics: deterministic).
    """
    _check_derivative(x, grid, spline_weight, row_scale, grad_y, k, order)
    n_batch, n_in = x.shape
    n_basis, n_out = spline_weight.shape[1], spline_weight.shape[2]
    n_knots = grid.shape[1]
    cfg = LaunchConfig(n_basis, k, 0)
    t0 = torch.empty_like(x) if need_t0 else None
    t1 = torch.empty_like(x) if need_t1 else None
    if (need_t0 or need_t1) and n_batch > 0 and n_in > 0:
        # Launched even for out == 0: the NaN of a non-finite x does not depend on it.
        grid_shape = (triton.cdiv(n_batch, cfg.local_block_b), n_in)
        _spline_derivative_t_kernel[grid_shape](
            x, grid, spline_weight, grad_y, x if t0 is None else t0, x if t1 is None else t1,
            n_batch, n_in, n_out, n_knots, K=k, D=order, NEED_T0=need_t0, NEED_T1=need_t1,
            **cfg.local_meta())

    grad_sw = None
    if need_weight:
        grad_sw = weight_gradient(
            _spline_derivative_w_kernel, (x, grid, x if row_scale is None else row_scale, grad_y),
            x, n_knots, n_out, n_basis, cfg, K=k, D=order, HAS_SCALE=row_scale is not None,
            **cfg.tile_meta(precision()))
    return t0, t1, grad_sw
