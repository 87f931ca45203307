"""Device helpers shared by the layer and derivative kernels, around basis.py's
mathematics: block offsets, loading x (with each element's knot span) and grad_y,
gathering weight rows, spreading local bases into a ``tl.dot`` tile, and stage 1 of the
weight gradient (one body for the layer's and the derivative's: ``_weight_grad_partial``).

Two ways to apply the ``K+1`` local bases of each (sample, input) (see layer.py):
- dense tile: ``_basis_tile`` spreads them into ``[BLOCK_B, BLOCK_I * BLOCK_J]`` columns
  that feed ``tl.dot`` against the matching rows of the weights (``_load_weight_rows``);
- local support: ``_gather_row`` fetches, per sample, the one weight row ``s-K+r`` that
  basis ``r`` multiplies, ``O(K + 1)`` rows whatever G is.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .basis import _derivative_bases, _silu, _span


@triton.jit
def _block_range(start, n, BLOCK: tl.constexpr):
    """Offsets start .. start+BLOCK-1 along one dimension and whether each is < n (the
    last block's padding is masked)."""
    offs = start + tl.arange(0, BLOCK)
    return offs, offs < n


@triton.jit
def _sample_block(n_batch, BLOCK_B: tl.constexpr):
    """This program's samples (program id 0 numbers the sample blocks) and their mask."""
    return _block_range(tl.program_id(0) * BLOCK_B, n_batch, BLOCK_B)


@triton.jit
def _output_block(n_batch, n_out, BLOCK_B: tl.constexpr, BLOCK_O: tl.constexpr):
    """This program's [BLOCK_B, BLOCK_O] block of a `[B, out]` result (program ids 0 and
    1): sample offsets and mask, output offsets and mask."""
    offs_b, b_ok = _sample_block(n_batch, BLOCK_B)
    offs_o, o_ok = _block_range(tl.program_id(1) * BLOCK_O, n_out, BLOCK_O)
    return offs_b, b_ok, offs_o, o_ok


@triton.jit
def _batch_block(ptr, offs_b, b_ok, offs_c, c_ok, n_cols):
    """Pointers and mask of a [BLOCK_B, BLOCK_C] block of a row-major `[B, n_cols]`
    tensor (x, y, grad_x, grad_y); int64 row offsets so B * n_cols may pass 2**31."""
    ptrs = ptr + offs_b[:, None].to(tl.int64) * n_cols + offs_c[None, :]
    return ptrs, b_ok[:, None] & c_ok[None, :]


@triton.jit
def _span_and_use(x, t_row, ok, n_knots, LOG_NK: tl.constexpr):
    """Each element's knot span s and `use`: inside [t_0, t_last) and not padding (ok),
    the mask every local value is zeroed by."""
    s, valid = _span(x, t_row, n_knots, LOG_NK)
    return s, valid & ok


@triton.jit
def _load_x_block(x_ptr, grid_ptr, offs_b, b_ok, offs_i, n_in, n_knots, LOG_NK: tl.constexpr):
    """x of a [BLOCK_B, BLOCK_I] block (0 on padding), each element's knot row pointer,
    span and `use` mask (_span_and_use), the padding mask and the element offsets into
    `[B, in]`."""
    i_ok = offs_i < n_in
    ic = tl.minimum(offs_i, n_in - 1)  # padding reads a real knot row, then is masked
    ok = b_ok[:, None] & i_ok[None, :]
    offs = offs_b[:, None].to(tl.int64) * n_in + ic[None, :]
    x = tl.load(x_ptr + offs, mask=ok, other=0.0)
    t_row = grid_ptr + ic[None, :] * n_knots
    s, use = _span_and_use(x, t_row, ok, n_knots, LOG_NK)
    return x, t_row, s, use, ok, offs


@triton.jit
def _load_x_column(x_ptr, grid_ptr, offs_b, b_ok, i, n_in, n_knots, LOG_NK: tl.constexpr):
    """x[:, i] for a block of samples (0 on padding), input i's knot row, each sample's
    span and `use` mask (_span_and_use), and the element offsets into `[B, in]`."""
    offs = offs_b.to(tl.int64) * n_in + i
    x = tl.load(x_ptr + offs, mask=b_ok, other=0.0)
    t_row = grid_ptr + i * n_knots
    s, use = _span_and_use(x, t_row, b_ok, n_knots, LOG_NK)
    return x, t_row, s, use, offs


@triton.jit
def _load_batch_block(ptr, offs_b, b_ok, offs_c, c_ok, n_cols):
    """A [BLOCK_B, BLOCK_C] block of a row-major `[B, n_cols]` tensor (grad_y), 0 on
    padding."""
    ptrs, ok = _batch_block(ptr, offs_b, b_ok, offs_c, c_ok, n_cols)
    return tl.load(ptrs, mask=ok, other=0.0)


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
def _flat_basis_tile(s, N, base, j0, n_basis, K: tl.constexpr, BASE: tl.constexpr,
                     BLOCK_J: tl.constexpr):
    """_basis_tile as a tl.dot operand: `[BLOCK_B, BLOCK_I * BLOCK_J]`, one row per
    sample, the columns of each input side by side."""
    tile = _basis_tile(s, N, base, j0, n_basis, K, BASE, BLOCK_J)
    return tl.reshape(tile, (tile.shape[0], tile.shape[1] * BLOCK_J))


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
def _input_weights(sw_ptr, i, n_basis, n_out):
    """Input i's `[n_basis, out]` rows of a `[in, n_basis, out]` weight; int64 so
    in * n_basis * out may pass 2**31."""
    return sw_ptr + tl.cast(i, tl.int64) * n_basis * n_out


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
def _add_gathered_rows(acc, values, w_row, s, use, n_basis, n_out, offs_o, o_ok,
                       K: tl.constexpr, MASK: tl.constexpr, scale=None):
    """acc `[BLOCK_B, BLOCK_O]` + sum_r c_r * (row s-K+r of one input's weights,
    _gather_row) per sample, c_r = scale * values[r] (values[r] without a scale). MASK:
    c_r zeroed first where the row does not count (values of bases that do not exist, or
    scaled by an inf, are not 0 there)."""
    for r in tl.static_range(K + 1):
        w, ok = _gather_row(w_row, s, use, r, n_basis, n_out, offs_o, o_ok, K)
        c = values[r]
        if scale is not None:
            c = scale * c
        if MASK:
            c = tl.where(ok, c, 0.0)
        acc += c[:, None] * w
    return acc


@triton.jit
def _add_base_row(acc, value, bw_ptr, i, n_out, offs_o, o_ok):
    """acc `[BLOCK_B, BLOCK_O]` + value (base function or its slope, per sample) times
    input i's row of base_weight `[in, out]`."""
    wb = tl.load(bw_ptr + i * n_out + offs_o, mask=o_ok, other=0.0)
    return acc + value[:, None] * wb[None, :]


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
    offs_o, o_ok = _block_range(pid_o * BLOCK_O, n_out, BLOCK_O)
    return chunk, i0, j0, offs_i, offs_o, o_ok


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


@triton.jit
def _weight_grad_values(x_ptr, grid_ptr, rs_ptr, offs_b, b_ok, offs_i, n_in, n_knots,
                        LOG_NK: tl.constexpr, K: tl.constexpr, D: tl.constexpr,
                        HAS_SCALE: tl.constexpr, BASE: tl.constexpr):
    """Per (sample, input) of a [BLOCK_B, BLOCK_I] block: span s, the K+1 values
    row_scale[b, i] * B^(D)_{s-K+r}(x[b, i]) (unscaled without HAS_SCALE; zero outside the
    grid and on padding) and the base function (zero without BASE)."""
    x, t_row, s, use, ok, offs = _load_x_block(x_ptr, grid_ptr, offs_b, b_ok, offs_i, n_in,
                                               n_knots, LOG_NK)
    values = _derivative_bases(x, t_row, s, use, n_knots, K, D)
    if HAS_SCALE:
        # Scaled inside the grid only, as the C++ kernel (an inf scale times a 0 basis
        # outside stays 0).
        scale = tl.load(rs_ptr + offs, mask=ok, other=0.0)
        scaled = ()
        for r in tl.static_range(K + 1):
            scaled = scaled + (tl.where(use, scale * values[r], 0.0),)
        values = scaled
    base, dbase = _silu(x, ok, BASE)
    return s, values, base


@triton.jit
def _weight_grad_partial(x_ptr, grid_ptr, rs_ptr, gy_ptr, part_ptr, n_batch, n_in, n_out,
                         n_knots, n_cols, chunk_len, n_jblocks, K: tl.constexpr,
                         D: tl.constexpr, HAS_SCALE: tl.constexpr, BASE: tl.constexpr,
                         LOG_NK: tl.constexpr, PREC: tl.constexpr, BLOCK_B: tl.constexpr,
                         BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr,
                         BLOCK_O: tl.constexpr):
    """Stage 1 of a weight gradient sum_b tile[b, :]^T grad_y[b, :], the tile of
    _weight_grad_values (the layer's: D = 0, no scale, the base in column n_basis): for
    one chunk of the batch, one block of (input, column) rows and one block of outputs,
    by tl.dot, into part[chunk, i, j, o] of a `[chunks, in, n_cols, out]` buffer."""
    n_basis = n_knots - K - 1
    chunk, i0, j0, offs_i, offs_o, o_ok = _weight_grad_block(n_out, n_jblocks, BLOCK_I,
                                                             BLOCK_J, BLOCK_O)
    acc = tl.zeros((BLOCK_I * BLOCK_J, BLOCK_O), dtype=tl.float32)
    b_start = chunk * chunk_len
    for b0 in range(b_start, b_start + chunk_len, BLOCK_B):
        offs_b, b_ok = _block_range(b0, n_batch, BLOCK_B)
        s, values, base = _weight_grad_values(x_ptr, grid_ptr, rs_ptr, offs_b, b_ok, offs_i,
                                              n_in, n_knots, LOG_NK, K, D, HAS_SCALE, BASE)
        tile = _flat_basis_tile(s, values, base, j0, n_basis, K, BASE, BLOCK_J)
        gy = _load_batch_block(gy_ptr, offs_b, b_ok, offs_o, o_ok, n_out)
        acc = tl.dot(tl.trans(tile), gy, acc, input_precision=PREC)
    _store_weight_grad_partial(part_ptr, acc, chunk, i0, j0, n_in, n_cols, n_out, offs_o,
                               o_ok, BLOCK_I, BLOCK_J)
