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

// Per-input knot data computed once per call: the uniform-step hint of find_span and
// the reciprocal knot differences of local_basis.
template <typename T>
struct KnotData {
  T* inv_h;
  KnotTable<T> table;
  explicit KnotData(const KanProblem<T>& p) {
    inv_h = alloc_array<T>(p.in);
    table = KnotTable<T>{alloc_array<T>(p.in * p.k * (p.n_knots + p.k)), p.n_knots, p.k};
#pragma omp parallel for num_threads(p.threads) schedule(static)
    for (int64_t i = 0; i < p.in; ++i) {
      const T* t = p.grid + i * p.n_knots;
      inv_h[i] = uniform_inverse_step(t, p.n_knots);
      fill_knot_table(t, p.n_knots, p.k, table.inv + i * p.k * table.row());
    }
  }
  ~KnotData() {
    __builtin_free(inv_h);
    __builtin_free(table.inv);
  }
  KnotData(const KnotData&) = delete;
  KnotData& operator=(const KnotData&) = delete;
};

template <typename T>
inline void axpy(T* y, T a, const T* w, int64_t n) {
#pragma omp simd
  for (int64_t o = 0; o < n; ++o) y[o] += a * w[o];
}

// 64-byte vectors (GCC vector extensions): one zmm with AVX-512, two ymm with AVX2, four
// xmm in the baseline build.  Explicit vectors keep the hot loops from being scalarised.
typedef float f32v __attribute__((vector_size(64)));
typedef float f32v_u __attribute__((vector_size(64), aligned(4), may_alias));
typedef double f64v __attribute__((vector_size(64)));
typedef double f64v_u __attribute__((vector_size(64), aligned(8), may_alias));

template <typename T> struct Vec;
template <> struct Vec<float> {
  using V = f32v;
  using U = f32v_u;
  static constexpr int L = 16;
  static float hsum(V v) {
    typedef float h8 __attribute__((vector_size(32)));
    typedef float h4 __attribute__((vector_size(16)));
    h8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
           __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    h4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
    return (b[0] + b[2]) + (b[1] + b[3]);
  }
};
template <> struct Vec<double> {
  using V = f64v;
  using U = f64v_u;
  static constexpr int L = 8;
  static double hsum(V v) {
    typedef double h4 __attribute__((vector_size(32)));
    h4 a = __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
    return (a[0] + a[2]) + (a[1] + a[3]);
  }
};

template <typename T>
inline typename Vec<T>::V vload(const T* p) {
  return *reinterpret_cast<const typename Vec<T>::U*>(p);
}
template <typename T>
inline void vstore(T* p, typename Vec<T>::V v) {
  *reinterpret_cast<typename Vec<T>::U*>(p) = v;
}
template <typename T>
inline typename Vec<T>::V vbroadcast(T s) {
  return typename Vec<T>::V{} + s;
}

// yr[o] += sum_r coef[r] * row[r][o] for o in [o0, o1): the yr values are held in
// registers (four vectors at a time) over all rows.
template <typename T>
inline void accumulate_rows(T* yr, int64_t o0, int64_t o1, const T* const* row,
                            const T* coef, int n_rows) {
  using V = typename Vec<T>::V;
  constexpr int L = Vec<T>::L;
  int64_t o = o0;
  for (; o + 4 * L <= o1; o += 4 * L) {
    V a0 = vload(yr + o), a1 = vload(yr + o + L), a2 = vload(yr + o + 2 * L),
      a3 = vload(yr + o + 3 * L);
    for (int r = 0; r < n_rows; ++r) {
      const V c = vbroadcast(coef[r]);
      const T* w = row[r] + o;
      a0 += c * vload(w);
      a1 += c * vload(w + L);
      a2 += c * vload(w + 2 * L);
      a3 += c * vload(w + 3 * L);
    }
    vstore(yr + o, a0);
    vstore(yr + o + L, a1);
    vstore(yr + o + 2 * L, a2);
    vstore(yr + o + 3 * L, a3);
  }
  for (; o + L <= o1; o += L) {
    V a = vload(yr + o);
    for (int r = 0; r < n_rows; ++r) a += vbroadcast(coef[r]) * vload(row[r] + o);
    vstore(yr + o, a);
  }
  for (; o < o1; ++o) {
    T a = yr[o];
    for (int r = 0; r < n_rows; ++r) a += coef[r] * row[r][o];
    yr[o] = a;
  }
}

