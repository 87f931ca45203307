"""pykan 0.2.8's ``kan.spline``: ``B_batch``, ``coef2curve``, ``curve2coef``,
``extend_grid`` with pykan's signatures, on pykan_fast's implementations
(:mod:`pykan_fast.ops.reference`, :mod:`pykan_fast.ops.grid`)."""

from __future__ import annotations

import torch

from ..ops import grid as _grid
from ..ops import reference as _reference

__all__ = ["B_batch", "coef2curve", "curve2coef", "extend_grid"]


def B_batch(x: torch.Tensor, grid: torch.Tensor, k: int = 0, extend: bool = True,
            device="cpu") -> torch.Tensor:
    """B-spline bases of order ``k``: x `[B, in]`, grid `[in, n]` -> `[B, in, n-k-1]`.
    ``extend`` and ``device`` are accepted for pykan's signature (pykan ignores them)."""
    return _reference.b_batch(x, grid, k)


def coef2curve(x_eval: torch.Tensor, grid: torch.Tensor, coef: torch.Tensor, k: int,
               device="cpu") -> torch.Tensor:
    """Spline values `[B, in, out]` from coef `[in, out, G+k]`."""
    return _reference.coef2curve(x_eval, grid, coef, k)


def curve2coef(x_eval: torch.Tensor, y_eval: torch.Tensor, grid: torch.Tensor, k: int) -> torch.Tensor:
    """Least-squares coef `[in, out, G+k]` fitting y_eval `[B, in, out]` at x_eval `[B, in]`."""
    return _grid.curve2coef(x_eval, y_eval, grid, k)


def extend_grid(grid: torch.Tensor, k_extend: int = 0) -> torch.Tensor:
    """``k_extend`` knots added on each side at the mean step."""
    return _grid.extend_grid(grid, k_extend)
