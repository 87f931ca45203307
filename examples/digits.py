"""Classify scikit-learn's bundled digits (1797 8x8 images, 10 classes; no download) with a
KAN and with an MLP of about the same number of parameters, both trained by mini-batch
Adam over a DataLoader with ``fit``; prints test accuracy and training time of each.

    python examples/digits.py                 # 30 epochs, KAN [64, 16, 10], G=5
    python examples/digits.py --epochs 5 --hidden 8

Needs scikit-learn (``pip install pykan-fast[compat]``) for the data only.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

import pykan_fast as pf
from pykan_fast.train import accuracy
from pykan_fast.train.fit import fit


def load(seed: int = 0, test_fraction: float = 0.2, dtype=torch.float32):
    """(x_train, y_train, x_test, y_test): pixels 0..16 scaled to [-1, 1] (the KAN's
    initial grid range), a random split of the rows."""
    from sklearn.datasets import load_digits  # the data only; lazily, as the example's one extra

    digits = load_digits()
    x = torch.as_tensor(digits.data, dtype=dtype) / 8 - 1
    y = torch.as_tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(y) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def trainable(model) -> int:
    """Trained parameters; for a KAN those of its splines (coef, scale_base, scale_sp), not
    the symbolic branch's affines, which train only on edges fixed to a formula."""
    return sum(p.numel() for name, p in model.named_parameters()
               if p.requires_grad and not name.startswith("symbolic_fun."))


def make_kan(hidden: int = 16, grid: int = 5, seed: int = 0, dtype=torch.float32):
    return pf.KAN([64, hidden, 10], grid=grid, k=3, seed=seed, dtype=dtype)


def make_mlp(n_params: int, seed: int = 0, dtype=torch.float32):
    """64 -> h -> 10 with SiLU, h chosen so the parameter count is nearest ``n_params``
    (65 h + 10 (h + 1) parameters)."""
    hidden = max(1, round((n_params - 10) / 75))
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.SiLU(),
                               torch.nn.Linear(hidden, 10)).to(dtype)


def train(model, data, epochs: int = 30, lr: float = 1e-2, batch: int = 64, seed: int = 0,
          progress: bool = False) -> dict:
    """Mini-batch Adam with cross-entropy; returns test accuracy, seconds and history."""
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)  # the loader's shuffles
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=batch, shuffle=True)
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=512)
    start = time.perf_counter()
    history = fit(model, loader, epochs=epochs, optimizer="Adam", lr=lr,
                  loss_fn=torch.nn.functional.cross_entropy, eval_loader=test_loader,
                  metrics=[accuracy], progress=progress)
    seconds = time.perf_counter() - start
    return dict(accuracy=history["eval_accuracy"][-1], seconds=seconds, history=history,
                params=trainable(model))


def compare(epochs: int = 30, hidden: int = 16, grid: int = 5, seed: int = 0,
            progress: bool = False) -> dict:
    """KAN and MLP on the same split and batches: {"kan": ..., "mlp": ...}."""
    data = load(seed)
    kan = make_kan(hidden, grid, seed)
    mlp = make_mlp(trainable(kan), seed)
    return {"kan": train(kan, data, epochs, seed=seed, progress=progress),
            "mlp": train(mlp, data, epochs, seed=seed, progress=progress)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=16, help="KAN hidden width")
    parser.add_argument("--grid", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = compare(args.epochs, args.hidden, args.grid, args.seed, progress=True)
    print(f"digits, {args.epochs} epochs of mini-batch Adam (batch 64, lr 1e-2), "
          f"fit's thread choice (1 thread for this size), machine {torch.get_num_threads()} threads")
    for name, r in results.items():
        print(f"{name.upper():>4}: {r['params']:>6} parameters, test accuracy {r['accuracy']:.4f}, "
              f"{r['seconds']:.2f} s")


if __name__ == "__main__":
    main()
