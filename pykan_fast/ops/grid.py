"""Knot vectors and least-squares spline fits (pykan's extend_grid and curve2coef)."""

from __future__ import annotations

import torch

from . import cpu_backend
from .reference import b_batch, coef2curve

__all__ = ["extend_grid", "uniform_grid", "curve2coef", "refit"]

# Values (samples x inputs x max(outputs, bases)) that one chunk of refit holds at once.
REFIT_MAX_ELEMENTS = 1 << 22


def extend_grid(grid: torch.Tensor, k_extend: int = 0) -> torch.Tensor:
    """Add ``k_extend`` knots on each side at the mean step, as pykan's ``extend_grid``.

    grid: `[in, n]` -> `[in, n + 2 k_extend]`.
    """
    h = (grid[:, [-1]] - grid[:, [0]]) / (grid.shape[1] - 1)
    for _ in range(k_extend):
        grid = torch.cat([grid[:, [0]] - h, grid], dim=1)
        grid = torch.cat([grid, grid[:, [-1]] + h], dim=1)
    return grid


def uniform_grid(in_dim: int, num: int, k: int, grid_range=(-1.0, 1.0),
                 dtype=None, device=None) -> torch.Tensor:
    """pykan's initial knots: ``num + 1`` points over ``grid_range``, extended by ``k``."""
    grid = torch.linspace(grid_range[0], grid_range[1], steps=num + 1, dtype=dtype,
                          device=device)[None, :].expand(in_dim, num + 1)
    return extend_grid(grid, k_extend=k)


def curve2coef(x: torch.Tensor, y: torch.Tensor, grid: torch.Tensor, k: int,
               ridge: float = 0.0) -> torch.Tensor:
    """Spline coefficients fitting ``y`` at ``x`` by least squares, per input.

    x: `[B, in]`, y: `[B, in, out]`, grid: `[in, n_knots]` -> coef `[in, out, n_knots-k-1]`.
    The basis matrix depends only on the input, so one factorisation per input serves all
    ``out`` right-hand sides (pykan solves one problem per edge: same solution).
    ``ridge > 0`` adds ``ridge * I`` to the normal equations, which keeps the fit finite
    where samples are duplicated or some knots see none; ``ridge = 0`` is pykan's
    least squares, as the minimum-norm solution (SVD-based on CPU, pseudo-inverse on
    CUDA), which is finite and exact where the data determine the spline.
    """
    return _fit_by_input(x, y.permute(1, 0, 2), grid, k, ridge)


def _fit_by_input(x: torch.Tensor, rhs: torch.Tensor, grid: torch.Tensor, k: int,
                  ridge: float = 0.0) -> torch.Tensor:
    """:func:`curve2coef` with the values laid out input first, rhs `[in, B, out]`."""
    mat = _basis_matrices(x, grid, k)  # [in, B, n_basis]
    if ridge > 0:
        gram = mat.transpose(1, 2) @ mat
        eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
        coef = torch.linalg.solve(gram + ridge * eye, mat.transpose(1, 2) @ rhs)
    elif mat.device.type == "cpu":
        coef = _least_squares_cpu(mat, rhs)
    else:
        # CUDA's lstsq driver ('gels') assumes full rank and returns NaN otherwise
        # (pykan PR #233); the pseudo-inverse gives the minimum-norm solution.
        coef = torch.linalg.pinv(mat) @ rhs
    return coef.permute(0, 2, 1).contiguous()  # [in, out, n_basis]


def _on_kernels(x: torch.Tensor, *others: torch.Tensor) -> bool:
    """CPU float32/float64 tensors of one dtype: bases and curves from the fused kernels
    (the order-0 derivative op, the local k+1 bases of each sample), pykan's values to
    rounding, instead of the dense reference recursion (measured at 1000-4096 samples, one
    thread: bases 2-6x, curves 1.2-9x faster)."""
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            and all(t.device == x.device and t.dtype == x.dtype for t in others))


def _basis_matrices(x: torch.Tensor, grid: torch.Tensor, k: int) -> torch.Tensor:
    """Every basis of each input at x: `[in, B, n_basis]` (b_batch's, input first)."""
    if not _on_kernels(x, grid):
        return b_batch(x, grid, k).permute(1, 0, 2)
    n_basis = grid.shape[1] - k - 1
    identity = torch.eye(n_basis, dtype=x.dtype).unsqueeze(0)  # [1, n_basis, n_basis]
    return _by_input(x, grid, k, lambda i: identity, n_basis)


