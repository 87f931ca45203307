"""The symbolic branch: library (pykan's names and forms, singularity-avoiding forms,
``add_symbolic``), ``fit_params`` against pykan's, ``fix_symbolic`` / ``suggest_symbolic``
/ ``auto_symbolic`` / ``unfix_symbolic`` on KAN edges, ``symbolic_formula`` (addition
and multiplication nodes), ``from_pykan`` / save / load / refine with symbolic edges, and
the recovery of exp(sin(pi x) + y^2)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import pykan_fast as pf
from pykan_fast.ops.grid import curve2coef
from pykan_fast.symbolic import (SYMBOLIC_LIB, SymbolicKANLayer, add_symbolic, fit_params,
                                 symbolic_formula)

from support import inputs as _inputs, max_rel as _max_rel

sympy = pytest.importorskip("sympy")

PYKAN_NAMES = ["x", "x^2", "x^3", "x^4", "x^5", "1/x", "1/x^2", "1/x^3", "1/x^4", "1/x^5",
               "sqrt", "x^0.5", "x^1.5", "1/sqrt(x)", "1/x^0.5", "exp", "log", "abs", "sin",
               "cos", "tan", "tanh", "sgn", "arcsin", "arccos", "arctan", "arctanh", "0",
               "gaussian"]
# Singular forms whose pykan version is what pykan means: pykan's 'tan' returns its
# threshold (it takes element [1] of a 3-tuple) and 'x^1.5' indexes a tensor.
SINGULAR_AS_PYKAN = [n for n in PYKAN_NAMES if n not in ("tan", "x^1.5")]


@pytest.fixture(autouse=True)
def _one_thread(restore_threads):
    """Small batches: one OpenMP thread (two contend on the shared 2-core machine)."""
    torch.set_num_threads(1)


@pytest.fixture
def clean_library():
    """Restores SYMBOLIC_LIB after a test that registers functions."""
    saved = dict(SYMBOLIC_LIB)
    yield
    SYMBOLIC_LIB.clear()
    SYMBOLIC_LIB.update(saved)


@pytest.fixture
def pykan_utils():
    return pytest.importorskip("kan.utils", reason="pykan (pip install pykan-fast[compat]) is needed")


def _evaluate(formula, variables, x: torch.Tensor) -> np.ndarray:
    """A sympy formula at the rows of x `[B, n]` (numpy, float64)."""
    fn = sympy.lambdify(variables, formula, "numpy")
    out = fn(*[x[:, i].numpy() for i in range(x.shape[1])])
    return np.broadcast_to(np.asarray(out, dtype=float), (x.shape[0],))


def _edge_model(fun, grid=20, seed=0):
    """A 1 -> 1 KAN whose only edge is ``fun`` on [-1, 1] (spline fitted by least squares,
    no base function), run once on its fitting samples."""
    model = pf.KAN([1, 1], grid=grid, k=3, seed=seed, dtype=torch.float64)
    x = torch.linspace(-1, 1, 401, dtype=torch.float64)[:, None]
    layer = model.act_fun[0]
    with torch.no_grad():
        layer.scale_base.zero_()
        layer.scale_sp.fill_(1.0)
        layer.coef.data = curve2coef(x, fun(x)[:, :, None], layer.grid, layer.k)
    model(x)
    return model, x


def _fully_symbolic(width, seed, fixes, mult_arity=2):
    """A KAN with every edge fixed as ``fixes(l, i, j) -> (name, affine)``, random
    node/subnode affines."""
    model = pf.KAN(width, grid=3, seed=seed, dtype=torch.float64, mult_arity=mult_arity,
                   affine_trainable=True)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in ("node_bias", "node_scale", "subnode_bias", "subnode_scale"):
            for p in getattr(model, name):
                p.copy_(0.5 + torch.rand(p.shape, generator=g, dtype=torch.float64))
    for l in range(model.depth):
        for i in range(model.width_in[l]):
            for j in range(model.width_out[l + 1]):
                name, affine = fixes(l, i, j)
                model.fix_symbolic(l, i, j, name, fit_params_bool=False)
                model.symbolic_fun[l].affine.data[j, i] = torch.tensor(affine, dtype=torch.float64)
    return model


# ---- library -----------------------------------------------------------------------


def test_library_has_pykans_names_forms_and_complexities(pykan_utils):
    theirs = pykan_utils.SYMBOLIC_LIB
    assert list(SYMBOLIC_LIB)[:len(PYKAN_NAMES)] == PYKAN_NAMES
    x = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)  # in every function's domain
    s = sympy.Symbol("s")
    for name in PYKAN_NAMES:
        mine, ref = SYMBOLIC_LIB[name], theirs[name]
        assert mine.c == ref[2], name
        assert torch.equal(mine.fun(x), ref[0](x)), name
        assert mine[0] is mine.fun and mine[3] is mine.fun_singularity  # pykan's tuple order
        assert sympy.simplify(mine.fun_sympy(s) - ref[1](s)) == 0, name


def test_sympy_forms_agree_with_torch_forms():
    s = sympy.Symbol("s")
    x = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    for name, entry in SYMBOLIC_LIB.items():
        values = np.broadcast_to(np.asarray(sympy.lambdify(s, entry.fun_sympy(s), "numpy")(x.numpy()),
                                            dtype=float), x.shape)
        assert np.allclose(values, entry.fun(x).numpy(), rtol=1e-12, atol=1e-12), name


def test_library_imports_and_runs_without_importing_sympy(tmp_path):
    """sympy (the 'symbolic' extra) loads only with a sympy form or the formula. (torch
    itself needs sympy and loads it on the first custom-op call, so the check runs the
    library's torch side only.)"""
    code = (
        "import sys, torch, pykan_fast, pykan_fast.symbolic as s\n"
        "x = torch.linspace(-1, 1, 50, dtype=torch.float64)\n"
        "for e in s.SYMBOLIC_LIB.values(): e.fun(x); e.fun_singularity(x, 10.0)\n"
        "s.fit_params(x, torch.sin(x), torch.sin, verbose=False)\n"
        "layer = s.SymbolicKANLayer(2, 2, dtype=torch.float64)\n"
        "layer.fix_symbolic(0, 1, 'log'); layer.set_mask(0, 1, 1.0); layer(x.reshape(-1, 2))\n"
        "assert 'sympy' not in sys.modules\n"
        "s.SYMBOLIC_LIB['sin'].fun_sympy(1.0)\n"
        "assert 'sympy' in sys.modules; print('ok')\n")
    # From outside the source tree: `python -c` puts the working folder first on sys.path,
    # where pykan_fast/ (without its compiled extension) would shadow the installed copy.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_formula_without_sympy_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sympy", None)
    model = _fully_symbolic([1, 1], seed=0, fixes=lambda l, i, j: ("sin", [1.0, 0.0, 1.0, 0.0]))
    with pytest.raises(ImportError, match=r"pykan-fast\[symbolic\]"):
        model.symbolic_formula()
    with pytest.raises(ImportError, match="sympy"):
        SYMBOLIC_LIB["exp"].fun_sympy(1.0)


@pytest.mark.parametrize("name", SINGULAR_AS_PYKAN)
def test_singular_forms_match_pykans(pykan_utils, name):
    x = torch.linspace(-3, 3, 6001, dtype=torch.float64)
    x = torch.cat([x, torch.tensor([0.0, 1e-300, -1e-12, 1.0, -1.0], dtype=torch.float64)])
    want = pykan_utils.SYMBOLIC_LIB[name][3](x, torch.tensor(10.0, dtype=torch.float64))[1]
    got = SYMBOLIC_LIB[name].fun_singularity(x, 10.0)
    assert torch.equal(got, want.expand_as(got)), name


@pytest.mark.parametrize("name", ["1/x", "1/x^2", "1/x^3", "1/x^4", "1/x^5", "sqrt", "1/sqrt(x)",
                                  "log", "tan", "arctanh", "arcsin", "arccos", "exp"])
def test_singular_forms_are_finite_with_finite_gradients(name):
    """At and near the singular points, where pykan's gradient is NaN (0 * inf)."""
    x = torch.tensor([0.0, 1e-300, -1e-8, 1e-3, 0.999999, 1.0 + 1e-9, -1.5, math.pi / 2, 50.0],
                     dtype=torch.float64, requires_grad=True)
    y = SYMBOLIC_LIB[name].fun_singularity(x, 10.0)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all(), name


def test_singular_functions_train_finite_with_singularity_avoiding():
    """Edges fixed to 1/x and log on inputs crossing 0: the plain forward is not finite,
    the singularity-avoiding one and its gradients are, over training steps."""
    model = pf.KAN([2, 2, 1], grid=3, seed=0, dtype=torch.float64)
    model.fix_symbolic(0, 0, 0, "1/x", fit_params_bool=False)
    model.fix_symbolic(0, 1, 1, "log", fit_params_bool=False)
    x = torch.cat([_inputs(64, 2, seed=1), torch.zeros(1, 2, dtype=torch.float64)])
    y = torch.sin(x.sum(1, keepdim=True))
    with torch.no_grad():
        assert not torch.isfinite(model(x)).all()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(5):
        opt.zero_grad()
        loss = ((model(x, singularity_avoiding=True, y_th=10.0) - y) ** 2).mean()
        loss.backward()
        assert torch.isfinite(loss)
        for p in model.parameters():
            assert p.grad is None or torch.isfinite(p.grad).all()
        assert torch.isfinite(model.symbolic_fun[0].affine.grad).all()
        assert model.symbolic_fun[0].affine.grad.abs().sum() > 0  # the affines train
        opt.step()
    # fit passes the switch to its training forward (pykan's fit has it too).
    data = {"train_input": x, "train_label": y, "test_input": x[:-1], "test_label": y[:-1]}
    history = model.fit(data, opt="Adam", lr=1e-2, steps=3, update_grid=False, progress=False,
                        singularity_avoiding=True, y_th=10.0)
    assert all(math.isfinite(v) for v in history["train_loss"])


def test_add_symbolic_user_function(clean_library):
    add_symbolic("cube_sin", lambda x: torch.sin(x) ** 3, c=3)
    assert SYMBOLIC_LIB["cube_sin"].c == 3
    s = sympy.Symbol("s")
    assert str(SYMBOLIC_LIB["cube_sin"].fun_sympy(s)) == "cube_sin(s)"  # pykan: sympy.Function
    model, x = _edge_model(lambda t: 0.7 * torch.sin(1.3 * t + 0.2) ** 3 - 0.1)
    r2 = model.fix_symbolic(0, 0, 0, "cube_sin", verbose=False)
    assert r2 > 0.999
    with torch.no_grad():
        want = 0.7 * torch.sin(1.3 * x + 0.2) ** 3 - 0.1
        assert (model(x) - want).abs().max() < 1e-3
    assert model.symbolic_fun[0].funs_name[0][0] == "cube_sin"
    formula = model.symbolic_formula()[0][0]
    assert "cube_sin" in str(formula)
    with pytest.raises(TypeError, match="fun"):
        add_symbolic("bad", 3.0)
    with pytest.raises(ValueError, match="name"):
        add_symbolic("", torch.sin)
    with pytest.raises(ValueError, match="c"):
        add_symbolic("bad", torch.sin, c=float("nan"))


# ---- fit_params ---------------------------------------------------------------------


@pytest.mark.parametrize("name,target", [
    ("sin", lambda x: 2 * torch.sin(3 * x + 0.5) + 0.2),
    ("x^2", lambda x: 1.7 * (x - 0.3) ** 2),
    ("exp", lambda x: torch.exp(0.7 * x)),  # flat ridge: b trades against c
    ("log", lambda x: torch.log(x + 1.5)),
    ("1/x", lambda x: 1 / (x + 1.2)),
    ("tanh", lambda x: torch.tanh(3 * x)),
    ("0", lambda x: x * 0),
    ("x", lambda x: 3 * x - 1),
], ids=lambda v: v if isinstance(v, str) else "")
def test_fit_params_matches_pykans(pykan_utils, float64_default, name, target):
    x = _inputs(300, 1, seed=0)[:, 0]
    y = target(x)
    want, r2_want = pykan_utils.fit_params(x, y, pykan_utils.SYMBOLIC_LIB[name][0], verbose=False)
    got, r2 = fit_params(x, y, SYMBOLIC_LIB[name].fun, verbose=False)
    assert float(r2) == float(r2_want)  # the same arithmetic: same grid cell
    assert (got - want).abs().max() <= 1e-12 * max(1.0, want.abs().max().item())


def _r2_whole_block(x, y, fun, a_, b_):
    """pykan's grid search as pykan writes it: the whole [B, len(a_), len(b_)] block."""
    yc = (y - torch.mean(y, dim=[0], keepdim=True))[:, None, None]
    a_grid, b_grid = torch.meshgrid(a_, b_, indexing="ij")
    post_fun = fun(a_grid[None, :, :] * x[:, None, None] + b_grid[None, :, :])
    post_fun = post_fun - torch.mean(post_fun, dim=[0], keepdim=True)
    numerator = torch.sum(post_fun * yc, dim=0) ** 2
    denominator = torch.sum(post_fun ** 2, dim=0) * torch.sum(yc ** 2, dim=0)
    return torch.nan_to_num(numerator / (denominator + 1e-4))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [37, 1000])
