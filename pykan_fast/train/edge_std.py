"""The per-edge std over the batch behind the regulariser (``edge_forward_*``) and
pruning: ``torch.std(mask * (scale_base * b(x) + scale_sp * spline(x)), dim=0)`` per edge,
pykan's ``torch.std(postacts, dim=0)`` transposed, without its `[B, in, out]` tensor.

Two exact ways, chosen by cost:

- ``"gram"``: edge (i, o)'s activation is ``w_io . F_b`` with the features ``F_b =
  [b(x_bi), B_0(x_bi) .. B_{n-1}(x_bi)]`` (n = G+k) and ``w_io = mask * [scale_base,
  scale_sp * coef_io]``, so its centred variance is ``w_io^T Q_i w_io / (B-1)`` with the
  centred Gram matrix ``Q_i = sum_b (F_b - mu_i)(F_b - mu_i)^T`` `[n+1, n+1]`: cost
  B*in*(n+1)^2 + in*out*(n+1)^2 instead of B*in*out*n, the bases once per call from the
  fused kernels (block-identity weights), and a backward that needs no activations (the
  x-gradient is one kernel call on the saved centred features). Q and the quadratic
  forms are summed in float64 for float32 inputs (they cancel where the centred bases do).
- ``"fused"``: the layer's kernels per input, two passes and a chunked backward that
  recomputes (cost ~ k+2 per edge and sample, a fixed cost per call): for large G.

At most ``max_elements`` features (or activations) exist at a time in either.
"""

from __future__ import annotations

import torch

from ..nn.edges import edge_activations
from ..ops.backends import implementation, select_backend
from ..ops.reference import b_batch, resolve_base_fun

__all__ = ["edge_std"]

METHODS = ("auto", "gram", "fused")

# Outputs of one basis-evaluation kernel call (c inputs x n bases, block-identity
# weights): its work grows as c^2, its fixed cost falls as 1/c.
_BLOCK_OUTPUTS = 64


