"""``pykan_fast.KANLayer``: pykan's parameters (names, shapes, dtypes, requires_grad,
state_dict keys) and initialisation (same seed, same random draws, same values), and its
forward on the kernels."""

from __future__ import annotations

import copy

import pytest
import torch

import pykan_fast as pf
from support import RTOL, assert_close

# (in, out, keyword arguments in pykan's spelling). Configurations whose float32
# initial least-squares fit is reproducible: for some others (e.g. G=5, k=5) pykan's own
# float32 `torch.linalg.lstsq` returns different coef from one call to the next.
INIT_CONFIGS = [
    pytest.param(3, 4, dict(num=5, k=3), id="in3-out4-G5-k3"),
    pytest.param(1, 1, dict(num=1, k=1), id="in1-out1-G1-k1"),
    pytest.param(17, 33, dict(num=3, k=2), id="in17-out33-G3-k2"),
    pytest.param(2, 2, dict(num=1, k=3), id="in2-out2-G1-k3"),
    pytest.param(3, 2, dict(num=8, k=1), id="in3-out2-G8-k1"),
    pytest.param(4, 2, dict(num=2, k=4), id="in4-out2-G2-k4"),
    pytest.param(5, 3, dict(num=5, k=3, noise_scale=0.1, scale_base_mu=0.5, scale_base_sigma=0.2,
                            scale_sp=2.0, grid_range=(-2.0, 3.0)), id="in5-out3-G5-k3-custom"),
    pytest.param(2, 3, dict(num=4, k=2, sp_trainable=False), id="in2-out3-G4-k2-sp-frozen"),
    pytest.param(2, 3, dict(num=4, k=2, sb_trainable=False), id="in2-out3-G4-k2-sb-frozen"),
]


def _ours_kwargs(kwargs: dict) -> dict:
    out = dict(kwargs)
    out["grid"] = out.pop("num")
    return out


@pytest.fixture
def pykan_layer_cls(monkeypatch, tmp_path):
    """pykan 0.2.8's KANLayer class, run in a temporary working directory."""
    pytest.importorskip("kan", reason="pykan (the `kan` package) is needed to compare against")
    monkeypatch.chdir(tmp_path)
    from kan.KANLayer import KANLayer

    return KANLayer


def _both(pykan_layer_cls, in_dim, out_dim, kwargs, seed=0):
    torch.manual_seed(seed)
    theirs = pykan_layer_cls(in_dim, out_dim, **kwargs)
    after_theirs = torch.rand(3)
    torch.manual_seed(seed)
    ours = pf.KANLayer(in_dim, out_dim, **_ours_kwargs(kwargs))
    after_ours = torch.rand(3)
    return theirs, ours, after_theirs, after_ours


@pytest.mark.parametrize("in_dim,out_dim,kwargs", INIT_CONFIGS)
def test_parameters_match_pykan(pykan_layer_cls, in_dim, out_dim, kwargs):
    theirs, ours, _, _ = _both(pykan_layer_cls, in_dim, out_dim, kwargs)
    want = [(n, tuple(p.shape), p.dtype, p.requires_grad) for n, p in theirs.named_parameters()]
    got = [(n, tuple(p.shape), p.dtype, p.requires_grad) for n, p in ours.named_parameters()]
    assert got == want
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert not list(ours.buffers())  # pykan has none either
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert (ours.in_dim, ours.out_dim, ours.num, ours.k) == (theirs.in_dim, theirs.out_dim,
                                                             theirs.num, theirs.k)


@pytest.mark.parametrize("in_dim,out_dim,kwargs", INIT_CONFIGS)
def test_initialisation_follows_pykan_draws(pykan_layer_cls, in_dim, out_dim, kwargs):
    """Same seed -> the same parameters as pykan in float32, and the same number of random
    draws consumed (the next draw after construction agrees)."""
    theirs, ours, after_theirs, after_ours = _both(pykan_layer_cls, in_dim, out_dim, kwargs, seed=7)
    assert torch.equal(after_ours, after_theirs), "a different number of random draws"
    for name in ("grid", "mask", "scale_base", "scale_sp"):
        assert torch.equal(getattr(ours, name), getattr(theirs, name)), name
    # coef: pykan solves one least-squares problem per edge, pykan_fast one per input with
    # all outputs as right-hand sides: equal up to float32 rounding.
    torch.testing.assert_close(ours.coef, theirs.coef, rtol=1e-5, atol=1e-6)


def test_different_seeds_give_different_parameters():
    torch.manual_seed(0)
    a = pf.KANLayer(3, 4)
    torch.manual_seed(1)
    b = pf.KANLayer(3, 4)
    assert not torch.equal(a.coef, b.coef)
    assert not torch.equal(a.scale_base, b.scale_base)
    assert torch.equal(a.grid, b.grid) and torch.equal(a.scale_sp, b.scale_sp)


