"""pykan_fast.kan's discovery modules (compiler, hypothesis, feynman, MLP, experiment):
pykan 0.2.8's names, parameters and defaults, and the compiled model is a MultKAN."""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest

NAMES = {
    "compiler": ["next_nontrivial_operation", "expr2kan", "kanpiler", "sf2kan"],
    "hypothesis": ["detect_separability", "batch_grad_normgrad", "get_dependence",
                   "test_symmetry", "test_separability", "test_general_separability",
                   "get_molecule", "get_tree_node", "plot_tree", "test_symmetry_var"],
    "feynman": ["get_feynman_dataset"],
    "experiment": ["runner1", "pareto_frontier"],
}
MLP_METHODS = ["forward", "get_act", "attribute", "plot", "reg", "get_reg", "fit", "swap",
               "auto_swap_l", "auto_swap", "tree"]
KAN_METHODS = ["tree", "perturb", "expand_width", "expand_depth", "swap", "auto_swap",
               "auto_swap_l", "feature_interaction", "node_attribute", "get_fun", "get_range"]


def parameters(fn):
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()
            if p.name != "self"]


def test_modules_expose_pykans_names():
    for module, names in NAMES.items():
        mod = importlib.import_module(f"pykan_fast.kan.{module}")
        for name in names:
            assert callable(getattr(mod, name)), (module, name)
    from pykan_fast.kan import MultKAN
    from pykan_fast.kan.MLP import MLP

    for name in MLP_METHODS:
        assert callable(getattr(MLP, name))
    for name in KAN_METHODS:
        assert callable(getattr(MultKAN, name))
    assert isinstance(MultKAN.connection_cost, property)


def test_compiled_model_is_a_multkan():
    sympy = pytest.importorskip("sympy")
    from pykan_fast.kan import MultKAN
    from pykan_fast.kan.compiler import kanpiler

    x, y = sympy.symbols("x y")
    model = kanpiler([x, y], x * sympy.sin(y))
    assert isinstance(model, MultKAN) and model.width == [[2, 0], [0, 1]]  # the output is the product node


def test_pareto_frontier():
    from pykan_fast.kan.experiment import pareto_frontier

    c = np.array([1, 2, 3, 4, 2])
    loss = np.array([0.5, 0.3, 0.35, 0.1, 0.4])
    _, _, ids = pareto_frontier(c, loss)
    assert ids.tolist() == [0, 1, 3]


@pytest.mark.pykan
def test_signatures_match_pykan():
    pytest.importorskip("kan")
    for module, names in NAMES.items():
        theirs = importlib.import_module(f"kan.{module}")
        mine = importlib.import_module(f"pykan_fast.kan.{module}")
        for name in names:
            assert parameters(getattr(mine, name)) == parameters(getattr(theirs, name)), (module, name)
    from kan.MLP import MLP as TheirMLP
    from kan.MultKAN import MultKAN as TheirKAN

    from pykan_fast.kan import MultKAN
    from pykan_fast.kan.MLP import MLP

    assert parameters(MLP.__init__) == parameters(TheirMLP.__init__)
    for name in MLP_METHODS:
        mine, theirs = parameters(getattr(MLP, name)), parameters(getattr(TheirMLP, name))
        assert mine[:len(theirs)] == theirs, name  # extras (progress=) come last
    for name in KAN_METHODS:
        mine, theirs = parameters(getattr(MultKAN, name)), parameters(getattr(TheirKAN, name))
        assert [n for n, _ in mine[:len(theirs)]] == [n for n, _ in theirs], name
    from kan.experiment import pareto_frontier as theirs_pf

    from pykan_fast.kan.experiment import pareto_frontier as mine_pf
    a, b = np.random.rand(20), np.random.rand(20)
    assert mine_pf(a, b)[2].tolist() == theirs_pf(a, b)[2].tolist()
