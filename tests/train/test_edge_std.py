"""The per-edge std behind the regulariser and pruning (pykan_fast.train.edge_std): both
ways ("gram", "fused") against pykan's formula (the whole [B, in, out] activation tensor,
then torch.std) and pykan 0.2.8's own postacts, values and gradients, in chunks, for
other base functions, orders, backends and repeated knots, and the memory bound."""

from __future__ import annotations

import pytest
import torch

import pykan_fast as pf
import pykan_fast.train.edge_std as edge_std_module
from pykan_fast.ops.reference import coef2curve, resolve_base_fun
from pykan_fast.train.edge_std import edge_std

from support import inputs as _inputs, max_rel as _max_rel

METHODS = ["gram", "fused"]


@pytest.fixture(autouse=True)
def _one_thread(restore_threads):
    """Small batches: one thread (see tests/train/test_fit.py)."""
    torch.set_num_threads(1)


def _dense_edge_std(layer, x):
    """pykan's way: the whole [B, in, out] activation tensor, then torch.std."""
    base = resolve_base_fun(layer.base_fun)(x)
    acts = layer.mask * (layer.scale_base * base[:, :, None]
                         + layer.scale_sp * coef2curve(x, layer.grid, layer.coef, layer.k))
    return torch.std(acts, dim=0)


def _odd_layer(in_dim=3, out_dim=4, grid=5, k=3, seed=0, **kwargs):
    torch.manual_seed(seed)
    layer = pf.KANLayer(in_dim, out_dim, grid=grid, k=k, noise_scale=1.0, **kwargs).double()
    with torch.no_grad():
        layer.mask[1, 2] = 0.0  # a pruned edge: std 0, gradient 0
        layer.scale_sp.mul_(1.7)
    return layer


def _grads(std_fn, layer, x, seed=3):
    weight = torch.randn(*std_fn(layer, x).shape, generator=torch.Generator().manual_seed(seed),
                         dtype=torch.float64).to(x.dtype)
    params = [x, layer.coef, layer.scale_base, layer.scale_sp]
    return torch.autograd.grad((std_fn(layer, x) * weight).sum(), params)


