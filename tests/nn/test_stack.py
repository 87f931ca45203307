"""The fused stack (``pykan_fast.nn.stack``): one autograd.Function for a whole KAN's forward
and backward, taken by ``KAN.forward`` when ``stack.supported`` allows. It must give what
the per-layer path gives: the same outputs, parameter gradients, ``acts`` and
``cache_data``, and differentiable gradients under ``create_graph=True``."""

from __future__ import annotations

import pytest
import torch

import pykan_fast as pf
from pykan_fast.nn import stack

from support import inputs


def _model(width=(3, 4, 2), grid=5, k=3, dtype=torch.float64, affine_trainable=True, seed=0):
    model = pf.KAN(list(width), grid=grid, k=k, seed=seed, dtype=dtype,
                   affine_trainable=affine_trainable)
    x = inputs(64, width[0], seed=seed + 1, low=-1.2, high=1.2, dtype=dtype)  # some outside
    model.update_grid(x[:50])  # non-uniform grids, as training makes them
    with torch.no_grad():  # affines away from 1 and 0, so their gradients are all exercised
        for params in (model.node_scale, model.node_bias, model.subnode_scale, model.subnode_bias):
            for p in params:
                p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3),
                                         dtype=p.dtype))
    return model, x


def _run(model, x, per_layer: bool, monkeypatch):
    """Output, gradients of every trained parameter, acts and cache_data."""
    with monkeypatch.context() as m:
        if per_layer:
            m.setattr(stack, "supported", lambda model, x: False)
        model.zero_grad(set_to_none=True)
        y = model(x)
        (y * torch.linspace(-1, 2, y.shape[1], dtype=y.dtype)).pow(2).sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return (y.detach(), grads, [a.clone() for a in model.acts],
            [layer.cache_data.clone() for layer in model.act_fun])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("width,k", [((3, 4, 2), 3), ((2, 5, 1), 3), ((1, 3, 3, 2), 2), ((4, 9), 5)],
                         ids=["3-4-2", "2-5-1", "1-3-3-2-k2", "4-9-k5"])
def test_fused_stack_equals_per_layer_path(monkeypatch, dtype, width, k):
    model, x = _model(width, k=k, dtype=dtype)
    assert stack.supported(model, x)
    calls = []
    with monkeypatch.context() as m:
        m.setattr(stack, "stack_forward",
                  lambda *a, _f=stack.stack_forward: calls.append(1) or _f(*a))
        fused = _run(model, x, per_layer=False, monkeypatch=monkeypatch)
    assert calls, "the fused stack was not taken"
    layered = _run(model, x, per_layer=True, monkeypatch=monkeypatch)
    # The same operations in the same order: equal, not merely close.
    assert torch.equal(fused[0], layered[0])
    assert fused[1].keys() == layered[1].keys()
    assert any(name.startswith("node_scale") for name in fused[1])
    for name in fused[1]:
        assert torch.equal(fused[1][name], layered[1][name]), name
    for a, b in zip(fused[2] + fused[3], layered[2] + layered[3]):
        assert torch.equal(a, b)
    assert not any(a.requires_grad for a in model.acts)


def test_fused_stack_without_trainable_affines_or_input_grad():
    """fit's case: x needs no gradient and the affines are frozen."""
    model, x = _model(affine_trainable=False)
    y = model(x)
    y.sum().backward()
    assert all(p.grad is None for p in model.node_scale)
    assert model.act_fun[0].coef.grad is not None
    assert torch.count_nonzero(model.symbolic_fun[0].affine.grad) == 0  # used, as pykan


def test_gradcheck_through_the_fused_stack():
    model, x = _model(width=(2, 3, 2), grid=4)
    x = x[:12]
    params = [model.act_fun[0].coef, model.act_fun[1].scale_sp, model.act_fun[0].scale_base,
              model.node_scale[0], model.subnode_bias[1]]

    def f(*_):
        assert stack.supported(model, x)
        return model(x)

    assert torch.autograd.gradcheck(f, params)
    # create_graph=True: the backward recomputes on the per-layer path, differentiable.
    assert torch.autograd.gradgradcheck(f, params)


def test_inputs_that_require_grad_take_the_per_layer_path():
    """Derivatives in x (PINNs) need differentiable gradients, which the per-layer path
    gives without computing the forward twice."""
    model, x = _model(width=(2, 4, 1))
    assert stack.supported(model, x)
    assert not stack.supported(model, x.clone().requires_grad_(True))


def _hooked(model):
    model.act_fun[0].register_forward_hook(lambda *a: None)
    return model


@pytest.mark.parametrize("change", [
    pytest.param(lambda m: pf.KAN([2, [1, 1], 1], grid=3, seed=0, dtype=torch.float64),
                 id="multiplication-node"),
    pytest.param(lambda m: pf.KAN([2, 3, 1], grid=3, seed=0, dtype=torch.float64,
                                  base_fun="identity"), id="base-identity"),
    pytest.param(lambda m: pf.KAN([2, 3, 1], grid=3, seed=0, dtype=torch.float64,
                                  backend="torch"), id="torch-backend"),
    pytest.param(_hooked, id="forward-hook"),
])
def test_unsupported_models_take_the_per_layer_path(change):
    model = change(pf.KAN([2, 3, 1], grid=3, seed=0, dtype=torch.float64))
    x = inputs(10, 2, seed=1)
    assert not stack.supported(model, x)
    model(x).sum().backward()  # and the per-layer path still runs


def test_symbolic_edge_and_autocast_take_the_per_layer_path():
    model = pf.KAN([2, 3, 1], grid=3, seed=0, dtype=torch.float64)
    x = inputs(10, 2, seed=1)
    assert stack.supported(model, x)
    model.fix_symbolic(0, 0, 0, "x", fit_params_bool=False)
    assert not stack.supported(model, x)
    model.symbolic_enabled = False
    assert stack.supported(model, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not stack.supported(model, x)
