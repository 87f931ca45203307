"""``pf.KAN`` against pykan 0.2.8's ``MultKAN``: same initial parameters for a seed, same
forward, ``update_grid`` and ``refine`` (float64); ``from_pykan``; save/load;
``create_dataset`` draws."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import pykan_fast as pf

from support import inputs as _inputs, max_rel as _max_rel

LAYER_PARAMS = ("grid", "coef", "scale_base", "scale_sp", "mask")
AFFINES = ("node_bias", "node_scale", "subnode_bias", "subnode_scale")


def _assert_same_layers(ours, theirs, coef_rtol=1e-12):
    for l, (a, b) in enumerate(zip(ours.act_fun, theirs.act_fun)):
        for name in LAYER_PARAMS:
            pa, pb = getattr(a, name), getattr(b, name)
            assert pa.shape == pb.shape, (l, name)
            assert pa.requires_grad == pb.requires_grad, (l, name)
            if name == "coef":  # one lstsq per input here, one per edge in pykan
                assert _max_rel(pa, pb) <= coef_rtol, (l, name)
            else:
                assert torch.equal(pa, pb), (l, name)


# ---- construction ------------------------------------------------------------------


@pytest.mark.parametrize("width,grid,k,seed", [
    ([2, 5, 1], 3, 3, 0), ([3, 4, 4, 2], 5, 3, 7), ([2, [3, 0], 1], 4, 2, 1), ([1, 1], [10], [1], 2),
], ids=["2-5-1-G3", "3-4-4-2-G5", "pairs-k2", "1-1-lists"])
def test_init_matches_multkan(multkan, float64_default, width, grid, k, seed):
    theirs = multkan(width, grid=grid, k=k, seed=seed)
    ours = pf.KAN(width, grid=grid, k=k, seed=seed)
    assert ours.width == theirs.width
    assert ours.width_in == theirs.width_in and ours.width_out == theirs.width_out
    _assert_same_layers(ours, theirs)
    for name in AFFINES:
        for a, b in zip(getattr(ours, name), getattr(theirs, name)):
            assert torch.equal(a, b) and a.requires_grad == b.requires_grad == False  # noqa: E712


def test_default_seed_and_noise_match_multkan(multkan, float64_default):
    theirs = multkan([2, 3, 1])
    ours = pf.KAN([2, 3, 1])
    _assert_same_layers(ours, theirs)


def test_init_seeds_global_generators_like_multkan(multkan):
    multkan([2, 3, 1], seed=5)
    after_theirs = (torch.rand(3), np.random.rand(3), random.random())
    pf.KAN([2, 3, 1], seed=5)
    after_ours = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(after_theirs[0], after_ours[0])
    assert np.array_equal(after_theirs[1], after_ours[1]) and after_theirs[2] == after_ours[2]


def test_init_float32_matches_multkan(multkan):
    theirs = multkan([2, 4, 1], grid=5, seed=3)
    ours = pf.KAN([2, 4, 1], grid=5, seed=3)
    assert ours.act_fun[0].coef.dtype == torch.float32
    _assert_same_layers(ours, theirs, coef_rtol=1e-5)


def test_dtype_argument_builds_as_default_dtype(float64_default):
    want = pf.KAN([2, 3, 1], grid=4, seed=2)
    torch.set_default_dtype(torch.float32)
    got = pf.KAN([2, 3, 1], grid=4, seed=2, dtype=torch.float64)
    assert torch.get_default_dtype() == torch.float32
    for a, b in zip(got.parameters(), want.parameters()):
        assert a.dtype == torch.float64 and torch.equal(a, b)


def test_affine_trainable_and_parameter_lists():
    model = pf.KAN([2, 3, 2], affine_trainable=True, sp_trainable=False)
    assert isinstance(model.node_scale, torch.nn.ParameterList)
    assert [p.shape[0] for p in model.node_bias] == [3, 2]
    assert all(p.requires_grad for name in AFFINES for p in getattr(model, name))
    assert not any(layer.scale_sp.requires_grad for layer in model.act_fun)
    names = {n for n, p in model.named_parameters()}
    assert {"node_scale.0", "subnode_bias.1", "act_fun.0.coef", "act_fun.1.grid"} <= names


def test_bad_width_and_input():
    with pytest.raises(ValueError, match="width"):
        pf.KAN([2])
    with pytest.raises(ValueError, match="grid"):
        pf.KAN([2, 3, 1], grid=[3])
    model = pf.KAN([2, 3, 1])
    with pytest.raises(ValueError, match="x"):
        model(torch.rand(5, 3))
    with pytest.raises(ValueError, match="x"):
        model(torch.rand(5))
    with pytest.raises(ValueError, match="refine"):
        pf.KAN([2, 3, 1]).refine(5)


def test_width_argument_not_modified():
    width = [2, 3, 1]
    pf.KAN(width)
    assert width == [2, 3, 1]


# ---- forward, update_grid, refine --------------------------------------------------


def _randomize_affines(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in AFFINES:
            for p in getattr(model, name):
                p.copy_(0.5 + torch.rand(p.shape, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("backend", [None, "torch"])
def test_forward_matches_multkan(multkan, float64_default, backend):
    theirs = multkan([3, 4, 2, 2], grid=5, k=3, seed=1)
    _randomize_affines(theirs, seed=2)  # the node affines enter the forward
    ours = pf.KAN.from_pykan(theirs, backend=backend)
    x = _inputs(64, 3, seed=3, low=-1.5, high=1.5)
    with torch.no_grad():
        y_theirs = theirs(x)
        y_ours = ours(x)
    assert y_ours.shape == (64, 2)
    assert _max_rel(y_ours, y_theirs) <= 1e-12
    assert torch.equal(ours.cache_data, x)
    assert len(ours.acts) == 4
    for a, b in zip(ours.acts, theirs.acts):
        assert _max_rel(a, b) <= 1e-12


def test_update_grid_matches_multkan(multkan, float64_default):
    theirs = multkan([2, 5, 3, 1], grid=5, k=3, seed=4)
    ours = pf.KAN([2, 5, 3, 1], grid=5, k=3, seed=4)
    x = _inputs(200, 2, seed=5, low=-1.3, high=2.0)
    theirs.update_grid(x)
    ours.update_grid(x)
    for a, b in zip(ours.act_fun, theirs.act_fun):
        assert _max_rel(a.grid, b.grid) <= 1e-13
        assert _max_rel(a.coef, b.coef) <= 1e-10
    with torch.no_grad():
        assert _max_rel(ours(x), theirs(x)) <= 1e-10


def test_refine_matches_multkan(multkan, float64_default):
    theirs = multkan([2, 5, 1], grid=3, k=3, seed=0)
    ours = pf.KAN([2, 5, 1], grid=3, k=3, seed=0)
    x = _inputs(300, 2, seed=6)
    theirs.update_grid(x)
    ours.update_grid(x)
    with torch.no_grad():
        theirs(x)
        before = ours(x)  # both refine on cache_data: x
    theirs_10 = theirs.refine(10)
    np_theirs = np.random.rand()
    ours_10 = ours.refine(10)
    np_ours = np.random.rand()
    # pykan's refine builds a new MultKAN with its default seed: numpy is reseeded alike,
    # so a following fit() draws the same batches.
    assert np_ours == np_theirs
    assert ours_10.grid == 10 and all(layer.num == 10 for layer in ours_10.act_fun)
    assert torch.equal(ours_10.cache_data, x)
    for a, b in zip(ours_10.act_fun, theirs_10.act_fun):
        assert _max_rel(a.grid, b.grid) <= 1e-12
        assert _max_rel(a.coef, b.coef) <= 1e-9
    with torch.no_grad():
        after = ours_10(x)
        assert _max_rel(after, theirs_10(x)) <= 1e-10
    # 3 -> 10 intervals does not nest the knots: the function is kept approximately.
    assert _max_rel(after, before) <= 2e-2


def test_refine_nested_keeps_function_and_copies_affines():
    model = pf.KAN([2, 4, 1], grid=5, seed=3, dtype=torch.float64, affine_trainable=True)
    _randomize_affines(model, seed=4)
    x = _inputs(400, 2, seed=7)
    model.update_grid(x)  # every layer's samples inside its grid
    with torch.no_grad():
        before = model(x)
        fine = model.refine(10)  # 5 -> 10 adds the midpoints: nested spline spaces
        after = fine(x)
    assert _max_rel(after, before) <= 1e-10
    for name in AFFINES:
        for a, b in zip(getattr(fine, name), getattr(model, name)):
            assert torch.equal(a, b) and a.requires_grad
            assert a.data_ptr() != b.data_ptr()  # copies, not shared


@pytest.mark.parametrize("steps", ["update", "update+refine"])
def test_from_pykan_after_update_and_refine(multkan, float64_default, steps):
    model = multkan([2, 4, 3, 1], grid=4, k=3, seed=9)
    x = _inputs(250, 2, seed=8, low=-1.2, high=1.4)
    model.update_grid(x)
    if steps == "update+refine":
        model(x)
        model = model.refine(9)
    ours = pf.KAN.from_pykan(model)
    assert [layer.num for layer in ours.act_fun] == [layer.num for layer in model.act_fun]
    with torch.no_grad():
        assert _max_rel(ours(x), model(x)) <= 1e-12
        xt = _inputs(50, 2, seed=10, low=-2.0, high=2.0)
        assert _max_rel(ours(xt), model(xt)) <= 1e-12


def test_from_pykan_keeps_global_generators(multkan, float64_default):
    model = multkan([2, 3, 1], seed=0)
    torch.manual_seed(123)
    np.random.seed(123)
    pf.KAN.from_pykan(model)
    assert torch.equal(torch.rand(2), torch.rand(2, generator=torch.Generator().manual_seed(123)))
    assert np.random.rand() == np.random.RandomState(123).rand()


# ---- save / load -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_save_load_roundtrip(tmp_path, dtype):
    model = pf.KAN([2, 4, 1], grid=5, seed=3, dtype=dtype, affine_trainable=True)
    _randomize_affines(model, seed=5)
    x = _inputs(100, 2, seed=11).to(dtype)
    model.update_grid(x)
    model = model.refine(8)
    with torch.no_grad():
        model.act_fun[1].mask[2, 0] = 0.0
        want = model(x)
    path = tmp_path / "model.pt"
    model.save(path)
    torch.manual_seed(99)
    loaded = pf.KAN.load(path)
    assert torch.equal(torch.rand(2), torch.rand(2, generator=torch.Generator().manual_seed(99)))
    assert loaded.config() == model.config() and loaded.grid == 8
    for (n1, p1), (n2, p2) in zip(loaded.named_parameters(), model.named_parameters()):
        assert n1 == n2 and p1.dtype == dtype and torch.equal(p1, p2), n1
        assert p1.requires_grad == p2.requires_grad, n1
    assert torch.equal(loaded.cache_data, model.cache_data)
    with torch.no_grad():
        assert torch.equal(loaded(x), want)


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="KAN.save"):
        pf.KAN.load(path)


# ---- create_dataset ----------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    dict(n_var=2),
    dict(n_var=3, ranges=[[-1, 2], [0, 1], [-3, -2]], train_num=50, test_num=30, seed=4),
    dict(n_var=2, ranges=[-0.3, 0.7], normalize_input=True, normalize_label=True, seed=2),
    dict(n_var=2, f_mode="row", train_num=20, test_num=10),
], ids=["default", "ranges-per-var", "normalized", "row"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_create_dataset_matches_pykan(monkeypatch, tmp_path, kwargs, dtype):
    utils = pytest.importorskip("kan.utils", reason="pykan is needed")
    monkeypatch.chdir(tmp_path)
    if kwargs.get("f_mode") == "row":
        def f(x):
            return torch.sin(x[0]) * x[1]
    else:
        def f(x):
            return torch.exp(torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2) + x[:, [-1]]
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        theirs = utils.create_dataset(f, **kwargs)
        after_theirs = (torch.rand(2), np.random.rand())
    finally:
        torch.set_default_dtype(old)
    ours = pf.create_dataset(f, dtype=dtype, **kwargs)
    after_ours = (torch.rand(2, dtype=dtype), np.random.rand())
    assert set(ours) == set(theirs) == {"train_input", "train_label", "test_input", "test_label"}
    for key in theirs:
        assert ours[key].dtype == theirs[key].dtype == dtype
        assert torch.equal(ours[key], theirs[key]), key
    assert torch.equal(after_ours[0], after_theirs[0]) and after_ours[1] == after_theirs[1]


def test_create_dataset_shapes_and_errors():
    d = pf.create_dataset(lambda x: x.sum(1), n_var=3, train_num=7, test_num=5)
    assert d["train_input"].shape == (7, 3) and d["train_label"].shape == (7, 1)
    assert d["test_input"].shape == (5, 3) and d["test_label"].shape == (5, 1)
    with pytest.raises(ValueError, match="ranges"):
        pf.create_dataset(lambda x: x, n_var=2, ranges=[[0, 1]] * 3)
    with pytest.raises(ValueError, match="f_mode"):
        pf.create_dataset(lambda x: x, f_mode="cols")
