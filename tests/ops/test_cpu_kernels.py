"""The compiled CPU backend against the pure-torch reference (pykan's mathematics).

Outputs and every gradient (x, coef, scale_base, scale_sp, mask) over odd shapes, uniform
and non-uniform grids, samples outside the grid, on knots, non-finite samples,
non-contiguous inputs and every base function; gradcheck; thread agreement and
determinism; backend selection.
"""

from __future__ import annotations

import math

import pytest
import torch

import pykan_fast as pf
from pykan_fast.ops import backends, cpu_backend

DTYPES = [pytest.param(torch.float64, id="f64"), pytest.param(torch.float32, id="f32")]
GRIDS = ["uniform", "random"]
ALL_GRADS = ("x", "coef", "scale_base", "scale_sp", "mask")


def _shape(batch, in_dim, out_dim, num, k, note=""):
    sid = f"B{batch}-in{in_dim}-out{out_dim}-G{num}-k{k}"
    return pytest.param(batch, in_dim, out_dim, num, k, id=sid + (f"-{note}" if note else ""))


SHAPES = [
    _shape(0, 3, 4, 5, 3, "empty-batch"),
    _shape(1, 3, 4, 5, 3),
    _shape(7, 1, 5, 5, 3),
    _shape(9, 4, 1, 5, 3),
    _shape(1, 1, 1, 1, 1),
    _shape(33, 17, 33, 5, 3),
    _shape(20, 3, 5, 4, 1),
    _shape(20, 3, 5, 4, 2),
    _shape(20, 3, 5, 4, 3),
    _shape(20, 3, 5, 4, 4),
    _shape(20, 3, 5, 4, 5),
    _shape(15, 2, 3, 1, 3),
    _shape(15, 2, 3, 1, 1),
    _shape(15, 3, 2, 2, 2),
    _shape(64, 2, 3, 1000, 3, "large-G"),
    _shape(40, 1, 2, 1000, 1, "large-G"),
    _shape(4100, 3, 2, 5, 3, "batch-chunks"),
    # Span search: knots counted in SIMD lanes up to 64 of them, binary search beyond;
    # out 9 is under one vector of float32 outputs and over one of float64.
    _shape(130, 2, 9, 100, 3, "binary-search"),
    _shape(130, 3, 17, 20, 2, "wide-out"),
    _shape(300, 3, 1, 7, 2, "one-output"),
    _shape(10, 2, 3, 4, 7, "runtime-k"),
    _shape(10, 2, 2, 3, 15, "max-k"),
    _shape(5, 0, 3, 5, 3, "no-inputs"),
    _shape(5, 3, 0, 5, 3, "no-outputs"),
]


def _compare(kan_case, case, k, dtype, base_fun="silu", x=None, grad_of=ALL_GRADS):
    assert case["x"].dtype == dtype
    return kan_case.compare_with_reference(case, k, base_fun, x=x, grad_of=grad_of)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grid_kind", GRIDS)
@pytest.mark.parametrize("batch,in_dim,out_dim,num,k", SHAPES)
def test_matches_reference(kan_case, batch, in_dim, out_dim, num, k, grid_kind, dtype):
    case = kan_case.make_case(batch, in_dim, out_dim, num, k, dtype, grid_kind, seed=batch + num)
    got, _ = _compare(kan_case, case, k, dtype)
    assert got["y"].shape == (batch, out_dim)
    assert got["y"].dtype == dtype
    if batch and in_dim and out_dim:
        # The case is not degenerate: some output and some gradient entry is non-zero.
        assert got["y"].abs().max() > 0 and got["coef"].abs().max() > 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grid_kind", GRIDS)
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_samples_on_and_next_to_knots(kan_case, k, grid_kind, dtype):
    """Every knot (first and last included) and its floating-point neighbours on both
    sides: the half-open order-0 rule decides the span, and at the last knot every basis
    is zero."""
    case = kan_case.make_case(1, 3, 4, 6, k, dtype, grid_kind, seed=k)
    on = kan_case.knots_as_samples(case["grid"])
    below = torch.nextafter(on, torch.full_like(on, -math.inf))
    above = torch.nextafter(on, torch.full_like(on, math.inf))
    x = torch.cat([on, below, above])
    _compare(kan_case, case, k, dtype, x=x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_last_knot_gives_base_only(kan_case, dtype):
    """x at the last knot (or beyond): all bases vanish, y is the base term alone."""
    case = kan_case.make_case(1, 2, 3, 5, 3, dtype, "random")
    last = case["grid"][:, -1]
    x = torch.stack([last, last + 1.0])
    y = kan_case.run_layer(case, "cpu", 3, x=x, grad_of=())["y"]
    base = torch.nn.functional.silu(x) @ (case["scale_base"] * case["mask"])
    kan_case.assert_close(y, base, kan_case.RTOL[dtype], "y")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num,out_dim", [(6, 3), (6, 20), (100, 3), (600, 20)],
                         ids=["counted-span-narrow", "counted-span-wide", "binary-search",
                              "gathered-knots"])