// Forward blocking: a tile of samples times a block of inputs.  For each (sample, input)
// the k+1 spline rows of its knot span and the base row are listed with their
// coefficients; then each output row is accumulated in registers over the whole input
// block, so it is loaded and stored once per block instead of once per input, and the
// block's weights (kForwardInputs * n_basis * out values) stay in L2 across the tile.
constexpr int64_t kForwardTile = 64;
constexpr int kForwardInputs = 8;

template <typename T, int K, bool kSilu>
void forward_k(const KanProblem<T>& p, T* y) {
  const int k = K > 0 ? K : p.k;
  const int rows_per = k + 1 + (kSilu ? 1 : 0);
  const int64_t in = p.in, out = p.out, nk = p.n_knots, nb = nk - k - 1;
  const KnotData<T> knots(p);
  T* zero_row = alloc_array<T>(out);
  zero_array(zero_row, out);
  const int64_t n_tiles = (p.batch + kForwardTile - 1) / kForwardTile;
  const int64_t list_len = kForwardTile * kForwardInputs * rows_per;

#pragma omp parallel num_threads(p.threads)
  {
    const T** row = static_cast<const T**>(__builtin_malloc(sizeof(T*) * list_len));
    T* coef = alloc_array<T>(list_len);
    T N[kMaxOrder + 1];
#pragma omp for schedule(static)
    for (int64_t tile = 0; tile < n_tiles; ++tile) {
      const int64_t b0 = tile * kForwardTile;
      const int64_t b1 = b0 + kForwardTile < p.batch ? b0 + kForwardTile : p.batch;
      zero_array(y + b0 * out, (b1 - b0) * out);
      for (int64_t i0 = 0; i0 < in; i0 += kForwardInputs) {
        const int ib = static_cast<int>(i0 + kForwardInputs < in ? kForwardInputs : in - i0);
        // List the rows and coefficients of every (sample, input) of the block.
        for (int64_t b = b0; b < b1; ++b) {
          for (int ii = 0; ii < ib; ++ii) {
            const int64_t i = i0 + ii;
            const T xv = p.x[b * in + i];
            const T* t = p.grid + i * nk;
            const T* wi = p.spline_weight + i * nb * out;
            const int64_t at = ((b - b0) * kForwardInputs + ii) * rows_per;
            const T** rr = row + at;
            T* cc = coef + at;
            const int64_t s = find_span(xv, t, nk, knots.inv_h[i]);
            if (s >= 0) local_basis<T, K>(xv, t, nk, knots.table.input(i), s, k, N,
                                          static_cast<T*>(nullptr));
            for (int r = 0; r <= k; ++r) {
              const int64_t j = s - k + r;
              const bool ok = s >= 0 && j >= 0 && j < nb;  // no coefficient past the ends
              rr[r] = ok ? wi + j * out : zero_row;
              cc[r] = ok ? N[r] : T(0);
            }
            if (kSilu) {
              rr[k + 1] = p.base_weight + i * out;
              cc[k + 1] = silu(xv);
            }
          }
        }
        // Accumulate each output row over the block.
        const int n_rows = ib * rows_per;
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t at = (b - b0) * kForwardInputs * rows_per;
          accumulate_rows<T>(y + b * out, 0, out, row + at, coef + at, n_rows);
        }
      }
    }
    __builtin_free(row);
    __builtin_free(coef);
  }
  __builtin_free(zero_row);
}

// Samples per backward tile: their grad_y rows stay in L1/L2 while every input of the
// thread's range is visited.
constexpr int64_t kBackwardTile = 64;
// Below this many inputs the batch is also split, into a count of chunks fixed by the
// problem size (not the thread count), so the sums do not depend on the threads used.
constexpr int64_t kSplitBatchBelowInputs = 16;
constexpr int64_t kSamplesPerChunk = 2048;

// One pass over grad_y's row dyr for R weight rows at once: dots[r] = <dyr, w[r]> and,
// with kUpdate, gw[r] += n[r] * dyr.  R independent accumulators keep the FMA pipes
// busy (one long dot product would wait on its own latency).
template <typename T, int R, bool kUpdate>
inline void fused_rows(const T* dyr, int64_t out, const T* const* w, T* const* gw,
                       const T* n, T* dots) {
  using V = typename Vec<T>::V;
  constexpr int L = Vec<T>::L;
  V acc[R], nv[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = V{};
    nv[r] = vbroadcast(n[r]);
  }
  int64_t o = 0;
  for (; o + L <= out; o += L) {
    const V d = vload(dyr + o);
    for (int r = 0; r < R; ++r) {
      acc[r] += d * vload(w[r] + o);
      if (kUpdate) vstore(gw[r] + o, vload(gw[r] + o) + nv[r] * d);
    }
  }
  for (int r = 0; r < R; ++r) {
    T sum = Vec<T>::hsum(acc[r]);
    for (int64_t oo = o; oo < out; ++oo) {
      sum += dyr[oo] * w[r][oo];
      if (kUpdate) gw[r][oo] += n[r] * dyr[oo];
    }
    dots[r] = sum;
  }
}

