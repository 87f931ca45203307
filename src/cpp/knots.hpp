// Per-input knot data: the knot span of x, the uniform-spacing hints and the table of
// reciprocal knot differences the Cox-de Boor recursion multiplies by.  Included inside
// one namespace per instruction set (kernels_isa.cpp), so it calls no std templates.
#pragma once

template <typename T>
inline T abs_of(T v) { return v < T(0) ? -v : v; }

// x in [t[0], t[n-1]), false at NaN: outside it every basis is zero (pykan's half-open
// order-0 bases, and its nan_to_num at NaN).
template <typename T>
inline bool inside_grid(T x, T first_knot, T last_knot) {
  return x >= first_knot && x < last_knot;
}

// Knot span s with t[s] <= x < t[s+1], or -1 outside the grid (see inside_grid).
template <typename T>
inline int64_t find_span(T x, const T* t, int64_t n_knots, T uniform_inv_h) {
  if (!inside_grid(x, t[0], t[n_knots - 1])) return -1;
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
// (pykan's initial ones at moderate G) take the uniform-knot bases (UniformKnots), whose
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

// Reciprocal knot differences, so the basis recursion needs no division:
// inv(i, p, j) = 1 / (t[j+p] - t[j]) for p = 1..k, stored for j = -k .. n_knots-1 and
// 0 where j or j+p falls outside the knot vector or the two knots coincide (the zero
// pykan's repeated-knot rule looks for, see cox_de_boor.hpp).  Only bases that do not
// exist (j < 0 or j >= n_basis) ever read the out-of-range zeros.
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
