"""Issue 16, point 2: grid updates never give NaN knots or coefficients: non-finite samples
are left out (with a warning), degenerate samples give a finite, increasing grid."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import pykan_fast as pf


def _layer(grid_eps=0.02, seed=0):
    torch.manual_seed(seed)
    return pf.KANLayer(3, 2, grid=5, k=3, grid_eps=grid_eps).double()


def _samples(n=60, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=g, dtype=torch.float64) * 2 - 1


def _finite_and_sorted(layer):
    assert torch.isfinite(layer.grid).all() and torch.isfinite(layer.coef).all()
    assert (layer.grid[:, 1:] > layer.grid[:, :-1]).all()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_samples_are_left_out_with_a_warning(bad):
    x = _samples()
    dirty = x.clone()
    dirty[4, 0] = bad
    dirty[9, 2] = bad
    ours, clean = _layer(), _layer()
    with pytest.warns(RuntimeWarning, match="2 of 60 samples have non-finite values"):
        ours.update_grid_from_samples(dirty)
    _finite_and_sorted(ours)
    # Per input: the same update as on that input's finite samples alone.
    for i, keep in ((0, [r for r in range(60) if r != 4]), (1, list(range(60))),
                    (2, [r for r in range(60) if r != 9])):
        ref = _layer()
        sub = pf.KANLayer(1, 2, grid=5, k=3).double()
        with torch.no_grad():
            sub.grid.copy_(ref.grid[i:i + 1])
            sub.coef.copy_(ref.coef[i:i + 1])
        sub.update_grid_from_samples(x[keep, i:i + 1])
        assert torch.allclose(ours.grid[i], sub.grid[0], rtol=0, atol=1e-14), i
        assert torch.allclose(ours.coef[i], sub.coef[0], rtol=0, atol=1e-9), i


def test_finite_samples_give_the_unchanged_update_and_no_warning():
    x = _samples()
    layer = _layer()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer.update_grid_from_samples(x)
    # pykan's knots: 6 quantiles of the sorted samples mixed with 2% uniform.
    xs = torch.sort(x, 0)[0]
    adaptive = xs[[0, 12, 24, 36, 48, -1]].T
    uniform = adaptive[:, :1] + (adaptive[:, -1:] - adaptive[:, :1]) / 5 * torch.arange(6)
    assert torch.equal(layer.grid[:, 3:-3], 0.02 * uniform + 0.98 * adaptive)


def test_an_input_without_finite_samples_keeps_its_grid():
    x = _samples()
    x[:, 1] = math.nan
    layer, before = _layer(), _layer()
    with pytest.warns(RuntimeWarning, match="60 of 60"):
        layer.update_grid_from_samples(x)
    assert torch.equal(layer.grid[1], before.grid[1])
    assert torch.equal(layer.coef[1], before.coef[1])
    _finite_and_sorted(layer)


@pytest.mark.parametrize("mode", ["sample", "grid"])
@pytest.mark.parametrize("value", [0.3, 1e6, 0.0])
def test_all_equal_samples_give_a_finite_grid(mode, value):
    layer = _layer()
    layer.update_grid_from_samples(torch.full((20, 3), value, dtype=torch.float64), mode=mode)
    _finite_and_sorted(layer)
    interior = layer.grid[:, 3:-3]
    assert (interior[:, 0] <= value).all() and (interior[:, -1] >= value).all()
    y = layer(torch.full((4, 3), value, dtype=torch.float64))
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("grid_eps", [0.0, 0.02, 1.0])
def test_few_distinct_samples_give_increasing_knots(grid_eps):
    """Two distinct values per input: pykan's knots coincide at grid_eps=0 and its bases
    divide by zero (NaN); here every knot row stays strictly increasing."""
    layer = _layer(grid_eps=grid_eps)
    x = torch.tensor([[0.0, 1.0, -2.0], [1.0, 2.0, -1.0]], dtype=torch.float64).repeat(10, 1)
    layer.update_grid_from_samples(x)
    _finite_and_sorted(layer)
    assert torch.isfinite(layer(x)).all()


def test_model_update_grid_with_a_nan_row_keeps_every_parameter_finite():
    model = pf.KAN([3, 4, 2], grid=4, seed=0, dtype=torch.float64)
    x = _samples()
    x[5, 1] = math.nan
    with pytest.warns(RuntimeWarning, match="1 of 60"):
        model.update_grid(x)
    for name, p in model.named_parameters():
        assert torch.isfinite(p).all(), name
    assert torch.isfinite(model(_samples(seed=3))).all()


@pytest.mark.pykan
def test_pykan_gives_nan_where_we_do_not(multkan):
    """The difference the README lists: pykan's update turns one NaN sample into NaN knots."""
    kan_layer = pytest.importorskip("kan.KANLayer")
    torch.manual_seed(0)
    theirs = kan_layer.KANLayer(3, 2, num=5, k=3)
    x = _samples().float()
    x[4, 0] = math.nan
    theirs.update_grid_from_samples(x)
    assert not torch.isfinite(theirs.grid).all()
    ours = pf.KANLayer(3, 2, grid=5, k=3)
    with pytest.warns(RuntimeWarning):
        ours.update_grid_from_samples(x)
    _finite_and_sorted(ours)
