"""The compiled C++/OpenMP backend: torch CPU tensors passed as zero-copy numpy views."""

from __future__ import annotations

import torch

from .._compiled import C


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 and float64 run as they are; float16/bfloat16 are computed in float32."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _view(t: torch.Tensor):
    return t.detach().numpy()


def _silu_and_grad(x: torch.Tensor):
    """SiLU(x) and SiLU'(x) with torch's vectorised exp: the kernels read them instead
    of calling a scalar exp per (sample, input) (a third of the backward's overhead)."""
    with torch.no_grad():
        sig = torch.sigmoid(x)
        return torch.nn.functional.silu(x), sig * (1 + x * (1 - sig))


def forward(x, grid, spline_weight, base_weight, k: int, base: int) -> torch.Tensor:
    """y `[B, out]` of the fused layer; every tensor contiguous, of one float dtype."""
    y = torch.empty(x.shape[0], spline_weight.shape[2], dtype=x.dtype)
    base_values = _view(torch.nn.functional.silu(x.detach())) if base == 1 else None
    C.forward(_view(x), _view(grid), _view(spline_weight), _view(base_weight), _view(y),
              k, base, torch.get_num_threads(), base_values)
    return y


def backward(x, grid, spline_weight, base_weight, grad_y, k: int, base: int,
             need_x: bool, need_spline: bool, need_base: bool):
    """(grad_x, grad_spline_weight, grad_base_weight); None where not needed."""
    grad_x = torch.empty_like(x) if need_x else None
    grad_sw = torch.empty_like(spline_weight) if need_spline else None
    grad_bw = torch.empty_like(base_weight) if need_base else None
    values = grads = None
    if base == 1:
        values, grads = (_view(t) for t in _silu_and_grad(x))
    C.backward(_view(x), _view(grid), _view(spline_weight), _view(base_weight), _view(grad_y),
               None if grad_x is None else _view(grad_x),
               None if grad_sw is None else _view(grad_sw),
               None if grad_bw is None else _view(grad_bw),
               k, base, torch.get_num_threads(), values, grads)
    return grad_x, grad_sw, grad_bw
