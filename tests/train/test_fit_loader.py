"""Issue 16, point 3: ``fit`` over a DataLoader: epochs, optimizers and schedulers,
evaluation, early stopping with the best parameters restored, resumable checkpoints,
grid updates, the guards of point 1 per batch, and the history."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import pykan_fast as pf
from pykan_fast.train import Checkpoint, EarlyStopping, NonFiniteError, accuracy


@pytest.fixture(autouse=True)
def _one_thread(restore_threads):
    torch.set_num_threads(1)


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g, dtype=torch.float64) * 2 - 1
    return x, torch.sin(2 * x[:, :1]) * x[:, 1:]


def _loader(n=96, batch=16, shuffle=False, seed=0):
    return DataLoader(TensorDataset(*_data(n, seed)), batch_size=batch, shuffle=shuffle)


def _model(seed=0):
    return pf.KAN([2, 3, 1], grid=4, seed=seed, dtype=torch.float64)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_epochs_of_adam_equal_a_hand_written_loop():
    loader = _loader()
    model, ref = _model(), _model()
    hist = model.fit(loader, epochs=2, optimizer="Adam", lr=0.02, progress=False)
    opt = torch.optim.Adam([p for p in ref.parameters() if p.requires_grad], lr=0.02)
    losses = []
    for _ in range(2):
        for x, y in loader:
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(ref(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert _same(_state(model), _state(ref))
    assert hist["train_loss"] == losses
    assert hist["step"] == list(range(12)) and hist["epoch"] == [0] * 6 + [1] * 6
    assert len(hist["epoch_loss"]) == 2
    assert hist["epoch_loss"][0] == pytest.approx(sum(losses[:6]) / 6)


@pytest.mark.parametrize("optimizer", ["SGD", torch.optim.AdamW, "instance", "LBFGS"])
def test_any_optimizer_instance_class_or_name(optimizer):
    model = _model()
    if optimizer == "instance":
        optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    lr = None if optimizer in ("LBFGS",) or isinstance(optimizer, torch.optim.Optimizer) else 0.05
    hist = model.fit(_loader(batch=48), epochs=4, optimizer=optimizer, lr=lr, progress=False)
    assert len(hist["train_loss"]) == 8 and hist["epoch_loss"][-1] < hist["epoch_loss"][0]


def test_unknown_optimizer_and_bad_arguments_are_named():
    model = _model()
    with pytest.raises(ValueError, match=r"^optimizer: expected a torch\.optim\.Optimizer"):
        model.fit(_loader(), optimizer="Adamm", progress=False)
    with pytest.raises(ValueError, match=r"^early_stopping: needs an eval_loader"):
        model.fit(_loader(), early_stopping=3, progress=False)
    with pytest.raises(ValueError, match=r"^epochs"):
        model.fit(_loader(), epochs=-1, progress=False)
    with pytest.raises(TypeError, match=r"^train_loader \(epoch 0, batch 0\): expected an \(input, label\) pair"):
        model.fit([torch.zeros(4, 2)], progress=False)


def test_scheduler_factory_per_epoch_and_instance_per_step():
    model = _model()
    hist = model.fit(_loader(batch=32), epochs=3, lr=0.1, progress=False,
                     scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5))
    assert hist["lr"] == pytest.approx([0.1] * 3 + [0.05] * 3 + [0.025] * 3)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    hist = model.fit(_loader(batch=32), epochs=1, optimizer=opt, scheduler=sched,
                     scheduler_interval="step", progress=False)
    assert hist["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3])


def test_evaluation_every_n_steps_with_metrics():
    model = _model()
    eval_loader = _loader(n=40, batch=16, seed=1)  # 16 + 16 + 8: a size-weighted mean
    hist = model.fit(_loader(batch=16), epochs=2, lr=0.02, eval_loader=eval_loader, eval_every=4,
                     metrics={"mae": lambda p, y: (p - y).abs().mean()}, progress=False)
    assert hist["eval_step"] == [4, 8, 12]
    x, y = _data(40, 1)
    with torch.no_grad():
        pred = model(x)
    assert hist["eval_loss"][-1] == pytest.approx(torch.mean((pred - y) ** 2).item(), rel=1e-12)
    assert hist["eval_mae"][-1] == pytest.approx((pred - y).abs().mean().item(), rel=1e-12)


def test_early_stopping_restores_the_best_parameters():
    """The held-out labels are the negated targets: evaluation gets worse as training
    improves, so it stops after `patience` worse evaluations and goes back to the best."""
    x, y = _data(40, 1)
    eval_loader = DataLoader(TensorDataset(x, -y), batch_size=40)
    model = _model()
    stopper = EarlyStopping(patience=2)
    hist = model.fit(_loader(batch=16), epochs=20, lr=0.05, eval_loader=eval_loader,
                     eval_every=1, early_stopping=stopper, progress=False)
    assert len(hist["step"]) < 20 * 6  # stopped early
    best = min(range(len(hist["eval_loss"])), key=hist["eval_loss"].__getitem__)
    assert len(hist["eval_loss"]) == best + 1 + 2
    assert stopper.best_step == hist["eval_step"][best]
    with torch.no_grad():
        again = torch.mean((model(x) + y) ** 2).item()
    assert again == pytest.approx(hist["eval_loss"][best], rel=1e-12)


def test_checkpoint_resume_continues_the_same_run(tmp_path):
    """Interrupted mid-epoch (after step 8 of 12, checkpoint at step 6): resuming from the
    checkpoint gives the uninterrupted run's model and history, shuffled batches included."""
    torch.manual_seed(5)
    full = _model()
    want = full.fit(_loader(shuffle=True), epochs=2, lr=0.02, progress=False)

    calls = []

    def interrupting_loss(pred, label):
        calls.append(1)
        if len(calls) == 9:
            raise KeyboardInterrupt
        return torch.nn.functional.mse_loss(pred, label)

    torch.manual_seed(5)
    path = tmp_path / "ck" / "fit.pt"
    first = _model()
    with pytest.warns(RuntimeWarning, match="after 8 completed steps"):
        part = first.fit(_loader(shuffle=True), epochs=2, lr=0.02, progress=False,
                         loss_fn=interrupting_loss, checkpoint=Checkpoint(path, every=3))
    assert len(part["train_loss"]) == 8
    torch.manual_seed(123)  # whatever the RNG holds now: the checkpoint brings its own
    resumed = _model(seed=7)
    got = resumed.fit(_loader(shuffle=True), epochs=2, lr=0.02, progress=False,
                      checkpoint=Checkpoint(path, every=3), resume=path)
    assert got["train_loss"] == want["train_loss"]
    assert _same(_state(resumed), _state(full))


