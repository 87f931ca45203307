"""A whole KAN stack as one ``autograd.Function``: the fast path of ``KAN``'s forward.

Run layer by layer, every evaluation records ~15 autograd nodes per layer (weight
folding, the two node affines, the symbolic branch's zero term) and the engine walks
them all in backward: on the KAN paper's [2, 5, 1] model at batch 1000 that costs more
than the kernels. Here the forward runs without recording (the fused kernels, then the
affines) and one backward walks the layers in reverse with the kernels' fused backward,
computing the same gradients with the same operations in the same order.

Taken when :func:`supported` says so (CPU kernels, fused SiLU base, addition nodes only,
no symbolic edge active, no module hooks, not under torch.compile or autocast, and an
input that does not require grad); the model's per-layer path serves every other case.
Derivatives in x (a PINN's Laplacian) are taken through ``create_graph=True``, which this
backward could only serve by recomputing the stack, so inputs that require grad take the
per-layer path from the start. A ``create_graph=True`` backward for the parameters alone
(Hessian-vector products) does recompute on the per-layer path, whose gradients are
differentiable.
"""

from __future__ import annotations

import torch
from torch.nn.modules.module import _global_forward_hooks, _global_forward_pre_hooks

from ..ops import backends
from ..ops import cpu_backend as cpu
from ..ops.checks import check_layer_args
from ..ops.functional import fold_weights
from .layer import KANLayer

__all__ = ["supported", "stack_forward"]

# Per layer, in this order: the trained tensors the function takes as inputs.
_PER_LAYER = 8  # coef, scale_base, scale_sp, subnode_scale, subnode_bias, node_scale, node_bias, symbolic affine
# Per layer, saved for the backward: input, spline and base weights, kernel output, output of
# the subnode affine, SiLU of the input.
_SAVED = 6


def supported(model, x: torch.Tensor) -> bool:
    """Whether ``model``'s forward on ``x`` can take the fused stack (Python checks only)."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or x.requires_grad:
        return False
    if torch.compiler.is_compiling() or torch.is_autocast_enabled("cpu"):
        return False
    if _global_forward_hooks or _global_forward_pre_hooks:
        return False
    for l, layer in enumerate(model.act_fun):
        if model.width[l + 1][1] or layer.base_fun != "silu" or type(layer).forward is not KANLayer.forward:
            return False
        if layer._forward_hooks or layer._forward_pre_hooks:
            return False
        if model.symbolic_enabled and model.symbolic_fun[l].n_active:
            return False
        if backends.select_backend(layer.backend, x.device) != "cpu":
            return False
    return True


def _stack_params(model) -> list:
    """Every layer's trained tensors, in _PER_LAYER order. Read from the modules'
    parameter registries: nn.Module attribute lookups cost microseconds each, a
    noticeable share of a small model's evaluation."""
    modules = model._modules
    affines = [modules[name]._parameters for name in
               ("subnode_scale", "subnode_bias", "node_scale", "node_bias")]
    symbolic = modules["symbolic_fun"]._modules
    params = []
    for l, layer in enumerate(modules["act_fun"]._modules.values()):
        own, key = layer._parameters, str(l)
        params += (own["coef"], own["scale_base"], own["scale_sp"], affines[0][key],
                   affines[1][key], affines[2][key], affines[3][key],
                   symbolic[key]._parameters["affine"])
    return params


def stack_forward(model, x: torch.Tensor, acts: list) -> torch.Tensor:
    """The model's output on ``x`` (its input columns already selected); appends each
    layer's output, detached, to ``acts`` and records the layers' ``cache_data``."""
    layers = [(layer.grid, layer.mask, layer.k) for layer in model.act_fun]
    params = _stack_params(model)
    grid, mask, k = layers[0]
    check_layer_args(x, grid, params[0], params[1], params[2], mask, k)  # later layers: as computed
    return _KanStack.apply(x, model, layers, acts, *params)


def _affine(z, scale, bias):
    """The node affine as the per-layer path writes it (same rounding)."""
    return scale[None, :] * z + bias[None, :]


