// Knot search and local B-spline basis evaluation: pykan's Cox-de Boor bases, only the
// k+1 that are non-zero at x.  Included inside one namespace per instruction set
// (kernels_isa.cpp), so it calls no std templates: a template instantiated with AVX-512
// flags could otherwise be merged by the linker into the baseline build.
#pragma once

// Largest order the kernels accept.
constexpr int kMaxOrder = 15;

template <typename T>
inline T abs_of(T v) { return v < T(0) ? -v : v; }

// Knot span s with t[s] <= x < t[s+1] (pykan's half-open order-0 bases), or -1 when x is
// outside [t[0], t[n-1]) or NaN: then every basis is zero, as pykan's nan_to_num makes it.
template <typename T>
inline int64_t find_span(T x, const T* t, int64_t n_knots, T uniform_inv_h) {
  if (!(x >= t[0]) || !(x < t[n_knots - 1])) return -1;
  if (uniform_inv_h > T(0)) {
    // Guess from the uniform spacing, then step to the span the comparisons give
    // (rounding can put the guess one off).
    int64_t s = static_cast<int64_t>((x - t[0]) * uniform_inv_h);
    if (s < 0) s = 0;
    if (s > n_knots - 2) s = n_knots - 2;
    while (s > 0 && x < t[s]) --s;
    while (s < n_knots - 2 && x >= t[s + 1]) ++s;
    return s;
  }
  // Binary search for the last knot <= x among t[0..n_knots-2], branch-free: the trip
  // count depends on n_knots only and the step is a conditional move, so random x costs
  // no mispredictions (which dominated small layers after a grid update).
  int64_t lo = 0, len = n_knots - 1;
  while (len > 1) {
    const int64_t half = len / 2;
    lo = t[lo + half] <= x ? lo + half : lo;
    len -= half;
  }
  return lo;
}

// Reciprocal knot differences, so the basis recursion needs no division:
// inv(i, p, j) = 1 / (t[j+p] - t[j]) for p = 1..k, stored for j = -k .. n_knots-1 and
// 0 where j or j+p falls outside the knot vector or the two knots coincide.  Only bases
// that do not exist (j < 0 or j >= n_basis) ever read those zeros.
template <typename T>
struct KnotTable {
  T* inv;
  int64_t n_knots;
  int k;
  int64_t row() const { return n_knots + k; }
  const T* input(int64_t i) const { return inv + i * k * row(); }
};

template <typename T>
inline void fill_knot_table(const T* t, int64_t n_knots, int k, T* inv_i) {
  const int64_t row = n_knots + k;
  for (int p = 1; p <= k; ++p) {
    T* inv_p = inv_i + (p - 1) * row;
    for (int64_t j = -k; j < n_knots; ++j) {
      T v = T(0);
      if (j >= 0 && j + p < n_knots) {
        const T d = t[j + p] - t[j];
        if (d > T(0)) v = T(1) / d;
      }
      inv_p[j + k] = v;
    }
  }
}

// pykan's B_batch computes (x - t_j)/(t_{j+p} - t_j) * B_{p-1,j} + ... and then
// nan_to_num: where two knots coincide a term is inf*0 or 0/0 = NaN, so the *whole*
// basis value becomes 0 -- even the terms of bases that are otherwise non-zero here.  So
// B_{p,j} is zeroed when 1/(t_{j+p} - t_j) or 1/(t_{j+p+1} - t_{j+1}) is a repeated-knot
// zero.  inv_w[r] is that reciprocal for j = s-p+r (r = 0..p+1): inside the knot vector
// for every basis that exists, so the table's out-of-range zeros never zero one.
template <typename T>
inline void zero_repeated_knot_bases(const T* inv_w, int p, T* N) {
  for (int r = 0; r <= p; ++r) {
    if (inv_w[r] == T(0) || inv_w[r + 1] == T(0)) N[r] = T(0);
  }
}

