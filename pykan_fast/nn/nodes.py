"""The node step of a KAN layer (pykan's MultKAN), one definition for every forward path
(the model's per-layer loop, the fused stack and its recompute): the subnode affine, the
multiplication nodes, the node affine."""

from __future__ import annotations

import torch

__all__ = ["node_step", "multiply"]


def affine(z: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``scale * z + bias`` per column: MultKAN's subnode and node affines."""
    return scale[None, :] * z + bias[None, :]


def multiply(x: torch.Tensor, n_add: int, arity) -> torch.Tensor:
    """MultKAN's multiplication step: subnodes `[B, n_add + sum(arities)]` -> nodes
    `[B, n_add + n_mult]`. The first ``n_add`` subnodes pass through; each
    multiplication node is the product of its next ``arity`` subnodes, multiplied left
    to right as pykan does. ``arity``: an int (every node) or one int per node."""
    if x.shape[1] == n_add:
        return x
    if isinstance(arity, int):
        prod = x[:, n_add::arity] * x[:, n_add + 1::arity]
        for i in range(2, arity):
            prod = prod * x[:, n_add + i::arity]
    else:
        cols, start = [], n_add
        for a in arity:
            col = x[:, start:start + 1] * x[:, start + 1:start + 2]
            for i in range(2, a):
                col = col * x[:, start + i:start + i + 1]
            cols.append(col)
            start += a
        prod = torch.cat(cols, dim=1)
    return torch.cat([x[:, :n_add], prod], dim=1)



def node_step(y: torch.Tensor, subnode_scale, subnode_bias, node_scale, node_bias,
              n_add: int, arity):
    """Layer outputs (summed edges) `[B, n_subnodes]` -> (subnodes after their affine,
    nodes `[B, n_add + n_mult]`)."""
    subnodes = affine(y, subnode_scale, subnode_bias)
    return subnodes, affine(multiply(subnodes, n_add, arity), node_scale, node_bias)
