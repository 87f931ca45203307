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

// ---- bases of a tile of samples for one input, vectorised across the samples --------

constexpr int kTile = 512;  // most samples per tile (TileBasis capacity)

// Samples of a tile ordered by knot span (counting sort), so that equal spans are
// adjacent; tiles over many knots keep their order (grouping would rarely pay).
constexpr int64_t kMaxSortedKnots = 512;

inline int sort_by_span(const int64_t* span, int n, int64_t n_knots, int* order, int* count) {
  if (n_knots > kMaxSortedKnots) {
    for (int b = 0; b < n; ++b) order[b] = b;
    return n;
  }
  const int keys = static_cast<int>(n_knots);  // span + 1 in [0, n_knots - 1]
  for (int c = 0; c <= keys; ++c) count[c] = 0;
  for (int b = 0; b < n; ++b) ++count[span[b] + 1 + 1];
  for (int c = 1; c <= keys; ++c) count[c] += count[c - 1];
  for (int b = 0; b < n; ++b) order[count[span[b] + 1]++] = b;
  return n;
}


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
  const T* base_values;  // this tile's column of the caller's base(x), or null
  const T* base_grads;   // and of base'(x); stride: the problem's `in`
  int64_t base_stride;
};

// base(x) and base'(x) of sample b: the caller's precomputed values when given (torch's
// vectorised SiLU), else SiLU computed here.
template <typename T>
inline void base_and_grad(const TileBasis<T>& tb, int b, T* value, T* grad) {
  if (tb.base_values) {
    *value = tb.base_values[b * tb.base_stride];
    *grad = tb.base_grads[b * tb.base_stride];
  } else {
    silu_and_grad(tb.x[b], value, grad);
  }
}

// Order-K bases (and derivatives) at x in span s by the recursion, N[r] = B_{K,s-K+r}(x)
// (dN[r] its derivative), for a vector of samples of one span (one per lane): local_basis's
// operations with the knots and reciprocals as broadcast scalars.
// knot(m) = t[clamp(s - K + 1 + m)] for m = 0..2K-1 (left knots m < K, right knots m >= K),
// inv(p, r) = 1/(t[j+p] - t[j]) for j = s+1-p+r; keep(p, r) false zeroes basis r after
// step p (pykan's repeated-knot rule, see zero_repeated_knot_bases).
template <typename V, int K, bool kDeriv, typename Knot, typename Inv, typename Keep>
__attribute__((always_inline)) inline void recursion_at(V x, Knot knot, Inv inv, Keep keep,
                                                        V* N, V* dN) {
  V lower[K + 1];
  N[0] = V{} + 1;
  for (int p = 1; p <= K; ++p) {
    if (p == K)
      for (int r = 0; r < K; ++r) lower[r] = N[r];
    V saved = V{};
    for (int r = 0; r < p; ++r) {
      const V temp = N[r] * inv(p, r);
      N[r] = saved + (knot(K + r) - x) * temp;
      saved = (x - knot(K - p + r)) * temp;
    }
    N[p] = saved;
    for (int r = 0; r <= p; ++r)
      if (!keep(p, r)) N[r] = V{};
  }
  if (kDeriv) {
    // dB_{K,j} = K (B_{K-1,j} / (t_{j+K} - t_j) - B_{K-1,j+1} / (t_{j+K+1} - t_{j+1})),
    // j = s-K+r; inv(K, r-1) is the first reciprocal, inv(K, r) the second.
    for (int r = 0; r <= K; ++r) {
      V d = V{};
      if (r >= 1) d += lower[r - 1] * inv(K, r - 1);
      if (r < K) d -= lower[r] * inv(K, r);
      dN[r] = keep(K, r) ? d * K : V{};  // zeroed where the value is
    }
  }
}

