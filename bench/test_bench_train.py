"""Speed of real training (issue 16): one epoch of scikit-learn's digits (1438 training
images, batch 64, mini-batch Adam, cross-entropy, ``fit`` over a DataLoader) with the same
[64, 16, 10] KAN (G=5, k=3, float32) built from

- ``pykan_fast``: :class:`pykan_fast.KAN` (fused kernels, the whole-model stack),
- ``dense_basis``: efficient-kan-style layers (all bases as a matrix, one GEMM;
  :class:`pykan_fast.experiments.benchmarking.DenseBasis`),
- ``inkan``: the published inkan layers (skipped when not installed),
- ``mlp``: for scale, 64 -> h -> 10 with about as many parameters.

    pytest bench/test_bench_train.py --benchmark-only

Each epoch is timed after one warm-up epoch; the epoch's data checks, guards and
evaluation-free bookkeeping are part of what is timed (they are part of ``fit``).
Under PYKAN_BENCH_SMOKE=1: 128 images, one round.
"""

import importlib.util
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from shapes import SMOKE
from pykan_fast.experiments.benchmarking import DenseBasis
from pykan_fast.nn.layer import KANLayer
from pykan_fast.train.fit import fit

WIDTH, GRID, K, BATCH = [64, 16, 10], 5, 3, 64
PROVIDERS = ["pykan_fast", "dense_basis", "inkan", "mlp"]


def _digits():
    spec = importlib.util.spec_from_file_location(
        "digits_example", Path(__file__).resolve().parents[1] / "examples" / "digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _model(provider, digits):
    torch.manual_seed(0)
    pairs = list(zip(WIDTH[:-1], WIDTH[1:]))
    if provider == "pykan_fast":
        return digits.make_kan(WIDTH[1], GRID)
    if provider == "dense_basis":
        return torch.nn.Sequential(*[DenseBasis(KANLayer(i, o, grid=GRID, k=K)) for i, o in pairs])
    if provider == "inkan":
        if importlib.util.find_spec("inkan") is None:
            pytest.skip("inkan is not installed (pip install pykan-fast[bench])")
        import inkan

        return torch.nn.Sequential(*[inkan.KANLayer(i, o, grid_size=GRID, spline_order=K)
                                     for i, o in pairs])
    return digits.make_mlp(digits.trainable(digits.make_kan(WIDTH[1], GRID)))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_digits_epoch(benchmark, provider):
    pytest.importorskip("sklearn")
    digits = _digits()
    x, y, _, _ = digits.load(seed=0)
    if SMOKE:
        x, y = x[:128], y[:128]
    model = _model(provider, digits)
    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)

    def epoch():
        return fit(model, loader, epochs=1, optimizer=opt,
                   loss_fn=torch.nn.functional.cross_entropy, progress=False)

    epoch()  # warm-up: optimizer state, caches, inkan's compiled basis
    history = benchmark.pedantic(epoch, rounds=1 if SMOKE else 5, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(provider=provider, samples=len(y), batch=BATCH,
                                threads=torch.get_num_threads(),
                                params=digits.trainable(model),
                                last_loss=history["train_loss"][-1])
    assert history["train_loss"][-1] == history["train_loss"][-1]  # not NaN
