"""Pure-torch reference: pykan 0.2.8's mathematics to the letter.

The ground truth of every kernel test, and the ``backend="torch"`` implementation. It
builds the dense ``[batch, in, G+k]`` basis exactly as pykan's ``B_batch`` does.
"""

from __future__ import annotations

import torch

__all__ = ["b_batch", "coef2curve", "kan_layer_reference", "resolve_base_fun"]


def b_batch(x: torch.Tensor, grid: torch.Tensor, k: int) -> torch.Tensor:
    """B-spline bases of order ``k``, as pykan's ``spline.B_batch``.

    x: `[B, in]`, grid: `[in, n_knots]` -> `[B, in, n_knots - k - 1]`.
    Order 0 is half-open (``t_j <= x < t_{j+1}``); each order's 0/0 terms become 0 through
    ``nan_to_num``, as in pykan.
    """
    x = x.unsqueeze(2)
    g = grid.unsqueeze(0)
    value = ((x >= g[:, :, :-1]) * (x < g[:, :, 1:])).to(x.dtype)
    for p in range(1, k + 1):
        value = (x - g[:, :, : -(p + 1)]) / (g[:, :, p:-1] - g[:, :, : -(p + 1)]) * value[
            :, :, :-1
        ] + (g[:, :, p + 1 :] - x) / (g[:, :, p + 1 :] - g[:, :, 1:(-p)]) * value[:, :, 1:]
        value = torch.nan_to_num(value)
    return value


def coef2curve(x: torch.Tensor, grid: torch.Tensor, coef: torch.Tensor, k: int) -> torch.Tensor:
    """Spline values per edge, as pykan: x `[B, in]`, coef `[in, out, G+k]` -> `[B, in, out]`."""
    return torch.einsum("ijk,jlk->ijl", b_batch(x, grid, k), coef)


def _zero(x: torch.Tensor) -> torch.Tensor:
    return x * 0


_NAMED_BASE_FUNS = {
    "silu": torch.nn.functional.silu,
    "identity": lambda x: x,
    "zero": _zero,
}


def resolve_base_fun(base_fun):
    """A base-function name ('silu', 'identity', 'zero') or callable -> callable."""
    if callable(base_fun):
        return base_fun
    if isinstance(base_fun, str) and base_fun in _NAMED_BASE_FUNS:
        return _NAMED_BASE_FUNS[base_fun]
    raise ValueError(
        f"base_fun: expected one of {sorted(_NAMED_BASE_FUNS)} or a callable, got {base_fun!r}"
    )


def kan_layer_reference(x, grid, coef, scale_base, scale_sp, mask, k, base_fun="silu"):
    """pykan's ``KANLayer.forward`` output ``y`` `[B, out]` (dense, slow, exact)."""
    base = resolve_base_fun(base_fun)(x)
    spline = coef2curve(x, grid, coef, k)
    y = scale_base[None, :, :] * base[:, :, None] + scale_sp[None, :, :] * spline
    y = mask[None, :, :] * y
    return torch.sum(y, dim=1)