@pytest.mark.parametrize("name", ["sin", "exp", "x^2", "1/x", "tanh"])
def test_r2_grid_chunks_keep_the_whole_blocks_bits(dtype, batch, name):
    """The grid search runs in cache-sized chunks of the (a, b) pairs (10 at batch 1000,
    float32); each cell must still get pykan's whole-block bits, or flat ridges pick
    another cell."""
    from pykan_fast.tools.symbolic.fitting import _r2_grid
    g = torch.Generator().manual_seed(batch)
    x = (torch.rand(batch, generator=g) * 2 - 1).to(dtype)
    y = torch.exp(0.7 * x) + 0.01 * torch.randn(batch, generator=g).to(dtype)
    a_ = torch.linspace(-10, 10, 101, dtype=dtype)
    b_ = torch.linspace(-3, 7, 101, dtype=dtype)
    fun = SYMBOLIC_LIB[name].fun
    assert torch.equal(_r2_grid(x, y, fun, a_, b_), _r2_whole_block(x, y, fun, a_, b_))


def test_fit_params_bad_input():
    x = torch.linspace(-1, 1, 10)
    with pytest.raises(ValueError, match="x"):
        fit_params(x[:, None], x, torch.sin)
    with pytest.raises(ValueError, match="y"):
        fit_params(x, x[:5], torch.sin)
    with pytest.raises(ValueError, match="a_range"):
        fit_params(x, x, torch.sin, a_range=(1, -1))
    with pytest.raises(TypeError, match="fun"):
        fit_params(x, x, "sin")


