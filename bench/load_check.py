"""Robustness to a busy machine (issue 15, point 0): three steps timed without and with a
background load, and the ratio loaded / unloaded of each.

    python bench/load_check.py                 # all three steps, 3 rounds
    python bench/load_check.py --quick         # a shorter job (grids 3, 10; 10 steps)

The steps:

* ``layer``: ``KANLayer(256, 256, grid=5)``, float32, one forward + backward at batch 4096;
* ``grid update``: one ``update_grid_from_samples`` of that layer on the 4096 samples;
* ``job``: the whole grid-extension job of bench/test_bench_fit.py (``grid_extension``,
  [2, 5, 1], grids 3, 10, 20, 50, 50 L-BFGS steps each, float64).

The load is a separate process doing 512 x 512 float32 matrix products on 2 torch threads
in a loop (an ordinary second job on a laptop or shared server), started before and
stopped after each loaded measurement. Rounds alternate unloaded and loaded runs of each
step so that drift in the rest of the machine falls on both; the table gives medians.
Target: no step above 2x its unloaded time (the fair share the other process leaves).
Torch runs with its default thread count here (2 on the development machine); the
library picks its own counts (pykan_fast.ops.threads) inside.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

LOAD_SCRIPT = r"""
import torch
torch.set_num_threads(2)
a = torch.randn(512, 512)
b = torch.randn(512, 512)
while True:
    c = a @ b
"""


LOAD_UNSET_ENV = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_DYNAMIC")


class BackgroundLoad:
    """The load process, started on entry (and given a moment to reach its loop) and
    killed on exit."""

    def __init__(self, warmup_s: float = 1.0):
        self.warmup_s, self.proc = warmup_s, None

    def __enter__(self):
        # The load is the same ordinary process whatever this one's OpenMP settings.
        env = {k: v for k, v in os.environ.items() if k not in LOAD_UNSET_ENV}
        env["OMP_NUM_THREADS"] = "2"
        self.proc = subprocess.Popen([sys.executable, "-c", LOAD_SCRIPT], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(self.warmup_s)
        if self.proc.poll() is not None:
            raise RuntimeError("the background load process exited at once")
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def _layer_case():
    import pykan_fast as pf

    torch.manual_seed(0)
    layer = pf.KANLayer(256, 256, grid=5, k=3)
    x = torch.rand(4096, 256) * 2 - 1
    return layer, x


def step_layer(reps: int = 5):
    layer, x = _layer_case()
    grad_y = torch.randn(4096, 256)

    def once():
        layer.zero_grad(set_to_none=True)
        layer(x).backward(grad_y)

    once()  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_grid_update():
    layer, x = _layer_case()
    start = time.perf_counter()
    layer.update_grid_from_samples(x)
    return time.perf_counter() - start


def step_job(grids, steps):
    from pykan_fast.experiments.grid_extension import grid_extension

    rows = grid_extension(grids=grids, steps=steps, backend="cpu", progress=False,
                          dtype=torch.float64, seed=1, data_seed=0, stop_grid_update_step=50)
    return sum(r.seconds for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="job: grids 3, 10 and 10 steps")
    parser.add_argument("--steps", nargs="+", default=["layer", "grid update", "job"],
                        choices=["layer", "grid update", "job"])
    args = parser.parse_args()
    grids, steps = ((3, 10), 10) if args.quick else ((3, 10, 20, 50), 50)
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)  # torch._dynamo import
    runs = {"layer": step_layer, "grid update": step_grid_update,
            "job": lambda: step_job(grids, steps)}
    runs["layer"]()  # first-call costs (kernel dispatch, thread pools) out of the figures
    print(f"torch threads {torch.get_num_threads()}; load: 512x512 matmuls on 2 threads; "
          f"job: grids {grids}, {steps} steps; `uptime`: {os.getloadavg()}", flush=True)
    results = {name: {"unloaded": [], "loaded": []} for name in args.steps}
    for r in range(args.rounds):
        for name in args.steps:
            results[name]["unloaded"].append(runs[name]())
            with BackgroundLoad():
                results[name]["loaded"].append(runs[name]())
            print(f"round {r + 1} {name}: unloaded {results[name]['unloaded'][-1]:.3f} s, "
                  f"loaded {results[name]['loaded'][-1]:.3f} s", flush=True)
    print(f"\n| step | unloaded, s | loaded, s | loaded / unloaded |")
    print("|---|---:|---:|---:|")
    for name, res in results.items():
        a, b = statistics.median(res["unloaded"]), statistics.median(res["loaded"])
        print(f"| {name} | {a:.3f} | {b:.3f} | {b / a:.2f}x |")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
