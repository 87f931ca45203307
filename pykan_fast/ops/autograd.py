"""The fused kernels as ``torch.library`` custom ops, with fake (meta) kernels for
``torch.compile`` and autograd formulas that are themselves differentiable.

Four ops (every tensor contiguous, one float dtype, on the backend's device):

- ``kan_forward(x, grid, W, bw, k, base, backend)``: the layer,
  ``y = base(x) @ bw + sum_j B_j(x) W[:, j, :]``.
- ``kan_backward(...)``: its fused first-order gradients (x, W, bw), the fast path of
  every ordinary ``backward()``.
- ``spline_derivative(x, grid, W, s, k, d, backend)``: ``y[b, o] = sum_i s[b, i]
  sum_j W[i, j, o] B^(d)_j(x[b, i])`` (``s`` None: ones).
- ``spline_derivative_backward(...)``: ``T_d[b, i] = sum_o dy[b, o] sum_j W[i, j, o]
  B^(d)_j(x[b, i])``, ``T_d+1`` likewise, and ``dW[i, j, o] = sum_b s[b, i] B^(d)_j dy[b, o]``.

Every derivative of a layer, of any order, is a sum of the last two with some ``d`` and
``s`` (the base function's part runs in plain torch), so when a gradient is taken with
``create_graph=True`` the backward is written in those ops and can be differentiated
again: a PINN's ``d2y/dx2`` and the backward through it stay on fused kernels that never
build a `[B, in, G+k]` tensor. A plain ``backward()`` (grad mode off inside) takes the
fused ``kan_backward``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor

from . import backends
from .kernel_codes import SILU

__all__ = ["kan_forward", "kan_backward", "spline_derivative", "spline_derivative_backward",
           "kan_layer_op"]

_LIB = "pykan_fast"


def _impl(backend: str):
    return backends.implementation(backend)


def _none_if_empty(t: Tensor | None, wanted: bool) -> Tensor | None:
    return t if wanted else None


def _or_empty(t: Tensor | None, like: Tensor) -> Tensor:
    """custom ops return tensors only: an output that was not asked for is empty."""
    return like.new_empty(0) if t is None else t


def _shaped(wanted: bool, like: Tensor) -> Tensor:
    """Fake output: the real one's shape when asked for, else empty (never aliased)."""
    return torch.empty_like(like) if wanted else like.new_empty(0)


def _add(total: Tensor | None, term: Tensor | None) -> Tensor | None:
    if term is None:
        return total
    return term if total is None else total + term


# ---- kan_forward / kan_backward --------------------------------------------------------


@torch.library.custom_op(f"{_LIB}::kan_forward", mutates_args=())
def kan_forward(x: Tensor, grid: Tensor, spline_weight: Tensor, base_weight: Tensor, k: int,
                base: int, backend: str) -> Tensor:
    """y `[B, out]` of the fused layer (``base``: 0 none, 1 SiLU)."""
    return _impl(backend).forward(x, grid, spline_weight, base_weight, k, base)


@kan_forward.register_fake
def _(x, grid, spline_weight, base_weight, k, base, backend):
    return x.new_empty(x.shape[0], spline_weight.shape[2])


@torch.library.custom_op(f"{_LIB}::kan_backward", mutates_args=())
def kan_backward(x: Tensor, grid: Tensor, spline_weight: Tensor, base_weight: Tensor,
                 grad_y: Tensor, k: int, base: int, backend: str, need_x: bool,
                 need_spline: bool, need_base: bool) -> tuple[Tensor, Tensor, Tensor]:
    """(grad_x, grad_spline_weight, grad_base_weight) of :func:`kan_forward`; an output
    not asked for is empty. First order only: differentiated again, the layer's backward
    uses :func:`spline_derivative_backward` instead."""
    gx, gw, gb = _kan_backward_direct(x, grid, spline_weight, base_weight, grad_y, k, base,
                                      backend, need_x, need_spline, need_base)
    return _or_empty(gx, x), _or_empty(gw, x), _or_empty(gb, x)


@kan_backward.register_fake
def _(x, grid, spline_weight, base_weight, grad_y, k, base, backend, need_x, need_spline,
      need_base):
    return _shaped(need_x, x), _shaped(need_spline, spline_weight), _shaped(need_base, base_weight)


