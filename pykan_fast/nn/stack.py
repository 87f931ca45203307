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

__all__ = ["supported", "stack_forward", "LossEvaluator"]

_mse_loss = torch._C._nn.mse_loss
_mse_loss_backward = torch.ops.aten.mse_loss_backward.default

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
    layers = [_Layer(layer.grid, layer.mask, layer.k, model.width[l + 1][0])
              for l, layer in enumerate(model.act_fun)]
    params = _stack_params(model)
    first = _per_layer(params, LAYER_PARAMS, 0)
    grid, mask, k = layers[0].grid, layers[0].mask, layers[0].k
    check_layer_args(x, grid, first["coef"], first["scale_base"], first["scale_sp"], mask, k)
    return _KanStack.apply(x, model, layers, acts, *params)  # later layers: checked as computed


class _Layer:
    """What the stack needs of one layer besides its trained tensors. ``unit_mask`` /
    ``unit_affine``: the caller has checked that the mask is all ones / the node affines
    are the identity and not trained, so their products (exact) are skipped; the fused
    stack's Function never sets them (it does not read the data), :class:`LossEvaluator`
    does, once per optimizer step."""

    __slots__ = ("grid", "mask", "k", "n_add", "unit_mask", "unit_affine")

    def __init__(self, grid, mask, k: int, n_add: int, unit_mask: bool = False,
                 unit_affine: bool = False):
        self.grid, self.mask, self.k, self.n_add = grid.contiguous(), mask, k, n_add
        self.unit_mask, self.unit_affine = unit_mask, unit_affine


def _layer_forward(layer: _Layer, h: torch.Tensor, p: dict, base_values=None, design=None):
    """One layer of the stack: (its nodes, the tensors its backward reads, LAYER_SAVED
    order). ``base_values``: SiLU of h when the caller has it. ``design``: h's
    :class:`_Design`, computing the layer as a product instead of the kernels."""
    spline_weight, base_weight = fold_weights(p["coef"], p["scale_base"], p["scale_sp"],
                                              None if layer.unit_mask else layer.mask)
    h_in = h.contiguous()
    if base_values is None:
        base_values = cpu.silu(h_in)  # kept for the backward
    if design is not None:
        z = design.forward(spline_weight, base_weight)
    else:
        z = cpu.forward(h_in, layer.grid, spline_weight, base_weight, layer.k, SILU, base_values)
    if layer.unit_affine:  # 1 * z + 0: z (but for the sign of a zero)
        subnodes = h = z
    else:
        subnodes, h = node_step(z, p["subnode_scale"], p["subnode_bias"], p["node_scale"],
                                p["node_bias"], layer.n_add, None)
    return h, (h_in, spline_weight, base_weight, z, subnodes, base_values)


def _layer_backward(layer: _Layer, g: torch.Tensor, p: dict, s: dict, need: dict,
                    need_x: bool, base_grads=None, design=None):
    """The gradients of one layer (dict by LAYER_PARAMS name, None where not needed) and
    of its input (None unless ``need_x``), given ``g``, the gradient of its nodes.
    ``base_grads``: SiLU' of its input when the caller has it. ``design``: as in
    :func:`_layer_forward` (then no input gradient)."""
    grad = dict.fromkeys(LAYER_PARAMS)
    if not layer.unit_affine:
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
    if design is not None:
        gx = None
        g_spline, g_base = design.weight_grads(g, s["spline_weight"].shape)
    else:
        gx, g_spline, g_base = cpu.backward(
            s["h_in"], layer.grid, s["spline_weight"], s["base_weight"], g.contiguous(),
            layer.k, SILU, need_x, want_spline, need["scale_base"], s["base_values"],
            base_grads)
    grad["coef"], grad["scale_base"], grad["scale_sp"] = fold_weights_backward(
        g_spline, g_base, p["coef"], p["scale_sp"], None if layer.unit_mask else layer.mask,
        need["coef"], need["scale_base"], need["scale_sp"])
    return grad, gx


class _KanStack(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, model, layers, acts, *params):
        h = x
        saved = []
        for l, layer in enumerate(layers):
            p = _per_layer(params, LAYER_PARAMS, l)
            if l > 0:
                check_layer_args(h, layer.grid, p["coef"], p["scale_base"], p["scale_sp"],
                                 layer.mask, layer.k)
            model.act_fun[l].cache_data = h.detach()
            h, layer_saved = _layer_forward(layer, h, p)
            saved += layer_saved
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
            grad, g = _layer_backward(ctx.layers[l], g, _per_layer(params, LAYER_PARAMS, l),
                                      _per_layer(saved, LAYER_SAVED, l),
                                      _per_layer(need_params, LAYER_PARAMS, l), l > 0)
            grads = [grad[name] for name in LAYER_PARAMS] + grads
        return (None, None, None, None, *grads)


