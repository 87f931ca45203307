// One copy of the kernels per instruction set: CMake compiles this file once per ISA with
// -DPYKAN_ISA=<name> and that ISA's flags; dispatch.cpp picks one at run time.  The kernel
// headers are included inside namespace pykan::<isa> (so they include nothing themselves
// but each other): every template they instantiate is this ISA's own.
#include <cstdint>

#include <omp.h>

#include "derivative_kernels.hpp"
#include "kan_problem.hpp"

#ifndef PYKAN_ISA
#error "PYKAN_ISA must name the instruction set (avx512, avx2, generic)"
#endif

namespace pykan {
namespace PYKAN_ISA {

#include "simd.hpp"
#include "spline_basis.hpp"
#include "base_fun.hpp"
#include "tile_basis.hpp"
#include "row_passes.hpp"
#include "forward_kernels.hpp"
#include "backward_kernels.hpp"
#include "derivative_tile_kernels.hpp"

template void forward<float>(const KanProblem<float>&, float*);
template void forward<double>(const KanProblem<double>&, double*);
template void backward<float>(const KanProblem<float>&, const float*, float*, float*, float*);
template void backward<double>(const KanProblem<double>&, const double*, double*, double*,
                               double*);
template void derivative_forward<float>(const DerivativeProblem<float>&, float*);
template void derivative_forward<double>(const DerivativeProblem<double>&, double*);
template void derivative_backward<float>(const DerivativeProblem<float>&, const float*, float*,
                                         float*, float*);
template void derivative_backward<double>(const DerivativeProblem<double>&, const double*,
                                          double*, double*, double*);

}  // namespace PYKAN_ISA
}  // namespace pykan
