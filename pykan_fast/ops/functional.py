"""``kan_layer``: pykan's KANLayer forward as one function, dispatched to a backend."""

from __future__ import annotations

import torch

from . import backends
from .autograd import kan_layer_op
from .checks import check_layer_args
from .kernel_codes import FUSED_BASE, NO_BASE
from .reference import kan_layer_reference, resolve_base_fun
from .threads import serial_torch

__all__ = ["kan_layer", "fold_weights", "fold_weights_backward"]



def fold_weights(coef, scale_base, scale_sp, mask):
    """Kernel weights: spline_weight `[in, G+k, out]` = coef * scale_sp * mask (transposed
    so `out` is contiguous) and base_weight `[in, out]` = scale_base * mask.
    ``mask=None`` stands for a mask of ones (the caller has checked): a product by 1.0 is
    exact, so skipping it gives the same bits with two fewer ops. Small weights are folded
    on one torch thread (``serial_torch``), as is the chain rule."""
    with serial_torch(coef.numel()):
        if mask is None:
            spline_weight = (coef * scale_sp.unsqueeze(-1)).transpose(1, 2).contiguous()
            return spline_weight, scale_base.contiguous()
        spline_weight = (coef * (scale_sp * mask).unsqueeze(-1)).transpose(1, 2).contiguous()
        base_weight = (scale_base * mask).contiguous()
        return spline_weight, base_weight


def fold_weights_backward(grad_spline_weight, grad_base_weight, coef, scale_sp, mask,
                          need_coef: bool, need_scale_base: bool, need_scale_sp: bool):
    """:func:`fold_weights`' chain rule, for callers that run the kernels' backward
    without autograd (the fused stack): the kernels' weight gradients (spline
    `[in, G+k, out]`, base `[in, out]`) -> gradients of (coef, scale_base, scale_sp),
    None where not needed. The same products autograd forms through fold_weights
    (``mask=None``: a mask of ones, as there, whose exact products are skipped)."""
    with serial_torch(coef.numel()):
        return _fold_weights_backward(grad_spline_weight, grad_base_weight, coef, scale_sp,
                                      mask, need_coef, need_scale_base, need_scale_sp)


def _fold_weights_backward(grad_spline_weight, grad_base_weight, coef, scale_sp, mask,
                           need_coef, need_scale_base, need_scale_sp):
    grad_coef = grad_scale_base = grad_scale_sp = None
    if need_coef or need_scale_sp:
        g_spline = grad_spline_weight.transpose(1, 2)  # [in, out, G+k], as coef
        if need_coef:
            sp = scale_sp if mask is None else scale_sp * mask
            grad_coef = g_spline * sp.unsqueeze(-1)
        if need_scale_sp:
            grad_scale_sp = (g_spline * coef).sum(-1)
            if mask is not None:
                grad_scale_sp = grad_scale_sp * mask
    if need_scale_base:
        grad_scale_base = grad_base_weight if mask is None else grad_base_weight * mask
    return grad_coef, grad_scale_base, grad_scale_sp


class _FoldWeights(torch.autograd.Function):
    """:func:`fold_weights` with :func:`fold_weights_backward` as its backward: the same
    products, but both directions run as the library's own ops, on one thread when small
    (through autograd each product's backward is a parallel region of the engine's). The
    backward is written in differentiable ops, so ``create_graph=True`` still works."""

    @staticmethod
    def forward(ctx, coef, scale_base, scale_sp, mask):
        ctx.save_for_backward(coef, scale_sp, mask)
        return fold_weights(coef, scale_base, scale_sp, mask)

    @staticmethod
    def backward(ctx, grad_spline_weight, grad_base_weight):
        coef, scale_sp, mask = ctx.saved_tensors
        need_coef, need_scale_base, need_scale_sp = ctx.needs_input_grad[:3]
        grads = fold_weights_backward(grad_spline_weight, grad_base_weight, coef, scale_sp,
                                      mask, need_coef, need_scale_base, need_scale_sp)
        return (*grads, None)


