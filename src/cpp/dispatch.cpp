// Run-time choice of the kernel build for this processor (wheels must not assume AVX2).
#include <cstdlib>
#include <cstring>

#include "derivative_kernels.hpp"
#include "kan_problem.hpp"

namespace pykan {

#define PYKAN_DECLARE_ISA(isa)                                                        \
  namespace isa {                                                                     \
  template <typename T> void forward(const KanProblem<T>&, T*);                       \
  template <typename T> void backward(const KanProblem<T>&, const T*, T*, T*, T*);    \
  extern template void forward<float>(const KanProblem<float>&, float*);              \
  extern template void forward<double>(const KanProblem<double>&, double*);           \
  extern template void backward<float>(const KanProblem<float>&, const float*, float*, \
                                       float*, float*);                               \
  extern template void backward<double>(const KanProblem<double>&, const double*,     \
                                        double*, double*, double*);                   \
  template <typename T> void derivative_forward(const DerivativeProblem<T>&, T*);     \
  template <typename T>                                                               \
  void derivative_backward(const DerivativeProblem<T>&, const T*, T*, T*, T*);        \
  extern template void derivative_forward<float>(const DerivativeProblem<float>&,     \
                                                 float*);                             \
  extern template void derivative_forward<double>(const DerivativeProblem<double>&,   \
                                                  double*);                           \
  extern template void derivative_backward<float>(const DerivativeProblem<float>&,    \
                                                  const float*, float*, float*,       \
                                                  float*);                            \
  extern template void derivative_backward<double>(const DerivativeProblem<double>&,  \
                                                   const double*, double*, double*,   \
                                                   double*);                          \
  }

PYKAN_DECLARE_ISA(generic)
#ifdef PYKAN_HAVE_X86_ISAS
PYKAN_DECLARE_ISA(avx2)
PYKAN_DECLARE_ISA(avx512)
#endif

namespace {

enum class Isa { kGeneric, kAvx2, kAvx512 };

Isa detect_isa() {
  // PYKAN_FAST_ISA=generic|avx2|avx512 caps the choice (for tests and comparisons).
  const char* cap = std::getenv("PYKAN_FAST_ISA");
#ifdef PYKAN_HAVE_X86_ISAS
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (cap && std::strcmp(cap, "generic") == 0) return Isa::kGeneric;
  if (avx512 && !(cap && std::strcmp(cap, "avx2") == 0)) return Isa::kAvx512;
  if (avx2) return Isa::kAvx2;
#else
  (void)cap;
#endif
  return Isa::kGeneric;
}

Isa active() {
  static const Isa isa = detect_isa();
  return isa;
}

}  // namespace

template <typename T>
void kan_forward(const KanProblem<T>& p, T* y) {
  switch (active()) {
#ifdef PYKAN_HAVE_X86_ISAS
    case Isa::kAvx512: return avx512::forward<T>(p, y);
    case Isa::kAvx2: return avx2::forward<T>(p, y);
#endif
    default: return generic::forward<T>(p, y);
  }
}

template <typename T>
void kan_backward(const KanProblem<T>& p, const T* dy, T* dx, T* gw, T* gb) {
  switch (active()) {
#ifdef PYKAN_HAVE_X86_ISAS
    case Isa::kAvx512: return avx512::backward<T>(p, dy, dx, gw, gb);
    case Isa::kAvx2: return avx2::backward<T>(p, dy, dx, gw, gb);
#endif
    default: return generic::backward<T>(p, dy, dx, gw, gb);
  }
}

template <typename T>
void spline_derivative_forward(const DerivativeProblem<T>& p, T* y) {
  switch (active()) {
#ifdef PYKAN_HAVE_X86_ISAS
    case Isa::kAvx512: return avx512::derivative_forward<T>(p, y);
    case Isa::kAvx2: return avx2::derivative_forward<T>(p, y);
#endif
    default: return generic::derivative_forward<T>(p, y);
  }
}

template <typename T>
void spline_derivative_backward(const DerivativeProblem<T>& p, const T* grad_y, T* t0, T* t1,
                                T* grad_weight) {
  switch (active()) {
#ifdef PYKAN_HAVE_X86_ISAS
    case Isa::kAvx512: return avx512::derivative_backward<T>(p, grad_y, t0, t1, grad_weight);
    case Isa::kAvx2: return avx2::derivative_backward<T>(p, grad_y, t0, t1, grad_weight);
#endif
    default: return generic::derivative_backward<T>(p, grad_y, t0, t1, grad_weight);
  }
}

const char* active_isa() {
  switch (active()) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "generic";
  }
}

template void kan_forward<float>(const KanProblem<float>&, float*);
template void kan_forward<double>(const KanProblem<double>&, double*);
template void kan_backward<float>(const KanProblem<float>&, const float*, float*, float*,
                                  float*);
template void kan_backward<double>(const KanProblem<double>&, const double*, double*,
                                   double*, double*);
template void spline_derivative_forward<float>(const DerivativeProblem<float>&, float*);
template void spline_derivative_forward<double>(const DerivativeProblem<double>&, double*);
template void spline_derivative_backward<float>(const DerivativeProblem<float>&, const float*,
                                                float*, float*, float*);
template void spline_derivative_backward<double>(const DerivativeProblem<double>&,
                                                 const double*, double*, double*, double*);

}  // namespace pykan
