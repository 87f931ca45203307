"""Multiplication nodes: ``pf.KAN`` against pykan 0.2.8's ``MultKAN`` with ``width``
entries ``[n_add, n_mult]`` and ``mult_arity`` as an int or per node (float64): same
initial parameters, same forward and gradients after ``from_pykan``, same
``update_grid`` and ``refine``; save/load; bad arguments; training f(x, y) = x*y."""

from __future__ import annotations

import pytest
import torch

import pykan_fast as pf

from support import inputs as _inputs, max_rel as _max_rel

AFFINES = ("node_bias", "node_scale", "subnode_bias", "subnode_scale")
LAYER_PARAMS = ("grid", "coef", "scale_base", "scale_sp", "mask")

# (width, mult_arity): the product node alone, mixed addition/multiplication layers
# with arity 2 and 3, one arity per node, and a multiplication node at the output.
CASES = [
    ([2, [0, 1], 1], 2),
    ([2, [3, 2], [1, 1], 1], 2),
    ([2, [3, 2], [1, 1], 1], 3),
    ([2, [3, 2], [1, 1], 1], [[], [2, 3], [3], []]),
    ([3, [2, 2], [1, 1]], [[], [3, 2], [2]]),
]
IDS = ["0+1x2", "mixed-ar2", "mixed-ar3", "mixed-per-node", "mult-output"]


