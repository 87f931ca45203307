"""Continual learning (Liu et al. 2024, arXiv 2404.19756, section 3.2, Fig. 3.4).

A 1-D target made of ``n_peaks`` narrow Gaussian peaks, ``sum_c exp(-sharpness (x - c)^2)``
with centres evenly spaced on ``[-1, 1]`` (-0.8, -0.4, 0, 0.4, 0.8 for five), is learned in
``n_peaks`` phases: phase ``p`` trains only on samples of region ``p`` (the centre
``+- 1/n_peaks``; the regions tile ``[-1, 1]``). A ``[1, 1]`` KAN with a fine grid keeps
the earlier peaks: a cubic B-spline basis is non-zero on ``k + 1`` grid intervals only, so
training on one region changes only the coefficients of the bases whose support touches
it and the function elsewhere stays exactly as it was. An MLP with about as many
parameters forgets them: all of its weights act everywhere.

As pykan's tutorial, the KAN trains only ``coef`` (``sp_trainable=False``,
``sb_trainable=False``): ``scale_sp`` and ``scale_base`` are one number per edge that
scales the function on all of ``[-1, 1]``, so training them on the current region would
rescale the earlier ones. Grid updates are off for the same reason (they would move the
knots to the current region).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from ..train.lbfgs import LBFGS
from ..nn.model import KAN

__all__ = ["ContinualRun", "ContinualResult", "peak_centers", "peaks", "region_bounds",
           "phase_data", "make_kan", "make_mlp", "continual_learning", "format_result",
           "plot_continual"]


class ContinualRun(NamedTuple):
    """One model's run: ``rmse[p, r]`` is the RMSE on region ``r`` after phase ``p``
    (`[n_peaks, n_peaks]`; ``r > p`` are regions not seen yet), ``curves[p]`` the
    prediction on the evaluation points after phase ``p`` (`[n_peaks, n_eval]`),
    ``n_params`` the number of trained parameters."""

    name: str
    n_params: int
    rmse: torch.Tensor
    curves: torch.Tensor


class ContinualResult(NamedTuple):
    """Evaluation points ``x_eval`` `[n_eval]`, target there ``y_eval`` `[n_eval]`, the
    regions' ``(lo, hi)`` bounds, each phase's training inputs ``x_train`` (a list of
    `[n_per_peak]`) and the two runs."""

    x_eval: torch.Tensor
    y_eval: torch.Tensor
    regions: list
    x_train: list
    kan: ContinualRun
    mlp: ContinualRun


def peak_centers(n_peaks: int) -> torch.Tensor:
    """Centres ``2 / n (i - n/2 + 1/2)``, ``i = 0 .. n-1``, `[n_peaks]` (float64): the
    midpoints of ``n`` equal regions of ``[-1, 1]``."""
    if isinstance(n_peaks, bool) or not isinstance(n_peaks, int) or n_peaks < 1:
        raise ValueError(f"n_peaks: expected a positive int, got {n_peaks!r}")
    return 2.0 / n_peaks * (torch.arange(n_peaks, dtype=torch.float64) - n_peaks / 2 + 0.5)


def peaks(x: torch.Tensor, n_peaks: int = 5, sharpness: float = 300.0) -> torch.Tensor:
    """The target ``sum_c exp(-sharpness (x - c)^2)`` over :func:`peak_centers`; x of any
    shape, result of the same shape. ``sharpness`` 300 (pykan's tutorial) gives peaks of
    standard deviation ``1/sqrt(600) ~ 0.04``, one tenth of a region for five peaks."""
    if sharpness <= 0:
        raise ValueError(f"sharpness: expected a positive number, got {sharpness!r}")
    centers = peak_centers(n_peaks).to(x.dtype)
    return torch.exp(-sharpness * (x[..., None] - centers) ** 2).sum(-1)


def region_bounds(n_peaks: int) -> list[tuple[float, float]]:
    """``(lo, hi)`` of each phase's region: centre ``+- 1/n_peaks``; they tile [-1, 1]."""
    return [(float(c) - 1.0 / n_peaks, float(c) + 1.0 / n_peaks) for c in peak_centers(n_peaks)]


def phase_data(n_peaks: int = 5, n_per_peak: int = 100, sharpness: float = 300.0,
               dtype: torch.dtype = torch.float64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One ``(x, y)`` pair per phase, each `[n_per_peak, 1]`: ``n_per_peak`` evenly spaced
    points over the phase's region (ends included, as pykan's tutorial) and the target."""
    if isinstance(n_per_peak, bool) or not isinstance(n_per_peak, int) or n_per_peak < 2:
        raise ValueError(f"n_per_peak: expected an int >= 2, got {n_per_peak!r}")
    data = []
    for lo, hi in region_bounds(n_peaks):
        x = torch.linspace(lo, hi, n_per_peak, dtype=dtype)[:, None]
        data.append((x, peaks(x, n_peaks, sharpness)))
    return data


def make_kan(grid: int = 200, k: int = 3, seed: int = 0,
             dtype: torch.dtype = torch.float64) -> KAN:
    """The paper's ``[1, 1]`` KAN (G=200, k=3, pykan tutorial's ``noise_scale=0.1``) with
    only ``coef`` trained (see the module docstring)."""
    return KAN(width=[1, 1], grid=grid, k=k, noise_scale=0.1, sp_trainable=False,
               sb_trainable=False, seed=seed, dtype=dtype)


def make_mlp(hidden=(64,), seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """An MLP ``1 -> hidden... -> 1`` with tanh activations, initialised under
    ``torch.manual_seed(seed)``. The default ``(64,)`` has 193 parameters, the KAN
    (G=200, k=3) trains 203."""
    sizes = [1, *[int(h) for h in hidden], 1]
    if any(s < 1 for s in sizes):
        raise ValueError(f"hidden: expected positive layer sizes, got {hidden!r}")
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1], dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def _train_mlp(mlp: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    """``steps`` full-batch steps of L-BFGS with the settings ``KAN.fit`` uses (pykan's:
    history 10, strong Wolfe, up to 20 iterations a step), so both models train alike."""
    optimizer = LBFGS(mlp.parameters(), lr=1.0, history_size=10, line_search_fn="strong_wolfe",
                      tolerance_grad=1e-32, tolerance_change=1e-32, tolerance_ys=1e-32)

    def closure():
        optimizer.zero_grad()
        loss = torch.mean((mlp(x) - y) ** 2)
        loss.backward()
        return loss

    for _ in range(steps):
        optimizer.step(closure)


def _region_rmse(pred: torch.Tensor, y: torch.Tensor, masks: list) -> torch.Tensor:
    return torch.stack([torch.sqrt(torch.mean((pred[m] - y[m]) ** 2)) for m in masks])


def continual_learning(n_peaks: int = 5, n_per_peak: int = 100, steps: int = 50,
                       grid: int = 200, k: int = 3, mlp_hidden=(64,), n_eval: int = 1000,
                       sharpness: float = 300.0, seed: int = 0,
                       dtype: torch.dtype = torch.float64) -> ContinualResult:
    """Train a KAN (:func:`make_kan`) and an MLP (:func:`make_mlp`) phase by phase, each
    phase ``steps`` L-BFGS steps on that region's :func:`phase_data` only (the KAN with
    ``KAN.fit(update_grid=False)``), and measure both on every region after every phase
    on ``n_eval`` evenly spaced points of [-1, 1] (a point on a shared region end belongs
    to the region on its right)."""
    regions = region_bounds(n_peaks)  # checks n_peaks
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected a positive int, got {steps!r}")
    if isinstance(n_eval, bool) or not isinstance(n_eval, int) or n_eval < 2 * n_peaks:
        raise ValueError(f"n_eval: expected an int >= 2 * n_peaks, got {n_eval!r}")
    data = phase_data(n_peaks, n_per_peak, sharpness, dtype)
    x_eval = torch.linspace(-1.0, 1.0, n_eval, dtype=dtype)
    y_eval = peaks(x_eval, n_peaks, sharpness)
    # Region r holds lo <= x < hi (the last one also x = 1): every point in one region.
    masks = [(x_eval >= lo) & ((x_eval < hi) if r < n_peaks - 1 else (x_eval <= hi))
             for r, (lo, hi) in enumerate(regions)]

    kan, mlp = make_kan(grid, k, seed, dtype), make_mlp(mlp_hidden, seed, dtype)
    runs = {}
    for name, model in (("KAN", kan), ("MLP", mlp)):
        rmse, curves = [], []
        for x, y in data:
            if name == "KAN":
                dataset = {"train_input": x, "train_label": y, "test_input": x, "test_label": y}
                model.fit(dataset, opt="LBFGS", steps=steps, update_grid=False, progress=False)
            else:
                _train_mlp(model, x, y, steps)
            with torch.no_grad():
                pred = model(x_eval[:, None])[:, 0]
            curves.append(pred)
            rmse.append(_region_rmse(pred, y_eval, masks))
        # The KAN's symbolic branch has trainable affines (as pykan's) that take no part
        # while no edge is symbolic: count the spline layer's parameters only.
        counted = model.act_fun if name == "KAN" else model
        n_params = sum(p.numel() for p in counted.parameters() if p.requires_grad)
        runs[name] = ContinualRun(name, n_params, torch.stack(rmse), torch.stack(curves))
    return ContinualResult(x_eval, y_eval, regions, [x[:, 0] for x, _ in data],
                           runs["KAN"], runs["MLP"])


def plot_continual(result: ContinualResult, path) -> None:
    """Write a PNG like the paper's Fig. 3.4: one column per phase; rows: the data shown
    in that phase, the KAN's prediction after it, the MLP's (needs matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("plot_continual needs matplotlib: pip install pykan-fast[plot]") from error
    n = len(result.regions)
    x, y = result.x_eval.numpy(), result.y_eval.numpy()
    fig, axes = plt.subplots(3, n, figsize=(3 * n, 6), sharex=True, sharey=True, squeeze=False)
    for p in range(n):
        xs = result.x_train[p]
        axes[0, p].plot(x, y, color="black", alpha=0.15)
        axes[0, p].scatter(xs.numpy(), peaks(xs, n).numpy(), color="black", s=2)
        axes[0, p].set_title(f"phase {p + 1}")
        for row, run in ((1, result.kan), (2, result.mlp)):
            axes[row, p].plot(x, y, color="black", alpha=0.15)
            axes[row, p].plot(x, run.curves[p].numpy(), color="tab:blue" if row == 1 else "tab:red")
            axes[row, p].axvspan(*result.regions[p], color="gold", alpha=0.15)
    axes[0, 0].set_ylabel("data")
    axes[1, 0].set_ylabel(f"KAN ({result.kan.n_params} params)")
    axes[2, 0].set_ylabel(f"MLP ({result.mlp.n_params} params)")
    for ax in axes.flat:
        ax.set_xlim(-1, 1)
        ax.set_ylim(-0.5, 1.5)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _format_rows(run: ContinualRun) -> list[str]:
    """Text table of ``run.rmse``: one row per phase, one column per region."""
    n = run.rmse.shape[1]
    lines = [f"{run.name} ({run.n_params} trained parameters): RMSE per region after each phase",
             "phase " + "".join(f"{'region ' + str(r + 1):>11}" for r in range(n))]
    for p in range(run.rmse.shape[0]):
        lines.append(f"{p + 1:>5} " + "".join(f"{float(v):>11.2e}" for v in run.rmse[p]))
    return lines


def format_result(result: ContinualResult) -> str:
    """Both runs' RMSE tables, then the error on region 1 after the last phase."""
    lines = _format_rows(result.kan) + [""] + _format_rows(result.mlp)
    lines.append("")
    lines.append(f"region 1 after the last phase: KAN {float(result.kan.rmse[-1, 0]):.2e}, "
                 f"MLP {float(result.mlp.rmse[-1, 0]):.2e} (predicting 0 there: "
                 f"{math.sqrt(float(torch.mean(result.y_eval[result.x_eval < result.regions[0][1]] ** 2))):.2e})")
    return "\n".join(lines)
