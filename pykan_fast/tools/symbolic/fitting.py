"""Fitting ``c * f(a * x + b) + d`` to an edge, and ranking library functions by it
(pykan 0.2.8's ``utils.fit_params`` and the scoring of ``MultKAN.suggest_symbolic``)."""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import torch

from .library import SYMBOLIC_LIB, get_symbolic

__all__ = ["fit_params", "Candidate", "rank_functions"]

# Values of f(a x + b) alive at once in the grid search. pykan evaluates the whole
# [B, grid_number, grid_number] block (10^4 x B values, ~40 MB at B = 1000), so each of its
# ~10 elementwise passes and reductions streams from memory; chunks of ~4 MB of the
# flattened (a, b) pairs stay in the last-level cache (2.7x faster on a Zen 3).
_CHUNK_BYTES = 1 << 22
# Chunks start at multiples of this many (a, b) pairs: torch sums [B, P] over B with
# blocks of 4 SIMD vectors of columns and a different order on the last P mod 4 * lanes
# columns, so column blocks aligned as in the whole block keep pykan's bits per cell.
_PAIR_ALIGN = 128


def _check_xy(x, y):
    if not isinstance(x, torch.Tensor) or x.dim() != 1:
        raise ValueError(f"x: expected a 1-D tensor, got {getattr(x, 'shape', type(x).__name__)}")
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        raise ValueError(f"y: expected a 1-D tensor of x's shape {list(x.shape)}, got "
                         f"{getattr(y, 'shape', type(y).__name__)}")
    if x.shape[0] < 2:
        raise ValueError(f"x: expected at least 2 samples, got {x.shape[0]}")


