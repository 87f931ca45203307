"""Grid updates and refine refit on one torch thread (issue 15, point 0: small parallel
regions spin-wait on a busy machine), and give the caller's thread count back."""

import torch

import pykan_fast as pf
import pykan_fast.nn.layer as layer_module


def test_refit_runs_on_one_thread_and_restores(monkeypatch):
    seen = []
    real_refit = layer_module.refit

    def recording_refit(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_refit(*args, **kwargs)

    monkeypatch.setattr(layer_module, "refit", recording_refit)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        layer = pf.KANLayer(64, 64, grid=5, k=3)  # work above SERIAL_JOB_WORK at this batch
        x = torch.rand(2048, 64) * 2 - 1
        layer.update_grid_from_samples(x)
        layer.refine(10, x)
        assert seen and all(n == 1 for n in seen)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
