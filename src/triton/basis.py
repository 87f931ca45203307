"""B-spline mathematics on the GPU, each rule written once (device functions only).

Mirrors ``src/cpp/spline_basis.hpp``: pykan's Cox-de Boor bases (half-open order 0,
everything zero outside ``[t_0, t_last)`` or for NaN x). For each (sample, input) the knot
span ``s`` (``t_s <= x < t_{s+1}``) is found by binary search and the ``k+1`` bases that
can be non-zero there, ``B_{s-k} .. B_s``, are computed in registers (The NURBS Book,
A2.2): ``_raise_order`` is the one Cox-de Boor step, ``_differentiate`` the one derivative
step, ``_repeated_knot_zero`` pykan's repeated-knot rule, ``_inside_grid`` and
``_nan_where_not_finite`` the NaN rules. Every layer and derivative kernel builds on these.

Tuples hold one tensor per local basis: ``N[r] = B_{p, s-p+r}``. ``T[m] = t[s-K+m]`` is the
window of ``2K+2`` knots around the span (``_knot_window``).
"""

from __future__ import annotations

import triton
import triton.language as tl

_INF = tl.constexpr(float("inf"))


@triton.jit
def _inside_grid(x, t_row, n_knots):
    """Whether x lies in [t_0, t_last): False for NaN, so every basis of a NaN x is 0."""
    return (x >= tl.load(t_row)) & (x < tl.load(t_row + (n_knots - 1)))


@triton.jit
def _nan_where_not_finite(value, x):
    """value, or NaN where x is +-inf or NaN: a derivative sum whose bases are zeroed out
    there is still undefined (as the C++ derivative kernels)."""
    finite = tl.abs(x) < _INF  # False for NaN too
    # inf - inf, not a NaN global: Triton checks that a global seen by an inner function
    # keeps its value between compilations, and NaN != NaN fails that check.
    return tl.where(finite, value, _INF - _INF)


@triton.jit
def _span(x, t_row, n_knots, LOG_NK: tl.constexpr):
    """Knot span s (t[s] <= x < t[s+1]) and whether x lies in [t_0, t_last).

    x: any shape; t_row: pointers to each element's knot row (broadcastable to x).
    A fixed number of bisection steps (ceil(log2(n_knots - 1))): once hi = lo + 1 the
    extra steps change nothing. Where x is outside (or NaN) s is meaningless but in range.
    """
    valid = _inside_grid(x, t_row, n_knots)
    lo = tl.zeros(x.shape, tl.int32)
    hi = lo + (n_knots - 1)
    for _ in tl.static_range(LOG_NK):
        mid = (lo + hi) // 2
        go = tl.load(t_row + mid) <= x
        lo = tl.where(go, mid, lo)
        hi = tl.where(go, hi, mid)
    return lo, valid


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
def _safe_div(num, den):
    """num / den, and 0 where den == 0 (coincident knots: pykan's 0/0 term)."""
    ok = den > 0
    return tl.where(ok, num / tl.where(ok, den, 1.0), 0.0)


@triton.jit
def _repeated(T, s, n_knots, a: tl.constexpr, b: tl.constexpr, K: tl.constexpr):
    """Whether the denominator t[s-K+b] - t[s-K+a] (a < b) is a repeated-knot zero: <= 0
    (sorted knots: equal) with both knot indices inside the knot vector. Out-of-range
    (clamped) indices never count: they only feed bases that do not exist, which callers
    discard."""
    inside = (s + (a - K) >= 0) & (s + (b - K) <= n_knots - 1)
    return inside & (T[b] - T[a] <= 0)


