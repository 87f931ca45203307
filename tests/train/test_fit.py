"""Training: the regulariser against
pykan's ``MultKAN.reg``, ``fit`` against ``MultKAN.fit`` (Adam and L-BFGS, float64), the
L-BFGS port against pykan's, and a short grid-extension run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pykan_fast as pf
import pykan_fast.train.fit as fit_module
from pykan_fast.experiments.grid_extension import GridRow, grid_extension, plot_grid_extension, target_function
from pykan_fast.train.fit import regularization
from pykan_fast.train.lbfgs import LBFGS

from support import inputs as _inputs, max_rel as _max_rel


@pytest.fixture(autouse=True)
def _one_thread(restore_threads):
    """These batches are small: on a shared 2-core machine two OpenMP threads per kernel
    call were measured up to 100x slower (20 ms vs 0.12 ms a call; the grid-extension
    test took 47 s instead of 7 s). The kernels' threading is tested elsewhere."""
    torch.set_num_threads(1)


def _dataset(n_train=200, n_test=100, seed=0):
    return pf.create_dataset(target_function, n_var=2, train_num=n_train, test_num=n_test,
                             seed=seed, dtype=torch.float64)


# ---- regulariser -------------------------------------------------------------------


@pytest.mark.parametrize("reg_metric", ["edge_forward_spline_n", "edge_forward_spline_u", "edge_forward_sum"])
def test_regularization_matches_multkan_reg(multkan, float64_default, reg_metric):
    theirs = multkan([3, 4, 2], grid=5, k=3, seed=1, noise_scale=1.0)
    ours = pf.KAN.from_pykan(theirs)
    with torch.no_grad():
        ours.act_fun[0].mask[0, 1] = theirs.act_fun[0].mask[0, 1] = 0.0
    x = _inputs(80, 3, seed=7, low=-1.3, high=1.3)
    lambs = dict(lamb_l1=0.7, lamb_entropy=1.9, lamb_coef=0.3, lamb_coefdiff=0.2)
    theirs.get_act(x)
    want = theirs.reg(reg_metric, **lambs)
    got = ours.reg(reg_metric, x=x, **lambs)
    assert abs(got.item() - want.item()) <= 1e-12 * abs(want.item())
    # (edge_forward_sum is detached in pykan: only the coef terms have gradients.)
    names = ("coef", "scale_base", "scale_sp")
    want_grads = torch.autograd.grad(want, [getattr(l, n) for l in theirs.act_fun for n in names],
                                     allow_unused=True)
    got_grads = torch.autograd.grad(got, [getattr(l, n) for l in ours.act_fun for n in names],
                                    allow_unused=True)
    for a, b in zip(got_grads, want_grads):
        assert (a is None) == (b is None)
        if b is not None:
            assert _max_rel(a, b) <= 1e-10


def test_regularization_errors():
    model = pf.KAN([2, 2, 1])
    x = torch.rand(10, 2)
    with pytest.raises(ValueError, match="reg_metric"):
        model.reg("edge_sideways", x=x)
    with pytest.raises(ValueError, match="reg_metric"):
        regularization(model, [x, x], "edge_l2")


# ---- L-BFGS ------------------------------------------------------------------------


def _lbfgs_run(cls, scale, steps=6, **kwargs):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(120, 20, generator=g, dtype=torch.float64)
    b = torch.randn(120, generator=g, dtype=torch.float64)
    w = torch.zeros(20, dtype=torch.float64, requires_grad=True)
    v = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = cls([w, v], lr=1, history_size=10, line_search_fn="strong_wolfe", tolerance_grad=1e-32,
              tolerance_change=1e-32, **kwargs)

    def closure():
        opt.zero_grad()
        r = a @ w + torch.tanh(v).sum() * a[:, 0] ** 2 - b
        loss = scale * ((r ** 2).mean() + 1e-3 * (w ** 4).sum())
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
    return torch.cat([w.detach(), v.detach()])


@pytest.mark.parametrize("scale", [1.0, 1e-9], ids=["loss", "tiny-loss"])
def test_lbfgs_equals_pykans(scale):
    kan_lbfgs = pytest.importorskip("kan.LBFGS", reason="pykan is needed")
    want = _lbfgs_run(kan_lbfgs.LBFGS, scale, tolerance_ys=1e-32)
    got = _lbfgs_run(LBFGS, scale, tolerance_ys=1e-32)
    assert torch.equal(got, want)


