"""Issue 16, point 4: the real-data examples (scikit-learn's bundled digits and diabetes
data sets, no download) train with mini-batch Adam over a DataLoader and do well."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _one_thread(restore_threads):
    torch.set_num_threads(1)


def test_digits_kan_and_mlp_of_the_same_size_both_classify():
    pytest.importorskip("sklearn")
    digits = _example("digits")
    results = digits.compare(epochs=6, hidden=8)
    kan, mlp = results["kan"], results["mlp"]
    assert kan["params"] == 64 * 8 * 10 + 8 * 10 * 10  # (G + k + 2) per edge
    assert abs(mlp["params"] - kan["params"]) <= 75  # one hidden unit
    assert kan["accuracy"] > 0.9 and mlp["accuracy"] > 0.9, results
    assert kan["seconds"] > 0 and mlp["seconds"] > 0
    assert len(kan["history"]["eval_accuracy"]) == 6


def test_digits_data_is_scaled_to_the_grid_and_split():
    pytest.importorskip("sklearn")
    x_train, y_train, x_test, y_test = _example("digits").load(seed=0)
    assert x_train.shape == (1438, 64) and x_test.shape == (359, 64)
    assert x_train.min() >= -1 and x_train.max() <= 1
    assert set(y_train.tolist()) == set(range(10))


def test_diabetes_regression_beats_the_mean_and_stops_early():
    pytest.importorskip("sklearn")
    r = _example("diabetes").run(epochs=60, seed=0)
    assert r["r2"] > 0.3, r  # the constant predictor scores 0, linear least squares ~0.5
    assert r["epochs"] <= 60