// The recursion for the m <= L samples order[q..q+m) of one span, one per vector lane
// (unused lanes run on x = pad), stored to columns q..q+m of N and dN.
template <typename T, int K, bool kDeriv, typename Knot, typename Inv, typename Keep>
inline void recursion_block(TileBasis<T>& tb, int q, int m, T pad, Knot knot, Inv inv,
                            Keep keep) {
  using V = typename Vec<T>::V;
  constexpr int L = Vec<T>::L;
  V x = vbroadcast(pad);
  for (int l = 0; l < m; ++l) x[l] = tb.x[tb.order[q + l]];
  V N[K + 1], dN[K + 1];
  recursion_at<V, K, kDeriv>(x, knot, inv, keep, N, dN);
  if (m == L) {
    for (int r = 0; r <= K; ++r) {
      vstore(&tb.N[r][q], N[r]);
      if (kDeriv) vstore(&tb.dN[r][q], dN[r]);
    }
    return;
  }
  for (int r = 0; r <= K; ++r)
    for (int l = 0; l < m; ++l) {
      tb.N[r][q + l] = N[r][l];
      if (kDeriv) tb.dN[r][q + l] = dN[r][l];
    }
}

// Knot vectors up to this long are searched by counting, in SIMD lanes, the knots <= x;
// longer ones by find_span's binary search (a chain of dependent loads per sample).
constexpr int64_t kCountedKnots = 64;

// span[b] for x[0..n): find_span's result (the last knot <= x below the final one, -1
// outside [t[0], t[nk-1]) or at NaN).
template <typename T>
inline void tile_spans(TileBasis<T>& tb, int n, const T* t, int64_t nk, T inv_h) {
  if (inv_h > T(0) || nk > kCountedKnots) {
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
        tb.span[b + v * L + l] = xl >= lo && xl < hi ? static_cast<int64_t>(count[v][l]) : -1;
      }
  }
  for (; b < n; ++b) tb.span[b] = find_span(tb.x[b], t, nk, inv_h);
}

