"""What keeps a fit from losing its model: a copy of the last finite state (parameters,
grids and the other buffers) to go back to, and the error that says which step went
non-finite and why."""

from __future__ import annotations

import torch

__all__ = ["NonFiniteError", "Snapshot", "FiniteCheck", "nonfinite_reason", "check_on_nonfinite"]

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
    with :meth:`take` into buffers allocated once and put back with :meth:`restore`.
    The module's tensors are listed once: a fit does not add or reshape parameters (grid
    updates write new values into the same ones)."""

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self._tensors = [t for _, t in module.named_parameters()] + list(module.buffers())
        self._copies: list[torch.Tensor] | None = None

    @torch.no_grad()
    def take(self) -> None:
        live = [t.detach() for t in self._tensors]
        if self._copies is None or any(c.shape != t.shape or c.dtype != t.dtype
                                       for c, t in zip(self._copies, live)):
            self._copies = [t.clone() for t in live]
        else:
            torch._foreach_copy_(self._copies, live)

    @torch.no_grad()
    def restore(self) -> None:
        if self._copies is None:
            return
        for t, saved in zip(self._tensors, self._copies):
            if saved.shape == t.shape:
                t.copy_(saved)
            else:  # reshaped meanwhile: the old tensor as it was
                t.data = saved.clone()


class FiniteCheck:
    """Which of a module's trainable parameters, or their gradients, are non-finite:
    one fused max-|.| over all of them and one sync per check."""

    def __init__(self, module: torch.nn.Module):
        self.named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]

    def reason(self, loss: torch.Tensor | None, grads: bool, params: bool) -> str | None:
        """Why this step cannot be kept (None: everything finite): the loss, then the
        first parameter whose gradient, then whose value, is NaN or inf."""
        named = [] if loss is None else [("loss", loss)]
        if grads:
            named += [("grad", n, p.grad) for n, p in self.named]
        if params:
            named += [("param", n, p) for n, p in self.named]
        bad = _first_nonfinite(named)
        if bad is None:
            return None
        if bad[0] == "loss":
            return f"the training loss is {loss.item() if loss.numel() == 1 else 'non-finite'}"
        if bad[0] == "grad":
            return f"the gradient of {bad[1]} is non-finite"
        return f"parameter {bad[1]} became non-finite"


def _all_finite(tensors: list) -> bool:
    """One fused max-|.| per tensor and one sync (NaN propagates through the max)."""
    if not tensors:
        return True
    return bool(torch.isfinite(torch.stack(torch._foreach_norm(tensors, float("inf")))).all())


def _first_nonfinite(entries):
    """The first entry (..., tensor) holding a NaN or inf, or None."""
    entries = [e for e in entries if e[-1] is not None and e[-1].numel()]
    if _all_finite([e[-1] for e in entries]):
        return None
    for entry in entries:
        if not bool(torch.isfinite(entry[-1]).all()):
            return entry
    return None


def nonfinite_reason(loss: torch.Tensor | None, module: torch.nn.Module,
                     check_grads: bool, check_params: bool) -> str | None:
    """:meth:`FiniteCheck.reason` for a module (lists its parameters on every call)."""
    return FiniteCheck(module).reason(loss, check_grads, check_params)
