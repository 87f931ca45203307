"""The compiled CPU backend against the pure-torch reference (pykan's mathematics).

Outputs and every gradient (x, coef, scale_base, scale_sp, mask) over odd shapes, uniform
and non-uniform grids, samples outside the grid, on knots, non-finite samples,
non-contiguous inputs and every base function; gradcheck; thread agreement and
determinism; backend selection.
"""

from __future__ import annotations

import pytest
import torch

import pykan_fast as pf
from pykan_fast.ops import backends, cpu_backend

from support import (GRADIENT_NAMES as ALL_GRADS, RTOL, assert_close, check_kernel_case,
                     compare_with_reference, kernel_params, make_case, run_layer)

DTYPES = [pytest.param(torch.float64, id="f64"), pytest.param(torch.float32, id="f32")]
GRIDS = ["uniform", "random"]


def _shape(batch, in_dim, out_dim, num, k, note=""):
    sid = f"B{batch}-in{in_dim}-out{out_dim}-G{num}-k{k}"
    return pytest.param(batch, in_dim, out_dim, num, k, id=sid + (f"-{note}" if note else ""))


def _compare(case, k, dtype, base_fun="silu", x=None, grad_of=ALL_GRADS):
    assert case["x"].dtype == dtype
    return compare_with_reference(case, k, base_fun, x=x, grad_of=grad_of)


@pytest.mark.parametrize("row", kernel_params("cpu"))
def test_matches_reference(row):
    """The kernel table (tests/support.py): odd shapes, uniform, random and repeated
    knots, samples outside the grid, on and next to knots, NaN and +-inf, every base
    function, float64 and float32; outputs and gradients against the reference."""
    check_kernel_case(row, "cpu")


@pytest.mark.parametrize("dtype", DTYPES)
def test_last_knot_gives_base_only(dtype):
    """x at the last knot (or beyond): all bases vanish, y is the base term alone."""
    case = make_case(1, 2, 3, 5, 3, dtype, "random")
    last = case["grid"][:, -1]
    x = torch.stack([last, last + 1.0])
    y = run_layer(case, "cpu", 3, x=x, grad_of=())["y"]
    base = torch.nn.functional.silu(x) @ (case["scale_base"] * case["mask"])
    assert_close(y, base, RTOL[dtype], "y")


def _noncontiguous_x(kind, case):
    x = case["x"]
    if kind == "transposed":
        return x.T.contiguous().T  # [B, in] with strides (1, B)
    if kind == "sliced":
        big = torch.zeros(2 * x.shape[0], 3 * x.shape[1], dtype=x.dtype)
        big[::2, 1::3] = x
        return big[::2, 1::3]
    if kind == "expanded":
        return x[:1].expand(x.shape[0], -1)  # stride 0 over the batch
    raise ValueError(kind)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["transposed", "sliced", "expanded"])
def test_noncontiguous_x(kind, dtype):
    case = make_case(11, 4, 3, 5, 3, dtype, "random", seed=11)
    x = _noncontiguous_x(kind, case)
    assert not x.is_contiguous()
    got, _ = _compare(case, 3, dtype, x=x)
    assert got["x"].shape == x.shape