# ---- fix / suggest / auto / unfix ----------------------------------------------------


@pytest.mark.parametrize("name,fun", [
    ("sin", lambda t: 1.5 * torch.sin(2 * t + 0.5) + 0.3),
    ("x^2", lambda t: 0.8 * (t - 0.3) ** 2),
    ("exp", lambda t: 0.5 * torch.exp(1.3 * t) - 0.2),
], ids=["sin", "x^2", "exp"])
def test_fix_symbolic_recovers_known_edges(name, fun):
    model, x = _edge_model(fun)
    r2 = model.fix_symbolic(0, 0, 0, name, verbose=False)
    assert isinstance(r2, float) and r2 > 0.999
    assert float(model.act_fun[0].mask[0, 0]) == 0.0 and float(model.symbolic_fun[0].mask[0, 0]) == 1.0
    assert model.symbolic_fun[0].funs_name[0][0] == name
    with torch.no_grad():
        assert (model(x) - fun(x)).abs().max() < 1e-3  # now the symbolic branch alone
    a, b, c, d = model.symbolic_fun[0].affine[0, 0].tolist()
    t = torch.linspace(-1, 1, 101, dtype=torch.float64)
    assert (c * SYMBOLIC_LIB[name].fun(a * t + b) + d - fun(t)).abs().max() < 1e-3


