// Fused KAN-layer backward over local B-spline support: grad_x and the weight gradients
// in O(batch * in * out * (k + 2)), independent of G.  Included once per instruction set
// by kernels_isa.cpp, inside namespace pykan::<isa>, after tile_basis.hpp and
// row_passes.hpp.
#pragma once

// Scales of sample b = order[q] (k+1 spline rows, then the base row): n = B_j(x) or
// base(x) for the weight gradient, dn = dB_j/dx or base'(x) for grad_x.  Rows past the
// basis ends get 0.
template <typename T, int K, bool kSilu>
PYKAN_INLINE void sample_scales(const TileBasis<T>& tb, int q, int b, int k, int64_t nb, T* n, T* dn) {
  const int64_t s = tb.span[b];
  for (int r = 0; r <= k; ++r) {
    const int64_t j = s - k + r;
    const bool ok = j >= 0 && j < nb;
    n[r] = ok ? tb.N[r][q] : T(0);
    dn[r] = ok ? tb.dN[r][q] : T(0);
  }
  if (kSilu) base_and_grad(tb, b, &n[k + 1], &dn[k + 1]);
}

// All samples of a tile for one input i: grad_x[b] and the gradient-row updates.
template <typename T, int K, bool kSilu, bool kUpdate>
void backward_tile_input(const KanProblem<T>& p, int64_t i, const TileBasis<T>& tb, int n,
                         const T* dy0, T* dx_col, T* gw_i, T* gb_i, const T* zero_row,
                         T* scratch_row) {
  constexpr int R = K + 1 + (kSilu ? 1 : 0);
  constexpr int kGroup = backward_span_group<R>();
  const int k = K;
  const int64_t out = p.out, nb = p.n_knots - k - 1;
  const T* wi = p.spline_weight + i * nb * out;
  const T* wb = p.base_weight + i * out;
  const int* order = tb.order;
  for_each_span_run(tb.span, order, n, [&](int at, int run, int64_t s) PYKAN_LAMBDA_INLINE {
    if (s < 0) {
      // Outside the grid: only the base row.
      for (int q = 0; q < run; ++q) {
        const int b = order[at + q];
        T val = T(0), grad = T(0), dot = T(0);
        if (kSilu) {
          base_and_grad(tb, b, &val, &grad);
          const T* dyr = dy0 + b * out;
          const T* w1[1] = {wb};
          T* g1[1] = {gb_i ? gb_i : scratch_row};
          group_rows<T, 1, 1, kUpdate>(&dyr, out, w1, g1, &val, &dot);
        }
        if (dx_col) dx_col[b * p.in] = nan_unless_finite(tb.x[b], grad * dot);
      }
      return;
    }
    const T* w[R];
    T* gw[R];
    for (int r = 0; r <= k; ++r) {
      const int64_t j = s - k + r;
      const bool ok = j >= 0 && j < nb;
      w[r] = ok ? wi + j * out : zero_row;
      gw[r] = ok && gw_i ? gw_i + j * out : scratch_row;
    }
    if (kSilu) {
      w[k + 1] = wb;
      gw[k + 1] = gb_i ? gb_i : scratch_row;
    }
    for (int q = 0; q < run;) {
      const int m = run - q >= kGroup ? kGroup : run - q >= 2 ? 2 : 1;
      const T* dyr[kGroup];
      T scale[kGroup * R], dscale[kGroup * R], dots[kGroup * R];
      for (int g = 0; g < m; ++g) {
        const int b = order[at + q + g];
        dyr[g] = dy0 + b * out;
        sample_scales<T, K, kSilu>(tb, at + q + g, b, k, nb, scale + g * R, dscale + g * R);
      }
      if (m == kGroup) group_rows<T, R, kGroup, kUpdate>(dyr, out, w, gw, scale, dots);
      else if (kGroup > 2 && m == 2) group_rows<T, R, 2, kUpdate>(dyr, out, w, gw, scale, dots);
      else group_rows<T, R, 1, kUpdate>(dyr, out, w, gw, scale, dots);
      if (dx_col) {
        for (int g = 0; g < m; ++g) {
          T acc = T(0);
          for (int r = 0; r < R; ++r) acc += dscale[g * R + r] * dots[g * R + r];
          dx_col[order[at + q + g] * p.in] = acc;
        }
      }
      q += m;
    }
  });
}

// Fewer outputs than one vector (e.g. a [2, 5, 1] KAN): the rows of a sample are a few
// scalars each, so grouping samples by span (sort, runs, vector passes) costs more than it
// saves; each sample takes its k+2 rows directly, in the same row order.
template <typename T>
inline bool narrow_out(int64_t out) { return out < Vec<T>::L; }