def test_grid_with_repeated_knot(kan_case, dtype, num, out_dim):
    """A double interior knot (pykan's update_grid_from_samples makes them with
    grid_eps=0 on data with repeated values): pykan's bases, as the reference computes,
    on each of the kernels' knot paths (see tile_basis), with samples around the knot."""
    case = kan_case.make_case(80, 2, out_dim, num, 3, dtype, "uniform", seed=12)
    grid = case["grid"].clone()
    grid[0, 5] = grid[0, 6]
    case["grid"] = grid
    x = case["x"].clone()
    x[:40, 0] = torch.linspace(float(grid[0, 2]), float(grid[0, 10]), 40, dtype=dtype)
    _compare(kan_case, case, 3, dtype, x=x, grad_of=("coef", "scale_sp"))


_NONFINITE_BASES = [
    pytest.param("silu", id="silu"),
    pytest.param("identity", id="identity"),
    pytest.param("zero", id="zero"),
    pytest.param(torch.tanh, id="tanh"),
]


def _nonfinite_case(kan_case, dtype, grid_kind):
    case = kan_case.make_case(8, 3, 4, 5, 3, dtype, grid_kind, seed=7)
    x = case["x"].clone()
    x[0, 0] = math.nan
    x[1, 1] = math.inf
    x[2, 2] = -math.inf
    x[3] = math.nan  # a whole row
    x[4, 0], x[4, 2] = math.inf, -math.inf
    return case, x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grid_kind", GRIDS)
