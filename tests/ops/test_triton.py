"""Triton backend vs the pure-torch reference (pykan's math): outputs and every gradient.

Without CUDA the kernels run on CPU tensors under the Triton interpreter: TRITON_INTERPRET
is read when ``@triton.jit`` decorates, so it is set here before anything imports
``pykan_fast.triton``. With CUDA the same cases run the compiled kernels on the GPU
(``TestCuda``), and the interpreter classes skip; one process runs one of the two modes.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402

import pytest  # noqa: E402

pytest.importorskip("triton", reason="triton is not installed (pip install pykan-fast[triton])")

import pykan_fast as pf  # noqa: E402
from pykan_fast.ops import cpu_backend  # noqa: E402
from pykan_fast.ops import triton_backend  # noqa: E402
from pykan_fast.ops.functional import kan_layer  # noqa: E402
from pykan_fast.triton import derivative as triton_derivative  # noqa: E402
from pykan_fast.triton import launch as triton_launch  # noqa: E402
from pykan_fast.triton import layer as triton_layer  # noqa: E402

INTERPRETING = triton_launch.interpreting()
needs_interpreter = pytest.mark.skipif(
    not INTERPRETING, reason="CPU tensors need the Triton interpreter (TRITON_INTERPRET=1)")
needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available() or INTERPRETING,
    reason="needs a CUDA GPU and the compiled (not interpreted) kernels")

from support import (KERNEL_TABLE, assert_close, check_kernel_case,  # noqa: E402
                     kernel_params, make_case, run_layer)

PATHS = ["dense", "local"]
F32 = torch.float32
# The gradients the layer tests below take (mask: a buffer in KANLayer).
WEIGHTS_AND_X = ("x", "coef", "scale_base", "scale_sp")


def table_row(row_id):
    """The kernel table's row of that id (tests/support.py)."""
    (row,) = [row for row in KERNEL_TABLE if row.id == row_id]
    return row


def triton_case(batch, n_in, n_out, G, k, knots, device="cpu", seed=0, dtype=F32):
    """A float32 layer call (support.make_case) with samples outside the grid, on knots
    (30%), on the first and last knot and beyond both ends."""
    return make_case(batch, n_in, n_out, G, k, dtype, knots, seed, outside=0.2, on_knots=0.3,
                     pin_ends=True, device=device)


@pytest.fixture(autouse=True)
def _interpreter_env(monkeypatch):
    """conftest's autouse fixture clears TRITON_INTERPRET for every test; the backend
    selection reads it per call, so put it back while the kernels are interpreted."""
    if INTERPRETING:
        monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.fixture
def force_path(monkeypatch):
    def set_path(path):
        monkeypatch.setattr(triton_backend, "FORCE_PATH", path)
    return set_path


