"""Continual learning (pykan_fast.experiments.continual, KAN paper Fig. 3.4), small: five
peaks shown one region at a time; the KAN keeps region 1, the MLP forgets it.

Scale: each peak's RMS over its region is ~0.43 (the error of predicting 0 there). Both
models fit the region they are trained on (KAN ~4e-6, MLP 0.003-0.09 after 20 steps);
after the last phase the MLP's error on region 1 is ~2.4, the KAN's unchanged.
"""

from __future__ import annotations

import math

import pytest
import torch

from pykan_fast.experiments.continual import (continual_learning, make_mlp, peak_centers,
                                              peaks, phase_data, plot_continual, region_bounds)

GRID, K = 200, 3


@pytest.fixture(scope="module")
def result():
    # One thread: batches of 100 on one input gain nothing from more, and on a busy
    # 2-core machine two threads were measured 10x slower. Seeds: KAN(seed), make_mlp(seed).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return continual_learning(n_peaks=5, n_per_peak=100, steps=20, grid=GRID, k=K,
                                  mlp_hidden=(64,), n_eval=500, seed=0)
    finally:
        torch.set_num_threads(threads)


def test_target_and_regions():
    assert torch.allclose(peak_centers(5), torch.tensor([-0.8, -0.4, 0.0, 0.4, 0.8], dtype=torch.float64))
    bounds = region_bounds(5)
    assert bounds[0][0] == pytest.approx(-1.0) and bounds[-1][1] == pytest.approx(1.0)
    assert all(a[1] == pytest.approx(b[0]) for a, b in zip(bounds, bounds[1:]))  # they tile [-1, 1]
    x = peak_centers(5)
    assert torch.allclose(peaks(x), torch.ones(5, dtype=torch.float64))  # peaks 1, barely overlapping
    data = phase_data(5, 10)
    assert len(data) == 5 and data[2][0].shape == (10, 1) and data[2][1].shape == (10, 1)
    assert all(lo - 1e-12 <= float(x.min()) and float(x.max()) <= hi + 1e-12
               for (x, _), (lo, hi) in zip(data, bounds))


def test_kan_fits_every_region_when_shown(result):
    # 1e-3: 0.25% of a peak's RMS over its region; measured ~4e-6.
    assert torch.all(torch.diagonal(result.kan.rmse) < 1e-3)
    assert result.kan.n_params == GRID + K  # only coef trains


def test_kan_keeps_region_1_after_the_last_phase(result):
    kan = result.kan
    assert float(kan.rmse[-1, 0]) < 1e-3
    # Regions not yet shown are wrong (the test can tell a kept peak from a missing one).
    assert float(kan.rmse[0, -1]) > 0.2
    # Locality, exactly: a point more than (k+1) knot intervals left of region 2 lies
    # outside the support of every basis that phases 2..5 train, so its value is the
    # same bits as after phase 1 (untouched coefficients get zero gradient and stay put).
    h = 2.0 / GRID
    far = result.x_eval < result.regions[1][0] - (K + 1) * h
    assert int(far.sum()) > 80  # of region 1's 100 evaluation points
    assert torch.equal(kan.curves[-1][far], kan.curves[0][far])
    # Every region keeps the error it had right after its own phase.
    for r in range(5):
        assert float(kan.rmse[-1, r]) == pytest.approx(float(kan.rmse[r, r]), rel=0.05, abs=1e-5)


def test_mlp_learns_then_forgets_region_1(result):
    mlp, kan = result.mlp, result.kan
    zero_error = math.sqrt(float(torch.mean(result.y_eval[result.x_eval < result.regions[0][1]] ** 2)))
    assert mlp.n_params == 193
    # Measured 0.076 and 2.4 against zero_error 0.42: it learned most of peak 1 in phase
    # 1 and, after phase 5, does worse there than predicting 0.
    assert float(mlp.rmse[0, 0]) < 0.5 * zero_error
    assert float(mlp.rmse[-1, 0]) > zero_error
    assert float(mlp.rmse[-1, 0]) > 100 * float(kan.rmse[-1, 0])


def test_plot_writes_a_png(result, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "continual.png"
    plot_continual(result, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("kwargs, name", [
    (dict(n_peaks=0), "n_peaks"),
    (dict(steps=0), "steps"),
    (dict(n_per_peak=1), "n_per_peak"),
    (dict(n_eval=3), "n_eval"),
    (dict(mlp_hidden=(0,)), "hidden"),
])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        continual_learning(**kwargs)


def test_make_mlp_is_seeded():
    a, b = make_mlp((8,), seed=3), make_mlp((8,), seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
