"""The one ``torch.autograd.Function`` behind every fused backend."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


class FusedKanFunction(torch.autograd.Function):
    """y = base(x) @ base_weight + sum_j B_j(x) spline_weight[:, j, :], fused.

    x: `[B, in]`, grid: `[in, n_knots]`, spline_weight: `[in, n_basis, out]`,
    base_weight: `[in, out]`; all contiguous, one dtype. Saves only its inputs.
    """

    @staticmethod
    def forward(ctx, x, grid, spline_weight, base_weight, k, base, impl):
        ctx.k, ctx.base, ctx.impl = k, base, impl
        ctx.save_for_backward(x, grid, spline_weight, base_weight)
        return impl.forward(x, grid, spline_weight, base_weight, k, base)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        x, grid, spline_weight, base_weight = ctx.saved_tensors
        need = ctx.needs_input_grad
        grad_x, grad_sw, grad_bw = ctx.impl.backward(
            x, grid, spline_weight, base_weight, grad_y.contiguous(), ctx.k, ctx.base,
            need[0], need[2], need[3] and ctx.base != 0,
        )
        if need[3] and grad_bw is None:
            grad_bw = torch.zeros_like(base_weight)
        return grad_x, None, grad_sw, grad_bw, None, None, None