def test_fix_symbolic_without_fit_and_random_affine():
    model = pf.KAN([2, 3, 1], grid=3, seed=0, dtype=torch.float64)
    assert model.fix_symbolic(0, 1, 2, "sin", fit_params_bool=False) is None
    assert model.symbolic_fun[0].affine[2, 1].tolist() == [1.0, 0.0, 1.0, 0.0]
    torch.manual_seed(0)
    model.fix_symbolic(0, 0, 2, "cos", fit_params_bool=False, random=True)
    affine = model.symbolic_fun[0].affine[2, 0]
    assert (affine.abs() <= 1).all() and affine.abs().sum() > 0
    x = _inputs(20, 2, seed=3)
    with torch.no_grad():
        spline_only = pf.KAN([2, 3, 1], grid=3, seed=0, dtype=torch.float64)
        spline_only.act_fun[0].mask[1, 2] = 0.0
        spline_only.act_fun[0].mask[0, 2] = 0.0
        hidden = spline_only.act_fun[0](x)
        hidden[:, 2] += torch.sin(x[:, 1]) + affine[2] * torch.cos(affine[0] * x[:, 0] + affine[1]) + affine[3]
        want = spline_only.act_fun[1](hidden)
        assert _max_rel(model(x), want) <= 1e-13


def test_symbolic_branch_runs_only_on_fixed_edges(clean_library, monkeypatch):
    shapes = []

    def probe(x):
        shapes.append(tuple(x.shape))
        return torch.sin(x)

    add_symbolic("probe", probe)
    model = pf.KAN([3, 4, 2], grid=3, seed=0, dtype=torch.float64)
    x = _inputs(7, 3, seed=0)
    calls = []
    original = SymbolicKANLayer.forward
    monkeypatch.setattr(SymbolicKANLayer, "forward",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    model(x)
    assert calls == []  # nothing fixed: the symbolic branch is skipped
    model.fix_symbolic(0, 1, 2, "probe", fit_params_bool=False)
    model(x)
    assert calls == [1] and shapes == [(7, 1)]  # one layer, one edge
    assert model.symbolic_fun[0].n_active == 1 and model.symbolic_fun[1].n_active == 0


def test_suggest_symbolic_ranks_by_r2_and_complexity(capsys):
    model, _ = _edge_model(lambda t: 1.5 * torch.sin(2 * t + 0.5) + 0.3)
    before = model.act_fun[0].mask.clone()
    name, entry, r2, c = model.suggest_symbolic(0, 0, 0, lib=["x", "x^2", "sin", "tanh"], verbose=True)
    assert name == "sin" and entry is SYMBOLIC_LIB["sin"] and r2 > 0.999 and c == 2
    assert "function" in capsys.readouterr().out
    assert torch.equal(model.act_fun[0].mask, before)  # left as it was
    ranking = model.rank_symbolic(0, 0, 0, lib=["x", "x^2", "sin", "tanh"])
    losses = [cand.loss for cand in ranking]
    assert losses == sorted(losses) and ranking[0].name == "sin"
    assert ranking[0].loss == pytest.approx(0.8 * 2 + 0.2 * np.log2(1 + 1e-5 - ranking[0].r2))
    # Only simplicity counts: the lowest complexity wins whatever its fit.
    assert model.suggest_symbolic(0, 0, 0, lib=["sin", "x", "0"], weight_simple=1.0,
                                  verbose=False)[0] == "0"


def test_suggest_symbolic_matches_pykan(multkan, float64_default):
    theirs = multkan([2, 2, 1], grid=5, seed=3, noise_scale=1.0, symbolic_enabled=True)
    ours = pf.KAN.from_pykan(theirs)
    x = _inputs(120, 2, seed=4)
    theirs(x)
    ours(x)
    lib = ["x", "x^2", "sin", "exp", "tanh"]
    for l, i, j in [(0, 0, 1), (0, 1, 0), (1, 1, 0)]:
        got = ours.suggest_symbolic(l, i, j, lib=lib, verbose=False)
        want = theirs.suggest_symbolic(l, i, j, lib=lib, verbose=False)
        assert got[0] == want[0] and got[2] == pytest.approx(float(want[2]), rel=1e-12) and got[3] == want[3]


def test_unfix_symbolic_restores_the_spline():
    model = pf.KAN([2, 3, 1], grid=3, seed=0, dtype=torch.float64)
    x = _inputs(30, 2, seed=1)
    with torch.no_grad():
        want = model(x)
    model.fix_symbolic(0, 1, 2, "sin", verbose=False)
    model.fix_symbolic(1, 0, 0, "x", verbose=False)
    with torch.no_grad():
        assert not torch.equal(model(x), want)
    model.unfix_symbolic(0, 1, 2)
    assert model.symbolic_fun[0].funs_name[2][1] == "0"
    model.unfix_symbolic_all()
    assert all(sym.n_active == 0 for sym in model.symbolic_fun)
    assert all(bool((layer.mask == 1).all()) for layer in model.act_fun)
    with torch.no_grad():
        assert torch.equal(model(x), want)


def test_set_mode_both_branches():
    model = pf.KAN([1, 1], grid=3, seed=0, dtype=torch.float64)
    x = _inputs(10, 1, seed=2)
    with torch.no_grad():
        spline = model(x)
    model.fix_symbolic(0, 0, 0, "sin", fit_params_bool=False)
    model.set_mode(0, 0, 0, "sn", mask_n=0.5)
    with torch.no_grad():
        assert _max_rel(model(x), 0.5 * spline + torch.sin(x)) <= 1e-14
    model.set_mode(0, 0, 0, "off")
    with torch.no_grad():
        assert model(x).abs().max() == 0


def test_auto_symbolic_matches_pykan(multkan, float64_default):
    theirs = multkan([2, 1, 1], grid=5, seed=1, noise_scale=1.0, symbolic_enabled=True)
    with torch.no_grad():
        theirs.act_fun[0].mask[1, 0] = 0.0  # a dead edge: fixed to '0'
    ours = pf.KAN.from_pykan(theirs)
    x = _inputs(100, 2, seed=5)
    theirs(x)
    ours(x)
    theirs.fix_symbolic(1, 0, 0, "tanh", verbose=False, log_history=False)  # already symbolic
    ours.fix_symbolic(1, 0, 0, "tanh", verbose=False)
    lib = ["x", "x^2", "sin", "exp"]
    theirs.auto_symbolic(lib=lib, verbose=0)
    ours.auto_symbolic(lib=lib, verbose=0)
    for l in range(2):
        assert ours.symbolic_fun[l].funs_name == theirs.symbolic_fun[l].funs_name
        assert torch.equal(ours.symbolic_fun[l].mask, theirs.symbolic_fun[l].mask)
        assert torch.equal(ours.act_fun[l].mask, theirs.act_fun[l].mask)
        for j, row in enumerate(ours.symbolic_fun[l].funs_name):
            for i, name in enumerate(row):
                # For 'x' every (a, b) of the grid search fits equally well (c, d absorb
                # them): the argmax is rounding noise, so only the edge function is compared.
                if name not in ("x", "0"):
                    assert _max_rel(ours.symbolic_fun[l].affine[j, i],
                                    theirs.symbolic_fun[l].affine[j, i]) <= 1e-12, (l, i, j)
    xt = _inputs(50, 2, seed=6)
    with torch.no_grad():
        assert _max_rel(ours(xt), theirs(xt)) <= 1e-9


def test_auto_symbolic_r2_threshold_leaves_edges(capsys):
    model, _ = _edge_model(lambda t: torch.sin(3 * t))
    model.auto_symbolic(lib=["x"], r2_threshold=0.99)
    assert model.symbolic_fun[0].n_active == 0 and float(model.act_fun[0].mask[0, 0]) == 1.0
    assert "lower than 0.99" in capsys.readouterr().out


def test_symbolic_bad_input():
    model = pf.KAN([2, 3, 1], grid=3, seed=0)
    with pytest.raises(ValueError, match="fix_symbolic"):
        model.fix_symbolic(0, 0, 0, "sin")  # fitting needs a forward first
    with pytest.raises(ValueError, match="l:"):
        model.fix_symbolic(2, 0, 0, "sin", fit_params_bool=False)
    with pytest.raises(ValueError, match="i:"):
        model.fix_symbolic(0, 2, 0, "sin", fit_params_bool=False)
    with pytest.raises(ValueError, match="j:"):
        model.fix_symbolic(0, 0, 3, "sin", fit_params_bool=False)
    with pytest.raises(ValueError, match="not in the symbolic library"):
        model.fix_symbolic(0, 0, 0, "sinh", fit_params_bool=False)
    with pytest.raises(TypeError, match="fun_name"):
        model.fix_symbolic(0, 0, 0, 3, fit_params_bool=False)
    with pytest.raises(ValueError, match="spline"):
        model.symbolic_formula()
    with pytest.raises(ValueError, match="n_digit"):
        model.symbolic_formula(n_digit=-1)


def test_fix_symbolic_with_a_callable_is_anonymous():
    model = pf.KAN([1, 1], grid=3, seed=0, dtype=torch.float64)
    model.fix_symbolic(0, 0, 0, torch.sinh, fit_params_bool=False)
    assert model.symbolic_fun[0].funs_name[0][0] == "anonymous"
    x = _inputs(10, 1, seed=0)
    with torch.no_grad():
        assert torch.equal(model(x), torch.sinh(x))
        assert torch.equal(model(x, singularity_avoiding=True), torch.sinh(x))


# ---- symbolic_formula --------------------------------------------------------------


def _fixes(l, i, j):
    names = ["sin", "x^2", "exp", "tanh", "x", "cos", "arctan"]
    name = names[(3 * l + 2 * i + j) % len(names)]
    return name, [0.7 + 0.1 * i, 0.2 - 0.1 * j, 1.1 - 0.2 * l, 0.05 * (i + j)]


@pytest.mark.parametrize("width,mult_arity", [
    ([2, 3, 1], 2), ([3, 2, 2], 2), ([2, [1, 1], 1], 2), ([2, [1, 1], 1], 3),
    ([2, [1, 2], 1], [[], [2, 3], []]),
], ids=["2-3-1", "3-2-2", "mult", "mult-arity3", "mult-arities"])
def test_symbolic_formula_equals_the_forward(width, mult_arity):
    model = _fully_symbolic(width, seed=2, fixes=_fixes, mult_arity=mult_arity)
    formulas, variables = model.symbolic_formula()
    assert [str(v) for v in variables] == [f"x_{i + 1}" for i in range(model.width_in[0])]
    assert len(formulas) == model.width_in[-1]
    x = _inputs(64, model.width_in[0], seed=7)
    with torch.no_grad():
        want = model(x)
    for o, formula in enumerate(formulas):
        assert isinstance(formula, sympy.Expr)
        got = torch.from_numpy(_evaluate(formula, variables, x).copy())
        assert _max_rel(got, want[:, o]) <= 1e-12, o
    assert len(model.symbolic_acts) == model.depth + 1
    assert len(model.symbolic_acts_premult[0]) == model.width_out[1]


def test_symbolic_formula_options():
    model = _fully_symbolic([2, 1], seed=0, fixes=lambda l, i, j: ("sin", [1.23456789, 0.0, 1.0, 0.0]))
    a, b = sympy.symbols("a b")
    formulas, variables = model.symbolic_formula(var=[a, b])
    assert variables == [a, b] and formulas[0].free_symbols == {a, b}
    assert model.symbolic_formula(var=["p", "q"])[1] == list(sympy.symbols("p q"))
    rounded = str(model.symbolic_formula(n_digit=2)[0][0])
    assert "1.23" in rounded and "1.2345" not in rounded
    assert "1.23456789" in str(model.symbolic_formula()[0][0])
    simple, default_vars = model.symbolic_formula(simplify=True)
    x = _inputs(10, 2, seed=0)
    assert np.allclose(_evaluate(simple[0], default_vars, x), _evaluate(formulas[0], [a, b], x), rtol=1e-12)
    # normalizer: the formula takes raw inputs, the model normalised ones.
    mean, std = [0.5, -1.0], [2.0, 3.0]
    raw = _inputs(10, 2, seed=1)
    f_norm, v = model.symbolic_formula(normalizer=[mean, std], output_normalizer=[[1.0], [4.0]])
    with torch.no_grad():
        want = model((raw - torch.tensor(mean)) / torch.tensor(std))[:, 0] * 4.0 + 1.0
    assert np.allclose(_evaluate(f_norm[0], v, raw), want.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="var"):
        model.symbolic_formula(var=["p"])
    # The module-level function is the method.
    assert symbolic_formula(model)[0][0] == model.symbolic_formula()[0][0]


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")  # pykan's float(a)
def test_symbolic_formula_matches_pykan(multkan, float64_default):
    theirs = multkan([2, [2, 1], 1], grid=3, seed=4, symbolic_enabled=True, affine_trainable=True)
    with torch.no_grad():
        for name in ("node_bias", "node_scale", "subnode_bias", "subnode_scale"):
            for p in getattr(theirs, name):
                p.add_(0.3)
    for l in range(theirs.depth):
        for i in range(theirs.width_in[l]):
            for j in range(theirs.width_out[l + 1]):
                name, affine = _fixes(l, i, j)
                theirs.fix_symbolic(l, i, j, name, fit_params_bool=False, verbose=False, log_history=False)
                theirs.symbolic_fun[l].affine.data[j, i] = torch.tensor(affine)
    ours = pf.KAN.from_pykan(theirs)
    x = _inputs(40, 2, seed=3)
    with torch.no_grad():
        assert _max_rel(ours(x), theirs(x)) <= 1e-12
    f_theirs, v_theirs = theirs.symbolic_formula()
    f_ours, v_ours = ours.symbolic_formula()
    assert [str(v) for v in v_ours] == [str(v) for v in v_theirs]
    assert np.allclose(_evaluate(f_ours[0], v_ours, x), _evaluate(f_theirs[0], v_theirs, x),
                       rtol=1e-12, atol=0)


# ---- pykan interop, save / load, refine ---------------------------------------------


def test_from_pykan_with_symbolic_edges(multkan, float64_default):
    theirs = multkan([2, 3, 2], grid=4, seed=6, symbolic_enabled=True)
    x = _inputs(150, 2, seed=9, low=-1.5, high=1.5)
    theirs(x)
    theirs.fix_symbolic(0, 0, 1, "sin", verbose=False, log_history=False)  # fitted
    theirs.fix_symbolic(0, 1, 2, "1/x", fit_params_bool=False, verbose=False, log_history=False)
    theirs.symbolic_fun[0].affine.data[2, 1] = torch.tensor([1.3, 0.1, 0.4, -0.2])
    theirs.fix_symbolic(1, 0, 0, "log", fit_params_bool=False, verbose=False, log_history=False)
    theirs.symbolic_fun[1].affine.data[0, 0] = torch.tensor([1.0, 3.0, 0.7, 0.1])  # log(x + 3)
    theirs.fix_symbolic(1, 0, 1, "exp", fit_params_bool=False, verbose=False, log_history=False)
    theirs.set_mode(1, 0, 1, "sn", mask_n=0.5)  # both branches
    ours = pf.KAN.from_pykan(theirs)
    assert ours.symbolic_fun[0].funs_name == theirs.symbolic_fun[0].funs_name
    for l in range(2):
        assert torch.equal(ours.symbolic_fun[l].affine, theirs.symbolic_fun[l].affine)
        assert torch.equal(ours.symbolic_fun[l].mask, theirs.symbolic_fun[l].mask)
        assert ours.symbolic_fun[l].affine.requires_grad
    xt = _inputs(60, 2, seed=10, low=-1.5, high=1.5)
    with torch.no_grad():
        assert _max_rel(ours(xt), theirs(xt)) <= 1e-10
        soft_ours = ours(xt, singularity_avoiding=True, y_th=5.0)
        soft_theirs = theirs(xt, singularity_avoiding=True, y_th=5.0)
        assert _max_rel(soft_ours, soft_theirs) <= 1e-10
    # Same fit on the same activations: pykan's fix_symbolic and ours agree.
    theirs(x)
    ours(x)
    r2_theirs = theirs.fix_symbolic(1, 1, 1, "x^2", verbose=False, log_history=False)
    r2_ours = ours.fix_symbolic(1, 1, 1, "x^2", verbose=False)
    assert r2_ours == pytest.approx(float(r2_theirs), rel=1e-12)
    assert _max_rel(ours.symbolic_fun[1].affine, theirs.symbolic_fun[1].affine) <= 1e-10
    with torch.no_grad():
        assert _max_rel(ours(xt), theirs(xt)) <= 1e-10


def test_from_pykan_with_symbolic_edges_and_multiplication_nodes(multkan, float64_default):
    theirs = multkan([2, [2, 1], 1], grid=4, seed=3, mult_arity=2, symbolic_enabled=True)
    x = _inputs(150, 2, seed=4, low=-1.2, high=1.2)
    theirs(x)
    theirs.fix_symbolic(0, 1, 2, "sin", fit_params_bool=False, verbose=False, log_history=False)
    theirs.symbolic_fun[0].affine.data[2, 1] = torch.tensor([1.5, 0.2, 0.8, -0.1])
    theirs.fix_symbolic(1, 1, 0, "x^2", fit_params_bool=False, verbose=False, log_history=False)
    ours = pf.KAN.from_pykan(theirs)
    assert ours.mult_arity == theirs.mult_arity
    xt = _inputs(60, 2, seed=5, low=-1.2, high=1.2)
    with torch.no_grad():
        assert _max_rel(ours(xt), theirs(xt)) <= 1e-10
    assert [s.funs_name for s in ours.symbolic_fun] == [s.funs_name for s in theirs.symbolic_fun]


def test_from_pykan_keeps_unknown_functions_and_switch(multkan, float64_default):
    theirs = multkan([1, 1], grid=3, seed=0, symbolic_enabled=False)
    theirs.fix_symbolic(0, 0, 0, torch.sinh, fit_params_bool=False, verbose=False, log_history=False)
    ours = pf.KAN.from_pykan(theirs)
    assert ours.symbolic_enabled is False and ours.symbolic_fun[0].funs_name[0][0] == "anonymous"
    x = _inputs(20, 1, seed=0)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))  # the symbolic branch switched off in both
        ours.symbolic_enabled = theirs.symbolic_enabled = True
        assert _max_rel(ours(x), theirs(x)) <= 1e-14


