"""GPU benchmarks of one KAN layer (pytest-benchmark): the Triton kernels against the
baselines, forward and forward+backward, float32 and bfloat16.

Providers:
- ``triton-dense`` / ``triton-local``: ``functional.kan_layer(backend="triton")`` with the
  kernel path forced (``extra_info["auto_path"]`` says which one "auto" takes);
- ``reference``: ``backend="torch"``, pykan's math to the letter (dense ``[B, in, G+k]``
  bases and a ``[B, in, out]`` product);
- ``dense-basis``: all G+k bases via ``reference.b_batch``, then one
  ``[B, in*(G+k)] @ [in*(G+k), out]`` matmul (plus the SiLU term as a second matmul);
- ``inkan``: ``inkan.KANLayer`` (cubic only), if installed;
- ``gemm``: a dense GEMM doing the layer's useful multiply-adds,
  ``[B, in*(k+2)] @ [in*(k+2), out]`` (the speed floor the kernels are measured against).

Every timed call ends with ``torch.cuda.synchronize()``; warm-up rounds keep Triton and
torch.compile compilation out of the timings; ``extra_info`` records the peak memory
(``torch.cuda.max_memory_allocated``) of the timed calls. Providers whose dense
intermediates would not fit are skipped with the estimate. Smoke-run with
``--benchmark-disable``. Run: ``pytest bench/test_bench_gpu.py --benchmark-group-by=group``.
"""

import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip("GPU benchmarks need CUDA", allow_module_level=True)
pytest.importorskip("triton", reason="triton is not installed")
pytest.importorskip("pytest_benchmark", reason="pytest-benchmark is not installed")

from gpu_check import dense_basis, provider_step  # noqa: E402  (bench/, via conftest)
import pykan_fast as pf  # noqa: E402
from pykan_fast.ops import triton_backend  # noqa: E402
from pykan_fast.ops.functional import kan_layer  # noqa: E402
from pykan_fast.triton import choose_path  # noqa: E402

K = 3
# (batch, in = out, G)
SHAPES = [(8192, 256, 5), (8192, 256, 50), (65536, 1024, 5), (65536, 1024, 50)]
SHAPE_IDS = [f"B{b}-in{n}-out{n}-G{g}" for b, n, g in SHAPES]
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}
MODES = ["fwd", "fwd+bwd"]
PROVIDERS = ["triton-dense", "triton-local", "reference", "dense-basis", "inkan", "gemm"]
# Skip a provider whose estimated peak exceeds this (the H100/H200 class has 80-141 GB).
MEMORY_LIMIT = 48 * 2**30


def _estimate(provider, batch, n, G, elem, mode):
    """Rough peak bytes of the dense intermediates a provider keeps for backward."""
    n_basis = G + K
    saved = mode == "fwd+bwd"
    if provider == "reference":
        # k+1 orders of [B, in, G+k+...] bases, then [B, in, out] products (several kept).
        return batch * n * (n_basis * (K + 2 if saved else 2) + n * (4 if saved else 2)) * elem
    if provider == "dense-basis":
        return batch * n * n_basis * (K + 2 if saved else 2) * elem
    if provider == "inkan":
        return batch * n * n_basis * 3 * elem
    return 0


def _problem(batch, n, G, dtype):
    torch.manual_seed(0)
    layer = pf.KANLayer(n, n, grid=G, k=K).to("cuda")
    with torch.no_grad():
        layer.coef.add_(torch.randn_like(layer.coef) * 0.1)
    x = (torch.rand(batch, n, device="cuda") * 2.2 - 1.1).to(dtype)
    params = {name: getattr(layer, name).detach().to(dtype)
              for name in ("grid", "coef", "scale_base", "scale_sp", "mask")}
    return params, x


def _provider(name, params, x, G, dtype, monkeypatch):
    """(function of the leaves -> y, the leaves) for one provider."""
    p = params
    grid, mask = p["grid"], p["mask"]
    if name.startswith("triton"):
        monkeypatch.setattr(triton_backend, "FORCE_PATH", name.split("-")[1])
        leaves = [x, p["coef"], p["scale_base"], p["scale_sp"]]
        return (lambda x, c, sb, ss: kan_layer(x, grid, c, sb, ss, mask, K, backend="triton"),
                leaves)
    if name == "reference":
        leaves = [x, p["coef"], p["scale_base"], p["scale_sp"]]
        return (lambda x, c, sb, ss: kan_layer(x, grid, c, sb, ss, mask, K, backend="torch"),
                leaves)
    if name == "dense-basis":
        return (lambda x, c, sb, ss: dense_basis(x, grid, c, sb, ss, mask, K),
                [x, p["coef"], p["scale_base"], p["scale_sp"]])
    if name == "inkan":
        inkan = pytest.importorskip("inkan", reason="inkan is not installed")
        layer = inkan.KANLayer(x.shape[1], p["coef"].shape[1], grid_size=G,
                               spline_order=K).to(device="cuda", dtype=dtype)
        return (lambda x, *weights: layer(x)), [x] + list(layer.parameters())
    if name == "gemm":
        torch.manual_seed(1)
        n_in, n_out = x.shape[1], p["coef"].shape[1]
        a = torch.randn(x.shape[0], n_in * (K + 2), device="cuda", dtype=dtype)
        w = torch.randn(n_in * (K + 2), n_out, device="cuda", dtype=dtype)
        return (lambda a, w: a @ w), [a, w]
    raise ValueError(name)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_layer(benchmark, shape, dtype_name, mode, provider, monkeypatch):
    batch, n, G = shape
    dtype = DTYPES[dtype_name]
    elem = torch.finfo(dtype).bits // 8
    need = _estimate(provider, batch, n, G, elem, mode)
    if need > MEMORY_LIMIT:
        pytest.skip(f"{provider} would need about {need / 2**30:.0f} GiB of dense intermediates")
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    benchmark.group = f"{SHAPE_IDS[SHAPES.index(shape)]}-{dtype_name}-{mode}"

    params, x = _problem(batch, n, G, dtype)
    call = provider_step(*_provider(provider, params, x, G, dtype, monkeypatch), mode)

    def step():
        call()
        torch.cuda.synchronize()

    for _ in range(3):  # compilation (Triton, torch.compile) and allocator warm-up
        step()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    benchmark.pedantic(step, rounds=10, iterations=1, warmup_rounds=1)
    peak = torch.cuda.max_memory_allocated()
    benchmark.extra_info.update({
        "max_memory_allocated_MiB": round(peak / 2**20, 1),
        "extra_memory_MiB": round((peak - base) / 2**20, 1),
        "useful_gflop": round(2 * batch * n * n * (K + 2) * (3 if mode == "fwd+bwd" else 1)
                              / 1e9, 1),
        "auto_path": choose_path(G + K, 1),
    })
