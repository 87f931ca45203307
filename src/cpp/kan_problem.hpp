// The arguments of one fused KAN-layer call, already validated by bindings.cpp, and the
// constants the kernels and bindings.cpp (which exports them to Python) share.
#pragma once

#include <cstdint>

// Forced inlining for the small hot helpers (row passes, per-sample scales, the
// span-run bodies): left to GCC's heuristics, some were emitted out of line once the
// kernels were split into headers, and the forward ran 1.2-2.3x slower (perf: out-of-line
// group_axpy).  Lambdas take it as `[&](...) PYKAN_LAMBDA_INLINE {`.
#define PYKAN_INLINE __attribute__((always_inline)) inline
#define PYKAN_LAMBDA_INLINE __attribute__((always_inline))

namespace pykan {

// Largest spline order the kernels accept (bases and derivatives live in arrays of
// kMaxOrder + 1 values on the stack).
constexpr int kMaxOrder = 15;

// The base function's code in the `base` argument of forward/backward.
enum class BaseFun : int { kNone = 0, kSilu = 1 };

// Shapes: x [batch, in], grid [in, n_knots], spline_weight [in, n_basis, out] with
// n_basis = n_knots - k - 1 (pykan's coef * scale_sp * mask, transposed so that `out` is
// contiguous), base_weight [in, out] (scale_base * mask).  All C-contiguous.
template <typename T>
struct KanProblem {
  const T* x;
  const T* grid;
  const T* spline_weight;
  const T* base_weight;
  int64_t batch, in, out, n_knots;
  int k;
  BaseFun base;
  int threads;
  // Optional [batch, in] arrays of SiLU(x) and SiLU'(x) (base_grads: backward only),
  // computed by the caller with torch's vectorised exp; null: the kernels compute them.
  const T* base_values = nullptr;
  const T* base_grads = nullptr;
  int64_t n_basis() const { return n_knots - k - 1; }
};

// Forward: y [batch, out] (overwritten).
template <typename T>
void kan_forward(const KanProblem<T>& p, T* y);

// Backward: grad_x [batch, in], grad_spline_weight [in, n_basis, out], grad_base_weight
// [in, out], each overwritten; a null pointer skips that gradient.
template <typename T>
void kan_backward(const KanProblem<T>& p, const T* grad_y, T* grad_x,
                  T* grad_spline_weight, T* grad_base_weight);

// Which instruction set the dispatcher picked: "avx512", "avx2" or "generic".
const char* active_isa();

}  // namespace pykan