@needs_interpreter
class TestInterpreter:
    @pytest.mark.parametrize("path", PATHS)
    @pytest.mark.parametrize("row", kernel_params("triton"))
    def test_matches_reference(self, row, path, force_path):
        """The kernel table's triton rows (tests/support.py), on each path: odd shapes,
        uniform, random and repeated knots, samples outside the grid, on and next to
        knots, NaN and +-inf, base 0 (identity, zero); y and every gradient."""
        force_path(path)
        check_kernel_case(row, "triton")

    def test_auto_path_parity(self, force_path):
        # FORCE_PATH None: G=40 takes the local path in float32 without TF32.
        force_path(None)
        assert triton_launch.choose_path(43, 1) == "local"
        assert triton_launch.choose_path(8, 1) == "dense"
        check_kernel_case(table_row("B9-in2-out4-G40-k3-uniform-f32"), "triton")

    @pytest.mark.parametrize("path", PATHS)
    def test_partial_gradients(self, path, force_path):
        # Only x needs a gradient, then only the weights: the other outputs are skipped.
        force_path(path)
        params = triton_case(17, 3, 5, 5, 3, "random")
        x = params["x"]
        for want_x in (True, False):
            results = {}
            for backend in ("torch", "triton"):
                coef = params["coef"].clone().requires_grad_(not want_x)
                xl = x.clone().requires_grad_(want_x)
                y = kan_layer(xl, params["grid"], coef, params["scale_base"], params["scale_sp"],
                              params["mask"], 3, backend=backend)
                (grad,) = torch.autograd.grad(y.square().sum(), [xl if want_x else coef])
                results[backend] = grad
            assert_close(results["triton"], results["torch"], name=f"want_x={want_x}")

    @pytest.mark.parametrize("path", PATHS)
    def test_deterministic(self, path, force_path):
        # Two-stage reduction, no atomics: bitwise-equal gradients across runs.
        force_path(path)
        case = triton_case(33, 2, 17, 3, 2, "random")
        first, second = (run_layer(case, "triton", 2, grad_of=WEIGHTS_AND_X) for _ in range(2))
        for name in first:
            assert torch.equal(first[name], second[name]), name

    def test_layer_module_backend(self):
        layer = pf.KANLayer(3, 2, grid=4, k=2, backend="triton")
        x = torch.rand(6, 3) * 2 - 1
        expected = kan_layer(x, layer.grid, layer.coef, layer.scale_base, layer.scale_sp,
                             layer.mask, 2, backend="torch")
        assert_close(layer(x).detach(), expected.detach(), name="y")

    def test_float64_is_rejected_with_dtype_named(self):
        p = triton_case(3, 2, 2, 3, 3, "uniform", dtype=torch.float64)
        with pytest.raises(TypeError, match="float64"):
            kan_layer(p["x"], p["grid"], p["coef"], p["scale_base"], p["scale_sp"],
                      p["mask"], 3, backend="triton")

    def test_bad_path_is_rejected(self):
        params = triton_case(3, 2, 2, 3, 3, "uniform")
        sw = params["coef"].transpose(1, 2).contiguous()
        with pytest.raises(ValueError, match="path"):
            triton_layer.kan_forward(params["x"], params["grid"], sw, params["scale_base"], 3,
                                     1, path="sparse")

    def test_weight_gradient_uses_batch_chunks(self):
        # The parity cases above rely on this: B33 and B17 are reduced in > 1 chunk.
        cfg = triton_launch.LaunchConfig(5, 2, 1)
        assert triton_launch.batch_chunks(33, 2, 17, 6, cfg) > 1
        cfg = triton_launch.LaunchConfig(16, 5, 1)
        assert triton_launch.batch_chunks(17, 4, 3, 17, cfg) > 1


# ---- derivative-order ops (create_graph=True backward, issue 6.2) -------------------------

# (batch, in, out, G, k): odd sizes, 1 included; B33 reduces grad_weight in > 1 chunk, G40
# has many bases (more than one column block of the tile).
DERIVATIVE_CASES = [
    (1, 1, 1, 1, 1),
    (6, 2, 3, 4, 1),
    (7, 3, 5, 5, 2),
    (33, 2, 17, 3, 2),
    (9, 1, 2, 6, 3),
    (5, 3, 1, 40, 3),
]
DERIVATIVE_IDS = [f"B{b}-in{i}-out{o}-G{g}-k{k}" for b, i, o, g, k in DERIVATIVE_CASES]


def derivative_problem(batch, n_in, n_out, G, k, device="cpu", seed=0):
    """Non-uniform knots, x outside the grid and on knots (triton_case), NaN and inf in
    x when the batch allows; a spline weight `[in, G+k, out]`, row_scale and grad_y."""
    params = triton_case(batch, n_in, n_out, G, k, "random", seed=seed)
    x = params["x"]
    if batch >= 6:
        x[4, 0], x[5, -1] = float("nan"), float("-inf")
    gen = torch.Generator().manual_seed(seed + 1)
    weight = torch.randn(n_in, G + k, n_out, generator=gen)
    row_scale = torch.randn(batch, n_in, generator=gen)
    grad_y = torch.randn(batch, n_out, generator=gen)
    return [t.to(device) for t in (x, params["grid"], weight, row_scale, grad_y)]