def _chunks(n: int, size: int):
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def _plan(batch: int, in_dim: int, per_edge_row: int, max_elements: int):
    """Input chunks and batch chunks holding at most ``max_elements`` values each
    (``per_edge_row`` values per sample and input)."""
    rows = max(1, min(batch, max_elements // per_edge_row))
    inputs = max(1, min(in_dim, max_elements // (rows * per_edge_row)))
    return _chunks(in_dim, inputs), _chunks(batch, rows)


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype != torch.float64 else dtype


# ---- "gram" -------------------------------------------------------------------------


class _Bases:
    """The B-spline bases (and, for the x-gradient, their contraction with derivative
    weights) of one layer's inputs: the fused kernels where the backend has them, the
    pure-torch reference (pykan's B_batch, autograd for the derivative) otherwise."""

    def __init__(self, layer, x: torch.Tensor):
        self.grid, self.k = layer.grid, layer.k
        self.n = layer.coef.shape[2]
        backend = select_backend(layer.backend, x.device)
        dtypes = (torch.float32, torch.float64) if backend == "cpu" else (torch.float32,)
        self.impl = implementation(backend) if backend != "torch" and x.dtype in dtypes else None
        self.block = max(1, _BLOCK_OUTPUTS // (self.n + 1))

    def _blocks(self, i0: int, i1: int):
        return _chunks(i1 - i0, self.block)

    def values(self, x: torch.Tensor, i0: int, i1: int, order: int = 0) -> torch.Tensor:
        """B^(order)_j(x[b, i]) `[b, i1-i0, n]` (x holds inputs i0:i1; order 1 only with
        the kernels)."""
        grid = self.grid[i0:i1]
        if self.impl is None:
            assert order == 0, "derivative bases need the kernels"
            return b_batch(x, grid, self.k)
        parts = []
        for c0, c1 in self._blocks(i0, i1):
            c = c1 - c0
            eye = torch.eye(c * self.n, dtype=x.dtype, device=x.device).view(c, self.n, c * self.n)
            y = self.impl.spline_derivative(x[:, c0:c1].contiguous(), grid[c0:c1].contiguous(),
                                            eye, None, self.k, order)
            parts.append(y.view(-1, c, self.n))
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def slope_contraction(self, x: torch.Tensor, i0: int, i1: int, weight: torch.Tensor,
                          grad: torch.Tensor) -> torch.Tensor:
        """``sum_q grad[b, i, q] sum_j weight[i, j, q] B'_j(x[b, i])`` `[b, i1-i0]`:
        weight `[i1-i0, n, m]`, grad `[b, i1-i0, m]`. NaN where x is not finite (the
        slope of the bases is undefined there).

        The derivative bases once (block-identity weights, as ``values``) and the
        contraction by torch: a kernel call with block-diagonal weights of the m outputs
        did c times the useful work and cost ~4x this. Without the kernels: autograd
        of the reference's bases."""
        if self.impl is None:
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True)
                bases = b_batch(xg, self.grid[i0:i1], self.k)
                per_q = torch.einsum("bij,ijq->biq", bases, weight)
                (out,) = torch.autograd.grad(per_q, xg, grad)
            return out
        per_basis = torch.einsum("biq,ijq->bij", grad, weight)
        out = (self.values(x, i0, i1, order=1) * per_basis).sum(2)
        return torch.where(torch.isfinite(x), out, torch.full_like(out, float("nan")))


def _features(bases: _Bases, base_fun, x: torch.Tensor, i0: int, i1: int) -> torch.Tensor:
    """[b(x), B_0(x) .. B_{n-1}(x)] `[b, i1-i0, n+1]`."""
    return torch.cat([base_fun(x).unsqueeze(2), bases.values(x, i0, i1)], dim=2)


def _base_slope(base_fun, x: torch.Tensor) -> torch.Tensor:
    """b'(x) of the (elementwise) base function: SiLU's in one op, others by autograd."""
    if base_fun is torch.nn.functional.silu:
        return torch.ops.aten.silu_backward(x.new_ones(()).expand_as(x), x)
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        y = base_fun(xg)
        if not y.requires_grad:  # a constant base function
            return torch.zeros_like(x)
        (slope,) = torch.autograd.grad(y, xg, torch.ones_like(y))
    return slope


def _edge_weights(coef, scale_base, scale_sp, mask, dtype) -> torch.Tensor:
    """w_io = mask * [scale_base, scale_sp * coef_io] `[in, out, n+1]`."""
    w = torch.cat([scale_base.unsqueeze(2), scale_sp.unsqueeze(2) * coef], dim=2)
    return (mask.unsqueeze(2) * w).to(dtype)


class _GramEdgeStd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, coef, scale_base, scale_sp, layer, max_elements):
        batch, in_dim = x.shape
        n1 = coef.shape[2] + 1
        acc = _accumulation_dtype(x.dtype)
        bases, base_fun = _Bases(layer, x), resolve_base_fun(layer.base_fun)
        in_chunks, row_chunks = _plan(batch, in_dim, n1, max_elements)
        mean = torch.zeros(in_dim, n1, dtype=acc, device=x.device)
        gram = torch.zeros(in_dim, n1, n1, dtype=acc, device=x.device)
        kept = None
        for i0, i1 in in_chunks:
            single = len(row_chunks) == 1
            feats = None
            for b0, b1 in row_chunks:
                feats = _features(bases, base_fun, x[b0:b1, i0:i1], i0, i1).to(acc)
                mean[i0:i1] += feats.sum(0)
            mean[i0:i1] /= batch
            for b0, b1 in row_chunks:
                if not single:
                    feats = _features(bases, base_fun, x[b0:b1, i0:i1], i0, i1).to(acc)
                centred = feats - mean[i0:i1]
                gram[i0:i1] += torch.einsum("bip,biq->ipq", centred, centred)
                if single and len(in_chunks) == 1:
                    kept = centred  # the whole [B, in, n+1]: the backward reuses it
        w = _edge_weights(coef, scale_base, scale_sp, layer.mask, acc)
        gram_w = torch.bmm(w, gram)  # Q_i w_io (Q symmetric), [in, out, n+1]
        var = (gram_w * w).sum(2).clamp_min(0) / (batch - 1)
        std = torch.sqrt(var)
        ctx.layer, ctx.plan, ctx.bases, ctx.base_fun = layer, (in_chunks, row_chunks), bases, base_fun
        ctx.kept = kept if ctx.needs_input_grad[0] else None
        ctx.save_for_backward(x, coef, scale_base, scale_sp, mean, w, gram_w, std)
        return std.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_std):
        x, coef, scale_base, scale_sp, mean, w, gram_w, std = ctx.saved_tensors
        batch = x.shape[0]
        mask = ctx.layer.mask
        acc = w.dtype
        # d std / d var = 1 / (2 std); 0 where std = 0, as torch.std.
        h = torch.where(std > 0, grad_std.to(acc) / (2 * (batch - 1) * std), torch.zeros_like(std))
        need_x, need_coef, need_sb, need_sp = ctx.needs_input_grad[:4]
        grad_x = grad_coef = grad_sb = grad_sp = None
        if need_coef or need_sb or need_sp:
            grad_w = (2 * h * mask.to(acc)).unsqueeze(2) * gram_w
            if need_sb:
                grad_sb = grad_w[:, :, 0].to(scale_base.dtype)
            if need_sp:
                grad_sp = (grad_w[:, :, 1:] * coef.to(acc)).sum(2).to(scale_sp.dtype)
            if need_coef:
                grad_coef = (grad_w[:, :, 1:] * scale_sp.to(acc).unsqueeze(2)).to(coef.dtype)
        if need_x:
            grad_x = _gram_grad_x(ctx, x, mean, torch.bmm((h.unsqueeze(2) * w).transpose(1, 2), w))
        return grad_x, grad_coef, grad_sb, grad_sp, None, None


def _gram_grad_x(ctx, x, mean, m):
    """dL/dx_bi = 2 sum_pq m_ipq Fc_biq F'_bip (m = sum_o h_io w_io w_io^T, Fc the centred
    features; their batch sum is 0, so the centring adds nothing)."""
    bases, base_fun = ctx.bases, ctx.base_fun
    in_chunks, row_chunks = ctx.plan
    grad_x = torch.empty_like(x)
    for i0, i1 in in_chunks:
        for b0, b1 in row_chunks:
            xs = x[b0:b1, i0:i1]
            centred = ctx.kept
            if centred is None:
                centred = _features(bases, base_fun, xs, i0, i1).to(mean.dtype) - mean[i0:i1]
            grad_f = 2 * centred  # contracted with m inside the kernel call
            spline = bases.slope_contraction(xs, i0, i1, m[i0:i1, 1:, :].to(x.dtype).contiguous(),
                                             grad_f.to(x.dtype))
            base = _base_slope(base_fun, xs) * torch.einsum("biq,iq->bi", grad_f, m[i0:i1, 0, :]).to(x.dtype)
            grad_x[b0:b1, i0:i1] = spline + base
    return grad_x


# ---- "fused" ------------------------------------------------------------------------


def _edge_acts(layer, x, coef, scale_base, scale_sp, i0: int, i1: int) -> torch.Tensor:
    """Per-edge activations `[b, i1-i0, out]` of inputs ``i0:i1`` (x holds those columns),
    with the chunk's own parameter tensors (autograd leaves in the backward)."""
    return edge_activations(layer, x, slice(i0, i1), coef=coef, scale_base=scale_base,
                            scale_sp=scale_sp, dense=False)


class _FusedEdgeStd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, coef, scale_base, scale_sp, layer, max_elements):
        batch, in_dim = x.shape
        out_dim = coef.shape[1]
        in_chunks, row_chunks = _plan(batch, in_dim, out_dim, max_elements)
        total = x.new_zeros(in_dim, out_dim)
        for i0, i1 in in_chunks:
            for b0, b1 in row_chunks:
                a = _edge_acts(layer, x[b0:b1, i0:i1], coef[i0:i1], scale_base[i0:i1],
                               scale_sp[i0:i1], i0, i1)
                total[i0:i1] += a.sum(0)
        mean = total / batch
        sq = x.new_zeros(in_dim, out_dim)
        for i0, i1 in in_chunks:
            for b0, b1 in row_chunks:
                a = _edge_acts(layer, x[b0:b1, i0:i1], coef[i0:i1], scale_base[i0:i1],
                               scale_sp[i0:i1], i0, i1)
                sq[i0:i1] += ((a - mean[i0:i1]) ** 2).sum(0)
        std = torch.sqrt(sq / (batch - 1))
        ctx.layer, ctx.plan = layer, (in_chunks, row_chunks)
        ctx.save_for_backward(x, coef, scale_base, scale_sp, mean, std)
        return std

    @staticmethod
    def backward(ctx, grad_std):
        x, coef, scale_base, scale_sp, mean, std = ctx.saved_tensors
        layer = ctx.layer
        batch = x.shape[0]
        # d std / d a_b = (a_b - mean) / ((B - 1) std); 0 where std = 0, as torch.std.
        weight = torch.where(std > 0, grad_std / ((batch - 1) * std), torch.zeros_like(std))
        need = ctx.needs_input_grad[:4]
        wanted = [j for j in range(4) if need[j]]
        grads = [torch.zeros_like(t) if n else None
                 for t, n in zip((x, coef, scale_base, scale_sp), need)]
        if not wanted:
            return None, None, None, None, None, None
        in_chunks, row_chunks = ctx.plan
        for i0, i1 in in_chunks:
            for b0, b1 in row_chunks:
                with torch.enable_grad():
                    leaves = [x[b0:b1, i0:i1], coef[i0:i1], scale_base[i0:i1], scale_sp[i0:i1]]
                    leaves = [t.detach().requires_grad_(n) for t, n in zip(leaves, need)]
                    a = _edge_acts(layer, *leaves, i0, i1)
                    grad_a = weight[i0:i1] * (a.detach() - mean[i0:i1])
                    parts = torch.autograd.grad(a, [leaves[j] for j in wanted], grad_a,
                                                allow_unused=True)
                for j, part in zip(wanted, parts):
                    if part is None:
                        continue
                    if j == 0:
                        grads[0][b0:b1, i0:i1] += part
                    else:
                        grads[j][i0:i1] += part
        return grads[0], grads[1], grads[2], grads[3], None, None


# ---- the choice ---------------------------------------------------------------------


def _prefers_gram(layer) -> bool:
    """Gram's work per sample and input grows as (n+1)^2; the fused way's is a fixed cost
    per kernel call and input (three passes) plus ~k+2 per edge. Measured at B=1000 on 1
    thread (bench/RESULTS.md "edge_std"), the two cross near n+1 = 40 + 2 out."""
    return layer.coef.shape[2] + 1 <= 40 + 2 * layer.out_dim


def edge_std(layer, x: torch.Tensor, max_elements: int = 1 << 20,
             method: str = "auto") -> torch.Tensor:
    """Per-edge std over the batch of ``layer``'s activations at ``x``: `[in, out]`.

    Equals ``torch.std(mask * (scale_base * b(x)[:, :, None] + scale_sp * spline), dim=0)``
    (pykan's ``torch.std(postacts, dim=0)``, transposed) without building `[B, in, out]`;
    at most ``max_elements`` features or activations exist at a time, in forward and in
    backward. Differentiable in x, coef, scale_base and scale_sp (once).
    ``method``: ``"gram"`` (centred Gram matrices of the bases), ``"fused"`` (the
    layer's kernels per input) or ``"auto"`` (the cheaper for this layer's shape).
    """
    if x.dim() != 2 or x.shape[1] != layer.in_dim:
        raise ValueError(f"x: expected shape [batch, {layer.in_dim}], got {list(x.shape)}")
    if max_elements < 1:
        raise ValueError(f"max_elements: expected a positive int, got {max_elements}")
    if method not in METHODS:
        raise ValueError(f"method: expected one of {list(METHODS)}, got {method!r}")
    gram = method == "gram" or (method == "auto" and _prefers_gram(layer))
    function = _GramEdgeStd if gram else _FusedEdgeStd
    return function.apply(x, layer.coef, layer.scale_base, layer.scale_sp, layer, int(max_elements))
