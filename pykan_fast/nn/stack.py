"""A whole KAN stack as one ``autograd.Function``: the fast path of ``KAN``'s forward.

Run layer by layer, every evaluation records ~15 autograd nodes per layer (weight
folding, the two node affines, the symbolic branch's zero term) and the engine walks
them all in backward: on the KAN paper's [2, 5, 1] model at batch 1000 that costs more
than the kernels. Here the forward runs without recording (the fused kernels, then the
model's node step, :func:`pykan_fast.nn.nodes.node_step`) and one backward walks the
layers in reverse with the kernels' fused backward, computing the same gradients with the
same operations in the same order.

Taken when :func:`supported` says so: the input's side here (CPU kernels, float32/64, not
under torch.compile or autocast, no global module hooks, an input that does not require
grad), the layers' side in ``KAN._layer_fuses_in_stack`` beside the features it leaves to
the per-layer path. Derivatives in x (a PINN's Laplacian) are taken through
``create_graph=True``, which this backward could only serve by recomputing the stack, so
inputs that require grad take the per-layer path from the start. A ``create_graph=True``
backward for the parameters alone (Hessian-vector products) recomputes on the per-layer
path (``KAN._layers_forward``), whose gradients are differentiable.
"""

from __future__ import annotations

import torch
from torch.nn.modules.module import _global_forward_hooks, _global_forward_pre_hooks

from ..ops import backends
from ..ops import cpu_backend as cpu
from ..ops.checks import check_layer_args
from ..ops.functional import fold_weights, fold_weights_backward
from ..ops.kernel_codes import SILU
from .nodes import node_step

__all__ = ["supported", "stack_forward"]

# Each layer's trained tensors, passed to the Function in this order (names as the
# model's modules call them; "symbolic_affine" is the symbolic branch's affine).
LAYER_PARAMS = ("coef", "scale_base", "scale_sp", "subnode_scale", "subnode_bias",
                "node_scale", "node_bias", "symbolic_affine")
# Each layer's tensors saved for the backward, in this order.
LAYER_SAVED = ("h_in", "spline_weight", "base_weight", "z", "subnodes", "base_values")


def supported(model, x: torch.Tensor) -> bool:
    """Whether ``model``'s forward on ``x`` can take the fused stack (Python checks only)."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or x.requires_grad:
        return False
    if torch.compiler.is_compiling() or torch.is_autocast_enabled("cpu"):
        return False
    if _global_forward_hooks or _global_forward_pre_hooks:
        return False
    return all(model._layer_fuses_in_stack(l)
               and backends.select_backend(layer.backend, x.device) == "cpu"
               for l, layer in enumerate(model.act_fun))


def _stack_params(model) -> list:
    """Every layer's trained tensors, in LAYER_PARAMS order. Read from the modules'
    parameter registries: nn.Module attribute lookups cost microseconds each, a
    noticeable share of a small model's evaluation."""
    modules = model._modules
    affines = [modules[name]._parameters for name in LAYER_PARAMS[3:7]]
    symbolic = modules["symbolic_fun"]._modules
    params = []
    for l, layer in enumerate(modules["act_fun"]._modules.values()):
        own, key = layer._parameters, str(l)
        params += (own["coef"], own["scale_base"], own["scale_sp"],
                   *(affine[key] for affine in affines), symbolic[key]._parameters["affine"])
    return params


def _per_layer(values, names, l: int) -> dict:
    """Layer ``l``'s entries of a flat per-layer sequence, by name."""
    n = len(names)
    return dict(zip(names, values[l * n:(l + 1) * n]))


def stack_forward(model, x: torch.Tensor, acts: list) -> torch.Tensor:
    """The model's output on ``x`` (its input columns already selected); appends each
    layer's output, detached, to ``acts`` and records the layers' ``cache_data``."""
    layers = [(layer.grid, layer.mask, layer.k, model.width[l + 1][0])
              for l, layer in enumerate(model.act_fun)]
    params = _stack_params(model)
    first = _per_layer(params, LAYER_PARAMS, 0)
    grid, mask, k, _ = layers[0]
    check_layer_args(x, grid, first["coef"], first["scale_base"], first["scale_sp"], mask, k)
    return _KanStack.apply(x, model, layers, acts, *params)  # later layers: checked as computed