def _silu_and_grad(x: Tensor) -> tuple[Tensor, Tensor]:
    """SiLU and its derivative as differentiable torch expressions."""
    sig = torch.sigmoid(x)
    return x * sig, sig * (1 + x * (1 - sig))


def layer_gradients(x, grid, spline_weight, base_weight, grad_y, k, base, backend,
                    need_x, need_spline, need_base, ops):
    """The gradients of :func:`kan_forward` written in differentiable ops (``ops``: the
    derivative-op pair, :data:`CUSTOM_OPS` or :data:`EAGER_OPS`)."""
    _, t1, gw = ops.derivative_backward(x, grid, spline_weight, None, grad_y, k, 0, backend,
                                        False, need_x, need_spline)
    gx = t1 if need_x else None
    gw = gw if need_spline else None
    gb = None
    if base == SILU and (need_x or need_base):
        value, slope = _silu_and_grad(x)
        if need_x:
            gx = gx + (grad_y @ base_weight.T) * slope
        if need_base:
            gb = value.T @ grad_y
    elif need_base:
        gb = torch.zeros_like(base_weight)
    return gx, gw, gb


def _kan_forward_setup(ctx, inputs, output):
    x, grid, spline_weight, base_weight, k, base, backend = inputs
    ctx.save_for_backward(x, grid, spline_weight, base_weight)
    ctx.k, ctx.base, ctx.backend = k, base, backend


def _layer_backward(ctx, grad_y, first_order, ops):
    x, grid, spline_weight, base_weight = ctx.saved_tensors
    need_x, _, need_spline, need_base = ctx.needs_input_grad[:4]
    args = (x, grid, spline_weight, base_weight, grad_y.contiguous(), ctx.k, ctx.base,
            ctx.backend, need_x, need_spline, need_base)
    if torch.is_grad_enabled():  # create_graph=True: keep the gradient differentiable
        gx, gw, gb = layer_gradients(*args, ops=ops)
    else:
        gx, gw, gb = first_order(*args)
    return (_none_if_empty(gx, need_x), None, _none_if_empty(gw, need_spline),
            _none_if_empty(gb, need_base), None, None, None)


def _kan_forward_backward(ctx, grad_y):
    return _layer_backward(ctx, grad_y, kan_backward, CUSTOM_OPS)


kan_forward.register_autograd(_kan_forward_backward, setup_context=_kan_forward_setup)


# ---- the eager fast path ----------------------------------------------------------------


class _KanForwardEager(torch.autograd.Function):
    """kan_forward without the custom-op dispatch (~40 us a call in torch 2.13; up to
    ~270 us when grad mode is on and no input requires grad), for eager mode. Same
    kernels and the same backward; torch.compile traces the custom op instead."""

    @staticmethod
    def forward(ctx, x, grid, spline_weight, base_weight, k, base, backend):
        _kan_forward_setup(ctx, (x, grid, spline_weight, base_weight, k, base, backend), None)
        impl, ctx.base_values = _impl(backend), None
        if backend == "cpu" and base == SILU:
            # SiLU(x) once: the forward reads it and a plain backward reuses it.
            ctx.base_values = impl.silu(x)
            return impl.forward(x, grid, spline_weight, base_weight, k, base, ctx.base_values)
        return impl.forward(x, grid, spline_weight, base_weight, k, base)

    @staticmethod
    def backward(ctx, grad_y):
        def first_order(*args):
            return _kan_backward_direct(*args, base_values=ctx.base_values)

        return _layer_backward(ctx, grad_y, first_order, EAGER_OPS)


def _kan_backward_direct(x, grid, spline_weight, base_weight, grad_y, k, base, backend,
                         need_x, need_spline, need_base, base_values=None):
    """``base_values``: SiLU(x) kept from the forward (CPU backend only)."""
    extra = {} if base_values is None else {"base_values": base_values}
    gx, gw, gb = _impl(backend).backward(x, grid, spline_weight, base_weight, grad_y, k, base,
                                         need_x, need_spline, need_base and base != 0, **extra)
    if need_base and gb is None:
        gb = torch.zeros_like(base_weight)
    return gx, gw, gb