def test_save_load_keeps_symbolic_edges(tmp_path):
    model = pf.KAN([2, 3, 1], grid=4, seed=1, dtype=torch.float64)
    x = _inputs(80, 2, seed=2)
    model(x)
    model.fix_symbolic(0, 0, 1, "sin", verbose=False)
    model.fix_symbolic(1, 2, 0, "gaussian", fit_params_bool=False)
    path = tmp_path / "sym.pt"
    model.save(path)
    loaded = pf.KAN.load(path)
    model.symbolic_enabled = False
    model.save(tmp_path / "off.pt")
    assert pf.KAN.load(tmp_path / "off.pt").symbolic_enabled is False
    assert pf.KAN([1, 1], symbolic_enabled=False).symbolic_enabled is False
    model.symbolic_enabled = True
    assert [s.funs_name for s in loaded.symbolic_fun] == [s.funs_name for s in model.symbolic_fun]
    for (n1, p1), (n2, p2) in zip(loaded.named_parameters(), model.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2) and p1.requires_grad == p2.requires_grad, n1
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_save_load_user_functions_by_name(tmp_path, clean_library):
    add_symbolic("sin3", lambda t: torch.sin(3 * t), c=2)
    model = pf.KAN([1, 1], grid=3, seed=0, dtype=torch.float64)
    model.fix_symbolic(0, 0, 0, "sin3", fit_params_bool=False)
    path = tmp_path / "user.pt"
    model.save(path)
    del SYMBOLIC_LIB["sin3"]
    with pytest.raises(ValueError, match=r"'sin3'.*add_symbolic"):
        pf.KAN.load(path)
    add_symbolic("sin3", lambda t: torch.sin(3 * t), c=2)
    x = _inputs(10, 1, seed=0)
    with torch.no_grad():
        assert torch.equal(pf.KAN.load(path)(x), model(x))
    model.fix_symbolic(0, 0, 0, torch.sinh, fit_params_bool=False)
    with pytest.raises(ValueError, match="anonymous"):
        model.save(tmp_path / "anon.pt")