def _r2_grid(x, y, fun, a_, b_):
    """pykan's r2 of every (a, b) pair, `[len(a_), len(b_)]`, in cache-sized chunks of
    the flattened pairs.

    ``sum((f - mean f) * (y - mean y))^2 / (sum((f - mean f)^2) * sum((y - mean y)^2)
    + 1e-4)``, NaN -> 0 (the +1e-4 makes r2 depend on the scale of y). The same
    elementwise operations and reductions as pykan (in place where pykan allocates), on
    column blocks aligned as in pykan's whole block, so the same bits: along flat ridges
    of the search (c * exp(a x + b), where b trades against c) rounding alone picks the
    cell, and only the same arithmetic picks pykan's.
    """
    y_mean = torch.mean(y, dim=[0], keepdim=True)
    yc = (y - y_mean)[:, None]
    y_ss = torch.sum(yc ** 2, dim=0)
    a_grid, b_grid = torch.meshgrid(a_, b_, indexing="ij")
    a_flat, b_flat = a_grid.reshape(-1), b_grid.reshape(-1)
    pairs = a_flat.shape[0]
    chunk = _CHUNK_BYTES // (x.element_size() * max(1, x.shape[0]))
    chunk = max(_PAIR_ALIGN, chunk // _PAIR_ALIGN * _PAIR_ALIGN)
    out = torch.empty(pairs, dtype=x.dtype, device=x.device)
    for p0 in range(0, pairs, chunk):
        pre = a_flat[None, p0:p0 + chunk] * x[:, None]
        pre += b_flat[None, p0:p0 + chunk]
        post_fun = fun(pre)
        if post_fun is pre or not post_fun.is_contiguous():
            post_fun = post_fun.clone(memory_format=torch.contiguous_format)
        del pre
        post_fun -= torch.mean(post_fun, dim=[0], keepdim=True)
        numerator = torch.sum(post_fun * yc, dim=0) ** 2
        denominator = torch.sum(post_fun.square_(), dim=0) * y_ss
        out[p0:p0 + chunk] = torch.nan_to_num(numerator / (denominator + 1e-4))
    return out.view(a_.shape[0], b_.shape[0])


@torch.no_grad()
def fit_params(x: torch.Tensor, y: torch.Tensor, fun: Callable, a_range=(-10, 10),
               b_range=(-10, 10), grid_number: int = 101, iteration: int = 3,
               verbose: bool = True, device=None):
    """Fit ``y ~ c * fun(a * x + b) + d`` as pykan's ``fit_params``.

    x, y: `[B]`. A ``grid_number x grid_number`` grid search over (a, b) maximising pykan's
    r2 (the squared correlation of ``fun(a x + b)`` with y, its denominator ``+ 1e-4``),
    zoomed ``iteration`` times around the best cell; then c, d by least squares
    (pykan: sklearn's LinearRegression; here its closed form, computed in float64).
    Returns ``(params, r2)``: params `[4]` = (a, b, c, d) in x's dtype, r2 a 0-d tensor.
    ``device`` is accepted for pykan's signature; x's device is used.
    """
    _check_xy(x, y)
    if not callable(fun):
        raise TypeError(f"fun: expected a callable, got {type(fun).__name__}")
    if isinstance(grid_number, bool) or not isinstance(grid_number, int) or grid_number < 3:
        raise ValueError(f"grid_number: expected an int >= 3, got {grid_number!r}")
    if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 1:
        raise ValueError(f"iteration: expected a positive int, got {iteration!r}")
    for name, rng in (("a_range", a_range), ("b_range", b_range)):
        if len(rng) != 2 or not float(rng[0]) < float(rng[1]):
            raise ValueError(f"{name}: expected (low, high) with low < high, got {rng!r}")
    x, y = x.detach(), y.detach().to(x.dtype)
    for step in range(iteration):
        a_ = torch.linspace(a_range[0], a_range[1], steps=grid_number, device=x.device, dtype=x.dtype)
        b_ = torch.linspace(b_range[0], b_range[1], steps=grid_number, device=x.device, dtype=x.dtype)
        r2 = _r2_grid(x, y, fun, a_, b_)
        best_id = int(torch.argmax(r2))
        a_id, b_id = best_id // grid_number, best_id % grid_number
        if a_id in (0, grid_number - 1) or b_id in (0, grid_number - 1):
            if step == 0 and verbose:
                print("Best value at boundary.")
            if a_id == 0:
                a_range = [a_[0], a_[1]]
            if a_id == grid_number - 1:
                a_range = [a_[-2], a_[-1]]
            if b_id == 0:
                b_range = [b_[0], b_[1]]
            if b_id == grid_number - 1:
                b_range = [b_[-2], b_[-1]]
        else:
            a_range = [a_[a_id - 1], a_[a_id + 1]]
            b_range = [b_[b_id - 1], b_[b_id + 1]]
    a_best, b_best = a_[a_id], b_[b_id]
    r2_best = r2[a_id, b_id]
    if verbose:
        print(f"r2 is {r2_best}")
        if r2_best < 0.9:
            print("r2 is not very high, please double check if you are choosing the correct "
                  "symbolic function.")
    feature = torch.nan_to_num(fun(a_best * x + b_best)).double()
    target = y.double()
    fc = feature - feature.mean()
    var = torch.sum(fc * fc)
    if var > 0:
        c_best = torch.sum(fc * (target - target.mean())) / var
    else:  # a constant feature (the '0' function): sklearn's minimum-norm c = 0
        c_best = torch.zeros((), dtype=torch.float64, device=x.device)
    d_best = target.mean() - c_best * feature.mean()
    params = torch.stack([a_best, b_best, c_best.to(x.dtype), d_best.to(x.dtype)])
    return params, r2_best


class Candidate(NamedTuple):
    """One ranked library function: its fit quality ``r2``, complexity ``c``, the
    combined ``loss`` (lower is better) and the fitted ``params`` (a, b, c, d)."""

    name: str
    r2: float
    c: float
    loss: float
    params: torch.Tensor


def _r2_loss(r2):
    return np.log2(1 + 1e-5 - r2)


def _c_loss(c):
    return c


def rank_functions(x: torch.Tensor, y: torch.Tensor, lib=None, a_range=(-10, 10),
                   b_range=(-10, 10), weight_simple: float = 0.8,
                   r2_loss_fun: Callable = _r2_loss, c_loss_fun: Callable = _c_loss,
                   dead: bool = False) -> list[Candidate]:
    """Every function of ``lib`` (names; default the whole library) fitted to (x, y) `[B]`
    and sorted as pykan's ``suggest_symbolic`` sorts them: by
    ``weight_simple * c_loss_fun(c) + (1 - weight_simple) * r2_loss_fun(r2)``
    (``np.argsort``, as pykan). ``dead``: the edge is masked out of the spline branch,
    so every r2 is pykan's -1e8."""
    names = list(SYMBOLIC_LIB) if lib is None else list(lib)
    if not names:
        raise ValueError("lib: expected at least one function name")
    if not 0.0 <= weight_simple <= 1.0:
        raise ValueError(f"weight_simple: expected a number in [0, 1], got {weight_simple!r}")
    entries = [get_symbolic(name) for name in names]
    r2s, params = [], []
    for entry in entries:
        p, r2 = fit_params(x, y, entry.fun, a_range=a_range, b_range=b_range, verbose=False)
        r2s.append(-1e8 if dead else float(r2))
        params.append(p)
    r2s = np.array(r2s)
    cs = np.array([entry.c for entry in entries])
    loss = weight_simple * c_loss_fun(cs) + (1 - weight_simple) * np.asarray(r2_loss_fun(r2s)).astype("float")
    order = np.argsort(loss)
    return [Candidate(names[k], float(r2s[k]), float(cs[k]), float(loss[k]), params[k]) for k in order]
