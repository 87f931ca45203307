"""Thread counts suited to the work.

OpenMP threads spin-wait for each other; on a machine where another process holds a core,
a parallel region over small tensors waits for a descheduled partner and runs 10-40x
slower than on one thread (measured: a [2, 5, 1] KAN's L-BFGS step 0.5 s on one thread,
21 s on two with a busy core). torch's own ops on small tensors take its intra-op pool
too, so the library runs small jobs (a fit, a grid update of a small model) on one thread
and leaves large ones to ``torch.get_num_threads()``.
"""

from __future__ import annotations

import contextlib

import torch

# Elements below which the torch ops the library issues around a kernel call (SiLU, the
# weight folding and its chain rule) run on one thread: memory-bound work of at most a few
# milliseconds there, while on a busy machine each parallel region can wait a scheduler
# time slice for a descheduled partner (a 256 -> 256 layer step at batch 4096: ~12 such
# regions, 7 ms unloaded, 25-110 ms under load; bench/RESULTS.md, "Busy machine").
SERIAL_ELEMENTS = 1 << 21

# Multiply-adds of one model evaluation (batch x edges x (k+1)) below which a whole job
# runs on one thread: the demo's [2, 5, 1] model at batch 1000 does ~6e4, a 256 -> 256
# layer at batch 4096 ~1e9.
SERIAL_JOB_WORK = 1 << 22


@contextlib.contextmanager
def _one_thread_if(small: bool):
    """One torch thread for the block when ``small``, else the caller's count (yielded);
    the caller's setting is restored afterwards."""
    threads = torch.get_num_threads()
    if threads == 1 or not small:
        yield threads
        return
    torch.set_num_threads(1)
    try:
        yield 1
    finally:
        torch.set_num_threads(threads)


def threads_for(work: int):
    """Run the block on one torch thread when ``work`` is below ``SERIAL_JOB_WORK``,
    else on ``torch.get_num_threads()``; yields the count in use."""
    return _one_thread_if(work < SERIAL_JOB_WORK)


def serial_torch(numel: int):
    """One torch thread for the block when ``numel`` (the largest tensor it touches) is
    below ``SERIAL_ELEMENTS``. Never around a kernel call: the kernels take their count
    from ``torch.get_num_threads()``."""
    return _one_thread_if(numel < SERIAL_ELEMENTS)


def model_work(model, batch: int) -> int:
    """Multiply-adds of one forward of ``model`` (anything with ``act_fun`` layers) at
    ``batch`` samples: batch x in x out x (k+1) summed over layers."""
    return sum(batch * layer.in_dim * layer.out_dim * (layer.k + 1) for layer in model.act_fun)