def test_load_version_1_files_without_symbolic_branch(tmp_path):
    model = pf.KAN([2, 2, 1], grid=3, seed=0, dtype=torch.float64)
    path = tmp_path / "v1.pt"
    model.save(path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["version"] = 1
    del ckpt["symbolic"]
    ckpt["state_dict"] = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("symbolic_fun")}
    torch.save(ckpt, path)
    loaded = pf.KAN.load(path)
    x = _inputs(10, 2, seed=0)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert all(s.n_active == 0 for s in loaded.symbolic_fun)


def test_refine_keeps_the_symbolic_branch():
    model = pf.KAN([2, 3, 1], grid=4, seed=2, dtype=torch.float64)
    x = _inputs(200, 2, seed=3)
    model(x)
    model.fix_symbolic(0, 1, 0, "sin", verbose=False)
    model.fix_symbolic(1, 2, 0, "x^2", verbose=False)
    with torch.no_grad():
        before = model(x)
    fine = model.refine(8)
    assert [s.funs_name for s in fine.symbolic_fun] == [s.funs_name for s in model.symbolic_fun]
    for a, b in zip(fine.symbolic_fun, model.symbolic_fun):
        assert torch.equal(a.affine, b.affine) and torch.equal(a.mask, b.mask)
        assert a.affine.data_ptr() != b.affine.data_ptr()  # copies: the models train apart
    with torch.no_grad():
        assert _max_rel(fine(x), before) <= 1e-8


