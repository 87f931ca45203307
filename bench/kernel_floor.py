"""The fused kernels against the useful-work GEMM, kernel calls only (issue 15, point 1).

    python bench/kernel_floor.py                         # the installed extension
    python bench/kernel_floor.py A/_C.so B/_C.so         # builds side by side, same run
    python bench/kernel_floor.py --threads 1 --G 5 20 50 --shape 4096x256x256

For batch x in -> out at order k: the forward against one GEMM [B, in*(k+2)] @
[in*(k+2), out] (the same multiply-adds), the backward (grad_x and weight gradients)
against that GEMM's two backward products, each build called as the layer calls it
(SiLU and SiLU' precomputed by torch, inside the timing).  Times are the minimum over
rounds (CPU time on one thread, wall time on more), which on a shared machine is the
least disturbed figure; results of later builds are compared with the first's.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np
import torch


def load_build(path: str, tag: int):
    spec = importlib.util.spec_from_file_location(f"build{tag}._C", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def installed_build():
    from pykan_fast import _C

    return _C


def best_ms(fn, rounds: int, clock, reps: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = clock()
        for _ in range(reps):
            fn()
        best = min(best, (clock() - start) / reps * 1e3)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("builds", nargs="*", help="paths of _C shared objects (default: installed)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--G", type=int, nargs="+", default=[5, 50])
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--shape", default="4096x256x256", help="batch x in x out")
    ap.add_argument("--float64", action="store_true")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    builds = [load_build(p, i) for i, p in enumerate(args.builds)] or [installed_build()]
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.threads == 1 else time.perf_counter
    dtype = torch.float64 if args.float64 else torch.float32
    batch, n_in, n_out = (int(v) for v in args.shape.split("x"))
    k = args.k
    torch.manual_seed(0)
    x = (torch.rand(batch, n_in) * 2.2 - 1.1).to(dtype)
    gemm_w = torch.randn(n_in * (k + 2), n_out, dtype=dtype) / n_in
    grad_y = torch.randn(batch, n_out, dtype=dtype)
    base_values = torch.nn.functional.silu(x)
    base_grads = torch.ops.aten.silu_backward(torch.ones_like(x), x)

    def gemm_forward():
        return x.repeat(1, k + 2) @ gemm_w

    def gemm_backward():
        return grad_y @ gemm_w.T, x.repeat(1, k + 2).T @ grad_y

    print(f"{args.shape}, k={k}, {dtype}, {args.threads} thread(s), "
          f"ISA {builds[0].active_isa()}; ms (x the GEMM)")
    for G in args.G:
        h = 2.0 / G
        knots = torch.arange(-k, G + k + 1, dtype=torch.float64) * h - 1.0
        grid = knots.repeat(n_in, 1).to(dtype).contiguous()
        spline_w = torch.randn(n_in, G + k, n_out, dtype=dtype)
        base_w = torch.randn(n_in, n_out, dtype=dtype)
        y = torch.empty(batch, n_out, dtype=dtype)
        gx, gsw, gbw = torch.empty_like(x), torch.empty_like(spline_w), torch.empty_like(base_w)
        X, GR, SW, BW, Y, GY, GX, GSW, GBW = (t.numpy() for t in (x, grid, spline_w, base_w, y,
                                                                    grad_y, gx, gsw, gbw))
        fwd_floor = best_ms(gemm_forward, args.rounds, clock)
        bwd_floor = best_ms(gemm_backward, args.rounds, clock)
        line = f"G={G}: GEMM fwd {fwd_floor:.1f} bwd {bwd_floor:.1f}"
        first = None
        for i, C in enumerate(builds):
            def forward():
                bv = torch.nn.functional.silu(x)
                C.forward(X, GR, SW, BW, Y, k, 1, args.threads, bv.numpy())

            def backward():
                bv = torch.nn.functional.silu(x)
                bg = torch.ops.aten.silu_backward(torch.ones_like(x), x)
                C.backward(X, GR, SW, BW, GY, GX, GSW, GBW, k, 1, args.threads, bv.numpy(),
                           bg.numpy())

            f = best_ms(forward, args.rounds, clock)
            b = best_ms(backward, args.rounds, clock)
            line += (f" | [{i}] fwd {f:.1f} ({f / fwd_floor:.2f}x) bwd {b:.1f} "
                     f"({b / bwd_floor:.2f}x) fwd+bwd {(f + b) / (fwd_floor + bwd_floor):.2f}x")
            C.forward(X, GR, SW, BW, Y, k, 1, args.threads, base_values.numpy())
            C.backward(X, GR, SW, BW, GY, GX, GSW, GBW, k, 1, args.threads,
                       base_values.numpy(), base_grads.numpy())
            outputs = [Y.copy(), GX.copy(), GSW.copy()]
            if first is None:
                first = outputs
            else:
                rel = max(float(np.abs(a - b).max() / (np.abs(b).max() + 1e-30))
                          for a, b in zip(outputs, first))
                line += f" (max rel. diff. from [0] {rel:.1e})"
        print(line, flush=True)


if __name__ == "__main__":
    main()