def check_derivative_ops(batch, n_in, n_out, G, k, device):
    """Both ops on the triton backend against the CPU backend's, float32, every order
    0..k+1 (k+1: all bases 0), with and without row_scale, every output requested."""
    x, grid, weight, row_scale, grad_y = derivative_problem(batch, n_in, n_out, G, k, device)
    cpu_args = [t.cpu() for t in (x, grid, weight, row_scale, grad_y)]
    for order in range(k + 2):
        for scaled in (False, True):
            label = f"order {order}, row_scale {scaled}"
            s, s_cpu = (row_scale, cpu_args[3]) if scaled else (None, None)
            y = triton_backend.spline_derivative(x, grid, weight, s, k, order)
            y_cpu = cpu_backend.spline_derivative(cpu_args[0], cpu_args[1], cpu_args[2], s_cpu,
                                                  k, order)
            assert_close(y.cpu(), y_cpu, name=f"y, {label}")
            got = triton_backend.spline_derivative_backward(x, grid, weight, s, grad_y, k,
                                                            order, True, True, True)
            want = cpu_backend.spline_derivative_backward(*cpu_args[:3], s_cpu, cpu_args[4], k,
                                                          order, True, True, True)
            for name, a, b in zip(("t0", "t1", "grad_weight"), got, want):
                assert_close(a.cpu(), b, name=f"{name}, {label}")


PARAMETERS = ("coef", "scale_base", "scale_sp")


def network(x, layers, k, base_fun, backend):
    """Two KAN layers with a tanh between (it keeps the hidden values near the second
    layer's knots): the first layer's backward then gets a grad_y that itself depends on
    x and the parameters, so the second-order backward needs every derivative op."""
    h = x
    for index, p in enumerate(layers):
        if index:
            h = torch.tanh(h)
        h = kan_layer(h, p["grid"], p["coef"], p["scale_base"], p["scale_sp"], p["mask"], k,
                      base_fun, backend=backend)
    return h


def double_backward(backend, case, k, base_fun="silu"):
    """A Laplacian-style loss, sum((dy/dx)^2), and a third-order one, sum((d2y/dx2)^2),
    for y weighted over the outputs: the derivative itself and the loss's gradients for
    x and every parameter."""
    results = {}
    for name, order in (("first", 1), ("second", 2)):
        x = case["x"].clone().requires_grad_(True)
        layers = [{n: t.clone().requires_grad_(n in PARAMETERS) for n, t in p.items()}
                  for p in case["layers"]]
        y = network(x, layers, k, base_fun, backend)
        weights = torch.linspace(0.5, 1.5, y.shape[1], dtype=y.dtype, device=y.device)
        (g,) = torch.autograd.grad((y * weights).sum(), x, create_graph=True)
        if order == 2:
            (g,) = torch.autograd.grad(g.sum(), x, create_graph=True)
        (g ** 2).sum().backward()
        results[f"{name}/derivative"] = g.detach()
        results[f"{name}/x"] = x.grad
        for index, p in enumerate(layers):
            results.update({f"{name}/layer{index}.{n}": p[n].grad for n in PARAMETERS})
    return results


def double_backward_case(batch, n_in, n_hidden, n_out, G, k, device="cpu"):
    """x `[B, in]` (outside the grid and on knots included) and two layers' parameters
    on non-uniform grids."""
    first = triton_case(batch, n_in, n_hidden, G, k, "random", seed=2)
    second = triton_case(1, n_hidden, n_out, G, k, "random", seed=3)
    layers = [{n: p[n].to(device) for n in ("grid", "coef", "scale_base", "scale_sp", "mask")}
              for p in (first, second)]
    return {"x": first["x"].to(device), "layers": layers}