def test_get_subset():
    layer = SymbolicKANLayer(3, 4, dtype=torch.float64)
    layer.fix_symbolic(2, 1, "sin")
    layer.fix_symbolic(0, 3, "exp", random=True)
    layer.set_mask(2, 1, 1.0)
    layer.set_mask(0, 3, 1.0)
    sub = layer.get_subset([0, 2], [1, 3])
    assert sub.in_dim == 2 and sub.out_dim == 2
    assert sub.funs_name == [["0", "sin"], ["exp", "0"]]
    assert torch.equal(sub.affine, layer.affine[[1, 3]][:, [0, 2]])
    assert torch.equal(sub.mask, layer.mask[[1, 3]][:, [0, 2]])
    x = _inputs(9, 3, seed=0)
    with torch.no_grad():
        assert torch.equal(sub(x[:, [0, 2]]), layer(x)[:, [1, 3]])


def test_layer_mask_edits_are_seen_by_the_cache():
    layer = SymbolicKANLayer(2, 2, dtype=torch.float64)
    layer.fix_symbolic(0, 0, "sin")
    x = _inputs(5, 2, seed=0)
    assert layer.n_active == 0
    with torch.no_grad():
        layer.mask[0, 0] = 1.0  # in place: the version counter moves
    assert layer.n_active == 1
    with torch.no_grad():
        assert torch.equal(layer(x)[:, 0], torch.sin(x[:, 0]))
    layer.mask.data[1, 1] = 1.0  # invisible to the cache until refresh()
    layer.refresh()
    assert layer.n_active == 2


