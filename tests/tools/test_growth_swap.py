"""Growing, perturbing and reordering KANs (pykan_fast.tools.growth, .swap,
.interaction): the function is kept where pykan keeps it, widths and masks follow
pykan 0.2.8, auto_swap lowers the connection cost, attribution readouts match pykan."""

from __future__ import annotations

import pytest
import torch

import pykan_fast as pf

sympy = pytest.importorskip("sympy")

from pykan_fast.experiments.feynman import get_feynman_dataset  # noqa: E402
from pykan_fast.tools.compiler import kanpiler  # noqa: E402


def feynman36(dtype=torch.float64):
    variables, expr, f, ranges = get_feynman_dataset(36)
    g = torch.Generator().manual_seed(0)
    r = torch.tensor(ranges, dtype=dtype).reshape(-1, 2).expand(len(variables), 2)
    x = r[:, 0] + (r[:, 1] - r[:, 0]) * torch.rand(200, len(variables), generator=g, dtype=dtype)
    return variables, expr, x, f(x)


def grow(model):
    """The tutorial's sequence (Interp_3_KAN_Compiler)."""
    model.expand_depth()
    model.expand_width(1, 2)
    model.expand_width(2, 2, sum_bool=False, mult_arity=[2, 3])


def test_growth_keeps_the_compiled_function():
    variables, expr, x, y = feynman36()
    model = kanpiler(variables, expr, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(model(x), y, rtol=1e-10)
        grow(model)
        assert model.width == [[3, 0], [3, 2], [0, 3], [1, 0]]
        assert model.mult_arity == [[], [2, 2], [3, 2, 3], []]
        assert torch.allclose(model(x), y, rtol=1e-10)
        model(x)
        model.perturb(mag=0.1, mode="non-intrusive")
        assert torch.allclose(model(x), y, rtol=1e-10)
        model.perturb(mag=0.1, mode="all")
        assert not torch.allclose(model(x), y, rtol=1e-3)
    # every edge is trainable after perturbing: the model fits further
    model.fit({"train_input": x, "train_label": y, "test_input": x, "test_label": y},
              steps=1, update_grid=False, progress=False)


def test_expand_width_keeps_a_trained_spline():
    model = pf.KAN([2, 3, 1], grid=5, k=3, seed=0, dtype=torch.float64)
    x = torch.rand(64, 2, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        before = model(x)
        model.expand_width(1, 2)
        model.expand_width(1, 1, sum_bool=False, mult_arity=2)
        assert model.width == [[2, 0], [5, 1], [1, 0]]
        assert torch.allclose(model(x), before, rtol=1e-12)


def symbolic_model(seed=0):
    model = pf.KAN([3, 4, 3, 1], grid=5, k=3, seed=seed, dtype=torch.float64)
    x = torch.rand(100, 3, dtype=torch.float64) * 2 - 1
    model(x)
    model.fix_symbolic(0, 1, 2, "sin", fit_params_bool=False)
    model.fix_symbolic(1, 3, 0, "x^2", fit_params_bool=False)
    with torch.no_grad():
        model.node_scale[0][1] = 2.0
        model.subnode_bias[0][3] = 0.5
    return model, x


def test_swap_keeps_the_function():
    model, x = symbolic_model()
    with torch.no_grad():
        before = model(x)
        model.swap(1, 1, 3)
        model.swap(2, 0, 2)
        assert torch.allclose(model(x), before, rtol=1e-12)
    assert model.symbolic_fun[1].funs_name[2][1] == "x^2"  # input 3 -> 1, output 0 -> 2
    assert model.symbolic_fun[0].funs_name[2][1] == "sin"  # untouched by both swaps


def test_auto_swap_lowers_the_connection_cost():
    model, x = symbolic_model(seed=3)
    with torch.no_grad():
        before = model(x)
    model.attribute()
    cost = float(model.connection_cost)
    model.auto_swap()
    model.attribute()
    assert float(model.connection_cost) <= cost
    with torch.no_grad():
        assert torch.allclose(model(x), before, rtol=1e-12)


def test_bad_arguments():
    model, _ = symbolic_model()
    with pytest.raises(ValueError, match="l"):
        model.swap(0, 0, 1)
    with pytest.raises(ValueError, match="i2"):
        model.swap(1, 0, 9)
    with pytest.raises(ValueError, match="mode"):
        model.perturb(mode="some")
    with pytest.raises(ValueError, match="layer_id"):
        model.expand_width(3, 1)
    with pytest.raises(ValueError, match="mult_arity"):
        model.expand_width(1, 2, sum_bool=False, mult_arity=[2])


@pytest.mark.pykan
def test_growth_and_perturb_match_pykan(monkeypatch, tmp_path):
    kcompiler = pytest.importorskip("kan.compiler")
    monkeypatch.chdir(tmp_path)
    variables, expr, x, y = feynman36()
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        theirs = kcompiler.kanpiler(variables, expr)
        grow(theirs)
        with torch.no_grad():
            their_grown = theirs(x)
        theirs.perturb(mag=0.1, mode="non-intrusive")
        with torch.no_grad():
            their_perturbed = theirs(x)
    finally:
        torch.set_default_dtype(old)
    mine = kanpiler(variables, expr, dtype=torch.float64)
    grow(mine)
    assert mine.width == theirs.width and mine.mult_arity == theirs.mult_arity
    with torch.no_grad():
        assert torch.allclose(mine(x), their_grown, rtol=1e-10)
        assert torch.allclose(their_grown, y, rtol=1e-10)
        mine(x)
    mine.perturb(mag=0.1, mode="non-intrusive")
    with torch.no_grad():
        assert torch.allclose(mine(x), their_perturbed, rtol=1e-10)
    for l in range(mine.depth):
        assert torch.equal(mine.act_fun[l].mask, theirs.act_fun[l].mask.detach())
        assert mine.symbolic_fun[l].funs_name == theirs.symbolic_fun[l].funs_name
    for mode in ("all", "minimal"):
        mine.perturb(mag=0.3, mode=mode)
        theirs.perturb(mag=0.3, mode=mode)
        for l in range(mine.depth):
            assert torch.equal(mine.act_fun[l].mask, theirs.act_fun[l].mask.detach()), mode


@pytest.mark.pykan
def test_swap_cost_and_readouts_match_pykan(multkan):
    theirs = multkan([3, 5, 1], grid=5, k=3, seed=4, symbolic_enabled=True)
    x = torch.rand(80, 3) * 2 - 1
    theirs(x)
    mine = pf.KAN.from_pykan(theirs)
    mine(x)
    theirs.attribute()
    mine.attribute()
    assert float(mine.connection_cost) == pytest.approx(float(theirs.connection_cost.detach()), rel=1e-5)
    assert mine.feature_interaction(1) == {tuple(int(i) for i in k): v
                                           for k, v in theirs.feature_interaction(1).items()}
    assert mine.get_range(0, 1, 2, verbose=False) == pytest.approx(
        [float(v) for v in theirs.get_range(0, 1, 2, verbose=False)], rel=1e-5, abs=1e-6)
    theirs.swap(1, 0, 3, log_history=False)
    mine.swap(1, 0, 3)
    converted = pf.KAN.from_pykan(theirs)
    for name, value in converted.state_dict().items():
        assert torch.equal(mine.state_dict()[name], value), name
    theirs.auto_swap()
    mine.auto_swap()
    converted = pf.KAN.from_pykan(theirs)
    for name, value in converted.state_dict().items():
        assert torch.allclose(mine.state_dict()[name], value), name
