// pybind11 entry points: check every argument, take the raw pointers, release the GIL and
// call the kernels.  Arrays arrive as zero-copy numpy views of torch tensors.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "derivative_kernels.hpp"
#include "kan_problem.hpp"

namespace py = pybind11;

namespace {

using pykan::BaseFun;
using pykan::kMaxOrder;

std::string shape_of(const py::array& a) {
  std::string s = "[";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    if (d) s += ", ";
    s += std::to_string(a.shape(d));
  }
  return s + "]";
}

void require_array(const py::array& a, const char* name, py::ssize_t ndim,
                   const py::dtype& dtype, bool writeable) {
  if (!a.dtype().is(dtype))
    throw py::type_error(std::string(name) + ": expected dtype " + std::string(py::str(dtype)) +
                         " like x, got " + std::string(py::str(a.dtype())));
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + ": expected a " + std::to_string(ndim) +
                          "-D array, got shape " + shape_of(a));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + ": expected a C-contiguous array");
  if (writeable && !a.writeable())
    throw py::value_error(std::string(name) + ": expected a writeable array");
}

void require_shape(const py::array& a, const char* name, std::initializer_list<int64_t> dims) {
  py::ssize_t d = 0;
  bool ok = true;
  for (int64_t want : dims) ok = ok && a.shape(d++) == want;
  if (!ok) {
    std::string w = "[";
    d = 0;
    for (int64_t want : dims) w += (d++ ? ", " : "") + std::to_string(want);
    throw py::value_error(std::string(name) + ": expected shape " + w + "], got " + shape_of(a));
  }
}

template <typename T>
void require_sorted_finite_grid(const T* g, int64_t in, int64_t nk) {
  for (int64_t i = 0; i < in; ++i) {
    const T* t = g + i * nk;
    for (int64_t j = 0; j < nk; ++j) {
      if (!std::isfinite(t[j]))
        throw py::value_error("grid: row " + std::to_string(i) + " has a non-finite knot");
      if (j > 0 && t[j] < t[j - 1])
        throw py::value_error("grid: row " + std::to_string(i) + " is not sorted ascending");
    }
  }
}

struct Checked {
  int64_t batch, in, out, nk;
};

// x, grid and spline_weight: dtypes, ranks, contiguity, shapes, a sorted finite grid.
Checked check_spline(const py::array& x, const py::array& grid, const py::array& spline_weight,
                     int k, int threads) {
  if (x.dtype().is(py::dtype::of<float>()) == false && x.dtype().is(py::dtype::of<double>()) == false)
    throw py::type_error("x: expected dtype float32 or float64, got " + std::string(py::str(x.dtype())));
  const py::dtype dt = x.dtype();
  require_array(x, "x", 2, dt, false);
  require_array(grid, "grid", 2, dt, false);
  require_array(spline_weight, "spline_weight", 3, dt, false);
  if (k < 1 || k > kMaxOrder)
    throw py::value_error("k: expected 1 <= k <= " + std::to_string(kMaxOrder) + ", got " +
                          std::to_string(k));
  if (threads < 1) throw py::value_error("threads: expected at least 1, got " + std::to_string(threads));
  Checked c{x.shape(0), x.shape(1), spline_weight.shape(2), grid.shape(1)};
  if (c.nk < 2 * k + 2)
    throw py::value_error("grid: expected at least 2k+2 = " + std::to_string(2 * k + 2) +
                          " knots per input (G >= 1), got " + std::to_string(c.nk));
  require_shape(grid, "grid", {c.in, c.nk});
  require_shape(spline_weight, "spline_weight", {c.in, c.nk - k - 1, c.out});
  if (dt.is(py::dtype::of<float>()))
    require_sorted_finite_grid(static_cast<const float*>(grid.data()), c.in, c.nk);
  else
    require_sorted_finite_grid(static_cast<const double*>(grid.data()), c.in, c.nk);
  return c;
}

