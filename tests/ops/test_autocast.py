"""torch.autocast (issue 6.3). On CPU the layer takes the low-precision activations
autocast hands it, computes in float32 and returns float32; doubles are left alone, as
autocast does. (CUDA: float32 compute, autocast-dtype output; tests/ops/test_triton.py.)"""

from __future__ import annotations

import pytest
import torch

import pykan_fast as pf

LOW = [torch.bfloat16, torch.float16]


def _layer(dtype=torch.float32, backend="cpu"):
    torch.manual_seed(0)
    return pf.KANLayer(4, 3, grid=6, k=3, backend=backend).to(dtype)


def _inputs(dtype=torch.float32):
    g = torch.Generator().manual_seed(1)
    return (torch.rand(33, 4, generator=g) * 2.2 - 1.1).to(dtype)


@pytest.mark.parametrize("backend", ["cpu", "torch"])
@pytest.mark.parametrize("low", LOW)
def test_low_precision_input_computes_and_returns_float32(low, backend):
    layer, x = _layer(backend=backend), _inputs(low)
    with torch.autocast("cpu", dtype=low):
        y = layer(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, layer(x.float()), rtol=0, atol=0)  # exactly the fp32 layer


@pytest.mark.parametrize("low", LOW)
def test_inside_an_autocast_model_gradients_match_float32(low):
    """Linear (autocast: low precision) -> KANLayer (float32) -> Linear: the KAN layer's
    parameter gradients are float32 and equal those of the float32 layer on the same
    activations."""
    torch.manual_seed(0)
    before, layer, after = torch.nn.Linear(5, 4), _layer(), torch.nn.Linear(3, 2)
    x = _inputs().repeat(1, 2)[:, :5]
    with torch.autocast("cpu", dtype=low):
        hidden = before(x)
        assert hidden.dtype == low
        y = layer(hidden)
        assert y.dtype == torch.float32
        loss = after(y).float().square().sum()
    loss.backward()
    grads = [p.grad.clone() for p in (layer.coef, layer.scale_base, layer.scale_sp)]
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    assert before.weight.grad is not None and torch.isfinite(before.weight.grad).all()

    layer.zero_grad()
    y32 = layer(hidden.detach().float())
    with torch.autocast("cpu", dtype=low):
        loss32 = after(y32).float().square().sum()
    loss32.backward()
    for got, want in zip(grads, (layer.coef.grad, layer.scale_base.grad, layer.scale_sp.grad)):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_float64_layer_stays_float64_under_autocast():
    layer, x = _layer(torch.float64), _inputs(torch.float64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, layer(x), rtol=0, atol=0)


def test_model_under_autocast():
    model = pf.KAN([4, 5, 2], grid=5, seed=0, backend="cpu")
    x = _inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x.bfloat16())
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, model(x.bfloat16().float()), rtol=0, atol=0)


def test_without_autocast_dtypes_must_agree():
    """Outside autocast no silent casting: a bfloat16 x with float32 parameters is an error."""
    with pytest.raises(TypeError, match=r"x is bfloat16 but the layer is float32: use x.float\(\)"):
        _layer()(_inputs(torch.bfloat16))