// Fills span and order for x[0..n) and N (and dN) in span order (see TileBasis).  Spans
// are searched per sample against the real knots; the recursion then runs across samples
// in SIMD lanes: with uniform knots on (x - t_s)/h alone; otherwise one run of equal
// spans at a time, whose knots and reciprocals are the same scalars in every lane (a
// per-lane gather of each of them cost half the time); past kMaxSortedKnots knots (runs
// too short to pay) by local_basis, one sample at a time.
template <typename T, int K, bool kDeriv>
inline void tile_basis(TileBasis<T>& tb, int n, const T* t, int64_t nk, const T* inv_i,
                       T inv_h, T exact_inv_h, bool repeated) {
  tile_spans(tb, n, t, nk, inv_h);
  sort_by_span(tb.span, n, nk, tb.order, tb.count);
  const int64_t row = nk + K;
  if (exact_inv_h > T(0)) {
    for (int b = 0; b < n; ++b)
      tb.u[b] = tb.span[b] >= 0 ? (tb.x[b] - t[tb.span[b]]) * exact_inv_h : T(0);
#pragma omp simd
    for (int q = 0; q < n; ++q) {
      const T u = tb.u[tb.order[q]];
      T Nl[K + 1], lower[K + 1];
      Nl[0] = T(1);
      for (int p = 1; p <= K; ++p) {
        if (p == K)
          for (int r = 0; r < K; ++r) lower[r] = Nl[r];
        // Uniform knots: left[j] = (u + j - 1) h, right[j] = (j - u) h, sums p h.
        const T ip = T(1) / T(p);
        T saved = T(0);
        for (int r = 0; r < p; ++r) {
          const T temp = Nl[r] * ip;
          Nl[r] = saved + (T(r + 1) - u) * temp;
          saved = (u + T(p - r - 1)) * temp;
        }
        Nl[p] = saved;
      }
      for (int r = 0; r <= K; ++r) tb.N[r][q] = Nl[r];
      if (kDeriv) {
        for (int r = 0; r <= K; ++r) {
          const T d = (r >= 1 ? lower[r - 1] : T(0)) - (r < K ? lower[r] : T(0));
          tb.dN[r][q] = d * exact_inv_h;
        }
      }
    }
    return;
  }
  // inv(p, r) for span s: the table row of order p from j = s+1-p (the entries of
  // bases that do not exist are zeros that only reach such bases).  keep(p, r): neither
  // 1/(t[j+p]-t[j]) nor 1/(t[j+p+1]-t[j+1]) at j = s-p+r is a repeated-knot zero; the
  // zeros at the knot vector's ends only reach bases that do not exist.
  if (nk <= kMaxSortedKnots) {
    int at = 0;
    while (at < n) {
      const int64_t s = tb.span[tb.order[at]];
      int run = 1;
      while (at + run < n && tb.span[tb.order[at + run]] == s) ++run;
      if (s >= 0) {
        T knots[2 * K], invs[K + 1][K];
        bool keeps[K + 1][K + 2];
        for (int m = 0; m < 2 * K; ++m) {
          int64_t j = s - K + 1 + m;
          j = j < 0 ? 0 : j > nk - 1 ? nk - 1 : j;
          knots[m] = t[j];
        }
        for (int p = 1; p <= K; ++p) {
          const T* inv_p = inv_i + (p - 1) * row + (s + 1 - p) + K;
          for (int r = 0; r < p; ++r) invs[p][r] = inv_p[r];
          for (int r = 0; r <= p; ++r)
            keeps[p][r] = !repeated || (inv_p[r - 1] != T(0) && inv_p[r] != T(0));
        }
        const auto knot = [&](int m) { return knots[m]; };
        const auto inv = [&](int p, int r) { return invs[p][r]; };
        const T pad = knots[K - 1];  // t[s]: inside the span
        for (int q = 0; q < run; q += Vec<T>::L) {
          const int m = run - q < Vec<T>::L ? run - q : Vec<T>::L;
          if (repeated)
            recursion_block<T, K, kDeriv>(tb, at + q, m, pad, knot, inv,
                                          [&](int p, int r) { return keeps[p][r]; });
          else
            recursion_block<T, K, kDeriv>(tb, at + q, m, pad, knot, inv,
                                          [](int, int) { return true; });
        }
      }
      at += run;
    }
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
  for (int b = 0; b < n; ++b) tb.x[b] = p.x[(b0 + b) * p.in + i];
  tb.base_values = p.base_values ? p.base_values + b0 * p.in + i : nullptr;
  tb.base_grads = p.base_grads ? p.base_grads + b0 * p.in + i : nullptr;
  tb.base_stride = p.in;
  const T* t = p.grid + i * p.n_knots;
  if constexpr (K > 0)
    tile_basis<T, K, kDeriv>(tb, n, t, p.n_knots, knots.table.input(i), knots.inv_h[i],
                             knots.exact_inv_h[i], knots.repeated[i] != 0);
  else
    tile_basis_runtime<T, kDeriv>(tb, n, t, p.n_knots, knots.table.input(i), knots.inv_h[i],
                                  p.k);
}

template <typename T>
inline void axpy(T* y, T a, const T* w, int64_t n) {
#pragma omp simd
  for (int64_t o = 0; o < n; ++o) y[o] += a * w[o];
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
constexpr int kForwardInputs = 8;     // most inputs per block
constexpr int kForwardSamples = 32;   // samples per forward tile
constexpr int64_t kForwardColumns = 64;  // outputs per pass: 4 vectors of floats

template <typename T, int K, bool kSilu>
void forward_k(const KanProblem<T>& p, T* y) {
  const int k = K > 0 ? K : p.k;
  const int rows_per = k + 1 + (kSilu ? 1 : 0);
  const int64_t in = p.in, out = p.out, nk = p.n_knots, nb = nk - k - 1;
  const KnotData<T> knots(p);
  T* zero_row = alloc_array<T>(out);
  zero_array(zero_row, out);
  const int64_t n_tiles = (p.batch + kForwardSamples - 1) / kForwardSamples;
  const int64_t list_len = kForwardSamples * kForwardInputs * rows_per;
  // Inputs per block: their weight columns of one pass (block * n_basis rows of
  // kForwardColumns values, 16 KiB at n_basis = 8) should stay in L1 across the tile.
  // Measured at 4096x256x256 (one thread, float32): G=5 best with 4 inputs per block
  // (47 ms vs 52-56 for 1 or 8); G=50 best with 1 input and full rows (82 ms vs 90-114).
  const int block = nb >= 32 ? 1 : 4;
  const int64_t columns = nb >= 32 ? out : kForwardColumns;

#pragma omp parallel num_threads(p.threads)
  {
    const T** row = static_cast<const T**>(__builtin_malloc(sizeof(T*) * list_len));
    T* coef = alloc_array<T>(list_len);
    TileBasis<T>* tb = static_cast<TileBasis<T>*>(__builtin_malloc(sizeof(TileBasis<T>)));
#pragma omp for schedule(static)
    for (int64_t tile = 0; tile < n_tiles; ++tile) {
      const int64_t b0 = tile * kForwardSamples;
      const int n = static_cast<int>(b0 + kForwardSamples < p.batch ? kForwardSamples : p.batch - b0);
      zero_array(y + b0 * out, n * out);
      for (int64_t i0 = 0; i0 < in; i0 += block) {
        const int ib = static_cast<int>(i0 + block < in ? block : in - i0);
        // List the rows and coefficients of every (sample, input) of the block.
        for (int ii = 0; ii < ib; ++ii) {
          const int64_t i = i0 + ii;
          tile_bases_for_input<T, K, false>(p, knots, *tb, b0, n, i);
          const T* wi = p.spline_weight + i * nb * out;
          for (int b = 0; b < n; ++b) {
            const int64_t at = (static_cast<int64_t>(b) * kForwardInputs + ii) * rows_per;
            const T** rr = row + at;
            T* cc = coef + at;
            const int64_t s = tb->span[b];
            for (int r = 0; r <= k; ++r) {
              const int64_t j = s - k + r;
              const bool ok = s >= 0 && j >= 0 && j < nb;  // no coefficient past the ends
              rr[r] = ok ? wi + j * out : zero_row;
              cc[r] = ok ? tb->N[r][b] : T(0);
            }
            if (kSilu) {
              rr[k + 1] = p.base_weight + i * out;
              cc[k + 1] = p.base_values ? p.base_values[(b0 + b) * in + i] : silu(tb->x[b]);
            }
          }
        }
        // Accumulate each output row over the block, a column pass at a time.
        const int n_rows = ib * rows_per;
        for (int64_t o0 = 0; o0 < out; o0 += columns) {
          const int64_t o1 = o0 + columns < out ? o0 + columns : out;
          for (int b = 0; b < n; ++b) {
            const int64_t at = static_cast<int64_t>(b) * kForwardInputs * rows_per;
            accumulate_rows<T>(y + (b0 + b) * out, o0, o1, row + at, coef + at, n_rows);
          }
        }
      }
    }
    __builtin_free(row);
    __builtin_free(coef);
    __builtin_free(tb);
  }
  __builtin_free(zero_row);
}

// M samples whose x share one knot span also share their R weight rows: one pass serves
// them all, loading each weight and gradient row once (M dot products per weight load,
// one read-modify-write of a gradient row for M samples).
// dyr[m]: grad_y rows; n[m*R + r], dots[m*R + r]: per-sample scales and results.
template <typename T, int R, int M, bool kUpdate>
inline void group_rows(const T* const* dyr, int64_t out, const T* const* w, T* const* gw,
                       const T* n, T* dots) {
  using V = typename Vec<T>::V;
  constexpr int L = Vec<T>::L;
  V acc[M][R];
  for (int m = 0; m < M; ++m)
    for (int r = 0; r < R; ++r) acc[m][r] = V{};
  int64_t o = 0;
  for (; o + L <= out; o += L) {
    V d[M];
    for (int m = 0; m < M; ++m) d[m] = vload(dyr[m] + o);
    for (int r = 0; r < R; ++r) {
      const V wv = vload(w[r] + o);
      for (int m = 0; m < M; ++m) acc[m][r] += d[m] * wv;
      if (kUpdate) {
        V g = vload(gw[r] + o);
        for (int m = 0; m < M; ++m) g += vbroadcast(n[m * R + r]) * d[m];
        vstore(gw[r] + o, g);
      }
    }
  }
  for (int m = 0; m < M; ++m) {
    for (int r = 0; r < R; ++r) {
      T sum = Vec<T>::hsum(acc[m][r]);
      for (int64_t oo = o; oo < out; ++oo) sum += dyr[m][oo] * w[r][oo];
      dots[m * R + r] = sum;
    }
  }
  if (kUpdate) {
    for (int r = 0; r < R; ++r)
      for (int64_t oo = o; oo < out; ++oo) {
        T g = gw[r][oo];
        for (int m = 0; m < M; ++m) g += n[m * R + r] * dyr[m][oo];
        gw[r][oo] = g;
      }
  }
}

// Scales of sample b = order[q] (k+1 spline rows, then the base row): n = B_j(x) or
// base(x) for the weight gradient, dn = dB_j/dx or base'(x) for grad_x.  Rows past the
// basis ends get 0.
template <typename T, int K, bool kSilu>
inline void sample_scales(const TileBasis<T>& tb, int q, int b, int k, int64_t nb, T* n, T* dn) {
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
  constexpr int kGroup = R <= 6 ? 4 : 3;  // M*R accumulators must fit the registers
  const int k = K;
  const int64_t out = p.out, nb = p.n_knots - k - 1;
  const T* wi = p.spline_weight + i * nb * out;
  const T* wb = p.base_weight + i * out;
  const int* order = tb.order;
  int at = 0;
  while (at < n) {
    const int64_t s = tb.span[order[at]];
    int run = 1;
    while (at + run < n && tb.span[order[at + run]] == s) ++run;
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
        // pykan's bases give NaN gradients at NaN or infinite x, whatever the base.
        const T x = tb.x[b];
        if (dx_col) dx_col[b * p.in] = x - x == T(0) ? grad * dot : x - x;
      }
      at += run;
      continue;
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
      else if (m == 2) group_rows<T, R, 2, kUpdate>(dyr, out, w, gw, scale, dots);
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
    at += run;
  }
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
    // pykan's bases give NaN gradients at NaN or infinite x, whatever the base.
    const T x = tb.x[b];
    if (dx_col) dx_col[b * p.in] = x - x == T(0) ? g : x - x;
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
    const T x = tb.x[b];
    if (dx_col) dx_col[b * p.in] = x - x == T(0) ? g : x - x;  // NaN at NaN or infinite x
  }
}

