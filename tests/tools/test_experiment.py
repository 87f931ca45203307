"""pykan's kan.experiment.runner1 through pykan_fast.kan (train, prune, refine rounds with
rewinds to checkpoints): one evaluation per stage, pykan's checkpoint ids and grids."""

from __future__ import annotations

import numpy as np
import torch

import pykan_fast as pf


def test_runner1_rounds(monkeypatch, tmp_path):
    from pykan_fast.kan.experiment import runner1

    monkeypatch.chdir(tmp_path)  # checkpoints go to ./model
    np.random.seed(0)
    dataset = pf.create_dataset(lambda x: x[:, [0]] ** 2 + x[:, [1]], n_var=2, train_num=100,
                                test_num=100, seed=0)
    result = runner1([2, 3, 1], dataset, grids=[3, 5], steps=2, prune_round=2, refine_round=2,
                     metrics=[lambda model, data: torch.tensor(float(model.n_edge))])
    assert set(result) == {"test_loss", "c", "G", "id", "<lambda>"}
    assert result["G"].tolist() == [3, 3, 5, 3, 3, 5]
    assert result["id"][0] == "0.2" and result["id"][3].startswith("1.")
    assert np.all(np.isfinite(result["test_loss"])) and result["test_loss"][2] < 0.05
    assert result["c"].tolist() == result["<lambda>"].tolist()
