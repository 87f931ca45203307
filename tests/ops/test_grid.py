"""Grids: ``curve2coef`` on rank-deficient data, ``KANLayer.update_grid_from_samples`` and
``KANLayer.refine`` against pykan 0.2.8's ``update_grid_from_samples`` and
``initialize_grid_from_parent`` (float64: same grids, same outputs), and function
preservation on the samples."""

from __future__ import annotations

import pytest
import torch

import pykan_fast as pf
from pykan_fast.ops import grid as grid_module
from pykan_fast.ops.grid import curve2coef, uniform_grid
from pykan_fast.ops.reference import b_batch, coef2curve


@pytest.fixture
def pykan_layer_cls(monkeypatch, tmp_path):
    kan_layer = pytest.importorskip("kan.KANLayer", reason="pykan (pip install pykan-fast[compat]) is needed")
    monkeypatch.chdir(tmp_path)  # pykan may write ./model/ checkpoints
    return kan_layer.KANLayer


def _samples(batch, in_dim, seed, low=-1.0, high=1.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (low + (high - low) * torch.rand(batch, in_dim, generator=g, dtype=torch.float64)).to(dtype)


def _skewed(batch, in_dim, seed):
    """Skewed, heavy-tailed samples: the adaptive grid becomes strongly non-uniform."""
    g = torch.Generator().manual_seed(seed)
    return torch.exp(1.2 * torch.randn(batch, in_dim, generator=g, dtype=torch.float64)) - 1


def _layer(in_dim, out_dim, grid, k=3, seed=0, dtype=torch.float64, **kwargs):
    torch.manual_seed(seed)
    return pf.KANLayer(in_dim, out_dim, grid=grid, k=k, **kwargs).to(dtype)


def _scale(t):
    return t.abs().max().item()


# ---- curve2coef ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("ridge", [0.0, 1e-8], ids=["lstsq", "ridge"])
def test_curve2coef_duplicated_samples_finite(dtype, ridge):
    """Every sample equal (rank 1 per input): a finite fit that reproduces the value."""
    k, num, in_dim, out_dim = 3, 6, 2, 3
    grid = uniform_grid(in_dim, num, k, dtype=dtype)
    x = torch.full((50, in_dim), 0.3, dtype=dtype)
    y = torch.arange(1.0, 1.0 + in_dim * out_dim, dtype=dtype).reshape(1, in_dim, out_dim).expand(50, -1, -1)
    coef = curve2coef(x, y, grid, k, ridge=ridge)
    assert coef.shape == (in_dim, out_dim, num + k)
    assert bool(torch.isfinite(coef).all())
    fitted = coef2curve(x, grid, coef, k)
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    assert (fitted - y).abs().max().item() <= tol * _scale(y)


@pytest.mark.parametrize("ridge", [0.0, 1e-10], ids=["lstsq", "ridge"])
def test_curve2coef_knots_without_samples_finite(ridge):
    """Samples only in [-1, -0.2]: bases over (-0.2, 1] see no data (rank-deficient);
    the fit stays finite and small where undetermined, and exact where determined."""
    k, num = 3, 10
    grid = uniform_grid(2, num, k)
    x = _samples(200, 2, seed=1, low=-1.0, high=-0.2)
    true = torch.randn(2, 1, num + k, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = coef2curve(x, grid, true, k)
    mat = b_batch(x, grid, k)
    assert bool((mat.abs().sum(0) == 0).any()), "test premise: some bases see no sample"
    coef = curve2coef(x, y, grid, k, ridge=ridge)
    assert bool(torch.isfinite(coef).all())
    fitted = coef2curve(x, grid, coef, k)
    assert (fitted - y).abs().max().item() <= 1e-6 * _scale(y)
    # Undetermined coefficients: minimum norm (lstsq) or shrunk to 0 (ridge), not huge.
    assert coef.abs().max().item() <= 10 * true.abs().max().item()


def test_curve2coef_ridge_full_rank_matches_lstsq():
    k, num = 3, 5
    grid = uniform_grid(3, num, k)
    x = _samples(300, 3, seed=3)
    y = torch.sin(3 * x)[:, :, None].expand(-1, -1, 2) * torch.tensor([1.0, -2.0])
    plain = curve2coef(x, y, grid, k)
    ridged = curve2coef(x, y, grid, k, ridge=1e-12)
    assert (plain - ridged).abs().max().item() <= 1e-8 * _scale(plain)


def test_curve2coef_matches_pykan_per_edge(pykan_layer_cls):
    from kan.spline import curve2coef as pykan_curve2coef

    k, num = 3, 7
    grid = uniform_grid(3, num, k)
    x = _skewed(120, 3, seed=4)
    y = torch.randn(120, 3, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ours = curve2coef(x, y, grid, k)
    theirs = pykan_curve2coef(x, y, grid, k)
    assert (ours - theirs).abs().max().item() <= 1e-10 * _scale(theirs)


def _gelsd(mat, rhs):
    return torch.linalg.lstsq(mat, rhs, driver="gelsd").solution


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 1e-4)],
                         ids=["f64", "f32"])
