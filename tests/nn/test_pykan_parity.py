"""Parity with the real pykan 0.2.8: ``KANLayer.from_pykan`` computes pykan's forward ``y``
and gradients (float64 to 1e-10), also on the non-uniform grids of pykan's own
``update_grid_from_samples``, and ``to_pykan`` round-trips."""

from __future__ import annotations

import pytest
import torch

import pykan_fast as pf
from support import assert_close

kan = pytest.importorskip("kan", reason="pykan (the `kan` package, pip install pykan-fast[compat]) "
                          "is needed for the parity tests")
from kan.KANLayer import KANLayer as PykanLayer  # noqa: E402

pytestmark = pytest.mark.pykan


@pytest.fixture(autouse=True)
def _in_tmp_cwd(monkeypatch, tmp_path):
    """pykan may write ./model/ checkpoints: keep them out of the repository."""
    monkeypatch.chdir(tmp_path)


def _pykan_layer(in_dim, out_dim, num, k, seed=0, dtype=torch.float64, **kwargs):
    torch.manual_seed(seed)
    layer = PykanLayer(in_dim, out_dim, num=num, k=k, **kwargs)
    return layer.to(dtype) if dtype != torch.float32 else layer


def _samples(in_dim, batch, dtype, seed, scale=1.5):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, in_dim, generator=g, dtype=torch.float64) * 2 - 1).mul(scale).to(dtype)


def _skewed(in_dim, batch, dtype, seed):
    """Heavy-tailed, skewed samples: pykan's adaptive grid becomes strongly non-uniform."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, in_dim, generator=g, dtype=torch.float64)
    return (torch.exp(1.5 * z) - 1).to(dtype)


def _pykan_run(layer, x, dy):
    """pykan's forward (y is element 0 of its tuple) and gradients."""
    layer.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    y = layer(x)[0]
    y.backward(dy)
    return dict(y=y.detach(), x=x.grad, coef=layer.coef.grad, scale_base=layer.scale_base.grad,
                scale_sp=layer.scale_sp.grad)


def _ours_run(layer, x, dy):
    layer.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    y = layer(x)
    y.backward(dy)
    return dict(y=y.detach(), x=x.grad, coef=layer.coef.grad, scale_base=layer.scale_base.grad,
                scale_sp=layer.scale_sp.grad)


def _dy(batch, out_dim, dtype, seed=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, out_dim, generator=g, dtype=torch.float64).to(dtype)


def _assert_parity(theirs, x, backend, rtol):
    ours = pf.KANLayer.from_pykan(theirs, backend=backend)
    dy = _dy(x.shape[0], theirs.out_dim, x.dtype)
    want = _pykan_run(theirs, x, dy)
    got = _ours_run(ours, x, dy)
    assert_close(got, want, rtol)
    return ours


