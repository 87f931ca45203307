"""Early stopping and checkpoints for :func:`pykan_fast.train.loop.fit_loader`."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

__all__ = ["EarlyStopping", "Checkpoint", "accuracy"]


def accuracy(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose largest output is the label (class indices `[B]`, or
    one-hot / scores `[B, C]`)."""
    if label.dim() == pred.dim():
        label = label.argmax(-1)
    return (pred.argmax(-1) == label).to(torch.float64).mean()


@dataclass
class EarlyStopping:
    """Stop when ``monitor`` (a key of the evaluation, e.g. ``"eval_loss"`` or
    ``"eval_accuracy"``) has not improved by more than ``min_delta`` for ``patience``
    evaluations; ``mode``: ``"min"`` or ``"max"``. ``restore_best``: at the end of the
    fit (stopped early or not) the model gets the parameters and grids of the best
    evaluation back."""

    patience: int = 5
    monitor: str = "eval_loss"
    mode: str = "min"
    min_delta: float = 0.0
    restore_best: bool = True

    def __post_init__(self):
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"patience: expected a positive int, got {self.patience!r}")
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode: expected 'min' or 'max', got {self.mode!r}")
        if not self.min_delta >= 0:
            raise ValueError(f"min_delta: expected a number >= 0, got {self.min_delta!r}")
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_step = None
        self.best_state = None
        self.bad_evals = 0

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, value: float, step: int, model: torch.nn.Module) -> bool:
        """Record one evaluation; True when training should stop."""
        if self.improved(value):
            self.best, self.best_step, self.bad_evals = value, step, 0
            if self.restore_best:
                self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        self.bad_evals += 1
        return self.bad_evals >= self.patience

    def state_dict(self) -> dict:
        return dict(best=self.best, best_step=self.best_step, bad_evals=self.bad_evals,
                    best_state=self.best_state)

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_step = state["best"], state["best_step"]
        self.bad_evals, self.best_state = state["bad_evals"], state["best_state"]


@dataclass
class Checkpoint:
    """Save everything a fit needs to resume (model, optimizer, scheduler, early
    stopping, history, the position in the data and the RNG state at the start of the
    epoch) to ``path`` every ``every`` steps and at the end of every epoch. Resume with
    ``fit(..., resume=path)``: the rest of the run is the one an uninterrupted fit takes
    (same batches for a loader that shuffles with torch's global generator)."""

    path: str | os.PathLike
    every: int | None = None

    def __post_init__(self):
        if self.every is not None and (isinstance(self.every, bool) or not isinstance(self.every, int)
                                       or self.every < 1):
            raise ValueError(f"every: expected a positive int or None, got {self.every!r}")

    def save(self, state: dict) -> None:
        """Written to a temporary file, then renamed: a crash mid-write keeps the last one."""
        path = os.fspath(self.path)
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        tmp = path + ".tmp"
        torch.save(state, tmp)
        os.replace(tmp, path)