def test_least_squares_by_qr_equals_the_svd_driver_on_full_rank(dtype, rtol, monkeypatch):
    """Well-posed inputs take the QR path (the SVD driver is not called): its solution to
    rounding, for many right-hand sides (a 256-output layer's grid update) and non-uniform
    knots."""
    from pykan_fast.ops import grid as grid_module
    from pykan_fast.ops.grid import _least_squares_cpu

    k, num = 3, 8
    from pykan_fast.ops.grid import extend_grid

    g = torch.Generator().manual_seed(6)
    interior = torch.linspace(-1, 1, num + 1, dtype=torch.float64).repeat(3, 1)
    interior[:, 1:-1] += 0.05 * (torch.rand(3, num - 1, generator=g, dtype=torch.float64) - 0.5)
    grid = extend_grid(interior, k_extend=k)  # non-uniform knots
    x = _samples(600, 3, seed=6)
    mat = b_batch(x, grid, k).permute(1, 0, 2).to(dtype)
    assert torch.linalg.cond(mat.double()).max() < 1e3, "test premise: well-conditioned"
    rhs = torch.randn(3, 600, 256, generator=torch.Generator().manual_seed(7), dtype=dtype)
    want = _gelsd(mat, rhs)

    def no_svd(*args, **kwargs):
        raise AssertionError("the SVD driver ran on a well-posed input")

    monkeypatch.setattr(grid_module.torch.linalg, "lstsq", no_svd)
    got = _least_squares_cpu(mat, rhs)
    assert (got - want).abs().max().item() <= rtol * _scale(want)


