"""``KANLayer``: pykan's KANLayer (parameters, shapes, defaults, initialisation, grid
update and extension) with its forward on the fused kernels."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from ..ops import functional
from ..ops.checks import check_like, check_order, check_tensor
from ..ops.grid import curve2coef, extend_grid, refit, uniform_grid
from ..ops.threads import threads_for
from ..ops.reference import b_batch, coef2curve

__all__ = ["KANLayer"]


def _base_fun_name(base_fun) -> str | None:
    """pykan stores base_fun as a module; map the ones the kernels know to their names."""
    if isinstance(base_fun, str):
        return base_fun
    if isinstance(base_fun, nn.SiLU):
        return "silu"
    if isinstance(base_fun, nn.Identity):
        return "identity"
    return None


class KANLayer(nn.Module):
    """A KAN layer: a learnable B-spline plus a scaled base function on every edge.

    ``y[b, o] = sum_i mask[i, o] * (scale_base[i, o] * base_fun(x[b, i])
    + scale_sp[i, o] * sum_j coef[i, o, j] B_j(x[b, i]))``, exactly as pykan 0.2.8.

    Parameters (pykan's names and shapes): ``grid`` `[in, G+2k+1]` (not trained),
    ``coef`` `[in, out, G+k]`, ``mask`` `[in, out]` (not trained), ``scale_base`` and
    ``scale_sp`` `[in, out]`. ``grid`` the argument is the number of intervals G
    (pykan's ``num``).
    """

    def __init__(self, in_dim: int, out_dim: int, grid: int = 5, k: int = 3,
                 grid_range=(-1.0, 1.0), noise_scale: float = 0.5, scale_base_mu: float = 0.0,
                 scale_base_sigma: float = 1.0, scale_sp: float = 1.0, base_fun="silu",
                 grid_eps: float = 0.02, sp_trainable: bool = True, sb_trainable: bool = True,
                 backend: str | None = None):
        super().__init__()
        for name, v in (("in_dim", in_dim), ("out_dim", out_dim), ("grid", grid)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        k = check_order(k)
        if not (len(grid_range) == 2 and float(grid_range[0]) < float(grid_range[1])):
            raise ValueError(f"grid_range: expected (low, high) with low < high, got {grid_range!r}")
        self.in_dim, self.out_dim, self.num, self.k = int(in_dim), int(out_dim), int(grid), k
        self.grid_range = (float(grid_range[0]), float(grid_range[1]))
        self.grid_eps = grid_eps
        self.base_fun = base_fun
        self.backend = backend
        self.cache_data = None  # last input seen, for refine() (pykan keeps it too)

        knots = uniform_grid(in_dim, grid, k, grid_range)
        self.grid = nn.Parameter(knots).requires_grad_(False)
        # pykan's initialisation, same random draws in the same order.
        noises = (torch.rand(grid + 1, in_dim, out_dim) - 1 / 2) * noise_scale / grid
        # pykan fits this in float32, where lstsq on the underdetermined system is noisy
        # (a residual of 0.02 at G=10 on this machine's LAPACK): fit in float64 instead.
        with threads_for((grid + 1) * in_dim * out_dim * (k + 1)):
            coef = curve2coef(knots[:, k:-k].permute(1, 0).double(), noises.double(),
                              knots.double(), k)
        self.coef = nn.Parameter(coef.to(knots.dtype))
        self.mask = nn.Parameter(torch.ones(in_dim, out_dim)).requires_grad_(False)
        self.scale_base = nn.Parameter(
            scale_base_mu / np.sqrt(in_dim)
            + scale_base_sigma * (torch.rand(in_dim, out_dim) * 2 - 1) / np.sqrt(in_dim)
        ).requires_grad_(sb_trainable)
        self.scale_sp = nn.Parameter(
            torch.ones(in_dim, out_dim) * scale_sp / np.sqrt(in_dim) * self.mask
        ).requires_grad_(sp_trainable)

    def extra_repr(self) -> str:
        return (f"in_dim={self.in_dim}, out_dim={self.out_dim}, grid={self.num}, k={self.k}, "
                f"base_fun={self.base_fun!r}, backend={self.backend!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: `[B, in]` -> y: `[B, out]`."""
        y = functional.kan_layer(x, self.grid, self.coef, self.scale_base, self.scale_sp,
                                 self.mask, self.k, self.base_fun, self.backend)
        self.cache_data = x.detach()  # after the call: it checks that x is a tensor
        return y

    def _fuses_in_stack(self) -> bool:
        """Whether the fused stack may compute this layer (see ``KAN._layer_fuses_in_stack``):
        the SiLU base (the kernels' fused base function), this class's own forward (a
        subclass may change it) and no hooks that must see the layer's call. (The backend,
        which depends on the input's device, is the stack's own check.)"""
        if self.base_fun != "silu" or type(self).forward is not KANLayer.forward:
            return False
        return not (self._forward_hooks or self._forward_pre_hooks)

    # ---- grids -----------------------------------------------------------------------

    def spline(self, x: torch.Tensor) -> torch.Tensor:
        """Per-edge spline values `[B, in, out]` (dense: for plots and grid fits)."""
        return coef2curve(x, self.grid, self.coef, self.k)

    def _refit(self, x: torch.Tensor, new_grid: torch.Tensor, old_grid: torch.Tensor,
               old_coef: torch.Tensor, k_old: int) -> torch.Tensor:
        """coef on ``new_grid`` fitting the old splines at samples ``x`` (input chunk by
        input chunk: no `[B, in, out]` tensor for wide layers).  On one thread whatever
        the layer's size: its torch and LAPACK ops are small parallel regions (one chunk's
        B x (G+k) systems), which spin-wait on a busy machine.  Measured for a 256 -> 256
        layer at batch 4096, `update_grid_from_samples`: 1.45 s on two threads, 1.98 s on
        one; with another process doing matrix products on both cores 5.3 s against 2.6 s
        (bench/RESULTS.md, issue 15 point 0)."""
        with threads_for(0):
            return refit(x, old_grid, old_coef, k_old, new_grid, self.k)

    @torch.no_grad()
    def update_grid_from_samples(self, x: torch.Tensor, mode: str = "sample") -> None:
        """Adaptive grid from samples x `[B, in]`, function kept (pykan semantics).

        Per input: ``G+1`` quantile knots of x mixed with the uniform grid over the same
        span (``grid_eps``), extended by ``k``; coef refitted by least squares.
        ``mode="grid"`` fits on 2G+1 points of the new grid instead of the samples.

        Unlike pykan, bad samples never give a NaN grid or coef: non-finite samples are
        left out (per input, with a warning that says how many); an input with fewer
        than 2 finite samples keeps its grid and coef; where the samples span nothing
        (all equal) the knots keep the old span, centred on the samples; knots that
        would coincide (ties with ``grid_eps=0``) are mixed with 2% of the uniform grid.
        """
        if mode not in ("sample", "grid"):
            raise ValueError(f"mode: expected 'sample' or 'grid', got {mode!r}")
        check_tensor("x", x)
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x: expected shape [batch, {self.in_dim}], got {list(x.shape)}")
        if x.shape[0] < 2:
            raise ValueError(f"x: expected at least 2 samples, got {x.shape[0]}")
        if x.device != self.grid.device:
            check_like("x", x, self.grid)
        x = x.to(self.grid.dtype)
        finite = torch.isfinite(x)
        if bool(finite.all()):
            grid, coef = self._updated_rows(x, slice(None), mode)
        else:
            bad = int((~finite).any(1).sum())
            warnings.warn(f"update_grid_from_samples: {bad} of {x.shape[0]} samples have "
                          "non-finite values; left out of the grid and the refit",
                          RuntimeWarning, stacklevel=2)
            grid, coef = self.grid.detach().clone(), self.coef.detach().clone()
            for i in range(self.in_dim):  # each input keeps its own finite samples
                column = x[finite[:, i], i:i + 1]
                if column.shape[0] >= 2:
                    grid[i:i + 1], coef[i:i + 1] = self._updated_rows(column, slice(i, i + 1), mode)
        # New tensors, not in-place writes: the argument checks cache grids by storage.
        self.coef.data = coef
        self.grid.data = grid

    def _updated_rows(self, x: torch.Tensor, inputs: slice, mode: str):
        """(grid, coef) rows ``inputs`` updated on finite samples x of those inputs."""
        old_grid, old_coef = self.grid[inputs], self.coef[inputs]
        x_pos = torch.sort(x, dim=0)[0]
        num_interval = old_grid.shape[1] - 1 - 2 * self.k
        old_span = old_grid[:, -self.k - 1] - old_grid[:, self.k]
        new_interior = self._adaptive_knots(x_pos, num_interval, old_span)
        samples = x_pos
        if mode == "grid":
            samples = self._adaptive_knots(x_pos, 2 * num_interval, old_span).permute(1, 0)
        new_grid = extend_grid(new_interior, k_extend=self.k)
        return new_grid, self._refit(samples, new_grid, old_grid, old_coef, self.k)

    def _adaptive_knots(self, x_pos: torch.Tensor, num_interval: int,
                        old_span: torch.Tensor) -> torch.Tensor:
        """pykan's get_grid: quantile knots mixed with uniform ones, `[in, num_interval+1]`.

        Degenerate rows (see update_grid_from_samples) are made strictly increasing:
        pykan's knots there coincide, and its bases divide by zero."""
        batch = x_pos.shape[0]
        ids = [int(batch / num_interval * i) for i in range(num_interval)] + [-1]
        adaptive = x_pos[ids, :].permute(1, 0)
        lo, hi = adaptive[:, [0]], adaptive[:, [-1]]
        steps = torch.arange(num_interval + 1, device=x_pos.device, dtype=x_pos.dtype)[None, :]
        uniform = lo + (hi - lo) / num_interval * steps
        knots = self.grid_eps * uniform + (1 - self.grid_eps) * adaptive
        strict = (knots[:, 1:] > knots[:, :-1]).all(1, keepdim=True)
        if bool(strict.all()):
            return knots
        eps = max(self.grid_eps, 0.02)
        mixed = eps * uniform + (1 - eps) * adaptive
        # No span (or below the float's resolution): the old span centred on the samples.
        centre = (lo + hi) / 2
        width = torch.maximum(old_span[:, None], centre.abs() * 64 * torch.finfo(x_pos.dtype).eps)
        flat = centre + width * (steps / num_interval - 0.5)
        mixed_strict = (mixed[:, 1:] > mixed[:, :-1]).all(1, keepdim=True)
        return torch.where(strict, knots, torch.where(mixed_strict, mixed, flat))

    @torch.no_grad()
    def refine(self, new_grid: int, x: torch.Tensor | None = None) -> "KANLayer":
        """Grid extension: a new layer with ``new_grid`` intervals computing the same
        function (pykan's ``initialize_grid_from_parent``).

        Its interior knots interpolate this layer's interior knots piecewise-linearly at
        ``new_grid + 1`` points evenly spaced in knot index; coef is fitted by least
        squares on ``x`` (default: the last input this layer saw).
        """
        if x is None:
            x = self.cache_data
        if x is None:
            raise ValueError("x: refine needs samples; pass x or run the layer on data first")
        child = KANLayer(self.in_dim, self.out_dim, grid=new_grid, k=self.k,
                         grid_range=self.grid_range, base_fun=self.base_fun,
                         grid_eps=self.grid_eps, sp_trainable=self.scale_sp.requires_grad,
                         sb_trainable=self.scale_base.requires_grad, backend=self.backend)
        child.to(device=self.grid.device, dtype=self.grid.dtype)
        interior = self.grid[:, self.k:-self.k]  # [in, G+1]
        n_old = interior.shape[1] - 1
        position = torch.linspace(0, n_old, new_grid + 1, dtype=interior.dtype,
                                  device=interior.device)
        left = position.floor().clamp(max=n_old - 1).long()
        frac = position - left
        knots = interior[:, left] * (1 - frac) + interior[:, left + 1] * frac
        child.grid.data = extend_grid(knots, k_extend=self.k)
        child.coef.data = self._refit(x.to(self.grid.dtype), child.grid, self.grid, self.coef, self.k)
        child.scale_base.data.copy_(self.scale_base.data)
        child.scale_sp.data.copy_(self.scale_sp.data)
        child.mask.data.copy_(self.mask.data)
        return child

    @torch.no_grad()
    def get_subset(self, in_id, out_id) -> "KANLayer":
        """A smaller layer keeping inputs ``in_id`` and outputs ``out_id`` (pykan's
        ``KANLayer.get_subset``, used by pruning): grid `[len(in_id), G+2k+1]`, coef,
        scale_base, scale_sp and mask are copied rows ``in_id``, columns ``out_id``.

        As pykan, it builds the new layer with ``KANLayer(len(in_id), len(out_id), G, k)``,
        whose initialisation draws from torch's global generator (the draws are then
        overwritten); unlike pykan, ``grid_range``, ``grid_eps``, the trainable flags and
        the backend are kept rather than reset to the defaults.
        """
        in_id = torch.as_tensor(in_id, dtype=torch.long).reshape(-1).to(self.grid.device)
        out_id = torch.as_tensor(out_id, dtype=torch.long).reshape(-1).to(self.grid.device)
        for name, ids, size in (("in_id", in_id, self.in_dim), ("out_id", out_id, self.out_dim)):
            if ids.numel() == 0 or int(ids.min()) < 0 or int(ids.max()) >= size:
                raise ValueError(f"{name}: expected a non-empty list of indices in [0, {size}), "
                                 f"got {ids.tolist()}")
        sub = KANLayer(in_id.numel(), out_id.numel(), grid=self.num, k=self.k,
                       grid_range=self.grid_range, base_fun=self.base_fun, grid_eps=self.grid_eps,
                       sp_trainable=self.scale_sp.requires_grad,
                       sb_trainable=self.scale_base.requires_grad, backend=self.backend)
        sub.to(device=self.grid.device, dtype=self.grid.dtype)
        sub.grid.data = self.grid[in_id].clone()
        for pname in ("coef", "scale_base", "scale_sp", "mask"):
            getattr(sub, pname).data = getattr(self, pname)[in_id][:, out_id].clone()
        return sub

    # ---- pykan interop ---------------------------------------------------------------

    @classmethod
    def from_pykan(cls, layer, backend: str | None = None) -> "KANLayer":
        """A KANLayer with the parameters of a pykan 0.2.8 ``kan.KANLayer.KANLayer``."""
        name = _base_fun_name(layer.base_fun)
        with torch.random.fork_rng(devices=[]):  # the throwaway init must not consume RNG
            out = cls(layer.in_dim, layer.out_dim, grid=layer.num, k=layer.k,
                      base_fun=name if name is not None else layer.base_fun,
                      grid_eps=layer.grid_eps, backend=backend)
        out.to(device=layer.coef.device, dtype=layer.coef.dtype)
        with torch.no_grad():
            for pname in ("grid", "coef", "mask", "scale_base", "scale_sp"):
                src = getattr(layer, pname)
                getattr(out, pname).data = src.data.detach().clone()
                getattr(out, pname).requires_grad_(src.requires_grad)
        lo, hi = layer.grid[0, layer.k].item(), layer.grid[0, -layer.k - 1].item()
        out.grid_range = (lo, hi) if lo < hi else out.grid_range
        return out

    def to_pykan(self):
        """The same layer as a pykan 0.2.8 ``kan.KANLayer.KANLayer`` (needs pykan)."""
        try:
            from kan.KANLayer import KANLayer as PykanLayer
        except ImportError as error:
            raise ImportError("to_pykan needs pykan: pip install pykan-fast[compat]") from error
        base = {"silu": nn.SiLU(), "identity": nn.Identity(), "zero": lambda x: x * 0}
        base_fun = base.get(self.base_fun, self.base_fun) if isinstance(self.base_fun, str) else self.base_fun
        layer = PykanLayer(in_dim=self.in_dim, out_dim=self.out_dim, num=self.num, k=self.k,
                           base_fun=base_fun, grid_eps=self.grid_eps,
                           grid_range=list(self.grid_range))
        with torch.no_grad():
            for pname in ("grid", "coef", "mask", "scale_base", "scale_sp"):
                src = getattr(self, pname)
                getattr(layer, pname).data = src.data.detach().clone()
                getattr(layer, pname).requires_grad_(src.requires_grad)
        return layer
