"""Issue 16, point 1: fit checks its data first, never trains on into NaN (it undoes the
step and says which and why, or skips it), and a KeyboardInterrupt keeps the model at
the last completed step with the history so far."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import pykan_fast as pf
from pykan_fast.train import NonFiniteError
from pykan_fast.train.dataset import create_dataset_from_data


@pytest.fixture(autouse=True)
def _one_thread(restore_threads):
    torch.set_num_threads(1)


def _dataset():
    return pf.create_dataset(lambda x: torch.sin(x[:, :1]) * x[:, 1:], n_var=2, train_num=60,
                             test_num=20, seed=0, dtype=torch.float64)


def _model():
    return pf.KAN([2, 3, 1], grid=3, seed=0, dtype=torch.float64)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("key", ["train_input", "train_label", "test_input", "test_label"])
def test_a_nan_row_is_named_before_training(key):
    data = _dataset()
    data[key] = data[key].clone()
    data[key][7, 0] = math.nan
    model = _model()
    before = _state(model)
    with pytest.raises(ValueError, match=rf"^dataset\['{key}'\]: row 7 holds nan"):
        model.fit(data, steps=2, progress=False)
    assert _same(before, _state(model))


def test_wrong_shapes_and_dtypes_are_named():
    model = _model()
    data = _dataset()
    with pytest.raises(ValueError, match=r"dataset\['test_label'\]: expected 20 rows"):
        model.fit(dict(data, test_label=data["test_label"][:5]), steps=1, progress=False)
    with pytest.raises(ValueError, match=r"dataset\['train_input'\]: expected 2 columns"):
        model.fit(dict(data, train_input=data["train_input"][:, :1]), steps=1, progress=False)
    with pytest.raises(TypeError, match=r"dataset\['train_input'\] is float32 but the model is "
                                        r"float64: use dataset\['train_input'\]\.double\(\)"):
        model.fit(dict(data, train_input=data["train_input"].float()), steps=1, progress=False)
    with pytest.raises(TypeError, match=r"dataset\['test_input'\]: expected a torch\.Tensor, got "
                                        r"numpy\.ndarray"):
        model.fit(dict(data, test_input=data["test_input"].numpy()), steps=1, progress=False)


def _nan_at_call(n):
    """An MSE that is NaN at its n-th call (fit calls it for the train, then the test loss)."""
    calls = []

    def loss(pred, label):
        calls.append(1)
        value = torch.nn.functional.mse_loss(pred, label)
        return value * math.nan if len(calls) == n else value
    return loss


@pytest.mark.parametrize("opt", ["Adam", "LBFGS"])
def test_a_nan_loss_undoes_the_step_and_names_it(opt):
    data = _dataset()
    # The reference: two completed steps (grid updates included) from the same seeds, with
    # a loss function given, so on the autograd closure as the run below (the default loss
    # takes the fused objective, whose first layer rounds differently).
    ref = _model()
    np.random.seed(0)
    ref.fit(data, opt=opt, steps=2, lr=0.02 if opt == "Adam" else 1.0, progress=False,
            grid_update_num=2, stop_grid_update_step=4,
            loss_fn=lambda pred, label: torch.nn.functional.mse_loss(pred, label))
    if opt == "Adam":
        loss = _nan_at_call(2 * 2 + 1)  # step 2's training loss (train, test per step)
    else:  # every call after the reference's two steps: step 2's line search included
        loss = _always_nan_after(ref_calls=_count_calls(data))
    model = _model()
    np.random.seed(0)
    with pytest.raises(NonFiniteError, match=r"^step 2: the training loss is nan\. The model is "
                                             r"back at its parameters and grids from before step 2") as err:
        model.fit(data, opt=opt, steps=5, lr=0.02 if opt == "Adam" else 1.0, progress=False,
                  grid_update_num=2, stop_grid_update_step=4, loss_fn=loss)
    assert err.value.step == 2 and len(err.value.history["train_loss"]) == 2
    assert _same(_state(ref), _state(model))  # grids and parameters as after step 1


def _count_calls(data):
    """How many loss calls two L-BFGS steps of the reference fit make."""
    calls = []

    def loss(pred, label):
        calls.append(1)
        return torch.nn.functional.mse_loss(pred, label)
    np.random.seed(0)
    _model().fit(data, opt="LBFGS", steps=2, progress=False, grid_update_num=2,
                 stop_grid_update_step=4, loss_fn=loss)
    return len(calls)


def _always_nan_after(ref_calls):
    calls = []

    def loss(pred, label):
        calls.append(1)
        value = torch.nn.functional.mse_loss(pred, label)
        return value * math.nan if len(calls) > ref_calls else value
    return loss


def test_a_nan_gradient_is_caught_before_adam_takes_it():
    data = _dataset()
    model = _model()

    def loss(pred, label):  # a finite value, a NaN gradient (torch.where's NaN trap)
        trap = torch.where(pred > 1e9, torch.sqrt(-pred.abs() - 1), torch.zeros_like(pred))
        return torch.nn.functional.mse_loss(pred, label) + trap.sum()

    with pytest.raises(NonFiniteError, match=r"^step 0: the gradient of act_fun\.0\.\w+ is non-finite"):
        model.fit(data, opt="Adam", steps=2, lr=0.01, progress=False, loss_fn=loss)
    for name, p in model.named_parameters():
        assert torch.isfinite(p).all(), name


def test_skip_option_drops_the_bad_batch_and_trains_on():
    data = _dataset()
    model = _model()
    with pytest.warns(RuntimeWarning, match="step 1 skipped: the training loss is nan"):
        hist = model.fit(data, opt="Adam", steps=4, lr=0.02, progress=False,
                         loss_fn=_nan_at_call(3), on_nonfinite="skip")
    assert math.isnan(hist["train_loss"][1])
    assert all(math.isfinite(v) for i, v in enumerate(hist["train_loss"]) if i != 1)
    for name, p in model.named_parameters():
        assert torch.isfinite(p).all(), name


def test_keyboard_interrupt_keeps_the_last_completed_step():
    data = _dataset()
    ref = _model()
    np.random.seed(0)
    want = ref.fit(data, opt="Adam", steps=3, lr=0.02, progress=False)
    calls = []

    def interrupt_at_step_3():
        calls.append(1)
        if len(calls) == 4:  # after step 3's update, before its history
            raise KeyboardInterrupt
        return 0.0

    model = _model()
    np.random.seed(0)
    with pytest.warns(RuntimeWarning, match="after 3 completed steps"):
        hist = model.fit(data, opt="Adam", steps=10, lr=0.02, progress=False,
                         metrics=[interrupt_at_step_3])
    assert hist["train_loss"] == want["train_loss"]
    assert len(hist["interrupt_at_step_3"]) == 3
    assert _same(_state(ref), _state(model))


def test_create_dataset_from_data_checks_and_splits():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 3, generator=g)
    y = x.sum(1, keepdim=True)
    np.random.seed(0)
    data = create_dataset_from_data(x, y, train_ratio=0.8)
    assert data["train_input"].shape == (40, 3) and data["test_input"].shape == (10, 3)
    rows = torch.cat([data["train_input"], data["test_input"]])
    assert torch.equal(torch.sort(rows[:, 0])[0], torch.sort(x[:, 0])[0])  # a partition
    assert torch.equal(data["train_label"], data["train_input"].sum(1, keepdim=True))
    bad = y.clone()
    bad[13, 0] = math.inf
    with pytest.raises(ValueError, match=r"^labels: row 13 holds inf"):
        create_dataset_from_data(x, bad)
    with pytest.raises(ValueError, match=r"^labels: expected 50 rows like inputs"):
        create_dataset_from_data(x, y[:10])
    with pytest.raises(TypeError, match=r"^inputs: expected a torch\.Tensor, got numpy\.ndarray"):
        create_dataset_from_data(x.numpy(), y)
    with pytest.raises(ValueError, match="train_ratio"):
        create_dataset_from_data(x, y, train_ratio=1.0)


@pytest.mark.pykan
def test_create_dataset_from_data_draws_as_pykan():
    utils = pytest.importorskip("kan.utils")
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(30, 2, generator=g), torch.rand(30, 1, generator=g)
    np.random.seed(3)
    theirs = utils.create_dataset_from_data(x, y, train_ratio=0.7)
    np.random.seed(3)
    ours = create_dataset_from_data(x, y, train_ratio=0.7)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key