CONFIGS = [
    pytest.param(3, 4, 5, 3, id="in3-out4-G5-k3"),
    pytest.param(1, 1, 1, 1, id="in1-out1-G1-k1"),
    pytest.param(2, 3, 10, 1, id="in2-out3-G10-k1"),
    pytest.param(4, 2, 7, 5, id="in4-out2-G7-k5"),
    pytest.param(17, 33, 3, 2, id="in17-out33-G3-k2"),
    pytest.param(2, 2, 200, 3, id="in2-out2-G200-k3"),
]
BACKENDS = ["cpu", "torch"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("in_dim,out_dim,num,k", CONFIGS)
def test_from_pykan_forward_and_gradients(in_dim, out_dim, num, k, backend):
    theirs = _pykan_layer(in_dim, out_dim, num, k, seed=in_dim + num)
    with torch.no_grad():  # trained-looking parameters, not the near-zero init
        theirs.coef.normal_()
        theirs.scale_sp.uniform_(-1, 1)
    x = _samples(in_dim, 97, torch.float64, seed=k)  # a third outside the grid
    _assert_parity(theirs, x, backend, 1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("in_dim,out_dim,num,k", CONFIGS)
def test_from_pykan_after_update_grid_from_samples(in_dim, out_dim, num, k, backend):
    """pykan's own adaptive (quantile) grid on skewed samples: non-uniform knots."""
    theirs = _pykan_layer(in_dim, out_dim, num, k, seed=1)
    samples = _skewed(in_dim, max(400, 4 * num), torch.float64, seed=2)
    theirs.update_grid_from_samples(samples)
    steps = theirs.grid.diff(dim=1)
    assert (steps.max(1).values / steps.min(1).values > 1.5).all() or num == 1, \
        "the grid did not become non-uniform"
    x = torch.cat([samples[:150], _samples(in_dim, 50, torch.float64, seed=3, scale=8.0),
                   theirs.grid.T.contiguous()])  # inside, far outside, and on every knot
    _assert_parity(theirs, x, backend, 1e-10)


@pytest.mark.parametrize("mode", ["sample", "grid"])
def test_from_pykan_after_repeated_grid_updates_and_masking(mode):
    theirs = _pykan_layer(3, 4, 6, 3, seed=4)
    for seed in (5, 6):
        theirs.update_grid_from_samples(_skewed(3, 300, torch.float64, seed) * (seed - 4), mode=mode)
    with torch.no_grad():
        theirs.mask[0, 1] = 0.0  # a pruned edge
        theirs.mask[2, 3] = 0.0
    x = torch.cat([_skewed(3, 120, torch.float64, 7), theirs.grid.T.contiguous()])
    _assert_parity(theirs, x, "cpu", 1e-10)


def test_from_pykan_grid_with_repeated_knot():
    """grid_eps=0 on integer-valued samples: pykan's adaptive grid gets a double knot at 0."""
    torch.manual_seed(5)
    theirs = PykanLayer(1, 2, num=5, k=3, grid_eps=0.0).to(torch.float64)
    g = torch.Generator().manual_seed(5)
    theirs.update_grid_from_samples(torch.round(torch.randn(300, 1, generator=g, dtype=torch.float64)))
    assert (theirs.grid.diff(dim=1) == 0).any(), "no repeated knot: the case lost its point"
    x = torch.linspace(-4, 4, 161, dtype=torch.float64)[:, None]
    ours = pf.KANLayer.from_pykan(theirs, backend="cpu")
    assert_close(ours(x).detach(), theirs(x)[0].detach(), 1e-10, "y")


@pytest.mark.parametrize("base_fun,name", [
    pytest.param(torch.nn.SiLU(), "silu", id="SiLU"),
    pytest.param(torch.nn.Identity(), "identity", id="Identity"),
    pytest.param(torch.tanh, None, id="tanh"),
    pytest.param(lambda t: t * 0, None, id="zero-lambda"),
])
def test_from_pykan_base_functions(base_fun, name):
    theirs = _pykan_layer(3, 2, 5, 3, seed=8, base_fun=base_fun)
    x = _samples(3, 40, torch.float64, seed=9)
    ours = _assert_parity(theirs, x, "cpu", 1e-10)
    if name is not None:
        assert ours.base_fun == name  # the kernels' fused path, not a generic callable


def test_from_pykan_float32():
    theirs = _pykan_layer(5, 6, 5, 3, seed=10, dtype=torch.float32)
    theirs.update_grid_from_samples(_skewed(5, 300, torch.float32, 11))
    x = torch.cat([_skewed(5, 100, torch.float32, 12), _samples(5, 30, torch.float32, 13, 6.0)])
    ours = _assert_parity(theirs, x, "cpu", 1e-5)
    assert ours.coef.dtype == torch.float32


def test_from_pykan_copies_parameters():
    theirs = _pykan_layer(3, 2, 5, 3, seed=14, sp_trainable=False)
    ours = pf.KANLayer.from_pykan(theirs)
    for name, p in theirs.named_parameters():
        mine = getattr(ours, name)
        assert torch.equal(mine, p) and mine.dtype == p.dtype, name
        assert mine.requires_grad == p.requires_grad, name
        assert mine.data_ptr() != p.data_ptr(), f"{name} shares storage with pykan's"
    assert (ours.in_dim, ours.out_dim, ours.num, ours.k) == (3, 2, 5, 3)


@pytest.mark.parametrize("base_fun", ["silu", "identity", "zero", torch.tanh],
                         ids=["silu", "identity", "zero", "tanh"])
def test_to_pykan_round_trip(base_fun):
    torch.manual_seed(15)
    ours = pf.KANLayer(3, 4, grid=6, k=2, base_fun=base_fun, sb_trainable=False).double()
    with torch.no_grad():
        ours.coef.normal_()
        ours.mask[1, 2] = 0.0
    ours.update_grid_from_samples(_skewed(3, 200, torch.float64, 16))
    theirs = ours.to_pykan()
    assert isinstance(theirs, PykanLayer)
    for name, p in ours.named_parameters():
        other = getattr(theirs, name)
        assert torch.equal(other, p) and other.requires_grad == p.requires_grad, name
    # pykan computes what we compute, values and gradients.
    x = torch.cat([_skewed(3, 80, torch.float64, 17), _samples(3, 20, torch.float64, 18, 5.0)])
    dy = _dy(x.shape[0], 4, torch.float64)
    want = _pykan_run(theirs, x, dy)
    got = _ours_run(ours, x, dy)
    del want["scale_base"], got["scale_base"]  # frozen: no gradient on either side
    assert_close(got, want, 1e-10)
    # ... and back again.
    back = pf.KANLayer.from_pykan(theirs)
    for name, p in ours.named_parameters():
        assert torch.equal(getattr(back, name), p), name
    assert (back.num, back.k, back.grid_eps) == (ours.num, ours.k, ours.grid_eps)
    if base_fun in ("silu", "identity"):
        # pykan stores these as nn.SiLU()/nn.Identity(): recognised, the fused names return.
        # ('zero' becomes pykan's `lambda x: x * 0` and comes back as that callable.)
        assert back.base_fun == base_fun
    torch.testing.assert_close(back(x), ours(x), rtol=0, atol=0)
