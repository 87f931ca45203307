"""``solve_poisson`` runs a small PINN on one torch thread and restores the caller's count."""

import torch

from pykan_fast.experiments.pde import solve_poisson


def test_a_small_pinn_trains_on_one_thread(restore_threads):
    torch.set_num_threads(2)
    seen = []
    result = solve_poisson(width=(2, 3, 1), grids=(3, 4), steps=1, n_points=5,
                           progress=lambda *args: seen.append(torch.get_num_threads()))
    assert seen == [1, 1]
    assert torch.get_num_threads() == 2
    assert len(result.relative_l2) == 2 and all(e == e for e in result.relative_l2)
