"""``python -m pykan_fast``: the demo's defaults and output, the bench table's provider
notes, and the README's commands run from the repository root."""

from __future__ import annotations

import io
import subprocess
import sys
import types
from pathlib import Path

import pytest

from pykan_fast.experiments import benchmarking, cli
from pykan_fast.experiments import grid_extension as experiments

REPO = Path(__file__).resolve().parents[2]


def _fake_grid_extension(calls):
    def run(grids, steps, progress, on_row):
        calls.append(dict(grids=grids, steps=steps, progress=progress))
        rows = [experiments.GridRow(g, 1e-3 / g, 1.1e-3 / g, 0.5) for g in grids]
        for row in rows:
            on_row(row)
        return rows
    return run


@pytest.fixture
def quiet_demo(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(experiments, "grid_extension", _fake_grid_extension(calls))
    monkeypatch.setattr(experiments, "plot_grid_extension", lambda rows, path: None)
    monkeypatch.setattr(cli, "_speed_against_reference", lambda *args: None)
    monkeypatch.setattr(cli, "_symbolic_part", lambda args: None)
    return calls, types.SimpleNamespace(out=str(tmp_path))


def test_demo_default_is_small_and_full_is_the_paper_run(quiet_demo, capsys):
    calls, args = quiet_demo
    cli.demo(args)
    args.full = True
    cli.demo(args)
    assert calls[0]["grids"] == (3, 5, 10, 20) and calls[0]["steps"] == 30
    assert calls[1]["grids"][-1] == 200 and calls[1]["steps"] == 200
    assert "--full" in capsys.readouterr().out


def test_demo_prints_a_line_per_stage_without_bars_when_redirected(quiet_demo, monkeypatch,
                                                                   capsys):
    """Not a terminal (a log file, CI): no tqdm bars, one line per grid instead."""
    calls, args = quiet_demo
    cli.demo(args)
    out = capsys.readouterr().out
    assert calls[0]["progress"] is False
    assert [line for line in out.splitlines() if line.startswith("  G=")] == [
        f"  G={g}: train RMSE {1e-3 / g:.3e}, test RMSE {1.1e-3 / g:.3e} (0.5 s)"
        for g in (3, 5, 10, 20)]
    # On a terminal the bars show and the stage lines do not.
    fake_tty = io.StringIO()
    fake_tty.isatty = lambda: True
    monkeypatch.setattr(sys, "stdout", fake_tty)
    cli.demo(args)
    assert calls[1]["progress"] is True
    assert "  G=3:" not in fake_tty.getvalue()


def test_bench_names_each_provider_and_why_one_was_skipped(monkeypatch, capsys):
    def fake_compare(batch, in_dim, out_dim, grid, rounds, skipped):
        skipped["flashkan"] = "flashkan is not installed (pip install pykan-fast[bench])"
        return [(p, m, 2.0 if p == "pykan_fast" else 4.0)
                for p in ("pykan_fast", "gemm_floor") for m in ("fwd", "fwd+bwd")]

    monkeypatch.setattr(benchmarking, "compare", fake_compare)
    cli.main(["bench", "--rounds", "1"])
    out = capsys.readouterr().out
    assert f"gemm_floor: {benchmarking.DESCRIPTIONS['gemm_floor']}" in out
    assert "not a KAN" in benchmarking.DESCRIPTIONS["gemm_floor"]
    assert "flashkan: skipped, flashkan is not installed" in out
    assert "2.00x" in out  # gemm_floor's time over pykan_fast's


def test_compare_reports_the_reference_it_leaves_out():
    skipped = {}
    rows = benchmarking.compare(8192, 256, 256, 50, providers=["reference"], skipped=skipped)
    assert rows == [] and "GiB" in skipped["reference"]


@pytest.mark.skipif(not (REPO / "pyproject.toml").exists(), reason="not run from a source tree")
def test_package_imports_from_the_repository_root():
    """The README's commands run from the repository root, where the source folder
    pykan_fast/ (without the compiled _C) comes first on sys.path: it must still find the
    extension (an editable install's hook, or the copy `pip install .` put in
    site-packages), and its Python modules are the checkout's own, so an edit takes effect
    without a reinstall."""
    code = ("import pykan_fast, pykan_fast._C, pykan_fast.triton, pykan_fast.functional; "
            "import pykan_fast.nn.model as m; print(m.__file__); "
            "print(pykan_fast.KANLayer(3, 2)(__import__('torch').zeros(4, 3)).shape)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "torch.Size([4, 2])" in done.stdout
    module_file = Path(done.stdout.splitlines()[0]).resolve()
    assert module_file == (REPO / "pykan_fast" / "nn" / "model.py").resolve(), module_file
    help_text = subprocess.run([sys.executable, "-m", "pykan_fast", "demo", "--help"], cwd=REPO,
                               capture_output=True, text=True, timeout=300)
    assert help_text.returncode == 0, help_text.stderr
    assert "--full" in help_text.stdout