def test_lbfgs_tolerance_ys_is_why_torchs_is_not_used():
    """torch.optim.LBFGS drops curvature pairs with y.s <= 1e-10: on a tiny loss it takes
    other steps than pykan's optimizer (which keeps them down to tolerance_ys)."""
    ours = _lbfgs_run(LBFGS, 1e-9, tolerance_ys=1e-32)
    torchs = _lbfgs_run(torch.optim.LBFGS, 1e-9)
    assert not torch.allclose(ours, torchs, rtol=1e-6, atol=0)
    assert torch.allclose(_lbfgs_run(LBFGS, 1.0, tolerance_ys=1e-10),
                          _lbfgs_run(torch.optim.LBFGS, 1.0), rtol=1e-9, atol=1e-12)


# ---- fit ---------------------------------------------------------------------------


def _layer_params(model):
    return torch.cat([getattr(layer, name).detach().flatten() for layer in model.act_fun
                      for name in ("grid", "coef", "scale_base", "scale_sp")])


@pytest.mark.parametrize("opt,steps,lamb,batch,rtol", [
    ("Adam", 8, 0.0, -1, 1e-10),
    ("Adam", 8, 0.01, 64, 1e-10),
    ("LBFGS", 2, 0.0, -1, 1e-7),
    ("LBFGS", 2, 0.01, -1, 1e-7),
], ids=["adam", "adam-reg-batch", "lbfgs", "lbfgs-reg"])
def test_fit_matches_multkan_fit(multkan, float64_default, opt, steps, lamb, batch, rtol):
    """Same batches (numpy's global generator), grid updates and steps as pykan. L-BFGS
    line searches amplify rounding differences step by step (1e-13 after one step, 1e-6
    after five measured), hence two steps and a looser bound."""
    dataset = _dataset()
    kwargs = dict(opt=opt, steps=steps, lamb=lamb, batch=batch, lr=0.02 if opt == "Adam" else 1.0,
                  grid_update_num=3, stop_grid_update_step=6, lamb_coef=0.1 if lamb else 0.0)
    theirs = multkan([2, 3, 1], grid=4, k=3, seed=2)
    ours = pf.KAN([2, 3, 1], grid=4, k=3, seed=2)
    np.random.seed(11)
    hist_theirs = theirs.fit(dataset, **kwargs)
    np.random.seed(11)
    hist_ours = ours.fit(dataset, progress=False, **kwargs)
    assert _max_rel(_layer_params(ours), _layer_params(theirs)) <= rtol
    for key in ("train_loss", "test_loss"):
        want = np.array(hist_theirs[key], dtype=float)
        assert np.allclose(hist_ours[key], want, rtol=rtol * 10, atol=0), key
    if lamb > 0:
        assert np.allclose(hist_ours["reg"], np.array(hist_theirs["reg"], dtype=float), rtol=rtol * 10)
    assert torch.equal(ours.cache_data, theirs.cache_data)  # the last test batch, as pykan