Checked check_common(const py::array& x, const py::array& grid, const py::array& spline_weight,
                     const py::array& base_weight, int k, int base, int threads) {
  const Checked c = check_spline(x, grid, spline_weight, k, threads);
  require_array(base_weight, "base_weight", 2, x.dtype(), false);
  require_shape(base_weight, "base_weight", {c.in, c.out});
  if (base != static_cast<int>(BaseFun::kNone) && base != static_cast<int>(BaseFun::kSilu))
    throw py::value_error("base: expected 0 (none) or 1 (silu)");
  return c;
}

template <typename T>
pykan::KanProblem<T> make_problem(const Checked& c, const py::array& x, const py::array& grid,
                                  const py::array& sw, const py::array& bw, int k, int base,
                                  int threads) {
  return pykan::KanProblem<T>{static_cast<const T*>(x.data()), static_cast<const T*>(grid.data()),
                              static_cast<const T*>(sw.data()), static_cast<const T*>(bw.data()),
                              c.batch, c.in, c.out, c.nk, k, static_cast<pykan::BaseFun>(base),
                              threads};
}

// Optional [batch, in] inputs come as None; a present one is checked.
template <typename T>
const T* optional_input(const py::object& o, const char* name, const py::dtype& dt,
                        std::initializer_list<int64_t> dims) {
  if (o.is_none()) return nullptr;
  if (!py::isinstance<py::array>(o)) throw py::type_error(std::string(name) + ": expected a numpy array or None");
  py::array a = py::reinterpret_borrow<py::array>(o);
  require_array(a, name, static_cast<py::ssize_t>(dims.size()), dt, false);
  require_shape(a, name, dims);
  return static_cast<const T*>(a.data());
}

void forward(const py::array& x, const py::array& grid, const py::array& spline_weight,
             const py::array& base_weight, py::array& y, int k, int base, int threads,
             const py::object& base_values) {
  const Checked c = check_common(x, grid, spline_weight, base_weight, k, base, threads);
  require_array(y, "y", 2, x.dtype(), true);
  require_shape(y, "y", {c.batch, c.out});
  if (x.dtype().is(py::dtype::of<float>())) {
    auto p = make_problem<float>(c, x, grid, spline_weight, base_weight, k, base, threads);
    p.base_values = optional_input<float>(base_values, "base_values", x.dtype(), {c.batch, c.in});
    float* out = static_cast<float*>(y.mutable_data());
    py::gil_scoped_release release;
    pykan::kan_forward(p, out);
  } else {
    auto p = make_problem<double>(c, x, grid, spline_weight, base_weight, k, base, threads);
    p.base_values = optional_input<double>(base_values, "base_values", x.dtype(), {c.batch, c.in});
    double* out = static_cast<double*>(y.mutable_data());
    py::gil_scoped_release release;
    pykan::kan_forward(p, out);
  }
}

// Optional outputs come as None; each present one is checked and overwritten.
template <typename T>
T* optional_output(const py::object& o, const char* name, const py::dtype& dt,
                   std::initializer_list<int64_t> dims) {
  if (o.is_none()) return nullptr;
  if (!py::isinstance<py::array>(o)) throw py::type_error(std::string(name) + ": expected a numpy array or None");
  py::array a = py::reinterpret_borrow<py::array>(o);
  require_array(a, name, static_cast<py::ssize_t>(dims.size()), dt, true);
  require_shape(a, name, dims);
  return static_cast<T*>(a.mutable_data());
}

template <typename T>
void backward_typed(const Checked& c, const py::array& x, const py::array& grid,
                    const py::array& sw, const py::array& bw, const py::array& grad_y,
                    const py::object& grad_x, const py::object& grad_sw, const py::object& grad_bw,
                    int k, int base, int threads, const py::object& base_values,
                    const py::object& base_grads) {
  const py::dtype dt = x.dtype();
  if (base_values.is_none() != base_grads.is_none())
    throw py::value_error("base_values: give base_values and base_grads together, or neither");
  T* gx = optional_output<T>(grad_x, "grad_x", dt, {c.batch, c.in});
  T* gw = optional_output<T>(grad_sw, "grad_spline_weight", dt, {c.in, c.nk - k - 1, c.out});
  T* gb = optional_output<T>(grad_bw, "grad_base_weight", dt, {c.in, c.out});
  auto p = make_problem<T>(c, x, grid, sw, bw, k, base, threads);
  p.base_values = optional_input<T>(base_values, "base_values", dt, {c.batch, c.in});
  p.base_grads = optional_input<T>(base_grads, "base_grads", dt, {c.batch, c.in});
  const T* dy = static_cast<const T*>(grad_y.data());
  py::gil_scoped_release release;
  pykan::kan_backward(p, dy, gx, gw, gb);
}

