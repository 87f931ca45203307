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
  // Binary search for the last knot <= x.
  int64_t lo = 0, hi = n_knots - 1;  // t[lo] <= x < t[hi]
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (t[mid] <= x) lo = mid; else hi = mid;
  }
  return lo;
}

// Bases of order k at x in span s: N[r] = B_{k, s-k+r}(x), r = 0..k (The NURBS Book,
// A2.2).  With dN, also dN[r] = dB_{k, s-k+r}/dx from the order k-1 bases.  In a non-empty
// span every denominator here is positive, so pykan's 0/0 -> 0 rule never applies.
template <typename T, int K>
inline void local_basis(T x, const T* t, int64_t s, int k_runtime, T* N, T* dN) {
  const int k = K > 0 ? K : k_runtime;
  T left[kMaxOrder + 1], right[kMaxOrder + 1];
  T lower[kMaxOrder + 1];  // order k-1 bases, for the derivative
  N[0] = T(1);
  for (int p = 1; p <= k; ++p) {
    left[p] = x - t[s + 1 - p];
    right[p] = t[s + p] - x;
    if (p == k && dN) {
      for (int r = 0; r < k; ++r) lower[r] = N[r];
    }
    T saved = T(0);
    for (int r = 0; r < p; ++r) {
      const T temp = N[r] / (right[r + 1] + left[p - r]);
      N[r] = saved + right[r + 1] * temp;
      saved = left[p - r] * temp;
    }
    N[p] = saved;
  }
  if (dN) {
    // dB_{k,j} = k (B_{k-1,j} / (t_{j+k} - t_j) - B_{k-1,j+1} / (t_{j+k+1} - t_{j+1})),
    // j = s-k+r: B_{k-1,j} is lower[r-1] and B_{k-1,j+1} is lower[r].
    for (int r = 0; r <= k; ++r) {
      const int64_t j = s - k + r;
      T d = T(0);
      if (r >= 1) d += lower[r - 1] / (t[j + k] - t[j]);
      if (r < k) d -= lower[r] / (t[j + k + 1] - t[j + 1]);
      dN[r] = T(k) * d;
    }
  }
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

inline float exp_of(float v) { return __builtin_expf(v); }
inline double exp_of(double v) { return __builtin_exp(v); }

// torch's SiLU and its derivative, in the same arithmetic (x * sigmoid(x)).
template <typename T>
inline T silu(T x) { return x / (T(1) + exp_of(-x)); }

template <typename T>
inline T silu_grad(T x) {
  const T sig = T(1) / (T(1) + exp_of(-x));
  return sig * (T(1) + x * (T(1) - sig));
}
