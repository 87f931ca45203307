"""The KAN paper's Feynman-equation protocol (section 3.3) on a handful of equations:
for each, train a KAN with sparsity regularisation, prune it, train on, refine its grid
and train again; train an MLP on the same data; report both test RMSEs and the pruned
KAN's shape. ``--pykan`` runs the same protocol on pykan 0.2.8 (same data, same calls
through pykan's namespace) and prints both times.

    python examples/feynman.py [--equations 2 6 20 27] [--steps 20] [--pykan | --pykan-only]

Both sides run through pykan's API (``pykan_fast.kan`` / ``kan``), so the code below is
the same for both; only the package differs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pykan_fast as pf  # noqa: E402
from pykan_fast.experiments.feynman import get_feynman_dataset  # noqa: E402


def datasets(equations, seed: int = 0) -> dict:
    """Equation number -> (name, dataset): 1000 train and 1000 test samples in range."""
    out = {}
    for eq in equations:
        symbols, expr, f, ranges = get_feynman_dataset(eq)
        out[eq] = (str(expr), pf.create_dataset(f, n_var=len(symbols), ranges=ranges, seed=seed))
    return out


def rmse(model, dataset) -> float:
    with torch.no_grad():
        return float(torch.sqrt(torch.mean((model(dataset["test_input"]) - dataset["test_label"]) ** 2)))


@contextlib.contextmanager
def quiet():
    """pykan's fit prints a tqdm bar per call: keep the report readable."""
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        yield


def protocol(package: str, data: dict, steps: int, hidden: int = 5, mlp_width: int = 32,
             report=None) -> dict:
    """Run the protocol through ``package`` ('pykan_fast.kan' or 'kan'); per equation:
    KAN and MLP test RMSE, pruned width, seconds (``report(eq, row)`` after each)."""
    kan = importlib.import_module(package)
    MLP = importlib.import_module(package + ".MLP").MLP
    results = {}
    for eq, (_, dataset) in data.items():
        n = dataset["train_input"].shape[1]
        np.random.seed(0)
        start = time.perf_counter()
        with quiet():
            model = kan.KAN(width=[n, hidden, 1], grid=3, k=3, seed=0, auto_save=False)
            model.fit(dataset, steps=steps, lamb=1e-3)
            model = model.prune()
            model.fit(dataset, steps=steps)
            model = model.refine(10)
            model.fit(dataset, steps=steps)
        kan_seconds = time.perf_counter() - start
        start = time.perf_counter()
        with quiet():
            mlp = MLP(width=[n, mlp_width, mlp_width, 1], seed=0)
            mlp.fit(dataset, steps=3 * steps)
        mlp_seconds = time.perf_counter() - start
        results[eq] = {"kan_rmse": rmse(model, dataset), "mlp_rmse": rmse(mlp, dataset),
                       "shape": [w[0] if isinstance(w, (list, tuple)) else w for w in model.width],
                       "kan_s": kan_seconds, "mlp_s": mlp_seconds}
        if report is not None:
            report(eq, package, results[eq])
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--equations", type=int, nargs="+", default=[2, 6, 20, 27])
    parser.add_argument("--steps", type=int, default=20, help="L-BFGS steps per KAN stage "
                        "(the MLP gets 3x as many)")
    parser.add_argument("--pykan", action="store_true", help="also run pykan 0.2.8")
    parser.add_argument("--pykan-only", action="store_true", help="run pykan 0.2.8 only")
    args = parser.parse_args(argv)
    data = datasets(args.equations)
    # torch.optim imports torch._dynamo on the first optimizer (seconds): not timed.
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sides = ["kan"] if args.pykan_only else ["pykan_fast.kan"] + (["kan"] if args.pykan else [])
    print(f"steps per KAN stage: {args.steps}, torch threads: {torch.get_num_threads()}")
    print(f"{'eq':>3} {'formula':<42} {'side':<14} {'KAN rmse':>9} {'MLP rmse':>9} "
          f"{'pruned':<12} {'KAN s':>7} {'MLP s':>7}", flush=True)

    def report(eq, side, r):
        print(f"{eq:>3} {data[eq][0][:42]:<42} {side:<14} {r['kan_rmse']:>9.2e} "
              f"{r['mlp_rmse']:>9.2e} {str(r['shape']):<12} {r['kan_s']:>7.1f} "
              f"{r['mlp_s']:>7.1f}", flush=True)

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:  # pykan writes ./model and ./figures
        cwd = os.getcwd()
        os.chdir(tmp)
        os.makedirs("model")  # pykan's prune and refine log there even without auto_save
        try:
            for side in sides:
                runs[side] = protocol(side, data, args.steps, report=report)
        finally:
            os.chdir(cwd)
    for side in sides:
        total = sum(r["kan_s"] + r["mlp_s"] for r in runs[side].values())
        print(f"total {side}: {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