def _fold(coef, scale_base, scale_sp, mask):
    """The kernels' weights: through :class:`_FoldWeights` in eager mode, as plain ops
    while torch.compile traces or when the mask itself is trained (its gradient is not
    in fold_weights_backward)."""
    if _compiling() or (mask is not None and mask.requires_grad):
        return fold_weights(coef, scale_base, scale_sp, mask)
    return _FoldWeights.apply(coef, scale_base, scale_sp, mask)


def kan_layer(x, grid, coef, scale_base, scale_sp, mask, k: int = 3, base_fun="silu",
              backend: str | None = None) -> torch.Tensor:
    """pykan's ``KANLayer.forward`` output.

    x: `[B, in]`; grid: `[in, G+2k+1]`; coef: `[in, out, G+k]`; scale_base, scale_sp,
    mask: `[in, out]`. Returns y: `[B, out]` with
    ``y[b, o] = sum_i mask * (scale_base * base_fun(x) + scale_sp * spline_{i,o}(x))``.
    ``backend``: "cpu", "triton", "torch" or None (by device, or $PYKAN_FAST_BACKEND).
    """
    if isinstance(x, torch.Tensor) and _autocast_enabled(x.device.type):
        return _kan_layer_autocast(x, grid, coef, scale_base, scale_sp, mask, k, base_fun, backend)
    check_layer_args(x, grid, coef, scale_base, scale_sp, mask, k, check_values=not _compiling())
    base_callable = resolve_base_fun(base_fun)
    name = backends.select_backend(backend, x.device)
    return _dispatch(name, x, grid, coef, scale_base, scale_sp, mask, k, base_fun,
                     base_callable).to(x.dtype)


def _kan_layer_autocast(x, grid, coef, scale_base, scale_sp, mask, k, base_fun, backend):
    """Under torch.autocast: float16/bfloat16 tensors are cast up and the layer computes in
    float32 (float64 when every tensor is float64: autocast leaves doubles alone). The
    result is float32 on CPU and the autocast dtype on CUDA (float64 stays float64)."""
    device_type = x.device.type
    tensors = (x, grid, coef, scale_base, scale_sp, mask)
    floats = [t for t in tensors if isinstance(t, torch.Tensor) and t.is_floating_point()]
    compute = torch.float64 if all(t.dtype == torch.float64 for t in floats) else torch.float32
    tensors = [t.to(compute) if isinstance(t, torch.Tensor) and t.is_floating_point() else t
               for t in tensors]
    with torch.autocast(device_type, enabled=False):  # torch's own ops must not be recast
        y = kan_layer(*tensors, k=k, base_fun=base_fun, backend=backend)
    if device_type == "cuda" and compute == torch.float32:
        return y.to(torch.get_autocast_dtype(device_type))
    return y


def _compiling() -> bool:
    return torch.compiler.is_compiling()


def _autocast_enabled(device_type: str) -> bool:
    return device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type)


def _dispatch(name, x, grid, coef, scale_base, scale_sp, mask, k, base_fun, base_callable):
    if name == "torch":
        return kan_layer_reference(x, grid, coef, scale_base, scale_sp, mask, k, base_callable)

    impl = backends.implementation(name)
    compute = impl.compute_dtype(x.dtype)
    if compute != x.dtype:
        # e.g. the CPU kernels compute half inputs in float32 (the caller converts back).
        x, grid, coef, scale_base, scale_sp, mask = (
            t.to(compute) for t in (x, grid, coef, scale_base, scale_sp, mask))

    spline_weight, base_weight = _fold(coef, scale_base, scale_sp, mask)
    fused_code = FUSED_BASE.get(base_fun) if isinstance(base_fun, str) else None
    y = kan_layer_op(x.contiguous(), grid.contiguous(), spline_weight, base_weight, k,
                     fused_code or NO_BASE, name)
    if fused_code is None:
        # Any other base function runs in torch as one [B, in] x [in, out] product; for
        # 'zero' (x * 0) only non-finite x can contribute (NaN), as in pykan (a compiled
        # graph always adds it rather than branch on the data).
        if base_fun != "zero" or _compiling() or not bool(torch.isfinite(x).all()):
            y = y + base_callable(x) @ base_weight
    return y