# ---- the recovery of exp(sin(pi x) + y^2) -------------------------------------------


def test_recovers_exp_sin_pi_x_plus_y_squared():
    """pykan's hello-world: a [2, 1, 1] KAN, grid extension, auto_symbolic over
    x, x^2, exp, sin, then training the symbolic affines; the formula is the truth."""
    def f(x):
        return torch.exp(torch.sin(math.pi * x[:, [0]]) + x[:, [1]] ** 2)

    dataset = pf.create_dataset(f, n_var=2, train_num=1000, test_num=200, dtype=torch.float64)
    model = pf.KAN([2, 1, 1], grid=5, k=3, seed=1, noise_scale=0.0, dtype=torch.float64)
    model.fit(dataset, steps=20, progress=False)
    model = model.refine(10)
    model.fit(dataset, steps=20, progress=False)
    model(dataset["train_input"][:300])  # auto_symbolic fits on the last forward's inputs
    model.auto_symbolic(lib=["x", "x^2", "exp", "sin"], verbose=0)
    assert [s.funs_name for s in model.symbolic_fun] == [[["sin", "x^2"]], [["exp"]]]
    model.fit(dataset, steps=10, update_grid=False, progress=False)
    formulas, (x1, x2) = model.symbolic_formula()
    truth = sympy.exp(sympy.sin(sympy.pi * x1) + x2 ** 2)
    x = _inputs(2000, 2, seed=42)
    got = _evaluate(formulas[0], [x1, x2], x)
    want = _evaluate(truth, [x1, x2], x)
    assert np.max(np.abs(got - want)) < 1e-3
    assert "exp" in str(formulas[0]) and "sin" in str(formulas[0])


@pytest.mark.slow
def test_demo_symbolic_part_prunes_recovers_and_plots(tmp_path, capsys):
    """The end of ``python -m pykan_fast demo``: [2, 5, 1] trained sparse, pruned
    to [2, 1, 1], auto_symbolic, the formula printed, the network plot written."""
    import types

    from pykan_fast.experiments import cli

    pytest.importorskip("matplotlib")
    cli._symbolic_part(types.SimpleNamespace(quick=True, no_progress=True, out=str(tmp_path)))
    out = capsys.readouterr().out
    assert "width after pruning: [[2, 0], [1, 0], [1, 0]]" in out
    assert "recovered formula: f(x_1, x_2) = exp(x_2**2 + sin(3.1416*x_1))" in out
    error = float(out.split("on the test inputs: ")[1].split()[0])
    assert error < 1e-3
    assert (tmp_path / "kan_symbolic.png").stat().st_size > 1000
