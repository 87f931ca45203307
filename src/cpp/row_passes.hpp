// Passes over weight rows shared by the samples of one knot span: each weight (and
// gradient) row is loaded once for several samples.  Included once per instruction set by
// kernels_isa.cpp, inside namespace pykan::<isa>, after simd.hpp.  They work in native
// registers (Row<T>), their blocks sized by span_group to the register file.
#pragma once

// y[o] += a * w[o] for o in [0, n): one row (the derivative kernels' small layers).
template <typename T>
PYKAN_INLINE void axpy(T* y, T a, const T* w, int64_t n) {
#pragma omp simd
  for (int64_t o = 0; o < n; ++o) y[o] += a * w[o];
}

// yr[o] += sum_r coef[r] * row[r][o] for o in [o0, o1): the yr values are held in
// registers (four vectors at a time) over all rows.
template <typename T>
PYKAN_INLINE void accumulate_rows(T* yr, int64_t o0, int64_t o1, const T* const* row,
                            const T* coef, int n_rows) {
  using W = Row<T>;
  using V = typename W::V;
  constexpr int L = W::L;
  int64_t o = o0;
  for (; o + 4 * L <= o1; o += 4 * L) {
    V a0 = W::load(yr + o), a1 = W::load(yr + o + L), a2 = W::load(yr + o + 2 * L),
      a3 = W::load(yr + o + 3 * L);
    for (int r = 0; r < n_rows; ++r) {
      const V c = W::broadcast(coef[r]);
      const T* w = row[r] + o;
      a0 += c * W::load(w);
      a1 += c * W::load(w + L);
      a2 += c * W::load(w + 2 * L);
      a3 += c * W::load(w + 3 * L);
    }
    W::store(yr + o, a0);
    W::store(yr + o + L, a1);
    W::store(yr + o + 2 * L, a2);
    W::store(yr + o + 3 * L, a3);
  }
  for (; o + L <= o1; o += L) {
    V a = W::load(yr + o);
    for (int r = 0; r < n_rows; ++r) a += W::broadcast(coef[r]) * W::load(row[r] + o);
    W::store(yr + o, a);
  }
  for (; o < o1; ++o) {
    T a = yr[o];
    for (int r = 0; r < n_rows; ++r) a += coef[r] * row[r][o];
    yr[o] = a;
  }
}

// Forward for M samples sharing one knot span (so the same R weight rows):
// y[m] += sum_r c[m*R + r] * w[r], each weight vector loaded once for the M samples.
// Registers: M*R coefficients, M accumulators and one weight vector
// (forward_span_group).
template <int R>
constexpr int forward_span_group() { return span_group(R + 1, 1); }

template <typename T, int R, int M>
PYKAN_INLINE void group_axpy(T* const* y, int64_t out, const T* const* w, const T* c) {
  using W = Row<T>;
  using V = typename W::V;
  constexpr int L = W::L;
  V cv[M][R];
  for (int m = 0; m < M; ++m)
    for (int r = 0; r < R; ++r) cv[m][r] = W::broadcast(c[m * R + r]);
  int64_t o = 0;
  for (; o + L <= out; o += L) {
    V acc[M];
    for (int m = 0; m < M; ++m) acc[m] = W::load(y[m] + o);
    for (int r = 0; r < R; ++r) {
      V wv = W::load(w[r] + o);
      in_register(wv);
      for (int m = 0; m < M; ++m) acc[m] += cv[m][r] * wv;
    }
    for (int m = 0; m < M; ++m) W::store(y[m] + o, acc[m]);
  }
  for (; o < out; ++o)
    for (int m = 0; m < M; ++m) {
      T a = y[m][o];
      for (int r = 0; r < R; ++r) a += c[m * R + r] * w[r][o];
      y[m][o] = a;
    }
}

// M samples whose x share one knot span also share their R weight rows: one pass serves
// them all, loading each weight and gradient row once (M dot products per weight load,
// one read-modify-write of a gradient row for M samples).
// dyr[m]: grad_y rows; n[m*R + r], dots[m*R + r]: per-sample scales and results.
// Registers: M*R dot accumulators, M grad_y vectors, a weight and a gradient vector
// (backward_span_group).
template <int R>
constexpr int backward_span_group() { return span_group(R + 1, 2); }

template <typename T, int R, int M, bool kUpdate>
PYKAN_INLINE void group_rows(const T* const* dyr, int64_t out, const T* const* w, T* const* gw,
                       const T* n, T* dots) {
  using W = Row<T>;
  using V = typename W::V;
  constexpr int L = W::L;
  V acc[M][R];
  for (int m = 0; m < M; ++m)
    for (int r = 0; r < R; ++r) acc[m][r] = V{};
  int64_t o = 0;
  for (; o + L <= out; o += L) {
    V d[M];
    for (int m = 0; m < M; ++m) d[m] = W::load(dyr[m] + o);
    for (int r = 0; r < R; ++r) {
      V wv = W::load(w[r] + o);
      in_register(wv);
      for (int m = 0; m < M; ++m) acc[m][r] += d[m] * wv;
      if (kUpdate) {
        V g = W::load(gw[r] + o);
        for (int m = 0; m < M; ++m) g += W::broadcast(n[m * R + r]) * d[m];
        W::store(gw[r] + o, g);
      }
    }
  }
  for (int m = 0; m < M; ++m) {
    for (int r = 0; r < R; ++r) {
      T sum = W::hsum(acc[m][r]);
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
