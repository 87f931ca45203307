"""Memory-side device helpers shared by the layer and derivative kernels: loading a block
of x, gathering weight rows, spreading local bases into a ``tl.dot`` tile, and the
stage-1 weight-gradient epilogue.

Two ways to apply the ``K+1`` local bases of each (sample, input) (see layer.py):
- dense tile: ``_basis_tile`` spreads them into ``[BLOCK_B, BLOCK_I * BLOCK_J]`` columns
  that feed ``tl.dot`` against the matching rows of the weights (``_load_weight_rows``);
- local support: ``_gather_row`` fetches, per sample, the one weight row ``s-K+r`` that
  basis ``r`` multiplies, ``O(K + 1)`` rows whatever G is.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _batch_block(ptr, offs_b, b_ok, offs_c, c_ok, n_cols):
    """Pointers and mask of a [BLOCK_B, BLOCK_C] block of a row-major `[B, n_cols]`
    tensor (x, y, grad_x, grad_y); int64 row offsets so B * n_cols may pass 2**31."""
    ptrs = ptr + offs_b[:, None].to(tl.int64) * n_cols + offs_c[None, :]
    return ptrs, b_ok[:, None] & c_ok[None, :]


@triton.jit
def _load_x_block(x_ptr, grid_ptr, offs_b, b_ok, offs_i, n_in, n_knots):
    """x of a [BLOCK_B, BLOCK_I] block (0 on padding), each element's knot row pointer,
    the padding mask and the element offsets into `[B, in]`."""
    i_ok = offs_i < n_in
    ic = tl.minimum(offs_i, n_in - 1)  # padding reads a real knot row, then is masked
    ok = b_ok[:, None] & i_ok[None, :]
    offs = offs_b[:, None].to(tl.int64) * n_in + ic[None, :]
    x = tl.load(x_ptr + offs, mask=ok, other=0.0)
    t_row = grid_ptr + ic[None, :] * n_knots
    return x, t_row, ok, offs


@triton.jit
def _basis_tile(s, N, base, j0, n_basis, K: tl.constexpr, BASE: tl.constexpr,
                BLOCK_J: tl.constexpr):
    """[BLOCK_B, BLOCK_I, BLOCK_J] tile of columns j0 .. j0+BLOCK_J-1 of each input: the
    local values N (or their derivatives) at j = s-K+r, the base value at j = n_basis."""
    jj = j0 + tl.arange(0, BLOCK_J)[None, None, :]
    rel = jj - (s - K)[:, :, None]
    tile = tl.where(rel == 0, N[0][:, :, None], 0.0)
    for r in tl.static_range(1, K + 1):
        tile = tl.where(rel == r, N[r][:, :, None], tile)
    tile = tl.where(jj < n_basis, tile, 0.0)
    if BASE:
        tile = tl.where(jj == n_basis, base[:, :, None], tile)
    return tile


@triton.jit
def _load_weight_rows(sw_ptr, bw_ptr, i0, j0, n_in, n_basis, n_out, offs_o, o_ok,
                      BASE: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr):
    """The [BLOCK_I * BLOCK_J, BLOCK_O] augmented weight rows matching a basis tile:
    row (i, j) is spline_weight[i, j] for j < n_basis, base_weight[i] for j = n_basis
    (with a base function), zero beyond."""
    kk = tl.arange(0, BLOCK_I * BLOCK_J)
    wi = i0 + kk // BLOCK_J
    wj = j0 + kk % BLOCK_J
    row_ok = wi < n_in
    sp_ptr = sw_ptr + (wi.to(tl.int64) * n_basis + wj)[:, None] * n_out + offs_o[None, :]
    sp_ok = (row_ok & (wj < n_basis))[:, None] & o_ok[None, :]
    w = tl.load(sp_ptr, mask=sp_ok, other=0.0)
    if BASE:
        b_ptr = bw_ptr + wi.to(tl.int64)[:, None] * n_out + offs_o[None, :]
        b_ok = (row_ok & (wj == n_basis))[:, None] & o_ok[None, :]
        w += tl.load(b_ptr, mask=b_ok, other=0.0)
    return w


@triton.jit
def _gather_row(w_row, s, use, r: tl.constexpr, n_basis, n_out, offs_o, o_ok,
                K: tl.constexpr):
    """Row j = s-K+r of one input's weights for each sample: `[BLOCK_B, BLOCK_O]`, and
    `[BLOCK_B]` whether it counts (use, and 0 <= j < n_basis); zero rows where not."""
    j = s - K + r
    ok = use & (j >= 0) & (j < n_basis)
    jc = tl.minimum(tl.maximum(j, 0), n_basis - 1)
    w = tl.load(w_row + jc[:, None] * n_out + offs_o[None, :],
                mask=ok[:, None] & o_ok[None, :], other=0.0)
    return w, ok


@triton.jit
def _weight_grad_block(n_out, n_jblocks, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr,
                       BLOCK_O: tl.constexpr):
    """Stage-1 prologue: this program's batch chunk, first input i0 and column j0 (row
    block pid 0 = input block * n_jblocks + column block), its inputs, outputs and output
    mask."""
    pid_row = tl.program_id(0)
    pid_o = tl.program_id(1)
    chunk = tl.program_id(2)
    i0 = (pid_row // n_jblocks) * BLOCK_I
    j0 = (pid_row % n_jblocks) * BLOCK_J
    offs_i = i0 + tl.arange(0, BLOCK_I)
    offs_o = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    return chunk, i0, j0, offs_i, offs_o, offs_o < n_out


@triton.jit
def _store_weight_grad_partial(part_ptr, acc, chunk, i0, j0, n_in, n_cols, n_out, offs_o,
                               o_ok, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr):
    """Stage-1 epilogue: acc `[BLOCK_I * BLOCK_J, BLOCK_O]` (rows = (input, column)) into
    part[chunk, i, j, o] of a `[chunks, in, n_cols, out]` buffer; the launcher sums the
    chunks in a fixed order (stage 2, no atomics)."""
    kk = tl.arange(0, BLOCK_I * BLOCK_J)
    wi = i0 + kk // BLOCK_J
    wj = j0 + kk % BLOCK_J
    rows = (chunk.to(tl.int64) * n_in + wi) * n_cols + wj
    ok = ((wi < n_in) & (wj < n_cols))[:, None] & o_ok[None, :]
    tl.store(part_ptr + rows[:, None] * n_out + offs_o[None, :], acc, mask=ok)
