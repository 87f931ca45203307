"""pykan_fast.kan.KANLayer (num=, 4-tuple forward), Symbolic_KANLayer ((y, postacts))
and kan.spline, against pykan 0.2.8 and on their own."""

from __future__ import annotations

import numpy as np
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


def test_initialize_grid_from_parent_grid_mode_fits_without_samples(float64_default):
    """mode='grid': the parent's splines are fitted at 2 num + 1 points of the new grid,
    whatever x is: the same coef from samples crowded in a corner or spread out, and the
    child follows the parent across the whole grid (mode='sample' from the crowded
    samples does not)."""
    torch.manual_seed(3)
    parent = KANLayer(in_dim=2, out_dim=3, num=4, k=3, noise_scale=1.0)
    crowded = _x(40, 2, seed=1) * 0.05 + 0.9
    spread = _x(200, 2, seed=2) / 1.2
    fits = {}
    for name, x in (("crowded", crowded), ("spread", spread)):
        for mode in ("grid", "sample"):
            child = KANLayer(in_dim=2, out_dim=3, num=9, k=3)
            child.initialize_grid_from_parent(parent, x, mode=mode)
            fits[name, mode] = child
    assert torch.equal(fits["crowded", "grid"].coef, fits["spread", "grid"].coef)
    assert torch.equal(fits["crowded", "grid"].grid, fits["crowded", "sample"].grid)
    dense = torch.linspace(-1, 1, 301)[:, None].expand(-1, 2)

    def gap(child):
        return (child.spline(dense) - parent.spline(dense)).abs().max().item()

    assert gap(fits["crowded", "grid"]) < 3e-2 * parent.spline(dense).abs().max().item()
    assert gap(fits["crowded", "sample"]) > 10 * gap(fits["crowded", "grid"])
    with pytest.raises(ValueError, match="mode"):
        fits["spread", "grid"].initialize_grid_from_parent(parent, spread, mode="knots")


@pytest.mark.pykan
def test_initialize_grid_from_parent_grid_mode_against_pykan(float64_default):
    """Same grid as pykan's mode='grid'; coef = pykan's curve2coef of the parent's
    coef2curve at the 2 num + 1 points pykan means (its helper samples num + 1)."""
    kan_layer = pytest.importorskip("kan.KANLayer")
    spline = pytest.importorskip("kan.spline")
    torch.manual_seed(4)
    theirs_parent = kan_layer.KANLayer(in_dim=3, out_dim=2, num=5, k=3, noise_scale=1.0)
    mine_parent = KANLayer(in_dim=3, out_dim=2, num=5, k=3)
    mine_parent.grid.data = theirs_parent.grid.data.clone()
    mine_parent.coef.data = theirs_parent.coef.data.clone()
    x = _x()
    theirs = kan_layer.KANLayer(3, 2, num=8, k=3)
    theirs.initialize_grid_from_parent(theirs_parent, x, mode="grid")
    mine = KANLayer(3, 2, num=8, k=3)
    mine.initialize_grid_from_parent(mine_parent, x, mode="grid")
    torch.testing.assert_close(mine.grid, theirs.grid, rtol=1e-12, atol=1e-12)
    interior = theirs_parent.grid[:, 3:-3]
    position = torch.linspace(0, interior.shape[1] - 1, 17)
    points = torch.stack([torch.from_numpy(np.interp(position.numpy(), np.arange(interior.shape[1]),
                                                     row.detach().numpy())) for row in interior], dim=1)
    y = spline.coef2curve(points, theirs_parent.grid, theirs_parent.coef, 3)
    want = spline.curve2coef(points, y, theirs.grid, 3)
    torch.testing.assert_close(mine.coef, want, rtol=1e-8, atol=1e-8)


def _assign_forms(layer):
    """What a pykan user writes: per-edge functions replaced by item assignment."""
    layer.funs[1][2] = lambda x: x ** 3
    layer.funs_avoid_singularity[1][2] = lambda x, y_th: ((), torch.clamp(x ** 3, max=y_th))
    row = layer.funs[0]
    row[0] = torch.cos  # through a row held in a variable
    layer.funs_avoid_singularity[0] = [lambda x, y_th: ((), torch.cos(x))] + list(
        layer.funs_avoid_singularity[0][1:])


def test_symbolic_layer_function_assignment_takes_effect(float64_default):
    layer = Symbolic_KANLayer(3, 2)
    for i, j in ((2, 1), (0, 0)):
        layer.fix_symbolic(i, j, "sin", verbose=False)
        layer.mask.data[j, i] = 1.0
    layer.refresh()
    x = _x()
    _assign_forms(layer)
    y, _ = layer(x)
    torch.testing.assert_close(y[:, 1], x[:, 2] ** 3, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y[:, 0], torch.cos(x[:, 0]), rtol=1e-12, atol=1e-12)
    y_sa, _ = layer(x * 3, singularity_avoiding=True, y_th=2.0)
    torch.testing.assert_close(y_sa[:, 1], torch.clamp((x[:, 2] * 3) ** 3, max=2.0))
    assert layer.funs_name[1][2] == "sin" and layer.funs[1][2](torch.tensor(2.0)) == 8.0
    layer.funs_sympy[1][2] = lambda v: v ** 3
    assert layer.funs_sympy[1][2](2) == 8
    layer.funs = [[torch.tanh] * 3, [torch.exp] * 3]  # a whole table
    torch.testing.assert_close(layer(x)[0][:, 1], torch.exp(x[:, 2]))
    with pytest.raises(TypeError, match="callable"):
        layer.funs[0][1] = "sin"
    with pytest.raises(ValueError, match="funs"):
        layer.funs = [[torch.tanh] * 3]


def test_model_symbolic_function_assignment_changes_output_and_formula(float64_default):
    pytest.importorskip("sympy")
    from pykan_fast.kan import KAN

    model = KAN(width=[2, 1], grid=3, seed=0)
    x = _x(20, 2)
    model.fix_symbolic(0, 0, 0, "sin", fit_params_bool=False, verbose=False, log_history=False)
    model.fix_symbolic(0, 1, 0, "x", fit_params_bool=False, verbose=False, log_history=False)
    before = model(x).detach()
    model.symbolic_fun[0].funs[0][0] = lambda v: v ** 2
    model.symbolic_fun[0].funs_sympy[0][0] = lambda v: v ** 2
    after = model(x).detach()
    torch.testing.assert_close(after - before, x[:, [0]] ** 2 - torch.sin(x[:, [0]]))
    formula = str(model.symbolic_formula()[0][0])
    assert "sin" not in formula and "x_1**2" in formula


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
    for layer in (mine, theirs):  # assigned per-edge functions take effect in both
        layer.fix_symbolic(0, 0, "sin", verbose=False)
        layer.mask.data[0, 0] = 1.0
        _assign_forms(layer)
    mine.refresh()
    for kwargs in ({}, {"singularity_avoiding": True, "y_th": 1.5}):
        for a, b in zip(mine(x, **kwargs), theirs(x, **kwargs)):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


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
