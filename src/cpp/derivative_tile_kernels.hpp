// The derivative-order contractions of derivative_kernels.hpp (PINN derivatives), over
// tiles of samples like the layer kernels: per input, a tile's knot spans are found and
// sorted once, and the d-th (and (d+1)-th) derivative bases are computed a SIMD vector of
// samples at a time (the span's knots broadcast, or in units of h on uniform knots) by
// cox_de_boor.hpp's derivative_bases_at.  Included once per instruction set by
// kernels_isa.cpp, inside namespace pykan::<isa>, after tile_basis.hpp.
#pragma once

// The layer kernels' per-call knot data (KnotData) reads a KanProblem.
template <typename T>
inline KanProblem<T> as_layer_problem(const DerivativeProblem<T>& p) {
  return KanProblem<T>{p.x, p.grid, p.spline_weight, nullptr, p.batch, p.in, p.out, p.n_knots,
                       p.k, BaseFun::kNone, p.threads};
}

// Stores D0 (and D1) to columns q..q+L of tb.N (and tb.dN), whole vectors: lanes m..L-1
// land on later columns, which a later block overwrites (blocks go in column order) or
// nobody reads (outside the grid).  A per-lane store of m lanes became a `rep movs`.
// Needs q + L <= kTile: the derivative tiles hold at most kDerivativeTile samples.
template <typename T, int R>
PYKAN_INLINE void store_lanes(TileBasis<T>& tb, int q, const typename Vec<T>::V* D0,
                              const typename Vec<T>::V* D1) {
  using U = typename Vec<T>::U;
  for (int r = 0; r < R; ++r) {
    *reinterpret_cast<U*>(&tb.N[r][q]) = D0[r];
    if (D1) *reinterpret_cast<U*>(&tb.dN[r][q]) = D1[r];
  }
}

// For x[0..n) of one input: span and order as tile_basis, and in span order tb.N[r][q] =
// B^(d)_{k, s-k+r}(x[b]) and (pair) tb.dN[r][q] = B^(d+1)_{k, s-k+r}(x[b]), b = order[q].
// K > 0: the order at compile time; K == 0: any order, one sample at a time, sample order.
template <typename T, int K>
inline void tile_derivative_bases(TileBasis<T>& tb, int n, const T* t, int64_t nk,
                                  const T* inv_i, T inv_h, T exact_inv_h, bool repeated, int k,
                                  int d, bool pair) {
  if constexpr (K == 0) {
    T D0[kMaxOrder + 1], D1[kMaxOrder + 1];
    for (int b = 0; b < n; ++b) {
      const int64_t s = find_span(tb.x[b], t, nk, inv_h);
      tb.span[b] = s;
      tb.order[b] = b;
      if (s < 0) continue;
      derivative_bases_at(TableKnots<T>{t, nk, inv_i, s, k}, tb.x[b], k, d, D0,
                          pair ? D1 : static_cast<T*>(nullptr));
      for (int r = 0; r <= k; ++r) {
        tb.N[r][b] = D0[r];
        if (pair) tb.dN[r][b] = D1[r];
      }
    }
  } else {
    using V = typename Vec<T>::V;
    constexpr int L = Vec<T>::L;
    tile_spans(tb, n, t, nk, inv_h);
    sort_by_span(tb.span, n, nk, tb.order, tb.count);
    V D0[K + 1], D1[K + 1];
    V* d1 = pair ? D1 : static_cast<V*>(nullptr);
    if (exact_inv_h > T(0)) {
      // Uniform knots: every sample's bases from u = (x - t_s) / h alone, in any order.
      for (int b = 0; b < n; ++b)
        tb.u[b] = tb.span[b] >= 0 ? (tb.x[b] - t[tb.span[b]]) * exact_inv_h : T(0);
      const UniformKnots<T> kn{exact_inv_h};
      for (int q = 0; q < n; q += L) {
        const int m = n - q < L ? n - q : L;
        V u = V{};
        for (int l = 0; l < m; ++l) u[l] = tb.u[tb.order[q + l]];
        derivative_bases_at(kn, u, K, d, D0, d1);
        store_lanes<T, K + 1>(tb, q, D0, d1);
      }
      return;
    }
    if (nk <= kMaxSortedKnots) {
      for_each_span_run(tb.span, tb.order, n, [&](int at, int run, int64_t s) PYKAN_LAMBDA_INLINE {
        if (s < 0) return;
        const T pad = t[s];  // inside the span
        const auto blocks = [&](const auto& kn) PYKAN_LAMBDA_INLINE {
          for (int q = 0; q < run; q += L) {
            const int m = run - q < L ? run - q : L;
            V x = vbroadcast(pad);
            for (int l = 0; l < m; ++l) x[l] = tb.x[tb.order[at + q + l]];
            derivative_bases_at(kn, x, K, d, D0, d1);
            store_lanes<T, K + 1>(tb, at + q, D0, d1);
          }
        };
        if (repeated)
          blocks(RunKnots<T, K, true>(t, nk, inv_i, s));
        else
          blocks(RunKnots<T, K, false>(t, nk, inv_i, s));
      });
      return;
    }
    // Past kMaxSortedKnots the order is the identity: one sample at a time.
    T S0[K + 1], S1[K + 1];
    for (int q = 0; q < n; ++q) {
      const int64_t s = tb.span[q];
      if (s < 0) continue;
      derivative_bases_at(TableKnots<T>{t, nk, inv_i, s, K}, tb.x[q], K, d, S0,
                          pair ? S1 : static_cast<T*>(nullptr));
      for (int r = 0; r <= K; ++r) {
        tb.N[r][q] = S0[r];
        if (pair) tb.dN[r][q] = S1[r];
      }
    }
  }
}

