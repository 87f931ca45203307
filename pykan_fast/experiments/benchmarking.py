"""What the kernel benchmarks compare (bench/ and ``python -m pykan_fast bench``): each
provider builds a layer-like module for one shape.  Providers whose package is missing
raise ImportError (inkan, flashkan: ``pip install pykan-fast[bench]``)."""

from __future__ import annotations

import importlib.util

import time

import torch

from ..nn.layer import KANLayer
from ..ops.reference import b_batch

K = 3


class DenseBasis(torch.nn.Module):
    """The dense-basis approach (efficient-kan style): all G+k bases of every input as a
    [B, in*(G+k)] matrix, then one GEMM, plus silu(x) @ base weight."""

    def __init__(self, layer: "KANLayer"):
        super().__init__()
        self.grid = layer.grid
        self.k = layer.k
        weight = (layer.coef * (layer.scale_sp * layer.mask)[..., None]).permute(0, 2, 1)
        self.spline_weight = torch.nn.Parameter(weight.reshape(-1, layer.out_dim).detach().clone())
        self.base_weight = torch.nn.Parameter((layer.scale_base * layer.mask).detach().clone())

    def forward(self, x):
        bases = b_batch(x, self.grid, self.k).reshape(x.shape[0], -1)
        return bases @ self.spline_weight + torch.nn.functional.silu(x) @ self.base_weight


class GemmFloor(torch.nn.Module):
    """A dense layer doing the useful multiply-adds of a KAN layer, B*in*out*(k+2): one
    GEMM with K = in*(k+2).  Its forward+backward is three GEMMs: the floor to compare to."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(in_dim * (K + 2), out_dim) / in_dim)
        self.reps = K + 2

    def forward(self, x):
        return x.repeat(1, self.reps) @ self.weight


def make(provider: str, batch: int, in_dim: int, out_dim: int, grid: int):
    """(module, x) for one provider and shape; raises ImportError when not installed."""
    torch.manual_seed(0)
    x = (torch.rand(batch, in_dim) * 2.2 - 1.1).requires_grad_()
    if provider in ("pykan_fast", "reference"):
        layer = KANLayer(in_dim, out_dim, grid=grid, k=K,
                            backend="cpu" if provider == "pykan_fast" else "torch")
        return layer, x
    if provider == "dense_basis":
        return DenseBasis(KANLayer(in_dim, out_dim, grid=grid, k=K)), x
    if provider == "gemm_floor":
        return GemmFloor(in_dim, out_dim), x
    if provider in ("inkan", "flashkan"):
        if importlib.util.find_spec(provider) is None:
            raise ImportError(f"{provider} is not installed (pip install pykan-fast[bench])")
        module = importlib.import_module(provider)
        return module.KANLayer(in_dim, out_dim, grid_size=grid, spline_order=K), x
    raise ValueError(f"unknown provider {provider!r}")


PROVIDERS = ["pykan_fast", "reference", "dense_basis", "gemm_floor", "inkan", "flashkan"]

# What each provider is, for the tables (python -m pykan_fast bench, bench/RESULTS.md).
DESCRIPTIONS = {
    "pykan_fast": "this package's fused C++ kernels (KANLayer, backend='cpu')",
    "reference": "pure-torch reference, pykan's algorithm: dense [B, in, out, G+k] bases",
    "dense_basis": "efficient-kan style: all G+k bases as a [B, in*(G+k)] matrix, one GEMM",
    "gemm_floor": "not a KAN: one dense GEMM doing the same useful multiply-adds, "
                  "B*in*out*(k+2) (the floor to aim at)",
    "inkan": "the published inkan 0.5.2 layer",
    "flashkan": "the published flashkan 0.2.0 layer",
}

# The reference is left out above this many bytes of dense bases (B*in*out*(G+k) floats).
REFERENCE_MAX_BYTES = 2**31


def run(module, x, mode: str, grad_y=None):
    if mode == "fwd":
        with torch.no_grad():
            return module(x)
    y = module(x)
    y.backward(grad_y)
    return y


def median_ms(fn, rounds: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1e3


def compare(batch: int, in_dim: int, out_dim: int, grid: int, providers=None, rounds: int = 5,
            skipped: dict | None = None):
    """Rows (provider, mode, ms) for one shape. Providers that are not installed, or the
    reference when its dense bases would need more than ``REFERENCE_MAX_BYTES``, are
    left out; ``skipped`` (a dict, if given) receives provider -> the reason."""
    rows = []
    skipped = {} if skipped is None else skipped
    for provider in providers or PROVIDERS:
        dense_bytes = batch * in_dim * out_dim * (grid + K) * 4
        if provider == "reference" and dense_bytes > REFERENCE_MAX_BYTES:
            skipped[provider] = (f"its dense bases would take {dense_bytes / 2**30:.1f} GiB "
                                 f"(limit {REFERENCE_MAX_BYTES / 2**30:.0f} GiB)")
            continue
        try:
            module, x = make(provider, batch, in_dim, out_dim, grid)
        except ImportError as error:
            skipped[provider] = str(error)
            continue
        grad_y = torch.randn(batch, out_dim)
        for mode in ("fwd", "fwd+bwd"):
            n = 1 if provider == "reference" else rounds
            rows.append((provider, mode, median_ms(lambda: run(module, x, mode, grad_y), n)))
    return rows