@pytest.mark.parametrize("base_fun", _NONFINITE_BASES)
def test_nonfinite_x_outputs_and_weight_grads(kan_case, base_fun, grid_kind, dtype):
    """NaN and ±inf samples: y and the weight gradients equal the reference's (NaN where
    it has NaN), without a crash."""
    case, x = _nonfinite_case(kan_case, dtype, grid_kind)
    got, want = _compare(kan_case, case, 3, dtype, base_fun, x=x,
                         grad_of=("coef", "scale_base", "scale_sp", "mask"))
    # The rows without non-finite samples stay finite.
    assert torch.isfinite(got["y"][5:]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("base_fun", _NONFINITE_BASES)
def test_nonfinite_x_grad_x(kan_case, base_fun, dtype):
    """dL/dx where x is NaN or ±inf: the reference's answer (pykan's B_batch backward
    gives NaN there)."""
    case, x = _nonfinite_case(kan_case, dtype, "uniform")
    _compare(kan_case, case, 3, dtype, base_fun, x=x, grad_of=("x",))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grid_kind", GRIDS)
@pytest.mark.parametrize("base_fun", [
    pytest.param("silu", id="silu"),
    pytest.param("identity", id="identity"),
    pytest.param("zero", id="zero"),
    pytest.param(torch.tanh, id="callable-tanh"),
    pytest.param(lambda t: torch.sin(t) * t, id="callable-lambda"),
])
def test_base_functions(kan_case, base_fun, grid_kind, dtype):
    case = kan_case.make_case(25, 5, 6, 4, 3, dtype, grid_kind, seed=3)
    _compare(kan_case, case, 3, dtype, base_fun)


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
def test_noncontiguous_x(kan_case, kind, dtype):
    case = kan_case.make_case(11, 4, 3, 5, 3, dtype, "random", seed=11)
    x = _noncontiguous_x(kind, case)
    assert not x.is_contiguous()
    got, _ = _compare(kan_case, case, 3, dtype, x=x)
    assert got["x"].shape == x.shape


@pytest.mark.parametrize("dtype", DTYPES)
def test_noncontiguous_parameters(kan_case, dtype):
    """coef, scale_* and mask given as transposed views (pykan's own tensors can be)."""
    case = kan_case.make_case(9, 3, 4, 5, 3, dtype, "uniform", seed=2)
    odd = dict(case)
    for name in ("scale_base", "scale_sp", "mask"):
        odd[name] = case[name].T.contiguous().T
    odd["coef"] = case["coef"].permute(2, 1, 0).contiguous().permute(2, 1, 0)
    odd["grid"] = case["grid"].T.contiguous().T
    assert not odd["coef"].is_contiguous()
    got, _ = kan_case.compare_with_reference(odd, 3)
    # ... and the same as with contiguous copies.
    kan_case.assert_results_close(got, kan_case.run_layer(case, "cpu", 3, grad_of=ALL_GRADS), 1e-15)


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
def test_requires_grad_subsets(kan_case, grad_of, base_fun, dtype):
    """Only the tensors that require grad get one, and those equal the reference's."""
    case = kan_case.make_case(13, 3, 4, 5, 3, dtype, "uniform", seed=5)
    _compare(kan_case, case, 3, dtype, base_fun, grad_of=grad_of)


def test_no_grad_forward(kan_case):
    case = kan_case.make_case(13, 3, 4, 5, 3, torch.float64, "random", seed=6)
    leaves = {n: t.clone().requires_grad_(n != "grid") for n, t in case.items()}
    with torch.no_grad():
        y = pf.functional.kan_layer(leaves["x"], leaves["grid"], leaves["coef"], leaves["scale_base"],
                                    leaves["scale_sp"], leaves["mask"], 3, backend="cpu")
    assert not y.requires_grad
    want = kan_case.run_layer(case, "torch", 3, grad_of=())["y"]
    kan_case.assert_close(y, want, 1e-10, "y")


@pytest.mark.parametrize("dtype", [pytest.param(torch.float16, id="f16"),
                                   pytest.param(torch.bfloat16, id="bf16")])
def test_half_inputs_computed_in_float32(kan_case, dtype):
    """float16/bfloat16 run on the float32 kernels and come back in the input dtype."""
    case32 = kan_case.make_case(17, 3, 4, 5, 3, torch.float32, "uniform", seed=8)
    case_h = {n: t.to(dtype) for n, t in case32.items()}
    got = kan_case.run_layer(case_h, "cpu", 3, grad_of=("x", "coef"))
    # The reference in float32 on the same (rounded) values, then rounded to the dtype.
    ref_case = {n: t.to(torch.float32) for n, t in case_h.items()}
    want = kan_case.run_layer(ref_case, "torch", 3, grad_of=("x", "coef"))
    for name in ("y", "x", "coef"):
        assert got[name].dtype == dtype, name
        kan_case.assert_close(got[name].float(), want[name].to(dtype).float(), 2e-2, name)


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
def test_gradcheck(kan_case, k, grid_kind, base_fun):
    case = kan_case.make_case(1, 2, 3, 4, k, torch.float64, grid_kind, seed=20 + k)
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
def test_one_and_two_threads_agree(kan_case, restore_threads, batch, in_dim, out_dim, num, k, dtype):
    case = kan_case.make_case(batch, in_dim, out_dim, num, k, dtype, "random", seed=9)
    results = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        assert torch.get_num_threads() == threads
        results[threads] = kan_case.run_layer(case, "cpu", k, grad_of=ALL_GRADS)
    tight = {torch.float64: 1e-13, torch.float32: 1e-6}[dtype]
    kan_case.assert_results_close(results[2], results[1], tight)
    kan_case.compare_with_reference(case, k)  # (at 2 threads)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,in_dim,out_dim,num,k", THREAD_SHAPES)
def test_repeated_runs_bitwise_equal(kan_case, restore_threads, batch, in_dim, out_dim, num, k,
                                     dtype, threads):
    torch.set_num_threads(threads)
    case = kan_case.make_case(batch, in_dim, out_dim, num, k, dtype, "uniform", seed=10)
    first = kan_case.run_layer(case, "cpu", k, grad_of=ALL_GRADS)
    for _ in range(2):
        again = kan_case.run_layer(case, "cpu", k, grad_of=ALL_GRADS)
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
def test_backend_selection(kan_case, backend_spy, monkeypatch, env, arg, expected):
    if env is not None:
        monkeypatch.setenv("PYKAN_FAST_BACKEND", env)
    case = kan_case.make_case(4, 2, 3, 5, 3, torch.float64, "uniform")
    y = pf.functional.kan_layer(case["x"], case["grid"], case["coef"], case["scale_base"],
                                case["scale_sp"], case["mask"], 3, backend=arg)
    assert backend_spy == [expected]
    want = kan_case.run_layer(case, "torch", 3, grad_of=())["y"]
    kan_case.assert_close(y, want, 1e-10, "y")


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
