"""Input Jacobians and Hessians of a batch of independent rows, as pykan's
``batch_jacobian`` / ``batch_hessian`` define them (row b of the output depends on row b
of the input only).

The whole batch goes through one ``torch.autograd.grad`` per output column (Jacobian)
or per input column (Hessian), with ``create_graph=True`` where a second derivative
follows. ``torch.func`` (vmap/jacrev) is not used: the fused KAN layers are
``autograd.Function``s without a ``setup_context``/vmap rule, so functorch transforms
refuse them, while their backward is differentiable again on the fused kernels
(``pykan_fast.ops.autograd``). n_inputs passes over the whole batch replace pykan's
``torch.autograd.functional.jacobian`` (the same number of passes, no per-sample loop).
"""

from __future__ import annotations

import torch

__all__ = ["batch_jacobian", "batch_hessian"]


def _check_x(x) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"x: expected a 2-D float tensor [batch, inputs], got "
                         f"{getattr(x, 'shape', type(x).__name__)}")


def _input(x: torch.Tensor) -> torch.Tensor:
    """x itself when it is already part of a graph (a nested derivative), else a leaf."""
    return x if x.requires_grad else x.detach().requires_grad_(True)


def _grad(y: torch.Tensor, x: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """d(sum_b y[b]) / dx `[B, n]`; zeros where y does not depend on x."""
    if not y.requires_grad:
        return torch.zeros_like(x)
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=create_graph, retain_graph=True,
                               allow_unused=True)
    return torch.zeros_like(x) if g is None else g


def _outputs(y: torch.Tensor, batch: int) -> torch.Tensor:
    """``func``'s output as `[batch, outputs]`."""
    if not isinstance(y, torch.Tensor) or y.shape[:1] != (batch,):
        raise ValueError(f"func: expected an output [batch, outputs] with batch {batch}, "
                         f"got {getattr(y, 'shape', type(y).__name__)}")
    return y.reshape(batch, -1)


def batch_jacobian(func, x: torch.Tensor, create_graph: bool = False,
                   mode: str = "scalar") -> torch.Tensor:
    """Per-row Jacobians of ``func`` (a model or callable `[B, n] -> [B, m]`), as pykan's
    ``batch_jacobian``: mode ``'scalar'``, `[B, n]` of the first output,
    ``d func(x)[b, 0] / d x[b, :]`` (one pass); ``'vector'``, `[B, m, n]` (m passes)."""
    if mode not in ("scalar", "vector"):
        raise ValueError(f"mode: expected 'scalar' or 'vector', got {mode!r}")
    _check_x(x)
    with torch.enable_grad():
        xg = _input(x)
        y = _outputs(func(xg), x.shape[0])
        if mode == "scalar":
            return _grad(y[:, 0], xg, create_graph)
        return torch.stack([_grad(y[:, j], xg, create_graph) for j in range(y.shape[1])], dim=1)


def batch_hessian(func, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """`[B, n, n]`: ``H[b, i, j] = d^2 func(x)[b, 0] / dx_i dx_j`` (pykan's
    ``batch_hessian``)."""
    _check_x(x)
    with torch.enable_grad():
        xg = _input(x)
        jac = batch_jacobian(func, xg, create_graph=True)
        rows = [_grad(jac[:, i], xg, create_graph) for i in range(x.shape[1])]
    return torch.stack(rows, dim=1)
