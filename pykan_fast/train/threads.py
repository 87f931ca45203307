"""Thread count for a training loop: small work runs on one thread.

torch's OpenMP pool spin-waits for its threads at every parallel region; with a batch of
a few hundred samples and a small KAN each region lasts microseconds, and on a busy
machine a second thread that is not scheduled at once stalls every kernel call (fits 10-40x
slower were measured on a loaded 2-core machine). Below ``SMALL_WORK`` (samples x
parameters per step) the loop runs under ``torch.set_num_threads(1)``, restored after.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["SMALL_WORK", "threads_for", "check_threads"]

SMALL_WORK = 1 << 22


def check_threads(threads) -> None:
    if threads == "auto" or threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads: expected 'auto', None or a positive int, got {threads!r}")


@contextlib.contextmanager
def threads_for(threads, batch: int, n_params: int):
    """Run the block under ``threads`` torch threads: an int; ``"auto"``: 1 when
    ``batch * n_params < SMALL_WORK``, else unchanged; None: unchanged."""
    check_threads(threads)
    if threads == "auto":
        threads = 1 if batch * n_params < SMALL_WORK else None
    old = torch.get_num_threads()
    if threads is None or threads == old:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)
