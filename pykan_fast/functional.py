"""``kan_layer``: pykan's KANLayer forward as one function, dispatched to a backend."""

from __future__ import annotations

import torch

from . import backends
from .autograd import FusedKanFunction
from .checks import check_layer_args
from .reference import kan_layer_reference, resolve_base_fun

__all__ = ["kan_layer", "fold_weights"]

# Base functions the kernels evaluate themselves (code passed to the kernels).
_FUSED_BASE = {"silu": 1}


def fold_weights(coef, scale_base, scale_sp, mask):
    """Kernel weights: spline_weight `[in, G+k, out]` = coef * scale_sp * mask (transposed
    so `out` is contiguous) and base_weight `[in, out]` = scale_base * mask."""
    spline_weight = (coef * (scale_sp * mask).unsqueeze(-1)).transpose(1, 2).contiguous()
    base_weight = (scale_base * mask).contiguous()
    return spline_weight, base_weight


def kan_layer(x, grid, coef, scale_base, scale_sp, mask, k: int = 3, base_fun="silu",
              backend: str | None = None) -> torch.Tensor:
    """pykan's ``KANLayer.forward`` output.

    x: `[B, in]`; grid: `[in, G+2k+1]`; coef: `[in, out, G+k]`; scale_base, scale_sp,
    mask: `[in, out]`. Returns y: `[B, out]` with
    ``y[b, o] = sum_i mask * (scale_base * base_fun(x) + scale_sp * spline_{i,o}(x))``.
    ``backend``: "cpu", "triton", "torch" or None (by device, or $PYKAN_FAST_BACKEND).
    """
    check_layer_args(x, grid, coef, scale_base, scale_sp, mask, k)
    base_callable = resolve_base_fun(base_fun)
    name = backends.select_backend(backend, x.device)
    if name == "torch":
        return kan_layer_reference(x, grid, coef, scale_base, scale_sp, mask, k, base_callable)

    impl = backends.implementation(name)
    out_dtype = x.dtype
    compute = impl.compute_dtype(x.dtype)
    if compute != x.dtype:
        # e.g. the CPU kernels compute half inputs in float32 and return the input dtype.
        x, grid, coef, scale_base, scale_sp, mask = (
            t.to(compute) for t in (x, grid, coef, scale_base, scale_sp, mask))

    spline_weight, base_weight = fold_weights(coef, scale_base, scale_sp, mask)
    fused_code = _FUSED_BASE.get(base_fun) if isinstance(base_fun, str) else None
    y = FusedKanFunction.apply(x.contiguous(), grid.contiguous(), spline_weight, base_weight,
                               k, fused_code or 0, impl)
    if fused_code is None:
        # Any other base function runs in torch as one [B, in] x [in, out] product; for
        # 'zero' (x * 0) only non-finite x can contribute (NaN), as in pykan.
        if base_fun != "zero" or not bool(torch.isfinite(x).all()):
            y = y + base_callable(x) @ base_weight
    return y.to(out_dtype)
