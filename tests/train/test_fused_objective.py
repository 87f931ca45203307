"""``fit``'s L-BFGS objective without autograd (``nn.stack.LossEvaluator``): the same bits
as the autograd closure (loss, gradients, every iterate, the model's recorded state),
and the models it leaves to the closure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pykan_fast as pf
import pykan_fast.train.fit as fit_module
from pykan_fast.experiments.grid_extension import target_function
from pykan_fast.nn.stack import LossEvaluator


@pytest.fixture(autouse=True)
def _one_thread(restore_threads):
    torch.set_num_threads(1)  # small batches (see tests/train/test_fit.py)


def _dataset(dtype, n_train=160, n_test=80):
    return pf.create_dataset(target_function, n_var=2, train_num=n_train, test_num=n_test,
                             seed=0, dtype=dtype)


def _model(dtype, change=None):
    model = pf.KAN([2, 4, 1], grid=4, k=3, seed=3, dtype=dtype)
    if change == "mask":
        with torch.no_grad():
            model.act_fun[0].mask[1, 2] = 0.0  # a pruned edge: the mask's products stay
    elif change == "affine":
        model = pf.KAN([2, 4, 1], grid=4, k=3, seed=3, dtype=dtype, affine_trainable=True)
        with torch.no_grad():
            model.node_scale[0].mul_(1.3)
            model.subnode_bias[1].add_(0.2)
    elif change == "input_id":
        model = pf.KAN([1, 4, 1], grid=4, k=3, seed=3, dtype=dtype)
        model.input_id = torch.tensor([1])
    elif change == "frozen_scale_sp":
        model = pf.KAN([2, 4, 1], grid=4, k=3, seed=3, dtype=dtype, sp_trainable=False)
    return model


def _state(model):
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def _fit(model, dataset, fused, monkeypatch, **kwargs):
    monkeypatch.setattr(fit_module, "_FUSED_OBJECTIVE", fused)
    np.random.seed(5)
    return model.fit(dataset, opt="LBFGS", progress=False, **kwargs)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("change", [None, "mask", "affine", "input_id", "frozen_scale_sp"])
def test_fit_with_the_fused_objective_equals_the_autograd_closure(monkeypatch, dtype, change):
    dataset = _dataset(dtype)
    kwargs = dict(steps=4, grid_update_num=2, stop_grid_update_step=4, batch=100)
    results = []
    for fused in (False, True):
        model = _model(dtype, change)
        history = _fit(model, dataset, fused, monkeypatch, **kwargs)
        results.append((model, history))
    (slow, slow_history), (fast, fast_history) = results
    assert fast_history == slow_history
    for name, want in _state(slow).items():
        assert torch.equal(_state(fast)[name], want), name
    assert torch.equal(fast.cache_data, slow.cache_data)
    for a, b in zip(fast.acts, slow.acts):
        assert torch.equal(a, b)


def test_evaluator_equals_autograd_and_records_the_model_state():
    dtype = torch.float64
    model = _model(dtype, "affine")
    data = _dataset(dtype)
    x, y = data["train_input"], data["train_label"]
    params = [p for p in model.parameters() if p.requires_grad]
    evaluate = LossEvaluator.build(model, x, y, params)
    assert evaluate is not None
    loss, flat = evaluate()
    evaluate.finish()
    fast_grads = [p.grad.clone() for p in params]
    fast_cache = [layer.cache_data for layer in model.act_fun]
    for p in params:
        p.grad = None
    want = torch.nn.functional.mse_loss(model(x), y)
    want.backward()
    assert torch.equal(loss, want.detach())
    assert torch.equal(flat, torch.cat([p.grad.reshape(-1) for p in params]))
    for got, p in zip(fast_grads, params):
        assert torch.equal(got, p.grad)
        assert got.is_contiguous()
    for got, layer in zip(fast_cache, model.act_fun):
        assert torch.equal(got, layer.cache_data)


@pytest.mark.parametrize("case", ["mult", "symbolic", "labels", "foreign_param"])
def test_evaluator_leaves_other_cases_to_the_closure(case):
    dtype = torch.float64
    data = _dataset(dtype)
    x, y = data["train_input"], data["train_label"]
    model = _model(dtype)
    extra = []
    if case == "mult":
        model = pf.KAN([2, [2, 1], 1], grid=4, k=3, seed=3, dtype=dtype)
    elif case == "symbolic":
        model.fix_symbolic(0, 0, 0, "x", verbose=False, fit_params_bool=False)
    elif case == "labels":
        y = y[:, 0]  # broadcasting shapes: mse_loss's own rules, left to autograd
    else:
        extra = [torch.zeros(3, dtype=dtype, requires_grad=True)]
    params = [p for p in model.parameters() if p.requires_grad] + extra
    assert LossEvaluator.build(model, x, y, params) is None


def test_fit_with_regulariser_or_custom_loss_takes_the_closure(monkeypatch):
    calls = []
    real = LossEvaluator.build

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_module.LossEvaluator, "build", spy)
    dataset = _dataset(torch.float64)
    model = _model(torch.float64)
    model.fit(dataset, opt="LBFGS", steps=1, lamb=0.01, progress=False)
    model.fit(dataset, opt="LBFGS", steps=1, progress=False,
              loss_fn=lambda a, b: torch.mean((a - b) ** 2))
    assert calls == []
    model.fit(dataset, opt="LBFGS", steps=1, progress=False)
    assert calls == [1]


def test_lbfgs_flat_closure_takes_the_closures_iterates():
    """``LBFGS.step(closure, flat_closure=...)``: the same iterates from a gradient handed
    over flat as from ``p.grad`` gathered after ``closure``."""
    from pykan_fast.train.lbfgs import LBFGS

    g = torch.Generator().manual_seed(0)
    a = torch.randn(120, 20, generator=g, dtype=torch.float64)
    b = torch.randn(120, generator=g, dtype=torch.float64)

    def run(flat: bool):
        w = torch.zeros(20, dtype=torch.float64, requires_grad=True)
        v = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        opt = LBFGS([w, v], lr=1, history_size=10, line_search_fn="strong_wolfe",
                    tolerance_grad=1e-32, tolerance_change=1e-32, tolerance_ys=1e-32)

        def closure():
            opt.zero_grad()
            r = a @ w + torch.tanh(v).sum() * a[:, 0] ** 2 - b
            loss = (r ** 2).mean() + 1e-3 * (w ** 4).sum()
            loss.backward()
            return loss

        def flat_closure():
            with torch.enable_grad():
                loss = closure()
            return loss.detach(), torch.cat([w.grad.reshape(-1), v.grad.reshape(-1)])

        losses = [opt.step(closure, flat_closure=flat_closure if flat else None)
                  for _ in range(6)]
        return torch.cat([w.detach(), v.detach()]), [float(l.detach()) for l in losses]

    assert run(True)[1] == run(False)[1]
    assert torch.equal(run(True)[0], run(False)[0])
