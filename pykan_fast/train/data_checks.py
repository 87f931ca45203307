"""Checks on training data before any step: a clear error naming the split (the dict key
or the batch) and the first bad row, instead of a NaN model hours later."""

from __future__ import annotations

import torch

from ..ops.checks import check_like, check_tensor
from .guard import _all_finite

__all__ = ["check_split", "check_pair", "first_nonfinite_row"]

DATASET_KEYS = ("train_input", "train_label", "test_input", "test_label")


def first_nonfinite_row(t: torch.Tensor) -> int | None:
    """Index of the first row of ``t`` holding a NaN or inf (None: all finite; integer
    tensors are finite)."""
    if not t.is_floating_point() and not t.is_complex():
        return None
    bad = ~torch.isfinite(t.reshape(t.shape[0], -1) if t.dim() else t.reshape(1, 1)).all(1)
    if not bool(bad.any()):
        return None
    return int(bad.nonzero()[0, 0])


def _check_finite(name: str, t: torch.Tensor) -> None:
    if t.is_floating_point() and t.numel() and _all_finite([t]):
        return  # the common case: one fused reduction and one sync
    row = first_nonfinite_row(t)
    if row is not None:
        value = t.reshape(t.shape[0], -1)[row]
        bad = value[~torch.isfinite(value)][0].item()
        raise ValueError(f"{name}: row {row} holds {bad} (expected finite values); drop or "
                         "fix such rows, e.g. keep = torch.isfinite(x).all(1) & "
                         "torch.isfinite(y).all(1); x, y = x[keep], y[keep]")


def check_split(name: str, x, n_inputs: int | None = None, ref: torch.Tensor | None = None,
                owner: str = "model", var: str | None = None) -> torch.Tensor:
    """An input split: a 2-D floating tensor (``n_inputs`` columns, ``ref``'s dtype and
    device when given), finite."""
    check_tensor(name, x)
    if x.dim() != 2:
        raise ValueError(f"{name}: expected a 2-D tensor [samples, inputs], got shape {list(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got {x.dtype} (use {name}.float())")
    if n_inputs is not None and x.shape[1] != n_inputs:
        raise ValueError(f"{name}: expected {n_inputs} columns (the model's inputs), got {x.shape[1]}")
    if ref is not None:
        check_like(name, x, ref, owner, var)
    if x.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one row, got none")
    _check_finite(name, x)
    return x


def check_label(name: str, y, n_rows: int, input_name: str) -> torch.Tensor:
    """A label split: a tensor with one row per input row, finite."""
    check_tensor(name, y)
    if y.dim() == 0 or y.shape[0] != n_rows:
        raise ValueError(f"{name}: expected {n_rows} rows like {input_name}, got shape {list(y.shape)}")
    _check_finite(name, y)
    return y


def check_pair(input_name: str, label_name: str, x, y, n_inputs: int | None = None,
               ref: torch.Tensor | None = None, owner: str = "model",
               var: str | None = None) -> None:
    """An (input, label) pair: see :func:`check_split` and :func:`check_label`."""
    check_split(input_name, x, n_inputs, ref, owner, var)
    check_label(label_name, y, x.shape[0], input_name)


def check_dataset(dataset, n_inputs: int | None = None, ref: torch.Tensor | None = None) -> None:
    """pykan's dataset dict: the four keys, each split checked and finite."""
    if not isinstance(dataset, dict):
        raise TypeError(f"dataset: expected a dict with keys {list(DATASET_KEYS)}, got "
                        f"{type(dataset).__name__}")
    for key in DATASET_KEYS:
        if key not in dataset:
            raise ValueError(f"dataset: missing key {key!r}")
    for split in ("train", "test"):
        check_pair(f"dataset['{split}_input']", f"dataset['{split}_label']",
                   dataset[f"{split}_input"], dataset[f"{split}_label"], n_inputs, ref)
