"""pykan 0.2.8's ``kan.KANLayer``: ``KANLayer(in_dim, out_dim, num=G, ...)`` whose
forward returns pykan's 4-tuple ``(y, preacts, postacts, postspline)``, for code that
builds networks from layers. ``y`` comes from the fused kernel; the three `[B, out, in]`
tensors are the dense per-edge values pykan records. The models
(:class:`pykan_fast.kan.MultKAN`) use the native layer, whose forward returns ``y``."""

from __future__ import annotations

import torch

from ..nn.layer import KANLayer as _NativeLayer
from ..nn.layer import _base_fun_name
from ..ops.reference import resolve_base_fun
from .utils import sparse_mask

__all__ = ["KANLayer"]


class KANLayer(_NativeLayer):
    """pykan's ``KANLayer`` (same arguments and defaults; ``num`` is the number of grid
    intervals, ``base_fun`` a module or function as pykan's or a name)."""

    def __init__(self, in_dim=3, out_dim=2, num=5, k=3, noise_scale=0.5, scale_base_mu=0.0,
                 scale_base_sigma=1.0, scale_sp=1.0, base_fun=torch.nn.SiLU(), grid_eps=0.02,
                 grid_range=(-1, 1), sp_trainable=True, sb_trainable=True, save_plot_data=True,
                 device="cpu", sparse_init=False, backend=None):
        name = _base_fun_name(base_fun)
        super().__init__(in_dim, out_dim, grid=num, k=k, grid_range=grid_range,
                         noise_scale=noise_scale, scale_base_mu=scale_base_mu,
                         scale_base_sigma=scale_base_sigma, scale_sp=scale_sp,
                         base_fun=name if name is not None else base_fun, grid_eps=grid_eps,
                         sp_trainable=sp_trainable, sb_trainable=sb_trainable, backend=backend)
        if sparse_init:
            with torch.no_grad():
                mask = sparse_mask(in_dim, out_dim).to(self.mask)
                self.mask.data = mask
                self.scale_sp.data = self.scale_sp.data * mask
        self.to(device)

    def to(self, *args, **kwargs):
        out = super().to(*args, **kwargs)
        self.device = self.coef.device
        return out

    def forward(self, x: torch.Tensor):
        """x `[B, in]` -> ``(y [B, out], preacts, postacts, postspline)``, the last three
        `[B, out, in]`: each edge's input, its activation (mask included) and its
        spline value, as pykan's."""
        y = super().forward(x)
        batch = x.shape[0]
        preacts = x[:, None, :].clone().expand(batch, self.out_dim, self.in_dim)
        spline = self.spline(x)  # [B, in, out]
        base = resolve_base_fun(self.base_fun)(x)
        postacts = self.mask[None] * (self.scale_base[None] * base[:, :, None]
                                      + self.scale_sp[None] * spline)
        return y, preacts, postacts.permute(0, 2, 1), spline.permute(0, 2, 1)

    @torch.no_grad()
    def initialize_grid_from_parent(self, parent, x: torch.Tensor, mode: str = "sample") -> None:
        """pykan's: this layer's grid interpolated from ``parent``'s knots (its ``num + 1``
        interior knots read piecewise-linearly off the parent's, evenly in knot index) and
        its coef fitted by least squares to ``parent``'s splines (same k), at the samples
        ``x`` (``mode='sample'``) or at ``2 num + 1`` points interpolated the same way
        (``mode='grid'``: the fit needs no samples then, ``x`` is unused).

        pykan 0.2.8's ``mode='grid'`` means these ``2 num + 1`` points too, but its helper
        ignores the count and samples only the ``num + 1`` new knots, an underdetermined
        fit for k > 1 (README, differences)."""
        if mode not in ("sample", "grid"):
            raise ValueError(f"mode: expected 'sample' or 'grid', got {mode!r}")
        if parent.k != self.k:
            raise ValueError(f"parent: expected spline order k={self.k}, got {parent.k}")
        child = _NativeLayer.refine(parent, self.num, x=x)
        if mode == "grid":
            points = _interpolate_knots(parent.grid[:, parent.k:-parent.k], 2 * self.num + 1)
            child.coef.data = child._refit(points.T.contiguous(), child.grid, parent.grid,
                                           parent.coef, parent.k)
        self.grid.data = child.grid.data.to(self.grid)
        self.coef.data = child.coef.data.to(self.coef)

    def get_subset(self, in_id, out_id) -> "KANLayer":
        sub = super().get_subset(in_id, out_id)
        sub.__class__ = type(self)
        sub.device = self.device
        return sub

    def swap(self, i1: int, i2: int, mode: str = "in") -> None:
        """pykan's: exchange inputs (``mode='in'``) or outputs (``'out'``) i1 and i2."""
        if mode not in ("in", "out"):
            raise ValueError(f"mode: expected 'in' or 'out', got {mode!r}")
        with torch.no_grad():
            for name in ("coef", "scale_base", "scale_sp", "mask") + (("grid",) if mode == "in" else ()):
                data = getattr(self, name).data
                if mode == "in":
                    data[[i1, i2]] = data[[i2, i1]].clone()
                else:
                    data[:, [i1, i2]] = data[:, [i2, i1]].clone()


def _interpolate_knots(interior: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` points per row read piecewise-linearly off ``interior`` `[in, m]` at evenly
    spaced knot positions (pykan's order-1 spline through the parent's knots)."""
    m = interior.shape[1] - 1
    position = torch.linspace(0, m, n, dtype=interior.dtype, device=interior.device)
    left = position.floor().clamp(max=m - 1).long()
    frac = position - left
    return interior[:, left] * (1 - frac) + interior[:, left + 1] * frac

