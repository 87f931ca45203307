"""``fit`` over real data: epochs of mini-batches from a DataLoader (or any iterable of
``(input, label)`` batches), any optimizer and LR scheduler, evaluation on a held-out
loader, early stopping, resumable checkpoints and DistributedDataParallel models."""

from __future__ import annotations

import math
import numbers
import warnings

import torch

from .callbacks import Checkpoint, EarlyStopping
from .data_checks import check_pair
from .fit import _check_reg_metric, regularization
from .guard import FiniteCheck, NonFiniteError, Snapshot, check_on_nonfinite
from .lbfgs import LBFGS
from ..ops.threads import check_threads, training_threads

__all__ = ["fit_loader", "make_optimizer"]

_CLOSURE_OPTIMIZERS = (torch.optim.LBFGS, LBFGS)


def make_optimizer(optimizer, params, lr: float | None):
    """An optimizer instance (returned as is), an Optimizer subclass (built with
    ``params`` and ``lr``) or a name: ``"LBFGS"`` (pykan's, with its settings) or any
    class in ``torch.optim`` (``"Adam"``, ``"AdamW"``, ``"SGD"``, ...)."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    kwargs = {} if lr is None else {"lr": lr}
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer(params, **kwargs)
    if optimizer == "LBFGS":
        return LBFGS(params, lr=1.0 if lr is None else lr, history_size=10,
                     line_search_fn="strong_wolfe", tolerance_grad=1e-32,
                     tolerance_change=1e-32, tolerance_ys=1e-32)
    cls = getattr(torch.optim, optimizer, None) if isinstance(optimizer, str) else None
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ValueError(f"optimizer: expected a torch.optim.Optimizer (instance or class) or "
                         f"the name of one (e.g. 'Adam', 'AdamW', 'SGD', 'LBFGS'), got {optimizer!r}")
    return cls(params, **kwargs)


def _make_scheduler(scheduler, optimizer):
    if scheduler is None:
        return None
    schedulers = (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if isinstance(scheduler, schedulers):
        return scheduler
    if callable(scheduler):
        built = scheduler(optimizer)
        if not isinstance(built, schedulers):
            raise TypeError(f"scheduler: the factory returned {type(built).__name__}, expected an "
                            "LR scheduler")
        return built
    raise TypeError(f"scheduler: expected an LR scheduler or a function optimizer -> scheduler, "
                    f"got {type(scheduler).__name__}")


def _unpack(batch, where: str):
    if isinstance(batch, dict) and "input" in batch and "label" in batch:
        return batch["input"], batch["label"]
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(f"{where}: expected an (input, label) pair, got {type(batch).__name__}"
                    + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""))


def _is_ddp(model) -> bool:
    return isinstance(model, torch.nn.parallel.DistributedDataParallel)


def _is_main_process() -> bool:
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _metric_fns(metrics) -> dict:
    if metrics is None:
        return {}
    if isinstance(metrics, dict):
        return dict(metrics)
    return {fn.__name__: fn for fn in metrics}


@torch.no_grad()
def evaluate(module, loader, loss_fn, metrics: dict, device, dtype) -> dict:
    """``eval_loss`` and ``eval_<metric>``: means over every sample of ``loader`` (each
    batch's value weighted by its size)."""
    sums, count = {}, 0
    for b, batch in enumerate(loader):
        x, y = _unpack(batch, f"eval batch {b}")
        x, y = _to(x, device, dtype), _to(y, device, None)
        pred = module(x)
        n = x.shape[0]
        values = {"eval_loss": loss_fn(pred, y)}
        values.update({f"eval_{name}": fn(pred, y) for name, fn in metrics.items()})
        for key, value in values.items():
            sums[key] = sums.get(key, 0.0) + float(value) * n
        count += n
    if count == 0:
        raise ValueError("eval_loader: yielded no batches")
    return {key: total / count for key, total in sums.items()}


def _to(t, device, dtype):
    if isinstance(t, torch.Tensor):
        if dtype is not None and t.is_floating_point() and t.dtype != dtype:
            return t  # left for the data check / the layer to name
        return t.to(device, non_blocking=True)
    return t


def fit_loader(model, train_loader, epochs: int = 1, optimizer="Adam", lr: float | None = None,
               scheduler=None, scheduler_interval: str = "epoch", loss_fn=None,
               eval_loader=None, eval_every: int | None = None, metrics=None,
               early_stopping: EarlyStopping | int | None = None,
               checkpoint: Checkpoint | str | None = None, resume=None,
               max_steps: int | None = None, lamb: float = 0.0, lamb_l1: float = 1.0,
               lamb_entropy: float = 2.0, lamb_coef: float = 0.0, lamb_coefdiff: float = 0.0,
               reg_metric: str = "edge_forward_spline_n", update_grid: bool = False,
               grid_update_num: int = 10, stop_grid_update_step: int = 50,
               on_nonfinite: str = "raise", check_data: bool = True, progress: bool = True,
               threads="auto") -> dict:
    """Train ``model`` on the ``(input, label)`` batches of ``train_loader`` for ``epochs``.

    ``model``: a :class:`pykan_fast.KAN` (or any module), possibly wrapped in
    ``DistributedDataParallel`` (the sampler's ``set_epoch`` is called each epoch;
    checkpoints are written by rank 0 only). Batches are moved to the model's device.

    Optimisation: ``optimizer`` an instance, an Optimizer class or a name (``"Adam"``,
    ``"AdamW"``, ``"SGD"``, ..., ``"LBFGS"`` = pykan's settings), built with ``lr`` (None:
    the optimizer's default; 1.0 for LBFGS). ``scheduler``: an LR scheduler or a function
    ``optimizer -> scheduler``, stepped per ``scheduler_interval`` (``"epoch"`` or
    ``"step"``; ``ReduceLROnPlateau`` gets the last ``eval_loss``, else the epoch's mean
    training loss). ``loss_fn(pred, label)`` (default MSE) plus ``lamb *`` pykan's
    regulariser (``lamb > 0``, not with DDP). ``max_steps`` ends the fit early.

    Evaluation on ``eval_loader``: every ``eval_every`` steps, or at the end of every epoch
    (None); ``eval_loss`` and one ``eval_<name>`` per function in ``metrics`` (a dict
    ``name -> fn(pred, label)`` or a list of functions, e.g.
    :func:`pykan_fast.train.callbacks.accuracy`), means over the whole loader.
    ``early_stopping``: an :class:`~pykan_fast.train.callbacks.EarlyStopping` (or an int:
    the patience on ``eval_loss``); with ``restore_best`` the best evaluation's
    parameters and grids are restored at the end.

    ``checkpoint``: a :class:`~pykan_fast.train.callbacks.Checkpoint` (or a path: saved at
    the end of every epoch); ``resume``: a checkpoint path to continue from (model,
    optimizer, scheduler, early stopping, history and position in the data).

    Grids: ``update_grid=True`` updates them on the batches of steps
    ``0, f, 2f, ... < stop_grid_update_step`` (``f = stop_grid_update_step //
    grid_update_num``, as pykan's fit); not with DDP (each rank would fit its own grid).

    Safety: with ``check_data`` every batch is checked (2-D float input with the model's
    columns, dtype and device, labels with as many rows, all finite) and an error names
    the epoch, the batch and its first bad row. A non-finite loss, gradient or parameter
    undoes the step (parameters and grids) and raises
    :class:`~pykan_fast.train.guard.NonFiniteError`; ``on_nonfinite="skip"`` skips the
    batch instead (with a warning; the history counts them in ``skipped``).
    KeyboardInterrupt: the model keeps the last completed step and the history so far
    is returned. ``threads``: see :func:`pykan_fast.ops.threads.training_threads`.

    Returns the history: per step ``step``, ``epoch``, ``train_loss`` (the batch's
    loss, not its square root), ``lr``; per evaluation ``eval_step``, ``eval_epoch``,
    ``eval_loss`` and the metrics; per epoch ``epoch_loss`` (mean training loss);
    ``skipped`` (steps skipped as non-finite).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
        raise ValueError(f"epochs: expected a non-negative int, got {epochs!r}")
    epochs = int(epochs)
    for name, value in (("eval_every", eval_every), ("max_steps", max_steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)
                                  or value < 1):
            raise ValueError(f"{name}: expected a positive int or None, got {value!r}")
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"scheduler_interval: expected 'epoch' or 'step', got {scheduler_interval!r}")
    if isinstance(train_loader, torch.Tensor) or not hasattr(train_loader, "__iter__"):
        raise TypeError(f"train_loader: expected a DataLoader or an iterable of (input, label) "
                        f"batches, got {type(train_loader).__name__} (or pass pykan's dataset dict)")
    check_on_nonfinite(on_nonfinite)
    check_threads(threads)
    if isinstance(early_stopping, int) and not isinstance(early_stopping, bool):
        early_stopping = EarlyStopping(patience=early_stopping)
    if early_stopping is not None and eval_loader is None:
        raise ValueError("early_stopping: needs an eval_loader to watch")
    if isinstance(checkpoint, (str, bytes)) or hasattr(checkpoint, "__fspath__"):
        checkpoint = Checkpoint(checkpoint)
    ddp = _is_ddp(model)
    module = model.module if ddp else model
    if lamb > 0:
        _check_reg_metric(reg_metric)
        if ddp:
            raise ValueError("lamb: the regulariser runs outside DistributedDataParallel's "
                             "forward; train with lamb=0 under DDP")
    if update_grid and ddp:
        raise ValueError("update_grid: each rank would fit its own grid under "
                         "DistributedDataParallel; update the grids before wrapping the model")
    if loss_fn is None:
        loss_fn = torch.nn.functional.mse_loss
    metric_fns = _metric_fns(metrics)

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model: has no trainable parameters")
    opt = make_optimizer(optimizer, params, lr)
    sched = _make_scheduler(scheduler, opt)
    uses_closure = isinstance(opt, _CLOSURE_OPTIMIZERS)
    ref = next(iter(module.parameters()))
    device, dtype = ref.device, ref.dtype
    n_inputs = None
    if hasattr(module, "width_in") and getattr(module, "input_id", None) is None:
        n_inputs = module.width_in[0]
    grid_update_freq = max(1, int(stop_grid_update_step / max(1, grid_update_num)))

    history = {"step": [], "epoch": [], "train_loss": [], "lr": [], "eval_step": [],
               "eval_epoch": [], "eval_loss": [], "epoch_loss": [], "skipped": []}
    for name in metric_fns:
        history[f"eval_{name}"] = []
    position = {"epoch": 0, "batch": 0, "step": 0, "epoch_rng": None, "epoch_losses": []}
    if resume is not None:
        position = _load_checkpoint(resume, module, opt, sched, early_stopping, history)

    def save_checkpoint():
        if checkpoint is None or not _is_main_process():
            return
        checkpoint.save({
            "model": module.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict() if sched is not None else None,
            "early_stopping": early_stopping.state_dict() if early_stopping is not None else None,
            "history": history, "position": dict(position), "rng": torch.get_rng_state(),
        })

    def run_eval(epoch):
        result = evaluate(module, eval_loader, loss_fn, metric_fns, device, dtype)
        history["eval_step"].append(position["step"])
        history["eval_epoch"].append(epoch)
        for key, value in result.items():
            history[key].append(value)
        if early_stopping is None:
            return False
        if early_stopping.monitor not in result:
            raise ValueError(f"early_stopping: monitor {early_stopping.monitor!r} is not one of "
                             f"{sorted(result)}")
        return early_stopping.update(result[early_stopping.monitor], position["step"], module)

    snapshot, finite = Snapshot(module), FiniteCheck(module)
    snapshot.take()
    bar = _bar(progress, epochs, train_loader, position["step"])
    batch_size = getattr(train_loader, "batch_size", None) or 1024
    stop = False
    try:
        with training_threads(threads, batch_size * sum(p.numel() for p in params)):
            for epoch in range(position["epoch"], epochs):
                sampler = getattr(train_loader, "sampler", None)
                if hasattr(sampler, "set_epoch"):
                    sampler.set_epoch(epoch)
                resuming = position["epoch_rng"] is not None and position["epoch"] == epoch
                if resuming:
                    torch.set_rng_state(position["epoch_rng"])
                else:
                    position.update(batch=0, epoch_losses=[])
                position["epoch"] = epoch
                position["epoch_rng"] = torch.get_rng_state()
                for b, batch in enumerate(train_loader):
                    if b < position["batch"]:
                        continue  # done before the checkpoint this fit resumed from
                    where = f"epoch {epoch}, batch {b}"
                    x, y = _unpack(batch, f"train_loader ({where})")
                    x, y = _to(x, device, dtype), _to(y, device, None)
                    if check_data:
                        check_pair(f"input ({where})", f"label ({where})", x, y, n_inputs, ref,
                                   owner="model", var="x")
                    step = position["step"]
                    if update_grid and step % grid_update_freq == 0 and step < stop_grid_update_step:
                        module.update_grid(x)
                    loss, reason = _train_step(model, module, finite, opt, uses_closure, x, y,
                                               loss_fn, lamb, (lamb_l1, lamb_entropy, lamb_coef,
                                                               lamb_coefdiff), reg_metric)
                    if reason is not None:
                        snapshot.restore()
                        if on_nonfinite == "raise":
                            raise NonFiniteError(step, f"({where}) {reason}", history)
                        opt.state.clear()  # L-BFGS's history or Adam's moments may hold it
                        history["skipped"].append(step)
                        warnings.warn(f"fit: step {step} ({where}) skipped: {reason}",
                                      RuntimeWarning, stacklevel=2)
                    else:
                        snapshot.take()
                        position["epoch_losses"].append(loss)
                    position["step"] = step + 1
                    position["batch"] = b + 1
                    history["step"].append(step)
                    history["epoch"].append(epoch)
                    history["train_loss"].append(math.nan if reason else loss)
                    history["lr"].append(opt.param_groups[0]["lr"])
                    if sched is not None and scheduler_interval == "step":
                        _step_scheduler(sched, history)
                    if eval_loader is not None and eval_every and position["step"] % eval_every == 0:
                        stop = run_eval(epoch)
                    if checkpoint is not None and checkpoint.every and position["step"] % checkpoint.every == 0:
                        save_checkpoint()
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(_postfix(history, epoch), refresh=False)
                    if stop or (max_steps is not None and position["step"] >= max_steps):
                        stop = True
                        break
                losses = position["epoch_losses"]
                history["epoch_loss"].append(sum(losses) / len(losses) if losses else math.nan)
                if eval_loader is not None and eval_every is None and not stop:
                    stop = run_eval(epoch)
                    if bar is not None and history["step"]:
                        bar.set_postfix(_postfix(history, epoch))
                if sched is not None and scheduler_interval == "epoch":
                    _step_scheduler(sched, history)
                position.update(epoch=epoch + 1, batch=0, epoch_rng=None, epoch_losses=[])
                if checkpoint is not None:
                    save_checkpoint()
                if stop:
                    break
    except KeyboardInterrupt:
        snapshot.restore()
        _trim(history)
        warnings.warn(f"fit: interrupted; the model holds the state after {len(history['step'])} "
                      "completed steps and the history so far is returned", RuntimeWarning,
                      stacklevel=2)
    finally:
        if bar is not None:
            bar.close()
    if early_stopping is not None and early_stopping.restore_best and early_stopping.best_state is not None:
        module.load_state_dict(early_stopping.best_state)
    return history


def _train_step(model, module, finite, opt, uses_closure, x, y, loss_fn, lamb, lambs, reg_metric):
    """One optimizer step; returns (the batch's loss as a float, why it is not finite)."""
    state = {}

    def objective():
        if lamb > 0:
            pred, inputs = module._forward(x, keep_inputs=True)
            loss = loss_fn(pred, y)
            state["loss"] = loss.detach()
            return loss + lamb * regularization(module, inputs, reg_metric, *lambs)
        loss = loss_fn(model(x), y)
        state["loss"] = loss.detach()
        return loss

    if uses_closure:
        def closure():
            opt.zero_grad()
            total = objective()
            total.backward()
            return total

        opt.step(closure)
        reason = finite.reason(state["loss"], False, True)
    else:
        opt.zero_grad()
        objective().backward()
        # Before the step (and after backward, so DDP ranks agree): the optimizer's state
        # must not take in a NaN gradient.
        reason = finite.reason(state["loss"], True, False)
        if reason is None:
            opt.step()
            reason = finite.reason(None, False, True)
    return float(state["loss"]), reason


def _step_scheduler(sched, history):
    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        value = history["eval_loss"][-1] if history["eval_loss"] else (
            history["epoch_loss"][-1] if history["epoch_loss"] else history["train_loss"][-1])
        sched.step(value)
    else:
        sched.step()


def _trim(history):
    """Per-step lists cut to the steps completed (an interrupt may land between appends)."""
    n = min(len(history[k]) for k in ("step", "epoch", "train_loss", "lr"))
    for key in ("step", "epoch", "train_loss", "lr"):
        del history[key][n:]
    n = min(len(v) for k, v in history.items() if k.startswith("eval_"))
    for key, values in history.items():
        if key.startswith("eval_"):
            del values[n:]


def _postfix(history, epoch) -> dict:
    out = {"epoch": epoch, "step": history["step"][-1] + 1,
           "loss": f"{history['train_loss'][-1]:.3e}"}
    for key, values in history.items():
        if key.startswith("eval_") and key not in ("eval_step", "eval_epoch") and values:
            out[key] = f"{values[-1]:.4g}"
    return out


def _bar(progress, epochs, loader, done):
    if not progress or not _is_main_process():
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: train without a bar
        return None
    try:
        total = epochs * len(loader)
    except TypeError:  # an iterable without a length
        total = None
    return tqdm(total=total, initial=done, desc="fit", ncols=110)


def _load_checkpoint(path, module, opt, sched, early_stopping, history) -> dict:
    state = torch.load(path, map_location=next(iter(module.parameters())).device,
                       weights_only=False)
    module.load_state_dict(state["model"])
    torch.set_rng_state(state["rng"])  # mid-epoch, the epoch's own state replaces it
    opt.load_state_dict(state["optimizer"])
    if sched is not None and state["scheduler"] is not None:
        sched.load_state_dict(state["scheduler"])
    if early_stopping is not None and state["early_stopping"] is not None:
        early_stopping.load_state_dict(state["early_stopping"])
    for key, values in state["history"].items():
        history[key] = list(values)
    return dict(state["position"])