class _Design:
    """The first layer of a :class:`LossEvaluator` as a matrix product. Its input is the
    optimizer step's fixed batch, so its bases never change within the step: the design
    matrix ``A = [SiLU(x) | B(x)]`` `[batch, in (1 + G + k)]` (every basis of every
    input, zeros included) is built once, and each evaluation is
    ``A @ [base_weight; spline_weight]`` and, in backward, ``g^T A`` (the weights'
    gradients; the input's is not needed). Small layers only (:meth:`fits`): there a
    product is cheaper than the kernels' per-call and per-sample basis work, though it
    multiplies by every basis, zeros included (same sums, other rounding order)."""

    __slots__ = ("n_in", "design", "design_t")

    @staticmethod
    def fits(x: torch.Tensor, layer: "_Layer", spline_weight_shape) -> bool:
        """float64 only: in float32, where pykan's tolerances (1e-32) make L-BFGS amplify
        any change of rounding into another trajectory, the grid-extension job's median
        test RMSE over five seeds came out 2.3x higher at G=50 with it (bench/RESULTS.md)."""
        n_in, n_basis, n_out = spline_weight_shape
        columns = n_in * (1 + n_basis)
        return (x.dtype == torch.float64 and x.shape[0] * columns <= DESIGN_MAX_ELEMENTS
                and columns * n_out <= DESIGN_MAX_WEIGHTS)

    def __init__(self, x: torch.Tensor, layer: "_Layer", base_values: torch.Tensor):
        n_in, n_basis = layer.grid.shape[0], layer.grid.shape[1] - layer.k - 1
        # Every basis of every input: the derivative kernel of order 0 with identity
        # weights (a tenth of the dense reference's time at G=10).
        identity = torch.eye(n_in * n_basis, dtype=x.dtype).view(n_in, n_basis, -1)
        basis = cpu.spline_derivative(x, layer.grid, identity, None, layer.k, 0)
        self.n_in = n_in
        self.design = torch.cat([base_values, basis], 1)
        self.design_t = self.design.t().contiguous()

    def forward(self, spline_weight, base_weight) -> torch.Tensor:
        weight = torch.cat([base_weight, spline_weight.view(-1, spline_weight.shape[2])])
        return torch.mm(weight.t(), self.design_t).t()

    def weight_grads(self, g: torch.Tensor, spline_weight_shape):
        """(spline weight `[in, G+k, out]`, base weight `[in, out]`) gradients, as views."""
        grad_t = torch.mm(g.t(), self.design)  # [out, in (1 + G + k)]
        n = self.n_in
        return grad_t[:, n:].t().view(spline_weight_shape), grad_t[:, :n].t()


# _Design's limits: its matrix (elements) and the layer's weights (in (1 + G + k) out);
# beyond them the kernels' local-support work is the cheaper one.
DESIGN_MAX_ELEMENTS = 1 << 20
DESIGN_MAX_WEIGHTS = 1 << 12


