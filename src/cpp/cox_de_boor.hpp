// pykan's B-spline rules, each written once: the Cox-de Boor step, the first-derivative
// formula, the repeated-knot rule and the NaN-gradient rule.  The scalar path (one
// sample, spline_basis.hpp), the SIMD path (a vector of samples sharing a knot span) and
// the uniform-knot path (in units of h) are instantiations of the templates below.
//
// V is the value type: T, or Vec<T>::V with one sample per lane.  Kn is the knot-access
// policy (knot_access.hpp) of one knot span s; for j = 1..p and i = 0..p+1:
//   kn.left(x, j)  = x - t[s+1-j]         kn.right(x, j) = t[s+j] - x
//   kn.inv(p, i)   = 1 / (t[j+p] - t[j]) at j = s-p+i, 0 where the knots coincide
//   kn.dinv(p, i), kn.dscale(p): the derivative's reciprocals and factor (inv and p,
//                  or 1 and 1/h in units of h)
//   Kn::kMayRepeat false: the knots have no repeated pair, the rule below never fires.
// Included inside one namespace per instruction set (kernels_isa.cpp): no std templates.
#pragma once

// pykan's repeated-knot rule.  B_batch computes (x - t_j)/(t_{j+p} - t_j) * B_{p-1,j} + ...
// and then nan_to_num: where two knots coincide a term is inf*0 or 0/0 = NaN, so the
// *whole* basis value becomes 0 -- even the terms of bases otherwise non-zero here.  So
// B_{p,j} (and its derivative) is zero when 1/(t_{j+p} - t_j) or 1/(t_{j+p+1} - t_{j+1}),
// kn.inv(p, r) or kn.inv(p, r + 1) for j = s-p+r, is a repeated-knot zero.  Those
// reciprocals lie inside the knot vector for every basis that exists, so the table's
// out-of-range zeros never zero one.
template <typename S>
inline bool repeated_knot_zero(S inv_left, S inv_right) {
  return inv_left == S(0) || inv_right == S(0);
}

// pykan's NaN rule for gradients: its bases give NaN gradients at a NaN or infinite x,
// whatever the base function, so g where x is finite, else NaN (x - x).
template <typename T>
inline T nan_unless_finite(T x, T g) {
  return x - x == T(0) ? g : x - x;
}

// One Cox-de Boor step, p = 1..k (The NURBS Book, A2.2): N[0..p-1] = B_{p-1, s-p+1+r}(x)
// on entry, N[0..p] = B_{p, s-p+r}(x) on exit.  left/right[1..p-1] come from the earlier
// steps; this one sets left/right[p].
template <typename V, typename Kn>
PYKAN_INLINE void cox_de_boor_step(const Kn& kn, V x, int p, V* left,
                                                            V* right, V* N) {
  left[p] = kn.left(x, p);
  right[p] = kn.right(x, p);
  V saved = V{};
  for (int r = 0; r < p; ++r) {
    const V temp = N[r] * kn.inv(p, r + 1);
    N[r] = saved + right[r + 1] * temp;
    saved = left[p - r] * temp;
  }
  N[p] = saved;
  if (Kn::kMayRepeat)
    for (int r = 0; r <= p; ++r)
      if (repeated_knot_zero(kn.inv(p, r), kn.inv(p, r + 1))) N[r] = V{};
}

// The first-derivative formula (The NURBS Book, eq. 2.9), r = 0..p, j = s-p+r:
//   dB_{p,j} = p (B_{p-1,j} / (t_{j+p} - t_j) - B_{p-1,j+1} / (t_{j+p+1} - t_{j+1}))
// from lower[r] = B_{p-1, s-p+1+r} (r = 0..p-1); zero where the value is zeroed.  Applied
// to derivatives instead of values it gives the next derivative order.  r runs downwards
// so that D may be lower itself (in place).
template <typename V, typename Kn>
PYKAN_INLINE void derivative_step(const Kn& kn, int p, const V* lower,
                                                           V* D) {
  for (int r = p; r >= 0; --r) {
    V d = V{};
    if (r >= 1) d += lower[r - 1] * kn.dinv(p, r);
    if (r < p) d -= lower[r] * kn.dinv(p, r + 1);
    const bool zeroed = Kn::kMayRepeat && repeated_knot_zero(kn.inv(p, r), kn.inv(p, r + 1));
    D[r] = zeroed ? V{} : d * kn.dscale(p);
  }
}

// Bases of order k at x in span s: N[r] = B_{k, s-k+r}(x), r = 0..k, and with kDeriv
// dN[r] = dB_{k, s-k+r}/dx.  K > 0 fixes the order at compile time (then k == K).
// Entries for bases outside 0..n_basis-1 are meaningless and must be ignored.
template <int K, bool kDeriv, typename V, typename Kn>
PYKAN_INLINE void bases_at(const Kn& kn, V x, int k_runtime, V* N,
                                                    V* dN) {
  constexpr int kCap = (K > 0 ? K : kMaxOrder) + 1;
  const int k = K > 0 ? K : k_runtime;
  V left[kCap], right[kCap];
  V lower[kCap];  // order k-1 bases, for the derivative
  N[0] = V{} + 1;
  for (int p = 1; p <= k; ++p) {
    if constexpr (kDeriv) {
      if (p == k)
        for (int r = 0; r < k; ++r) lower[r] = N[r];
    }
    cox_de_boor_step(kn, x, p, left, right, N);
  }
  if constexpr (kDeriv) derivative_step(kn, k, lower, dN);
}

// Derivative orders d and d+1 of the order-k bases at x (D0[r] = B^(d)_{k,s-k+r}(x), D1
// the same with d+1; all zero past order k): the order k-d-1 bases by the recursion,
// then derivative steps.  D1 null: D0 only.
template <typename V, typename Kn>
inline void derivative_bases_at(const Kn& kn, V x, int k, int d, V* D0, V* D1) {
  if (d > k || (D1 && d == k)) {
    if (d > k)
      for (int r = 0; r <= k; ++r) D0[r] = V{};
    else
      derivative_bases_at(kn, x, k, d, D0, static_cast<V*>(nullptr));
    if (D1)
      for (int r = 0; r <= k; ++r) D1[r] = V{};
    return;
  }
  V left[kMaxOrder + 1], right[kMaxOrder + 1];
  V* shared = D1 ? D1 : D0;  // the order k-d-1 values, then D1's derivative steps
  shared[0] = V{} + 1;
  for (int p = 1; p <= k - d - 1; ++p) cox_de_boor_step(kn, x, p, left, right, shared);
  if (D1)
    for (int r = 0; r < k - d; ++r) D0[r] = D1[r];
  if (k - d >= 1) cox_de_boor_step(kn, x, k - d, left, right, D0);
  for (int p = k - d + 1; p <= k; ++p) derivative_step(kn, p, D0, D0);
  if (D1)
    for (int p = k - d; p <= k; ++p) derivative_step(kn, p, D1, D1);
}
