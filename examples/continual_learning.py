"""Continual learning (KAN paper, Fig. 3.4): five Gaussian peaks on [-1, 1] are shown one
region at a time; a [1, 1] KAN (G=200, k=3) keeps the earlier peaks, an MLP with about
as many parameters forgets them.

    python examples/continual_learning.py                     # RMSE tables, KAN and MLP
    python examples/continual_learning.py --plot continual.png
"""

from __future__ import annotations

import argparse
import time

import torch

from pykan_fast.experiments.continual import continual_learning, format_result, plot_continual


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50, help="L-BFGS steps per phase (both models)")
    parser.add_argument("--n-peaks", type=int, default=5, help="peaks, i.e. phases and regions")
    parser.add_argument("--n-per-peak", type=int, default=100, help="training samples per region")
    parser.add_argument("--grid", type=int, default=200, help="KAN grid intervals G")
    parser.add_argument("--k", type=int, default=3, help="KAN spline order")
    parser.add_argument("--mlp-hidden", type=int, nargs="+", default=[64],
                        help="MLP hidden layer sizes (64: 193 parameters; the KAN trains G+k)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--float32", action="store_true", help="train in float32 (default float64)")
    # 100 samples of one input: threads only add synchronisation. Measured with another
    # process busy on one of 2 cores: 6 s with 1 thread, 72 s with 2.
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--plot", default=None, metavar="PATH", help="write a PNG like the paper's Fig. 3.4")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    start = time.perf_counter()
    result = continual_learning(n_peaks=args.n_peaks, n_per_peak=args.n_per_peak, steps=args.steps,
                                grid=args.grid, k=args.k, mlp_hidden=args.mlp_hidden, seed=args.seed,
                                dtype=torch.float32 if args.float32 else torch.float64)
    print(format_result(result))
    print(f"total {time.perf_counter() - start:.1f} s")
    if args.plot:
        plot_continual(result, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
