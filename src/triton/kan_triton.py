"""Triton kernels of the fused KAN layer: forward, grad_x, and the weight gradients.

The mathematics and the local basis evaluation mirror ``src/cpp/spline_basis.hpp``
(pykan's Cox-de Boor bases, half-open order 0, everything zero outside ``[t_0, t_last)``
or for NaN x; a basis whose recursion meets a repeated knot is zeroed whole, as pykan's
``nan_to_num`` of each order does). For each (sample, input) the knot span ``s``
(``t_s <= x < t_{s+1}``) is found by binary search and the ``k+1`` bases that can be
non-zero there, ``B_{s-k} .. B_s``, are computed in registers (The NURBS Book, A2.2), with their
derivatives for the backward pass. Two ways to apply them:

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

For gradients taken with ``create_graph=True`` (pykan_fast/autograd.py), two more ops use
the D-th derivatives of the bases (``_derivative_bases``, as ``local_basis_derivative`` in
spline_basis.hpp): ``spline_derivative`` (local support, like the local forward) and
``spline_derivative_backward`` (its ``T_D``/``T_D+1`` local like grad_x, its weight
gradient by the same two-stage tile reduction).

``TRITON_INTERPRET=1`` is read by ``@triton.jit`` when this module is imported: set it
before importing to run the kernels on CPU tensors (tests do).

Shapes (all tensors contiguous, one dtype, float32; bf16/fp16 callers convert first):
x `[B, in]`, grid `[in, n_knots]` (each row sorted), spline_weight `[in, n_basis, out]`
with ``n_basis = n_knots - k - 1``, base_weight `[in, out]`, grad_y / y `[B, out]`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["kan_forward", "kan_backward", "spline_derivative", "spline_derivative_backward",
           "choose_path", "LOCAL_MIN_COLUMNS"]

# Smallest padded per-input column count (n_basis + 1 rounded up to a power of two) for
# which "auto" takes the local-support path in float32 without TF32: the dense tile then
# does >= 64 multiply-adds per (sample, input, output) for k + 2 useful ones, while the
# local path does one gathered load per multiply-add. An estimate from throughput ratios,
# not a measurement (no GPU was available when this was written): re-tune with
# bench/test_bench_gpu.py.
LOCAL_MIN_COLUMNS = 64
# With TF32 tensor cores the dense tile is ~8x cheaper per multiply-add.
LOCAL_MIN_COLUMNS_TF32 = 512


# ---- device helpers ----------------------------------------------------------------------

@triton.jit
def _span(x, t_row, n_knots, LOG_NK: tl.constexpr):
    """Knot span s (t[s] <= x < t[s+1]) and whether x lies in [t_0, t_last).

    x: any shape; t_row: pointers to each element's knot row (broadcastable to x).
    A fixed number of bisection steps (ceil(log2(n_knots - 1))): once hi = lo + 1 the
    extra steps change nothing. Where x is outside (or NaN) s is meaningless but in range.
    """
    valid = (x >= tl.load(t_row)) & (x < tl.load(t_row + (n_knots - 1)))
    lo = tl.zeros(x.shape, tl.int32)
    hi = lo + (n_knots - 1)
    for _ in tl.static_range(LOG_NK):
        mid = (lo + hi) // 2
        go = tl.load(t_row + mid) <= x
        lo = tl.where(go, mid, lo)
        hi = tl.where(go, hi, mid)
    return lo, valid


@triton.jit
def _safe_div(num, den):
    """num / den, and 0 where den == 0 (coincident knots: pykan's 0/0 term)."""
    ok = den > 0
    return tl.where(ok, num / tl.where(ok, den, 1.0), 0.0)


@triton.jit
def _repeated(T, s, n_knots, a: tl.constexpr, b: tl.constexpr, K: tl.constexpr):
    """Whether the denominator t[s-K+b] - t[s-K+a] (a < b) is a repeated-knot zero: <= 0
    (sorted knots: equal) with both knot indices inside the knot vector. T[m] = t[s-K+m]
    is clamped; out-of-range indices never count (they only feed bases that do not exist,
    which callers discard)."""
    inside = (s + (a - K) >= 0) & (s + (b - K) <= n_knots - 1)
    return inside & (T[b] - T[a] <= 0)


@triton.jit
def _raise_order(N, T, x, s, n_knots, p: tl.constexpr, K: tl.constexpr):
    """Order p-1 -> p of the local bases (A2.2). N[r] = B_{p-1, s-p+1+r}, r < p;
    T[m] = t[s-K+m] (clamped). Returns the p+1 bases B_{p, s-p+r}.

    pykan's B_batch takes nan_to_num of each order's sum: where two knots coincide a term
    is inf*0 or 0/0 = NaN and the *whole* basis becomes 0. So B_{p,j} (j = s-p+r) is
    zeroed when t_{j+p} == t_j or t_{j+p+1} == t_{j+1}, as zero_repeated_knot_bases in
    src/cpp/spline_basis.hpp does."""
    new = ()
    saved = tl.zeros(x.shape, x.dtype)
    for r in tl.static_range(p):
        t_hi = T[K + r + 1]        # t[s+r+1]
        t_lo = T[K + 1 - p + r]    # t[s+1-p+r]
        temp = _safe_div(N[r], t_hi - t_lo)
        new = new + (saved + (t_hi - x) * temp,)
        saved = (x - t_lo) * temp
    new = new + (saved,)
    out = ()
    for r in tl.static_range(p + 1):
        # j = s-p+r: t_j = T[K-p+r], t_{j+p} = T[K+r], t_{j+1} = T[K-p+r+1], t_{j+p+1} = T[K+r+1]
        zero = (_repeated(T, s, n_knots, K - p + r, K + r, K)
                | _repeated(T, s, n_knots, K - p + r + 1, K + r + 1, K))
        out = out + (tl.where(zero, 0.0, new[r]),)
    return out


@triton.jit
def _knot_window(t_row, s, n_knots, K: tl.constexpr):
    """The 2K+2 knots around span s: T[m] = t[s-K+m], indices clamped to the knot vector
    (clamped ones only feed bases that do not exist)."""
    T = ()
    for m in tl.static_range(2 * K + 2):
        idx = tl.minimum(tl.maximum(s + (m - K), 0), n_knots - 1)
        T = T + (tl.load(t_row + idx),)
    return T


@triton.jit
def _local_bases(x, t_row, s, valid, n_knots, K: tl.constexpr):
    """(N, dN): tuples of K+1 tensors shaped like x, N[r] = B_{K, s-K+r}(x) and
    dN[r] = dB_{K, s-K+r}/dx; zero where x is outside the grid. Entries of bases that do
    not exist (index < 0 or >= n_basis) are meaningless: callers mask them."""
    T = _knot_window(t_row, s, n_knots, K)
    N = (tl.full(x.shape, 1.0, x.dtype),)
    for p in tl.static_range(1, K):
        N = _raise_order(N, T, x, s, n_knots, p, K)
    lower = N  # order K-1 (repeated-knot zeros applied): lower[r] = B_{K-1, s-K+1+r}
    N = _raise_order(N, T, x, s, n_knots, K, K)
    # dB_{K,j} = K (B_{K-1,j} / (t_{j+K} - t_j) - B_{K-1,j+1} / (t_{j+K+1} - t_{j+1})),
    # j = s-K+r: B_{K-1,j} = lower[r-1], B_{K-1,j+1} = lower[r], t_{j+m} = T[r+m].
    # Zero where B_{K,j} is a repeated-knot zero (t_{j+K} == t_j or t_{j+K+1} == t_{j+1}):
    # pykan's basis is then identically 0.
    values = ()
    slopes = ()
    for r in tl.static_range(K + 1):
        d = tl.zeros(x.shape, x.dtype)
        if r >= 1:
            d += _safe_div(lower[r - 1], T[r + K] - T[r])
        if r < K:
            d -= _safe_div(lower[r], T[r + K + 1] - T[r + 1])
        zero = (_repeated(T, s, n_knots, r, r + K, K)
                | _repeated(T, s, n_knots, r + 1, r + K + 1, K))
        values = values + (tl.where(valid, N[r], 0.0),)
        slopes = slopes + (tl.where(valid, tl.where(zero, 0.0, K * d), 0.0),)
    return values, slopes


@triton.jit
def _differentiate(N, T, s, n_knots, p: tl.constexpr, K: tl.constexpr):
    """One derivative step, order p-1 -> p (The NURBS Book, eq. 2.9): N[r] holds
    B^(m)_{p-1, s-p+1+r}, r < p; returns the p+1 values B^(m+1)_{p, j}, j = s-p+r,
    p (B^(m)_{p-1,j} / (t_{j+p} - t_j) - B^(m)_{p-1,j+1} / (t_{j+p+1} - t_{j+1})).
    T[m'] = t[s-K+m']. Zeroed where pykan zeroes B_{p,j} itself (a repeated-knot
    denominator), as local_basis_derivative in src/cpp/spline_basis.hpp."""
    out = ()
    for r in tl.static_range(p + 1):
        # t_j = T[K-p+r], t_{j+p} = T[K+r], t_{j+1} = T[K-p+r+1], t_{j+p+1} = T[K+r+1]
        d = tl.zeros(N[0].shape, N[0].dtype)
        if r >= 1:
            d += _safe_div(N[r - 1], T[K + r] - T[K - p + r])
        if r < p:
            d -= _safe_div(N[r], T[K + r + 1] - T[K - p + r + 1])
        zero = (_repeated(T, s, n_knots, K - p + r, K + r, K)
                | _repeated(T, s, n_knots, K - p + r + 1, K + r + 1, K))
        out = out + (tl.where(zero, 0.0, p * d),)
    return out


@triton.jit
def _derivative_bases(x, t_row, s, valid, n_knots, K: tl.constexpr, D: tl.constexpr):
    """D-th derivatives of the order-K bases: a tuple of K+1 tensors shaped like x,
    B^(D)_{K, s-K+r}(x); zero where not valid (x outside the grid, NaN, padding) and
    everywhere when D > K. The order K-D bases by _raise_order, then D _differentiate
    steps. Entries of bases that do not exist are meaningless: callers mask them."""
    out = ()
    if D > K:
        for r in tl.static_range(K + 1):
            out = out + (tl.zeros(x.shape, x.dtype),)
    else:
        T = _knot_window(t_row, s, n_knots, K)
        N = (tl.full(x.shape, 1.0, x.dtype),)
        for p in tl.static_range(1, K - D + 1):
            N = _raise_order(N, T, x, s, n_knots, p, K)
        for p in tl.static_range(K - D + 1, K + 1):
            N = _differentiate(N, T, s, n_knots, p, K)
        for r in tl.static_range(K + 1):
            out = out + (tl.where(valid, N[r], 0.0),)
    return out


@triton.jit
def _silu(x, ok, BASE: tl.constexpr):
    """(silu(x), silu'(x)) as torch computes SiLU (x / (1 + exp(-x))); zeros where not ok
    (padding) or without a base function."""
    if BASE:
        sig = 1.0 / (1.0 + tl.exp(-x))
        value = tl.where(ok, x / (1.0 + tl.exp(-x)), 0.0)
        slope = tl.where(ok, sig * (1.0 + x * (1.0 - sig)), 0.0)
    else:
        value = tl.zeros(x.shape, x.dtype)
        slope = tl.zeros(x.shape, x.dtype)
    return value, slope


@triton.jit
def _load_block(x_ptr, grid_ptr, offs_b, b_ok, offs_i, n_in, n_knots, LOG_NK: tl.constexpr,
                K: tl.constexpr, BASE: tl.constexpr):
    """Per (sample, input) of a [BLOCK_B, BLOCK_I] block: span, local bases and their
    derivatives, base function and its derivative (all zero on padding)."""
    i_ok = offs_i < n_in
    ic = tl.minimum(offs_i, n_in - 1)  # padding reads a real knot row, then is masked
    ok = b_ok[:, None] & i_ok[None, :]
    x = tl.load(x_ptr + offs_b[:, None].to(tl.int64) * n_in + ic[None, :], mask=ok, other=0.0)
    t_row = grid_ptr + ic[None, :] * n_knots
    s, valid = _span(x, t_row, n_knots, LOG_NK)
    N, dN = _local_bases(x, t_row, s, valid & ok, n_knots, K)
    base, dbase = _silu(x, ok, BASE)
    return s, N, dN, base, dbase


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
def _weight_rows(sw_ptr, bw_ptr, i0, j0, n_in, n_basis, n_out, offs_o, o_ok,
                 BASE: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr):
    """Pointers and mask of the [BLOCK_I * BLOCK_J] augmented weight rows of the tile:
    row (i, j) is spline_weight[i, j] for j < n_basis and base_weight[i] for j = n_basis.
    Returns (spline pointers, spline mask, base pointers, base mask), each [rows, BLOCK_O]."""
    kk = tl.arange(0, BLOCK_I * BLOCK_J)
    wi = i0 + kk // BLOCK_J
    wj = j0 + kk % BLOCK_J
    row_ok = wi < n_in
    sp_ptr = sw_ptr + (wi.to(tl.int64) * n_basis + wj)[:, None] * n_out + offs_o[None, :]
    sp_ok = (row_ok & (wj < n_basis))[:, None] & o_ok[None, :]
    b_ptr = bw_ptr + wi.to(tl.int64)[:, None] * n_out + offs_o[None, :]
    b_ok = (row_ok & (wj == n_basis))[:, None] & o_ok[None, :]
    return sp_ptr, sp_ok, b_ptr, b_ok


# ---- kernels -----------------------------------------------------------------------------

@triton.jit
def _kan_fwd_dense_kernel(x_ptr, grid_ptr, sw_ptr, bw_ptr, y_ptr, n_batch, n_in, n_out,
                          n_knots, K: tl.constexpr, BASE: tl.constexpr, LOG_NK: tl.constexpr,
                          PREC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_I: tl.constexpr,
                          BLOCK_J: tl.constexpr, BLOCK_O: tl.constexpr):
    """y[b, o] for a [BLOCK_B, BLOCK_O] block: sum over inputs and column blocks of
    tl.dot(basis tile, weight rows)."""
    pid_b = tl.program_id(0)
    pid_o = tl.program_id(1)
    n_basis = n_knots - K - 1
    offs_b = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    offs_o = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    b_ok = offs_b < n_batch
    o_ok = offs_o < n_out
    acc = tl.zeros((BLOCK_B, BLOCK_O), dtype=tl.float32)
    for i0 in range(0, n_in, BLOCK_I):
        offs_i = i0 + tl.arange(0, BLOCK_I)
        s, N, dN, base, dbase = _load_block(x_ptr, grid_ptr, offs_b, b_ok, offs_i, n_in,
                                            n_knots, LOG_NK, K, BASE)
        for j0 in range(0, n_basis + BASE, BLOCK_J):
            tile = _basis_tile(s, N, base, j0, n_basis, K, BASE, BLOCK_J)
            tile = tl.reshape(tile, (BLOCK_B, BLOCK_I * BLOCK_J))
            sp_ptr, sp_ok, b_ptr, bb_ok = _weight_rows(sw_ptr, bw_ptr, i0, j0, n_in, n_basis,
                                                       n_out, offs_o, o_ok, BASE, BLOCK_I,
                                                       BLOCK_J)
            w = tl.load(sp_ptr, mask=sp_ok, other=0.0)
            if BASE:
                w += tl.load(b_ptr, mask=bb_ok, other=0.0)
            acc = tl.dot(tile, w, acc, input_precision=PREC)
    y_ptrs = y_ptr + offs_b[:, None].to(tl.int64) * n_out + offs_o[None, :]
    tl.store(y_ptrs, acc, mask=b_ok[:, None] & o_ok[None, :])


@triton.jit
def _kan_fwd_local_kernel(x_ptr, grid_ptr, sw_ptr, bw_ptr, y_ptr, n_batch, n_in, n_out,
                          n_knots, K: tl.constexpr, BASE: tl.constexpr, LOG_NK: tl.constexpr,
                          BLOCK_B: tl.constexpr, BLOCK_O: tl.constexpr):
    """y[b, o] for a [BLOCK_B, BLOCK_O] block from the k+1 weight rows of each span."""
    pid_b = tl.program_id(0)
    pid_o = tl.program_id(1)
    n_basis = n_knots - K - 1
    offs_b = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    offs_o = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    b_ok = offs_b < n_batch
    o_ok = offs_o < n_out
    acc = tl.zeros((BLOCK_B, BLOCK_O), dtype=tl.float32)
    for i in range(0, n_in):
        x = tl.load(x_ptr + offs_b.to(tl.int64) * n_in + i, mask=b_ok, other=0.0)
        t_row = grid_ptr + i * n_knots
        s, valid = _span(x, t_row, n_knots, LOG_NK)
        N, dN = _local_bases(x, t_row, s, valid & b_ok, n_knots, K)
        w_row = sw_ptr + tl.cast(i, tl.int64) * n_basis * n_out
        for r in tl.static_range(K + 1):
            j = s - K + r
            ok = valid & b_ok & (j >= 0) & (j < n_basis)
            jc = tl.minimum(tl.maximum(j, 0), n_basis - 1)
            w = tl.load(w_row + jc[:, None] * n_out + offs_o[None, :],
                        mask=ok[:, None] & o_ok[None, :], other=0.0)
            acc += N[r][:, None] * w
        if BASE:
            base, dbase = _silu(x, b_ok, BASE)
            wb = tl.load(bw_ptr + i * n_out + offs_o, mask=o_ok, other=0.0)
            acc += base[:, None] * wb[None, :]
    y_ptrs = y_ptr + offs_b[:, None].to(tl.int64) * n_out + offs_o[None, :]
    tl.store(y_ptrs, acc, mask=b_ok[:, None] & o_ok[None, :])


@triton.jit
def _kan_bwd_x_dense_kernel(x_ptr, grid_ptr, sw_ptr, bw_ptr, gy_ptr, gx_ptr, n_batch, n_in,
                            n_out, n_knots, K: tl.constexpr, BASE: tl.constexpr,
                            LOG_NK: tl.constexpr, PREC: tl.constexpr, BLOCK_B: tl.constexpr,
                            BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr,
                            BLOCK_O: tl.constexpr):
    """grad_x for a [BLOCK_B, BLOCK_I] block: D = grad_y @ W^T by tl.dot over the outputs
    (one column block at a time), contracted with the derivative tile."""
    pid_b = tl.program_id(0)
    pid_i = tl.program_id(1)
    n_basis = n_knots - K - 1
    offs_b = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    offs_i = pid_i * BLOCK_I + tl.arange(0, BLOCK_I)
    b_ok = offs_b < n_batch
    i0 = pid_i * BLOCK_I
    s, N, dN, base, dbase = _load_block(x_ptr, grid_ptr, offs_b, b_ok, offs_i, n_in, n_knots,
                                        LOG_NK, K, BASE)
    g = tl.zeros((BLOCK_B, BLOCK_I), dtype=tl.float32)
    for j0 in range(0, n_basis + BASE, BLOCK_J):
        D = tl.zeros((BLOCK_B, BLOCK_I * BLOCK_J), dtype=tl.float32)
        for o0 in range(0, n_out, BLOCK_O):
            offs_o = o0 + tl.arange(0, BLOCK_O)
            o_ok = offs_o < n_out
            gy = tl.load(gy_ptr + offs_b[:, None].to(tl.int64) * n_out + offs_o[None, :],
                         mask=b_ok[:, None] & o_ok[None, :], other=0.0)
            sp_ptr, sp_ok, b_ptr, bb_ok = _weight_rows(sw_ptr, bw_ptr, i0, j0, n_in, n_basis,
                                                       n_out, offs_o, o_ok, BASE, BLOCK_I,
                                                       BLOCK_J)
            w = tl.load(sp_ptr, mask=sp_ok, other=0.0)
            if BASE:
                w += tl.load(b_ptr, mask=bb_ok, other=0.0)
            D = tl.dot(gy, tl.trans(w), D, input_precision=PREC)
        slope = _basis_tile(s, dN, dbase, j0, n_basis, K, BASE, BLOCK_J)
        g += tl.sum(tl.reshape(D, (BLOCK_B, BLOCK_I, BLOCK_J)) * slope, axis=2)
    gx_ptrs = gx_ptr + offs_b[:, None].to(tl.int64) * n_in + offs_i[None, :]
    tl.store(gx_ptrs, g, mask=b_ok[:, None] & (offs_i < n_in)[None, :])


@triton.jit
def _kan_bwd_x_local_kernel(x_ptr, grid_ptr, sw_ptr, bw_ptr, gy_ptr, gx_ptr, n_batch, n_in,
                            n_out, n_knots, K: tl.constexpr, BASE: tl.constexpr,
                            LOG_NK: tl.constexpr, BLOCK_B: tl.constexpr,
                            BLOCK_O: tl.constexpr):
    """grad_x[b, i] for BLOCK_B samples of one input from the k+1 weight rows of each span:
    sum_o grad_y[b, o] * (sum_r dB_r(x) w[s-k+r, o] + silu'(x) base_weight[i, o])."""
    pid_b = tl.program_id(0)
    i = tl.program_id(1)
    n_basis = n_knots - K - 1
    offs_b = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    b_ok = offs_b < n_batch
    x = tl.load(x_ptr + offs_b.to(tl.int64) * n_in + i, mask=b_ok, other=0.0)
    t_row = grid_ptr + i * n_knots
    s, valid = _span(x, t_row, n_knots, LOG_NK)
    N, dN = _local_bases(x, t_row, s, valid & b_ok, n_knots, K)
    base, dbase = _silu(x, b_ok, BASE)
    w_row = sw_ptr + tl.cast(i, tl.int64) * n_basis * n_out
    g = tl.zeros((BLOCK_B,), dtype=tl.float32)
    for o0 in range(0, n_out, BLOCK_O):
        offs_o = o0 + tl.arange(0, BLOCK_O)
        o_ok = offs_o < n_out
        gy = tl.load(gy_ptr + offs_b[:, None].to(tl.int64) * n_out + offs_o[None, :],
                     mask=b_ok[:, None] & o_ok[None, :], other=0.0)
        comb = tl.zeros((BLOCK_B, BLOCK_O), dtype=tl.float32)
        for r in tl.static_range(K + 1):
            j = s - K + r
            ok = valid & b_ok & (j >= 0) & (j < n_basis)
            jc = tl.minimum(tl.maximum(j, 0), n_basis - 1)
            w = tl.load(w_row + jc[:, None] * n_out + offs_o[None, :],
                        mask=ok[:, None] & o_ok[None, :], other=0.0)
            comb += dN[r][:, None] * w
        if BASE:
            wb = tl.load(bw_ptr + i * n_out + offs_o, mask=o_ok, other=0.0)
            comb += dbase[:, None] * wb[None, :]
        g += tl.sum(gy * comb, axis=1)
    tl.store(gx_ptr + offs_b.to(tl.int64) * n_in + i, g, mask=b_ok)


@triton.jit
def _kan_bwd_w_kernel(x_ptr, grid_ptr, gy_ptr, part_ptr, n_batch, n_in, n_out, n_knots,
                      chunk_len, n_jblocks, K: tl.constexpr, BASE: tl.constexpr,
                      LOG_NK: tl.constexpr, PREC: tl.constexpr, BLOCK_B: tl.constexpr,
                      BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_O: tl.constexpr):
    """Stage 1 of the weight gradient: for one chunk of the batch, one block of augmented
    rows (inputs x columns) and one block of outputs, sum_b tile[b, :]^T grad_y[b, :] by
    tl.dot, written to part[chunk, i, j, o] (part: [chunks, in, n_basis + 1, out])."""
    pid_row = tl.program_id(0)
    pid_o = tl.program_id(1)
    chunk = tl.program_id(2)
    n_basis = n_knots - K - 1
    i0 = (pid_row // n_jblocks) * BLOCK_I
    j0 = (pid_row % n_jblocks) * BLOCK_J
    offs_i = i0 + tl.arange(0, BLOCK_I)
    offs_o = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    o_ok = offs_o < n_out
    acc = tl.zeros((BLOCK_I * BLOCK_J, BLOCK_O), dtype=tl.float32)
    b_start = chunk * chunk_len
    for b0 in range(b_start, b_start + chunk_len, BLOCK_B):
        offs_b = b0 + tl.arange(0, BLOCK_B)
        b_ok = offs_b < n_batch
        s, N, dN, base, dbase = _load_block(x_ptr, grid_ptr, offs_b, b_ok, offs_i, n_in,
                                            n_knots, LOG_NK, K, BASE)
        tile = _basis_tile(s, N, base, j0, n_basis, K, BASE, BLOCK_J)
        tile = tl.reshape(tile, (BLOCK_B, BLOCK_I * BLOCK_J))
        gy = tl.load(gy_ptr + offs_b[:, None].to(tl.int64) * n_out + offs_o[None, :],
                     mask=b_ok[:, None] & o_ok[None, :], other=0.0)
        acc = tl.dot(tl.trans(tile), gy, acc, input_precision=PREC)
    kk = tl.arange(0, BLOCK_I * BLOCK_J)
    wi = i0 + kk // BLOCK_J
    wj = j0 + kk % BLOCK_J
    n_cols = n_basis + 1
    rows = (chunk.to(tl.int64) * n_in + wi) * n_cols + wj
    ok = ((wi < n_in) & (wj < n_cols))[:, None] & o_ok[None, :]
    tl.store(part_ptr + rows[:, None] * n_out + offs_o[None, :], acc, mask=ok)


# ---- derivative-order kernels (create_graph=True backward, see pykan_fast/autograd.py) ----

_INF = tl.constexpr(float("inf"))
_NAN = tl.constexpr(float("nan"))


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
def _scaled_derivative_block(x_ptr, grid_ptr, rs_ptr, offs_b, b_ok, offs_i, n_in, n_knots,
                             LOG_NK: tl.constexpr, K: tl.constexpr, D: tl.constexpr,
                             HAS_SCALE: tl.constexpr):
    """Per (sample, input) of a [BLOCK_B, BLOCK_I] block: span s and the K+1 values
    row_scale[b, i] * B^(D)_{s-K+r}(x[b, i]) (zero outside the grid and on padding)."""
    i_ok = offs_i < n_in
    ic = tl.minimum(offs_i, n_in - 1)  # padding reads a real knot row, then is masked
    ok = b_ok[:, None] & i_ok[None, :]
    offs = offs_b[:, None].to(tl.int64) * n_in + ic[None, :]
    x = tl.load(x_ptr + offs, mask=ok, other=0.0)
    t_row = grid_ptr + ic[None, :] * n_knots
    s, valid = _span(x, t_row, n_knots, LOG_NK)
    use = valid & ok
    values = _derivative_bases(x, t_row, s, use, n_knots, K, D)
    if HAS_SCALE:
        # Scaled inside the grid only, as the C++ kernel (an inf scale times a 0 basis
        # outside stays 0).
        scale = tl.load(rs_ptr + offs, mask=ok, other=0.0)
        scaled = ()
        for r in tl.static_range(K + 1):
            scaled = scaled + (tl.where(use, scale * values[r], 0.0),)
        values = scaled
    return s, values


@triton.jit
def _spline_derivative_kernel(x_ptr, grid_ptr, sw_ptr, rs_ptr, y_ptr, n_batch, n_in, n_out,
                              n_knots, K: tl.constexpr, D: tl.constexpr,
                              HAS_SCALE: tl.constexpr, LOG_NK: tl.constexpr,
                              BLOCK_B: tl.constexpr, BLOCK_O: tl.constexpr):
    """y[b, o] = sum_i row_scale[b, i] sum_r B^(D)_{s-K+r}(x[b, i]) w[i, s-K+r, o] for a
    [BLOCK_B, BLOCK_O] block, from the K+1 weight rows of each span."""
    pid_b = tl.program_id(0)
    pid_o = tl.program_id(1)
    n_basis = n_knots - K - 1
    offs_b = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    offs_o = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    b_ok = offs_b < n_batch
    o_ok = offs_o < n_out
    acc = tl.zeros((BLOCK_B, BLOCK_O), dtype=tl.float32)
    for i in range(0, n_in):
        x = tl.load(x_ptr + offs_b.to(tl.int64) * n_in + i, mask=b_ok, other=0.0)
        t_row = grid_ptr + i * n_knots
        s, valid = _span(x, t_row, n_knots, LOG_NK)
        use = valid & b_ok
        values = _derivative_bases(x, t_row, s, use, n_knots, K, D)
        if HAS_SCALE:
            scale = tl.load(rs_ptr + offs_b.to(tl.int64) * n_in + i, mask=b_ok, other=0.0)
        w_row = sw_ptr + tl.cast(i, tl.int64) * n_basis * n_out
        for r in tl.static_range(K + 1):
            w, ok = _gather_row(w_row, s, use, r, n_basis, n_out, offs_o, o_ok, K)
            c = values[r]
            if HAS_SCALE:
                c = scale * c
            acc += tl.where(ok, c, 0.0)[:, None] * w
    y_ptrs = y_ptr + offs_b[:, None].to(tl.int64) * n_out + offs_o[None, :]
    tl.store(y_ptrs, acc, mask=b_ok[:, None] & o_ok[None, :])


@triton.jit
def _spline_derivative_t_kernel(x_ptr, grid_ptr, sw_ptr, gy_ptr, t0_ptr, t1_ptr, n_batch,
                                n_in, n_out, n_knots, K: tl.constexpr, D: tl.constexpr,
                                NEED_T0: tl.constexpr, NEED_T1: tl.constexpr,
                                LOG_NK: tl.constexpr, BLOCK_B: tl.constexpr,
                                BLOCK_O: tl.constexpr):
    """t0[b, i] = sum_o grad_y[b, o] sum_r B^(D)_{s-K+r}(x[b, i]) w[i, s-K+r, o] and t1
    the same with B^(D+1), for BLOCK_B samples of one input. NaN where x is not finite
    (t0 only for D >= 1), as the C++ kernel: the bases are 0 there, not their slopes."""
    pid_b = tl.program_id(0)
    i = tl.program_id(1)
    n_basis = n_knots - K - 1
    offs_b = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    b_ok = offs_b < n_batch
    x = tl.load(x_ptr + offs_b.to(tl.int64) * n_in + i, mask=b_ok, other=0.0)
    t_row = grid_ptr + i * n_knots
    s, valid = _span(x, t_row, n_knots, LOG_NK)
    use = valid & b_ok
    if NEED_T0:
        values0 = _derivative_bases(x, t_row, s, use, n_knots, K, D)
    if NEED_T1:
        values1 = _derivative_bases(x, t_row, s, use, n_knots, K, D + 1)
    w_row = sw_ptr + tl.cast(i, tl.int64) * n_basis * n_out
    t0 = tl.zeros((BLOCK_B,), dtype=tl.float32)
    t1 = tl.zeros((BLOCK_B,), dtype=tl.float32)
    for o0 in range(0, n_out, BLOCK_O):
        offs_o = o0 + tl.arange(0, BLOCK_O)
        o_ok = offs_o < n_out
        gy = tl.load(gy_ptr + offs_b[:, None].to(tl.int64) * n_out + offs_o[None, :],
                     mask=b_ok[:, None] & o_ok[None, :], other=0.0)
        comb0 = tl.zeros((BLOCK_B, BLOCK_O), dtype=tl.float32)
        comb1 = tl.zeros((BLOCK_B, BLOCK_O), dtype=tl.float32)
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
    finite = tl.abs(x) < _INF  # False for NaN too
    offs = offs_b.to(tl.int64) * n_in + i
    if NEED_T0:
        if D >= 1:
            t0 = tl.where(finite, t0, _NAN)
        tl.store(t0_ptr + offs, t0, mask=b_ok)
    if NEED_T1:
        tl.store(t1_ptr + offs, tl.where(finite, t1, _NAN), mask=b_ok)


@triton.jit
def _spline_derivative_w_kernel(x_ptr, grid_ptr, rs_ptr, gy_ptr, part_ptr, n_batch, n_in,
                                n_out, n_knots, chunk_len, n_jblocks, K: tl.constexpr,
                                D: tl.constexpr, HAS_SCALE: tl.constexpr,
                                LOG_NK: tl.constexpr, PREC: tl.constexpr,
                                BLOCK_B: tl.constexpr, BLOCK_I: tl.constexpr,
                                BLOCK_J: tl.constexpr, BLOCK_O: tl.constexpr):
    """Stage 1 of grad_weight[i, j, o] = sum_b row_scale[b, i] B^(D)_j(x[b, i])
    grad_y[b, o], as _kan_bwd_w_kernel: for one chunk of the batch, one block of
    (input, column) rows and one block of outputs, tl.dot(tile^T, grad_y) into
    part[chunk, i, j, o] (part: `[chunks, in, n_basis, out]`)."""
    pid_row = tl.program_id(0)
    pid_o = tl.program_id(1)
    chunk = tl.program_id(2)
    n_basis = n_knots - K - 1
    i0 = (pid_row // n_jblocks) * BLOCK_I
    j0 = (pid_row % n_jblocks) * BLOCK_J
    offs_i = i0 + tl.arange(0, BLOCK_I)
    offs_o = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    o_ok = offs_o < n_out
    acc = tl.zeros((BLOCK_I * BLOCK_J, BLOCK_O), dtype=tl.float32)
    b_start = chunk * chunk_len
    for b0 in range(b_start, b_start + chunk_len, BLOCK_B):
        offs_b = b0 + tl.arange(0, BLOCK_B)
        b_ok = offs_b < n_batch
        s, values = _scaled_derivative_block(x_ptr, grid_ptr, rs_ptr, offs_b, b_ok, offs_i,
                                             n_in, n_knots, LOG_NK, K, D, HAS_SCALE)
        tile = _basis_tile(s, values, values[0], j0, n_basis, K, 0, BLOCK_J)
        tile = tl.reshape(tile, (BLOCK_B, BLOCK_I * BLOCK_J))
        gy = tl.load(gy_ptr + offs_b[:, None].to(tl.int64) * n_out + offs_o[None, :],
                     mask=b_ok[:, None] & o_ok[None, :], other=0.0)
        acc = tl.dot(tl.trans(tile), gy, acc, input_precision=PREC)
    kk = tl.arange(0, BLOCK_I * BLOCK_J)
    wi = i0 + kk // BLOCK_J
    wj = j0 + kk % BLOCK_J
    rows = (chunk.to(tl.int64) * n_in + wi) * n_basis + wj
    ok = ((wi < n_in) & (wj < n_basis))[:, None] & o_ok[None, :]
    tl.store(part_ptr + rows[:, None] * n_out + offs_o[None, :], acc, mask=ok)


# ---- launchers ---------------------------------------------------------------------------

def _interpreting() -> bool:
    """Whether the kernels above were built for the interpreter (TRITON_INTERPRET=1 when
    this module was imported)."""
    return not isinstance(_kan_fwd_dense_kernel, triton.runtime.JITFunction)


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _precision() -> str:
    """tl.dot's float32 mode: TF32 tensor cores only where torch allows them for matmuls."""
    return "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee"


class _Config:
    """Block sizes of one call. The interpreter gets the smallest legal tiles (tl.dot
    needs every dimension >= 16) so that tests stay fast and exercise the block loops."""

    def __init__(self, n_basis: int, k: int, base: int):
        interp = _interpreting()
        n_cols = n_basis + (1 if base else 0)
        k_tile = 16 if interp else 32  # columns of the basis tile fed to one tl.dot
        self.block_b = 16 if interp else 64
        self.block_o = 16 if interp else 64
        self.block_j = min(_next_pow2(n_cols), k_tile)
        self.block_i = max(1, k_tile // self.block_j)
        self.n_jblocks = triton.cdiv(n_cols, self.block_j)
        self.log_nk = max(1, (n_basis + k - 1).bit_length())  # ceil(log2(n_knots - 1))
        self.num_warps = 4


def choose_path(n_basis: int, base: int) -> str:
    """"dense" or "local" for a problem with n_basis bases per input (see module doc)."""
    padded = _next_pow2(n_basis + (1 if base else 0))
    limit = LOCAL_MIN_COLUMNS_TF32 if torch.backends.cuda.matmul.allow_tf32 else LOCAL_MIN_COLUMNS
    return "local" if padded >= limit else "dense"


def _check(x, grid, spline_weight, k, **more):
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


def kan_forward(x: torch.Tensor, grid: torch.Tensor, spline_weight: torch.Tensor,
                base_weight: torch.Tensor, k: int, base: int, path: str | None = None
                ) -> torch.Tensor:
    """y `[B, out]` = base(x) @ base_weight + sum_j B_j(x) spline_weight[:, j, :].

    x: `[B, in]`, grid: `[in, n_knots]`, spline_weight: `[in, n_knots-k-1, out]`,
    base_weight: `[in, out]`; float32, contiguous, on one device. base: 0 (none) or
    1 (SiLU). path: "dense", "local" or None (by ``choose_path``).
    """
    _check(x, grid, spline_weight, k, base_weight=base_weight)
    n_batch, n_in = x.shape
    n_basis, n_out = spline_weight.shape[1], spline_weight.shape[2]
    y = torch.empty(n_batch, n_out, dtype=x.dtype, device=x.device)
    if n_batch == 0 or n_out == 0:
        return y
    if n_in == 0:
        return y.zero_()
    cfg = _Config(n_basis, k, base)
    path = path or choose_path(n_basis, base)
    grid_shape = (triton.cdiv(n_batch, cfg.block_b), triton.cdiv(n_out, cfg.block_o))
    if path == "dense":
        _kan_fwd_dense_kernel[grid_shape](
            x, grid, spline_weight, base_weight, y, n_batch, n_in, n_out, grid.shape[1],
            K=k, BASE=base, LOG_NK=cfg.log_nk, PREC=_precision(),
            BLOCK_B=cfg.block_b, BLOCK_I=cfg.block_i, BLOCK_J=cfg.block_j,
            BLOCK_O=cfg.block_o, num_warps=cfg.num_warps)
    elif path == "local":
        _kan_fwd_local_kernel[grid_shape](
            x, grid, spline_weight, base_weight, y, n_batch, n_in, n_out, grid.shape[1],
            K=k, BASE=base, LOG_NK=cfg.log_nk, BLOCK_B=cfg.block_b, BLOCK_O=cfg.block_o,
            num_warps=cfg.num_warps)
    else:
        raise ValueError(f'path: expected "dense", "local" or None, got {path!r}')
    return y


# Stage-1 programs the weight gradient aims for (chunks x row blocks x output blocks):
# enough to fill a large GPU several times over. Fixed, not read from the device, so the
# summation order (and the result) depends on the problem only.
_TARGET_PROGRAMS = 1024
_MAX_CHUNKS = 64


def _chunks(n_batch: int, n_in: int, n_out: int, n_cols: int, cfg: _Config) -> int:
    """Batch chunks of stage 1. The partial buffer (chunks x the weight-gradient size) is
    kept within max(2 x that size, B * (in + out)) elements, so the backward's extra
    memory stays O(B * (in + out) + params)."""
    programs = triton.cdiv(n_in, cfg.block_i) * cfg.n_jblocks * triton.cdiv(n_out, cfg.block_o)
    size = max(1, n_in * n_cols * n_out)
    memory_cap = max(2 * size, n_batch * (n_in + n_out)) // size
    chunks = min(triton.cdiv(_TARGET_PROGRAMS, programs), triton.cdiv(n_batch, cfg.block_b),
                 _MAX_CHUNKS, memory_cap)
    return max(1, chunks)


def _chunk_layout(n_batch: int, n_in: int, n_out: int, n_cols: int, cfg: _Config):
    """(chunks, chunk_len): stage 1's batch chunks, each a whole number of sample blocks."""
    chunks = _chunks(n_batch, n_in, n_out, n_cols, cfg)
    chunk_len = triton.cdiv(triton.cdiv(n_batch, chunks), cfg.block_b) * cfg.block_b
    return triton.cdiv(n_batch, chunk_len), chunk_len


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
    _check(x, grid, spline_weight, k, base_weight=base_weight)
    if grad_y.dtype != x.dtype or not grad_y.is_contiguous():
        raise TypeError(f"grad_y: expected a contiguous {x.dtype} tensor, got {grad_y.dtype}")
    n_batch, n_in = x.shape
    n_basis, n_out = spline_weight.shape[1], spline_weight.shape[2]
    n_knots = grid.shape[1]
    cfg = _Config(n_basis, k, base)
    path = path or choose_path(n_basis, base)
    prec = _precision()
    empty = n_batch == 0 or n_in == 0 or n_out == 0

    grad_x = None
    if need_x:
        grad_x = torch.zeros_like(x)
        if not empty and path == "dense":
            grid_shape = (triton.cdiv(n_batch, cfg.block_b), triton.cdiv(n_in, cfg.block_i))
            _kan_bwd_x_dense_kernel[grid_shape](
                x, grid, spline_weight, base_weight, grad_y, grad_x, n_batch, n_in, n_out,
                n_knots, K=k, BASE=base, LOG_NK=cfg.log_nk, PREC=prec, BLOCK_B=cfg.block_b,
                BLOCK_I=cfg.block_i, BLOCK_J=cfg.block_j, BLOCK_O=cfg.block_o,
                num_warps=cfg.num_warps)
        elif not empty and path == "local":
            grid_shape = (triton.cdiv(n_batch, cfg.block_b), n_in)
            _kan_bwd_x_local_kernel[grid_shape](
                x, grid, spline_weight, base_weight, grad_y, grad_x, n_batch, n_in, n_out,
                n_knots, K=k, BASE=base, LOG_NK=cfg.log_nk, BLOCK_B=cfg.block_b,
                BLOCK_O=cfg.block_o, num_warps=cfg.num_warps)
        elif path not in ("dense", "local"):
            raise ValueError(f'path: expected "dense", "local" or None, got {path!r}')

    grad_sw = grad_bw = None
    need_base = need_base and bool(base)
    if need_spline or need_base:
        n_cols = n_basis + 1  # the base column is always allocated (zero without a base)
        if empty:
            total = x.new_zeros(n_in, n_cols, n_out)
        else:
            chunks, chunk_len = _chunk_layout(n_batch, n_in, n_out, n_cols, cfg)
            part = torch.empty(chunks, n_in, n_cols, n_out, dtype=x.dtype, device=x.device)
            grid_shape = (triton.cdiv(n_in, cfg.block_i) * cfg.n_jblocks,
                          triton.cdiv(n_out, cfg.block_o), chunks)
            _kan_bwd_w_kernel[grid_shape](
                x, grid, grad_y, part, n_batch, n_in, n_out, n_knots, chunk_len,
                cfg.n_jblocks, K=k, BASE=base, LOG_NK=cfg.log_nk, PREC=prec,
                BLOCK_B=cfg.block_b, BLOCK_I=cfg.block_i, BLOCK_J=cfg.block_j,
                BLOCK_O=cfg.block_o, num_warps=cfg.num_warps)
            # Stage 2: a fixed-order sum over the chunks.
            total = part[0] if chunks == 1 else part.sum(dim=0)
        # Copies, not views: with one input both slices are contiguous views of `total`,
        # and a custom op's outputs must not alias each other (torch.library checks).
        if need_spline:
            grad_sw = total[:, :n_basis, :].clone(memory_format=torch.contiguous_format)
        if need_base:
            grad_bw = total[:, n_basis, :].clone(memory_format=torch.contiguous_format)
    return grad_x, grad_sw, grad_bw


def _check_derivative(x, grid, spline_weight, row_scale, grad_y, k, order):
    _check(x, grid, spline_weight, k, row_scale=row_scale, grad_y=grad_y)
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
    y = torch.empty(n_batch, n_out, dtype=x.dtype, device=x.device)
    if n_batch == 0 or n_out == 0:
        return y
    if n_in == 0:
        return y.zero_()
    cfg = _Config(n_basis, k, 0)
    grid_shape = (triton.cdiv(n_batch, cfg.block_b), triton.cdiv(n_out, cfg.block_o))
    _spline_derivative_kernel[grid_shape](
        x, grid, spline_weight, x if row_scale is None else row_scale, y, n_batch, n_in, n_out,
        grid.shape[1], K=k, D=order, HAS_SCALE=row_scale is not None, LOG_NK=cfg.log_nk,
        BLOCK_B=cfg.block_b, BLOCK_O=cfg.block_o, num_warps=cfg.num_warps)
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
    cfg = _Config(n_basis, k, 0)
    t0 = torch.empty_like(x) if need_t0 else None
    t1 = torch.empty_like(x) if need_t1 else None
    if (need_t0 or need_t1) and n_batch > 0 and n_in > 0:
        # Launched even for out == 0: the NaN of a non-finite x does not depend on it.
        grid_shape = (triton.cdiv(n_batch, cfg.block_b), n_in)
        _spline_derivative_t_kernel[grid_shape](
            x, grid, spline_weight, grad_y, x if t0 is None else t0, x if t1 is None else t1,
            n_batch, n_in, n_out, n_knots, K=k, D=order, NEED_T0=need_t0, NEED_T1=need_t1,
            LOG_NK=cfg.log_nk, BLOCK_B=cfg.block_b, BLOCK_O=cfg.block_o,
            num_warps=cfg.num_warps)

    grad_sw = None
    if need_weight:
        if n_batch == 0 or n_in == 0 or n_out == 0:
            grad_sw = torch.zeros_like(spline_weight)
        else:
            chunks, chunk_len = _chunk_layout(n_batch, n_in, n_out, n_basis, cfg)
            part = torch.empty(chunks, n_in, n_basis, n_out, dtype=x.dtype, device=x.device)
            grid_shape = (triton.cdiv(n_in, cfg.block_i) * cfg.n_jblocks,
                          triton.cdiv(n_out, cfg.block_o), chunks)
            _spline_derivative_w_kernel[grid_shape](
                x, grid, x if row_scale is None else row_scale, grad_y, part, n_batch, n_in,
                n_out, n_knots, chunk_len, cfg.n_jblocks, K=k, D=order,
                HAS_SCALE=row_scale is not None, LOG_NK=cfg.log_nk, PREC=_precision(),
                BLOCK_B=cfg.block_b, BLOCK_I=cfg.block_i, BLOCK_J=cfg.block_j,
                BLOCK_O=cfg.block_o, num_warps=cfg.num_warps)
            # Stage 2: a fixed-order sum over the chunks.
            grad_sw = part[0] if chunks == 1 else part.sum(dim=0)
    return t0, t1, grad_sw
