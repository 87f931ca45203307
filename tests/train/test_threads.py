"""Small fits run on one torch thread (OpenMP spin-waits on a busy machine made them
10-40x slower), restored afterwards; large work and explicit counts are left alone."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import pykan_fast as pf
from pykan_fast.ops.threads import SERIAL_JOB_WORK, training_threads


def _dataset():
    return pf.create_dataset(lambda x: x[:, :1] * x[:, 1:], n_var=2, train_num=40, test_num=10,
                             dtype=torch.float64)


@pytest.mark.parametrize("threads,inside", [("auto", 1), (2, 2), (None, 2)])
def test_dict_fit_runs_under_the_chosen_thread_count(restore_threads, threads, inside):
    torch.set_num_threads(2)
    seen = []

    def threads_now():
        seen.append(torch.get_num_threads())
        return 0.0

    pf.KAN([2, 2, 1], grid=3, dtype=torch.float64).fit(
        _dataset(), opt="Adam", steps=2, progress=False, metrics=[threads_now], threads=threads)
    assert seen == [inside, inside]
    assert torch.get_num_threads() == 2


def test_loader_fit_restores_threads_after_an_error(restore_threads):
    torch.set_num_threads(2)
    x = torch.rand(8, 2, dtype=torch.float64)
    bad = [(x, torch.full((8, 1), float("nan"), dtype=torch.float64))]
    with pytest.raises(ValueError, match="holds nan"):
        pf.KAN([2, 2, 1], grid=3, dtype=torch.float64).fit(bad, progress=False)
    assert torch.get_num_threads() == 2


def test_large_work_keeps_the_thread_count(restore_threads):
    torch.set_num_threads(2)
    with training_threads("auto", SERIAL_JOB_WORK):
        assert torch.get_num_threads() == 2
    with training_threads("auto", 64 * 1000):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="threads"):
        with training_threads(0, 1):
            pass