def test_least_squares_rank_deficient_inputs_take_the_svd_driver():
    """A batch mixing a well-posed input, one whose samples are all equal (rank 1), one
    with bases that see no sample and an all-zero one: the deficient ones get exactly the
    SVD driver's minimum-norm solution, the well-posed one its solution to rounding, and
    everything is finite."""
    from pykan_fast.ops.grid import _least_squares_cpu

    k, num = 3, 6
    grid = uniform_grid(4, num, k)
    x = _samples(100, 4, seed=8)
    x[:, 1] = 0.3                             # duplicated samples: rank 1
    x[:, 2] = x[:, 2].clamp(max=-0.3)         # bases over (-0.3, 1] see nothing
    x[:, 3] = 5.0                             # outside the grid: every basis 0
    mat = b_batch(x, grid, k).permute(1, 0, 2)
    rhs = torch.randn(4, 100, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    got = _least_squares_cpu(mat, rhs)
    assert bool(torch.isfinite(got).all())
    for i in (1, 2, 3):
        assert torch.equal(got[i], _gelsd(mat[i:i + 1], rhs[i:i + 1])[0])
    want = _gelsd(mat[:1], rhs[:1])[0]
    assert (got[0] - want).abs().max().item() <= 1e-12 * _scale(want)


# ---- update_grid_from_samples ------------------------------------------------------


@pytest.mark.parametrize("mode", ["sample", "grid"])
@pytest.mark.parametrize("k,num,data", [(3, 5, "uniform"), (3, 8, "skewed"), (2, 4, "wide"), (1, 6, "skewed")],
                         ids=["k3-G5-uniform", "k3-G8-skewed", "k2-G4-wide", "k1-G6-skewed"])
def test_update_grid_matches_pykan(pykan_layer_cls, float64_default, mode, k, num, data):
    torch.manual_seed(0)
    theirs = pykan_layer_cls(3, 4, num=num, k=k)
    ours = pf.KANLayer.from_pykan(theirs)
    x = {"uniform": _samples(300, 3, seed=1), "skewed": _skewed(300, 3, seed=1),
         "wide": _samples(257, 3, seed=1, low=-3.0, high=2.5)}[data]
    theirs.update_grid_from_samples(x, mode=mode)
    ours.update_grid_from_samples(x, mode=mode)
    assert torch.equal(ours.grid, theirs.grid)
    assert (ours.coef - theirs.coef).abs().max().item() <= 1e-10 * _scale(theirs.coef)
    with torch.no_grad():
        y_theirs, y_ours = theirs(x)[0], ours(x)
    assert (y_ours - y_theirs).abs().max().item() <= 1e-10 * _scale(y_theirs)


def test_update_grid_keeps_function_on_samples():
    """The refit is least squares in the new spline space: close to the old function on
    the samples, not exact (the new knots do not contain the old ones)."""
    layer = _layer(2, 3, grid=10)
    x = _samples(500, 2, seed=6, low=-0.8, high=0.9)
    with torch.no_grad():
        before = layer(x)
        layer.update_grid_from_samples(x)
        after = layer(x)
    assert layer.grid[:, 3].tolist() != [-1.0, -1.0]  # the grid did move
    err = (after - before).abs().max().item()
    assert err <= 2e-2 * _scale(before), err


def test_update_grid_covers_samples():
    layer = _layer(2, 2, grid=5)
    x = _samples(100, 2, seed=7, low=-4.0, high=3.0)
    layer.update_grid_from_samples(x)
    k = layer.k
    assert torch.allclose(layer.grid[:, k], x.min(0).values)
    assert torch.allclose(layer.grid[:, -k - 1], x.max(0).values)
    assert bool((layer.grid[:, 1:] > layer.grid[:, :-1]).all())


def test_update_grid_rejects_bad_input():
    layer = _layer(2, 2, grid=5)
    with pytest.raises(ValueError, match="x"):
        layer.update_grid_from_samples(torch.rand(10, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="x"):
        layer.update_grid_from_samples(torch.rand(1, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="mode"):
        layer.update_grid_from_samples(torch.rand(10, 2, dtype=torch.float64), mode="quantile")


# ---- refine (grid extension) -------------------------------------------------------


def _bent(batch, in_dim, seed):
    """Bounded samples of non-uniform density (denser near the low end)."""
    g = torch.Generator().manual_seed(seed)
    return 3 * torch.rand(batch, in_dim, generator=g, dtype=torch.float64) ** 2 - 1


@pytest.mark.parametrize("num,new,k,data", [(5, 10, 3, "uniform"), (5, 12, 3, "bent"),
                                            (3, 20, 3, "updated"), (4, 9, 2, "updated")],
                         ids=["G5-10", "G5-12-bent", "G3-20-updated", "k2-G4-9-updated"])
def test_refine_matches_pykan_initialize_grid_from_parent(pykan_layer_cls, float64_default,
                                                          num, new, k, data):
    torch.manual_seed(0)
    parent = pykan_layer_cls(3, 4, num=num, k=k)
    x = _samples(200, 3, seed=8) if data == "uniform" else _bent(200, 3, seed=8)
    if data == "updated":
        parent.update_grid_from_samples(x)  # non-uniform parent knots, as after fit()
    ours = pf.KANLayer.from_pykan(parent)
    child = pykan_layer_cls(3, 4, num=new, k=k)
    child.initialize_grid_from_parent(parent, x)
    refined = ours.refine(new, x)
    assert refined.num == new and refined.grid.shape == child.grid.shape
    # Premise: a well-posed fit. (Rank-deficient ones are not comparable: pykan's lstsq
    # driver, torch's 'gelsy', then varies from call to call; see curve2coef.)
    rank = torch.linalg.matrix_rank(b_batch(x, child.grid, k).permute(1, 0, 2))
    assert bool((rank == new + k).all()), rank
    # pykan interpolates the knots with a k=1 spline fitted by lstsq: rounding-level equal.
    assert (refined.grid - child.grid).abs().max().item() <= 1e-12 * _scale(child.grid)
    assert (refined.coef - child.coef).abs().max().item() <= 1e-9 * _scale(child.coef)
    child.scale_base.data, child.scale_sp.data = parent.scale_base.data, parent.scale_sp.data
    with torch.no_grad():
        y_child, y_ours = child(x)[0], refined(x)
    assert (y_ours - y_child).abs().max().item() <= 1e-10 * _scale(y_child)


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_refine_nested_grid_keeps_function(backend):
    """G -> 2G on a uniform grid nests the spline spaces: exact on the samples."""
    layer = _layer(3, 2, grid=5, backend=backend)
    x = _samples(400, 3, seed=10)
    with torch.no_grad():
        before = layer(x)
        child = layer.refine(10)  # default samples: the last input the layer saw
        after = child(x)
    assert child.backend == backend and child.coef.dtype == torch.float64
    assert (after - before).abs().max().item() <= 1e-10 * _scale(before)
    assert torch.equal(child.scale_base, layer.scale_base)
    assert torch.equal(child.mask, layer.mask)


def test_refine_non_nested_grid_close():
    layer = _layer(2, 2, grid=5)
    x = _samples(400, 2, seed=11)
    with torch.no_grad():
        before = layer(x)
        after = layer.refine(13, x)(x)
    assert (after - before).abs().max().item() <= 2e-2 * _scale(before)


def test_refine_needs_samples():
    layer = _layer(2, 2, grid=5)
    with pytest.raises(ValueError, match="x"):
        layer.refine(10)


def test_from_pykan_after_update_and_refine_matches(pykan_layer_cls, float64_default):
    """A pykan layer that went through update_grid and grid extension converts exactly."""
    torch.manual_seed(1)
    parent = pykan_layer_cls(2, 3, num=4, k=3)
    x = _skewed(150, 2, seed=12)
    parent.update_grid_from_samples(x)
    child = pykan_layer_cls(2, 3, num=9, k=3)
    child.initialize_grid_from_parent(parent, x)
    ours = pf.KANLayer.from_pykan(child)
    with torch.no_grad():
        assert (ours(x) - child(x)[0]).abs().max().item() <= 1e-12 * _scale(child(x)[0])


def test_refit_in_input_chunks_equals_one_solve(float64_default):
    """refit takes inputs a chunk at a time (bounded memory for wide layers); each input's
    least squares is independent, so any chunking gives the same coefficients (to
    rounding: batched LAPACK/einsum block differently by batch size)."""
    from pykan_fast.ops.grid import extend_grid, refit

    g = torch.Generator().manual_seed(3)
    in_dim, out_dim, num, k = 5, 4, 6, 3
    old_grid = uniform_grid(in_dim, num, k)
    old_coef = torch.randn(in_dim, out_dim, num + k, generator=g)
    x = torch.rand(200, in_dim, generator=g) * 2 - 1
    interior = torch.sort(torch.rand(in_dim, 11, generator=g) * 2 - 1, dim=1)[0]
    new_grid = extend_grid(interior, k_extend=k)
    whole = refit(x, old_grid, old_coef, k, new_grid, k, max_elements=1 << 30)
    for budget in (1, 200 * 20 * 2, 200 * 20 * 3):  # one input, two, three per chunk
        got = refit(x, old_grid, old_coef, k, new_grid, k, max_elements=budget)
        torch.testing.assert_close(got, whole, rtol=1e-12, atol=1e-13)
    y = grid_module._curves_by_input(x, old_grid, old_coef, k).permute(1, 0, 2)
    assert torch.equal(whole, curve2coef(x, y, new_grid, k))


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-13), (torch.float32, 1e-5)],
                         ids=["f64", "f32"])
