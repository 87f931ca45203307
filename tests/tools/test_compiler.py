"""The KAN compiler (pykan_fast.tools.compiler): compiled models compute their formula;
widths, arities and every edge's function and affine match pykan 0.2.8's kanpiler."""

from __future__ import annotations

import pytest
import torch

sympy = pytest.importorskip("sympy")

from pykan_fast.tools.compiler import compile_plan, expr2kan, kanpiler, split_affine  # noqa: E402

x, y, z = sympy.symbols("x y z")

FORMULAS = {
    "exp-sin-square": ((x, y), sympy.exp(sympy.sin(sympy.pi * x) + y ** 2)),
    "product-plus": ((x, y, z), x * y + z),
    "mixed": ((x, y, z), (x + y) * z ** 2 + sympy.sin(3 * x * y + 1)),
    "norm": ((x, y), sympy.sqrt(x ** 2 + y ** 2)),
    "ratio": ((x, y, z), x * y * z / (1 + x ** 2)),
    "affines": ((x, y), 2.5 * sympy.cos(0.5 * x - 1) * (y + 2) - 3),
    "deep": ((x, y), sympy.tanh(sympy.exp(x * y) + sympy.log(y)) ** 3),
}


def inputs(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(300, n, generator=g, dtype=torch.float64) * 1.5 + 0.2)


def reference(variables, expr, xs):
    f = sympy.lambdify(variables, expr, "math")
    return torch.tensor([f(*row) for row in xs.tolist()], dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_compiled_model_computes_its_formula(name):
    variables, expr = FORMULAS[name]
    model = kanpiler(variables, expr, dtype=torch.float64)
    xs = inputs(len(variables))
    with torch.no_grad():
        out = model(xs)[:, 0]
    assert torch.allclose(out, reference(variables, expr, xs), rtol=1e-6, atol=1e-6)
    assert all(float(layer.mask.abs().sum()) == 0 for layer in model.act_fun)


def test_structure_of_the_tutorial_formula():
    plan = compile_plan((x, y), sympy.exp(sympy.sin(sympy.pi * x) + y ** 2))
    assert plan["width"] == [[2, 0], [1, 0], [1, 0]]
    assert plan["edges"][(0, 0, 0)][0] == "sin"
    assert plan["edges"][(0, 1, 0)][0] == "x^2"
    assert plan["edges"][(1, 0, 0)][0] == "exp"
    assert float(plan["edges"][(0, 0, 0)][1][0]) == pytest.approx(float(sympy.pi))


def test_split_affine():
    core, scale, bias = split_affine(3 * sympy.sin(x) + 2)
    assert core == sympy.sin(x) and scale == 3 and bias == 2


def test_bad_input():
    with pytest.raises(ValueError, match="input_variables"):
        expr2kan(["x"], x ** 2)
    with pytest.raises(ValueError, match="not one of input_variables"):
        expr2kan((x,), x * y)
    with pytest.raises(ValueError, match="power"):
        expr2kan((x, y), (x + y) ** 7)
    with pytest.raises(ValueError, match="function"):
        expr2kan((x, y), sympy.erf(x + y))
    with pytest.raises(ValueError, match="two functions"):
        expr2kan((x, y), y * (x + sympy.sin(x)))
    with pytest.raises(ValueError, match="operation"):
        expr2kan((x,), 2 * x + 1)


@pytest.mark.pykan
@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_matches_pykan(name, monkeypatch, tmp_path):
    kcompiler = pytest.importorskip("kan.compiler")
    monkeypatch.chdir(tmp_path)
    variables, expr = FORMULAS[name]
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    xs = inputs(len(variables), seed=1)
    try:
        theirs = kcompiler.kanpiler(variables, expr)
        with torch.no_grad():  # pykan's symbolic forward makes tensors in the default dtype
            their_out = theirs(xs)
    finally:
        torch.set_default_dtype(old)
    mine = kanpiler(variables, expr, dtype=torch.float64)
    assert mine.width == theirs.width
    assert mine.mult_arity == theirs.mult_arity
    for l in range(mine.depth):
        assert mine.symbolic_fun[l].funs_name == theirs.symbolic_fun[l].funs_name
        assert torch.allclose(mine.symbolic_fun[l].affine, theirs.symbolic_fun[l].affine.detach())
        assert torch.equal(mine.symbolic_fun[l].mask, theirs.symbolic_fun[l].mask.detach())
        for name_ in ("node_scale", "node_bias", "subnode_scale", "subnode_bias"):
            assert torch.allclose(getattr(mine, name_)[l], getattr(theirs, name_)[l].detach())
    with torch.no_grad():
        assert torch.allclose(mine(xs), their_out, rtol=1e-10, atol=1e-12)
