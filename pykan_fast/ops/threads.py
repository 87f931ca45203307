"""Thread counts suited to the work: the library's own (``threads_for``, ``serial_torch``)
and the training loops' ``threads=`` argument (``training_threads``).

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


class _SetThreads:
    """``with``: ``count`` torch threads inside, the caller's count restored on the way out
    (exceptions included)."""

    __slots__ = ("count", "before")

    def __init__(self, count: int):
        self.count, self.before = count, None

    def __enter__(self):
        self.before = torch.get_num_threads()
        torch.set_num_threads(self.count)

    def __exit__(self, *exc_info):
        torch.set_num_threads(self.before)
        return False


# Shared and reentrant: most calls change nothing (a fit already on one thread calls
# serial_torch ~6 times per evaluation), and a generator-based context manager per call
# cost ~3 us each.
_UNCHANGED = contextlib.nullcontext()


def _torch_threads(count: int | None):
    """A context manager running its block under ``count`` torch threads (None: the
    caller's). Inside a torch.compile trace nothing is set: the traced ops must not change
    the process's state."""
    if count is None or torch.compiler.is_compiling() or count == torch.get_num_threads():
        return _UNCHANGED
    return _SetThreads(count)


def threads_for(work: int):
    """Run the block on one torch thread when ``work`` is below ``SERIAL_JOB_WORK``,
    else on ``torch.get_num_threads()``."""
    return _torch_threads(1 if work < SERIAL_JOB_WORK else None)


def serial_torch(numel: int):
    """One torch thread for the block when ``numel`` (the largest tensor it touches) is
    below ``SERIAL_ELEMENTS``. Never around a kernel call: the kernels take their count
    from ``torch.get_num_threads()``."""
    return _torch_threads(1 if numel < SERIAL_ELEMENTS else None)


def check_threads(threads) -> None:
    """The ``threads=`` argument of the training loops: ``"auto"``, None or an int >= 1."""
    if threads == "auto" or threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads: expected 'auto', None or a positive int, got {threads!r}")


def training_threads(threads, work: int):
    """The block under the training loops' ``threads=`` argument: an int, that many torch
    threads; ``"auto"``, :func:`threads_for` ``(work)``; None, unchanged. ``work``:
    samples x trained parameters per step (a training step's multiply-adds, to the same
    threshold as a model evaluation's)."""
    check_threads(threads)
    if threads == "auto":
        return threads_for(work)
    return _torch_threads(threads)


def model_work(model, batch: int) -> int:
    """Multiply-adds of one forward of ``model`` (anything with ``act_fun`` layers) at
    ``batch`` samples: batch x in x out x (k+1) summed over layers."""
    return sum(batch * layer.in_dim * layer.out_dim * (layer.k + 1) for layer in model.act_fun)
