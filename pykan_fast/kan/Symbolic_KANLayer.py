"""pykan 0.2.8's ``kan.Symbolic_KANLayer``: the symbolic branch of a layer, whose
forward returns pykan's ``(y, postacts)``; the models use the native
:class:`pykan_fast.nn.symbolic_layer.SymbolicKANLayer` (forward: ``y`` only)."""

from __future__ import annotations

import torch

from ..nn.symbolic_layer import SymbolicKANLayer

__all__ = ["Symbolic_KANLayer"]


class Symbolic_KANLayer(SymbolicKANLayer):
    """pykan's ``Symbolic_KANLayer(in_dim, out_dim, device)``."""

    def __init__(self, in_dim=3, out_dim=2, device="cpu"):
        super().__init__(in_dim, out_dim, device=device)
        self.device = device

    def forward(self, x: torch.Tensor, singularity_avoiding: bool = False, y_th: float = 10.0):
        """x `[B, in]` -> ``(y [B, out], postacts [B, out, in])``; postacts holds every
        edge's ``mask * (c f(a x + b) + d)``, as pykan's."""
        y = super().forward(x, singularity_avoiding=singularity_avoiding, y_th=y_th)
        postacts = torch.stack([
            torch.stack([self.edge_acts(x[:, i], i, j, singularity_avoiding, y_th)
                         for i in range(self.in_dim)], dim=1)
            for j in range(self.out_dim)], dim=1) if self.in_dim and self.out_dim else \
            x.new_zeros(x.shape[0], self.out_dim, self.in_dim)
        return y, postacts

    def get_subset(self, in_id, out_id) -> "Symbolic_KANLayer":
        sub = super().get_subset(in_id, out_id)
        sub.__class__ = type(self)
        sub.device = self.device
        return sub
