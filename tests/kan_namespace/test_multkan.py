"""pykan_fast.kan.MultKAN: pykan's constructor, fit, prune, refine and symbolic
pipeline, against pykan 0.2.8 (float64, equal to rounding) and on its own."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import pykan_fast
from pykan_fast.kan import KAN, MultKAN, create_dataset
from pykan_fast.kan.checkpoint import to_pykan_state


def _dataset(n=60, dtype=torch.float64):
    def f(x):
        return torch.exp(torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2)
    return create_dataset(f, n_var=2, train_num=n, test_num=n, dtype=dtype)


def _same_state(mine, theirs, rtol=1e-10):
    ours = to_pykan_state(mine)
    other = theirs.state_dict()
    assert list(ours) == list(other)
    for name, value in other.items():
        # check_dtype off: pykan's prune_edge casts masks to float32
        torch.testing.assert_close(ours[name], value, rtol=rtol, atol=rtol, msg=name, check_dtype=False)


def test_alias_subclass_and_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert KAN is MultKAN and issubclass(MultKAN, pykan_fast.KAN)
    model = KAN(width=[2, 5, 1], grid=3, k=3, seed=1, device="cpu")
    assert model.save_act and not model.auto_save and model.device == "cpu"
    assert (model.state_id, model.round, model.ckpt_path) == (0, 0, "./model")
    assert model.n_sum == [5] and model.n_mult == [0]
    assert list(tmp_path.iterdir()) == []  # auto_save off: no ./model


def test_sparse_init_mask_and_scale():
    model = MultKAN(width=[4, 3, 2], seed=0, sparse_init=True)
    dense = MultKAN(width=[4, 3, 2], seed=0)
    for sparse, full in zip(model.act_fun, dense.act_fun):
        assert 0 < int(sparse.mask.sum()) < sparse.mask.numel()
        assert torch.equal(sparse.scale_sp, full.scale_sp * sparse.mask)
        assert torch.equal(sparse.coef, full.coef)  # same draws


def test_fit_returns_pykans_types_and_saves_figures(tmp_path):
    pytest.importorskip("matplotlib")
    model = MultKAN(width=[2, 2, 1], grid=3, seed=0, dtype=torch.float64)
    results = model.fit(_dataset(30), steps=2, save_fig=True, img_folder=str(tmp_path / "video"),
                        beta=5, in_vars=["a", "b"], out_vars=["y"], progress=False)
    assert set(results) == {"train_loss", "test_loss", "reg"}
    assert all(isinstance(v, np.ndarray) and v.shape == () for v in results["train_loss"])
    # as pykan, whose plot(folder=img_folder) also writes the per-edge images there
    edges = [f"sp_{l}_{i}_{j}.png" for l, (n, m) in enumerate([(2, 2), (2, 1)])
             for i in range(n) for j in range(m)]
    assert sorted(p.name for p in (tmp_path / "video").iterdir()) == sorted(["0.jpg", "1.jpg"] + edges)


def test_fit_without_save_act_ignores_lamb(capsys):
    model = MultKAN(width=[2, 2, 1], grid=3, seed=0).speed()
    results = model.fit(_dataset(30, torch.float32), steps=1, lamb=0.1, progress=False)
    assert "setting lamb=0." in capsys.readouterr().out
    assert float(results["reg"][0]) == 0.0


def test_edits_return_multkans():
    model = MultKAN(width=[2, 3, 1], grid=3, seed=0)
    model.fit(_dataset(30, torch.float32), steps=1, progress=False)
    for new in (model.refine(5), model.prune(), model.prune_node(), model.prune_input(active_inputs=[1])):
        assert type(new) is MultKAN and new.save_act and not new.auto_save


@pytest.mark.pykan
def test_construction_matches_pykan(multkan, float64_default):
    for kwargs in ({}, {"sparse_init": True}, {"mult_arity": 3, "noise_scale": 0.5}):
        width = [3, [2, 2], 2]
        mine = MultKAN(width=width, grid=4, k=2, seed=3, **kwargs)
        theirs = multkan(width, grid=4, k=2, seed=3, symbolic_enabled=True, **kwargs)
        _same_state(mine, theirs, rtol=1e-10)
        x = torch.rand(20, 3) * 2 - 1
        torch.testing.assert_close(mine(x), theirs(x), rtol=1e-12, atol=1e-12)


@pytest.mark.pykan
@pytest.mark.slow
def test_fit_prune_match_pykan(multkan, float64_default):
    """The first tutorial's pipeline: fit with the regulariser, then prune."""
    os.makedirs("model", exist_ok=True)  # pykan's prune writes its history there
    dataset = _dataset()
    mine = MultKAN(width=[2, 3, 1], grid=3, k=3, seed=1)
    theirs = multkan([2, 3, 1], grid=3, k=3, seed=1, symbolic_enabled=True)
    ours = mine.fit(dataset, steps=3, lamb=0.01, progress=False)
    other = theirs.fit(dataset, steps=3, lamb=0.01)
    np.testing.assert_allclose(np.array(ours["train_loss"]), np.array(other["train_loss"]), rtol=1e-8)
    np.testing.assert_allclose(np.array(ours["reg"]), np.array(other["reg"]), rtol=1e-8)
    mine, theirs = mine.prune(edge_th=0.05), theirs.prune(edge_th=0.05)
    assert mine.width == theirs.width
    _same_state(mine, theirs, rtol=1e-8)