// One step of the value recursion at x in span s: N[0..p-1] holds the order p-1 bases
// B_{p-1, s-p+1+r}(x) on entry, N[0..p] the order p ones on exit.  left/right[1..p-1] come
// from the earlier steps; this one sets left/right[p].
template <typename T>
inline void basis_order_step(T x, const T* t, int64_t n_knots, const T* inv_i, int64_t s,
                             int k, int p, T* left, T* right, T* N) {
  const int64_t row = n_knots + k;
  // Knot indices are clamped: out-of-range ones only feed bases that do not exist.
  const int64_t lo = s + 1 - p < 0 ? 0 : s + 1 - p;
  const int64_t hi = s + p > n_knots - 1 ? n_knots - 1 : s + p;
  left[p] = x - t[lo];
  right[p] = t[hi] - x;
  // 1/(t[j'+p] - t[j']) for j' = s+1-p+r, the denominator of step r.
  const T* inv_p = inv_i + (p - 1) * row + (s + 1 - p) + k;
  T saved = T(0);
  for (int r = 0; r < p; ++r) {
    const T temp = N[r] * inv_p[r];
    N[r] = saved + right[r + 1] * temp;
    saved = left[p - r] * temp;
  }
  N[p] = saved;
  zero_repeated_knot_bases(inv_i + (p - 1) * row + (s - p) + k, p, N);
}

// Bases of order k at x in span s: N[r] = B_{k, s-k+r}(x), r = 0..k (The NURBS Book,
// A2.2, with the reciprocals from the table).  With dN, also dN[r] = dB_{k, s-k+r}/dx.
// Entries for bases outside 0..n_basis-1 are meaningless and must be ignored.
template <typename T, int K>
inline void local_basis(T x, const T* t, int64_t n_knots, const T* inv_i, int64_t s,
                        int k_runtime, T* N, T* dN) {
  const int k = K > 0 ? K : k_runtime;
  const int64_t row = n_knots + k;
  T left[kMaxOrder + 1], right[kMaxOrder + 1];
  T lower[kMaxOrder + 1];  // order k-1 bases, for the derivative
  N[0] = T(1);
  for (int p = 1; p <= k; ++p) {
    if (p == k && dN) {
      for (int r = 0; r < k; ++r) lower[r] = N[r];
    }
    basis_order_step(x, t, n_knots, inv_i, s, k, p, left, right, N);
  }
  if (dN) {
    // dB_{k,j} = k (B_{k-1,j} / (t_{j+k} - t_j) - B_{k-1,j+1} / (t_{j+k+1} - t_{j+1})),
    // j = s-k+r: B_{k-1,j} is lower[r-1] and B_{k-1,j+1} is lower[r].
    const T* inv_k = inv_i + (k - 1) * row + (s - k) + k;  // inv_k[r] = 1/(t[j+k]-t[j])
    for (int r = 0; r <= k; ++r) {
      T d = T(0);
      if (r >= 1) d += lower[r - 1] * inv_k[r];
      if (r < k) d -= lower[r] * inv_k[r + 1];
      const bool zeroed = inv_k[r] == T(0) || inv_k[r + 1] == T(0);  // value zeroed too
      dN[r] = zeroed ? T(0) : T(k) * d;
    }
  }
}

// Derivative steps p = from..k of The NURBS Book's eq. 2.9 on D (order from-1 quantities
// on entry, r = 0..from-1): dB_{p,j} = p (B_{p-1,j} / (t_{j+p} - t_j) - B_{p-1,j+1} /
// (t_{j+p+1} - t_{j+1})).  A basis is zeroed where pykan zeroes its value (a
// repeated-knot reciprocal), as local_basis does for d = 1.
template <typename T>
inline void derivative_steps(const T* inv_i, int64_t row, int64_t s, int from, int k, T* D) {
  for (int p = from; p <= k; ++p) {
    // inv_p[r] = 1/(t[j+p] - t[j]) for j = s-p+r; D[r-1] holds B_{p-1,j} on entry.
    const T* inv_p = inv_i + (p - 1) * row + (s - p) + k;
    T previous = T(0);  // the old D[r-1]
    for (int r = 0; r <= p; ++r) {
      const T current = r < p ? D[r] : T(0);
      const T v = T(p) * (previous * inv_p[r] - current * inv_p[r + 1]);
      const bool zeroed = inv_p[r] == T(0) || inv_p[r + 1] == T(0);
      D[r] = zeroed ? T(0) : v;
      previous = current;
    }
  }
}