template <typename T>
inline void load_input_column(const DerivativeProblem<T>& p, TileBasis<T>& tb, int64_t b0,
                              int n, int64_t i) {
  for (int b = 0; b < n; ++b) tb.x[b] = p.x[(b0 + b) * p.in + i];
}

template <typename T, int K>
inline void derivative_tile_for_input(const DerivativeProblem<T>& p, const KnotData<T>& knots,
                                      TileBasis<T>& tb, int64_t b0, int n, int64_t i,
                                      bool pair) {
  load_input_column(p, tb, b0, n, i);
  tile_derivative_bases<T, K>(tb, n, p.grid + i * p.n_knots, p.n_knots, knots.table.input(i),
                              knots.inv_h[i], knots.exact_inv_h[i], knots.repeated[i] != 0,
                              p.k, p.order, pair);
}

constexpr int64_t kDerivativeTile = 256;  // samples per tile

template <typename T>
inline T dot_of(const T* a, const T* b, int64_t n) {
  T acc = T(0);
  for (int64_t o = 0; o < n; ++o) acc += a[o] * b[o];
  return acc;
}

// y rows of a tile += row_scale * sum_j W[i, j] B^(d)_j(x), for every input in order.
template <typename T, int K>
void derivative_forward_k(const DerivativeProblem<T>& p, T* y) {
  const KanProblem<T> lp = as_layer_problem(p);
  const KnotData<T> knots(lp);
  const int k = K > 0 ? K : p.k;
  const int64_t nb = p.n_basis(), out = p.out, in = p.in;
  const int64_t n_tiles = (p.batch + kDerivativeTile - 1) / kDerivativeTile;
#pragma omp parallel num_threads(p.threads)
  {
    TileBasis<T>* tb = static_cast<TileBasis<T>*>(__builtin_malloc(sizeof(TileBasis<T>)));
#pragma omp for schedule(static)
    for (int64_t tile = 0; tile < n_tiles; ++tile) {
      const int64_t b0 = tile * kDerivativeTile;
      const int n = static_cast<int>(p.batch - b0 < kDerivativeTile ? p.batch - b0 : kDerivativeTile);
      zero_array(y + b0 * out, n * out);
      for (int64_t i = 0; i < in; ++i) {
        derivative_tile_for_input<T, K>(p, knots, *tb, b0, n, i, false);
        const T* wi = p.spline_weight + i * nb * out;
        for (int q = 0; q < n; ++q) {
          const int b = tb->order[q];
          const int64_t s = tb->span[b];
          if (s < 0) continue;
          const T scale = p.row_scale ? p.row_scale[(b0 + b) * in + i] : T(1);
          T* yb = y + (b0 + b) * out;
          for (int r = 0; r <= k; ++r) {
            const int64_t j = s - k + r;
            if (j < 0 || j >= nb) continue;  // no coefficient past the ends
            axpy(yb, scale * tb->N[r][q], wi + j * out, out);
          }
        }
      }
    }
    __builtin_free(tb);
  }
}

