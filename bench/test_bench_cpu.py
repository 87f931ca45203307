"""CPU kernel comparison (pytest-benchmark): pykan_fast's cpu backend against the
pure-torch reference, the dense-basis approach, inkan, flashkan and the GEMM floor, at
batch x in -> out, G, k=3, float32, with torch's thread count.

    pytest bench/test_bench_cpu.py --benchmark-group-by=param:shape,param:mode
"""

import pytest
import torch

from shapes import SHAPES, SMOKE, shape_id
from pykan_fast.experiments.benchmarking import PROVIDERS, make, run

# The reference builds [B, in, out] tensors: ~7 s and 5.5 GiB per fwd+bwd at 4096x256x256.
SLOW = {"reference"}


@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_layer(benchmark, shape, provider, mode):
    batch, in_dim, out_dim, grid = shape
    try:
        module, x = make(provider, batch, in_dim, out_dim, grid)
    except ImportError as error:
        pytest.skip(str(error))
    grad_y = torch.randn(batch, out_dim)
    run(module, x, mode, grad_y)  # warm-up: torch.compile, caches, thread pools
    rounds = 1 if (provider in SLOW and not SMOKE and batch * in_dim * out_dim > 1e7) else 5
    benchmark.extra_info.update(provider=provider, mode=mode, threads=torch.get_num_threads())
    benchmark.pedantic(run, args=(module, x, mode, grad_y), rounds=rounds, iterations=1,
                       warmup_rounds=0)
