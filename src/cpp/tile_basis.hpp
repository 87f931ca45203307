// Bases of a tile of samples for one input, vectorised across the samples, and the
// per-call knot data they read.  Included once per instruction set by kernels_isa.cpp,
// inside namespace pykan::<isa>, after simd.hpp, spline_basis.hpp and base_fun.hpp.
#pragma once

// Per-input knot data computed once per call: the uniform-step hints and the reciprocal
// knot differences.
template <typename T>
struct KnotData {
  T* inv_h;        // find_span's hint (uniform to 1e-6)
  T* exact_inv_h;  // 1/h where the knots are uniform to rounding, else 0
  unsigned char* repeated;  // the input has two equal adjacent knots
  KnotTable<T> table;
  explicit KnotData(const KanProblem<T>& p) {
    inv_h = alloc_array<T>(p.in);
    exact_inv_h = alloc_array<T>(p.in);
    repeated = static_cast<unsigned char*>(__builtin_malloc(p.in > 0 ? p.in : 1));
    table = KnotTable<T>{alloc_array<T>(p.in * p.k * (p.n_knots + p.k)), p.n_knots, p.k};
#pragma omp parallel for num_threads(p.threads) schedule(static)
    for (int64_t i = 0; i < p.in; ++i) {
      const T* t = p.grid + i * p.n_knots;
      inv_h[i] = uniform_inverse_step(t, p.n_knots);
      exact_inv_h[i] = exact_uniform_inverse_step(t, p.n_knots);
      repeated[i] = 0;
      for (int64_t j = 0; j + 1 < p.n_knots; ++j) repeated[i] |= t[j + 1] == t[j];
      fill_knot_table(t, p.n_knots, p.k, table.inv + i * p.k * table.row());
    }
  }
  ~KnotData() {
    __builtin_free(inv_h);
    __builtin_free(exact_inv_h);
    __builtin_free(repeated);
    __builtin_free(table.inv);
  }
  KnotData(const KnotData&) = delete;
  KnotData& operator=(const KnotData&) = delete;
};

constexpr int kTile = 512;  // most samples per tile (TileBasis capacity)

// Samples of a tile ordered by knot span (counting sort), so that equal spans are
// adjacent; tiles over many knots keep their order (grouping would rarely pay).
constexpr int64_t kMaxSortedKnots = 512;

// Structure of arrays.  span[b]: the knot span of sample b (-1 outside the grid: all bases
// zero, N meaningless).  Compile-time orders (tile_basis) list the samples by span,
// order[q] being the q-th, and store their bases in that order: N[r][q] =
// B_{k, span[b]-k+r}(x[b]) for b = order[q].  The runtime order (tile_basis_runtime)
// stores N[r][b] in sample order and sets no order.
template <typename T>
struct TileBasis {
  T x[kTile];
  T u[kTile];  // (x - t[span]) / h, for uniform knots
  int64_t span[kTile];
  int order[kTile];
  int count[kMaxSortedKnots + 2];  // sort_by_span's scratch
  T N[kMaxOrder + 1][kTile];
  T dN[kMaxOrder + 1][kTile];
  // The caller's base(x) and base'(x) for x[b], copied in sample order with x (read in
  // span order, the strided originals missed the cache on most samples).
  T base_values[kTile];
  T base_grads[kTile];
  bool has_base_values, has_base_grads;
};

// base(x) of sample b: the caller's precomputed value when given (torch's vectorised
// SiLU), else SiLU computed here; base_and_grad adds base'(x).
template <typename T>
PYKAN_INLINE T base_value(const TileBasis<T>& tb, int b) {
  return tb.has_base_values ? tb.base_values[b] : silu(tb.x[b]);
}

template <typename T>
PYKAN_INLINE void base_and_grad(const TileBasis<T>& tb, int b, T* value, T* grad) {
  if (tb.has_base_values && tb.has_base_grads) {
    *value = tb.base_values[b];
    *grad = tb.base_grads[b];
  } else {
    silu_and_grad(tb.x[b], value, grad);
  }
}

inline void sort_by_span(const int64_t* span, int n, int64_t n_knots, int* order, int* count) {
  if (n_knots > kMaxSortedKnots) {
    for (int b = 0; b < n; ++b) order[b] = b;
    return;
  }
  const int keys = static_cast<int>(n_knots);  // span + 1 in [0, n_knots - 1]
  for (int c = 0; c <= keys; ++c) count[c] = 0;
  for (int b = 0; b < n; ++b) ++count[span[b] + 1 + 1];
  for (int c = 1; c <= keys; ++c) count[c] += count[c - 1];
  for (int b = 0; b < n; ++b) order[count[span[b] + 1]++] = b;
}