class _KanStack(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, model, layers, acts, *params):
        h = x
        saved = []
        for l, (grid, mask, k) in enumerate(layers):
            coef, scale_base, scale_sp, sub_s, sub_b, node_s, node_b, _ = params[l * _PER_LAYER:(l + 1) * _PER_LAYER]
            if l > 0:
                check_layer_args(h, grid, coef, scale_base, scale_sp, mask, k)
            model.act_fun[l].cache_data = h.detach()
            spline_weight, base_weight = fold_weights(coef, scale_base, scale_sp, mask)
            h_in = h.contiguous()
            base_values = cpu.silu(h_in)  # kept for the backward
            z = cpu.forward(h_in, grid.contiguous(), spline_weight, base_weight, k, 1, base_values)
            u = _affine(z, sub_s, sub_b)
            h = _affine(u, node_s, node_b)
            saved += [h_in, spline_weight, base_weight, z, u, base_values]
            acts.append(h.detach())
        ctx.model, ctx.layers = model, layers
        ctx.save_for_backward(x, *params, *saved)
        return h

    @staticmethod
    def backward(ctx, grad_out):
        n_params = len(ctx.layers) * _PER_LAYER
        tensors = ctx.saved_tensors
        x, params, saved = tensors[0], tensors[1:1 + n_params], tensors[1 + n_params:]
        need_params = ctx.needs_input_grad[4:]  # x never requires grad here (supported)
        if torch.is_grad_enabled():
            return _recompute_backward(ctx, x, params, grad_out, need_params)

        grads = [None] * n_params
        g = grad_out
        for l in range(len(ctx.layers) - 1, -1, -1):
            grid, mask, k = ctx.layers[l]
            coef, scale_base, scale_sp, sub_s, sub_b, node_s, node_b, sym = params[l * _PER_LAYER:(l + 1) * _PER_LAYER]
            h_in, spline_weight, base_weight, z, u, base_values = saved[l * _SAVED:(l + 1) * _SAVED]
            ng = need_params[l * _PER_LAYER:(l + 1) * _PER_LAYER]
            at = l * _PER_LAYER
            # h = node_s * u + node_b, u = sub_s * z + sub_b
            if ng[6]:
                grads[at + 6] = g.sum(0)
            if ng[5]:
                grads[at + 5] = (g * u).sum(0)
            g = g * node_s[None, :]
            if ng[4]:
                grads[at + 4] = g.sum(0)
            if ng[3]:
                grads[at + 3] = (g * z).sum(0)
            g = g * sub_s[None, :]
            if ng[7]:  # the symbolic branch's zero term, as the per-layer path gives it
                grads[at + 7] = torch.zeros_like(sym)
            want_spline = ng[0] or ng[2]
            gx, g_spline, g_base = cpu.backward(h_in, grid.contiguous(), spline_weight, base_weight,
                                                g.contiguous(), k, 1, l > 0, want_spline, ng[1],
                                                base_values)
            if want_spline:
                g_spline = g_spline.transpose(1, 2)  # [in, out, n_basis], as coef
                if ng[0]:
                    grads[at] = g_spline * (scale_sp * mask).unsqueeze(-1)
                if ng[2]:
                    grads[at + 2] = (g_spline * coef).sum(-1) * mask
            if ng[1]:
                grads[at + 1] = g_base * mask
            g = gx
        return (None, None, None, None, *grads)


def _recompute_backward(ctx, x, params, grad_out, need_params):
    """create_graph=True: the gradients through the per-layer path, differentiable."""
    from ..ops.functional import kan_layer

    model = ctx.model
    h = x
    for l, (grid, mask, k) in enumerate(ctx.layers):
        coef, scale_base, scale_sp, sub_s, sub_b, node_s, node_b, sym = params[l * _PER_LAYER:(l + 1) * _PER_LAYER]
        y = kan_layer(h, grid, coef, scale_base, scale_sp, mask, k, "silu", model.act_fun[l].backend)
        if sym.requires_grad:
            y = y + sym[:0].sum()
        h = _affine(_affine(y, sub_s, sub_b), node_s, node_b)
    wanted = [p for p, n in zip(params, need_params) if n]
    parts = list(torch.autograd.grad(h, wanted, grad_out, create_graph=True, allow_unused=True))
    grads = [parts.pop(0) if n else None for n in need_params]
    grads = [torch.zeros_like(p) if n and gr is None else gr
             for p, n, gr in zip(params, need_params, grads)]
    return (None, None, None, None, *grads)
