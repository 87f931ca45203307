"""The compiled C++/OpenMP backend: torch CPU tensors passed as zero-copy numpy views."""

from __future__ import annotations

import torch

from .._compiled import C
from .kernel_codes import SILU
from .threads import serial_torch


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 and float64 run as they are; float16/bfloat16 are computed in float32."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


# Below this much work (samples x inputs x outputs x (k+1) multiply-adds) one thread runs
# the kernel: an OpenMP fork/join costs tens of microseconds on an idle machine and far
# more when another process holds a core, more than the work itself. Results stay
# deterministic for a given shape and thread setting.
SERIAL_WORK = 1 << 17


def _threads(x: torch.Tensor, spline_weight: torch.Tensor, k: int) -> int:
    threads = torch.get_num_threads()
    if threads > 1 and x.shape[0] * x.shape[1] * spline_weight.shape[2] * (k + 1) < SERIAL_WORK:
        return 1
    return threads


def _view(t: torch.Tensor):
    # detach only where needed: a call per tensor per kernel call, ~15 per evaluation
    return t.detach().numpy() if t.requires_grad else t.numpy()


def silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU(x) with torch's vectorised exp: the kernels read it instead of calling a scalar
    exp per (sample, input) (a third of the backward's overhead)."""
    with serial_torch(x.numel()):
        return torch.nn.functional.silu(x.detach())


def silu_grad(x: torch.Tensor) -> torch.Tensor:
    """SiLU'(x) in one vectorised op (aten's silu_backward with a unit gradient)."""
    x = x.detach()
    with serial_torch(x.numel()):
        return torch.ops.aten.silu_backward(x.new_ones(()).expand_as(x), x)


def forward(x, grid, spline_weight, base_weight, k: int, base: int,
            base_values: torch.Tensor | None = None) -> torch.Tensor:
    """y `[B, out]` of the fused layer; every tensor contiguous, of one float dtype.
    ``base_values``: :func:`silu` of x when the caller has it already."""
    y = torch.empty(x.shape[0], spline_weight.shape[2], dtype=x.dtype)
    if base == SILU and base_values is None:
        base_values = silu(x)
    C.forward(_view(x), _view(grid), _view(spline_weight), _view(base_weight), _view(y),
              k, base, _threads(x, spline_weight, k),
              None if base_values is None else _view(base_values))
    return y


def backward(x, grid, spline_weight, base_weight, grad_y, k: int, base: int,
             need_x: bool, need_spline: bool, need_base: bool,
             base_values: torch.Tensor | None = None, base_grads: torch.Tensor | None = None):
    """(grad_x, grad_spline_weight, grad_base_weight); None where not needed.
    ``base_values``, ``base_grads``: :func:`silu` and :func:`silu_grad` of x when the
    caller has them (kept from the forward, or from an earlier call on the same x)."""
    grad_x = torch.empty_like(x) if need_x else None
    grad_sw = torch.empty_like(spline_weight) if need_spline else None
    grad_bw = torch.empty_like(base_weight) if need_base else None
    values = grads = None
    if base == SILU:
        values = _view(base_values if base_values is not None else silu(x))
        grads = _view(base_grads if base_grads is not None else silu_grad(x))
    C.backward(_view(x), _view(grid), _view(spline_weight), _view(base_weight), _view(grad_y),
               None if grad_x is None else _view(grad_x),
               None if grad_sw is None else _view(grad_sw),
               None if grad_bw is None else _view(grad_bw),
               k, base, _threads(x, spline_weight, k), values, grads)
    return grad_x, grad_sw, grad_bw


def spline_derivative(x, grid, spline_weight, row_scale, k: int, order: int,
                      out: torch.Tensor | None = None) -> torch.Tensor:
    """y[b, o] = sum_i row_scale[b, i] sum_j spline_weight[i, j, o] B^(order)_j(x[b, i]).
    ``out``: a contiguous `[B, out]` tensor of x's dtype to write y into (a slice of a
    larger result: no copy, and no fresh pages to fault in per call)."""
    y = torch.empty(x.shape[0], spline_weight.shape[2], dtype=x.dtype) if out is None else out
    C.spline_derivative_forward(_view(x), _view(grid), _view(spline_weight),
                                None if row_scale is None else _view(row_scale), _view(y),
                                k, order, _threads(x, spline_weight, k))
    return y


def spline_derivative_backward(x, grid, spline_weight, row_scale, grad_y, k: int, order: int,
                               need_t0: bool, need_t1: bool, need_weight: bool):
    """(T_order, T_order+1, grad_spline_weight) of :func:`spline_derivative`; None where
    not needed (see src/cpp/derivative_kernels.hpp)."""
    t0 = torch.empty_like(x) if need_t0 else None
    t1 = torch.empty_like(x) if need_t1 else None
    grad_sw = torch.empty_like(spline_weight) if need_weight else None
    C.spline_derivative_backward(
        _view(x), _view(grid), _view(spline_weight),
        None if row_scale is None else _view(row_scale), _view(grad_y),
        None if t0 is None else _view(t0), None if t1 is None else _view(t1),
        None if grad_sw is None else _view(grad_sw), k, order, _threads(x, spline_weight, k))
    return t0, t1, grad_sw
