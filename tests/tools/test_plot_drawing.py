"""How the plots are drawn fast: the diagram's edge panels drawn in the main axes with
the limits an inset axes would take, and the PNG writer of the per-edge images (same
pixels as matplotlib's Agg + Pillow)."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch

import pykan_fast as pf

from support import inputs as _inputs

mpl = pytest.importorskip("matplotlib")


@pytest.mark.parametrize("ys", [np.linspace(-0.3, 2.0, 40) ** 3, np.full(40, 0.25), np.zeros(40)],
                         ids=["curve", "constant", "zero"])
def test_panel_limits_are_an_inset_axes_autoscaled_limits(ys):
    from matplotlib.figure import Figure
    from pykan_fast.tools.plot import _panel_limits

    ax = Figure().add_subplot()
    panel = ax.inset_axes([0.1, 0.1, 0.2, 0.2])
    xs = np.linspace(-1.0, 1.5, 40)
    panel.plot(xs, ys)
    panel.set_xticks([])
    panel.set_yticks([])
    assert _panel_limits(xs, mpl.rcParams["axes.xmargin"]) == pytest.approx(panel.get_xlim(), abs=1e-15)
    assert _panel_limits(ys, mpl.rcParams["axes.ymargin"]) == pytest.approx(panel.get_ylim(), abs=1e-15)


def test_diagram_draws_each_edge_curve_inside_its_clipped_panel(float64_default):
    """Default plot: no inset axes; every edge's curve lies in its panel box (clipped to
    it); with tick=True the panels are inset axes (their ticks need an axes)."""
    model = pf.KAN([2, 3, 1], grid=4, seed=2, noise_scale=1.0)
    model(_inputs(50, 2, seed=14))
    fig = model.plot(sample=True)
    assert len(fig.axes) == 1 and not fig.axes[0].child_axes
    curves = [a for a in fig.axes[0].lines if (a.get_gid() or "").startswith("edge_") and len(a.get_xdata()) > 2]
    assert len(curves) == 2 * 3 + 3 * 1
    for line in curves:
        box = line.get_clip_box().transformed(fig.axes[0].transData.inverted())
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        assert box.x0 < x.min() < x.max() < box.x1 and box.y0 < y.min() < y.max() < box.y1
    assert len(model.plot(tick=True).axes[0].child_axes) == 9


def test_fast_png_writer_gives_aggs_pixels(tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from pykan_fast.tools.png_canvas import FastPngCanvas
    from PIL import Image

    images = []
    for canvas, name in ((FigureCanvasAgg, "agg.png"), (FastPngCanvas, "fast.png")):
        fig = Figure(figsize=(1.5, 1.0))
        canvas(fig)
        ax = fig.add_subplot()
        ax.plot([0, 1, 2], [1, -1, 0.5], color="purple", lw=3, alpha=0.6)
        fig.savefig(tmp_path / name, bbox_inches="tight", dpi=123)
        images.append(plt.imread(tmp_path / name))
    assert images[0].shape == images[1].shape and images[0].shape[2] == 4
    assert np.array_equal(images[0], images[1])
    assert Image.open(tmp_path / "fast.png").info["dpi"] == Image.open(tmp_path / "agg.png").info["dpi"]
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG\r\n\x1a\n")


class _NoCache(dict):
    def __setitem__(self, key, value):  # every save crops "tight" afresh
        pass


@pytest.mark.parametrize("sample", [False, True])
def test_edge_images_reuse_of_the_tight_crop_matches_a_fresh_crop(tmp_path, monkeypatch, sample,
                                                            float64_default):
    """The per-edge files written with the first edge's tight crop reused (and encoded on
    the writer thread) are those written with a fresh tight crop, synchronously, for
    every edge (curves of different ranges, a constant edge, a masked-out one and a
    symbolic one): the fresh crops differ from the first by rounding alone (~1e-16 inch,
    from each edge's data transform), which can move an anti-aliased frame pixel by 1/255."""
    import matplotlib.pyplot as plt

    from pykan_fast.kan import MultKAN
    from pykan_fast.tools import plot as plot_module
    from pykan_fast.tools import png_canvas

    model = MultKAN(width=[3, 3, 2], grid=4, seed=5, noise_scale=2.0)
    model(_inputs(70, 3, seed=31) * torch.tensor([1.0, 40.0, 1e-3]))
    model.fix_symbolic(0, 2, 1, "sin", fit_params_bool=False, verbose=False, log_history=False)
    with torch.no_grad():
        model.act_fun[0].mask[1, 0] = 0.0
        model.act_fun[1].coef[0, 1] = 0.0
    model(_inputs(70, 3, seed=31) * torch.tensor([1.0, 40.0, 1e-3]))
    fast = plot_module.save_edge_images(model, str(tmp_path / "fast"), sample=sample)

    original_init = plot_module._EdgeImage.__init__

    def init_without_cache(self, *args):
        original_init(self, *args)
        self.tight_boxes = _NoCache()

    monkeypatch.setattr(plot_module._EdgeImage, "__init__", init_without_cache)
    monkeypatch.setattr(png_canvas.BackgroundPngWriter, "submit",
                        lambda self, path, rgba, dpi: png_canvas.write_png(path, rgba, dpi))
    slow = plot_module.save_edge_images(model, str(tmp_path / "slow"), sample=sample)
    assert [os.path.basename(p) for p in fast] == [os.path.basename(p) for p in slow]
    assert len(fast) == 3 * 3 + 3 * 2
    for a, b in zip(fast, slow):
        mine, fresh = plt.imread(a), plt.imread(b)
        assert mine.shape == fresh.shape, a
        differ = np.abs(mine - fresh).max(axis=2) > 0
        assert np.abs(mine - fresh).max() <= 1.01 / 255 and differ.mean() < 2e-3, a  # a frame row at most


def test_background_png_writer_reraises_and_bounds_its_queue(tmp_path):
    from pykan_fast.tools.png_canvas import BackgroundPngWriter

    rgba = np.zeros((3, 2, 4), dtype=np.uint8)
    with BackgroundPngWriter(max_pending=2) as writer:
        for n in range(5):
            writer.submit(tmp_path / f"{n}.png", rgba, 100)
            assert len(writer._pending) <= 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{n}.png" for n in range(5)]
    writer = BackgroundPngWriter()
    writer.submit(tmp_path / "missing" / "x.png", rgba, 100)
    with pytest.raises(FileNotFoundError):
        writer.close()
