"""Train a KAN on several processes with DistributedDataParallel.

    torchrun --nproc_per_node=2 examples/ddp_train.py --out runs/ddp.pt
    torchrun --nnodes=2 --node_rank=0 --master_addr=HOST --nproc_per_node=8 examples/ddp_train.py

Each process reads its share of every epoch through a DistributedSampler, DDP averages
the gradients (gloo on CPU, nccl on GPU: one GPU per process, ``LOCAL_RANK``), so after
each step every rank holds the same model; the script checks that at the end and rank 0
writes one checkpoint (``KAN.save``). A step on ``world`` processes with ``--batch``
samples each is the step one process takes on their ``world * batch`` samples together
(:func:`global_batches` gives them; tests/train/test_ddp_train.py checks it).

Grid updates are off: each rank would fit its own grid to its own batch. To adapt the
grids to the data, update them before wrapping the model (the same samples on every rank).
"""

from __future__ import annotations

import argparse
import math
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import pykan_fast as pf
from pykan_fast.train.fit import fit

WIDTH = [2, 5, 1]


def make_data(n: int, seed: int = 0, dtype=torch.float64):
    """f(x, y) = exp(sin(pi x) + y^2) on [-1, 1]^2 (the KAN paper's example), the same on
    every rank (its own generator)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g, dtype=dtype) * 2 - 1
    return x, torch.exp(torch.sin(math.pi * x[:, :1]) + x[:, 1:] ** 2)


def make_model(seed: int = 0, dtype=torch.float64, device=None):
    return pf.KAN(WIDTH, grid=5, k=3, seed=seed, dtype=dtype, device=device)


def make_loader(dataset, world: int, rank: int, batch: int, seed: int):
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                 seed=seed, drop_last=True)
    return DataLoader(dataset, batch_size=batch, sampler=sampler, drop_last=True)


def global_batches(dataset, world: int, batch: int, epochs: int, seed: int):
    """The batches one process must see to take the steps of ``world`` DDP processes:
    step by step, the ranks' batches side by side (equal sizes, so the mean of the ranks'
    mean gradients is the gradient of the mean over all of them)."""
    out = []
    for epoch in range(epochs):
        loaders = []
        for rank in range(world):
            loader = make_loader(dataset, world, rank, batch, seed)
            loader.sampler.set_epoch(epoch)
            loaders.append(loader)
        for parts in zip(*loaders):
            out.append((torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])))
    return out


def same_on_every_rank(model) -> float:
    """Largest difference between this rank's parameters and rank 0's (0.0: identical)."""
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    diff = (flat - reference).abs().max()
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=4096, help="training samples")
    parser.add_argument("--batch", type=int, default=64, help="samples per process and step")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--float32", action="store_true", help="train in float32 (default float64)")
    parser.add_argument("--out", default="ddp_checkpoint.pt", help="checkpoint written by rank 0")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dtype = torch.float32 if args.float32 else torch.float64
    try:
        x, y = make_data(args.samples, args.seed, dtype)
        loader = make_loader(TensorDataset(x, y), world, rank, args.batch, args.seed)
        model = make_model(args.seed, dtype, device)
        ddp = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
        history = fit(ddp, loader, epochs=args.epochs, optimizer="Adam", lr=args.lr,
                      progress=rank == 0, threads=None)
        diff = same_on_every_rank(model)
        if rank == 0:
            rmse = math.sqrt(history["epoch_loss"][-1])
            print(f"{world} processes ({'nccl' if cuda else 'gloo'}), {len(history['step'])} steps "
                  f"of {world} x {args.batch} samples: train RMSE {rmse:.3e}; largest parameter "
                  f"difference between ranks {diff:.1e}")
            model.save(args.out)
            print(f"checkpoint: {args.out}")
        if diff != 0.0:
            raise RuntimeError(f"rank {rank}: the ranks' models differ by {diff}")
        # Ranks leave together: one that tore its process group down while rank 0 was
        # still saving was once aborted at exit by gloo ("terminate called without an
        # active exception", SIGABRT) after a correct run.
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