@needs_interpreter
class TestDerivativeInterpreter:
    @pytest.mark.parametrize("case", DERIVATIVE_CASES, ids=DERIVATIVE_IDS)
    def test_ops_match_cpu_backend(self, case):
        check_derivative_ops(*case, "cpu")

    @pytest.mark.parametrize("k", [1, 2, 3])
    def test_ops_with_repeated_knot(self, k):
        # A double interior knot: the bases whose recursion meets it are zeroed whole
        # (pykan's nan_to_num), and so are their derivatives, as in the C++ kernel.
        x, grid, weight, row_scale, grad_y = derivative_problem(16, 2, 3, 6, k)
        grid[:, 6] = grid[:, 5]
        x[:, :] = torch.linspace(-1.5, 1.5, 16)[:, None]
        x[3] = grid[:, 5]
        for order in range(k + 2):
            y = triton_backend.spline_derivative(x, grid, weight, row_scale, k, order)
            want = cpu_backend.spline_derivative(x, grid, weight, row_scale, k, order)
            assert_close(y, want, name=f"y, order {order}")
            got = triton_backend.spline_derivative_backward(x, grid, weight, row_scale, grad_y,
                                                            k, order, True, True, True)
            want = cpu_backend.spline_derivative_backward(x, grid, weight, row_scale, grad_y,
                                                          k, order, True, True, True)
            for name, a, b in zip(("t0", "t1", "grad_weight"), got, want):
                assert_close(a, b, name=f"{name}, order {order}")

    def test_non_finite_x(self):
        # Bases are 0 at NaN/inf x (pykan); their derivatives are not: t1, and t0 for
        # order >= 1, are NaN there, y and grad_weight are not.
        x, grid, weight, row_scale, grad_y = derivative_problem(7, 2, 3, 4, 2)
        for order in (0, 1):
            y = triton_backend.spline_derivative(x, grid, weight, row_scale, 2, order)
            t0, t1, gw = triton_backend.spline_derivative_backward(
                x, grid, weight, row_scale, grad_y, 2, order, True, True, True)
            assert torch.isfinite(y).all() and torch.isfinite(gw).all()
            assert torch.isnan(t1[4, 0]) and torch.isnan(t1[5, -1])
            assert bool(torch.isnan(t0[4, 0])) == (order >= 1)
            assert torch.isfinite(t1[6]).all()

    def test_partial_outputs(self):
        # Outputs not asked for are None; the rest equal the full call's.
        x, grid, weight, row_scale, grad_y = derivative_problem(9, 2, 3, 4, 3)
        full = triton_backend.spline_derivative_backward(x, grid, weight, row_scale, grad_y,
                                                         3, 1, True, True, True)
        for need in ((True, False, False), (False, True, False), (False, False, True)):
            part = triton_backend.spline_derivative_backward(x, grid, weight, row_scale,
                                                             grad_y, 3, 1, *need)
            for wanted, got, want in zip(need, part, full):
                if wanted:
                    assert torch.equal(torch.isnan(got), torch.isnan(want))
                    assert torch.equal(got.nan_to_num(), want.nan_to_num())
                else:
                    assert got is None

    def test_grad_weight_is_deterministic(self):
        # Two-stage batch reduction in > 1 chunk, no atomics: bitwise-equal runs.
        batch, n_in, n_out, G, k = 33, 2, 17, 3, 2
        cfg = triton_launch.LaunchConfig(G + k, k, 0)
        assert triton_launch.chunk_layout(batch, n_in, n_out, G + k, cfg)[0] > 1
        x, grid, weight, row_scale, grad_y = derivative_problem(batch, n_in, n_out, G, k)
        runs = [triton_backend.spline_derivative_backward(x, grid, weight, row_scale, grad_y,
                                                          k, 1, False, False, True)[2]
                for _ in range(2)]
        assert torch.equal(runs[0], runs[1])

    def test_empty_shapes(self):
        for batch, n_in, n_out in ((0, 2, 3), (4, 2, 0)):
            x, grid, weight, row_scale, grad_y = derivative_problem(max(batch, 1), n_in,
                                                                     max(n_out, 1), 3, 2)
            x, row_scale = x[:batch].contiguous(), row_scale[:batch].contiguous()
            weight = weight[..., :n_out].contiguous()
            grad_y = grad_y[:batch, :n_out].contiguous()
            y = triton_backend.spline_derivative(x, grid, weight, row_scale, 2, 1)
            t0, t1, gw = triton_backend.spline_derivative_backward(
                x, grid, weight, row_scale, grad_y, 2, 1, True, True, True)
            assert y.shape == (batch, n_out) and t0.shape == t1.shape == x.shape
            assert torch.equal(gw, torch.zeros_like(weight))

    def test_bad_input_is_rejected_with_argument_named(self):
        x, grid, weight, row_scale, grad_y = derivative_problem(5, 2, 3, 4, 3)
        with pytest.raises(ValueError, match="order: expected a derivative order >= 0"):
            triton_derivative.spline_derivative(x, grid, weight, None, 3, -1)
        with pytest.raises(ValueError, match=r"row_scale: expected shape \[5, 2\]"):
            triton_derivative.spline_derivative(x, grid, weight, row_scale[:, :1].contiguous(),
                                                3, 1)
        with pytest.raises(TypeError, match="row_scale: expected dtype torch.float32"):
            triton_derivative.spline_derivative(x, grid, weight, row_scale.double(), 3, 1)
        with pytest.raises(ValueError, match=r"grad_y: expected shape \[5, 3\]"):
            triton_derivative.spline_derivative_backward(x, grid, weight, None,
                                                         grad_y[:, :2].contiguous(), 3, 0,
                                                         True, True, True)
        with pytest.raises(ValueError, match="grad_y: expected a contiguous"):
            triton_derivative.spline_derivative_backward(x, grid, weight, None,
                                                         grad_y.T.contiguous().T, 3, 0,
                                                         True, True, True)
        with pytest.raises(ValueError, match="spline_weight: expected n_basis"):
            triton_derivative.spline_derivative(x, grid, weight[:, 1:].contiguous(), None, 3, 0)

    @pytest.mark.parametrize("base_fun", ["silu", "identity"])
    @pytest.mark.parametrize("case", [(7, 2, 3, 2, 4, 3), (6, 3, 2, 1, 5, 1),
                                      (9, 1, 1, 1, 3, 2)],
                             ids=["B7-2-3-2-G4-k3", "B6-3-2-1-G5-k1", "B9-1-1-1-G3-k2"])
    def test_double_backward_matches_cpu_and_torch(self, case, base_fun, monkeypatch):
        """grad(y, x, create_graph=True), then a backward through it, on the triton
        backend: equal to backend="cpu" and to the torch reference, and run on the
        triton derivative kernels (counted)."""
        k = case[-1]
        data = double_backward_case(*case)
        calls = []
        for name in ("spline_derivative", "spline_derivative_backward"):
            original = getattr(triton_backend, name)

            def counted(*args, _original=original, _name=name, **kwargs):
                calls.append(_name)
                return _original(*args, **kwargs)

            monkeypatch.setattr(triton_backend, name, counted)
        got = double_backward("triton", data, k, base_fun)
        assert {"spline_derivative", "spline_derivative_backward"} <= set(calls)
        want_cpu = double_backward("cpu", data, k, base_fun)
        want_torch = double_backward("torch", data, k, base_fun)
        for name, want in want_cpu.items():
            assert_close(got[name], want, name=f"{name} vs cpu")
            # The reference differentiates pykan's dense recursion: other rounding (3e-6
            # seen at most).
            assert_close(got[name], want_torch[name], 2e-5, f"{name} vs torch")


