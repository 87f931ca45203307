// Knot-access policies of the Cox-de Boor templates (cox_de_boor.hpp, which lists the
// interface): where one knot span's knots and reciprocals come from.  Included inside one
// namespace per instruction set (kernels_isa.cpp): no std templates.
#pragma once

// One sample: knots and reciprocals read from the knot vector and its KnotTable.  Knot
// indices are clamped: out-of-range ones only feed bases that do not exist.
template <typename T>
struct TableKnots {
  static constexpr bool kMayRepeat = true;
  const T* t;
  int64_t n_knots;
  const T* inv_i;  // KnotTable::input(i)
  int64_t s;
  int k;
  T left_knot(int j) const { return s + 1 - j < 0 ? t[0] : t[s + 1 - j]; }
  T right_knot(int j) const { return s + j > n_knots - 1 ? t[n_knots - 1] : t[s + j]; }
  T left(T x, int j) const { return x - left_knot(j); }
  T right(T x, int j) const { return right_knot(j) - x; }
  T inv(int p, int i) const { return inv_i[(p - 1) * (n_knots + k) + (s - p) + k + i]; }
  T dinv(int p, int i) const { return inv(p, i); }
  T dscale(int p) const { return T(p); }
};

// A run of samples in one span s, evaluated a vector at a time: the knots and reciprocals
// are copied once per run and enter every lane as the same scalars (a per-lane gather of
// each of them cost half the time).  kRepeat false: the input has no repeated knots.
template <typename T, int K, bool kRepeat>
struct RunKnots {
  static constexpr bool kMayRepeat = kRepeat;
  T lo[K + 1], hi[K + 1];  // t[s+1-j] and t[s+j], j = 1..K, clamped as TableKnots
  T invs[K + 1][K + 2];    // invs[p][i] = TableKnots::inv(p, i)
  RunKnots(const T* t, int64_t n_knots, const T* inv_i, int64_t s) {
    const TableKnots<T> table{t, n_knots, inv_i, s, K};
    for (int j = 1; j <= K; ++j) {
      lo[j] = table.left_knot(j);
      hi[j] = table.right_knot(j);
    }
    for (int p = 1; p <= K; ++p)
      for (int i = 0; i <= p + 1; ++i) invs[p][i] = table.inv(p, i);
  }
  template <typename V>
  V left(V x, int j) const { return x - lo[j]; }
  template <typename V>
  V right(V x, int j) const { return hi[j] - x; }
  T inv(int p, int i) const { return invs[p][i]; }
  T dinv(int p, int i) const { return invs[p][i]; }
  T dscale(int p) const { return T(p); }
};

// Uniform knots t_j = t_0 + j h, in units of h: x is u = (x - t_s) / h in [0, 1), so
// x - t[s+1-j] = (u + j - 1) h and t[s+j] - x = (j - u) h, and every knot difference of
// order p is p h.  The h's cancel in the values; the derivative gains 1/h.
template <typename T>
struct UniformKnots {
  static constexpr bool kMayRepeat = false;
  T inv_h;
  template <typename V>
  V left(V u, int j) const { return u + T(j - 1); }
  template <typename V>
  V right(V u, int j) const { return T(j) - u; }
  T inv(int p, int) const { return T(1) / T(p); }
  T dinv(int, int) const { return T(1); }
  T dscale(int) const { return inv_h; }
};
