// Fused KAN-layer forward over local B-spline support.  Included once per instruction set
// by kernels_isa.cpp, inside namespace pykan::<isa>, after tile_basis.hpp and
// row_passes.hpp.
//
// Work is O(batch * in * out * (k + 2)), independent of G: each (sample, input) touches
// only the k+1 spline-weight rows of its knot span, plus the base-function row.  Nothing
// of size [batch, in, n_basis] or [batch, in, out] exists.
#pragma once

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
              cc[k + 1] = base_value(*tb, b);
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

// Span-grouped forward over one input for a tile (compile-time order only).
template <typename T, int K, bool kSilu>
void forward_tile_input(const KanProblem<T>& p, int64_t i, const TileBasis<T>& tb, int n,
                        T* y0, const T* zero_row) {
  constexpr int R = K + 1 + (kSilu ? 1 : 0);
  constexpr int kGroup = forward_span_group<R>();
  const int64_t out = p.out, nb = p.n_knots - K - 1;
  const T* wi = p.spline_weight + i * nb * out;
  const T* wb = p.base_weight + i * out;
  const int* order = tb.order;
  for_each_span_run(tb.span, order, n, [&](int at, int run, int64_t s) PYKAN_LAMBDA_INLINE {
    if (s < 0) {
      if (kSilu) {
        for (int q = 0; q < run; ++q) {
          const int b = order[at + q];
          T* yr = y0 + b * out;
          const T* w1[1] = {wb};
          const T c = base_value(tb, b);
          group_axpy<T, 1, 1>(&yr, out, w1, &c);
        }
      }
      return;
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
        if (kSilu) c[g * R + K + 1] = base_value(tb, b);
      }
      if (m == kGroup) group_axpy<T, R, kGroup>(yr, out, w, c);
      else if (kGroup > 2 && m == 2) group_axpy<T, R, 2>(yr, out, w, c);
      else group_axpy<T, R, 1>(yr, out, w, c);
      q += m;
    }
  });
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
    if (kSilu) acc += base_value(tb, b) * wb;
    y0[b] = acc;
  }
}

template <typename T, int K, bool kSilu>
void forward_grouped(const KanProblem<T>& p, T* y) {
  const int64_t in = p.in, out = p.out;
  const KnotData<T> knots(p);
  T* zero_row = alloc_array<T>(out);
  zero_array(zero_row, out);
  // 256 samples: their output rows (256 KB at out=256) stay in L2.  Past 16 bases, 512:
  // twice the samples per knot span (fewer one- and two-sample groups) for twice the rows
  // (512 KB; a Sapphire Rapids core has 2 MiB of L2).  4096x256x256, G=50, 2 threads:
  // 27.6 -> 23.3 ms; on a Zen 3 (512 KiB L2) it measured 0.96-1.0.
  const int64_t tile_len = p.n_knots - K - 1 > 16 ? 512 : 256;
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

template <typename T>
void forward(const KanProblem<T>& p, T* y) {
  if (p.base == BaseFun::kSilu) forward_dispatch<T, true>(p, y);
  else forward_dispatch<T, false>(p, y);
}