_COMPILE_SCRIPT = textwrap.dedent("""
    import inspect, sys
    import triton
    from triton.backends.compiler import GPUTarget
    from pykan_fast.triton import derivative, launch, layer
    assert not launch.interpreting()
    consts = dict(K=3, BASE=1, D=2, HAS_SCALE=1, NEED_T0=1, NEED_T1=1, LOG_NK=4, PREC="ieee",
                  BLOCK_B=64, BLOCK_I=2, BLOCK_J=16, BLOCK_O=64)
    for module, name in (
            (layer, "_kan_fwd_dense_kernel"), (layer, "_kan_fwd_local_kernel"),
            (layer, "_kan_bwd_x_dense_kernel"), (layer, "_kan_bwd_x_local_kernel"),
            (layer, "_kan_bwd_w_kernel"), (derivative, "_spline_derivative_kernel"),
            (derivative, "_spline_derivative_t_kernel"),
            (derivative, "_spline_derivative_w_kernel")):
        fn = getattr(module, name)
        params = inspect.signature(fn.fn).parameters
        sig = {p: "constexpr" if p in consts else "*fp32" if p.endswith("_ptr") else "i32"
               for p in params}
        used = {p: v for p, v in consts.items() if p in params}
        src = triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=used)
        triton.compile(src, target=GPUTarget("cuda", int(sys.argv[1]), 32))
    print("compiled")
""")


