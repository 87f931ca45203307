"""The Triton backend: CUDA tensors (or CPU tensors under ``TRITON_INTERPRET=1``).

Triton is imported on first use, never when ``pykan_fast`` is imported, so the package
works without it; the kernels live in ``pykan_fast.triton`` (src/triton).
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["compute_dtype", "forward", "backward", "spline_derivative",
           "spline_derivative_backward", "FORCE_PATH"]

# "dense", "local" or None (the kernels choose by G, see pykan_fast.triton.choose_path). For
# tests and benchmarks.
FORCE_PATH: str | None = None


def _kernels():
    from .. import triton as kernels  # its launchers import triton on first access

    return kernels


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 runs as it is; float16/bfloat16 are computed in float32 (float32 accumulate,
    the caller converts back). float64 is not supported: tl.dot has no float64 operands."""
    if dtype in (torch.float32, torch.float16, torch.bfloat16):
        return torch.float32
    raise TypeError(
        f"x: the triton backend computes float32 (and accepts float16/bfloat16), got {dtype}; "
        'use backend="cpu" on CPU tensors or backend="torch" for float64')


def _device_scope(x: torch.Tensor):
    return torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()


def forward(x, grid, spline_weight, base_weight, k: int, base: int) -> torch.Tensor:
    """y `[B, out]` of the fused layer; every tensor contiguous, float32, on one device."""
    with _device_scope(x):
        return _kernels().kan_forward(x, grid, spline_weight, base_weight, k, base,
                                      path=FORCE_PATH)


def backward(x, grid, spline_weight, base_weight, grad_y, k: int, base: int,
             need_x: bool, need_spline: bool, need_base: bool):
    """(grad_x, grad_spline_weight, grad_base_weight); None where not needed."""
    with _device_scope(x):
        return _kernels().kan_backward(x, grid, spline_weight, base_weight, grad_y, k, base,
                                       need_x, need_spline, need_base, path=FORCE_PATH)


def spline_derivative(x, grid, spline_weight, row_scale, k: int, order: int) -> torch.Tensor:
    """y[b, o] = sum_i row_scale[b, i] sum_j spline_weight[i, j, o] B^(order)_j(x[b, i])
    `[B, out]` (row_scale None: ones); float32, contiguous, on one device."""
    with _device_scope(x):
        return _kernels().spline_derivative(x, grid, spline_weight, row_scale, k, order)


def spline_derivative_backward(x, grid, spline_weight, row_scale, grad_y, k: int, order: int,
                               need_t0: bool, need_t1: bool, need_weight: bool):
    """(T_order `[B, in]`, T_order+1 `[B, in]`, grad_spline_weight) of
    :func:`spline_derivative`; None where not needed (see pykan_fast.triton.derivative)."""
    with _device_scope(x):
        return _kernels().spline_derivative_backward(x, grid, spline_weight, row_scale, grad_y,
                                                     k, order, need_t0, need_t1, need_weight)
