"""Shared fixtures for the kernel, bad-input, layer and pykan-parity tests.

pytest runs with ``--import-mode=importlib``, so test modules cannot import each other or
this file: the kernel helpers are handed out through the ``kan_case`` fixture (a namespace
of plain functions) and a few small fixtures; the model-level test files import
``kan_helpers`` (this folder is put on sys.path below).
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # for `import kan_helpers`

# Without CUDA the Triton kernels run under the interpreter. TRITON_INTERPRET is read when
# ``@triton.jit`` decorates, so it is set before any test (or torch.compile's inductor)
# imports pykan_fast.triton.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pykan_fast as pf
from pykan_fast.ops.grid import extend_grid, uniform_grid

# Relative tolerance per dtype (DESIGN.md section 4): outputs and every gradient.
RTOL = {torch.float64: 1e-10, torch.float32: 1e-5}

GRADIENT_NAMES = ("x", "coef", "scale_base", "scale_sp", "mask")


def random_grid(in_dim: int, num: int, k: int, generator: torch.Generator,
                dtype=torch.float64) -> torch.Tensor:
    """Sorted random knots `[in, num + 2k + 1]`, strictly increasing, spacing varying by
    up to ~20x within a row and a different span per input (non-uniform: exercises the
    kernels' binary knot search, not the uniform fast path)."""
    n = num + 2 * k + 1
    steps = 0.05 + torch.rand(in_dim, n - 1, generator=generator, dtype=torch.float64)
    knots = torch.cat([torch.zeros(in_dim, 1, dtype=torch.float64), steps.cumsum(1)], dim=1)
    lo = -1.5 + torch.rand(in_dim, 1, generator=generator, dtype=torch.float64)
    width = 1.0 + 2.0 * torch.rand(in_dim, 1, generator=generator, dtype=torch.float64)
    knots = lo + width * knots / knots[:, -1:]
    return knots.to(dtype)


def make_case(batch: int, in_dim: int, out_dim: int, num: int, k: int,
              dtype=torch.float64, grid_kind: str = "uniform", seed: int = 0,
              spread: float = 1.5) -> dict:
    """Inputs of one ``kan_layer`` call: x `[B, in]` (about 1/3 of it outside the grid,
    the first sample inside),
    grid, coef `[in, out, G+k]`, scale_base, scale_sp `[in, out]` and a 0/1 mask with
    some zeros (as pykan's pruning leaves it)."""
    g = torch.Generator().manual_seed(seed)
    if grid_kind == "uniform":
        grid = uniform_grid(in_dim, num, k, (-1.0, 1.0), dtype=torch.float64)
    elif grid_kind == "random":
        grid = random_grid(in_dim, num, k, g)
    else:
        raise ValueError(grid_kind)
    lo, hi = grid[:, :1].T, grid[:, -1:].T
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    x = mid + spread * half * (2 * torch.rand(batch, in_dim, generator=g, dtype=torch.float64) - 1)
    if batch:
        x[0] = mid + 0.1234 * half  # at least one sample inside the grid
    nb = grid.shape[1] - k - 1
    case = dict(
        x=x,
        grid=grid,
        coef=torch.randn(in_dim, out_dim, nb, generator=g, dtype=torch.float64),
        scale_base=torch.randn(in_dim, out_dim, generator=g, dtype=torch.float64),
        scale_sp=torch.randn(in_dim, out_dim, generator=g, dtype=torch.float64),
        mask=(torch.rand(in_dim, out_dim, generator=g, dtype=torch.float64) > 0.2).to(torch.float64),
    )
    if in_dim and out_dim:
        case["mask"][0, 0] = 1.0  # at least one live edge
    return {name: t.to(dtype).contiguous() for name, t in case.items()}


def knots_as_samples(grid: torch.Tensor) -> torch.Tensor:
    """x `[n_knots, in]` whose column i runs over every knot of input i (first and last
    included): each sample sits exactly on a knot."""
    return grid.T.contiguous().clone()


def run_layer(case: dict, backend: str, k: int, base_fun="silu", x=None,
              grad_of=("x", "coef", "scale_base", "scale_sp"), seed: int = 1) -> dict:
    """Forward + backward through ``pf.functional.kan_layer``.

    Returns ``{"y": y, "<name>": grad}`` for each name in ``grad_of`` (those tensors
    require grad, the others do not). The upstream gradient is a fixed random tensor, so
    every output column is weighted differently.
    """
    leaves = {}
    for name in ("x", "coef", "scale_base", "scale_sp", "mask"):
        # An explicit x keeps its strides (detach() is a view): non-contiguous x reach
        # kan_layer as they are.
        t = x.detach() if name == "x" and x is not None else case[name].detach().clone()
        leaves[name] = t.requires_grad_(name in grad_of)
    y = pf.functional.kan_layer(leaves["x"], case["grid"], leaves["coef"], leaves["scale_base"],
                                leaves["scale_sp"], leaves["mask"], k, base_fun, backend)
    out = {"y": y.detach()}
    if grad_of:
        g = torch.Generator().manual_seed(seed)
        dy = torch.randn(y.shape, generator=g, dtype=torch.float64).to(y.dtype)
        y.backward(dy)
        for name in grad_of:
            out[name] = leaves[name].grad
    return out


def _max_finite_error(a: torch.Tensor, e: torch.Tensor) -> float:
    fin = torch.isfinite(e) & torch.isfinite(a)
    if not bool(fin.any()):
        return 0.0
    return (a[fin].double() - e[fin].double()).abs().max().item()


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float, name: str = "",
                 atol: float = 0.0) -> None:
    """Same shape and dtype, NaN and ±inf at the same places, finite entries within
    ``max(rtol * max|expected|, atol)`` (a norm-wise relative error: cancellation makes
    single entries meaningless to compare relatively)."""
    assert actual is not None, f"{name}: no gradient"
    assert actual.shape == expected.shape, f"{name}: shape {list(actual.shape)} != {list(expected.shape)}"
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}"
    a, e = actual.detach(), expected.detach()
    nan_a, nan_e = torch.isnan(a), torch.isnan(e)
    assert torch.equal(nan_a, nan_e), (
        f"{name}: NaN pattern differs: {int(nan_a.sum())} NaN vs {int(nan_e.sum())} in the "
        f"reference; first mismatch at {torch.nonzero(nan_a != nan_e)[0].tolist()}")
    inf_e = torch.isinf(e)
    assert torch.equal(torch.isinf(a), inf_e), f"{name}: inf pattern differs"
    assert torch.equal(a[inf_e], e[inf_e]), f"{name}: inf signs differ"
    fin = torch.isfinite(e)
    if not bool(fin.any()):
        return
    a64, e64 = a[fin].double(), e[fin].double()
    scale = e64.abs().max().item()
    err = (a64 - e64).abs().max().item()
    bound = max(rtol * scale if scale > 0 else 0.0, atol)
    assert err <= bound or err == 0.0, (
        f"{name}: max abs error {err:.3e} > max(rtol {rtol:.0e} x max|ref| {scale:.3e}, "
        f"atol {atol:.3e}) (relative {err / scale if scale else float('inf'):.3e})")


