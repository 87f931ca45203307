"""pykan_fast.kan.KANLayer (num=, 4-tuple forward), Symbolic_KANLayer ((y, postacts))
and kan.spline, against pykan 0.2.8 and on their own."""

from __future__ import annotations

import pytest
import torch

from pykan_fast.kan import KANLayer, Symbolic_KANLayer
from pykan_fast.kan.spline import B_batch, coef2curve, curve2coef, extend_grid


def _x(n=30, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g, dtype=torch.float64) * 2.4 - 1.2


def test_layer_forward_tuple_is_consistent():
    layer = KANLayer(in_dim=3, out_dim=2, num=4, k=3).double()
    x = _x()
    y, preacts, postacts, postspline = layer(x)
    assert y.shape == (30, 2) and preacts.shape == postacts.shape == postspline.shape == (30, 2, 3)
    torch.testing.assert_close(postacts.sum(dim=2), y, rtol=1e-12, atol=1e-12)
    assert torch.equal(preacts[:, 1, :], x)
    torch.testing.assert_close(postspline, layer.spline(x).permute(0, 2, 1))


def test_layer_sparse_init_and_subset():
    layer = KANLayer(in_dim=4, out_dim=3, num=5, sparse_init=True)
    assert 0 < int(layer.mask.sum()) < 12
    sub = layer.get_subset([0, 2], [1])
    assert type(sub) is KANLayer and len(sub(torch.zeros(2, 2))) == 4


def test_symbolic_layer_tuple():
    layer = Symbolic_KANLayer(in_dim=3, out_dim=2).double()
    layer.fix_symbolic(1, 0, "sin")
    layer.mask.data[0, 1] = 1.0
    layer.refresh()
    x = _x()
    y, postacts = layer(x)
    assert postacts.shape == (30, 2, 3)
    torch.testing.assert_close(postacts.sum(dim=2), y)
    torch.testing.assert_close(postacts[:, 0, 1], torch.sin(x[:, 1]))


@pytest.mark.pykan
def test_layers_match_pykan(float64_default):
    kan_layer = pytest.importorskip("kan.KANLayer")
    kan_sym = pytest.importorskip("kan.Symbolic_KANLayer")
    for kwargs in ({}, {"sparse_init": True, "num": 7, "k": 2}):
        torch.manual_seed(5)
        mine = KANLayer(in_dim=3, out_dim=4, **kwargs)
        torch.manual_seed(5)
        theirs = kan_layer.KANLayer(in_dim=3, out_dim=4, **kwargs)
        x = _x()
        for a, b in zip(mine(x), theirs(x)):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
        k = kwargs.get("k", 3)
        child, parent = KANLayer(3, 4, num=10, k=k), kan_layer.KANLayer(3, 4, num=10, k=k)
        child.initialize_grid_from_parent(mine, x)
        parent.initialize_grid_from_parent(theirs, x)
        torch.testing.assert_close(child.grid, parent.grid, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(child.coef, parent.coef, rtol=1e-8, atol=1e-8)
    mine, theirs = Symbolic_KANLayer(3, 2), kan_sym.Symbolic_KANLayer(3, 2)
    for layer in (mine, theirs):
        layer.fix_symbolic(2, 1, "x^2", verbose=False)
        layer.mask.data[1, 2] = 1.0
    mine.refresh()
    for a, b in zip(mine(x), theirs(x)):
        torch.testing.assert_close(a, b)


@pytest.mark.pykan
def test_spline_functions_match_pykan(float64_default):
    spline = pytest.importorskip("kan.spline")
    grid = extend_grid(torch.linspace(-1, 1, 6)[None].expand(3, 6), k_extend=3)
    torch.testing.assert_close(grid, spline.extend_grid(torch.linspace(-1, 1, 6)[None].expand(3, 6), 3))
    x = _x()
    for k in (0, 1, 3):  # pykan's order-0 bases are bool; here in x's dtype
        torch.testing.assert_close(B_batch(x, grid, k=k), spline.B_batch(x, grid, k=k).to(x.dtype))
    coef = torch.randn(3, 2, grid.shape[1] - 4)
    y = coef2curve(x, grid, coef, 3)
    torch.testing.assert_close(y, spline.coef2curve(x, grid, coef, 3))
    torch.testing.assert_close(curve2coef(x, y, grid, 3), spline.curve2coef(x, y, grid, 3),
                               rtol=1e-8, atol=1e-8)
