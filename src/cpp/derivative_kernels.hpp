// Spline-only terms with derivative bases, for differentiating a KAN layer more than once
// (a PINN's d2y/dx2 and the backward through it).  Every derivative of the layer is a
// sum of these two contractions, each with a derivative order d and an optional per-
// (sample, input) scale s:
//   forward:  y[b, o]       = sum_i s[b, i] sum_j W[i, j, o] B^(d)_j(x[b, i])
//   backward: T_d[b, i]     = sum_o dy[b, o] sum_j W[i, j, o] B^(d)_j(x[b, i])
//             T_d+1[b, i]   = the same with B^(d+1)
//             dW[i, j, o]   = sum_b s[b, i] B^(d)_j(x[b, i]) dy[b, o]
// Implemented per instruction set (derivative_tile_kernels.hpp, included by kernels_isa.cpp;
// dispatch.cpp picks the build): SIMD tiles of samples, as the layer kernels.
#pragma once

#include <cstdint>

namespace pykan {

template <typename T>
struct DerivativeProblem {
  const T* x;              // [batch, in]
  const T* grid;           // [in, n_knots]
  const T* spline_weight;  // [in, n_basis, out]
  const T* row_scale;      // [batch, in] or null (all ones)
  int64_t batch, in, out, n_knots;
  int k;
  int order;  // d >= 0
  int threads;
  int64_t n_basis() const { return n_knots - k - 1; }
};

// y [batch, out], overwritten.
template <typename T>
void spline_derivative_forward(const DerivativeProblem<T>& p, T* y);

// t0 = T_d, t1 = T_{d+1} [batch, in]; grad_weight [in, n_basis, out]; each overwritten,
// a null pointer skips it.  T at a non-finite x is NaN for d >= 1 (as the fused backward's
// grad_x), 0 for d = 0 (pykan's bases are 0 there).
template <typename T>
void spline_derivative_backward(const DerivativeProblem<T>& p, const T* grad_y, T* t0, T* t1,
                                T* grad_weight);

}  // namespace pykan