def _curves_by_input(x: torch.Tensor, grid: torch.Tensor, coef: torch.Tensor,
                     k: int) -> torch.Tensor:
    """Each edge's spline at its input, input first: `[in, B, out]` (coef2curve's values),
    one input at a time on the kernels."""
    if not _on_kernels(x, grid, coef):
        return coef2curve(x, grid, coef, k).permute(1, 0, 2)
    return _by_input(x, grid, k, lambda i: coef[i].t().contiguous().unsqueeze(0),
                     coef.shape[1])


def _by_input(x: torch.Tensor, grid: torch.Tensor, k: int, weights, n_out: int) -> torch.Tensor:
    """`[in, B, n_out]`: for each input i, the order-0 kernel on x's column i with the
    one-input weights ``weights(i)`` `[1, n_basis, n_out]`, written in place (a stack of
    per-input results copied them and faulted in their pages: 20 ms of 44 at 4096 x 4 x
    256 in float64)."""
    result = torch.empty(x.shape[1], x.shape[0], n_out, dtype=x.dtype)
    for i in range(x.shape[1]):
        cpu_backend.spline_derivative(x[:, i:i + 1].contiguous(), grid[i:i + 1].contiguous(),
                                      weights(i), None, k, 0, out=result[i])
    return result


# How far above the SVD driver's own cut-off (singular values below eps * max(B, n) times
# the largest count as zero) an input's smallest singular value must be for the QR path:
# there both give the full least-squares solution, to rounding.
_QR_MARGIN = 10.0


def _least_squares_cpu(mat: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """min ||mat @ coef - rhs|| per input (`[in, B, n]`, `[in, B, out]` -> `[in, n, out]`),
    the minimum-norm solution where mat is (numerically) rank-deficient.

    Inputs whose matrix is well-conditioned by the SVD driver's own measure (the singular
    values of the small QR factor R are those of mat) are solved by Householder QR: one
    factorisation, then ``R^-1 Q^T rhs`` for all ``out`` columns, 5-20x faster than the
    SVD driver at out = 256 (it applies its reflectors to every column). The rest by
    'gelsd' (SVD), which decides their rank; not torch's default 'gelsy' (pykan's): torch
    allocates gelsy's pivot array uninitialised, so on rank-deficient matrices (duplicated
    samples, knots without samples) its rank and fit vary from call to call (residual up
    to 0.8 where gelsd gives 1e-15; pytorch/pytorch#71222, #187411; torch 2.13)."""
    rows, cols = mat.shape[-2:]
    if rows >= cols and mat.dtype in (torch.float32, torch.float64):
        q, r = torch.linalg.qr(mat)
        singular = torch.linalg.svdvals(r)  # descending, [in, n]
        cutoff = _QR_MARGIN * torch.finfo(mat.dtype).eps * max(rows, cols)
        solved = singular[:, -1] > cutoff * singular[:, 0]  # [in]
        if bool(solved.any()):
            coef = torch.linalg.solve_triangular(r, q.transpose(-2, -1) @ rhs, upper=True)
            if bool(solved.all()):
                return coef
            rest = ~solved
            coef[rest] = torch.linalg.lstsq(mat[rest], rhs[rest], driver="gelsd").solution
            return coef
    return torch.linalg.lstsq(mat, rhs, driver="gelsd").solution


def refit(x: torch.Tensor, old_grid: torch.Tensor, old_coef: torch.Tensor, k_old: int,
          new_grid: torch.Tensor, k: int, max_elements: int = REFIT_MAX_ELEMENTS) -> torch.Tensor:
    """Coefficients on ``new_grid`` (order ``k``) of the splines ``old_coef`` on
    ``old_grid`` (order ``k_old``), fitted at samples x `[B, in]`: grid updates and grid
    extension. Inputs are taken a chunk at a time, so the dense `[B, in, out]` values and
    `[B, in, G+k]` bases exist for at most ``max_elements`` values (one input at least);
    each input's least-squares problem is independent, so chunking changes nothing."""
    batch, in_dim = x.shape
    per_input = batch * max(old_coef.shape[1], old_coef.shape[2], new_grid.shape[1])
    step = max(1, min(in_dim, max_elements // max(per_input, 1)))
    parts = []
    for i0 in range(0, in_dim, step):
        cols = slice(i0, min(i0 + step, in_dim))
        values = _curves_by_input(x[:, cols], old_grid[cols], old_coef[cols], k_old)
        parts.append(_fit_by_input(x[:, cols], values, new_grid[cols], k))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