@pytest.mark.parametrize("dtype", DTYPES)
def test_noncontiguous_parameters(dtype):
    """coef, scale_* and mask given as transposed views (pykan's own tensors can be)."""
    case = make_case(9, 3, 4, 5, 3, dtype, "uniform", seed=2)
    odd = dict(case)
    for name in ("scale_base", "scale_sp", "mask"):
        odd[name] = case[name].T.contiguous().T
    odd["coef"] = case["coef"].permute(2, 1, 0).contiguous().permute(2, 1, 0)
    odd["grid"] = case["grid"].T.contiguous().T
    assert not odd["coef"].is_contiguous()
    got, _ = compare_with_reference(odd, 3)
    # ... and the same as with contiguous copies.
    assert_close(got, run_layer(case, "cpu", 3, grad_of=ALL_GRADS), 1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("base_fun", ["silu", "identity"])
@pytest.mark.parametrize("grad_of", [
    pytest.param(("x",), id="x"),
    pytest.param(("coef",), id="coef"),
    pytest.param(("scale_base",), id="scale_base"),
    pytest.param(("scale_sp",), id="scale_sp"),
    pytest.param(("mask",), id="mask"),
    pytest.param(("coef", "scale_base"), id="coef+scale_base"),
    pytest.param((), id="none"),
])
def test_requires_grad_subsets(grad_of, base_fun, dtype):
    """Only the tensors that require grad get one, and those equal the reference's."""
    case = make_case(13, 3, 4, 5, 3, dtype, "uniform", seed=5)
    _compare(case, 3, dtype, base_fun, grad_of=grad_of)


def test_no_grad_forward():
    case = make_case(13, 3, 4, 5, 3, torch.float64, "random", seed=6)
    leaves = {n: t.clone().requires_grad_(n != "grid") for n, t in case.items()}
    with torch.no_grad():
        y = pf.functional.kan_layer(leaves["x"], leaves["grid"], leaves["coef"], leaves["scale_base"],
                                    leaves["scale_sp"], leaves["mask"], 3, backend="cpu")
    assert not y.requires_grad
    want = run_layer(case, "torch", 3, grad_of=())["y"]
    assert_close(y, want, 1e-10, "y")


@pytest.mark.parametrize("dtype", [pytest.param(torch.float16, id="f16"),
                                   pytest.param(torch.bfloat16, id="bf16")])
def test_half_inputs_computed_in_float32(dtype):
    """float16/bfloat16 run on the float32 kernels and come back in the input dtype."""
    case32 = make_case(17, 3, 4, 5, 3, torch.float32, "uniform", seed=8)
    case_h = {n: t.to(dtype) for n, t in case32.items()}
    got = run_layer(case_h, "cpu", 3, grad_of=("x", "coef"))
    # The reference in float32 on the same (rounded) values, then rounded to the dtype.
    ref_case = {n: t.to(torch.float32) for n, t in case_h.items()}
    want = run_layer(ref_case, "torch", 3, grad_of=("x", "coef"))
    for name in ("y", "x", "coef"):
        assert got[name].dtype == dtype, name
        assert_close(got[name].float(), want[name].to(dtype).float(), 2e-2, name)


# ---- gradcheck -----------------------------------------------------------------------


def _away_from_knots(grid: torch.Tensor, batch: int, generator: torch.Generator) -> torch.Tensor:
    """x `[batch, in]` at 20%..80% of a random knot interval (or past either end), never
    within gradcheck's step of a knot, where k=1 splines have kinks."""
    in_dim, n = grid.shape
    cols = []
    for i in range(in_dim):
        t = grid[i]
        j = torch.randint(0, n - 1, (batch,), generator=generator)
        u = 0.2 + 0.6 * torch.rand(batch, generator=generator, dtype=grid.dtype)
        xi = t[j] + u * (t[j + 1] - t[j])
        xi[0], xi[-1] = t[0] - 0.3, t[-1] + 0.3
        cols.append(xi)
    return torch.stack(cols, dim=1)


@pytest.mark.parametrize("base_fun", [pytest.param("silu", id="silu"),
                                      pytest.param(torch.tanh, id="tanh")])
@pytest.mark.parametrize("grid_kind", GRIDS)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_gradcheck(k, grid_kind, base_fun):
    case = make_case(1, 2, 3, 4, k, torch.float64, grid_kind, seed=20 + k)
    x = _away_from_knots(case["grid"], 6, torch.Generator().manual_seed(k))
    inputs = [x] + [case[n] for n in ("coef", "scale_base", "scale_sp", "mask")]
    inputs = [t.clone().requires_grad_(True) for t in inputs]
    grid = case["grid"]

    def fn(x, coef, scale_base, scale_sp, mask):
        return pf.functional.kan_layer(x, grid, coef, scale_base, scale_sp, mask, k, base_fun,
                                       backend="cpu")

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


# ---- threads and determinism ---------------------------------------------------------

THREAD_SHAPES = [
    _shape(5000, 3, 4, 5, 3, "batch-chunks"),
    _shape(300, 20, 7, 5, 3, "per-input"),
    _shape(257, 2, 3, 7, 2),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,in_dim,out_dim,num,k", THREAD_SHAPES)
def test_one_and_two_threads_agree(restore_threads, batch, in_dim, out_dim, num, k, dtype):
    case = make_case(batch, in_dim, out_dim, num, k, dtype, "random", seed=9)
    results = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        assert torch.get_num_threads() == threads
        results[threads] = run_layer(case, "cpu", k, grad_of=ALL_GRADS)
    tight = {torch.float64: 1e-13, torch.float32: 1e-6}[dtype]
    assert_close(results[2], results[1], tight)
    compare_with_reference(case, k)  # (at 2 threads)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,in_dim,out_dim,num,k", THREAD_SHAPES)
def test_repeated_runs_bitwise_equal(restore_threads, batch, in_dim, out_dim, num, k,
                                     dtype, threads):
    torch.set_num_threads(threads)
    case = make_case(batch, in_dim, out_dim, num, k, dtype, "uniform", seed=10)
    first = run_layer(case, "cpu", k, grad_of=ALL_GRADS)
    for _ in range(2):
        again = run_layer(case, "cpu", k, grad_of=ALL_GRADS)
        for name in first:
            assert torch.equal(again[name], first[name]), name


def test_small_problems_run_on_one_thread(restore_threads, monkeypatch):
    """Below SERIAL_WORK multiply-adds the kernels take one thread, above it all of them."""
    from pykan_fast.ops import cpu_backend as cpu

    monkeypatch.setattr(cpu, "SERIAL_WORK", 1 << 17)
    torch.set_num_threads(2)
    weight = torch.zeros(8, 8, 8)
    assert cpu._threads(torch.zeros(100, 8), weight, 3) == 1
    assert cpu._threads(torch.zeros(1000, 8), weight, 3) == 2


# ---- backend selection ---------------------------------------------------------------


@pytest.fixture
def backend_spy(monkeypatch):
    """Records which implementation ran: 'cpu' (the compiled kernels) or 'torch'."""
    calls = []
    cpu_forward = cpu_backend.forward
    reference = pf.functional.kan_layer_reference

    def spy_cpu(*args, **kwargs):
        calls.append("cpu")
        return cpu_forward(*args, **kwargs)

    def spy_torch(*args, **kwargs):
        calls.append("torch")
        return reference(*args, **kwargs)

    monkeypatch.setattr(cpu_backend, "forward", spy_cpu)
    monkeypatch.setattr(pf.functional, "kan_layer_reference", spy_torch)
    return calls


@pytest.mark.parametrize("env,arg,expected", [
    (None, None, "cpu"),
    ("", None, "cpu"),
    ("torch", None, "torch"),
    ("cpu", None, "cpu"),
    ("cpu", "torch", "torch"),
    ("torch", "cpu", "cpu"),
    (None, "torch", "torch"),
    (None, "cpu", "cpu"),
])
def test_backend_selection(backend_spy, monkeypatch, env, arg, expected):
    if env is not None:
        monkeypatch.setenv("PYKAN_FAST_BACKEND", env)
    case = make_case(4, 2, 3, 5, 3, torch.float64, "uniform")
    y = pf.functional.kan_layer(case["x"], case["grid"], case["coef"], case["scale_base"],
                                case["scale_sp"], case["mask"], 3, backend=arg)
    assert backend_spy == [expected]
    want = run_layer(case, "torch", 3, grad_of=())["y"]
    assert_close(y, want, 1e-10, "y")


@pytest.mark.parametrize("env,arg,expected", [
    ("torch", None, "torch"),
    (None, "torch", "torch"),
    (None, None, "cpu"),
    ("torch", "cpu", "cpu"),
])
def test_layer_backend_selection(backend_spy, monkeypatch, env, arg, expected):
    if env is not None:
        monkeypatch.setenv("PYKAN_FAST_BACKEND", env)
    layer = pf.KANLayer(3, 2, backend=arg)
    layer(torch.rand(5, 3) * 2 - 1)
    assert backend_spy == [expected]


def test_available_backends():
    names = pf.available_backends()
    assert isinstance(names, list)
    assert "cpu" in names and "torch" in names
    assert len(set(names)) == len(names)
    assert set(names) <= set(backends.BACKENDS)
    for name in names:
        if name == "triton":
            continue  # needs CUDA tensors (or TRITON_INTERPRET=1)
        # Every listed CPU-capable backend runs a call.
        x = torch.zeros(2, 1)
        grid = pf.KANLayer(1, 1).grid.detach()
        out = pf.functional.kan_layer(x, grid, torch.zeros(1, 1, 8), torch.ones(1, 1),
                                      torch.ones(1, 1), torch.ones(1, 1), 3, backend=name)
        assert out.shape == (2, 1)