def test_refit_bases_and_curves_from_the_kernels_equal_the_reference(dtype, rtol):
    """refit's bases and curves (the fused kernels, one input at a time) are the dense
    reference's b_batch and coef2curve to rounding: non-uniform knots, samples outside
    the grid, exactly on knots and NaN (zero bases, as pykan's nan_to_num)."""
    from pykan_fast.ops.grid import extend_grid

    g = torch.Generator().manual_seed(11)
    in_dim, out_dim, num, k = 3, 5, 7, 3
    interior = torch.sort(torch.rand(in_dim, num + 1, generator=g, dtype=torch.float64) * 2 - 1,
                          dim=1)[0]
    grid = extend_grid(interior, k_extend=k).to(dtype)
    coef = torch.randn(in_dim, out_dim, num + k, generator=g, dtype=torch.float64).to(dtype)
    x = (torch.rand(300, in_dim, generator=g, dtype=torch.float64) * 3 - 1.5).to(dtype)
    x[:10] = grid[:, 3:13].t()  # on knots
    x[10, 0] = float("nan")
    assert grid_module._on_kernels(x, grid, coef)
    bases = grid_module._basis_matrices(x, grid, k)
    want = b_batch(x, grid, k).permute(1, 0, 2)
    assert (bases - want).abs().max().item() <= rtol * _scale(want)
    curves = grid_module._curves_by_input(x, grid, coef, k)
    want = coef2curve(x, grid, coef, k).permute(1, 0, 2)
    assert (curves - want).abs().max().item() <= rtol * _scale(want)
