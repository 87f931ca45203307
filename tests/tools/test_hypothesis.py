"""Hypothesis tests (pykan_fast.tools.hypothesis): verdicts on pykan's tutorial examples
(Interp_5_test_symmetry), Jacobians/Hessians against closed forms, and parity with
pykan 0.2.8's own functions on the same samples."""

from __future__ import annotations

import pytest
import torch

import pykan_fast as pf
from pykan_fast.tools import hypothesis as hyp
from pykan_fast.tools.derivatives import batch_hessian, batch_jacobian


def pairs_sum(x):
    return x[:, [0]] * x[:, [1]] + x[:, [2]] * x[:, [3]] + x[:, [4]] * x[:, [5]]


def pairs_product(x):
    return (x[:, [0]] + x[:, [1]]) * (x[:, [2]] + x[:, [3]]) * (x[:, [4]] + x[:, [5]])


def sin_pairs_product(x):
    return torch.sin(pairs_product(x))


def nested_squares(x):
    def sq(a, b):
        return (x[:, [a]] ** 2 + x[:, [b]] ** 2) ** 2
    return (sq(0, 1) + sq(2, 3)) ** 2 + (sq(4, 5) + sq(6, 7)) ** 2


def nested_plus_one(x):
    return ((x[:, [0]] ** 2 + x[:, [1]] ** 2) ** 2 + (x[:, [2]] ** 2 + x[:, [3]] ** 2) ** 2) ** 2 + x[:, [4]] ** 2


def samples(n, seed=0, batch=100):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, n, generator=g) * 2 - 1


def as_sets(groups):
    return sorted(sorted(int(i) for i in g) for g in groups)


def test_jacobian_and_hessian_closed_form():
    x = samples(3).double()
    f = lambda v: v[:, [0]] ** 2 * v[:, [1]] + torch.sin(v[:, [2]])  # noqa: E731
    jac = batch_jacobian(f, x)
    want = torch.stack([2 * x[:, 0] * x[:, 1], x[:, 0] ** 2, torch.cos(x[:, 2])], dim=1)
    assert torch.allclose(jac, want, atol=1e-12)
    hess = batch_hessian(f, x)
    assert hess.shape == (100, 3, 3)
    assert torch.allclose(hess[:, 0, 1], 2 * x[:, 0], atol=1e-12)
    assert torch.allclose(hess[:, 2, 2], -torch.sin(x[:, 2]), atol=1e-12)
    assert torch.all(hess[:, 1, 1] == 0) and torch.all(hess[:, 0, 2] == 0)


def test_hessian_of_a_kan_matches_finite_differences():
    model = pf.KAN([2, 3, 1], grid=5, k=3, seed=0, dtype=torch.float64)
    x = samples(2, batch=20).double() * 0.8
    hess = batch_hessian(model, x)
    eps = 1e-5
    jac = lambda v: batch_jacobian(model, v)  # noqa: E731
    shift = torch.zeros_like(x)
    shift[:, 1] = eps
    fd = (jac(x + shift) - jac(x - shift)) / (2 * eps)  # column 1 of the Hessian
    assert torch.allclose(hess[:, :, 1], fd, atol=1e-5)


def test_detect_separability_tutorial_cases():
    x = samples(6)
    add = hyp.detect_separability(pairs_sum, x, "add")
    assert add["n_groups"] == 3 and as_sets(add["groups"]) == [[0, 1], [2, 3], [4, 5]]
    mul = hyp.detect_separability(pairs_product, x, "mul")
    assert mul["n_groups"] == 3 and as_sets(mul["groups"]) == [[0, 1], [2, 3], [4, 5]]
    none = hyp.detect_separability(sin_pairs_product, x, "add")
    assert none["n_groups"] == 1


def test_separability_and_symmetry_tutorial_verdicts():
    x = samples(6, seed=1)
    assert hyp.test_separability(pairs_product, x, [[0, 1], [2, 3], [4, 5]], "mul") is True
    assert hyp.test_separability(pairs_product, x, [[0, 1], [2, 4], [3, 5]], "mul") is False
    assert hyp.test_separability(sin_pairs_product, x, [[0, 1], [2, 3], [4, 5]], "mul") is False
    assert hyp.test_general_separability(sin_pairs_product, x, [[0, 1], [2, 3], [4, 5]]) is True
    assert hyp.test_symmetry(pairs_product, x, [0, 1]) is True
    assert hyp.test_symmetry(pairs_product, x, [0, 2]) is False
    assert hyp.test_symmetry(pairs_product, x, [2, 3]) is True


def test_tree_of_nested_squares():
    x = samples(8, seed=2)
    levels = hyp.get_molecule(nested_squares, x, verbose=False)
    assert levels == [[[i] for i in range(8)], [[0, 1], [2, 3], [4, 5], [6, 7]],
                      [[0, 1, 2, 3], [4, 5, 6, 7]], [list(range(8))]]
    arities, props = hyp.get_tree_node(nested_squares, x, levels, skip_test=False)
    assert arities == [[2, 2, 2, 2], [2, 2], [2]]
    assert props == [["GS"] * 4, ["GS", "GS"], ["Add"]]


def test_plot_tree_returns_a_figure():
    pytest.importorskip("matplotlib")
    pytest.importorskip("sympy")
    import matplotlib
    matplotlib.use("Agg")
    fig = hyp.plot_tree(nested_plus_one, samples(5, seed=3), style="box",
                        in_var=["a", "b", "c", "d", "e"])
    assert fig.axes and fig.axes[0].texts