// kOut: the number of outputs when fixed at compile time (1: a scalar regression's last
// layer, whose loops then vanish), else 0.
template <typename T, int K, bool kSilu, bool kUpdate, int kOut>
void backward_tile_input_narrow(const KanProblem<T>& p, int64_t i, const TileBasis<T>& tb,
                                int n, const T* dy0, T* dx_col, T* gw_i, T* gb_i) {
  const int64_t out = kOut > 0 ? kOut : p.out, nb = p.n_knots - K - 1;
  const T* wi = p.spline_weight + i * nb * out;
  const T* wb = p.base_weight + i * out;
  for (int q = 0; q < n; ++q) {
    const int b = tb.order[q];
    const T* dyr = dy0 + b * out;
    const int64_t s = tb.span[b];
    T g = T(0);
    if (s >= 0) {
      for (int r = 0; r <= K; ++r) {
        const int64_t j = s - K + r;
        if (j < 0 || j >= nb) continue;  // no coefficient past the ends
        const T* w = wi + j * out;
        T dot = T(0);
        for (int64_t o = 0; o < out; ++o) dot += dyr[o] * w[o];
        g += tb.dN[r][q] * dot;
        if (kUpdate && gw_i) {
          T* gw = gw_i + j * out;
          const T scale = tb.N[r][q];
          for (int64_t o = 0; o < out; ++o) gw[o] += scale * dyr[o];
        }
      }
    }
    if (kSilu) {
      T value, grad;
      base_and_grad(tb, b, &value, &grad);
      T dot = T(0);
      for (int64_t o = 0; o < out; ++o) dot += dyr[o] * wb[o];
      g += grad * dot;
      if (kUpdate && gb_i)
        for (int64_t o = 0; o < out; ++o) gb_i[o] += value * dyr[o];
    }
    if (dx_col) dx_col[b * p.in] = nan_unless_finite(tb.x[b], g);
  }
}

// Runtime order (K == 0): one sample and one row at a time.
template <typename T, bool kSilu, bool kUpdate>
void backward_tile_input_runtime(const KanProblem<T>& p, int64_t i, const TileBasis<T>& tb,
                                 int n, const T* dy0, T* dx_col, T* gw_i, T* gb_i,
                                 const T* zero_row, T* scratch_row) {
  const int k = p.k;
  const int64_t out = p.out, nb = p.n_knots - k - 1;
  const T* wi = p.spline_weight + i * nb * out;
  for (int b = 0; b < n; ++b) {
    const T* dyr = dy0 + b * out;
    const int64_t s = tb.span[b];
    T g = T(0);
    for (int r = 0; r <= k + (kSilu ? 1 : 0); ++r) {
      const T* w;
      T* gwr;
      T scale, dscale;
      if (r == k + 1) {
        w = p.base_weight + i * out;
        gwr = gb_i ? gb_i : scratch_row;
        base_and_grad(tb, b, &scale, &dscale);
      } else {
        const int64_t j = s - k + r;
        if (s < 0 || j < 0 || j >= nb) continue;
        w = wi + j * out;
        gwr = gw_i ? gw_i + j * out : scratch_row;
        scale = tb.N[r][b];
        dscale = tb.dN[r][b];
      }
      T dot;
      group_rows<T, 1, 1, kUpdate>(&dyr, out, &w, &gwr, &scale, &dot);
      g += dscale * dot;
    }
    if (dx_col) dx_col[b * p.in] = nan_unless_finite(tb.x[b], g);
  }
}

// Below this many inputs the batch is also split, into a count of chunks fixed by the
// problem size (not the thread count), so the sums do not depend on the threads used.
constexpr int64_t kSplitBatchBelowInputs = 16;
constexpr int64_t kSamplesPerChunk = 2048;

