"""A/B of two builds of the compiled extension in one process: the installed
``pykan_fast._C`` (B) against another build's ``_C*.so`` (A), over the CPU benchmark
shapes, through the real KANLayer (the cpu backend's module handle is swapped).

    python bench/ab_extension.py /path/to/old/_C.cpython-311-x86_64-linux-gnu.so
    python bench/ab_extension.py OLD_SO --check-only     # only the bit-for-bit comparison
    python bench/ab_extension.py OLD_SO --job 3          # also the whole grid-extension job

First compares both builds' outputs bit for bit (forward, backward, derivative kernels;
float32/float64, k=1..7, uniform, non-uniform and repeated knots, inputs outside the grid
and NaN/inf), then times A and B alternately, ``--rounds`` rounds of ``--calls`` calls
each, and prints medians and the median of the per-round ratios B/A.
"""

import argparse
import importlib.util
import statistics
import time

import torch

import pykan_fast as pf
from pykan_fast import _C as new_C
from pykan_fast.ops import cpu_backend as cpu


def load_old(path):
    # The init function is PyInit__C, so the module's last name component must be _C.
    spec = importlib.util.spec_from_file_location("ab_old_build._C", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def same(a, b):
    """(bit-for-bit equal, max abs difference over finite entries)."""
    if a is None:
        return b is None, 0.0
    equal = a.view(-1).view(torch.int64 if a.dtype == torch.float64 else torch.int32).equal(
        b.view(-1).view(torch.int64 if b.dtype == torch.float64 else torch.int32))
    nan_a, nan_b = torch.isnan(a), torch.isnan(b)
    if not torch.equal(nan_a, nan_b):
        return False, float("inf")
    d = (a - b)[~nan_a].abs()
    return equal, (d.max().item() if d.numel() else 0.0)


def kernel_cases():
    """(name, x, grid, spline_weight, base_weight, k) covering every kernel path."""
    g = torch.Generator().manual_seed(1)
    for dtype in (torch.float32, torch.float64):
        for k in (1, 2, 3, 4, 5, 7):
            for kind in ("uniform", "nonuniform", "repeated", "long"):
                batch, n_in, out = 300, 5, (1 if k == 2 else 3 if k == 4 else 20)
                G = 700 if kind == "long" else 6
                h = 2.0 / G
                t = torch.arange(-k, G + k + 1, dtype=torch.float64) * h - 1.0
                grid = t.repeat(n_in, 1)
                if kind in ("nonuniform", "long", "repeated"):
                    grid = grid + torch.rand(grid.shape, generator=g, dtype=torch.float64) * h * 0.4
                    grid, _ = grid.sort(dim=1)
                if kind == "repeated":
                    grid[:, k + 2] = grid[:, k + 1]
                    grid[1, k + 3:k + 5] = grid[1, k + 2]
                grid = grid.to(dtype)
                nb = grid.shape[1] - k - 1
                x = (torch.rand(batch, n_in, generator=g, dtype=torch.float64) * 2.4 - 1.2).to(dtype)
                x[0, 0], x[1, 1], x[2, 2] = float("nan"), float("inf"), -float("inf")
                x[3, :] = grid[:, k + 2]  # exactly on knots
                sw = torch.randn(n_in, nb, out, generator=g, dtype=torch.float64).to(dtype)
                bw = torch.randn(n_in, out, generator=g, dtype=torch.float64).to(dtype)
                yield f"{dtype}-k{k}-{kind}-out{out}", x, grid, sw, bw, k


def run_kernels(C, x, grid, sw, bw, k, threads):
    n = lambda t: t.numpy()
    outs = []
    for base in (0, 1):
        y = torch.empty(x.shape[0], sw.shape[2], dtype=x.dtype)
        C.forward(n(x), n(grid), n(sw), n(bw), n(y), k, base, threads, None)
        gy = torch.linspace(-1, 1, y.numel(), dtype=x.dtype).reshape(y.shape).contiguous()
        gx, gw, gb = torch.empty_like(x), torch.empty_like(sw), torch.empty_like(bw)
        C.backward(n(x), n(grid), n(sw), n(bw), n(gy), n(gx), n(gw), n(gb), k, base, threads,
                   None, None)
        gx2 = torch.empty_like(x)  # grad_x only: the no-update passes
        C.backward(n(x), n(grid), n(sw), n(bw), n(gy), n(gx2), None, None, k, base, threads,
                   None, None)
        outs += [y, gx, gw, gb, gx2]
    for order in (0, 1, 2, k + 1):
        y = torch.empty(x.shape[0], sw.shape[2], dtype=x.dtype)
        C.spline_derivative_forward(n(x), n(grid), n(sw), None, n(y), k, order, threads)
        gy = torch.linspace(-1, 1, y.numel(), dtype=x.dtype).reshape(y.shape).contiguous()
        t0, t1, gw = torch.empty_like(x), torch.empty_like(x), torch.empty_like(sw)
        C.spline_derivative_backward(n(x), n(grid), n(sw), None, n(gy), n(t0), n(t1), n(gw), k,
                                     order, threads)
        outs += [y, t0, t1, gw]
    return outs


def check(old_C):
    worst = {}
    unequal = 0
    for name, x, grid, sw, bw, k in kernel_cases():
        for threads in (1, 2):
            a = run_kernels(old_C, x, grid, sw, bw, k, threads)
            b = run_kernels(new_C, x, grid, sw, bw, k, threads)
            for idx, (ta, tb) in enumerate(zip(a, b)):
                eq, diff = same(ta, tb)
                if not eq:
                    unequal += 1
                    scale = ta[torch.isfinite(ta)].abs().max().item() or 1.0
                    key = f"{name} t{threads} output#{idx}"
                    worst[key] = (diff, diff / scale)
    print(f"bit-for-bit check: {unequal} output arrays differ")
    for key, (diff, rel) in sorted(worst.items(), key=lambda kv: -kv[1][1])[:20]:
        print(f"  {key}: max abs diff {diff:.3g} (relative to max |value| {rel:.3g})")


def layers():
    """(name, layer, x) of the CPU benchmark shapes, float32."""
    for batch, n_in, out, G, update in ((4096, 256, 256, 5, False), (4096, 256, 256, 50, False),
                                        (1024, 64, 64, 5, False), (4096, 256, 256, 5, True),
                                        (1000, 2, 5, 5, True)):
        torch.manual_seed(0)
        x = (torch.rand(batch, n_in) * 2.2 - 1.1).requires_grad_()
        layer = pf.KANLayer(n_in, out, grid=G, k=3, backend="cpu")
        if update:
            layer.update_grid_from_samples(x.detach())
        name = f"{batch}x{n_in}->{out} G={G}" + (" grid-updated" if update else "")
        yield name, layer, x


def timed(layer, x, mode, grad_y, calls):
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        if mode == "fwd":
            with torch.no_grad():
                layer(x)
        else:
            layer(x).backward(grad_y)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def bench(old_C, rounds, calls):
    print(f"threads {torch.get_num_threads()}; A = old build, B = new (installed) build")
    print("| shape | mode | A ms | B ms | B/A median [min, max] over rounds |")
    print("|---|---|---:|---:|---|")
    for name, layer, x in layers():
        grad_y = torch.randn(x.shape[0], layer.coef.shape[1])
        for mode in ("fwd", "fwd+bwd"):
            ta, tb, ratio = [], [], []
            for module in (old_C, new_C):  # warm-up
                cpu.C = module
                timed(layer, x, mode, grad_y, 2)
            for r in range(rounds):
                order = (old_C, new_C) if r % 2 == 0 else (new_C, old_C)
                got = {}
                for module in order:
                    cpu.C = module
                    got[module] = timed(layer, x, mode, grad_y, calls)
                ta.append(got[old_C])
                tb.append(got[new_C])
                ratio.append(got[new_C] / got[old_C])
            cpu.C = new_C
            print(f"| {name} | {mode} | {statistics.median(ta):.3f} | {statistics.median(tb):.3f} | "
                  f"{statistics.median(ratio):.3f} [{min(ratio):.2f}, {max(ratio):.2f}] |",
                  flush=True)


def job(old_C, rounds):
    """The whole grid-extension job (bench/test_bench_fit.py's: [2, 5, 1], grids 3/10/20/50,
    50 L-BFGS steps each, float64) under each build, alternately; seconds and the final
    test RMSE of each run (equal builds give equal RMSEs)."""
    from pykan_fast.experiments.grid_extension import grid_extension

    def run():
        t0 = time.perf_counter()
        rows = grid_extension(grids=(3, 10, 20, 50), steps=50, backend="cpu", progress=False,
                              dtype=torch.float64, seed=1, data_seed=0, stop_grid_update_step=50,
                              train_num=1000, test_num=1000)
        return time.perf_counter() - t0, rows[-1].test_rmse

    print("| whole grid-extension job | A s | B s | B/A | test RMSE A / B |")
    print("|---|---:|---:|---:|---|")
    for r in range(rounds):
        got = {}
        for module in ((old_C, new_C) if r % 2 == 0 else (new_C, old_C)):
            cpu.C = module
            got[module] = run()
        cpu.C = new_C
        (ta, ea), (tb, eb) = got[old_C], got[new_C]
        print(f"| round {r + 1} | {ta:.2f} | {tb:.2f} | {tb / ta:.3f} | {ea:.3e} / {eb:.3e} |",
              flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("old_so")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--check-only", action="store_true")
    parser.add_argument("--job", type=int, default=0, metavar="ROUNDS",
                        help="also time the whole grid-extension job, ROUNDS rounds")
    args = parser.parse_args()
    old = load_old(args.old_so)
    print("ISA: old", old.active_isa(), "new", new_C.active_isa())
    check(old)
    if not args.check_only:
        bench(old, args.rounds, args.calls)
        if args.job:
            job(old, args.job)