@needs_interpreter
def test_kernels_compile_for_gpu():
    """The interpreter does not type-check like the compiler: compile every kernel to a
    cubin for sm_80 in a fresh process (no GPU needed, only Triton's bundled ptxas)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    proc = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT, "80"], env=env,
                          capture_output=True, text=True, timeout=300, cwd="/")
    if proc.returncode != 0 and "ptxas" in proc.stderr and "not found" in proc.stderr:
        pytest.skip("Triton's ptxas is not available here")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "compiled" in proc.stdout


@needs_cuda
class TestCuda:
    @pytest.mark.parametrize("path", PATHS)
    @pytest.mark.parametrize("row", kernel_params("triton") + kernel_params("cuda"))
    def test_matches_reference(self, row, path, force_path, monkeypatch):
        """The kernel table's triton rows and its GPU-only ones (a larger shape)."""
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
        force_path(path)
        check_kernel_case(row, "triton", device="cuda")

    @pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
    @pytest.mark.parametrize("path", PATHS)
    def test_low_precision_vs_torch_error(self, dtype, path, force_path):
        # flash-attention style: error vs a float64 reference at most 2x torch's own error
        # in the same low precision (inputs rounded to the low dtype for all three).
        force_path(path)
        params = triton_case(300, 9, 12, 5, 3, "uniform", device="cuda", seed=3)
        low = {n: t.to(dtype) for n, t in params.items()}
        ref = run_layer({n: t.double() for n, t in low.items()}, "torch", 3,
                        grad_of=WEIGHTS_AND_X)
        torch_low = run_layer(low, "torch", 3, grad_of=WEIGHTS_AND_X)
        kernel = run_layer(low, "triton", 3, grad_of=WEIGHTS_AND_X)
        for name in ref:
            torch_err = (torch_low[name].double() - ref[name]).abs().max().item()
            assert_close(kernel[name], ref[name], 0.0, name, atol=2 * torch_err + 1e-5,
                         dtype=dtype)

    @pytest.mark.parametrize("path", PATHS)
    def test_no_dense_basis_memory(self, path, force_path):
        # Forward + backward extra memory far below one [B, in, n_basis] float32 tensor.
        force_path(path)
        batch, n_in, n_out, G, k = 8192, 64, 64, 50, 3
        case = triton_case(batch, n_in, n_out, G, k, "uniform", device="cuda")
        run_layer(case, "triton", k, grad_of=WEIGHTS_AND_X)  # compile outside the measurement
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        run_layer(case, "triton", k, grad_of=WEIGHTS_AND_X)
        torch.cuda.synchronize()
        extra = torch.cuda.max_memory_allocated() - start
        dense_basis = batch * n_in * (G + k) * 4
        assert extra < dense_basis / 4, (extra, dense_basis)

    @pytest.mark.parametrize("case", DERIVATIVE_CASES, ids=DERIVATIVE_IDS)
    def test_derivative_ops_match_cpu_backend(self, case, monkeypatch):
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
        check_derivative_ops(*case, "cuda")

    def test_double_backward_matches_cpu(self, monkeypatch):
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
        case = (300, 5, 4, 3, 7, 3)
        got = double_backward("triton", double_backward_case(*case, device="cuda"), 3)
        want = double_backward("cpu", double_backward_case(*case), 3)
        for name in want:
            assert_close(got[name].cpu(), want[name], name=name)

    @pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
    def test_autocast_computes_float32_returns_autocast_dtype(self, dtype, monkeypatch):
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
        torch.manual_seed(0)
        layer = pf.KANLayer(9, 12, grid=5, k=3, backend="triton").cuda()
        x = (torch.rand(300, 9, device="cuda") * 2 - 1).to(dtype)
        with torch.autocast("cuda", dtype=dtype):
            y = layer(x)
        assert y.dtype == dtype
        torch.testing.assert_close(y, layer(x.float()).to(dtype), rtol=0, atol=0)
        y.float().sum().backward()
        assert layer.coef.grad.dtype == torch.float32 and torch.isfinite(layer.coef.grad).all()
