"""Physics-informed training on fused kernels: the KAN paper's 2-D Poisson problem.

``-Laplace u = f`` on ``[-1, 1]^2`` with ``u = 0`` on the boundary and
``f = 2 pi^2 sin(pi x) sin(pi y)``, so ``u = sin(pi x) sin(pi y)``. The loss needs the
Laplacian of the network, i.e. a gradient taken with ``create_graph=True``, differentiated
again, and a backward through both: third derivatives of the B-splines, all on the
fused derivative ops of :mod:`pykan_fast.ops.autograd` (pykan does it with plain autograd over
dense `[B, in, G+k]` bases).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..train.lbfgs import LBFGS
from ..nn.model import KAN
from ..ops.threads import model_work, threads_for

__all__ = ["laplacian", "poisson_solution", "poisson_source", "PoissonResult", "solve_poisson"]


def laplacian(fn, x: torch.Tensor) -> torch.Tensor:
    """``sum_d d2u/dx_d2`` `[B]` of a scalar field ``fn: [B, dim] -> [B, 1]``, differentiable
    (``create_graph=True``) so a loss on it can be trained. ``x`` must require grad."""
    if not x.requires_grad:
        raise ValueError("x: expected a tensor with requires_grad=True (the Laplacian "
                         "differentiates through it)")
    u = fn(x)
    if u.dim() != 2 or u.shape[1] != 1:
        raise ValueError(f"fn: expected outputs of shape [B, 1], got {list(u.shape)}")
    (grad,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    total = torch.zeros_like(u[:, 0])
    for d in range(x.shape[1]):
        (second,) = torch.autograd.grad(grad[:, d].sum(), x, create_graph=True)
        total = total + second[:, d]
    return total


def poisson_solution(x: torch.Tensor) -> torch.Tensor:
    """u(x, y) = sin(pi x) sin(pi y), `[B, 1]`."""
    return (torch.sin(math.pi * x[:, :1]) * torch.sin(math.pi * x[:, 1:2]))


def poisson_source(x: torch.Tensor) -> torch.Tensor:
    """f = -Laplace u = 2 pi^2 sin(pi x) sin(pi y), `[B]`."""
    return 2 * math.pi ** 2 * poisson_solution(x)[:, 0]


def _interior_and_boundary(n: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """An n x n mesh of [-1, 1]^2 (pykan's PDE example) and n points on each side."""
    s = torch.linspace(-1, 1, n, dtype=dtype)
    gx, gy = torch.meshgrid(s, s, indexing="ij")
    interior = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    one = torch.ones(n, dtype=dtype)
    boundary = torch.cat([torch.stack([-one, s], 1), torch.stack([one, s], 1),
                          torch.stack([s, -one], 1), torch.stack([s, one], 1)])
    return interior, boundary


@dataclass
class PoissonResult:
    model: KAN
    grids: list  # grid size of each stage
    relative_l2: list  # relative L2 error on the test mesh after each stage
    pde_loss: float
    boundary_loss: float


def relative_l2_error(model, x: torch.Tensor) -> float:
    with torch.no_grad():
        exact = poisson_solution(x)
        return float(torch.linalg.norm(model(x) - exact) / torch.linalg.norm(exact))


def solve_poisson(width=(2, 10, 1), grids=(5, 10, 20), steps: int = 100, n_points: int = 31,
                  alpha: float = 0.01, grid_update_every: int = 5, seed: int = 1,
                  dtype: torch.dtype = torch.float64, backend: str | None = None,
                  progress=None) -> PoissonResult:
    """Train a KAN on the Poisson problem with pykan's PDE recipe: L-BFGS on
    ``alpha * mean(residual^2) + mean(boundary^2)``, adaptive grids from the interior
    points every ``grid_update_every`` steps of the first stage, then grid extension
    (``refine``) to each of ``grids``. ``progress(stage, step, pde, bc)`` is called after
    every step when given. Returns the model and the relative L2 error per stage, measured
    on a finer mesh than the training points (the midpoints included).

    The defaults reach a relative L2 error below 1e-3 (~6e-4; pykan's tutorial uses
    width [2, 2, 1] and a 21 x 21 mesh, which stalls near 1e-1 here). A grid much finer
    than the mesh overfits the collocation points (G=40 on 31 x 31: 1e-1)."""
    if not grids:
        raise ValueError("grids: expected at least one grid size")
    interior, boundary = _interior_and_boundary(n_points, dtype)
    test_points, _ = _interior_and_boundary(2 * n_points + 1, dtype)
    source = poisson_source(interior)
    model = KAN(width=list(width), grid=grids[0], k=3, seed=seed, dtype=dtype, backend=backend)
    errors, losses = [], (math.nan, math.nan)
    # A small PINN on one thread: the double-backward graph's small torch ops in OpenMP
    # regions spin-wait for a busy second core (measured 14 s against 1.0 s a step of
    # bench/test_bench_pde.py on two threads of a loaded 2-core machine).
    with threads_for(model_work(model, interior.shape[0])):
        for stage, grid in enumerate(grids):
            model, losses = _stage(model, stage, grid, interior, boundary, source, steps,
                                   alpha, grid_update_every, progress)
            errors.append(relative_l2_error(model, test_points))
    return PoissonResult(model, list(grids), errors, *losses)


def _stage(model, stage, grid, interior, boundary, source, steps, alpha, grid_update_every,
           progress):
    """One stage of :func:`solve_poisson`: (the model, its last (pde, bc) losses)."""
    losses = (math.nan, math.nan)
    if stage > 0:
        model(interior)  # refine fits the new grid on the last input seen
        model = model.refine(grid)
    optimizer = LBFGS(model.parameters(), lr=1, history_size=10,
                      line_search_fn="strong_wolfe", tolerance_grad=1e-32,
                      tolerance_change=1e-32, tolerance_ys=1e-32)
    x = interior.clone().requires_grad_(True)
    for step in range(steps):
        if stage == 0 and step % grid_update_every == 0 and step < steps // 2:
            model.update_grid_from_samples(interior)
        state = {}

        def closure():
            optimizer.zero_grad()
            residual = laplacian(model, x) + source
            pde = torch.mean(residual ** 2)
            bc = torch.mean(model(boundary) ** 2)
            loss = alpha * pde + bc
            loss.backward()
            state["pde"], state["bc"] = float(pde.detach()), float(bc.detach())
            return loss

        optimizer.step(closure)
        losses = (state["pde"], state["bc"])
        if progress is not None:
            progress(stage, step, *losses)
    return model, losses
