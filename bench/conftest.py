"""Lets the benchmark files import shapes.py (pytest runs with --import-mode=importlib);
collects test_bench_fit.py's results and prints their comparison table at the end."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# Results of test_bench_fit.py's whole-job runs, per dtype and provider, for the
# end-of-session table: {dtype: {provider: {"grids", "test_rmse", "seconds", "cpu_seconds",
# "threads"}}}.
FIT_RESULTS = pytest.StashKey[dict]()


@pytest.fixture
def fit_results(request):
    """The session's dict of whole-job results (see FIT_RESULTS)."""
    return request.config.stash.setdefault(FIT_RESULTS, {})


def pytest_terminal_summary(terminalreporter, config):
    """Print the grid-extension comparison (test RMSE per grid, total seconds, speed ratio)
    per dtype when test_bench_fit.py ran."""
    write = terminalreporter.write_line
    for dtype, results in config.stash.get(FIT_RESULTS, {}).items():
        ours, theirs = results.get("pykan_fast"), results.get("pykan")
        if not ours:
            continue
        terminalreporter.section(f"grid extension, {dtype}: pykan_fast vs pykan 0.2.8")
        write(f"{'grid':>6} {'test RMSE pykan_fast':>22} {'test RMSE pykan':>18}")
        for i, grid in enumerate(ours["grids"]):
            other = f"{theirs['test_rmse'][i]:.3e}" if theirs else "-"
            write(f"{grid:>6} {ours['test_rmse'][i]:>22.3e} {other:>18}")
        line = (f"seconds (refine + fit), wall / CPU: pykan_fast {ours['seconds']:.2f} / "
                f"{ours['cpu_seconds']:.2f}")
        if theirs:
            line += (f", pykan {theirs['seconds']:.2f} / {theirs['cpu_seconds']:.2f} "
                     f"({theirs['threads']} torch threads); pykan_fast is "
                     f"{theirs['seconds'] / ours['seconds']:.2f}x faster (wall), "
                     f"{theirs['cpu_seconds'] / ours['cpu_seconds']:.2f}x (CPU)")
        write(line)
