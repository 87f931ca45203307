"""The Pareto frontier of (complexity, loss) pairs: pykan 0.2.8's
``kan.experiment.pareto_frontier``."""

from __future__ import annotations

import numpy as np

__all__ = ["pareto_frontier"]


def pareto_frontier(x, y):
    """``(x_pf, y_pf, ids)``: the points no other point matches or beats in both
    coordinates (a point dominated only by itself), in input order."""
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x, y: expected two 1-D arrays of one length, got {x.shape}, {y.shape}")
    dominated_by = np.sum((x[:, None] <= x[None, :]) & (y[:, None] <= y[None, :]), axis=0)
    ids = np.where(dominated_by == 1)[0]
    return x[ids], y[ids], ids