def kan_layer_op(x: Tensor, grid: Tensor, spline_weight: Tensor, base_weight: Tensor, k: int,
                 base: int, backend: str) -> Tensor:
    """:func:`kan_forward` as the custom op while torch.compile traces, else through the
    equivalent autograd.Function (no dispatcher round trip)."""
    if torch.compiler.is_compiling():
        return kan_forward(x, grid, spline_weight, base_weight, k, base, backend)
    return _KanForwardEager.apply(x, grid, spline_weight, base_weight, k, base, backend)


# ---- spline_derivative / spline_derivative_backward ----------------------------------


@torch.library.custom_op(f"{_LIB}::spline_derivative", mutates_args=())
def spline_derivative(x: Tensor, grid: Tensor, spline_weight: Tensor, row_scale: Tensor | None,
                      k: int, order: int, backend: str) -> Tensor:
    """y[b, o] = sum_i row_scale[b, i] sum_j spline_weight[i, j, o] B^(order)_j(x[b, i])."""
    return _impl(backend).spline_derivative(x, grid, spline_weight, row_scale, k, order)


@spline_derivative.register_fake
def _(x, grid, spline_weight, row_scale, k, order, backend):
    return x.new_empty(x.shape[0], spline_weight.shape[2])


@torch.library.custom_op(f"{_LIB}::spline_derivative_backward", mutates_args=())
def spline_derivative_backward(x: Tensor, grid: Tensor, spline_weight: Tensor,
                               row_scale: Tensor | None, grad_y: Tensor, k: int, order: int,
                               backend: str, need_t0: bool, need_t1: bool,
                               need_weight: bool) -> tuple[Tensor, Tensor, Tensor]:
    """(T_order `[B, in]`, T_order+1 `[B, in]`, grad_spline_weight); an output not asked
    for is empty."""
    return _derivative_backward_values(x, grid, spline_weight, row_scale, grad_y, k, order,
                                       backend, need_t0, need_t1, need_weight)


def _derivative_backward_values(x, grid, spline_weight, row_scale, grad_y, k, order, backend,
                                need_t0, need_t1, need_weight):
    """The kernel call behind both forms of spline_derivative_backward (custom op, eager
    Function): outputs not asked for are empty."""
    t0, t1, gw = _impl(backend).spline_derivative_backward(
        x, grid, spline_weight, row_scale, grad_y, k, order, need_t0, need_t1, need_weight)
    return _or_empty(t0, x), _or_empty(t1, x), _or_empty(gw, x)


@spline_derivative_backward.register_fake
def _(x, grid, spline_weight, row_scale, grad_y, k, order, backend, need_t0, need_t1,
      need_weight):
    return _shaped(need_t0, x), _shaped(need_t1, x), _shaped(need_weight, spline_weight)


def _scaled(scale: Tensor | None, t: Tensor) -> Tensor:
    return t if scale is None else scale * t


def _derivative_setup(ctx, inputs, output):
    x, grid, spline_weight, row_scale, k, order, backend = inputs
    ctx.save_for_backward(x, grid, spline_weight, row_scale)
    ctx.k, ctx.order, ctx.backend = k, order, backend


def _derivative_backward(ctx, grad_y, ops):
    x, grid, w, s = ctx.saved_tensors
    need_x, _, need_w, need_s = ctx.needs_input_grad[:4]
    t0, t1, gw = ops.derivative_backward(
        x, grid, w, s, grad_y.contiguous(), ctx.k, ctx.order, ctx.backend,
        need_s, need_x, need_w)
    gx = _scaled(s, t1) if need_x else None
    return (gx, None, gw if need_w else None, t0 if need_s else None, None, None, None)


spline_derivative.register_autograd(lambda ctx, grad_y: _derivative_backward(ctx, grad_y, CUSTOM_OPS),
                                    setup_context=_derivative_setup)


def _derivative_backward_setup(ctx, inputs, output):
    x, grid, w, s, grad_y, k, order, backend, need_t0, need_t1, need_weight = inputs
    ctx.save_for_backward(x, grid, w, s, grad_y)
    ctx.k, ctx.order, ctx.backend = k, order, backend
    ctx.computed = (need_t0, need_t1, need_weight)