class LossEvaluator:
    """``fit``'s L-BFGS objective on the fused stack, without autograd: for one batch
    (x, y) the mean squared error of the model's output and its gradient, flattened in
    ``params`` order (as the optimizer gathers ``p.grad``).

    The same operations as the autograd path (the stack's layer forward and backward,
    aten's ``mse_loss`` and ``mse_loss_backward`` with a unit gradient, as
    ``loss.backward()`` runs them), so the same bits; what is left out is what an
    evaluation of a small model spent most of its time on: the autograd graph and engine,
    the Function's bookkeeping, the argument checks and per-call lookups (done once here:
    nothing structural changes within an optimizer step, and L-BFGS only writes parameter
    values), SiLU and SiLU' of the first layer's input (the batch is fixed) and products by
    a mask of ones and by identity node affines (exact, so skipped; checked once).
    Build it with :meth:`build` per optimizer step; :meth:`finish` leaves the model as an
    evaluation through ``KAN._forward`` would (``cache_data``, ``acts``, ``p.grad``).
    """

    def __init__(self, model, x, y, params, order):
        self.model, self.y, self.params = model, y, params
        tensors = _stack_params(model)
        self.layer_params = [_per_layer(tensors, LAYER_PARAMS, l) for l in range(model.depth)]
        self.need = [{name: t.requires_grad for name, t in p.items()} for p in self.layer_params]
        self.order = order  # flat position -> (layer, name)
        self.layers = []
        for l, layer in enumerate(model.act_fun):
            p = self.layer_params[l]
            affines = [p[name] for name in LAYER_PARAMS[3:7]]
            unit_affine = (not any(t.requires_grad for t in affines)
                           and bool((affines[0] == 1).all()) and bool((affines[1] == 0).all())
                           and bool((affines[2] == 1).all()) and bool((affines[3] == 0).all()))
            self.layers.append(_Layer(layer.grid, layer.mask, layer.k, model.width[l + 1][0],
                                      bool((layer.mask == 1).all()), unit_affine))
        with torch.no_grad():
            x0 = x.contiguous()
            self.x = x0
            self.base_values = cpu.silu(x0)  # the first layer's input never changes
            self.base_grads = cpu.silu_grad(x0)
            self.one = torch.ones((), dtype=x.dtype)  # loss.backward()'s implicit gradient
            first = model.act_fun[0]
            sw_shape = (first.in_dim, first.coef.shape[2], first.out_dim)
            self.design = (_Design(x0, self.layers[0], self.base_values)
                           if _Design.fits(x0, self.layers[0], sw_shape) else None)
        self.checked = False
        self.last = None

    @classmethod
    def build(cls, model, x, y, params):
        """The evaluator of ``model`` (a KAN) on batch ``x`` (before ``input_id``
        selection) and labels ``y``, or None where the fused stack does not cover the
        model, the labels are not the output's shape and dtype, or some parameter in
        ``params`` is not one of the stack's."""
        if not hasattr(model, "_layer_fuses_in_stack"):  # not a KAN
            return None
        if model.input_id is not None:
            x = x[:, model.input_id]
        if not supported(model, x):
            return None
        out_dim = model.width_in[-1]
        if (y.dtype != x.dtype or y.device != x.device or y.requires_grad
                or tuple(y.shape) != (x.shape[0], out_dim)):
            return None
        where = {id(t): (l, name) for l, t_params in enumerate(
            _per_layer(_stack_params(model), LAYER_PARAMS, l) for l in range(model.depth))
            for name, t in t_params.items()}
        order = [where.get(id(p)) for p in params]
        if any(o is None for o in order) or len(set(order)) != len(order):
            return None
        return cls(model, x, y, params, order)

    def __call__(self):
        """(loss, flat gradient) at the parameters' current values."""
        with torch.no_grad():
            h = self.x
            saved = []
            for l, layer in enumerate(self.layers):
                p = self.layer_params[l]
                if not self.checked:
                    check_layer_args(h, layer.grid, p["coef"], p["scale_base"], p["scale_sp"],
                                     layer.mask, layer.k)
                h, layer_saved = (_layer_forward(layer, h, p, self.base_values, self.design)
                                  if l == 0 else _layer_forward(layer, h, p))
                saved.append(layer_saved)
            self.checked = True
            # aten's ops under torch.nn.functional.mse_loss (whose Python wrapper checks
            # shapes and torch-function overrides on every call) and its backward; 1: mean
            loss = _mse_loss(h, self.y, 1)
            g = _mse_loss_backward(self.one, h, self.y, 1)
            grads = [None] * len(self.layers)
            for l in range(len(self.layers) - 1, -1, -1):
                grads[l], g = _layer_backward(
                    self.layers[l], g, self.layer_params[l], dict(zip(LAYER_SAVED, saved[l])),
                    self.need[l], l > 0, *((self.base_grads, self.design) if l == 0 else ()))
            flat = [grads[l][name].reshape(-1) for l, name in self.order]
            self.last = (saved, h, grads)
            return loss, torch.cat(flat)

    def finish(self) -> None:
        """Record the last evaluation on the model as ``KAN._forward`` and
        ``loss.backward()`` would have: ``cache_data`` (model and layers), ``acts`` and
        each parameter's ``grad``."""
        if self.last is None:
            return
        saved, h, grads = self.last
        model = self.model
        model.cache_data = self.x
        acts = [self.x]
        for l, layer in enumerate(model.act_fun):
            layer.cache_data = saved[l][0]
            acts.append(saved[l + 1][0] if l + 1 < len(saved) else h)
        model.acts = acts
        for p, (l, name) in zip(self.params, self.order):
            p.grad = grads[l][name].contiguous()


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
