"""Speed of a physics-informed loss (issue 6.2): L-BFGS steps on the 2-D Poisson loss
``alpha * mean((Laplace u + f)^2) + mean(u_boundary^2)`` with pykan_fast (fused derivative
kernels) and pykan 0.2.8 (plain autograd over dense bases) in the same run.

Both: a [2, 10, 1] KAN, grid 5, k 3, float64, the same 31 x 31 collocation mesh and
boundary points, pykan's L-BFGS settings (pykan_fast.train.lbfgs.LBFGS, the same code for both),
STEPS steps; pykan in its fast mode (``model.speed()``: no symbolic branch, no recorded
activations). Each L-BFGS step evaluates the loss (a Laplacian: two nested autograd.grad
calls with create_graph, then backward) ~20 times. Reported: seconds per step and the
ratio, in ``benchmark.extra_info`` and printed with -s.

    pytest bench/test_bench_pde.py --benchmark-only -s

Under PYKAN_BENCH_SMOKE=1: a 7 x 7 mesh and 1 step.
"""

import math
import time

import pytest
import torch

from shapes import SMOKE
from pykan_fast import KAN
from pykan_fast.train.lbfgs import LBFGS
from pykan_fast.experiments.pde import _interior_and_boundary, laplacian, poisson_source

N_POINTS = 7 if SMOKE else 31
STEPS = 1 if SMOKE else 5
ALPHA = 0.01
WIDTH = [2, 10, 1]

_SECONDS = {}


def _train(model, steps):
    interior, boundary = _interior_and_boundary(N_POINTS, torch.float64)
    source = poisson_source(interior)
    x = interior.clone().requires_grad_(True)
    optimizer = LBFGS(model.parameters(), lr=1, history_size=10, line_search_fn="strong_wolfe",
                      tolerance_grad=1e-32, tolerance_change=1e-32, tolerance_ys=1e-32)
    losses = []

    def closure():
        optimizer.zero_grad()
        loss = ALPHA * torch.mean((laplacian(model, x) + source) ** 2) + torch.mean(model(boundary) ** 2)
        loss.backward()
        return loss

    for _ in range(steps):
        losses.append(float(optimizer.step(closure).detach()))
    return losses


def _model(provider):
    if provider == "pykan_fast":
        return KAN(WIDTH, grid=5, k=3, seed=1, dtype=torch.float64, backend="cpu")
    try:
        import kan
    except ImportError as error:
        pytest.skip(f"pykan (package kan) is not importable: {error}")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = kan.MultKAN(width=WIDTH, grid=5, k=3, seed=1, auto_save=False)
    finally:
        torch.set_default_dtype(old)
    model.speed()  # pykan's own fast mode: no symbolic branch, no activation bookkeeping
    return model


@pytest.mark.parametrize("provider", ["pykan_fast", "pykan"])
def test_poisson_lbfgs_steps(benchmark, provider):
    model = _model(provider)
    _train(model, 1)  # warm-up: first-call costs (imports, allocator) are not compared

    def job():
        start = time.perf_counter()
        losses = _train(model, STEPS)
        return losses, time.perf_counter() - start

    losses, seconds = benchmark.pedantic(job, rounds=1, iterations=1, warmup_rounds=0)
    _SECONDS[provider] = seconds / STEPS
    benchmark.extra_info.update(provider=provider, steps=STEPS, n_points=N_POINTS,
                                seconds_per_step=seconds / STEPS, losses=losses,
                                threads=torch.get_num_threads())
    line = f"\n{provider}: {seconds / STEPS:.3f} s per L-BFGS step, loss {losses[-1]:.3e}"
    if len(_SECONDS) == 2:
        line += f"; pykan_fast is {_SECONDS['pykan'] / _SECONDS['pykan_fast']:.2f}x faster"
    print(line)
    assert all(math.isfinite(v) for v in losses)