// f(at, run, s) for each run order[at .. at+run) of samples with one span s.
template <typename F>
PYKAN_INLINE void for_each_span_run(const int64_t* span,
                                                             const int* order, int n, F f) {
  for (int at = 0; at < n;) {
    const int64_t s = span[order[at]];
    int run = 1;
    while (at + run < n && span[order[at + run]] == s) ++run;
    f(at, run, s);
    at += run;
  }
}

// bases_at for the m <= W::L samples order[q..q+m) of one span, one per lane of W's
// vector (Vec<T>, or Row<T> for runs that fit one register), at arg[order[q + l]] (x, or
// u for uniform knots; unused lanes run on pad), stored to columns q..q+m of N and dN.
template <typename T, int K, bool kDeriv, typename W, typename Kn>
PYKAN_INLINE void recursion_block(TileBasis<T>& tb, const T* arg, int q, int m, T pad, const Kn& kn) {
  using V = typename W::V;
  using U = typename W::U;
  constexpr int L = W::L;
  V x = V{} + pad;
  for (int l = 0; l < m; ++l) x[l] = arg[tb.order[q + l]];
  V N[K + 1], dN[K + 1];
  bases_at<K, kDeriv>(kn, x, K, N, dN);
  if (m == L) {
    for (int r = 0; r <= K; ++r) {
      *reinterpret_cast<U*>(&tb.N[r][q]) = N[r];
      if (kDeriv) *reinterpret_cast<U*>(&tb.dN[r][q]) = dN[r];
    }
    return;
  }
  for (int r = 0; r <= K; ++r)
    for (int l = 0; l < m; ++l) {
      tb.N[r][q + l] = N[r][l];
      if (kDeriv) tb.dN[r][q + l] = dN[r][l];
    }
}

// recursion_block over the run order[at..at+run): full vectors, then the rest in one
// register when it fits (short runs: many knot spans per tile).
template <typename T, int K, bool kDeriv, typename Kn>
PYKAN_INLINE void recursion_run(TileBasis<T>& tb, const T* arg, int at, int run, T pad,
                                const Kn& kn) {
  int q = 0;
  for (; q + Vec<T>::L <= run; q += Vec<T>::L)
    recursion_block<T, K, kDeriv, Vec<T>>(tb, arg, at + q, Vec<T>::L, pad, kn);
  if (q == run) return;
  if (run - q <= Row<T>::L)
    recursion_block<T, K, kDeriv, Row<T>>(tb, arg, at + q, run - q, pad, kn);
  else
    recursion_block<T, K, kDeriv, Vec<T>>(tb, arg, at + q, run - q, pad, kn);
}

// Knot vectors up to this long are searched by counting, in SIMD lanes, the knots <= x;
// longer ones by find_span, one sample at a time (a binary search, or for uniform knots a
// guess and its correction loops).  Uniform knots are counted up to kCountedUniformKnots:
// at 4096x256x256 (1 thread, AVX-512) that took the forward from 32.7 to 30.4 ms at G=5
// and 34.9 to 32.5 at G=20, but the backward at G=50 (57 knots) from 95 to 100.
constexpr int64_t kCountedKnots = 64;
constexpr int64_t kCountedUniformKnots = 32;

// span[b] for x[0..n): find_span's result (the last knot <= x below the final one, -1
// outside the grid).
template <typename T>
inline void tile_spans(TileBasis<T>& tb, int n, const T* t, int64_t nk, T inv_h) {
  if (nk > (inv_h > T(0) ? kCountedUniformKnots : kCountedKnots)) {
    for (int b = 0; b < n; ++b) tb.span[b] = find_span(tb.x[b], t, nk, inv_h);
    return;
  }
  using V = typename Vec<T>::V;
  constexpr int L = Vec<T>::L;
  const T lo = t[0], hi = t[nk - 1];
  // Four vectors of samples at a time: four independent sums per knot.
  int b = 0;
  for (; b + 4 * L <= n; b += 4 * L) {
    V x[4], count[4];
    for (int v = 0; v < 4; ++v) {
      x[v] = vload(tb.x + b + v * L);
      count[v] = V{};
    }
    for (int64_t j = 1; j < nk - 1; ++j) {
      const T tj = t[j];
      for (int v = 0; v < 4; ++v) count[v] += x[v] >= tj ? V{} + 1 : V{};  // sorted: a prefix
    }
    for (int v = 0; v < 4; ++v)
      for (int l = 0; l < L; ++l) {
        const T xl = x[v][l];
        tb.span[b + v * L + l] = inside_grid(xl, lo, hi) ? static_cast<int64_t>(count[v][l]) : -1;
      }
  }
  for (; b < n; ++b) tb.span[b] = find_span(tb.x[b], t, nk, inv_h);
}

