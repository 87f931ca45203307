"""``create_dataset``: pykan 0.2.8's synthetic regression data, draw for draw;
``create_dataset_from_data``: its train/test split of given data, checked first."""

from __future__ import annotations

import numpy as np
import torch

from .data_checks import check_label, check_split

__all__ = ["create_dataset", "create_dataset_from_data"]


def create_dataset(f, n_var: int = 2, f_mode: str = "col", ranges=(-1, 1), train_num: int = 1000,
                   test_num: int = 1000, normalize_input: bool = False,
                   normalize_label: bool = False, device="cpu", seed: int = 0,
                   dtype: torch.dtype | None = None) -> dict:
    """Inputs uniform over ``ranges``, labels ``f(inputs)``, as pykan's ``create_dataset``.

    Reseeds numpy and torch with ``seed`` and draws in pykan's order (per variable: train
    column, then test column), so for the same seed and dtype the tensors equal pykan's.
    ``f`` maps `[N, n_var]` to `[N]` or `[N, n_out]` (``f_mode="col"``), or takes the
    transposed inputs (``f_mode="row"``). ``ranges``: `(lo, hi)` for every variable or one
    pair per variable. ``dtype``: as pykan under ``torch.set_default_dtype(dtype)``
    (default: the current default dtype).

    Returns ``{"train_input", "train_label", "test_input", "test_label"}``; inputs
    `[train_num or test_num, n_var]`, labels 2-D.
    """
    if f_mode not in ("col", "row"):
        raise ValueError(f"f_mode: expected 'col' or 'row', got {f_mode!r}")
    for name, v in (("n_var", n_var), ("train_num", train_num), ("test_num", test_num)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    np.random.seed(seed)
    torch.manual_seed(seed)

    ranges = np.array(ranges, dtype=np.float64)
    if ranges.shape == (2,):
        ranges = np.tile(ranges, (n_var, 1))
    if ranges.shape != (n_var, 2):
        raise ValueError(f"ranges: expected (lo, hi) or {n_var} such pairs, got shape {ranges.shape}")
    dtype = dtype if dtype is not None else torch.get_default_dtype()

    train_input = torch.zeros(train_num, n_var, dtype=dtype)
    test_input = torch.zeros(test_num, n_var, dtype=dtype)
    for i in range(n_var):
        lo, hi = ranges[i]
        train_input[:, i] = torch.rand(train_num, dtype=dtype) * (hi - lo) + lo
        test_input[:, i] = torch.rand(test_num, dtype=dtype) * (hi - lo) + lo

    if f_mode == "col":
        train_label, test_label = f(train_input), f(test_input)
    else:
        train_label, test_label = f(train_input.T), f(test_input.T)
    if train_label.dim() == 1:
        train_label, test_label = train_label.unsqueeze(1), test_label.unsqueeze(1)

    if normalize_input:
        mean, std = train_input.mean(0, keepdim=True), train_input.std(0, keepdim=True)
        train_input, test_input = (train_input - mean) / std, (test_input - mean) / std
    if normalize_label:
        mean, std = train_label.mean(0, keepdim=True), train_label.std(0, keepdim=True)
        train_label, test_label = (train_label - mean) / std, (test_label - mean) / std

    return {
        "train_input": train_input.to(device),
        "test_input": test_input.to(device),
        "train_label": train_label.to(device),
        "test_label": test_label.to(device),
    }


def create_dataset_from_data(inputs, labels, train_ratio: float = 0.8, device="cpu") -> dict:
    """pykan's ``create_dataset_from_data``: a random ``train_ratio`` of the rows (drawn
    with ``np.random.choice`` from numpy's global generator, as pykan) for training, the
    rest for testing.

    ``inputs`` `[N, n_in]` and ``labels`` (N rows) are checked first: tensors, floating
    inputs, the same number of rows, finite (the error names the argument and the first
    bad row). Unlike pykan, the test rows keep their original order (pykan's comes from a
    Python set, which depends on hashing)."""
    check_split("inputs", inputs)
    check_label("labels", labels, inputs.shape[0], "inputs")
    if not 0.0 < float(train_ratio) < 1.0:
        raise ValueError(f"train_ratio: expected a number in (0, 1), got {train_ratio!r}")
    num = inputs.shape[0]
    train_id = np.random.choice(num, int(num * train_ratio), replace=False)
    test_id = np.setdiff1d(np.arange(num), train_id)
    return {
        "train_input": inputs[train_id].detach().to(device),
        "test_input": inputs[test_id].detach().to(device),
        "train_label": labels[train_id].detach().to(device),
        "test_label": labels[test_id].detach().to(device),
    }