// Forward for M samples sharing one knot span (so the same R weight rows):
// y[m] += sum_r c[m*R + r] * w[r], each weight vector loaded once for the M samples.
template <typename T, int R, int M>
inline void group_axpy(T* const* y, int64_t out, const T* const* w, const T* c) {
  using V = typename Vec<T>::V;
  constexpr int L = Vec<T>::L;
  V cv[M][R];
  for (int m = 0; m < M; ++m)
    for (int r = 0; r < R; ++r) cv[m][r] = vbroadcast(c[m * R + r]);
  int64_t o = 0;
  for (; o + L <= out; o += L) {
    V acc[M];
    for (int m = 0; m < M; ++m) acc[m] = vload(y[m] + o);
    for (int r = 0; r < R; ++r) {
      const V wv = vload(w[r] + o);
      for (int m = 0; m < M; ++m) acc[m] += cv[m][r] * wv;
    }
    for (int m = 0; m < M; ++m) vstore(y[m] + o, acc[m]);
  }
  for (; o < out; ++o)
    for (int m = 0; m < M; ++m) {
      T a = y[m][o];
      for (int r = 0; r < R; ++r) a += c[m * R + r] * w[r][o];
      y[m][o] = a;
    }
}

// Span-grouped forward over one input for a tile (compile-time order only).
template <typename T, int K, bool kSilu>
void forward_tile_input(const KanProblem<T>& p, int64_t i, const TileBasis<T>& tb, int n,
                        T* y0, const T* zero_row) {
  constexpr int R = K + 1 + (kSilu ? 1 : 0);
  constexpr int kGroup = 4;
  const int64_t out = p.out, nb = p.n_knots - K - 1;
  const T* wi = p.spline_weight + i * nb * out;
  const T* wb = p.base_weight + i * out;
  const int* order = tb.order;
  int at = 0;
  while (at < n) {
    const int64_t s = tb.span[order[at]];
    int run = 1;
    while (at + run < n && tb.span[order[at + run]] == s) ++run;
    if (s < 0) {
      if (kSilu) {
        for (int q = 0; q < run; ++q) {
          const int b = order[at + q];
          T* yr = y0 + b * out;
          const T* w1[1] = {wb};
          const T c = p.base_values ? tb.base_values[b * tb.base_stride] : silu(tb.x[b]);
          group_axpy<T, 1, 1>(&yr, out, w1, &c);
        }
      }
      at += run;
      continue;
    }
    const T* w[R];
    bool ok[K + 1];
    for (int r = 0; r <= K; ++r) {
      const int64_t j = s - K + r;
      ok[r] = j >= 0 && j < nb;
      w[r] = ok[r] ? wi + j * out : zero_row;
    }
    if (kSilu) w[K + 1] = wb;
    for (int q = 0; q < run;) {
      const int m = run - q >= kGroup ? kGroup : run - q >= 2 ? 2 : 1;
      T* yr[kGroup];
      T c[kGroup * R];
      for (int g = 0; g < m; ++g) {
        const int b = order[at + q + g];
        yr[g] = y0 + b * out;
        for (int r = 0; r <= K; ++r) c[g * R + r] = ok[r] ? tb.N[r][at + q + g] : T(0);
        if (kSilu) c[g * R + K + 1] = p.base_values ? tb.base_values[b * tb.base_stride] : silu(tb.x[b]);
      }
      if (m == kGroup) group_axpy<T, R, kGroup>(yr, out, w, c);
      else if (m == 2) group_axpy<T, R, 2>(yr, out, w, c);
      else group_axpy<T, R, 1>(yr, out, w, c);
      q += m;
    }
    at += run;
  }
}

