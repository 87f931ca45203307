// Fused KAN-layer forward and backward over local B-spline support.  Included once per
// instruction set by kernels_isa.cpp, inside namespace pykan::<isa>.
//
// Work is O(batch * in * out * (k + 2)) in both directions, independent of G: each
// (sample, input) touches only the k+1 spline-weight rows of its knot span, plus the
// base-function row.  Nothing of size [batch, in, n_basis] or [batch, in, out] exists.

template <typename T>
T* alloc_array(int64_t n) {
  return static_cast<T*>(__builtin_malloc(sizeof(T) * (n > 0 ? n : 1)));
}

template <typename T>
void zero_array(T* a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = T(0);
}

template <typename T>
T* uniform_steps(const KanProblem<T>& p) {
  T* inv_h = alloc_array<T>(p.in);
  for (int64_t i = 0; i < p.in; ++i)
    inv_h[i] = uniform_inverse_step(p.grid + i * p.n_knots, p.n_knots);
  return inv_h;
}

template <typename T>
inline void axpy(T* y, T a, const T* w, int64_t n) {
#pragma omp simd
  for (int64_t o = 0; o < n; ++o) y[o] += a * w[o];
}

// Samples per forward tile: the tile's output rows (tile * out values) stay in L1 while
// one input's spline rows are applied to all of them.
constexpr int64_t kForwardTile = 16;

template <typename T, int K, bool kSilu>
void forward_k(const KanProblem<T>& p, T* y) {
  const int k = K > 0 ? K : p.k;
  const int64_t in = p.in, out = p.out, nk = p.n_knots, nb = nk - k - 1;
  T* inv_h = uniform_steps(p);
  const int64_t n_tiles = (p.batch + kForwardTile - 1) / kForwardTile;

#pragma omp parallel for num_threads(p.threads) schedule(static)
  for (int64_t tile = 0; tile < n_tiles; ++tile) {
    const int64_t b0 = tile * kForwardTile;
    const int64_t b1 = b0 + kForwardTile < p.batch ? b0 + kForwardTile : p.batch;
    zero_array(y + b0 * out, (b1 - b0) * out);
    T N[kMaxOrder + 1];
    for (int64_t i = 0; i < in; ++i) {
      const T* t = p.grid + i * nk;
      const T* wi = p.spline_weight + i * nb * out;
      const T* wb = p.base_weight + i * out;
      for (int64_t b = b0; b < b1; ++b) {
        const T xv = p.x[b * in + i];
        T* yr = y + b * out;
        const T sv = kSilu ? silu(xv) : T(0);
        const int64_t s = find_span(xv, t, nk, inv_h[i]);
        if (s < 0) {
          if (kSilu) axpy(yr, sv, wb, out);
          continue;
        }
        local_basis<T, K>(xv, t, s, k, N, static_cast<T*>(nullptr));
        const int64_t j0 = s - k;
        if (j0 >= 0 && s < nb) {
          // Interior span: one pass over the row, k+2 multiply-adds per output.
          const T* w0 = wi + j0 * out;
#pragma omp simd
          for (int64_t o = 0; o < out; ++o) {
            T acc = yr[o];
            if (kSilu) acc += sv * wb[o];
            for (int r = 0; r <= k; ++r) acc += N[r] * w0[r * out + o];
            yr[o] = acc;
          }
        } else {
          // In the k extension intervals some of the k+1 bases have no coefficient.
          for (int r = 0; r <= k; ++r) {
            const int64_t j = j0 + r;
            if (j >= 0 && j < nb) axpy(yr, N[r], wi + j * out, out);
          }
          if (kSilu) axpy(yr, sv, wb, out);
        }
      }
    }
  }
  __builtin_free(inv_h);
}

// Samples per backward tile: their grad_y rows stay in L1/L2 while every input of the
// thread's range is visited.
constexpr int64_t kBackwardTile = 64;
// Below this many inputs the batch is also split, into a count of chunks fixed by the
// problem size (not the thread count), so the sums do not depend on the threads used.
constexpr int64_t kSplitBatchBelowInputs = 16;
constexpr int64_t kSamplesPerChunk = 2048;

