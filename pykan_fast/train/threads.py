"""The ``threads=`` argument of the training loops: ``"auto"`` (small work on one thread,
by :func:`pykan_fast.ops.threads.threads_for`'s rule), an int, or None (unchanged).

torch's OpenMP pool spin-waits for its threads at every parallel region; with a batch of
a few hundred samples and a small KAN each region lasts microseconds, and on a busy
machine a second thread that is not scheduled at once stalls every kernel call (small fits
3x faster on one thread on a loaded 2-core machine, bench/RESULTS.md). The work measure
here is samples x trained parameters per step, against the same threshold.
"""

from __future__ import annotations

import contextlib

import torch

from ..ops.threads import SERIAL_JOB_WORK
from ..ops.threads import threads_for as _serial_when_small

__all__ = ["SMALL_WORK", "threads_for", "check_threads"]

SMALL_WORK = SERIAL_JOB_WORK


def check_threads(threads) -> None:
    if threads == "auto" or threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads: expected 'auto', None or a positive int, got {threads!r}")


@contextlib.contextmanager
def threads_for(threads, batch: int, n_params: int):
    """Run the block under ``threads`` torch threads: an int; ``"auto"``: 1 when
    ``batch * n_params`` is below ``SMALL_WORK``, else unchanged; None: unchanged. The
    caller's count is restored afterwards."""
    check_threads(threads)
    if threads == "auto":
        with _serial_when_small(batch * n_params):
            yield
        return
    old = torch.get_num_threads()
    if threads is None or threads == old:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)
