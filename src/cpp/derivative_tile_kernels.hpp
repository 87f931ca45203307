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

// Stores lanes 0..m-1 of D0 (and D1) to columns q..q+m of tb.N (and tb.dN).
template <typename T, int R>
PYKAN_INLINE void store_lanes(TileBasis<T>& tb, int q, int m, const typename Vec<T>::V* D0,
                              const typename Vec<T>::V* D1) {
  for (int r = 0; r < R; ++r)
    for (int l = 0; l < m; ++l) {
      tb.N[r][q + l] = D0[r][l];
      if (D1) tb.dN[r][q + l] = D1[r][l];
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
        store_lanes<T, K + 1>(tb, q, m, D0, d1);
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
            store_lanes<T, K + 1>(tb, at + q, m, D0, d1);
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
        derivative_backward_tile<T, K>(p, i, *tb, b0, n, grad_y, t0, t1, gw_i);
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