def _assert_grads_match(layer, x, method, max_elements, bound):
    got = _grads(lambda l, v: edge_std(l, v, max_elements=max_elements, method=method), layer, x)
    want = _grads(_dense_edge_std, layer, x)
    for name, a, b in zip(("x", "coef", "scale_base", "scale_sp"), got, want):
        assert _max_rel(a, b) <= bound, name


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("max_elements", [1 << 20, 40, 1], ids=["whole", "chunks", "single"])
def test_edge_std_matches_dense_std(method, max_elements):
    layer = _odd_layer()
    x = _inputs(37, 3, seed=1, low=-1.6, high=1.4)  # some samples outside the grid
    got = edge_std(layer, x, max_elements=max_elements, method=method)
    want = _dense_edge_std(layer, x)
    assert got.shape == (3, 4)
    assert _max_rel(got, want) <= 1e-12
    assert got[1, 2].item() == 0.0


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("max_elements", [1 << 20, 17], ids=["whole", "chunks"])
def test_edge_std_gradients_match_dense_std(method, max_elements):
    layer = _odd_layer()
    x = _inputs(23, 3, seed=2, low=-1.3, high=1.3).requires_grad_(True)
    _assert_grads_match(layer, x, method, max_elements, 1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_edge_std_gradcheck(method):
    torch.manual_seed(4)
    layer = pf.KANLayer(2, 2, grid=3, k=2, noise_scale=1.0).double()
    x = _inputs(6, 2, seed=5, low=-0.9, high=0.9).requires_grad_(True)
    function = {"gram": edge_std_module._GramEdgeStd, "fused": edge_std_module._FusedEdgeStd}[method]

    def fn(x, coef, scale_base, scale_sp):
        layer.coef.data, layer.scale_base.data, layer.scale_sp.data = coef, scale_base, scale_sp
        return function.apply(x, coef, scale_base, scale_sp, layer, 5)

    inputs = (x, layer.coef.detach().clone().requires_grad_(True),
              layer.scale_base.detach().clone().requires_grad_(True),
              layer.scale_sp.detach().clone().requires_grad_(True))
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("base_fun", ["identity", "zero", torch.tanh], ids=["identity", "zero", "tanh"])
def test_edge_std_gram_other_orders_and_base_functions(k, base_fun):
    layer = _odd_layer(k=k, base_fun=base_fun)
    x = _inputs(29, 3, seed=8, low=-1.4, high=1.4).requires_grad_(True)
    assert _max_rel(edge_std(layer, x, method="gram"), _dense_edge_std(layer, x)) <= 1e-12
    _assert_grads_match(layer, x, "gram", 1 << 20, 1e-10)


def test_edge_std_gram_on_the_torch_backend_and_repeated_knots():
    """backend="torch" evaluates the bases with the reference (no kernels); a doubled
    interior knot (pykan's update_grid_from_samples with grid_eps=0) is B_batch's 0/0."""
    layer = _odd_layer(in_dim=2, backend="torch")
    x = _inputs(31, 2, seed=9, low=-1.1, high=1.1).requires_grad_(True)
    assert _max_rel(edge_std(layer, x, method="gram"), _dense_edge_std(layer, x)) <= 1e-12
    _assert_grads_match(layer, x, "gram", 1 << 20, 1e-10)
    layer = _odd_layer(in_dim=2)
    with torch.no_grad():
        layer.grid[1, 6] = layer.grid[1, 5]
    assert _max_rel(edge_std(layer, x, method="gram"), _dense_edge_std(layer, x)) <= 1e-12
    got = _grads(lambda l, v: edge_std(l, v, method="gram"), layer, x)
    want = _grads(_dense_edge_std, layer, x)
    # autograd through B_batch's nan_to_num gives NaN in x's column with the double
    # knot; the kernels' derivative there is the spline's (finite)
    assert torch.isnan(want[0][:, 1]).any() and torch.isfinite(got[0]).all()
    assert _max_rel(got[0][:, 0], want[0][:, 0]) <= 1e-10
    for a, b in zip(got[1:], want[1:]):
        assert _max_rel(a, b) <= 1e-10


@pytest.mark.parametrize("method", METHODS)
def test_edge_std_float32_within_float32_rounding(method):
    """float32: the Gram matrices and quadratic forms are summed in float64; the result is
    within 1e-5 (relative to the largest) of the float64 computation (measured ~1e-7)."""
    layer64 = _odd_layer(in_dim=4, out_dim=5, grid=10)
    layer32 = _odd_layer(in_dim=4, out_dim=5, grid=10).float()
    x64 = _inputs(500, 4, seed=10, low=-1.2, high=1.2).requires_grad_(True)
    x32 = x64.detach().float().requires_grad_(True)
    got = edge_std(layer32, x32, method=method)
    assert got.dtype == torch.float32
    assert _max_rel(got, _dense_edge_std(layer64, x64)) <= 1e-5
    for a, b in zip(_grads(lambda l, v: edge_std(l, v, method=method), layer32, x32),
                    _grads(_dense_edge_std, layer64, x64)):
        assert _max_rel(a, b) <= 1e-5


@pytest.mark.pykan
def test_edge_std_matches_pykan_postacts(float64_default):
    """pykan 0.2.8's KANLayer forward: torch.std(postacts, dim=0) is [out, in]."""
    kan_layer = pytest.importorskip("kan.KANLayer")
    torch.manual_seed(11)
    theirs = kan_layer.KANLayer(in_dim=3, out_dim=4, num=7, k=3, noise_scale=1.0)
    ours = pf.KANLayer.from_pykan(theirs)
    x = _inputs(64, 3, seed=12, low=-1.2, high=1.2)
    _, _, postacts, _ = theirs(x)
    want = torch.std(postacts, dim=0).T
    for method in METHODS:
        assert _max_rel(edge_std(ours, x, method=method), want) <= 1e-12


def test_edge_std_auto_takes_gram_for_small_grids_and_fused_for_large(monkeypatch):
    taken = []
    for name in ("_GramEdgeStd", "_FusedEdgeStd"):
        real = getattr(edge_std_module, name)
        spy = type(name, (real,), {"apply": classmethod(
            lambda cls, *a, _n=name, _r=real: (taken.append(_n), _r.apply(*a))[1])})
        monkeypatch.setattr(edge_std_module, name, spy)
    x = _inputs(50, 2, seed=13)
    edge_std(pf.KANLayer(2, 1, grid=5).double(), x)
    edge_std(pf.KANLayer(2, 1, grid=100).double(), x)
    assert taken == ["_GramEdgeStd", "_FusedEdgeStd"]


@pytest.mark.parametrize("method", METHODS)
def test_edge_std_never_holds_the_whole_tensor(monkeypatch, method):
    """With max_elements below B*in*out (fused: activations) or B*in*(G+k+1) (gram:
    features), no chunk exceeds it, in forward or backward."""
    name = "_features" if method == "gram" else "_edge_acts"
    seen = []
    real = getattr(edge_std_module, name)

    def spy(*args):
        out = real(*args)
        seen.append(out.numel())
        return out

    monkeypatch.setattr(edge_std_module, name, spy)
    layer = _odd_layer(in_dim=4, out_dim=5)
    x = _inputs(100, 4, seed=6).requires_grad_(True)
    edge_std(layer, x, max_elements=120, method=method).sum().backward()
    assert seen and max(seen) <= 120 < 100 * 4 * 5
    assert x.grad is not None


def test_edge_std_bad_arguments():
    layer = _odd_layer()
    with pytest.raises(ValueError, match="x"):
        edge_std(layer, torch.rand(5, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="method"):
        edge_std(layer, torch.rand(5, 3, dtype=torch.float64), method="sparse")
    with pytest.raises(ValueError, match="max_elements"):
        edge_std(layer, torch.rand(5, 3, dtype=torch.float64), max_elements=0)