// d-th derivatives of the order-k bases at x in span s: D[r] = B^(d)_{k, s-k+r}(x),
// r = 0..k (zero when d > k): the order k-d bases by the recursion above, then d
// derivative steps.
template <typename T>
inline void local_basis_derivative(T x, const T* t, int64_t n_knots, const T* inv_i,
                                   int64_t s, int k, int d, T* D) {
  if (d > k) {
    for (int r = 0; r <= k; ++r) D[r] = T(0);
    return;
  }
  T left[kMaxOrder + 1], right[kMaxOrder + 1];
  D[0] = T(1);
  for (int p = 1; p <= k - d; ++p) basis_order_step(x, t, n_knots, inv_i, s, k, p, left, right, D);
  derivative_steps(inv_i, n_knots + k, s, k - d + 1, k, D);
}

// D0 = the d-th and D1 = the (d+1)-th derivatives (as local_basis_derivative, the same
// operations), sharing the value recursion up to order k-d-1.
template <typename T>
inline void local_basis_derivative_pair(T x, const T* t, int64_t n_knots, const T* inv_i,
                                        int64_t s, int k, int d, T* D0, T* D1) {
  if (d >= k) {
    local_basis_derivative(x, t, n_knots, inv_i, s, k, d, D0);
    for (int r = 0; r <= k; ++r) D1[r] = T(0);
    return;
  }
  T left[kMaxOrder + 1], right[kMaxOrder + 1];
  D1[0] = T(1);
  for (int p = 1; p <= k - d - 1; ++p) basis_order_step(x, t, n_knots, inv_i, s, k, p, left, right, D1);
  for (int r = 0; r < k - d; ++r) D0[r] = D1[r];
  basis_order_step(x, t, n_knots, inv_i, s, k, k - d, left, right, D0);
  derivative_steps(inv_i, n_knots + k, s, k - d + 1, k, D0);
  derivative_steps(inv_i, n_knots + k, s, k - d, k, D1);
}

// 1/h when the knots of one input are uniform (to 1e-6 of the span), else 0.  Only a
// hint for find_span, which checks against the real knots either way.
template <typename T>
inline T uniform_inverse_step(const T* t, int64_t n_knots) {
  const T span = t[n_knots - 1] - t[0];
  if (!(span > T(0))) return T(0);
  const T h = span / T(n_knots - 1);
  const T tol = span * T(1e-6);
  for (int64_t j = 1; j < n_knots - 1; ++j) {
    if (abs_of(t[j] - (t[0] + T(j) * h)) > tol) return T(0);
  }
  return T(1) / h;
}

// 1/h when every knot lies within 16 ulps *of h* from t0 + j h, else 0.  Such grids
// (pykan's initial ones at moderate G) take the gather-free basis evaluation, whose
// results then differ from the general recursion by rounding only.  The bound is
// relative to h, not to the knots' magnitude: float32 knots at G=1000 sit ~1e-3 h off
// the ideal ones, which would move the bases by as much.
template <typename T>
inline T exact_uniform_inverse_step(const T* t, int64_t n_knots) {
  const T span = t[n_knots - 1] - t[0];
  if (!(span > T(0))) return T(0);
  const T h = span / T(n_knots - 1);
  const T eps = sizeof(T) == 4 ? T(1.1920929e-07) : T(2.220446049250313e-16);
  const T tol = T(16) * eps * h;
  for (int64_t j = 1; j < n_knots - 1; ++j) {
    if (abs_of(t[j] - (t[0] + T(j) * h)) > tol) return T(0);
  }
  return T(1) / h;
}

inline float exp_of(float v) { return __builtin_expf(v); }
inline double exp_of(double v) { return __builtin_exp(v); }

// SiLU as torch computes it (x / (1 + exp(-x))), and its derivative.
template <typename T>
inline T silu(T x) { return x / (T(1) + exp_of(-x)); }

template <typename T>
inline void silu_and_grad(T x, T* value, T* grad) {
  const T sig = T(1) / (T(1) + exp_of(-x));
  *value = x * sig;
  *grad = sig * (T(1) + x * (T(1) - sig));
}
