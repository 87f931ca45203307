"""The MLP the tutorials compare KANs with (pykan_fast.nn.mlp.MLP): pykan 0.2.8's
parameter layout and initialisation, training, attribution, regulariser and swaps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pykan_fast as pf
from pykan_fast.nn.mlp import MLP


def dataset(seed=0):
    return pf.create_dataset(lambda x: torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2, n_var=2,
                             train_num=200, test_num=100, seed=seed)


def test_layout_and_forward():
    model = MLP([3, 7, 2], seed=0)
    assert list(model.state_dict()) == ["linears.0.weight", "linears.0.bias",
                                        "linears.1.weight", "linears.1.bias"]
    assert model.linears[0].weight.shape == (7, 3)
    x = torch.rand(20, 3)
    want = model.linears[1](torch.nn.functional.silu(model.linears[0](x)))
    assert torch.allclose(model(x), want)
    assert len(model.acts) == 2 and len(model.acts_scale) == 2 and model.wa_forward[1].shape == (2, 7)


def test_training_lowers_the_loss():
    np.random.seed(0)
    model = MLP([2, 16, 1], seed=0)
    history = model.fit(dataset(), steps=4, progress=False)
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert len(history["test_loss"]) == 4 and model.save_act


def test_swap_keeps_the_function_and_auto_swap_lowers_the_cost():
    model = MLP([3, 6, 5, 1], seed=1)
    x = torch.rand(30, 3)
    before = model(x)
    model.swap(1, 0, 4)
    model.swap(2, 1, 3)
    assert torch.allclose(model(x), before, atol=1e-6)
    cost = float(model.connection_cost)
    model.auto_swap()
    assert float(model.connection_cost) <= cost
    assert torch.allclose(model(x), before, atol=1e-6)


def test_reg_and_attribute():
    model = MLP([2, 4, 1], seed=0)
    model(torch.rand(40, 2))
    model.attribute()
    assert [s.shape for s in model.edge_scores] == [(4, 2), (1, 4)]
    for metric in ("w", "act", "fa", "a"):
        assert torch.isfinite(model.reg(metric, 1.0, 2.0))
    with pytest.raises(ValueError, match="reg_metric"):
        model.reg("edge", 1.0, 2.0)


def test_bad_input():
    with pytest.raises(ValueError, match="width"):
        MLP([2])
    with pytest.raises(ValueError, match="x"):
        MLP([2, 3, 1])(torch.rand(5, 3))
    with pytest.raises(ValueError, match="l"):
        MLP([2, 3, 1]).swap(0, 0, 1)


@pytest.mark.pykan
def test_matches_pykan(monkeypatch, tmp_path):
    kmlp = pytest.importorskip("kan.MLP")
    monkeypatch.chdir(tmp_path)
    theirs = kmlp.MLP([2, 8, 3, 1], seed=2)
    mine = MLP([2, 8, 3, 1], seed=2)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    for name, value in theirs.state_dict().items():
        assert torch.equal(mine.state_dict()[name], value), name
    x = torch.rand(50, 2)
    mine(x), theirs(x)
    mine.attribute(), theirs.attribute()
    for a, b in zip(mine.edge_scores, theirs.edge_scores):
        assert torch.allclose(a, b.detach())
    for metric in ("w", "act", "a"):
        assert torch.allclose(mine.reg(metric, 1.0, 2.0), theirs.reg(metric, 1.0, 2.0).detach())
    assert float(mine.connection_cost) == pytest.approx(float(theirs.connection_cost))
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # L-BFGS amplifies float32 rounding
    try:
        theirs = kmlp.MLP([2, 8, 3, 1], seed=2)
        mine = MLP([2, 8, 3, 1], seed=2)
        data = dataset(seed=3)
    finally:
        torch.set_default_dtype(old)
    np.random.seed(0)
    h_mine = mine.fit(data, steps=2, progress=False)
    np.random.seed(0)
    h_theirs = theirs.fit(data, steps=2)
    assert np.allclose(h_mine["train_loss"], [float(v) for v in h_theirs["train_loss"]], rtol=1e-8)
    mine.auto_swap(), theirs.auto_swap()
    for name, value in theirs.state_dict().items():
        assert torch.allclose(mine.state_dict()[name], value, atol=1e-5), name