def assert_results_close(actual: dict, expected: dict, rtol: float) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        assert_close(actual[name], expected[name], rtol, name)


def compare_with_reference(case: dict, k: int, base_fun="silu", x=None,
                           grad_of=("x", "coef", "scale_base", "scale_sp", "mask"),
                           backend: str = "cpu"):
    """Runs ``backend`` and the reference (backend="torch") on the same inputs and
    asserts outputs and gradients agree. Returns (got, reference_result).

    float64: to 1e-10 relative. float32: against the float64 reference evaluated on the
    same float32-rounded inputs, to 1e-5 relative or, where float32 itself cannot do
    that (ill-conditioned cases, e.g. G=1000 where x - t_j cancels), to twice the error
    of the float32 reference (flash-attention's criterion).
    """
    got = run_layer(case, backend, k, base_fun, x=x, grad_of=grad_of)
    want = run_layer(case, "torch", k, base_fun, x=x, grad_of=grad_of)
    dtype = case["x"].dtype
    if dtype == torch.float64:
        assert_results_close(got, want, RTOL[dtype])
        return got, want
    case64 = {n: t.double() for n, t in case.items()}
    x64 = None if x is None else x.double()
    want64 = run_layer(case64, "torch", k, base_fun, x=x64, grad_of=grad_of)
    assert got.keys() == want.keys()
    for name in want:
        # NaN/inf where float32's reference has them; values against float64's.
        assert_close(got[name], want[name], 0.0, name, atol=float("inf"))
        ref_error = _max_finite_error(want[name], want64[name].to(dtype))
        assert_close(got[name], want64[name].to(dtype), RTOL[dtype], name, atol=2 * ref_error)
    return got, want


@pytest.fixture
def kan_case():
    """Helpers: make_case, random_grid, knots_as_samples, run_layer, assert_close,
    assert_results_close, compare_with_reference, RTOL, extend_grid, uniform_grid."""
    return types.SimpleNamespace(
        make_case=make_case, random_grid=random_grid, knots_as_samples=knots_as_samples,
        run_layer=run_layer, assert_close=assert_close, assert_results_close=assert_results_close,
        compare_with_reference=compare_with_reference,
        RTOL=RTOL, extend_grid=extend_grid, uniform_grid=uniform_grid,
    )


@pytest.fixture
def restore_threads(monkeypatch):
    """Restores torch's intra-op thread count after a test that changes it; the CPU
    kernels use every thread whatever the problem size (no serial cut-off for small work)."""
    from pykan_fast.ops import cpu_backend as cpu

    monkeypatch.setattr(cpu, "SERIAL_WORK", 0)
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_backend_env(monkeypatch):
    """Tests choose the backend explicitly: an inherited PYKAN_FAST_BACKEND or
    TRITON_INTERPRET must not change what they run."""
    monkeypatch.delenv("PYKAN_FAST_BACKEND", raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)


@pytest.fixture
def float64_default():
    """pykan builds in the default dtype: float64 for the parity checks."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def multkan(monkeypatch, tmp_path):
    """A builder of pykan's MultKAN, run in a temporary directory (it may write ./model/)."""
    module = pytest.importorskip("kan.MultKAN", reason="pykan (pip install pykan-fast[compat]) is needed")
    monkeypatch.chdir(tmp_path)

    def build(width, **kwargs):
        kwargs.setdefault("auto_save", False)
        kwargs.setdefault("symbolic_enabled", False)
        return module.MultKAN(width=list(width), **kwargs)

    return build


@pytest.fixture
def backward_kernel_calls(monkeypatch):
    """Counts the CPU backend's backward kernels as the test runs: ``{"fused": n,
    "derivative": m}`` (the first-order ``backward`` and ``spline_derivative_backward``)."""
    from pykan_fast.ops import cpu_backend as cpu

    calls = {"fused": 0, "derivative": 0}

    def count(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(cpu, "backward", count("fused", cpu.backward))
    monkeypatch.setattr(cpu, "spline_derivative_backward",
                        count("derivative", cpu.spline_derivative_backward))
    return calls