template <typename T, int K, bool kSilu, bool kUpdate>
void backward_k(const KanProblem<T>& p, const T* dy, T* dx, T* gw, T* gb) {
  const int64_t in = p.in, out = p.out, batch = p.batch;
  const int64_t nb = p.n_basis();
  const int64_t gw_size = in * nb * out, gb_size = in * out;
  const KnotData<T> knots(p);

  int64_t chunks = 1;
  if (in < kSplitBatchBelowInputs) {
    chunks = (batch + kSamplesPerChunk - 1) / kSamplesPerChunk;
    if (chunks < 1) chunks = 1;
    if (chunks > 64) chunks = 64;
  }
  const int64_t chunk_len = (batch + chunks - 1) / chunks;
  // With one chunk the threads write the outputs directly; else per-chunk partials.
  T* gw_part = gw && chunks > 1 ? alloc_array<T>(chunks * gw_size) : gw;
  T* gb_part = gb && chunks > 1 ? alloc_array<T>(chunks * gb_size) : gb;
  if (gw_part) zero_array(gw_part, chunks * gw_size);
  if (gb_part) zero_array(gb_part, chunks * gb_size);

  // Work items: (chunk, input); each item owns its gradient rows and its grad_x column,
  // so every sum runs in one order whatever the thread count.
  const int64_t items = chunks * in;
#pragma omp parallel num_threads(p.threads)
  {
    const int64_t nth = omp_get_num_threads(), tid = omp_get_thread_num();
    const int64_t lo = items * tid / nth, hi = items * (tid + 1) / nth;
    T* zero_row = alloc_array<T>(out);
    T* scratch_row = alloc_array<T>(out);
    zero_array(zero_row, out);
    zero_array(scratch_row, out);
    TileBasis<T>* tb = static_cast<TileBasis<T>*>(__builtin_malloc(sizeof(TileBasis<T>)));
    // Large tiles amortise reading each input's weight and gradient rows from L3 (53 KB
    // each at G=50).  2 threads, 4096x256x256, G=50: 91 ms with 64 samples, 68 with 256,
    // ~60 with 512; at G=5 the rows fit in cache and 256 is as fast (47 ms).
    const int64_t tile = nb > 16 ? 512 : 256;
    // Visit the batch in tiles, and the thread's items inside each tile, so that a tile
    // of grad_y is reused from cache across inputs.
    for (int64_t c_first = lo; c_first < hi;) {
      const int64_t c = c_first / in;
      const int64_t item_end = (c + 1) * in < hi ? (c + 1) * in : hi;
      const int64_t bs = c * chunk_len;
      const int64_t be = bs + chunk_len < batch ? bs + chunk_len : batch;
      for (int64_t b0 = bs; b0 < be; b0 += tile) {
        const int n = static_cast<int>(b0 + tile < be ? tile : be - b0);
        for (int64_t item = c_first; item < item_end; ++item) {
          const int64_t i = item - c * in;
          T* gw_i = gw_part ? gw_part + c * gw_size + i * nb * out : nullptr;
          T* gb_i = gb_part ? gb_part + c * gb_size + i * out : nullptr;
          tile_bases_for_input<T, K, true>(p, knots, *tb, b0, n, i);
          T* dx_col = dx ? dx + b0 * in + i : nullptr;
          if constexpr (K > 0) {
            if (out == 1)
              backward_tile_input_narrow<T, K, kSilu, kUpdate, 1>(p, i, *tb, n, dy + b0 * out,
                                                                  dx_col, gw_i, gb_i);
            else if (narrow_out<T>(out))
              backward_tile_input_narrow<T, K, kSilu, kUpdate, 0>(p, i, *tb, n, dy + b0 * out,
                                                                  dx_col, gw_i, gb_i);
            else
              backward_tile_input<T, K, kSilu, kUpdate>(p, i, *tb, n, dy + b0 * out, dx_col,
                                                        gw_i, gb_i, zero_row, scratch_row);
          }
          else
            backward_tile_input_runtime<T, kSilu, kUpdate>(p, i, *tb, n, dy + b0 * out, dx_col,
                                                           gw_i, gb_i, zero_row, scratch_row);
        }
      }
      c_first = item_end;
    }
    __builtin_free(zero_row);
    __builtin_free(scratch_row);
    __builtin_free(tb);
  }

  if (chunks > 1) {
    // Fixed-order reduction of the chunk partials.
    if (gw) {
      for (int64_t e = 0; e < gw_size; ++e) {
        T acc = T(0);
        for (int64_t c = 0; c < chunks; ++c) acc += gw_part[c * gw_size + e];
        gw[e] = acc;
      }
      __builtin_free(gw_part);
    }
    if (gb) {
      for (int64_t e = 0; e < gb_size; ++e) {
        T acc = T(0);
        for (int64_t c = 0; c < chunks; ++c) acc += gb_part[c * gb_size + e];
        gb[e] = acc;
      }
      __builtin_free(gb_part);
    }
  }
}

template <typename T, bool kSilu, bool kUpdate>
void backward_dispatch(const KanProblem<T>& p, const T* dy, T* dx, T* gw, T* gb) {
  switch (p.k) {
    case 1: return backward_k<T, 1, kSilu, kUpdate>(p, dy, dx, gw, gb);
    case 2: return backward_k<T, 2, kSilu, kUpdate>(p, dy, dx, gw, gb);
    case 3: return backward_k<T, 3, kSilu, kUpdate>(p, dy, dx, gw, gb);
    case 4: return backward_k<T, 4, kSilu, kUpdate>(p, dy, dx, gw, gb);
    case 5: return backward_k<T, 5, kSilu, kUpdate>(p, dy, dx, gw, gb);
    default: return backward_k<T, 0, kSilu, kUpdate>(p, dy, dx, gw, gb);
  }
}

template <typename T>
void backward(const KanProblem<T>& p, const T* dy, T* dx, T* gw, T* gb) {
  // Without weight gradients the passes skip the row updates entirely.
  const bool update = gw || (gb && p.base == BaseFun::kSilu);
  if (p.base == BaseFun::kSilu) {
    if (update) backward_dispatch<T, true, true>(p, dy, dx, gw, gb);
    else backward_dispatch<T, true, false>(p, dy, dx, gw, gb);
  } else {
    if (update) backward_dispatch<T, false, true>(p, dy, dx, gw, gb);
    else backward_dispatch<T, false, false>(p, dy, dx, gw, gb);
  }
}