def _derivative_backward_backward(ctx, grad_t0, grad_t1, grad_weight, ops):
    """Each output of spline_derivative_backward is linear in grad_y and in W (or s), so
    its vector-Jacobian products are again the two ops, one derivative order up for x."""
    x, grid, w, s, gy = ctx.saved_tensors
    k, d, backend = ctx.k, ctx.order, ctx.backend
    need_x, _, need_w, need_s, need_gy = ctx.needs_input_grad[:5]
    gx = gw = gs = ggy = None
    # T_d and T_d+1: sum_o gy sum_j W B^(d') with a per-(b, i) weight from upstream.
    for computed, upstream, order in ((ctx.computed[0], grad_t0, d), (ctx.computed[1], grad_t1, d + 1)):
        if not computed or upstream is None:
            continue
        upstream = upstream.contiguous()
        if need_gy:
            ggy = _add(ggy, ops.derivative(x, grid, w, upstream, k, order, backend))
        if need_x or need_w:
            _, t_next, g = ops.derivative_backward(x, grid, w, upstream, gy, k, order, backend,
                                                      False, need_x, need_w)
            if need_x:
                gx = _add(gx, upstream * t_next)
            if need_w:
                gw = _add(gw, g)
    # grad_weight: sum_b s B^(d) gy, contracted with the upstream weight-shaped tensor.
    if ctx.computed[2] and grad_weight is not None:
        grad_weight = grad_weight.contiguous()
        if need_gy:
            ggy = _add(ggy, ops.derivative(x, grid, grad_weight, s, k, d, backend))
        if need_s or need_x:
            t_same, t_next, _ = ops.derivative_backward(
                x, grid, grad_weight, None, gy, k, d, backend, need_s, need_x, False)
            if need_s:
                gs = _add(gs, t_same)
            if need_x:
                gx = _add(gx, _scaled(s, t_next))
    return gx, None, gw, gs, ggy, None, None, None, None, None, None


spline_derivative_backward.register_autograd(
    lambda ctx, g0, g1, gw: _derivative_backward_backward(ctx, g0, g1, gw, CUSTOM_OPS),
    setup_context=_derivative_backward_setup)


# ---- the derivative ops' eager fast path -------------------------------------------------


class _SplineDerivativeEager(torch.autograd.Function):
    """spline_derivative without the custom-op dispatch, for eager mode: a PINN's
    double-backward graph makes ~30 derivative calls per loss evaluation, and the
    torch.library machinery (schema defaults, redispatch, the dynamo-disable wrappers)
    cost ~40% of a Poisson step (0.488 -> 0.281 s without it). Same kernels, same
    backward formulas."""

    @staticmethod
    def forward(ctx, x, grid, spline_weight, row_scale, k, order, backend):
        _derivative_setup(ctx, (x, grid, spline_weight, row_scale, k, order, backend), None)
        ctx.set_materialize_grads(False)
        return _impl(backend).spline_derivative(x, grid, spline_weight, row_scale, k, order)

    @staticmethod
    def backward(ctx, grad_y):
        if grad_y is None:
            return (None,) * 7
        return _derivative_backward(ctx, grad_y, EAGER_OPS)


class _SplineDerivativeBackwardEager(torch.autograd.Function):
    """spline_derivative_backward without the custom-op dispatch (see above); outputs not
    asked for are empty, as the custom op's."""

    @staticmethod
    def forward(ctx, x, grid, spline_weight, row_scale, grad_y, k, order, backend, need_t0,
                need_t1, need_weight):
        _derivative_backward_setup(ctx, (x, grid, spline_weight, row_scale, grad_y, k, order,
                                         backend, need_t0, need_t1, need_weight), None)
        ctx.set_materialize_grads(False)
        return _derivative_backward_values(x, grid, spline_weight, row_scale, grad_y, k, order,
                                           backend, need_t0, need_t1, need_weight)

    @staticmethod
    def backward(ctx, grad_t0, grad_t1, grad_weight):
        return _derivative_backward_backward(ctx, grad_t0, grad_t1, grad_weight, EAGER_OPS)


class _DerivativeOps(NamedTuple):
    """The two derivative ops one backward formula is written in."""

    derivative: Callable
    derivative_backward: Callable


# Inside the custom ops' autograd formulas (what torch.compile traces) the custom ops;
# inside the eager Functions' the eager Functions.
CUSTOM_OPS = _DerivativeOps(spline_derivative, spline_derivative_backward)
EAGER_OPS = _DerivativeOps(_SplineDerivativeEager.apply, _SplineDerivativeBackwardEager.apply)
