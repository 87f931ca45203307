"""What keeps a fit from losing its model: a copy of the last finite state (parameters,
grids and the other buffers) to go back to, and the error that says which step went
non-finite and why."""

from __future__ import annotations

import torch

__all__ = ["NonFiniteError", "Snapshot", "nonfinite_reason", "check_on_nonfinite"]

ON_NONFINITE = ("raise", "skip")


class NonFiniteError(FloatingPointError):
    """A training step gave a non-finite loss, gradient or parameter. The model holds the
    parameters and grids from before that step; ``step`` and ``reason`` say what happened,
    ``history`` holds the history up to the last completed step."""

    def __init__(self, step: int, reason: str, history: dict | None = None):
        self.step, self.reason, self.history = step, reason, history
        super().__init__(
            f"step {step}: {reason}. The model is back at its parameters and grids from "
            f"before step {step}. Check the data and learning rate, or pass "
            f"on_nonfinite='skip' to skip such batches.")


def check_on_nonfinite(value: str) -> str:
    if value not in ON_NONFINITE:
        raise ValueError(f"on_nonfinite: expected one of {list(ON_NONFINITE)}, got {value!r}")
    return value


class Snapshot:
    """Copies of a module's state (every parameter and buffer, grids included), taken
    with :meth:`take` into buffers allocated once and put back with :meth:`restore`."""

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self._copies: dict[str, torch.Tensor] = {}

    def _tensors(self):
        for name, p in self.module.named_parameters():
            yield name, p
        for name, b in self.module.named_buffers():
            yield "buffer:" + name, b

    @torch.no_grad()
    def take(self) -> None:
        copies = {}
        for name, t in self._tensors():
            old = self._copies.get(name)
            if old is not None and old.shape == t.shape and old.dtype == t.dtype and old.device == t.device:
                old.copy_(t)
                copies[name] = old
            else:
                copies[name] = t.detach().clone()
        self._copies = copies

    @torch.no_grad()
    def restore(self) -> None:
        for name, t in self._tensors():
            saved = self._copies.get(name)
            if saved is None:
                continue
            if saved.shape == t.shape:
                t.copy_(saved)
            else:  # pruned or refined meanwhile: the old tensor as it was
                t.data = saved.clone()

    def state(self) -> dict:
        """The saved tensors (cloned), for a best-model copy."""
        return {name: t.clone() for name, t in self._copies.items()}


def _all_finite(tensors: list) -> bool:
    """One fused max-|.| per tensor and one sync (NaN propagates through the max)."""
    if not tensors:
        return True
    return bool(torch.isfinite(torch.stack(torch._foreach_norm(tensors, float("inf")))).all())


def _first_nonfinite(named) -> str | None:
    named = [(n, t) for n, t in named if t is not None and t.numel()]
    if _all_finite([t for _, t in named]):
        return None
    for name, t in named:
        if t is not None and not bool(torch.isfinite(t).all()):
            return name
    return None


def nonfinite_reason(loss: torch.Tensor | None, module: torch.nn.Module,
                     check_grads: bool, check_params: bool) -> str | None:
    """Why this step cannot be kept (None: everything finite): the loss, then the first
    parameter whose gradient, then whose value, is NaN or inf."""
    if loss is not None and not bool(torch.isfinite(loss).all()):
        return f"the training loss is {loss.item() if loss.numel() == 1 else 'non-finite'}"
    if check_grads:
        name = _first_nonfinite((n, p.grad) for n, p in module.named_parameters())
        if name is not None:
            return f"the gradient of {name} is non-finite"
    if check_params:
        name = _first_nonfinite(module.named_parameters())
        if name is not None:
            return f"parameter {name} became non-finite"
    return None