void backward(const py::array& x, const py::array& grid, const py::array& spline_weight,
              const py::array& base_weight, const py::array& grad_y, const py::object& grad_x,
              const py::object& grad_spline_weight, const py::object& grad_base_weight, int k,
              int base, int threads, const py::object& base_values, const py::object& base_grads) {
  const Checked c = check_common(x, grid, spline_weight, base_weight, k, base, threads);
  require_array(grad_y, "grad_y", 2, x.dtype(), false);
  require_shape(grad_y, "grad_y", {c.batch, c.out});
  if (x.dtype().is(py::dtype::of<float>()))
    backward_typed<float>(c, x, grid, spline_weight, base_weight, grad_y, grad_x,
                          grad_spline_weight, grad_base_weight, k, base, threads, base_values,
                          base_grads);
  else
    backward_typed<double>(c, x, grid, spline_weight, base_weight, grad_y, grad_x,
                           grad_spline_weight, grad_base_weight, k, base, threads, base_values,
                           base_grads);
}

template <typename T>
pykan::DerivativeProblem<T> derivative_problem(const Checked& c, const py::array& x,
                                               const py::array& grid, const py::array& sw,
                                               const py::object& row_scale, int k, int order,
                                               int threads) {
  if (order < 0) throw py::value_error("order: expected a derivative order >= 0, got " + std::to_string(order));
  return pykan::DerivativeProblem<T>{
      static_cast<const T*>(x.data()), static_cast<const T*>(grid.data()),
      static_cast<const T*>(sw.data()),
      optional_input<T>(row_scale, "row_scale", x.dtype(), {c.batch, c.in}),
      c.batch, c.in, c.out, c.nk, k, order, threads};
}

template <typename T>
void derivative_forward_typed(const Checked& c, const py::array& x, const py::array& grid,
                              const py::array& sw, const py::object& row_scale, py::array& y,
                              int k, int order, int threads) {
  const auto p = derivative_problem<T>(c, x, grid, sw, row_scale, k, order, threads);
  T* out = static_cast<T*>(y.mutable_data());
  py::gil_scoped_release release;
  pykan::spline_derivative_forward(p, out);
}

void derivative_forward(const py::array& x, const py::array& grid, const py::array& spline_weight,
                        const py::object& row_scale, py::array& y, int k, int order, int threads) {
  const Checked c = check_spline(x, grid, spline_weight, k, threads);
  require_array(y, "y", 2, x.dtype(), true);
  require_shape(y, "y", {c.batch, c.out});
  if (x.dtype().is(py::dtype::of<float>()))
    derivative_forward_typed<float>(c, x, grid, spline_weight, row_scale, y, k, order, threads);
  else
    derivative_forward_typed<double>(c, x, grid, spline_weight, row_scale, y, k, order, threads);
}

template <typename T>
void derivative_backward_typed(const Checked& c, const py::array& x, const py::array& grid,
                               const py::array& sw, const py::object& row_scale,
                               const py::array& grad_y, const py::object& t0, const py::object& t1,
                               const py::object& grad_sw, int k, int order, int threads) {
  const py::dtype dt = x.dtype();
  const auto p = derivative_problem<T>(c, x, grid, sw, row_scale, k, order, threads);
  T* a = optional_output<T>(t0, "t0", dt, {c.batch, c.in});
  T* b = optional_output<T>(t1, "t1", dt, {c.batch, c.in});
  T* gw = optional_output<T>(grad_sw, "grad_spline_weight", dt, {c.in, c.nk - k - 1, c.out});
  const T* dy = static_cast<const T*>(grad_y.data());
  py::gil_scoped_release release;
  pykan::spline_derivative_backward(p, dy, a, b, gw);
}

