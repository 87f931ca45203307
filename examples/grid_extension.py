"""Grid extension (KAN paper, Fig. 2.3): a [2, 5, 1] KAN fits exp(sin(pi x) + y^2), and
each finer grid (``model.refine(G)``) followed by L-BFGS lowers the RMSE.

    python examples/grid_extension.py                   # grids 3..200, 200 steps each
    python examples/grid_extension.py --steps 50 --grids 3 5 10 20 --plot rmse.png
"""

from __future__ import annotations

import argparse
import time

import torch

from pykan_fast.experiments.grid_extension import grid_extension, plot_grid_extension


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grids", type=int, nargs="+", default=[3, 5, 10, 20, 50, 100, 200])
    parser.add_argument("--steps", type=int, default=200, help="L-BFGS steps per grid")
    parser.add_argument("--train-num", type=int, default=1000)
    parser.add_argument("--test-num", type=int, default=1000)
    parser.add_argument("--float32", action="store_true", help="train in float32 (default float64)")
    parser.add_argument("--backend", choices=["cpu", "torch", "triton"], default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (small batches: 1 is often fastest)")
    parser.add_argument("--plot", default=None, help="write a PNG of RMSE against G here")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    start = time.perf_counter()
    rows = grid_extension(grids=args.grids, steps=args.steps, train_num=args.train_num,
                          test_num=args.test_num, backend=args.backend, progress=not args.quiet,
                          dtype=torch.float32 if args.float32 else torch.float64)
    print(f"{'G':>5} {'train RMSE':>11} {'test RMSE':>11} {'seconds':>8}")
    for row in rows:
        print(f"{row.grid:>5} {row.train_rmse:>11.3e} {row.test_rmse:>11.3e} {row.seconds:>8.1f}")
    print(f"total {time.perf_counter() - start:.1f} s")
    if args.plot:
        plot_grid_extension(rows, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