// Rows of one (sample, input) for the backward pass: the k+1 spline rows of the knot
// span, then the base row.  Rows past the ends of the basis (extension intervals) point
// at a zero row and a scratch row, with zero coefficients.
template <typename T>
struct RowSet {
  const T* w[kMaxOrder + 2];
  T* gw[kMaxOrder + 2];
  T n[kMaxOrder + 2];   // gw scale: B_j(x), or base(x) for the base row
  T dn[kMaxOrder + 2];  // grad_x scale: dB_j/dx, or base'(x)
  T dots[kMaxOrder + 2];
};

template <typename T, int R, bool kUpdate>
inline T finish_rows(const T* dyr, int64_t out, RowSet<T>& rows) {
  fused_rows<T, R, kUpdate>(dyr, out, rows.w, rows.gw, rows.n, rows.dots);
  T g = T(0);
  for (int r = 0; r < R; ++r) g += rows.dn[r] * rows.dots[r];
  return g;
}

// One (sample, input): grad_x and the gradient-row updates.
template <typename T, int K, bool kSilu, bool kUpdate>
inline T backward_one(const KanProblem<T>& p, int64_t i, T xv, const T* dyr,
                      const KnotData<T>& knots, T* gw_i, T* gb_i, const T* zero_row,
                      T* scratch_row) {
  const int k = K > 0 ? K : p.k;
  const int64_t out = p.out, nk = p.n_knots, nb = nk - k - 1;
  const T* t = p.grid + i * nk;
  const T* wi = p.spline_weight + i * nb * out;
  RowSet<T> rows;
  const int64_t s = find_span(xv, t, nk, knots.inv_h[i]);
  if (s < 0) {
    if (!kSilu) return T(0);
    rows.w[0] = p.base_weight + i * out;
    rows.gw[0] = gb_i ? gb_i : scratch_row;
    silu_and_grad(xv, &rows.n[0], &rows.dn[0]);
    return finish_rows<T, 1, kUpdate>(dyr, out, rows);
  }
  local_basis<T, K>(xv, t, nk, knots.table.input(i), s, k, rows.n, rows.dn);
  for (int r = 0; r <= k; ++r) {
    const int64_t j = s - k + r;
    if (j >= 0 && j < nb) {
      rows.w[r] = wi + j * out;
      rows.gw[r] = gw_i ? gw_i + j * out : scratch_row;
    } else {
      rows.w[r] = zero_row;
      rows.gw[r] = scratch_row;
      rows.n[r] = rows.dn[r] = T(0);
    }
  }
  if (kSilu) {
    rows.w[k + 1] = p.base_weight + i * out;
    rows.gw[k + 1] = gb_i ? gb_i : scratch_row;
    silu_and_grad(xv, &rows.n[k + 1], &rows.dn[k + 1]);
  }
  if constexpr (K > 0) return finish_rows<T, K + 1 + (kSilu ? 1 : 0), kUpdate>(dyr, out, rows);
  // Runtime order: one row at a time.
  T g = T(0);
  for (int r = 0; r <= k + (kSilu ? 1 : 0); ++r) {
    fused_rows<T, 1, kUpdate>(dyr, out, rows.w + r, rows.gw + r, rows.n + r, rows.dots + r);
    g += rows.dn[r] * rows.dots[r];
  }
  return g;
}

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

  // Work items: (chunk, input); each item owns its gradient rows and its grad_x column.
  const int64_t items = chunks * in;
#pragma omp parallel num_threads(p.threads)
  {
    const int64_t nth = omp_get_num_threads(), tid = omp_get_thread_num();
    T* zero_row = alloc_array<T>(out);
    T* scratch_row = alloc_array<T>(out);
    zero_array(zero_row, out);
    zero_array(scratch_row, out);
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
            const T g = backward_one<T, K, kSilu, kUpdate>(
                p, i, p.x[b * in + i], dy + b * out, knots, gw_i, gb_i, zero_row, scratch_row);
            if (dx) dx[b * in + i] = g;
          }
        }
      }
      c_first = item_end;
    }
    __builtin_free(zero_row);
    __builtin_free(scratch_row);
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
void forward(const KanProblem<T>& p, T* y) {
  if (p.base == BaseFun::kSilu) forward_dispatch<T, true>(p, y);
  else forward_dispatch<T, false>(p, y);
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
