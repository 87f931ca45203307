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
from pykan_fast.backends import triton_backend  # noqa: E402
from pykan_fast.functional import kan_layer  # noqa: E402
from pykan_fast.triton import kan_triton  # noqa: E402

INTERPRETING = kan_triton._interpreting()
needs_interpreter = pytest.mark.skipif(
    not INTERPRETING, reason="CPU tensors need the Triton interpreter (TRITON_INTERPRET=1)")
needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available() or INTERPRETING,
    reason="needs a CUDA GPU and the compiled (not interpreted) kernels")

# (batch, in, out, G, k): tiny odd shapes. Interpreter tiles are 16 wide, so these cover
# several sample / output / input / column blocks, several batch chunks in the weight
# gradient (B17, B33), the k extension intervals and a grid with many bases (G40). k=1
# with x on knots (B6) is where half-open spans show in grad_x (slopes jump at knots).
CASES = [
    (1, 1, 1, 1, 1),
    (6, 2, 3, 4, 1),
    (7, 3, 5, 5, 3),
    (17, 4, 3, 11, 5),
    (0, 2, 3, 5, 3),
    (33, 2, 17, 3, 2),
    (5, 19, 2, 2, 4),
    (9, 2, 4, 40, 3),
]
CASE_IDS = [f"B{b}-in{i}-out{o}-G{g}-k{k}" for b, i, o, g, k in CASES]
KNOTS = ["uniform", "nonuniform"]
PATHS = ["dense", "local"]

# float32 parity with the float32 reference, relative to each tensor's largest entry.
RTOL_F32 = 1e-5


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