// Fills span and order for x[0..n) and N (and dN) in span order (see TileBasis).  Spans
// are searched per sample against the real knots; the recursion then runs across samples
// in SIMD lanes: with uniform knots on (x - t_s)/h alone; otherwise one run of equal
// spans at a time (RunKnots); past kMaxSortedKnots knots (runs too short to pay) by
// local_basis, one sample at a time.
template <typename T, int K, bool kDeriv>
inline void tile_basis(TileBasis<T>& tb, int n, const T* t, int64_t nk, const T* inv_i,
                       T inv_h, T exact_inv_h, bool repeated) {
  tile_spans(tb, n, t, nk, inv_h);
  sort_by_span(tb.span, n, nk, tb.order, tb.count);
  if (exact_inv_h > T(0)) {
    for (int b = 0; b < n; ++b)
      tb.u[b] = tb.span[b] >= 0 ? (tb.x[b] - t[tb.span[b]]) * exact_inv_h : T(0);
    // Span-independent: every block of L samples in span order is one vector recursion
    // (GCC left the per-sample loop scalar).
    const UniformKnots<T> kn{exact_inv_h};
    for (int q = 0; q < n; q += Vec<T>::L) {
      const int m = n - q < Vec<T>::L ? n - q : Vec<T>::L;
      recursion_block<T, K, kDeriv, Vec<T>>(tb, tb.u, q, m, T(0), kn);
    }
    return;
  }
  if (nk <= kMaxSortedKnots) {
    for_each_span_run(tb.span, tb.order, n, [&](int at, int run, int64_t s) PYKAN_LAMBDA_INLINE {
      if (s < 0) return;
      const T pad = t[s];  // inside the span
      if (repeated)
        recursion_run<T, K, kDeriv>(tb, tb.x, at, run, pad, RunKnots<T, K, true>(t, nk, inv_i, s));
      else
        recursion_run<T, K, kDeriv>(tb, tb.x, at, run, pad, RunKnots<T, K, false>(t, nk, inv_i, s));
    });
    return;
  }
  // Past kMaxSortedKnots the order is the identity: the scalar recursion per sample.
  T N[K + 1], dN[K + 1];
  for (int q = 0; q < n; ++q) {
    if (tb.span[q] < 0) continue;  // outside: N is not read
    local_basis<T, K>(tb.x[q], t, nk, inv_i, tb.span[q], K, N,
                      kDeriv ? dN : static_cast<T*>(nullptr));
    for (int r = 0; r <= K; ++r) {
      tb.N[r][q] = N[r];
      if (kDeriv) tb.dN[r][q] = dN[r];
    }
  }
}

// Runtime order (K == 0): the scalar recursion per sample.
template <typename T, bool kDeriv>
inline void tile_basis_runtime(TileBasis<T>& tb, int n, const T* t, int64_t nk,
                               const T* inv_i, T inv_h, int k) {
  T N[kMaxOrder + 1], dN[kMaxOrder + 1];
  for (int b = 0; b < n; ++b) {
    const int64_t s = find_span(tb.x[b], t, nk, inv_h);
    tb.span[b] = s;
    if (s < 0) continue;
    local_basis<T, 0>(tb.x[b], t, nk, inv_i, s, k, N, kDeriv ? dN : static_cast<T*>(nullptr));
    for (int r = 0; r <= k; ++r) {
      tb.N[r][b] = N[r];
      if (kDeriv) tb.dN[r][b] = dN[r];
    }
  }
}

template <typename T, int K, bool kDeriv>
inline void tile_bases_for_input(const KanProblem<T>& p, const KnotData<T>& knots,
                                 TileBasis<T>& tb, int64_t b0, int n, int64_t i) {
  const int64_t at = b0 * p.in + i;
  for (int b = 0; b < n; ++b) tb.x[b] = p.x[at + b * p.in];
  tb.has_base_values = p.base_values != nullptr;
  tb.has_base_grads = p.base_grads != nullptr;
  if (tb.has_base_values)
    for (int b = 0; b < n; ++b) tb.base_values[b] = p.base_values[at + b * p.in];
  if (tb.has_base_grads)
    for (int b = 0; b < n; ++b) tb.base_grads[b] = p.base_grads[at + b * p.in];
  const T* t = p.grid + i * p.n_knots;
  if constexpr (K > 0)
    tile_basis<T, K, kDeriv>(tb, n, t, p.n_knots, knots.table.input(i), knots.inv_h[i],
                             knots.exact_inv_h[i], knots.repeated[i] != 0);
  else
    tile_basis_runtime<T, kDeriv>(tb, n, t, p.n_knots, knots.table.input(i), knots.inv_h[i],
                                  p.k);
}