// One tile of input i: T_d, T_d+1 (t0, t1: null skips) and the weight-gradient rows gw_i.
template <typename T, int K>
inline void derivative_backward_tile(const DerivativeProblem<T>& p, int64_t i,
                                     const TileBasis<T>& tb, int64_t b0, int n, const T* grad_y,
                                     T* t0, T* t1, T* gw_i) {
  const int k = K > 0 ? K : p.k;
  const int64_t nb = p.n_basis(), out = p.out, in = p.in;
  const T* wi = p.spline_weight + i * nb * out;
  const bool want_t = t0 || t1;
  for (int q = 0; q < n; ++q) {
    const int b = tb.order[q];
    const int64_t row = b0 + b, s = tb.span[b];
    const T* gy = grad_y + row * out;
    T v0 = T(0), v1 = T(0);
    if (s >= 0) {
      const T scale = p.row_scale ? p.row_scale[row * in + i] : T(1);
      for (int r = 0; r <= k; ++r) {
        const int64_t j = s - k + r;
        if (j < 0 || j >= nb) continue;
        if (want_t) {
          const T g = dot_of(wi + j * out, gy, out);
          v0 += tb.N[r][q] * g;
          if (t1) v1 += tb.dN[r][q] * g;
        }
        if (gw_i) axpy(gw_i + j * out, scale * tb.N[r][q], gy, out);
      }
    }
    const T x = tb.x[b];
    if (t0) t0[row * in + i] = p.order == 0 ? v0 : nan_unless_finite(x, v0);
    if (t1) t1[row * in + i] = nan_unless_finite(x, v1);
  }
}

constexpr int64_t kNarrowOut = 8;  // outputs up to which the backward tile is the narrow one

// Lanes 0..m-1 of the L values at src, the others 0: one full vector load (src must have
// L readable values; a per-lane copy of m became a `rep movs`, most of the tile's time).
template <typename T>
PYKAN_INLINE typename Vec<T>::V first_lanes(const T* src, int m) {
  using V = typename Vec<T>::V;
  constexpr int L = Vec<T>::L;
  const V v = *reinterpret_cast<const typename Vec<T>::U*>(src);
  if (m == L) return v;
  V lane;
  for (int l = 0; l < L; ++l) lane[l] = T(l);
  const auto keep = lane < (V{} + T(m));  // all-ones bits in the kept lanes
  using Bits = decltype(keep);
  return (V)((Bits)v & keep);  // vector casts reinterpret the bits
}

// The narrow tile reads whole vectors of tb.N from any column below kDerivativeTile.
static_assert(kDerivativeTile + Vec<double>::L <= kTile && kDerivativeTile + Vec<float>::L <= kTile,
              "TileBasis rows too short for the narrow tile's vector loads");

