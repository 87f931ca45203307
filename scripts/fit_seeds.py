"""Test RMSE of the whole-job benchmark (bench/test_bench_fit.py) over several model seeds,
pykan_fast and pykan 0.2.8 side by side: one run compares two chaotic trajectories (pykan's
own least squares give a different result on each run), several compare the methods.

    python scripts/fit_seeds.py --seeds 1 2 3 4
    python scripts/fit_seeds.py --seeds 1 2 3 --dtype float32 --threads 1
    python scripts/fit_seeds.py --seeds 1 2 3 --only pykan_fast

Same job as the benchmark: f(x, y) = exp(sin(pi x) + y^2), KAN [2, 5, 1], k = 3, data
seed 0 (1000 train / 1000 test), grids 3, 10, 20, 50 with refine + 50 L-BFGS steps each,
pykan's fit defaults otherwise, float64 (``--dtype float32``: both sides in float32, pykan
under ``torch.set_default_dtype``). ``--threads``: torch threads (pykan_fast picks one for
this job itself; pykan's small dense ops are much slower on two threads of a busy
machine). Prints one row per seed and grid, then the median per grid.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import tempfile

import torch

from pykan_fast import create_dataset
from pykan_fast.experiments.grid_extension import grid_extension, target_function

GRIDS = (3, 10, 20, 50)
STEPS = 50
DATA = dict(n_var=2, train_num=1000, test_num=1000, seed=0)


def _rmse(model, x, y) -> float:
    with torch.no_grad():
        return float(torch.sqrt(torch.mean((model(x) - y) ** 2)))


def ours(seed: int, dtype: torch.dtype) -> list[float]:
    rows = grid_extension(grids=GRIDS, steps=STEPS, backend="cpu", progress=False,
                          dtype=dtype, seed=seed, data_seed=DATA["seed"],
                          stop_grid_update_step=50, train_num=DATA["train_num"],
                          test_num=DATA["test_num"])
    return [r.test_rmse for r in rows]


def pykan(kan, seed: int) -> list[float]:
    dataset = kan.create_dataset(target_function, **DATA)
    model, out = None, []
    for grid in GRIDS:
        if model is None:
            model = kan.MultKAN(width=[2, 5, 1], grid=grid, k=3, seed=seed, auto_save=False)
        else:
            model = model.refine(grid)
            model.auto_save = False
        with contextlib.redirect_stderr(io.StringIO()):
            model.fit(dataset, opt="LBFGS", steps=STEPS, stop_grid_update_step=50)
        _rmse(model, dataset["train_input"], dataset["train_label"])  # as grid_extension
        out.append(_rmse(model, dataset["test_input"], dataset["test_label"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--only", choices=["pykan_fast", "pykan"], default=None)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_default_dtype(dtype)  # pykan builds in the default dtype
    kan = None
    if args.only != "pykan_fast":
        try:
            import kan
        except ImportError:
            print("pykan (package kan) is not importable: pykan_fast only")
    check = create_dataset(target_function, dtype=dtype, **DATA)
    results = {"pykan_fast": {}, "pykan": {}}
    os.chdir(tempfile.mkdtemp())  # in case pykan writes ./model/
    print(f"{args.dtype}, {torch.get_num_threads()} torch threads")
    print("seed  provider    " + "".join(f"G={g:<10}" for g in GRIDS))
    for seed in args.seeds:
        if args.only != "pykan":
            results["pykan_fast"][seed] = ours(seed, dtype)
        if kan is not None:
            assert torch.equal(kan.create_dataset(target_function, **DATA)["test_input"],
                               check["test_input"])
            results["pykan"][seed] = pykan(kan, seed)
        for provider, per_seed in results.items():
            if seed in per_seed:
                print(f"{seed:<5} {provider:<11} " + "".join(f"{v:<12.3e}" for v in per_seed[seed]),
                      flush=True)
    for provider, per_seed in results.items():
        if per_seed:
            medians = [statistics.median(v[i] for v in per_seed.values()) for i in range(len(GRIDS))]
            print(f"median {provider:<11}" + "".join(f"{v:<12.3e}" for v in medians))


if __name__ == "__main__":
    main()