def _randomize_affines(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in AFFINES:
            for p in getattr(model, name):
                p.copy_(0.5 + torch.rand(p.shape, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("width,mult_arity", CASES, ids=IDS)
def test_init_matches_multkan(multkan, float64_default, width, mult_arity):
    theirs = multkan(width, grid=4, k=3, seed=3, mult_arity=mult_arity)
    ours = pf.KAN(width, grid=4, k=3, seed=3, mult_arity=mult_arity)
    assert ours.width == theirs.width and ours.mult_arity == theirs.mult_arity
    assert ours.width_in == theirs.width_in and ours.width_out == theirs.width_out
    assert ours.mult_homo == theirs.mult_homo
    for a, b in zip(ours.act_fun, theirs.act_fun):
        for name in LAYER_PARAMS:
            assert getattr(a, name).shape == getattr(b, name).shape, name
            if name == "coef":  # one lstsq per input here, one per edge in pykan
                assert _max_rel(a.coef, b.coef) <= 1e-12
            else:
                assert torch.equal(getattr(a, name), getattr(b, name)), name
    for name in AFFINES:
        for a, b in zip(getattr(ours, name), getattr(theirs, name)):
            assert a.shape == b.shape and torch.equal(a, b), name


@pytest.mark.parametrize("width,mult_arity", CASES, ids=IDS)
def test_forward_and_gradients_match_multkan(multkan, float64_default, width, mult_arity):
    theirs = multkan(width, grid=5, k=3, seed=1, mult_arity=mult_arity, affine_trainable=True,
                     noise_scale=1.0)
    _randomize_affines(theirs, seed=2)  # every affine enters the forward and gets a gradient
    ours = pf.KAN.from_pykan(theirs)
    assert ours.mult_arity == theirs.mult_arity
    x = _inputs(64, ours.width_in[0], seed=3, low=-1.5, high=1.5)
    x_theirs, x_ours = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y_theirs, y_ours = theirs(x_theirs), ours(x_ours)
    assert y_ours.shape == y_theirs.shape == (64, ours.width_in[-1])
    assert _max_rel(y_ours, y_theirs) <= 1e-10
    for a, b in zip(ours.acts, theirs.acts):
        assert _max_rel(a, b) <= 1e-10
    dy = torch.randn(y_ours.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    y_theirs.backward(dy)
    y_ours.backward(dy)
    assert _max_rel(x_ours.grad, x_theirs.grad) <= 1e-10
    for l, (a, b) in enumerate(zip(ours.act_fun, theirs.act_fun)):
        for name in ("coef", "scale_base", "scale_sp"):
            assert _max_rel(getattr(a, name).grad, getattr(b, name).grad) <= 1e-10, (l, name)
    for name in AFFINES:
        for l, (a, b) in enumerate(zip(getattr(ours, name), getattr(theirs, name))):
            assert _max_rel(a.grad, b.grad) <= 1e-10, (l, name)


def test_product_node_is_the_product_of_its_subnodes(float64_default):
    """The node values by hand: node affine of the product of the subnode affines."""
    model = pf.KAN([2, [1, 2], 1], grid=3, seed=0, mult_arity=[[], [2, 3], []],
                   affine_trainable=True)
    _randomize_affines(model, seed=1)
    x = _inputs(16, 2, seed=2)
    with torch.no_grad():
        model(x)
        s = model.act_fun[0](x) * model.subnode_scale[0] + model.subnode_bias[0]  # [16, 6]
    nodes = torch.stack([s[:, 0], s[:, 1] * s[:, 2], s[:, 3] * s[:, 4] * s[:, 5]], dim=1)
    want = nodes * model.node_scale[0] + model.node_bias[0]
    assert _max_rel(model.acts[1], want) <= 1e-14


def test_update_grid_and_refine_match_multkan(multkan, float64_default):
    width, arity = [2, [3, 2], [1, 1], 1], [[], [2, 3], [2], []]
    theirs = multkan(width, grid=3, k=3, seed=5, mult_arity=arity)
    ours = pf.KAN(width, grid=3, k=3, seed=5, mult_arity=arity)
    x = _inputs(300, 2, seed=6, low=-1.2, high=1.4)
    theirs.update_grid(x)
    ours.update_grid(x)
    for a, b in zip(ours.act_fun, theirs.act_fun):
        assert _max_rel(a.grid, b.grid) <= 1e-12
        assert _max_rel(a.coef, b.coef) <= 1e-10
    with torch.no_grad():
        assert _max_rel(ours(x), theirs(x)) <= 1e-10
    theirs_6, ours_6 = theirs.refine(6), ours.refine(6)  # both fit on cache_data: x
    assert ours_6.mult_arity == arity and ours_6.width == ours.width == [[2, 0], [3, 2], [1, 1], [1, 0]]
    for a, b in zip(ours_6.act_fun, theirs_6.act_fun):
        assert _max_rel(a.grid, b.grid) <= 1e-12
        assert _max_rel(a.coef, b.coef) <= 1e-9
    with torch.no_grad():
        assert _max_rel(ours_6(x), theirs_6(x)) <= 1e-10


def test_save_load_roundtrip_keeps_mult_nodes(tmp_path, float64_default):
    model = pf.KAN([2, [3, 2], [1, 1], 1], grid=4, seed=7, mult_arity=[[], [3, 2], [2], []],
                   affine_trainable=True)
    _randomize_affines(model, seed=8)
    x = _inputs(32, 2, seed=9)
    with torch.no_grad():
        want = model(x)
    model.save(tmp_path / "m.pt")
    loaded = pf.KAN.load(tmp_path / "m.pt")
    assert loaded.width == model.width and loaded.mult_arity == model.mult_arity
    with torch.no_grad():
        assert torch.equal(loaded(x), want)


def test_mult_arity_is_copied_and_validated():
    arity = [[], [2, 3], []]
    model = pf.KAN([2, [0, 2], 1], mult_arity=arity)
    arity[1][0] = 7
    assert model.mult_arity == [[], [2, 3], []]
    assert model.width_out == [2, 5, 1]
    pf.KAN([2, 3, 1], mult_arity=1)  # no multiplication node: any arity, as pykan
    with pytest.raises(ValueError, match="mult_arity"):
        pf.KAN([2, [1, 1], 1], mult_arity=1)
    with pytest.raises(ValueError, match="mult_arity"):
        pf.KAN([2, [1, 2], 1], mult_arity=[[], [2], []])  # one arity per node
    with pytest.raises(ValueError, match="mult_arity"):
        pf.KAN([2, [1, 1], 1], mult_arity=[[2]])  # one list per layer
    with pytest.raises(ValueError, match="mult_arity"):
        pf.KAN([2, [1, 1], 1], mult_arity=[[], [1], []])
    with pytest.raises(ValueError, match="mult_arity"):
        pf.KAN([2, [1, 1], 1], mult_arity=[[], ["two"], []])


def test_fit_recovers_product():
    """f(x, y) = x*y with one multiplication node: two near-linear edges into the product
    node and one into the output; L-BFGS gets the test RMSE far below the label scale;
    then auto_symbolic over x, x^2 and a few steps on the affines give a formula equal to
    x*y (to 1e-6 on random points)."""
    sympy = pytest.importorskip("sympy")
    dataset = pf.create_dataset(lambda x: x[:, [0]] * x[:, [1]], n_var=2, train_num=500,
                                test_num=500, dtype=torch.float64)
    model = pf.KAN([2, [0, 1], 1], grid=5, k=3, seed=1, dtype=torch.float64)
    history = model.fit(dataset, steps=50, update_grid=False, progress=False)
    assert history["test_loss"][-1] < 1e-3
    with torch.no_grad():
        rmse = torch.sqrt(torch.mean((model(dataset["test_input"]) - dataset["test_label"]) ** 2))
    assert rmse.item() < 1e-3

    model(dataset["train_input"][:300])  # auto_symbolic fits on the last forward's inputs
    model.auto_symbolic(lib=["x", "x^2"], verbose=0)
    model.fit(dataset, steps=10, update_grid=False, progress=False)
    (formula,), (x1, x2) = model.symbolic_formula()
    fn = sympy.lambdify([x1, x2], formula, "numpy")
    x = _inputs(1000, 2, seed=5)
    got = fn(x[:, 0].numpy(), x[:, 1].numpy())
    assert abs(got - (x[:, 0] * x[:, 1]).numpy()).max() < 1e-6
    assert sympy.expand(formula).coeff(x1 * x2) == pytest.approx(1.0, abs=1e-6)