void derivative_backward(const py::array& x, const py::array& grid, const py::array& spline_weight,
                         const py::object& row_scale, const py::array& grad_y, const py::object& t0,
                         const py::object& t1, const py::object& grad_spline_weight, int k,
                         int order, int threads) {
  const Checked c = check_spline(x, grid, spline_weight, k, threads);
  require_array(grad_y, "grad_y", 2, x.dtype(), false);
  require_shape(grad_y, "grad_y", {c.batch, c.out});
  if (x.dtype().is(py::dtype::of<float>()))
    derivative_backward_typed<float>(c, x, grid, spline_weight, row_scale, grad_y, t0, t1,
                                     grad_spline_weight, k, order, threads);
  else
    derivative_backward_typed<double>(c, x, grid, spline_weight, row_scale, grad_y, t0, t1,
                                      grad_spline_weight, k, order, threads);
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "pykan_fast compiled kernels: fused KAN-layer forward and backward (CPU)";
  // Constants the Python side needs: the largest spline order k, and the code of each
  // base function for the `base` argument of forward/backward.
  m.attr("MAX_ORDER") = kMaxOrder;
  py::dict base_codes;
  base_codes["none"] = static_cast<int>(BaseFun::kNone);
  base_codes["silu"] = static_cast<int>(BaseFun::kSilu);
  m.attr("BASE_FUN_CODES") = base_codes;
  m.def("forward", &forward, py::arg("x").noconvert(), py::arg("grid").noconvert(),
        py::arg("spline_weight").noconvert(), py::arg("base_weight").noconvert(),
        py::arg("y").noconvert(), py::arg("k"), py::arg("base"), py::arg("threads"),
        py::arg("base_values").none(true) = py::none(),
        "y[b, o] = sum_i base_weight[i, o] * base(x[b, i])\n"
        "          + sum_i sum_j spline_weight[i, j, o] * B_j(x[b, i]; grid[i])  (overwrites y)\n"
        "base: 0 none, 1 SiLU; base_values: optional [batch, in] SiLU(x) precomputed.");
  m.def("backward", &backward, py::arg("x").noconvert(), py::arg("grid").noconvert(),
        py::arg("spline_weight").noconvert(), py::arg("base_weight").noconvert(),
        py::arg("grad_y").noconvert(), py::arg("grad_x").none(true),
        py::arg("grad_spline_weight").none(true), py::arg("grad_base_weight").none(true),
        py::arg("k"), py::arg("base"), py::arg("threads"),
        py::arg("base_values").none(true) = py::none(), py::arg("base_grads").none(true) = py::none(),
        "Gradients of forward() for x, spline_weight and base_weight (None skips one).");
  m.def("spline_derivative_forward", &derivative_forward, py::arg("x").noconvert(),
        py::arg("grid").noconvert(), py::arg("spline_weight").noconvert(),
        py::arg("row_scale").none(true), py::arg("y").noconvert(), py::arg("k"),
        py::arg("order"), py::arg("threads"),
        "y[b, o] = sum_i row_scale[b, i] sum_j spline_weight[i, j, o] * B^(order)_j(x[b, i])\n"
        "(overwrites y; row_scale None: ones).");
  m.def("spline_derivative_backward", &derivative_backward, py::arg("x").noconvert(),
        py::arg("grid").noconvert(), py::arg("spline_weight").noconvert(),
        py::arg("row_scale").none(true), py::arg("grad_y").noconvert(), py::arg("t0").none(true),
        py::arg("t1").none(true), py::arg("grad_spline_weight").none(true), py::arg("k"),
        py::arg("order"), py::arg("threads"),
        "t0[b, i] = sum_o grad_y[b, o] sum_j spline_weight[i, j, o] B^(order)_j(x[b, i]),\n"
        "t1 the same with order + 1, grad_spline_weight[i, j, o] = sum_b row_scale[b, i]\n"
        "B^(order)_j(x[b, i]) grad_y[b, o]; None skips one.");
  m.def("active_isa", &pykan::active_isa, "Instruction set of the kernels in use.");
}
