"""Regression on scikit-learn's bundled diabetes data (442 patients, 10 standardised
features, disease progression after a year; no download): a KAN trained by mini-batch Adam
over a DataLoader with ``fit``, early stopping on a validation split restoring the best
parameters; prints the test RMSE and R^2 against a linear least-squares baseline.

    python examples/diabetes.py
    python examples/diabetes.py --epochs 100 --grid 3

Needs scikit-learn (``pip install pykan-fast[compat]``) for the data only.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

import pykan_fast as pf
from pykan_fast.train import EarlyStopping
from pykan_fast.train.fit import fit


def load(seed: int = 0, dtype=torch.float64):
    """Train / validation / test splits (60/20/20) of (x, y): features scaled to about
    [-1, 1] and the target standardised, both with the training split's statistics."""
    from sklearn.datasets import load_diabetes  # the data only; lazily

    data = load_diabetes()
    x = torch.as_tensor(data.data, dtype=dtype)
    y = torch.as_tensor(data.target, dtype=dtype)[:, None]
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n = len(y)
    parts = order[: int(0.6 * n)], order[int(0.6 * n): int(0.8 * n)], order[int(0.8 * n):]
    train = parts[0]
    x_scale = x[train].abs().amax(0)
    y_mean, y_std = y[train].mean(), y[train].std()
    return [(x[p] / x_scale, (y[p] - y_mean) / y_std) for p in parts], float(y_std)


def r2(pred, y) -> float:
    return float(1 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def run(epochs: int = 200, grid: int = 3, hidden: int = 4, seed: int = 0, progress: bool = False):
    (train, val, test), y_std = load(seed)
    torch.manual_seed(seed)
    loader = DataLoader(TensorDataset(*train), batch_size=32, shuffle=True)
    model = pf.KAN([10, hidden, 1], grid=grid, k=3, seed=seed, dtype=torch.float64)
    start = time.perf_counter()
    history = fit(model, loader, epochs=epochs, optimizer="Adam", lr=1e-2,
                  eval_loader=DataLoader(TensorDataset(*val), batch_size=256),
                  early_stopping=EarlyStopping(patience=20), progress=progress)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        pred = model(test[0])
    ones = torch.ones(len(train[0]), 1, dtype=train[0].dtype)
    coef = torch.linalg.lstsq(torch.cat([train[0], ones], 1), train[1]).solution
    linear = torch.cat([test[0], torch.ones(len(test[0]), 1, dtype=test[0].dtype)], 1) @ coef
    return dict(rmse=float(torch.sqrt(((pred - test[1]) ** 2).mean())) * y_std,
                r2=r2(pred, test[1]), linear_r2=r2(linear, test[1]),
                linear_rmse=float(torch.sqrt(((linear - test[1]) ** 2).mean())) * y_std,
                epochs=len(history["epoch_loss"]), seconds=seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--grid", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    r = run(args.epochs, args.grid, args.hidden, args.seed, progress=True)
    print(f"diabetes: KAN [10, {args.hidden}, 1] G={args.grid}, {r['epochs']} epochs "
          f"(early stopping), {r['seconds']:.2f} s: test RMSE {r['rmse']:.1f}, R^2 {r['r2']:.3f}; "
          f"linear least squares: RMSE {r['linear_rmse']:.1f}, R^2 {r['linear_r2']:.3f}")


if __name__ == "__main__":
    main()