// derivative_backward_tile for out <= kNarrowOut, where the scalar loops over out cost
// more than their multiply-adds: per run of samples with one span (the same k+1 weight
// rows, kept in registers), a SIMD vector of samples at a time, T_d and T_d+1 from the
// rows broadcast, and the weight gradient summed per lane over the run, then across
// lanes in a fixed order.  O = out at compile time (runtime loops over out kept the
// accumulators out of registers: block copies took most of the time).
template <typename T, int K, int O>
inline void derivative_backward_tile_narrow(const DerivativeProblem<T>& p, int64_t i,
                                            const TileBasis<T>& tb, int64_t b0, int n,
                                            const T* grad_y, T* t0, T* t1, T* gw_i) {
  using V = typename Vec<T>::V;
  constexpr int L = Vec<T>::L;
  const int64_t nb = p.n_basis(), in = p.in;
  const T* wi = p.spline_weight + i * nb * O;
  for_each_span_run(tb.span, tb.order, n, [&](int at, int run, int64_t s) PYKAN_LAMBDA_INLINE {
    if (s < 0) {  // outside the grid: the bases are 0
      for (int q = at; q < at + run; ++q) {
        const int b = tb.order[q];
        const int64_t row = b0 + b;
        if (t0) t0[row * in + i] = p.order == 0 ? T(0) : nan_unless_finite(tb.x[b], T(0));
        if (t1) t1[row * in + i] = nan_unless_finite(tb.x[b], T(0));
      }
      return;
    }
    T w[K + 1][O];  // weight rows s-k .. s; 0 past the ends (no coefficient)
    for (int r = 0; r <= K; ++r) {
      const int64_t j = s - K + r;
      for (int o = 0; o < O; ++o) w[r][o] = j >= 0 && j < nb ? wi[j * O + o] : T(0);
    }
    V acc[K + 1][O];
    if (gw_i)
      for (int r = 0; r <= K; ++r)
        for (int o = 0; o < O; ++o) acc[r][o] = V{};
    for (int q0 = 0; q0 < run; q0 += L) {
      const int m = run - q0 < L ? run - q0 : L;
      V gy[O], scale = V{} + T(1);
      for (int o = 0; o < O; ++o) gy[o] = V{};  // unused lanes: 0, add nothing to acc
      for (int l = 0; l < m; ++l) {
        const int64_t row = b0 + tb.order[at + q0 + l];
        for (int o = 0; o < O; ++o) gy[o][l] = grad_y[row * O + o];
        if (p.row_scale) scale[l] = p.row_scale[row * in + i];
      }
      V N[K + 1], dN[K + 1];
      for (int r = 0; r <= K; ++r) {
        N[r] = first_lanes(&tb.N[r][at + q0], m);
        dN[r] = t1 ? first_lanes(&tb.dN[r][at + q0], m) : V{};
      }
      if (t0 || t1) {
        V v0 = V{}, v1 = V{};
        for (int r = 0; r <= K; ++r) {
          V g = V{};
          for (int o = 0; o < O; ++o) g += w[r][o] * gy[o];
          v0 += N[r] * g;
          if (t1) v1 += dN[r] * g;
        }
        for (int l = 0; l < m; ++l) {
          const int b = tb.order[at + q0 + l];
          const int64_t row = b0 + b;
          if (t0) t0[row * in + i] = p.order == 0 ? v0[l] : nan_unless_finite(tb.x[b], v0[l]);
          if (t1) t1[row * in + i] = nan_unless_finite(tb.x[b], v1[l]);
        }
      }
      if (gw_i)
        for (int r = 0; r <= K; ++r) {
          const V sn = N[r] * scale;
          for (int o = 0; o < O; ++o) acc[r][o] += sn * gy[o];
        }
    }
    if (gw_i)
      for (int r = 0; r <= K; ++r) {
        const int64_t j = s - K + r;
        if (j < 0 || j >= nb) continue;
        for (int o = 0; o < O; ++o) gw_i[j * O + o] += Vec<T>::hsum(acc[r][o]);
      }
  });
}

