"""Training: pykan 0.2.8's ``MultKAN.fit`` loop and its regulariser.

The default regulariser (``edge_forward_spline_n``) needs, per edge, the standard
deviation over the batch of the edge's activation ``mask * (scale_base * b(x) +
scale_sp * spline(x))``. pykan builds the whole `[B, out, in]` activation tensor for it on
every forward; here :func:`pykan_fast.train.edge_std.edge_std` computes it from the
bases' centred Gram matrices (or the fused kernels for large grids), without that tensor,
and only when the regulariser is switched on (``lamb > 0``).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .data_checks import check_dataset
from .edge_std import edge_std
from .guard import FiniteCheck, NonFiniteError, Snapshot, check_on_nonfinite
from .lbfgs import LBFGS
from ..ops.threads import check_threads, training_threads
from ..nn.stack import LossEvaluator

__all__ = ["fit", "fit_dataset", "regularization", "edge_std"]

_REG_METRICS = ("edge_forward_spline_n", "edge_forward_sum", "edge_forward_spline_u")

# Whether dict-mode L-BFGS evaluates through nn.stack.LossEvaluator where it applies (the
# same bits as the autograd closure; tests switch it off to compare).
_FUSED_OBJECTIVE = True

_ATTRIBUTION_REG_METRICS = ("edge_backward", "node_backward")


def _check_reg_metric(reg_metric: str) -> None:
    if reg_metric not in _REG_METRICS + _ATTRIBUTION_REG_METRICS:
        raise ValueError(f"reg_metric: expected one of {list(_REG_METRICS + _ATTRIBUTION_REG_METRICS)}, "
                         f"got {reg_metric!r}")


def regularization(model, inputs, reg_metric: str = "edge_forward_spline_n",
                   lamb_l1: float = 1.0, lamb_entropy: float = 2.0, lamb_coef: float = 0.0,
                   lamb_coefdiff: float = 0.0, max_elements: int = 1 << 20) -> torch.Tensor:
    """pykan's ``MultKAN.reg`` given each layer's input (``inputs[l]`` `[B, in_l]`).

    Per layer, ``vec[o, i]`` = std of edge (i, o) (``edge_forward_spline_n``: divided by
    ``std(x_i) + 0.1``; ``edge_forward_sum``: the same, detached, as pykan;
    ``edge_forward_spline_u``: undivided); then ``lamb_l1 * sum(vec) + lamb_entropy *
    (row entropy + column entropy)`` (log2, rows/columns normalised by their sum + 1), plus
    ``lamb_coef`` * mean |coef| and ``lamb_coefdiff`` * mean |diff coef| per edge.
    ``edge_backward`` / ``node_backward``: the matrices are pykan's attribution scores
    (:func:`pykan_fast.tools.prune.attribution_reg_scales`).
    """
    _check_reg_metric(reg_metric)
    reg = 0.0
    if lamb_l1 != 0 or lamb_entropy != 0:
        if reg_metric in _ATTRIBUTION_REG_METRICS:
            from ..tools.prune import attribution_reg_scales  # the tools sit above training

            vecs = attribution_reg_scales(model, inputs, reg_metric, max_elements)
        else:
            vecs = []
            for layer, x in zip(model.act_fun, inputs):
                vec = edge_std(layer, x, max_elements)  # [in, out]
                if reg_metric != "edge_forward_spline_u":
                    vec = vec / (torch.std(x, dim=0) + 0.1)[:, None]
                if reg_metric == "edge_forward_sum":
                    vec = vec.detach()
                vecs.append(vec.T)  # pykan's [out, in]
        for vec in vecs:
            l1 = torch.sum(vec)
            p_row = vec / (torch.sum(vec, dim=1, keepdim=True) + 1)
            p_col = vec / (torch.sum(vec, dim=0, keepdim=True) + 1)
            entropy_row = -torch.mean(torch.sum(p_row * torch.log2(p_row + 1e-4), dim=1))
            entropy_col = -torch.mean(torch.sum(p_col * torch.log2(p_col + 1e-4), dim=0))
            reg = reg + lamb_l1 * l1 + lamb_entropy * (entropy_row + entropy_col)
    for layer in model.act_fun:
        coef = layer.coef
        coef_l1 = torch.sum(torch.mean(torch.abs(coef), dim=1))
        coef_diff_l1 = torch.sum(torch.mean(torch.abs(torch.diff(coef)), dim=1))
        reg = reg + lamb_coef * coef_l1 + lamb_coefdiff * coef_diff_l1
    return reg


def _make_optimizer(opt: str, params, lr: float):
    if opt == "Adam":
        return torch.optim.Adam(params, lr=lr)
    # pykan's settings; tolerances 1e-32 so that only max_iter ends a step. Not
    # torch.optim.LBFGS: see pykan_fast.train.lbfgs for why (tolerance_ys).
    # flatten_params: the line search's trial points as one add_ on a flat buffer.
    return LBFGS(params, lr=lr, history_size=10, line_search_fn="strong_wolfe",
                 tolerance_grad=1e-32, tolerance_change=1e-32, tolerance_ys=1e-32,
                 flatten_params=True)


def _progress(steps: int, progress: bool):
    if not progress:
        return None, range(steps)
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: train without a bar
        return None, range(steps)
    bar = tqdm(range(steps), desc="description", ncols=100)
    return bar, bar


def fit(model, data, *args, **kwargs) -> dict:
    """Train ``model`` (a :class:`pykan_fast.KAN`, or one wrapped in
    DistributedDataParallel in the loader mode).

    Two modes, by what ``data`` is:

    * a dict ``{"train_input", "train_label", "test_input", "test_label"}``: pykan 0.2.8's
      ``MultKAN.fit``, step for step (see :func:`fit_dataset` for the arguments);
    * anything else: an iterable of ``(input, label)`` batches, e.g. a
      ``torch.utils.data.DataLoader``, trained for ``epochs`` with any optimizer,
      scheduler, evaluation, early stopping and checkpoints (see
      :func:`pykan_fast.train.loop.fit_loader`).

    Both check the data before the first step, stop with
    :class:`~pykan_fast.train.guard.NonFiniteError` (model restored to the last finite
    step) when a loss or gradient goes NaN or inf (``on_nonfinite="skip"`` skips such
    batches instead), and return the history so far on KeyboardInterrupt.
    """
    if isinstance(data, dict):
        return fit_dataset(model, data, *args, **kwargs)
    from .loop import fit_loader

    return fit_loader(model, data, *args, **kwargs)


def fit_dataset(model, dataset: dict, opt: str = "LBFGS", steps: int = 100, log: int = 1,
                lamb: float = 0.0, lamb_l1: float = 1.0, lamb_entropy: float = 2.0,
                lamb_coef: float = 0.0, lamb_coefdiff: float = 0.0, update_grid: bool = True,
                grid_update_num: int = 10, loss_fn=None, lr: float = 1.0,
                start_grid_update_step: int = -1, stop_grid_update_step: int = 50,
                batch: int = -1, metrics=None, reg_metric: str = "edge_forward_spline_n",
                display_metrics=None, progress: bool = True, max_elements: int = 1 << 20,
                singularity_avoiding: bool = False, y_th: float = 1000.0,
                on_nonfinite: str = "raise", threads="auto") -> dict:
    """Train ``model`` (a :class:`pykan_fast.KAN`) as pykan's ``MultKAN.fit``.

    ``dataset``: ``train_input``, ``train_label``, ``test_input``, ``test_label``
    (checked first: 2-D float inputs with the model's columns, dtype and device, labels
    with as many rows, all finite; the error names the key and the first bad row).
    Each step draws ``batch`` rows (all if -1) with ``np.random.choice`` as pykan; updates
    the grids on them every ``stop_grid_update_step // grid_update_num`` steps while
    ``start_grid_update_step <= step < stop_grid_update_step``; takes one optimizer step
    (``"LBFGS"``: :class:`pykan_fast.train.lbfgs.LBFGS` with pykan's settings, history 10,
    strong Wolfe, up to 20 iterations; ``"Adam"``); then evaluates the test loss. Objective: ``loss_fn(pred,
    label)`` (default MSE) ``+ lamb * reg`` (the regulariser runs only when ``lamb > 0``).

    Returns ``{"train_loss", "test_loss", "reg"}`` (lists of floats per step, the losses
    as square roots, i.e. RMSE for MSE) plus one list per function in ``metrics``.
    ``progress=False`` hides the tqdm bar; ``display_metrics`` names history keys shown
    in it. ``singularity_avoiding``/``y_th``: the training forward uses the symbolic
    functions' finite forms (threshold ``y_th``), as pykan; the test loss does not. Unlike pykan, ``reg`` is 0 at every step when ``lamb == 0`` (pykan also
    evaluates it at the last step) and the global torch seed is not reset by L-BFGS.

    Never loses the model (pykan trains on into NaN): a step whose training loss, gradient
    or parameters are non-finite is undone (parameters and grids as before it) and
    raises :class:`~pykan_fast.train.guard.NonFiniteError` naming the step
    (``on_nonfinite="skip"``: the step is dropped, the optimizer state reset, and training
    goes on; its history entries are NaN). KeyboardInterrupt: the model is left at the
    last completed step and the history so far is returned. ``threads``: torch threads
    for the loop ("auto": 1 for small work, see
    :func:`pykan_fast.ops.threads.training_threads`).
    """
    if opt not in ("LBFGS", "Adam"):
        raise ValueError(f"opt: expected 'LBFGS' or 'Adam', got {opt!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps: expected a non-negative int, got {steps!r}")
    if log < 1:
        raise ValueError(f"log: expected a positive int, got {log!r}")
    if lamb > 0:
        _check_reg_metric(reg_metric)
    check_on_nonfinite(on_nonfinite)
    check_threads(threads)
    n_inputs = model.width_in[0] if getattr(model, "input_id", None) is None else None
    check_dataset(dataset, n_inputs, model.act_fun[0].coef)
    metrics = list(metrics) if metrics is not None else []

    train_x, train_y = dataset["train_input"], dataset["train_label"]
    test_x, test_y = dataset["test_input"], dataset["test_label"]
    n_train, n_test = train_x.shape[0], test_x.shape[0]
    if batch == -1 or batch > n_train:
        batch_size, batch_size_test = n_train, n_test
    else:
        batch_size = batch_size_test = batch
    batch_size_test = min(batch_size_test, n_test)

    # The L-BFGS objective without autograd (nn.stack.LossEvaluator) where it computes the
    # same thing: the default loss, no regulariser, a model the fused stack covers.
    fused_objective = _FUSED_OBJECTIVE and opt == "LBFGS" and loss_fn is None and lamb <= 0
    if loss_fn is None:
        # pykan's torch.mean((pred - label) ** 2): aten's mse_loss is those ops (and its
        # backward the same products), as one autograd node instead of three.
        loss_fn = torch.nn.functional.mse_loss
    # pykan: every stop/num steps; at least 1 (pykan divides by zero when num > stop).
    grid_update_freq = max(1, int(stop_grid_update_step / grid_update_num))
    use_reg = lamb > 0

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _make_optimizer(opt, params, lr)
    history = {"train_loss": [], "test_loss": [], "reg": []}
    for metric in metrics:
        history[metric.__name__] = []

    state = {}
    no_reg = torch.zeros((), dtype=train_x.dtype)  # the reg history when lamb == 0

    def objective(x, y):
        pred, inputs = model._forward(x, keep_inputs=use_reg,
                                      singularity_avoiding=singularity_avoiding, y_th=y_th)
        train_loss = loss_fn(pred, y)
        state["train_loss"] = train_loss.detach()
        if not use_reg:
            state["reg"] = no_reg
            return train_loss
        reg = regularization(model, inputs, reg_metric, lamb_l1, lamb_entropy, lamb_coef,
                             lamb_coefdiff, max_elements)
        state["reg"] = reg.detach()
        return train_loss + lamb * reg

    snapshot, finite = Snapshot(model), FiniteCheck(model)
    n_params = sum(p.numel() for p in params)
    bar, steps_iter = _progress(steps, progress)
    try:
        with training_threads(threads, batch_size * n_params):
            for step in steps_iter:
                snapshot.take()
                train_id = np.random.choice(n_train, batch_size, replace=False)
                test_id = np.random.choice(n_test, batch_size_test, replace=False)
                x, y = train_x[train_id], train_y[train_id]

                if (update_grid and step % grid_update_freq == 0 and step < stop_grid_update_step
                        and step >= start_grid_update_step):
                    model.update_grid(x)

                if opt == "LBFGS":
                    def closure():
                        for p in params:  # optimizer.zero_grad() without its profiler scope
                            p.grad = None
                        loss = objective(x, y)
                        loss.backward()
                        return loss

                    evaluate = LossEvaluator.build(model, x, y, params) if fused_objective else None
                    if evaluate is None:
                        optimizer.step(closure)
                    else:
                        def flat_closure():
                            loss, flat_grad = evaluate()
                            state["train_loss"], state["reg"] = loss, no_reg
                            return loss, flat_grad

                        try:
                            optimizer.step(closure, flat_closure=flat_closure)
                        finally:
                            evaluate.finish()
                    reason = finite.reason(state["train_loss"], False, True)
                else:
                    loss = objective(x, y)
                    optimizer.zero_grad()
                    loss.backward()
                    # Before the step: Adam's moments must not take in a NaN gradient.
                    reason = finite.reason(loss.detach(), True, False)
                    if reason is None:
                        optimizer.step()
                        reason = finite.reason(None, False, True)
                if reason is not None:
                    snapshot.restore()
                    if on_nonfinite == "raise":
                        raise NonFiniteError(step, reason, history)
                    optimizer.state.clear()  # L-BFGS's history may hold the bad step
                    _skip_warning(step, reason)

                with torch.no_grad():
                    test_loss = loss_fn(model(test_x[test_id]), test_y[test_id])
                for metric in metrics:
                    history[metric.__name__].append(float(metric()))
                nan = float("nan")
                history["train_loss"].append(nan if reason else float(torch.sqrt(state["train_loss"])))
                history["test_loss"].append(float(torch.sqrt(test_loss)))
                history["reg"].append(nan if reason else float(state["reg"]))

                if bar is not None and step % log == 0:
                    if display_metrics is None:
                        bar.set_description("| train_loss: %.2e | test_loss: %.2e | reg: %.2e | " % (
                            history["train_loss"][-1], history["test_loss"][-1], history["reg"][-1]))
                    else:
                        for name in display_metrics:
                            if name not in history:
                                raise ValueError(f"display_metrics: {name!r} not recognized")
                        bar.set_description("".join(
                            f" {name}: {history[name][-1]:.2e} |" for name in display_metrics))
    except KeyboardInterrupt:
        snapshot.restore()  # a step cut short: back to the last completed one
        for values in history.values():
            del values[len(history["test_loss"]):]
        _interrupt_warning(len(history["test_loss"]))
    finally:
        if bar is not None:
            bar.close()
    return history


def _skip_warning(step: int, reason: str) -> None:
    warnings.warn(f"fit: step {step} skipped: {reason}; parameters and grids kept from "
                  "before it", RuntimeWarning, stacklevel=3)


def _interrupt_warning(completed: int) -> None:
    warnings.warn(f"fit: interrupted; the model holds the state after {completed} completed "
                  "steps and the history so far is returned", RuntimeWarning, stacklevel=3)