class _KanStack(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, model, layers, acts, *params):
        h = x
        saved = []
        for l, (grid, mask, k, n_add) in enumerate(layers):
            p = _per_layer(params, LAYER_PARAMS, l)
            if l > 0:
                check_layer_args(h, grid, p["coef"], p["scale_base"], p["scale_sp"], mask, k)
            model.act_fun[l].cache_data = h.detach()
            spline_weight, base_weight = fold_weights(p["coef"], p["scale_base"], p["scale_sp"], mask)
            h_in = h.contiguous()
            base_values = cpu.silu(h_in)  # kept for the backward
            z = cpu.forward(h_in, grid.contiguous(), spline_weight, base_weight, k, SILU, base_values)
            subnodes, h = node_step(z, p["subnode_scale"], p["subnode_bias"], p["node_scale"],
                                    p["node_bias"], n_add, None)
            saved += [h_in, spline_weight, base_weight, z, subnodes, base_values]
            acts.append(h.detach())
        ctx.model, ctx.layers = model, layers
        ctx.save_for_backward(x, *params, *saved)
        return h

    @staticmethod
    def backward(ctx, grad_out):
        n_params = len(ctx.layers) * len(LAYER_PARAMS)
        tensors = ctx.saved_tensors
        x, params, saved = tensors[0], tensors[1:1 + n_params], tensors[1 + n_params:]
        need_params = ctx.needs_input_grad[4:]  # x never requires grad here (supported)
        if torch.is_grad_enabled():
            return _recompute_backward(ctx, x, grad_out, need_params)

        grads = []
        g = grad_out
        for l in range(len(ctx.layers) - 1, -1, -1):
            grid, mask, k, _ = ctx.layers[l]
            p = _per_layer(params, LAYER_PARAMS, l)
            s = _per_layer(saved, LAYER_SAVED, l)
            need = _per_layer(need_params, LAYER_PARAMS, l)
            grad = dict.fromkeys(LAYER_PARAMS)
            # nodes = node_scale * subnodes + node_bias, subnodes = subnode_scale * z + subnode_bias
            if need["node_bias"]:
                grad["node_bias"] = g.sum(0)
            if need["node_scale"]:
                grad["node_scale"] = (g * s["subnodes"]).sum(0)
            g = g * p["node_scale"][None, :]
            if need["subnode_bias"]:
                grad["subnode_bias"] = g.sum(0)
            if need["subnode_scale"]:
                grad["subnode_scale"] = (g * s["z"]).sum(0)
            g = g * p["subnode_scale"][None, :]
            if need["symbolic_affine"]:  # the symbolic branch's zero term, as the per-layer path
                grad["symbolic_affine"] = torch.zeros_like(p["symbolic_affine"])
            want_spline = need["coef"] or need["scale_sp"]
            gx, g_spline, g_base = cpu.backward(
                s["h_in"], grid.contiguous(), s["spline_weight"], s["base_weight"], g.contiguous(),
                k, SILU, l > 0, want_spline, need["scale_base"], s["base_values"])
            grad["coef"], grad["scale_base"], grad["scale_sp"] = fold_weights_backward(
                g_spline, g_base, p["coef"], p["scale_sp"], mask,
                need["coef"], need["scale_base"], need["scale_sp"])
            grads = [grad[name] for name in LAYER_PARAMS] + grads
            g = gx
        return (None, None, None, None, *grads)


def _recompute_backward(ctx, x, grad_out, need_params):
    """create_graph=True: the gradients through the model's per-layer path, differentiable."""
    model = ctx.model
    params = _stack_params(model)  # the Function's inputs: the model's own tensors
    h = model._layers_forward(x)
    wanted = [p for p, n in zip(params, need_params) if n]
    parts = list(torch.autograd.grad(h, wanted, grad_out, create_graph=True, allow_unused=True))
    grads = [parts.pop(0) if n else None for n in need_params]
    grads = [torch.zeros_like(p) if n and gr is None else gr
             for p, n, gr in zip(params, need_params, grads)]
    return (None, None, None, None, *grads)
