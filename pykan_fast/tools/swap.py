"""Reordering hidden neurons for readable diagrams: pykan 0.2.8's ``swap``,
``connection_cost`` and ``auto_swap`` as functions of a :class:`pykan_fast.KAN`.

Swapping two addition nodes of a hidden layer permutes the rows/columns of the two layers
around it (splines, symbolic edges, affines); the function is unchanged. The connection
cost sums each edge's attribution score times the horizontal distance between its ends
(neurons spread evenly over [0, 1]); ``auto_swap`` greedily moves each neuron to the slot
that lowers it most.

Differences from pykan 0.2.8 (its intent kept): the node and subnode affines are
swapped (pykan's tuple assignment of tensor views writes node i2's value into both
slots); ``auto_swap_l(l)`` ranges over layer l's nodes (pykan over layer 1's whatever l
is); only addition nodes can be swapped (a multiplication node owns several subnodes,
which pykan's index-for-index swap would split).
"""

from __future__ import annotations

import numpy as np
import torch

from .prune import activation_scales, attribution_scores

__all__ = ["swap", "connection_cost", "auto_swap_l", "auto_swap"]


def _check(model, l, ids) -> None:
    if isinstance(l, bool) or not isinstance(l, (int, np.integer)) or not 1 <= l < model.depth:
        raise ValueError(f"l: expected a hidden node layer in [1, {model.depth - 1}], got {l!r}")
    n_add = model.width[l][0]
    for name, i in zip(("i1", "i2"), ids):
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < n_add:
            raise ValueError(f"{name}: expected an addition node of layer {l} in [0, {n_add}), "
                             f"got {i!r}")


def _swap_rows(t: torch.Tensor, i1: int, i2: int, dim: int) -> None:
    idx = torch.tensor([i1, i2], device=t.device)
    t.index_copy_(dim, idx, t.index_select(dim, idx.flip(0)).clone())


def _swap_symbolic(sym, i1: int, i2: int, mode: str) -> None:
    """The symbolic layer's edges of input (mode 'in') or output ('out') i1 and i2."""
    dim = 1 if mode == "in" else 0  # mask, affine: [out, in(, 4)]
    _swap_rows(sym.mask.data, i1, i2, dim)
    _swap_rows(sym.affine.data, i1, i2, dim)
    pairs = ([(i1, j, i2, j) for j in range(sym.out_dim)] if mode == "in"
             else [(i, i1, i, i2) for i in range(sym.in_dim)])
    for a_i, a_j, b_i, b_j in pairs:
        a = (sym.funs_name[a_j][a_i], sym.entry(a_i, a_j))
        b = (sym.funs_name[b_j][b_i], sym.entry(b_i, b_j))
        sym.set_function(a_i, a_j, *b)
        sym.set_function(b_i, b_j, *a)


@torch.no_grad()
def swap(model, l: int, i1: int, i2: int) -> None:
    """Exchange addition nodes ``i1`` and ``i2`` of hidden node layer ``l`` in place."""
    _check(model, l, (i1, i2))
    i1, i2 = int(i1), int(i2)
    below, above = model.act_fun[l - 1], model.act_fun[l]
    for name in ("coef", "scale_base", "scale_sp", "mask"):
        _swap_rows(getattr(below, name).data, i1, i2, 1)   # [in, out, ...]: outputs
        _swap_rows(getattr(above, name).data, i1, i2, 0)   # inputs
    _swap_rows(above.grid.data, i1, i2, 0)
    _swap_symbolic(model.symbolic_fun[l - 1], i1, i2, "out")
    _swap_symbolic(model.symbolic_fun[l], i1, i2, "in")
    for plist in (model.node_scale, model.node_bias, model.subnode_scale, model.subnode_bias):
        _swap_rows(plist[l - 1].data, i1, i2, 0)


def connection_cost(model) -> torch.Tensor:
    """``sum_l sum_{j,i} edge_scores[l][j, i] * |pos_j - pos_i|`` with the attribution
    scores of :meth:`KAN.attribute` (computed first if the model has none)."""
    if model.edge_scores is None:
        model.attribute()
    return _cost(model.edge_scores)


def _cost(edge_scores) -> torch.Tensor:
    cost = 0.0
    for t in edge_scores:
        rows = torch.linspace(0, 1, t.shape[0] + 1, device=t.device, dtype=t.dtype)[:-1] + 1 / (2 * t.shape[0])
        cols = torch.linspace(0, 1, t.shape[1] + 1, device=t.device, dtype=t.dtype)[:-1] + 1 / (2 * t.shape[1])
        cost = cost + torch.sum(torch.abs(rows[:, None] - cols[None, :]) * t)
    return cost


def _swapped_scales(scales: dict, l: int, i: int, j: int) -> dict:
    """The activation statistics the model would record with nodes i, j of layer l
    swapped: a swap only permutes them (rows of layer l-1's outputs, columns of layer
    l's inputs), so no forward is needed per trial."""
    def perm(n):
        order = list(range(n))
        order[i], order[j] = j, i
        return order
    out = {key: list(value) for key, value in scales.items()}
    below, above = scales["edge_actscale"][l - 1], scales["edge_actscale"][l]
    out["edge_actscale"][l - 1] = below[perm(below.shape[0])]
    out["subnode_actscale"][l - 1] = scales["subnode_actscale"][l - 1][perm(below.shape[0])]
    out["edge_actscale"][l] = above[:, perm(above.shape[1])]
    return out


def auto_swap_l(model, l: int) -> None:
    """Greedy: each addition node of layer ``l`` in turn goes to the slot whose swap
    gives the lowest connection cost. pykan re-runs the model and its attribution for
    every trial swap; here the statistics of one run are permuted per trial (the same
    numbers: a swap permutes them), one run per node."""
    n = model.width[l][0]
    for i in range(n):
        scales = activation_scales(model)
        costs = [float(_cost(attribution_scores(model, scales=_swapped_scales(scales, l, i, j))
                             ["edge_scores"])) for j in range(n)]
        swap(model, l, i, int(np.argmin(costs)))
    model.attribute()


def auto_swap(model) -> None:
    """:func:`auto_swap_l` on every hidden layer, bottom up."""
    for l in range(1, model.depth):
        auto_swap_l(model, l)