// One (sample, input): grad_x from k+2 dot products with grad_y's row, and the weight
// gradients as k+2 scaled copies of that row.
template <typename T, int K, bool kSilu>
inline T backward_one(const KanProblem<T>& p, int64_t i, T xv, const T* dyr, T inv_h,
                      T* gw_i, T* gb_i) {
  const int k = K > 0 ? K : p.k;
  const int64_t out = p.out, nk = p.n_knots, nb = nk - k - 1;
  const T* t = p.grid + i * nk;
  const T* wi = p.spline_weight + i * nb * out;
  T g = T(0);
  if (kSilu) {
    const T sv = silu(xv);
    const T* wb = p.base_weight + i * out;
    T dot = T(0);
#pragma omp simd reduction(+ : dot)
    for (int64_t o = 0; o < out; ++o) {
      dot += dyr[o] * wb[o];
      if (gb_i) gb_i[o] += sv * dyr[o];
    }
    g += silu_grad(xv) * dot;
  }
  const int64_t s = find_span(xv, t, nk, inv_h);
  if (s < 0) return g;
  T N[kMaxOrder + 1], dN[kMaxOrder + 1];
  local_basis<T, K>(xv, t, s, k, N, dN);
  for (int r = 0; r <= k; ++r) {
    const int64_t j = s - k + r;
    if (j < 0 || j >= nb) continue;
    const T* w = wi + j * out;
    T dot = T(0);
    if (gw_i) {
      T* gw = gw_i + j * out;
      const T n = N[r];
#pragma omp simd reduction(+ : dot)
      for (int64_t o = 0; o < out; ++o) {
        dot += dyr[o] * w[o];
        gw[o] += n * dyr[o];
      }
    } else {
#pragma omp simd reduction(+ : dot)
      for (int64_t o = 0; o < out; ++o) dot += dyr[o] * w[o];
    }
    g += dN[r] * dot;
  }
  return g;
}

template <typename T, int K, bool kSilu>
void backward_k(const KanProblem<T>& p, const T* dy, T* dx, T* gw, T* gb) {
  const int64_t in = p.in, out = p.out, batch = p.batch;
  const int64_t nb = p.n_basis();
  const int64_t gw_size = in * nb * out, gb_size = in * out;
  T* inv_h = uniform_steps(p);

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

  // Work items: (chunk, input); each item owns its gradient rows and its grad_x column.
  const int64_t items = chunks * in;
#pragma omp parallel num_threads(p.threads)
  {
    const int64_t nth = omp_get_num_threads(), tid = omp_get_thread_num();
    const int64_t lo = items * tid / nth, hi = items * (tid + 1) / nth;
    // Visit the batch in tiles, and the thread's items inside each tile, so that a tile
    // of grad_y is reused from cache across inputs.
    for (int64_t c_first = lo; c_first < hi;) {
      const int64_t c = c_first / in;
      const int64_t item_end = (c + 1) * in < hi ? (c + 1) * in : hi;
      const int64_t bs = c * chunk_len;
      const int64_t be = bs + chunk_len < batch ? bs + chunk_len : batch;
      for (int64_t b0 = bs; b0 < be; b0 += kBackwardTile) {
        const int64_t b1 = b0 + kBackwardTile < be ? b0 + kBackwardTile : be;
        for (int64_t item = c_first; item < item_end; ++item) {
          const int64_t i = item - c * in;
          T* gw_i = gw_part ? gw_part + c * gw_size + i * nb * out : nullptr;
          T* gb_i = gb_part ? gb_part + c * gb_size + i * out : nullptr;
          for (int64_t b = b0; b < b1; ++b) {
            const T g = backward_one<T, K, kSilu>(p, i, p.x[b * in + i], dy + b * out,
                                                  inv_h[i], gw_i, gb_i);
            if (dx) dx[b * in + i] = g;
          }
        }
      }
      c_first = item_end;
    }
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
  __builtin_free(inv_h);
}

// Orders 1..5 get unrolled instantiations; higher orders share the runtime-k one.
template <typename T, bool kSilu>
void forward_dispatch(const KanProblem<T>& p, T* y) {
  switch (p.k) {
    case 1: return forward_k<T, 1, kSilu>(p, y);
    case 2: return forward_k<T, 2, kSilu>(p, y);
    case 3: return forward_k<T, 3, kSilu>(p, y);
    case 4: return forward_k<T, 4, kSilu>(p, y);
    case 5: return forward_k<T, 5, kSilu>(p, y);
    default: return forward_k<T, 0, kSilu>(p, y);
  }
}

template <typename T, bool kSilu>
void backward_dispatch(const KanProblem<T>& p, const T* dy, T* dx, T* gw, T* gb) {
  switch (p.k) {
    case 1: return backward_k<T, 1, kSilu>(p, dy, dx, gw, gb);
    case 2: return backward_k<T, 2, kSilu>(p, dy, dx, gw, gb);
    case 3: return backward_k<T, 3, kSilu>(p, dy, dx, gw, gb);
    case 4: return backward_k<T, 4, kSilu>(p, dy, dx, gw, gb);
    case 5: return backward_k<T, 5, kSilu>(p, dy, dx, gw, gb);
    default: return backward_k<T, 0, kSilu>(p, dy, dx, gw, gb);
  }
}

template <typename T>
void forward(const KanProblem<T>& p, T* y) {
  if (p.base == BaseFun::kSilu) forward_dispatch<T, true>(p, y);
  else forward_dispatch<T, false>(p, y);
}

template <typename T>
void backward(const KanProblem<T>& p, const T* dy, T* dx, T* gw, T* gb) {
  if (p.base == BaseFun::kSilu) backward_dispatch<T, true>(p, dy, dx, gw, gb);
  else backward_dispatch<T, false>(p, dy, dx, gw, gb);
}