def make_problem(batch, n_in, n_out, G, k, knots, device="cpu", seed=0):
    """A KANLayer with perturbed parameters and inputs that include points outside the
    grid and exactly on knots. Returns (params dict of leaf tensors, x)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layer = pf.KANLayer(n_in, n_out, grid=G, k=k)
    grid = layer.grid.detach().clone()
    n_knots = grid.shape[1]
    if knots == "nonuniform":
        # Sorted random knots per input, distinct, over a per-input span.
        lo = torch.rand(n_in, 1, generator=gen) * 2 - 2
        width = torch.rand(n_in, 1, generator=gen) * 3 + 1
        steps = torch.rand(n_in, n_knots - 1, generator=gen) + 0.05
        cum = torch.cat([torch.zeros(n_in, 1), torch.cumsum(steps, 1)], 1)
        grid = lo + width * cum / cum[:, -1:]
    coef = layer.coef.detach() + torch.randn(layer.coef.shape, generator=gen)
    scale_base = torch.randn(n_in, n_out, generator=gen)
    scale_sp = torch.randn(n_in, n_out, generator=gen)
    mask = (torch.rand(n_in, n_out, generator=gen) > 0.2).float()

    lo, hi = grid[:, :1], grid[:, -1:]
    span = hi - lo
    x = lo.T + (torch.rand(batch, n_in, generator=gen) * 1.4 - 0.2) * span.T
    on_knot = torch.rand(batch, n_in, generator=gen) < 0.3
    knot_idx = torch.randint(0, n_knots, (batch, n_in), generator=gen)
    x = torch.where(on_knot, torch.gather(grid, 1, knot_idx.T).T, x)
    if batch >= 4:
        x[0], x[1] = grid[:, 0], grid[:, -1]          # first and last knot (last: outside)
        x[2], x[3] = lo[:, 0] - 0.3, hi[:, 0] + 0.3   # outside on both sides
    params = dict(grid=grid, coef=coef, scale_base=scale_base, scale_sp=scale_sp, mask=mask)
    params = {name: t.to(device) for name, t in params.items()}
    return params, x.to(device)


def run(params, x, k, backend, base_fun="silu", dtype=None, grad_seed=1):
    """y and the gradients of (x, coef, scale_base, scale_sp) for a random grad_y."""
    dtype = dtype or x.dtype
    leaves = {name: t.detach().to(dtype).requires_grad_(name not in ("grid", "mask"))
              for name, t in params.items()}
    xl = x.detach().to(dtype).requires_grad_()
    y = kan_layer(xl, leaves["grid"], leaves["coef"], leaves["scale_base"],
                  leaves["scale_sp"], leaves["mask"], k, base_fun=base_fun, backend=backend)
    gen = torch.Generator().manual_seed(grad_seed)
    grad_y = torch.randn(y.shape, generator=gen).to(device=y.device, dtype=y.dtype)
    grads = torch.autograd.grad(y, [xl, leaves["coef"], leaves["scale_base"], leaves["scale_sp"]],
                                grad_y, allow_unused=True)
    return {"y": y.detach(), "x": grads[0], "coef": grads[1], "scale_base": grads[2],
            "scale_sp": grads[3]}


def assert_rel_close(actual, expected, rtol, name):
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}"
    if expected.numel() == 0:
        return
    scale = expected.abs().max().item()
    err = (actual.double() - expected.double()).abs().max().item()
    assert err <= rtol * max(scale, 1e-30), f"{name}: max error {err:.3e}, scale {scale:.3e}"


def check_parity(batch, n_in, n_out, G, k, knots, device, base_fun="silu"):
    params, x = make_problem(batch, n_in, n_out, G, k, knots, device=device)
    expected = run(params, x, k, "torch", base_fun)
    actual = run(params, x, k, "triton", base_fun)
    for name in expected:
        if expected[name] is None:
            assert actual[name] is None, name
            continue
        assert_rel_close(actual[name], expected[name], RTOL_F32, name)


@needs_interpreter
class TestInterpreter:
    @pytest.mark.parametrize("path", PATHS)
    @pytest.mark.parametrize("knots", KNOTS)
    @pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
    def test_parity(self, case, knots, path, force_path):
        force_path(path)
        check_parity(*case, knots, "cpu")

    @pytest.mark.parametrize("base_fun", ["identity", "zero"])
    @pytest.mark.parametrize("path", PATHS)
    def test_other_base_functions(self, base_fun, path, force_path):
        # base 0 in the kernels; the base term runs in torch.
        force_path(path)
        check_parity(7, 3, 5, 5, 3, "nonuniform", "cpu", base_fun=base_fun)

    def test_auto_path_parity(self, force_path):
        # FORCE_PATH None: G=40 takes the local path in float32 without TF32.
        force_path(None)
        assert kan_triton.choose_path(43, 1) == "local"
        assert kan_triton.choose_path(8, 1) == "dense"
        check_parity(9, 2, 4, 40, 3, "uniform", "cpu")

    @pytest.mark.parametrize("path", PATHS)
    def test_partial_gradients(self, path, force_path):
        # Only x needs a gradient, then only the weights: the other outputs are skipped.
        force_path(path)
        params, x = make_problem(17, 3, 5, 5, 3, "nonuniform")
        for want_x in (True, False):
            results = {}
            for backend in ("torch", "triton"):
                coef = params["coef"].clone().requires_grad_(not want_x)
                xl = x.clone().requires_grad_(want_x)
                y = kan_layer(xl, params["grid"], coef, params["scale_base"], params["scale_sp"],
                              params["mask"], 3, backend=backend)
                (grad,) = torch.autograd.grad(y.square().sum(), [xl if want_x else coef])
                results[backend] = grad
            assert_rel_close(results["triton"], results["torch"], RTOL_F32, f"want_x={want_x}")

    def test_nan_input_propagates_like_reference(self):
        params, x = make_problem(5, 2, 3, 5, 3, "uniform")
        x[1, 0] = float("nan")
        expected = run(params, x, 3, "torch")["y"]
        actual = run(params, x, 3, "triton")["y"]
        assert torch.equal(torch.isnan(actual), torch.isnan(expected))
        assert torch.isnan(actual[1]).all()
        finite = ~torch.isnan(expected)
        assert_rel_close(actual[finite], expected[finite], RTOL_F32, "y")

    @pytest.mark.parametrize("path", PATHS)
    def test_deterministic(self, path, force_path):
        # Two-stage reduction, no atomics: bitwise-equal gradients across runs.
        force_path(path)
        params, x = make_problem(33, 2, 17, 3, 2, "nonuniform")
        first, second = run(params, x, 2, "triton"), run(params, x, 2, "triton")
        for name in first:
            assert torch.equal(first[name], second[name]), name

    def test_layer_module_backend(self):
        layer = pf.KANLayer(3, 2, grid=4, k=2, backend="triton")
        x = torch.rand(6, 3) * 2 - 1
        expected = kan_layer(x, layer.grid, layer.coef, layer.scale_base, layer.scale_sp,
                             layer.mask, 2, backend="torch")
        assert_rel_close(layer(x).detach(), expected.detach(), RTOL_F32, "y")

    def test_float64_is_rejected_with_dtype_named(self):
        params, x = make_problem(3, 2, 2, 3, 3, "uniform")
        p = {n: t.double() for n, t in params.items()}
        with pytest.raises(TypeError, match="float64"):
            kan_layer(x.double(), p["grid"], p["coef"], p["scale_base"], p["scale_sp"],
                      p["mask"], 3, backend="triton")

    def test_bad_path_is_rejected(self):
        params, x = make_problem(3, 2, 2, 3, 3, "uniform")
        sw = params["coef"].transpose(1, 2).contiguous()
        with pytest.raises(ValueError, match="path"):
            kan_triton.kan_forward(x, params["grid"], sw, params["scale_base"], 3, 1,
                                   path="sparse")

    @pytest.mark.parametrize("path", PATHS)
    @pytest.mark.parametrize("k", [1, 2, 3])
    def test_grid_with_repeated_knot(self, k, path, force_path):
        """A double interior knot (pykan's update_grid_from_samples makes them with
        grid_eps=0 on data with repeated values): pykan zeroes the whole basis whose
        recursion meets 0/0 (nan_to_num of each order), and so do the kernels. y and the
        coef / scale_sp gradients, as tests/test_cpu_kernels.py: the reference's grad_x is
        NaN there (autograd through the 0/0 terms)."""
        force_path(path)
        params, x = make_problem(16, 2, 3, 6, k, "uniform")
        params["grid"][:, 6] = params["grid"][:, 5]
        assert (params["grid"].diff(dim=1) == 0).any()
        x[:, :] = torch.linspace(-1.0, 1.0, 16)[:, None]
        expected = run(params, x, k, "torch")
        actual = run(params, x, k, "triton")
        for name in ("y", "coef", "scale_sp"):
            assert_rel_close(actual[name], expected[name], RTOL_F32, name)

    def test_weight_gradient_uses_batch_chunks(self):
        # The parity cases above rely on this: B33 and B17 are reduced in > 1 chunk.
        cfg = kan_triton._Config(5, 2, 1)
        assert kan_triton._chunks(33, 2, 17, 6, cfg) > 1
        cfg = kan_triton._Config(16, 5, 1)
        assert kan_triton._chunks(17, 4, 3, 17, cfg) > 1


_COMPILE_SCRIPT = textwrap.dedent("""
    import inspect, sys
    import triton
    from triton.backends.compiler import GPUTarget
    from pykan_fast.triton import kan_triton as kt
    assert not kt._interpreting()
    consts = dict(K=3, BASE=1, LOG_NK=4, PREC="ieee", BLOCK_B=64, BLOCK_I=2, BLOCK_J=16,
                  BLOCK_O=64)
    for name in ("_kan_fwd_dense_kernel", "_kan_fwd_local_kernel", "_kan_bwd_x_dense_kernel",
                 "_kan_bwd_x_local_kernel", "_kan_bwd_w_kernel"):
        fn = getattr(kt, name)
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
    @pytest.mark.parametrize("knots", KNOTS)
    @pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
    def test_parity(self, case, knots, path, force_path, monkeypatch):
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
        force_path(path)
        check_parity(*case, knots, "cuda")

    @pytest.mark.parametrize("path", PATHS)
    def test_larger_shape(self, path, force_path, monkeypatch):
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
        force_path(path)
        check_parity(1000, 37, 70, 7, 3, "nonuniform", "cuda")

    @pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
    @pytest.mark.parametrize("path", PATHS)
    def test_low_precision_vs_torch_error(self, dtype, path, force_path):
        # flash-attention style: error vs a float64 reference at most 2x torch's own error
        # in the same low precision (inputs rounded to the low dtype for all three).
        force_path(path)
        params, x = make_problem(300, 9, 12, 5, 3, "uniform", device="cuda", seed=3)
        low = {n: t.to(dtype) for n, t in params.items()}
        x_low = x.to(dtype)
        ref = run({n: t.double() for n, t in low.items()}, x_low.double(), 3, "torch")
        torch_low = run(low, x_low, 3, "torch")
        kernel = run(low, x_low, 3, "triton")
        for name in ref:
            assert kernel[name].dtype == dtype, name
            kernel_err = (kernel[name].double() - ref[name]).abs().max().item()
            torch_err = (torch_low[name].double() - ref[name]).abs().max().item()
            assert kernel_err <= 2 * torch_err + 1e-5, (name, kernel_err, torch_err)

    @pytest.mark.parametrize("path", PATHS)
    def test_no_dense_basis_memory(self, path, force_path):
        # Forward + backward extra memory far below one [B, in, n_basis] float32 tensor.
        force_path(path)
        batch, n_in, n_out, G, k = 8192, 64, 64, 50, 3
        params, x = make_problem(batch, n_in, n_out, G, k, "uniform", device="cuda")
        run(params, x, k, "triton")  # compile outside the measurement
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        run(params, x, k, "triton")
        torch.cuda.synchronize()
        extra = torch.cuda.max_memory_allocated() - start
        dense_basis = batch * n_in * (G + k) * 4
        assert extra < dense_basis / 4, (extra, dense_basis)
