"""The KAN paper's PDE example: a KAN solves the 2-D Poisson equation

    -Laplace u = 2 pi^2 sin(pi x) sin(pi y)  on [-1, 1]^2,   u = 0 on the boundary,

whose solution is u = sin(pi x) sin(pi y). The loss needs the network's Laplacian (a
gradient taken with create_graph=True, differentiated again) and a backward through it:
all on the fused derivative kernels.

    python examples/poisson.py                    # [2, 10, 1], grids 5 -> 10 -> 20
    python examples/poisson.py --grids 5 10 --steps 50
"""

from __future__ import annotations

import argparse
import time

import torch

from pykan_fast.experiments.pde import solve_poisson


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, nargs="+", default=[2, 10, 1])
    parser.add_argument("--grids", type=int, nargs="+", default=[5, 10, 20],
                        help="grid of each stage (refine between stages)")
    parser.add_argument("--steps", type=int, default=100, help="L-BFGS steps per stage")
    parser.add_argument("--n-points", type=int, default=31,
                        help="collocation mesh: n x n interior points, n per side")
    parser.add_argument("--alpha", type=float, default=0.01, help="weight of the PDE residual")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    start = time.perf_counter()

    def progress(stage, step, pde, bc):
        if (step + 1) % 10 == 0:
            print(f"grid {args.grids[stage]:>3} step {step + 1:>4}: pde loss {pde:.3e}, "
                  f"boundary loss {bc:.3e} ({time.perf_counter() - start:.0f} s)", flush=True)

    result = solve_poisson(width=args.width, grids=args.grids, steps=args.steps,
                           n_points=args.n_points, alpha=args.alpha, progress=progress)
    print()
    for grid, error in zip(result.grids, result.relative_l2):
        print(f"grid {grid:>3}: relative L2 error {error:.2e}")
    print(f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
