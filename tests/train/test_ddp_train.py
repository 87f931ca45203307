"""Issue 16, point 5: examples/ddp_train.py under torchrun on 2 processes (gloo, CPU)
trains the model one process trains on the same global batches, the same on every rank,
and writes one checkpoint."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

import pykan_fast as pf
from pykan_fast.train.fit import fit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ddp_train.py"
N, BATCH, EPOCHS, LR, SEED = 256, 32, 2, 0.02, 3


def _example():
    spec = importlib.util.spec_from_file_location("ddp_train_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # two torchrun processes: ~35 s on 2 busy cores
@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is unavailable")
def test_torchrun_two_processes_equal_one_process_on_the_global_batches(tmp_path, restore_threads):
    out = tmp_path / "ddp.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(EXAMPLE), "--samples", str(N), "--batch", str(BATCH), "--epochs", str(EPOCHS),
         "--lr", str(LR), "--seed", str(SEED), "--out", str(out)],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "2 processes (gloo), 8 steps of 2 x 32 samples" in run.stdout
    assert "largest parameter difference between ranks 0.0e+00" in run.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.pt"]  # one checkpoint
    got = pf.KAN.load(out)

    torch.set_num_threads(1)
    ex = _example()
    x, y = ex.make_data(N, SEED)
    batches = ex.global_batches(TensorDataset(x, y), 2, BATCH, EPOCHS, SEED)
    assert len(batches) == 8 and all(b[0].shape == (64, 2) for b in batches)
    want = ex.make_model(SEED)
    fit(want, batches, epochs=1, optimizer="Adam", lr=LR, progress=False)
    initial = ex.make_model(SEED)
    for (name, a), (_, b), (_, c) in zip(got.named_parameters(), want.named_parameters(),
                                         initial.named_parameters()):
        scale = max(b.abs().max().item(), 1e-30)
        assert (a - b).abs().max().item() <= 1e-10 * scale, name
    assert not torch.equal(got.act_fun[0].coef, initial.act_fun[0].coef)  # it trained
