"""Per-edge activations of a ``KANLayer``: ``mask * (scale_base * b(x) + scale_sp *
spline(x))`` for a block of its edges, the one definition that the regulariser
(``train.fit.edge_std``), attribution/plots (``tools.prune``) and symbolic fits
(``tools.symbolic.edges``) evaluate. pykan records them as its ``postacts``
`[B, out, in]` on every forward; here they are computed only when asked, for the block
asked."""

from __future__ import annotations

import torch

from ..ops import functional
from ..ops.reference import coef2curve, resolve_base_fun

__all__ = ["edge_activations"]


def edge_activations(layer, x: torch.Tensor, inputs: slice, outputs: slice = slice(None),
                     coef=None, scale_base=None, scale_sp=None, dense: bool = True) -> torch.Tensor:
    """Activations `[b, n_inputs, n_outputs]` of the edges from ``inputs`` to ``outputs``
    (slices of the layer's inputs and outputs) at ``x`` `[b, n_inputs]` (those inputs'
    columns).

    ``coef``, ``scale_base``, ``scale_sp``: the block's parameters when the caller holds
    its own (autograd leaves of a chunked backward); the layer's by default.
    ``dense``: pykan's formula on the block's `[b, n_inputs, G+k]` bases (cost ~ G+k per
    edge and sample); otherwise one fused-kernel call per edge column block (a 1-input
    layer per input, cost ~ k+2 but a fixed cost per call).
    """
    if coef is None:
        coef = layer.coef[inputs, outputs]
        scale_base = layer.scale_base[inputs, outputs]
        scale_sp = layer.scale_sp[inputs, outputs]
    mask = layer.mask[inputs, outputs]
    grid = layer.grid[inputs]
    if dense:
        spline = coef2curve(x, grid, coef, layer.k)
        base = resolve_base_fun(layer.base_fun)(x)
        return mask * (scale_base * base[:, :, None] + scale_sp * spline)
    cols = [functional.kan_layer(x[:, j:j + 1], grid[j:j + 1], coef[j:j + 1].contiguous(),
                                 scale_base[j:j + 1].contiguous(), scale_sp[j:j + 1].contiguous(),
                                 mask[j:j + 1].contiguous(), layer.k, layer.base_fun, layer.backend)
            for j in range(x.shape[1])]
    return torch.stack(cols, dim=1)
