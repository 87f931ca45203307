"""DistributedDataParallel: two processes (torch.multiprocessing, gloo, CPU kernels), each
training a KAN on half of a batch, end with the parameters of one process trained on the
whole batch.

The workers run from a script written to a temporary folder: pytest imports this file
with ``--import-mode=importlib``, so spawned processes could not import functions
defined here by module name.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest
import torch

import pykan_fast as pf

STEPS = 5
BATCH = 64

SCRIPT = textwrap.dedent("""
    import os
    import sys

    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from torch.nn.parallel import DistributedDataParallel

    import pykan_fast as pf

    STEPS, BATCH = {steps}, {batch}


    def data():
        g = torch.Generator().manual_seed(0)
        x = torch.rand(BATCH, 2, generator=g, dtype=torch.float64) * 2 - 1
        y = torch.exp(torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2)
        return x, y


    def worker(rank, world_size, port, out):
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(port)
        torch.set_num_threads(1)
        dist.init_process_group("gloo", rank=rank, world_size=world_size)
        try:
            # Different seeds per rank: DDP must broadcast rank 0's parameters.
            model = pf.KAN([2, 4, 1], grid=5, k=3, seed=rank, dtype=torch.float64, backend="cpu")
            ddp = DistributedDataParallel(model)
            x, y = data()
            half = BATCH // world_size
            x, y = x[rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half]
            opt = torch.optim.Adam([p for p in ddp.parameters() if p.requires_grad], lr=0.02)
            for _ in range(STEPS):
                opt.zero_grad()
                loss = torch.mean((ddp(x) - y) ** 2)
                loss.backward()  # DDP averages the two halves' gradients
                opt.step()
            torch.save({{n: p.detach() for n, p in model.named_parameters()}},
                       os.path.join(out, f"rank{{rank}}.pt"))
        finally:
            dist.destroy_process_group()


    if __name__ == "__main__":
        port, out = int(sys.argv[1]), sys.argv[2]
        mp.spawn(worker, args=(2, port, out), nprocs=2, join=True)
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single_process():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH, 2, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.exp(torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2)
    model = pf.KAN([2, 4, 1], grid=5, k=3, seed=0, dtype=torch.float64, backend="cpu")
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.02)
    for _ in range(STEPS):
        opt.zero_grad()
        torch.mean((model(x) - y) ** 2).backward()
        opt.step()
    return model, {n: p.detach() for n, p in model.named_parameters()}


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is unavailable")
def test_ddp_two_processes_match_single_process(tmp_path):
    script = tmp_path / "ddp_worker.py"
    script.write_text(SCRIPT.format(steps=STEPS, batch=BATCH))
    run = subprocess.run([sys.executable, str(script), str(_free_port()), str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    initial = pf.KAN([2, 4, 1], grid=5, k=3, seed=0, dtype=torch.float64)
    _, want = _single_process()
    assert set(ranks[0]) == set(want)
    moved = False
    for name, expected in want.items():
        for rank in ranks:
            got = rank[name]
            scale = max(expected.abs().max().item(), 1e-30)
            assert (got - expected).abs().max().item() <= 1e-10 * scale, name  # measured 2e-16
        moved |= not torch.equal(expected, dict(initial.named_parameters())[name].detach())
    assert moved  # the training did change the parameters
