"""Command line: ``python -m pykan_fast demo`` and ``python -m pykan_fast bench``."""

from __future__ import annotations

import argparse
import os
import sys

import torch


def _print_table(headers, rows) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(str(h).rjust(w) for h, w in zip(headers, widths))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths)))


def _speed_against_reference(batch: int, in_dim: int, out_dim: int, grid: int) -> None:
    from .benchmarking import compare

    rows = compare(batch, in_dim, out_dim, grid, providers=["pykan_fast", "reference"], rounds=3)
    times = {(p, m): ms for p, m, ms in rows}
    print(f"\nSpeed of one KAN layer {in_dim} -> {out_dim}, batch {batch}, G={grid}, k=3, "
          f"float32, {torch.get_num_threads()} threads (pykan_fast cpu vs the pure-torch "
          "reference, which is pykan's algorithm):")
    table = []
    for mode in ("fwd", "fwd+bwd"):
        ours, ref = times[("pykan_fast", mode)], times[("reference", mode)]
        table.append((mode, f"{ours:.2f} ms", f"{ref:.2f} ms", f"{ref / ours:.1f}x"))
    _print_table(["mode", "pykan_fast", "reference", "speed-up"], table)


def _progress_bars(args) -> bool:
    """tqdm bars only on a terminal: a redirected log gets one line per stage instead."""
    return not getattr(args, "no_progress", False) and sys.stdout.isatty()


def demo(args) -> int:
    from . import grid_extension as experiments

    full = getattr(args, "full", False)
    grids = (3, 5, 10, 20, 50, 100, 200) if full else (3, 5, 10, 20)
    steps = 200 if full else 30
    progress = _progress_bars(args)
    print("Fitting a KAN [2, 5, 1] (k=3) to f(x, y) = exp(sin(pi x) + y^2) with grid "
          f"extension: grids {list(grids)}, {steps} LBFGS steps each, cpu backend"
          + ("." if full else " (the paper's grids to 200: --full)."), flush=True)

    def stage_done(row) -> None:
        if not progress:
            print(f"  G={row.grid}: train RMSE {row.train_rmse:.3e}, test RMSE "
                  f"{row.test_rmse:.3e} ({row.seconds:.1f} s)", flush=True)

    rows = experiments.grid_extension(grids=grids, steps=steps, progress=progress,
                                      on_row=stage_done)
    _print_table(["grid", "train RMSE", "test RMSE", "seconds"],
                 [(r.grid, f"{r.train_rmse:.3e}", f"{r.test_rmse:.3e}", f"{r.seconds:.1f}")
                  for r in rows])
    best = min(rows, key=lambda r: r.test_rmse)
    print(f"lowest test RMSE {best.test_rmse:.2e} at G={best.grid}, "
          f"{rows[0].test_rmse / best.test_rmse:.0f}x below G={rows[0].grid}")
    if best is not rows[-1]:
        # The paper's Fig. 2.3 shows the same: with more coefficients than samples the
        # model interpolates the training points and the test error turns up.
        print(f"past G={best.grid} the train RMSE keeps falling and the test RMSE rises: the "
              "splines start to interpolate the training points (overfitting)")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "grid_extension.png")
    try:
        experiments.plot_grid_extension(rows, path)
        print(f"RMSE against grid size plotted in {path}")
    except ImportError as error:
        print(f"(no plot: {error})")
    _speed_against_reference(1024, 64, 64, 5)
    _symbolic_part(args)
    return 0


def _symbolic_part(args) -> None:
    """pykan's hello-KAN ending: sparse training, pruning, auto_symbolic, the formula and
    the network plot."""
    from . import grid_extension as experiments

    steps = 50 if getattr(args, "full", False) else 25
    print(f"\nSymbolic regression: a sparse KAN [2, 5, 1] (lamb=0.01), pruned, refined to G=10, "
          f"its edges fixed to x, x^2, exp or sin (auto_symbolic); {steps} LBFGS steps per stage.",
          flush=True)
    try:
        run = experiments.symbolic_regression(steps=steps, progress=_progress_bars(args))
    except ImportError as error:  # sympy is the 'symbolic' extra
        print(f"(no symbolic regression: {error})")
        return
    from ..tools.symbolic import ex_round

    print(f"width after pruning: {run.width}; test RMSE of the splines before auto_symbolic: "
          f"{run.spline_rmse:.2e}")
    for l, sym in enumerate(run.model.symbolic_fun):
        print(f"layer {l} edge functions (out x in): {sym.funs_name}")
    print(f"recovered formula: f(x_1, x_2) = {ex_round(run.formula, 4)}")
    print(f"max |formula - exp(sin(pi x_1) + x_2^2)| on the test inputs: {run.max_error:.2e}")
    path = os.path.join(args.out, "kan_symbolic.png")
    try:
        run.model.plot(path=path, in_vars=[r"$x_1$", r"$x_2$"], out_vars=[r"$f$"],
                       title="exp(sin(pi x) + y^2), symbolic", label_functions=True,
                       legend=True)
        print(f"network plot written to {path}")
    except ImportError as error:
        print(f"(no plot: {error})")


def bench(args) -> int:
    from .benchmarking import DESCRIPTIONS, compare

    skipped = {}
    rows = compare(args.batch, args.in_dim, args.out_dim, args.grid, rounds=args.rounds,
                   skipped=skipped)
    times = {(p, m): ms for p, m, ms in rows}
    print(f"KAN layer {args.in_dim} -> {args.out_dim}, batch {args.batch}, G={args.grid}, k=3, "
          f"float32, {torch.get_num_threads()} threads; median ms and time / pykan_fast's:")
    table = []
    for provider in dict.fromkeys(p for p, _, _ in rows):
        cells = [provider]
        for mode in ("fwd", "fwd+bwd"):
            ms = times.get((provider, mode))
            ours = times.get(("pykan_fast", mode))
            cells += [f"{ms:.2f}", f"{ms / ours:.2f}x"] if ms and ours else ["-", "-"]
        table.append(cells)
    _print_table(["provider", "fwd ms", "fwd ratio", "fwd+bwd ms", "fwd+bwd ratio"], table)
    print("\nProviders:")
    for provider in dict.fromkeys(p for p, _, _ in rows):
        print(f"  {provider}: {DESCRIPTIONS[provider]}")
    for provider, why in skipped.items():
        print(f"  {provider}: skipped, {why}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pykan_fast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="fit exp(sin(pi x) + y^2) with grid extension, "
                            "then recover the formula (auto_symbolic)")
    p_demo.add_argument("--full", action="store_true",
                        help="the paper-scale run: grids to 200, 200 steps each (~20 min on 2 cores)")
    p_demo.add_argument("--out", default="pykan_fast_demo", help="folder for the plots")
    p_demo.add_argument("--no-progress", action="store_true",
                        help="no progress bars (they are shown only on a terminal anyway)")
    p_demo.set_defaults(run=demo)
    p_bench = sub.add_parser("bench", help="print the kernel comparison table")
    p_bench.add_argument("--batch", type=int, default=4096)
    p_bench.add_argument("--in-dim", type=int, default=256)
    p_bench.add_argument("--out-dim", type=int, default=256)
    p_bench.add_argument("--grid", type=int, default=5)
    p_bench.add_argument("--rounds", type=int, default=5)
    p_bench.set_defaults(run=bench)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