def test_a_bad_batch_is_named_and_the_model_kept():
    x, y = _data()
    y = y.clone()
    y[37, 0] = math.nan  # batch 2 (rows 32-47), its row 5
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    model = _model()
    with pytest.raises(ValueError, match=r"^label \(epoch 0, batch 2\): row 5 holds nan"):
        model.fit(loader, lr=0.02, progress=False)
    ref = _model()
    ref.fit(DataLoader(TensorDataset(x[:32], y[:32]), batch_size=16), lr=0.02, progress=False)
    model = _model()
    with pytest.raises(NonFiniteError, match=r"^step 2: \(epoch 0, batch 2\) the training loss is nan"):
        model.fit(loader, lr=0.02, progress=False, check_data=False)
    assert _same(_state(model), _state(ref))
    model = _model()
    with pytest.warns(RuntimeWarning, match="step 2 .* skipped"):
        hist = model.fit(loader, lr=0.02, progress=False, check_data=False, on_nonfinite="skip")
    assert hist["skipped"] == [2] and math.isnan(hist["train_loss"][2])
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_keyboard_interrupt_returns_the_history_so_far():
    calls = []

    def interrupting_loss(pred, label):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return torch.nn.functional.mse_loss(pred, label)

    ref = _model()
    ref.fit(DataLoader(TensorDataset(*[t[:48] for t in _data()]), batch_size=16), lr=0.02,
            progress=False)
    model = _model()
    with pytest.warns(RuntimeWarning, match="interrupted"):
        hist = model.fit(_loader(), epochs=3, lr=0.02, loss_fn=interrupting_loss, progress=False)
    assert hist["step"] == [0, 1, 2]
    assert _same(_state(model), _state(ref))


def test_grid_updates_from_the_first_batches():
    loader = _loader(batch=16)
    x0 = next(iter(loader))[0] * 3  # inputs beyond the initial grid [-1, 1]
    scaled = [(x * 3, y) for x, y in loader]
    model, ref = _model(), _model()
    model.fit(scaled, epochs=1, optimizer="SGD", lr=0.0, update_grid=True, grid_update_num=1,
              stop_grid_update_step=1, progress=False)
    ref.update_grid(x0)
    assert torch.equal(model.act_fun[0].grid, ref.act_fun[0].grid)
    assert model.act_fun[0].grid[:, 3].min() < -2  # follows the data


def test_classification_with_cross_entropy_and_accuracy():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(120, 2, generator=g, dtype=torch.float64) * 2 - 1
    labels = (x[:, 0] * x[:, 1] > 0).long()
    loader = DataLoader(TensorDataset(x, labels), batch_size=30, shuffle=True)
    model = pf.KAN([2, 4, 2], grid=4, seed=0, dtype=torch.float64)
    hist = model.fit(loader, epochs=30, lr=0.05, loss_fn=torch.nn.functional.cross_entropy,
                     eval_loader=DataLoader(TensorDataset(x, labels), batch_size=60),
                     metrics=[accuracy], progress=False)
    assert hist["eval_accuracy"][-1] > 0.9


def test_progress_bar_shows_epoch_step_and_losses(capsys):
    pytest.importorskip("tqdm")
    _model().fit(_loader(), epochs=1, lr=0.02, eval_loader=_loader(seed=1))
    err = capsys.readouterr().err
    assert "epoch=0" in err and "step=" in err and "loss=" in err and "eval_loss=" in err


def test_max_steps_and_a_batch_of_the_wrong_dtype():
    model = _model()
    hist = model.fit(_loader(batch=8), epochs=3, lr=0.02, max_steps=5, progress=False)
    assert hist["step"] == [0, 1, 2, 3, 4] and len(hist["epoch_loss"]) == 1
    x, y = _data(16)
    with pytest.raises(TypeError, match=r"^input \(epoch 0, batch 0\) is float32 but the model is "
                                        r"float64: use x\.double\(\) or model\.float\(\)"):
        model.fit([(x.float(), y)], progress=False)
