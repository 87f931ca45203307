// Derivative-order spline contractions (see derivative_kernels.hpp).
#include "derivative_kernels.hpp"

#include <omp.h>

#include <cstddef>
#include <vector>

#include "kan_problem.hpp"

namespace pykan {
namespace derivative {

#include "spline_basis.hpp"

// Per-input knot data of one call: find_span's uniform hint and the reciprocal table.
template <typename T>
struct Knots {
  std::vector<T> inv, inv_h;
  int64_t row;
  explicit Knots(const DerivativeProblem<T>& p)
      : inv(static_cast<size_t>(p.in * p.k * (p.n_knots + p.k))),
        inv_h(static_cast<size_t>(p.in)),
        row(static_cast<int64_t>(p.k) * (p.n_knots + p.k)) {
    for (int64_t i = 0; i < p.in; ++i) {
      const T* t = p.grid + i * p.n_knots;
      fill_knot_table(t, p.n_knots, p.k, inv.data() + i * row);
      inv_h[i] = uniform_inverse_step(t, p.n_knots);
    }
  }
  // Span of x for input i (-1 outside the grid) and, inside, D[r] = B^(d)_{s-k+r}(x).
  int64_t bases(const DerivativeProblem<T>& p, int64_t i, T x, int d, T* D) const {
    const T* t = p.grid + i * p.n_knots;
    const int64_t s = find_span(x, t, p.n_knots, inv_h[i]);
    if (s >= 0) local_basis_derivative(x, t, p.n_knots, inv.data() + i * row, s, p.k, d, D);
    return s;
  }
  // The same with D1[r] = B^(d+1)_{s-k+r}(x) too (one shared recursion), when D1 is not null.
  int64_t bases(const DerivativeProblem<T>& p, int64_t i, T x, int d, T* D0, T* D1) const {
    if (!D1) return bases(p, i, x, d, D0);
    const T* t = p.grid + i * p.n_knots;
    const int64_t s = find_span(x, t, p.n_knots, inv_h[i]);
    if (s >= 0) local_basis_derivative_pair(x, t, p.n_knots, inv.data() + i * row, s, p.k, d, D0, D1);
    return s;
  }
};

template <typename T>
void forward(const DerivativeProblem<T>& p, T* y) {
  const Knots<T> knots(p);
  const int64_t nb = p.n_basis(), out = p.out;
#pragma omp parallel for num_threads(p.threads) schedule(static)
  for (int64_t b = 0; b < p.batch; ++b) {
    T* yb = y + b * out;
    for (int64_t o = 0; o < out; ++o) yb[o] = T(0);
    T D[kMaxOrder + 1];
    for (int64_t i = 0; i < p.in; ++i) {
      const int64_t s = knots.bases(p, i, p.x[b * p.in + i], p.order, D);
      if (s < 0) continue;
      const T scale = p.row_scale ? p.row_scale[b * p.in + i] : T(1);
      for (int r = 0; r <= p.k; ++r) {
        const int64_t j = s - p.k + r;
        if (j < 0 || j >= nb) continue;
        const T c = scale * D[r];
        const T* w = p.spline_weight + (i * nb + j) * out;
        for (int64_t o = 0; o < out; ++o) yb[o] += c * w[o];
      }
    }
  }
}

template <typename T>
T dot(const T* a, const T* b, int64_t n) {
  T acc = T(0);
  for (int64_t o = 0; o < n; ++o) acc += a[o] * b[o];
  return acc;
}

// T_d[b, i] (t0) and T_d+1[b, i] (t1) of one (sample, input) from its bases D0, D1 and span
// s; the weight rows reached are the k+1 of that span.
template <typename T>
inline void t_values(const DerivativeProblem<T>& p, int64_t b, int64_t i, int64_t s,
                     const T* D0, const T* D1, const T* gy, T* t0, T* t1) {
  const int64_t nb = p.n_basis(), out = p.out, in = p.in;
  const T x = p.x[b * in + i];
  T v0 = T(0), v1 = T(0);
  if (s >= 0) {
    for (int r = 0; r <= p.k; ++r) {
      const int64_t j = s - p.k + r;
      if (j < 0 || j >= nb) continue;
      const T g = dot(p.spline_weight + (i * nb + j) * out, gy, out);
      v0 += D0[r] * g;
      if (t1) v1 += D1[r] * g;
    }
  }
  if (t0) t0[b * in + i] = p.order == 0 ? v0 : nan_unless_finite(x, v0);
  if (t1) t1[b * in + i] = nan_unless_finite(x, v1);
}

// grad_weight rows of input i += scale * B^(d)_j(x) * grad_y[b] for the sample's span.
template <typename T>
inline void add_weight_rows(const DerivativeProblem<T>& p, int64_t b, int64_t i, int64_t s,
                            const T* D, const T* gy, T* grad_weight) {
  if (s < 0) return;
  const int64_t nb = p.n_basis(), out = p.out;
  const T scale = p.row_scale ? p.row_scale[b * p.in + i] : T(1);
  T* gw = grad_weight + i * nb * out;
  for (int r = 0; r <= p.k; ++r) {
    const int64_t j = s - p.k + r;
    if (j < 0 || j >= nb) continue;
    const T c = scale * D[r];
    T* row = gw + j * out;
    for (int64_t o = 0; o < out; ++o) row[o] += c * gy[o];
  }
}

template <typename T>
void backward(const DerivativeProblem<T>& p, const T* grad_y, T* t0, T* t1, T* grad_weight) {
  const Knots<T> knots(p);
  const int64_t nb = p.n_basis(), out = p.out, in = p.in;
  if (grad_weight)
    for (int64_t e = 0; e < in * nb * out; ++e) grad_weight[e] = T(0);
  if (p.threads <= 1) {
    // One pass: each (sample, input)'s bases serve T and the weight gradient. Every
    // weight-gradient element still sums over the batch in order, as the split below.
    T D0[kMaxOrder + 1], D1[kMaxOrder + 1];
    for (int64_t b = 0; b < p.batch; ++b) {
      const T* gy = grad_y + b * out;
      for (int64_t i = 0; i < in; ++i) {
        const int64_t s = knots.bases(p, i, p.x[b * in + i], p.order, D0, t1 ? D1 : nullptr);
        if (t0 || t1) t_values(p, b, i, s, D0, D1, gy, t0, t1);
        if (grad_weight) add_weight_rows(p, b, i, s, D0, gy, grad_weight);
      }
    }
    return;
  }
  if (t0 || t1) {
    // Rows of T are independent: split the batch.
#pragma omp parallel for num_threads(p.threads) schedule(static)
    for (int64_t b = 0; b < p.batch; ++b) {
      T D0[kMaxOrder + 1], D1[kMaxOrder + 1];
      for (int64_t i = 0; i < in; ++i) {
        const int64_t s = knots.bases(p, i, p.x[b * in + i], p.order, D0, t1 ? D1 : nullptr);
        t_values(p, b, i, s, D0, D1, grad_y + b * out, t0, t1);
      }
    }
  }
  if (grad_weight) {
    // Each input owns its rows of the weight gradient: split the inputs, so the sums
    // over the batch run in one fixed order whatever the thread count.
#pragma omp parallel for num_threads(p.threads) schedule(static)
    for (int64_t i = 0; i < in; ++i) {
      T D[kMaxOrder + 1];
      for (int64_t b = 0; b < p.batch; ++b) {
        const int64_t s = knots.bases(p, i, p.x[b * in + i], p.order, D);
        add_weight_rows(p, b, i, s, D, grad_y + b * out, grad_weight);
      }
    }
  }
}

}  // namespace derivative

template <typename T>
void spline_derivative_forward(const DerivativeProblem<T>& p, T* y) {
  derivative::forward(p, y);
}

template <typename T>
void spline_derivative_backward(const DerivativeProblem<T>& p, const T* grad_y, T* t0, T* t1,
                                T* grad_weight) {
  derivative::backward(p, grad_y, t0, t1, grad_weight);
}

template void spline_derivative_forward<float>(const DerivativeProblem<float>&, float*);
template void spline_derivative_forward<double>(const DerivativeProblem<double>&, double*);
template void spline_derivative_backward<float>(const DerivativeProblem<float>&, const float*,
                                                float*, float*, float*);
template void spline_derivative_backward<double>(const DerivativeProblem<double>&,
                                                 const double*, double*, double*, double*);

}  // namespace pykan