def test_symmetry_var():
    sympy = pytest.importorskip("sympy")
    a, b, c = sympy.symbols("a b c")
    f = lambda x: x[:, [0]] * torch.sqrt(1 + (x[:, [1]] / x[:, [2]]) ** 2)  # noqa: E731
    x = samples(3, seed=4)
    assert float(torch.mean((hyp.test_symmetry_var(f, x, [a, b, c], b / c) > 0.9).float())) > 0.9
    assert float(torch.mean((hyp.test_symmetry_var(f, x, [a, b, c], b * c) > 0.9).float())) < 0.9


def test_bad_arguments():
    x = samples(3)
    with pytest.raises(ValueError, match="group"):
        hyp.test_symmetry(pairs_product, x, [0, 7])
    with pytest.raises(ValueError, match="groups"):
        hyp.test_separability(pairs_product, x, [[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="mode"):
        hyp.test_separability(pairs_product, x, [[0], [1]], mode="sub")
    with pytest.raises(ValueError, match="x"):
        batch_jacobian(pairs_product, x[:, 0])


@pytest.mark.pykan
@pytest.mark.slow
def test_matches_pykan_on_its_examples():
    khyp = pytest.importorskip("kan.hypothesis")
    x6 = samples(6, seed=5)
    for f, mode in ((pairs_sum, "add"), (pairs_product, "mul"), (sin_pairs_product, "add")):
        mine, theirs = hyp.detect_separability(f, x6, mode), khyp.detect_separability(f, x6, mode)
        assert torch.allclose(mine["hessian"], theirs["hessian"], rtol=1e-5, atol=1e-7)
        assert mine["n_groups"] == theirs["n_groups"]
        assert as_sets(mine["groups"]) == as_sets(theirs["groups"])
    for groups in ([[0, 1], [2, 3], [4, 5]], [[0, 1], [2, 4], [3, 5]], [[0], [1, 2]]):
        for f in (pairs_product, sin_pairs_product):
            for mode in ("add", "mul"):
                assert hyp.test_separability(f, x6, groups, mode) == bool(
                    khyp.test_separability(f, x6, groups, mode))
    for groups in ([[0, 1], [2, 3], [4, 5]], [[0, 2], [1, 3, 4, 5]]):
        assert hyp.test_general_separability(sin_pairs_product, x6, groups) == bool(
            khyp.test_general_separability(sin_pairs_product, x6, groups))
    for group in ([0, 1], [0, 2], [2, 3], [1, 4, 5]):
        assert torch.allclose(hyp.get_dependence(pairs_product, x6, group),
                              khyp.get_dependence(pairs_product, x6, group), atol=1e-7)
    x5 = samples(5, seed=6)
    mine = hyp.get_molecule(nested_plus_one, x5, verbose=False)
    assert mine == khyp.get_molecule(nested_plus_one, x5, verbose=False)
    assert hyp.get_tree_node(nested_plus_one, x5, mine, sep_th=0.1, skip_test=False) == \
        khyp.get_tree_node(nested_plus_one, x5, mine, sep_th=0.1, skip_test=False)


def test_verdicts_on_a_kan_equal_those_on_its_formula():
    """A compiled KAN (fused layers, symbolic edges) through the batched double backward."""
    sympy = pytest.importorskip("sympy")
    from pykan_fast.tools.compiler import kanpiler

    v = sympy.symbols("a b c d")
    expr = (v[0] ** 2 + v[1] ** 2) ** 2 + (v[2] ** 2 + v[3] ** 2) ** 2
    model = kanpiler(v, expr, dtype=torch.float64)
    f = lambda x: (x[:, [0]] ** 2 + x[:, [1]] ** 2) ** 2 + (x[:, [2]] ** 2 + x[:, [3]] ** 2) ** 2  # noqa: E731
    x = samples(4, seed=7).double()
    assert torch.allclose(batch_hessian(model, x), batch_hessian(f, x), atol=1e-10)
    levels = hyp.get_molecule(model, x, verbose=False)
    assert levels == hyp.get_molecule(f, x, verbose=False)
    assert levels == [[[0], [1], [2], [3]], [[0, 1], [2, 3]], [[0, 1, 2, 3]]]
    assert hyp.test_separability(model, x, [[0, 1], [2, 3]], "add") is True
    assert hyp.test_separability(model, x, [[0, 2], [1, 3]], "add") is False
    assert hyp.test_general_separability(model, x, [[0, 1], [2, 3]]) is True


@pytest.mark.pykan
def test_pykan_verdicts_on_its_compiled_model(monkeypatch, tmp_path):
    sympy = pytest.importorskip("sympy")
    kcompiler = pytest.importorskip("kan.compiler")
    khyp = pytest.importorskip("kan.hypothesis")
    v = sympy.symbols("a b c d")
    expr = (v[0] ** 2 + v[1] ** 2) ** 2 + (v[2] ** 2 + v[3] ** 2) ** 2
    x = samples(4, seed=7).double()
    levels = [[[0], [1], [2], [3]], [[0, 1], [2, 3]], [[0, 1, 2, 3]]]
    monkeypatch.chdir(tmp_path)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        theirs = kcompiler.kanpiler(v, expr)
        assert khyp.get_molecule(theirs, x, verbose=False) == levels
        assert bool(khyp.test_separability(theirs, x, [[0, 2], [1, 3]], "add")) is False
    finally:
        torch.set_default_dtype(old)