def test_plot_names_the_inputs_prune_input_kept(tmp_path):
    """in_vars for every original input: after prune_input the diagram labels the kept
    inputs with their own names (pykan takes the first names, and needs no error)."""
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    model = MultKAN(width=[3, 2, 1], grid=3, seed=0, dtype=torch.float64)
    x = torch.rand(50, 3, dtype=torch.float64) * 2 - 1
    model(x)
    pruned = model.prune_input(active_inputs=[0, 2])
    pruned(x)
    fig = pruned.plot(folder=None, in_vars=["a", "b", "c"])
    texts = {t.get_text() for t in fig.findobj(matplotlib.text.Text)}
    assert {"a", "c"} <= texts and "b" not in texts
    with pytest.raises(ValueError, match="in_vars"):
        pruned.plot(folder=None, in_vars=["a"])



def test_fit_carries_on_through_nonfinite_losses_with_one_warning():
    """pykan's fit runs on when the loss goes NaN (Example_9 shows it): here such steps
    are skipped (the native on_nonfinite="skip"), the model stays finite, one warning."""
    model = MultKAN(width=[2, 1, 1], grid=3, seed=0)
    dataset = create_dataset(lambda x: x[:, [0]] ** 2, n_var=2, train_num=40, test_num=20)
    for l, i, name in ((0, 0, "x"), (0, 1, "x"), (1, 0, "sqrt")):  # sqrt of x0 + x1 < 0
        model.fix_symbolic(l, i, 0, name, fit_params_bool=False, verbose=False)
    with pytest.warns(RuntimeWarning, match=r"fit: 5 of 5 steps skipped") as caught:
        results = model.fit(dataset, opt="Adam", steps=5, lr=1e-3, update_grid=False)
    assert sum("skipped" in str(w.message) for w in caught) == 1
    assert len(results["train_loss"]) == 5 and np.isnan(results["train_loss"][0])
    assert all(torch.isfinite(p).all() for p in model.parameters())
    with pytest.raises(pykantrain_error()):
        model.fit(dataset, opt="Adam", steps=1, lr=1e-3, update_grid=False, on_nonfinite="raise")


def pykantrain_error():
    from pykan_fast.train import NonFiniteError

    return NonFiniteError


@pytest.mark.pykan
def test_symbolic_formula_of_a_partly_symbolic_model_matches_pykan(multkan, float64_default):
    """Example_6 asks for the formula with only layer 0 fixed: pykan counts the spline
    edges as 0 (silently); the namespace does the same with one warning, the native KAN
    raises."""
    sympy = pytest.importorskip("sympy")
    mine = MultKAN(width=[2, 2, 1], grid=5, k=3, seed=1)
    theirs = multkan([2, 2, 1], grid=5, k=3, seed=1, symbolic_enabled=True)
    x = torch.rand(30, 2) * 2 - 1
    mine(x)
    theirs(x)
    for i in range(2):
        for j in range(2):
            mine.fix_symbolic(0, i, j, "x", verbose=False)
            theirs.fix_symbolic(0, i, j, "x", verbose=False, log_history=False)
    with pytest.warns(UserWarning, match=r"2 edge\(s\).*\(1, 0, 0\), \(1, 1, 0\)"):
        ours = mine.symbolic_formula()[0][0]
    want = theirs.symbolic_formula()[0][0]
    x1, x2 = sympy.symbols("x_1 x_2")
    for p in [(0.3, -0.7), (-0.9, 0.1), (0.5, 0.5)]:
        got_v = float(ours.subs({x1: p[0], x2: p[1]}))
        want_v = float(want.subs({x1: p[0], x2: p[1]}))
        assert got_v == pytest.approx(want_v, rel=1e-10, abs=1e-12)
    with pytest.raises(ValueError, match="still use their spline"):
        pykan_fast.KAN.symbolic_formula(mine)