// The narrow tile for out <= kNarrowOut (k at compile time), else the per-sample one.
template <typename T, int K>
inline void derivative_backward_tile_for(const DerivativeProblem<T>& p, int64_t i,
                                         const TileBasis<T>& tb, int64_t b0, int n,
                                         const T* grad_y, T* t0, T* t1, T* gw_i) {
  if constexpr (K > 0) {
    switch (p.out) {
#define PYKAN_NARROW(O) \
      case O: return derivative_backward_tile_narrow<T, K, O>(p, i, tb, b0, n, grad_y, t0, t1, gw_i);
      PYKAN_NARROW(1) PYKAN_NARROW(2) PYKAN_NARROW(3) PYKAN_NARROW(4)
      PYKAN_NARROW(5) PYKAN_NARROW(6) PYKAN_NARROW(7) PYKAN_NARROW(8)
#undef PYKAN_NARROW
      default: break;
    }
    static_assert(kNarrowOut == 8, "the cases above list out = 1 .. kNarrowOut");
  }
  derivative_backward_tile<T, K>(p, i, tb, b0, n, grad_y, t0, t1, gw_i);
}

// With the weight gradient each input owns its rows (one thread sums them over the batch
// in a fixed order); T alone splits (input, tile) pairs.  Thread count never changes a bit.
template <typename T, int K>
void derivative_backward_k(const DerivativeProblem<T>& p, const T* grad_y, T* t0, T* t1,
                           T* grad_weight) {
  const KanProblem<T> lp = as_layer_problem(p);
  const KnotData<T> knots(lp);
  const int64_t nb = p.n_basis(), out = p.out, in = p.in;
  const int64_t n_tiles = (p.batch + kDerivativeTile - 1) / kDerivativeTile;
  if (grad_weight) zero_array(grad_weight, in * nb * out);
  const int64_t items = grad_weight ? in : in * n_tiles;
#pragma omp parallel num_threads(p.threads)
  {
    TileBasis<T>* tb = static_cast<TileBasis<T>*>(__builtin_malloc(sizeof(TileBasis<T>)));
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t i = grad_weight ? item : item / n_tiles;
      const int64_t first = grad_weight ? 0 : item % n_tiles;
      const int64_t last = grad_weight ? n_tiles : first + 1;
      T* gw_i = grad_weight ? grad_weight + i * nb * out : nullptr;
      for (int64_t tile = first; tile < last; ++tile) {
        const int64_t b0 = tile * kDerivativeTile;
        const int n = static_cast<int>(p.batch - b0 < kDerivativeTile ? p.batch - b0 : kDerivativeTile);
        derivative_tile_for_input<T, K>(p, knots, *tb, b0, n, i, t1 != nullptr);
        derivative_backward_tile_for<T, K>(p, i, *tb, b0, n, grad_y, t0, t1, gw_i);
      }
    }
    __builtin_free(tb);
  }
}

// Orders 1..5 at compile time (SIMD tiles), any other by the per-sample path.
template <typename T>
void derivative_forward(const DerivativeProblem<T>& p, T* y) {
  switch (p.k) {
    case 1: return derivative_forward_k<T, 1>(p, y);
    case 2: return derivative_forward_k<T, 2>(p, y);
    case 3: return derivative_forward_k<T, 3>(p, y);
    case 4: return derivative_forward_k<T, 4>(p, y);
    case 5: return derivative_forward_k<T, 5>(p, y);
    default: return derivative_forward_k<T, 0>(p, y);
  }
}

template <typename T>
void derivative_backward(const DerivativeProblem<T>& p, const T* grad_y, T* t0, T* t1,
                         T* grad_weight) {
  switch (p.k) {
    case 1: return derivative_backward_k<T, 1>(p, grad_y, t0, t1, grad_weight);
    case 2: return derivative_backward_k<T, 2>(p, grad_y, t0, t1, grad_weight);
    case 3: return derivative_backward_k<T, 3>(p, grad_y, t0, t1, grad_weight);
    case 4: return derivative_backward_k<T, 4>(p, grad_y, t0, t1, grad_weight);
    case 5: return derivative_backward_k<T, 5>(p, grad_y, t0, t1, grad_weight);
    default: return derivative_backward_k<T, 0>(p, grad_y, t0, t1, grad_weight);
  }
}