// One output (a scalar regression's last layer): per sample a sum over its k+2 rows'
// scalars; grouping samples (forward_tile_input) costs more than it saves here.
template <typename T, int K, bool kSilu>
void forward_tile_input_single(const KanProblem<T>& p, int64_t i, const TileBasis<T>& tb,
                               int n, T* y0) {
  const int64_t nb = p.n_knots - K - 1;
  const T* wi = p.spline_weight + i * nb;
  const T wb = p.base_weight[i];
  for (int q = 0; q < n; ++q) {
    const int b = tb.order[q];
    const int64_t s = tb.span[b];
    T acc = y0[b];
    if (s >= 0) {
      for (int r = 0; r <= K; ++r) {
        const int64_t j = s - K + r;
        if (j >= 0 && j < nb) acc += tb.N[r][q] * wi[j];  // no coefficient past the ends
      }
    }
    if (kSilu) acc += (p.base_values ? tb.base_values[b * tb.base_stride] : silu(tb.x[b])) * wb;
    y0[b] = acc;
  }
}

template <typename T, int K, bool kSilu>
void forward_grouped(const KanProblem<T>& p, T* y) {
  const int64_t in = p.in, out = p.out;
  const KnotData<T> knots(p);
  T* zero_row = alloc_array<T>(out);
  zero_array(zero_row, out);
  // 256 samples: their output rows (256 KB at out=256) stay in L2.
  const int64_t tile_len = 256;
  const int64_t n_tiles = (p.batch + tile_len - 1) / tile_len;
#pragma omp parallel num_threads(p.threads)
  {
    TileBasis<T>* tb = static_cast<TileBasis<T>*>(__builtin_malloc(sizeof(TileBasis<T>)));
#pragma omp for schedule(static)
    for (int64_t tile = 0; tile < n_tiles; ++tile) {
      const int64_t b0 = tile * tile_len;
      const int n = static_cast<int>(b0 + tile_len < p.batch ? tile_len : p.batch - b0);
      zero_array(y + b0 * out, n * out);
      for (int64_t i = 0; i < in; ++i) {
        tile_bases_for_input<T, K, false>(p, knots, *tb, b0, n, i);
        if (out == 1)
          forward_tile_input_single<T, K, kSilu>(p, i, *tb, n, y + b0);
        else
          forward_tile_input<T, K, kSilu>(p, i, *tb, n, y + b0 * out, zero_row);
      }
    }
    __builtin_free(tb);
  }
  __builtin_free(zero_row);
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

// Orders 1..5: span-grouped kernels (4096x256x256, 2 threads: G=5 25 ms, G=50 40 ms,
// against 30 and 54 for the input-blocked forward_k, which serves any other order).
template <typename T, bool kSilu>
void forward_dispatch(const KanProblem<T>& p, T* y) {
  switch (p.k) {
    case 1: return forward_grouped<T, 1, kSilu>(p, y);
    case 2: return forward_grouped<T, 2, kSilu>(p, y);
    case 3: return forward_grouped<T, 3, kSilu>(p, y);
    case 4: return forward_grouped<T, 4, kSilu>(p, y);
    case 5: return forward_grouped<T, 5, kSilu>(p, y);
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