@triton.jit
def _repeated_knot_zero(T, s, n_knots, p: tl.constexpr, r: tl.constexpr, K: tl.constexpr):
    """pykan's repeated-knot rule for B_{p,j}, j = s-p+r: B_batch takes nan_to_num of each
    order's sum, and where two knots coincide a term is inf*0 or 0/0 = NaN, so the *whole*
    basis becomes 0 when t_{j+p} == t_j or t_{j+p+1} == t_{j+1} (as
    zero_repeated_knot_bases in src/cpp/spline_basis.hpp). The same zero holds for every
    derivative of that basis."""
    # t_j = T[K-p+r], t_{j+p} = T[K+r], t_{j+1} = T[K-p+r+1], t_{j+p+1} = T[K+r+1]
    return (_repeated(T, s, n_knots, K - p + r, K + r, K)
            | _repeated(T, s, n_knots, K - p + r + 1, K + r + 1, K))


@triton.jit
def _raise_order(N, T, x, s, n_knots, p: tl.constexpr, K: tl.constexpr):
    """The Cox-de Boor step, order p-1 -> p (A2.2): N[r] = B_{p-1, s-p+1+r}, r < p.
    Returns the p+1 bases B_{p, s-p+r}, repeated-knot zeros applied."""
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
        out = out + (tl.where(_repeated_knot_zero(T, s, n_knots, p, r, K), 0.0, new[r]),)
    return out


@triton.jit
def _differentiate(N, T, s, n_knots, p: tl.constexpr, K: tl.constexpr):
    """The derivative step, order p-1 -> p (The NURBS Book, eq. 2.9): N[r] holds
    B^(m)_{p-1, s-p+1+r}, r < p; returns the p+1 values B^(m+1)_{p, j}, j = s-p+r,
    p (B^(m)_{p-1,j} / (t_{j+p} - t_j) - B^(m)_{p-1,j+1} / (t_{j+p+1} - t_{j+1})),
    zeroed where pykan zeroes B_{p,j} itself (as local_basis_derivative in
    src/cpp/spline_basis.hpp)."""
    out = ()
    for r in tl.static_range(p + 1):
        d = tl.zeros(N[0].shape, N[0].dtype)
        if r >= 1:
            d += _safe_div(N[r - 1], T[K + r] - T[K - p + r])
        if r < p:
            d -= _safe_div(N[r], T[K + r + 1] - T[K - p + r + 1])
        out = out + (tl.where(_repeated_knot_zero(T, s, n_knots, p, r, K), 0.0, p * d),)
    return out


@triton.jit
def _where_valid(values, valid, K: tl.constexpr):
    """The K+1 local values, zeroed where not valid (outside the grid, NaN, padding)."""
    out = ()
    for r in tl.static_range(K + 1):
        out = out + (tl.where(valid, values[r], 0.0),)
    return out


@triton.jit
def _local_bases(x, t_row, s, valid, n_knots, K: tl.constexpr):
    """(N, dN): tuples of K+1 tensors shaped like x, N[r] = B_{K, s-K+r}(x) and
    dN[r] = dB_{K, s-K+r}/dx; zero where not valid. Entries of bases that do not exist
    (index < 0 or >= n_basis) are meaningless: callers mask them."""
    T = _knot_window(t_row, s, n_knots, K)
    N = (tl.full(x.shape, 1.0, x.dtype),)
    for p in tl.static_range(1, K):
        N = _raise_order(N, T, x, s, n_knots, p, K)
    slopes = _differentiate(N, T, s, n_knots, K, K)  # from the order K-1 bases
    N = _raise_order(N, T, x, s, n_knots, K, K)
    return _where_valid(N, valid, K), _where_valid(slopes, valid, K)


@triton.jit
def _derivative_bases(x, t_row, s, valid, n_knots, K: tl.constexpr, D: tl.constexpr):
    """D-th derivatives of the order-K bases: a tuple of K+1 tensors shaped like x,
    B^(D)_{K, s-K+r}(x); zero where not valid and everywhere when D > K. The order K-D
    bases by _raise_order, then D _differentiate steps. Entries of bases that do not
    exist are meaningless: callers mask them."""
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
        out = _where_valid(N, valid, K)
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
