"""Reading a trained KAN: pykan 0.2.8's ``feature_interaction``, ``node_attribute``,
``get_range`` and ``get_fun`` as functions of a :class:`pykan_fast.KAN`.

Edge activations are recomputed from the last forward's layer inputs (``model.acts``)
by :func:`pykan_fast.tools.symbolic.edges.edge_data` (spline branch on the fused kernel
plus the symbolic branch): pykan's ``spline_preacts``/``spline_postacts`` without
storing `[B, out, in]` tensors on every forward.
"""

from __future__ import annotations

import torch

from .prune import attribute
from .symbolic.edges import edge_data

__all__ = ["feature_interaction", "node_attribute", "get_range", "get_fun"]


def feature_interaction(model, l: int, neuron_th: float = 1e-2, feature_th: float = 1e-2) -> dict:
    """For each node of layer ``l`` whose largest input attribution exceeds
    ``neuron_th``: the inputs attributed more than ``feature_th`` times that largest
    score. Returns ``{inputs (tuple): number of such nodes}`` (pykan's)."""
    scores = attribute(model, l)  # [width_in[l], width_in[0]]
    counts = {}
    for row in scores:
        top = float(torch.max(row))
        if top > neuron_th:
            key = tuple(int(v) for v in torch.nonzero(row > top * feature_th).flatten())
            counts[key] = counts.get(key, 0) + 1
    return counts


def node_attribute(model) -> list[torch.Tensor]:
    """pykan's ``node_attribute``: for every node layer l >= 1, the attribution of its
    nodes to the inputs, `[width_in[l], width_in[0]]`; also stored as
    ``model.node_attribute_scores``."""
    model.node_attribute_scores = [attribute(model, l) for l in range(1, model.depth + 1)]
    return model.node_attribute_scores


def get_range(model, l: int, i: int, j: int, verbose: bool = True):
    """``(x_min, x_max, y_min, y_max)`` of edge (l, i, j)'s input and activation over the
    last forward's samples; ``verbose`` prints them as pykan does."""
    x, y = edge_data(model, l, i, j)
    x_min, x_max = float(torch.min(x)), float(torch.max(x))
    y_min, y_max = float(torch.min(y)), float(torch.max(y))
    if verbose:
        print("x range: [" + "%.2f" % x_min, ",", "%.2f" % x_max, "]")
        print("y range: [" + "%.2f" % y_min, ",", "%.2f" % y_max, "]")
    return x_min, x_max, y_min, y_max


def get_fun(model, l: int, i: int, j: int, plot: bool = True):
    """Edge (l, i, j)'s samples ``(inputs, outputs)`` (numpy, sorted by input) at the
    last forward; ``plot`` draws them in a new 3x3 figure, as pykan."""
    x, y = edge_data(model, l, i, j)
    order = torch.argsort(x)
    inputs, outputs = x[order].cpu().numpy(), y[order].detach().cpu().numpy()
    if plot:
        import matplotlib.pyplot as plt

        plt.figure(figsize=(3, 3))
        plt.plot(inputs, outputs, marker="o")
    return inputs, outputs
