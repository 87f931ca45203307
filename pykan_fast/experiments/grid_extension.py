"""Experiments from the KAN paper, as functions the CLI demo calls.

:func:`grid_extension` is the paper's grid-extension run (Liu et al. 2024, Fig. 2.3):
fit ``f(x, y) = exp(sin(pi x) + y^2)`` with a ``[2, 5, 1]`` KAN, then extend its grid
(``refine``) step by step, training with L-BFGS after each extension; the test RMSE
falls roughly as ``G^-4`` (k = 3) until the data or the arithmetic floor stops it.

:func:`symbolic_regression` is pykan's "hello KAN": train a sparse ``[2, 5, 1]`` KAN on
the same function, prune it, extend its grid, fix every edge to a library function
(``auto_symbolic``), train the functions' affine parameters and read the formula.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import torch

from ..nn.model import KAN
from ..ops.threads import model_work, threads_for
from ..train.dataset import create_dataset

__all__ = ["GridRow", "grid_extension", "target_function", "plot_grid_extension",
           "SymbolicRun", "symbolic_regression"]


class GridRow(NamedTuple):
    """One grid of :func:`grid_extension`: RMSE after training, and the wall time of the
    extension plus training."""

    grid: int
    train_rmse: float
    test_rmse: float
    seconds: float


def target_function(x: torch.Tensor) -> torch.Tensor:
    """``exp(sin(pi x_0) + x_1^2)``: x `[N, 2]` -> `[N, 1]`."""
    return torch.exp(torch.sin(math.pi * x[:, [0]]) + x[:, [1]] ** 2)


def _rmse(model: KAN, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(torch.sqrt(torch.mean((model(x) - y) ** 2)))


def grid_extension(grids=(3, 5, 10, 20, 50, 100, 200), steps: int = 200,
                   train_num: int = 1000, test_num: int = 1000, backend: str | None = None,
                   progress: bool = True, width=(2, 5, 1), k: int = 3, seed: int = 1,
                   dtype: torch.dtype = torch.float64, stop_grid_update_step: int = 30,
                   data_seed: int = 0, on_row=None) -> list[GridRow]:
    """Train a KAN on ``target_function`` at each grid size in turn; one row per grid.

    The first grid builds ``KAN(width, grid=grids[0], k, seed)``; each later one is
    ``model.refine(G)`` (fitted, as in pykan, on the last inputs the model saw). Then
    ``steps`` L-BFGS steps (pykan's ``fit`` defaults, grid updates until
    ``stop_grid_update_step``, as the pykan tutorial). float64 by default: measured with
    the defaults, float32 bottoms out at a test RMSE of 9e-5 (G=20..50) and a train RMSE
    of 8e-6 (G=200), float64 at 4e-5 and 1e-8. RMSE is measured on the full train and
    test sets after training; ``seconds`` is the wall time of the extension and training.
    ``on_row(row)`` is called after each grid (the CLI prints a line per stage with it).
    Small models train on one thread (:func:`pykan_fast.ops.threads.threads_for`).
    """
    grids = [int(g) for g in grids]
    if not grids or any(g < 1 for g in grids):
        raise ValueError(f"grids: expected positive grid sizes, got {grids!r}")
    dataset = create_dataset(target_function, n_var=2, train_num=train_num, test_num=test_num,
                             seed=data_seed, dtype=dtype)
    rows = []
    model = None
    for grid in grids:
        start = time.perf_counter()
        extend = model is not None
        if not extend:
            model = KAN(list(width), grid=grid, k=k, seed=seed, dtype=dtype, backend=backend)
        with threads_for(model_work(model, train_num)):
            if extend:
                model = model.refine(grid)
            model.fit(dataset, opt="LBFGS", steps=steps,
                      stop_grid_update_step=stop_grid_update_step, progress=progress)
        seconds = time.perf_counter() - start
        rows.append(GridRow(grid, _rmse(model, dataset["train_input"], dataset["train_label"]),
                            _rmse(model, dataset["test_input"], dataset["test_label"]), seconds))
        if on_row is not None:
            on_row(rows[-1])
    return rows


def plot_grid_extension(rows, path, title: str | None = None) -> None:
    """Write a log-log PNG of train/test RMSE against the grid size, with a ``G^-4``
    guide through the first test point (needs matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("plot_grid_extension needs matplotlib: pip install pykan-fast[plot]") from error
    rows = [GridRow(*r) for r in rows]
    grids = [r.grid for r in rows]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(grids, [r.train_rmse for r in rows], "o-", label="train")
    ax.plot(grids, [r.test_rmse for r in rows], "s-", label="test")
    g0, e0 = grids[0], rows[0].test_rmse
    ax.plot(grids, [e0 * (g / g0) ** -4 for g in grids], "k--", lw=1, label=r"$G^{-4}$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("grid size G")
    ax.set_ylabel("RMSE")
    ax.set_title(title or "KAN [2,5,1] grid extension")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


class SymbolicRun(NamedTuple):
    """What :func:`symbolic_regression` found: the final (fully symbolic) ``model``, its
    ``width`` after pruning, the sympy ``formula`` of its output and its ``variables``,
    the formula's largest absolute error against :func:`target_function` on the test
    inputs (``max_error``), and the test RMSE of the pruned spline model before
    ``auto_symbolic`` (``spline_rmse``)."""

    model: KAN
    width: list
    formula: object
    variables: list
    max_error: float
    spline_rmse: float


def symbolic_regression(width=(2, 5, 1), grid: int = 5, fine_grid: int = 10, steps: int = 30,
                        lamb: float = 0.01, lib=("x", "x^2", "exp", "sin"),
                        train_num: int = 1000, test_num: int = 1000, fit_samples: int = 300,
                        seed: int = 0, data_seed: int = 0, prune: bool = True,
                        dtype: torch.dtype = torch.float64, backend: str | None = None,
                        progress: bool = True) -> SymbolicRun:
    """Recover ``exp(sin(pi x) + y^2)`` as pykan's tutorial does (needs sympy).

    ``KAN(width, grid, seed)`` trained ``steps`` L-BFGS steps with the sparsity
    regulariser (``lamb``); pruned (``prune()``: nodes, then edges) to the nodes that
    matter; trained again; refined to ``fine_grid`` and trained; then ``auto_symbolic``
    over ``lib``, fitted on the first ``fit_samples`` training inputs (the grid search
    costs ``B * 10^4`` evaluations per function and edge); then ``steps`` steps more on
    the functions' affine parameters, which brings a right guess to machine precision.
    """
    dataset = create_dataset(target_function, n_var=2, train_num=train_num, test_num=test_num,
                             seed=data_seed, dtype=dtype)
    fit = dict(opt="LBFGS", steps=steps, progress=progress)
    model = KAN(list(width), grid=grid, k=3, seed=seed, dtype=dtype, backend=backend)
    with threads_for(model_work(model, train_num)):
        model.fit(dataset, lamb=lamb, **fit)
        if prune:
            model = model.prune()
            model.fit(dataset, **fit)
        model = model.refine(fine_grid)
        model.fit(dataset, **fit)
        spline_rmse = _rmse(model, dataset["test_input"], dataset["test_label"])
        model(dataset["train_input"][:fit_samples])
        model.auto_symbolic(lib=list(lib), verbose=0)
        model.fit(dataset, update_grid=False, **fit)
    formulas, variables = model.symbolic_formula()
    import sympy  # symbolic_formula has checked it is there

    fn = sympy.lambdify(variables, formulas[0], "numpy")
    x = dataset["test_input"].detach().cpu().double()
    got = torch.as_tensor(fn(*[x[:, i].numpy() for i in range(x.shape[1])]), dtype=torch.float64)
    max_error = float((got - target_function(x)[:, 0]).abs().max())
    return SymbolicRun(model, [list(w) for w in model.width], formulas[0], variables,
                       max_error, spline_rmse)
