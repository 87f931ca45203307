"""The compiled C++/OpenMP backend: torch CPU tensors passed as zero-copy numpy views."""

from __future__ import annotations

import torch

from .._compiled import C


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 and float64 run as they are; float16/bfloat16 are computed in float32."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _view(t: torch.Tensor):
    return t.detach().numpy()


def forward(x, grid, spline_weight, base_weight, k: int, base: int) -> torch.Tensor:
    """y `[B, out]` of the fused layer; every tensor contiguous, of one float dtype."""
    y = torch.empty(x.shape[0], spline_weight.shape[2], dtype=x.dtype)
    C.forward(_view(x), _view(grid), _view(spline_weight), _view(base_weight), _view(y),
              k, base, torch.get_num_threads())
    return y


def backward(x, grid, spline_weight, base_weight, grad_y, k: int, base: int,
             need_x: bool, need_spline: bool, need_base: bool):
    """(grad_x, grad_spline_weight, grad_base_weight); None where not needed."""
    grad_x = torch.empty_like(x) if need_x else None
    grad_sw = torch.empty_like(spline_weight) if need_spline else None
    grad_bw = torch.empty_like(base_weight) if need_base else None
    C.backward(_view(x), _view(grid), _view(spline_weight), _view(base_weight), _view(grad_y),
               None if grad_x is None else _view(grad_x),
               None if grad_sw is None else _view(grad_sw),
               None if grad_bw is None else _view(grad_bw),
               k, base, torch.get_num_threads())
    return grad_x, grad_sw, grad_bw