def test_state_dict_loads_into_pykan_and_back(pykan_layer_cls):
    torch.manual_seed(3)
    theirs = pykan_layer_cls(3, 2, num=6, k=2)
    torch.manual_seed(4)
    ours = pf.KANLayer(3, 2, grid=6, k=2)
    ours.load_state_dict(theirs.state_dict())
    for name, p in theirs.named_parameters():
        assert torch.equal(getattr(ours, name), p), name
    x = torch.rand(10, 3) * 2.4 - 1.2
    torch.testing.assert_close(ours(x), theirs(x)[0], rtol=1e-5, atol=1e-6)
    other = pykan_layer_cls(3, 2, num=6, k=2)
    other.load_state_dict(ours.state_dict())
    torch.testing.assert_close(other(x)[0], theirs(x)[0], rtol=0, atol=0)


def test_default_arguments_match_pykan(pykan_layer_cls):
    """pf.KANLayer()'s keyword defaults equal pykan KANLayer's (num -> grid)."""
    import inspect

    theirs = inspect.signature(pykan_layer_cls.__init__).parameters
    ours = inspect.signature(pf.KANLayer.__init__).parameters
    for name in ("k", "noise_scale", "scale_base_mu", "scale_base_sigma", "scale_sp", "grid_eps",
                 "sp_trainable", "sb_trainable"):
        assert ours[name].default == theirs[name].default, name
    assert ours["grid"].default == theirs["num"].default
    assert tuple(ours["grid_range"].default) == tuple(theirs["grid_range"].default)


# ---- forward and training ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("base_fun", ["silu", "identity", "zero", torch.tanh],
                         ids=["silu", "identity", "zero", "tanh"])
def test_layer_cpu_matches_torch_backend(base_fun, dtype):
    torch.manual_seed(0)
    layer = pf.KANLayer(4, 3, grid=6, k=3, base_fun=base_fun).to(dtype)
    x = (torch.rand(50, 4, dtype=dtype) * 3 - 1.5)
    results = {}
    for backend in ("cpu", "torch"):
        layer.backend = backend
        layer.zero_grad(set_to_none=True)
        xb = x.clone().requires_grad_(True)
        y = layer(xb)
        y.backward(torch.linspace(-1, 1, y.numel(), dtype=dtype).reshape(y.shape))
        results[backend] = dict(y=y.detach(), x=xb.grad,
                                **{n: p.grad for n, p in layer.named_parameters() if p.requires_grad})
    assert set(results["cpu"]) == {"y", "x", "coef", "scale_base", "scale_sp"}
    assert_close(results["cpu"], results["torch"], RTOL[dtype])


def test_layer_frozen_parameters_get_no_gradient():
    layer = pf.KANLayer(3, 2, sp_trainable=False, sb_trainable=False)
    layer(torch.rand(8, 3)).sum().backward()
    assert layer.coef.grad is not None and layer.coef.grad.abs().max() > 0
    for name in ("grid", "mask", "scale_sp", "scale_base"):
        assert getattr(layer, name).grad is None, name


def test_layer_dtype_conversion_and_cache():
    layer = pf.KANLayer(3, 2).double()
    for p in layer.parameters():
        assert p.dtype == torch.float64
    x = torch.rand(5, 3, dtype=torch.float64)
    y = layer(x)
    assert y.dtype == torch.float64 and y.shape == (5, 2)
    assert torch.equal(layer.cache_data, x) and not layer.cache_data.requires_grad


def test_layer_empty_batch():
    layer = pf.KANLayer(3, 2)
    x = torch.zeros(0, 3, requires_grad=True)
    y = layer(x)
    assert y.shape == (0, 2)
    y.sum().backward()
    assert x.grad.shape == (0, 3)
    assert torch.equal(layer.coef.grad, torch.zeros_like(layer.coef))


def test_layer_trains():
    """A few SGD steps on the cpu backend lower the loss and follow the reference
    backend's trajectory (float64; SGD, unlike Adam, does not amplify the last-bit
    differences of near-zero gradients)."""
    torch.manual_seed(0)
    x = torch.rand(64, 2, dtype=torch.float64) * 2 - 1
    target = torch.sin(3 * x[:, :1]) + x[:, 1:] ** 2  # additive: one layer can fit it
    losses = {}
    params = {}
    # One initial layer copied for both backends: two constructions with the same seed can
    # differ by ~1e-8 (float32 torch.linalg.lstsq in the init fit is not reproducible).
    torch.manual_seed(1)
    initial = pf.KANLayer(2, 1, grid=5, k=3).double()
    for backend in ("cpu", "torch"):
        layer = copy.deepcopy(initial)
        layer.backend = backend
        opt = torch.optim.SGD(layer.parameters(), lr=0.5)
        trace = []
        for _ in range(40):
            opt.zero_grad()
            loss = ((layer(x) - target) ** 2).mean()
            loss.backward()
            opt.step()
            trace.append(loss.item())
        losses[backend] = trace
        params[backend] = {n: p.detach().clone() for n, p in layer.named_parameters()}
    assert losses["cpu"][-1] < 0.5 * losses["cpu"][0]
    assert losses["cpu"] == pytest.approx(losses["torch"], rel=1e-8)
    for name in params["torch"]:
        assert_close(params["cpu"][name], params["torch"][name], 1e-8, name)