def test_fit_history_metrics_and_quiet(capsys):
    dataset = _dataset(n_train=64, n_test=32)
    model = pf.KAN([2, 3, 1], grid=3, seed=0, dtype=torch.float64)
    calls = []

    def n_calls():
        calls.append(1)
        return float(len(calls))

    hist = model.fit(dataset, opt="Adam", steps=5, lr=0.01, metrics=[n_calls], progress=False,
                     display_metrics=["n_calls"])
    assert set(hist) == {"train_loss", "test_loss", "reg", "n_calls"}
    assert all(len(v) == 5 for v in hist.values())
    assert all(isinstance(v, float) for v in hist["train_loss"])
    assert hist["n_calls"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert hist["reg"] == [0.0] * 5
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_fit_progress_bar_shows_losses(capsys):
    pytest.importorskip("tqdm")
    model = pf.KAN([2, 2, 1], grid=3, seed=0, dtype=torch.float64)
    model.fit(_dataset(n_train=32, n_test=16), opt="Adam", steps=2, lr=0.01)
    assert "train_loss" in capsys.readouterr().err


def test_fit_without_lamb_never_builds_the_regulariser(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("edge_std ran with lamb=0")

    monkeypatch.setattr(fit_module, "edge_std", boom)
    model = pf.KAN([2, 3, 1], grid=3, seed=0, dtype=torch.float64)
    model.fit(_dataset(n_train=64, n_test=32), opt="LBFGS", steps=1, progress=False)
    with pytest.raises(AssertionError, match="lamb=0"):
        model.fit(_dataset(n_train=64, n_test=32), opt="Adam", steps=1, lamb=0.1, progress=False)


@pytest.mark.parametrize("opt", ["LBFGS", "Adam"])
def test_fit_reduces_loss(opt):
    dataset = _dataset(n_train=150, n_test=50)
    model = pf.KAN([2, 3, 1], grid=5, seed=1, dtype=torch.float64)
    hist = model.fit(dataset, opt=opt, steps=10 if opt == "LBFGS" else 60,
                     lr=1.0 if opt == "LBFGS" else 0.05, progress=False)
    assert hist["train_loss"][-1] < 0.2 * hist["train_loss"][0]
    assert hist["test_loss"][-1] < 0.3 * hist["test_loss"][0]


def test_fit_cpu_and_torch_backends_agree():
    dataset = _dataset(n_train=100, n_test=40)
    results = []
    for backend in ("cpu", "torch"):
        model = pf.KAN([2, 3, 1], grid=4, seed=3, dtype=torch.float64, backend=backend)
        np.random.seed(0)
        model.fit(dataset, opt="Adam", steps=6, lr=0.02, lamb=0.01, progress=False,
                  grid_update_num=2, stop_grid_update_step=4)
        results.append(_layer_params(model))
    assert _max_rel(results[0], results[1]) <= 1e-10


def test_fit_bad_arguments():
    model = pf.KAN([2, 2, 1])
    dataset = pf.create_dataset(target_function, train_num=10, test_num=5)
    with pytest.raises(ValueError, match="opt"):
        model.fit(dataset, opt="SGD", progress=False)
    with pytest.raises(ValueError, match="test_label"):
        model.fit({k: v for k, v in dataset.items() if k != "test_label"}, progress=False)
    with pytest.raises(ValueError, match="reg_metric"):
        model.fit(dataset, lamb=0.1, reg_metric="edge_l2", progress=False)
    with pytest.raises(ValueError, match="steps"):
        model.fit(dataset, steps=-1, progress=False)


# ---- grid extension ----------------------------------------------------------------


def test_grid_extension_short_run_lowers_test_rmse(tmp_path):
    # 1000 samples as the paper (with 400, G=20 nears the interpolation threshold: the
    # test RMSE rose to 6e-2 while the train RMSE fell to 7e-4). Measured ratio: 37x.
    rows = grid_extension(grids=(3, 5, 10, 20), steps=15, progress=False)
    assert [r.grid for r in rows] == [3, 5, 10, 20]
    assert all(isinstance(r, GridRow) and r.seconds > 0 for r in rows)
    assert rows[-1].test_rmse * 10 <= rows[0].test_rmse, rows
    assert rows[-1].train_rmse < rows[0].train_rmse
    pytest.importorskip("matplotlib")
    path = tmp_path / "rmse.png"
    plot_grid_extension(rows, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_loss_is_pykans_mean_squared_error_exactly():
    """fit's default loss (aten's mse_loss, one autograd node) gives pykan's
    ``torch.mean((pred - label) ** 2)`` and its gradient bit for bit."""
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float64, torch.float32):
        for n in (1, 7, 1000, 4097):
            pred = torch.randn(n, 3, generator=g, dtype=dtype, requires_grad=True)
            label = torch.randn(n, 3, generator=g, dtype=dtype)
            ours = torch.nn.functional.mse_loss(pred, label)
            theirs = torch.mean((pred - label) ** 2)
            assert torch.equal(ours, theirs)
            assert torch.equal(torch.autograd.grad(ours, pred)[0], torch.autograd.grad(theirs, pred)[0])


def test_demo_reports_the_lowest_test_rmse_and_overfitting(monkeypatch, tmp_path, capsys):
    """The demo's summary names the grid of the lowest test RMSE and, when larger grids
    overfit (the full demo's G=200 interpolates its 1000 samples), says so."""
    import types

    from pykan_fast.experiments import cli
    from pykan_fast.experiments import grid_extension as experiments

    rows = [GridRow(3, 1e-3, 1.2e-3, 1.0), GridRow(50, 5e-6, 4e-5, 1.0),
            GridRow(200, 7e-9, 2.5e-2, 1.0)]
    monkeypatch.setattr(experiments, "grid_extension", lambda **kwargs: rows)
    monkeypatch.setattr(experiments, "plot_grid_extension", lambda rows, path: None)
    monkeypatch.setattr(cli, "_speed_against_reference", lambda *args: None)
    monkeypatch.setattr(cli, "_symbolic_part", lambda args: None)
    cli.demo(types.SimpleNamespace(quick=True, no_progress=True, out=str(tmp_path)))
    out = capsys.readouterr().out
    assert "lowest test RMSE 4.00e-05 at G=50, 30x below G=3" in out
    assert "past G=50 the train RMSE keeps falling and the test RMSE rises" in out
    rows.pop()
    cli.demo(types.SimpleNamespace(quick=True, no_progress=True, out=str(tmp_path)))
    assert "past G=" not in capsys.readouterr().out
