"""GPU check of the Triton backend at a fixed small set of shapes: time, peak memory and
bfloat16 error of one KAN layer (k = 3), written as markdown tables.

Shapes: batch 4096 and 65536 x (256 -> 256, 1024 -> 1024) x G = 5 and 50; float32 and
bfloat16; forward and forward+backward (grads of x and of every weight). Providers:
- ``triton``: ``functional.kan_layer(backend="triton")``, the path "auto" picks;
- ``dense-basis``: all G+k bases by ``reference.b_batch``, then one
  ``[B, in*(G+k)] @ [in*(G+k), out]`` matmul plus the SiLU term (torch's own kernels);
- ``gemm``: a dense GEMM doing the layer's useful multiply-adds,
  ``[B, in*(k+2)] @ [in*(k+2), out]`` (the speed floor the kernels are measured against).
Times are CUDA-event medians after warm-up (compilation is not timed); memory is the peak
``torch.cuda.max_memory_allocated`` above what was allocated before the call. float32 runs
with TF32 off, as bench/test_bench_gpu.py. Error: on the first 2048 rows, max |y - y64| /
max |y64| against a float64 dense-basis evaluation of the same (rounded) inputs; for
bfloat16 the kernel's error is compared with torch's own bfloat16 error (dense-basis in
bfloat16): the bar is a ratio <= 2, as flash-attention's tests.

The whole loop is time-boxed (``--budget-s``): shapes run smallest first, the table is
rewritten after every measurement, and whatever the budget did not reach is marked so.

Run on a CUDA machine (scripts/gpu_check.sh does):
    python bench/gpu_check.py --out gpu_results --budget-s 200
Smoke test on the CPU (tiny shapes, kernels under the Triton interpreter):
    TRITON_INTERPRET=1 python bench/gpu_check.py --smoke --out /tmp/gpu_smoke
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

K = 3
SHAPES = [(batch, n, G) for batch in (4096, 65536) for n in (256, 1024) for G in (5, 50)]
SMOKE_SHAPES = [(17, 3, 5), (17, 3, 50)]
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}
MODES = ("fwd", "fwd+bwd")
PROVIDERS = ("triton", "dense-basis", "gemm")
ERROR_ROWS = 2048
# Skip a provider whose dense intermediates would take more than this share of the device.
MEMORY_SHARE = 0.6


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _problem(batch, n, G, device):
    """float32 parameters of a KANLayer (pykan's initialisation, coef perturbed so the
    splines are not near zero) and x `[batch, n]` spanning a little beyond the grid."""
    import pykan_fast as pf

    torch.manual_seed(0)
    layer = pf.KANLayer(n, n, grid=G, k=K)
    with torch.no_grad():
        layer.coef.add_(torch.randn_like(layer.coef) * 0.1)
    params = {name: getattr(layer, name).detach().to(device)
              for name in ("grid", "coef", "scale_base", "scale_sp", "mask")}
    x = torch.rand(batch, n, device=device) * 2.2 - 1.1
    return params, x


def dense_basis(x, grid, coef, scale_base, scale_sp, mask, k=K):
    """The layer by torch's own kernels: dense bases, then matmuls (in x's dtype); the
    dense-basis provider here and in bench/test_bench_gpu.py."""
    from pykan_fast.ops.functional import fold_weights
    from pykan_fast.ops.reference import b_batch

    sw, bw = fold_weights(coef, scale_base, scale_sp, mask)
    basis = b_batch(x, grid, k).reshape(x.shape[0], -1)
    return basis @ sw.reshape(-1, sw.shape[2]) + torch.nn.functional.silu(x) @ bw


def _provider(name, params, x):
    """(function of the leaves -> y, the leaves) for one provider."""
    from pykan_fast.ops.functional import kan_layer

    p = params
    weights = [p["coef"], p["scale_base"], p["scale_sp"]]
    if name == "triton":
        return (lambda x, c, sb, ss: kan_layer(x, p["grid"], c, sb, ss, p["mask"], K,
                                               backend="triton")), [x] + weights
    if name == "dense-basis":
        return (lambda x, c, sb, ss: dense_basis(x, p["grid"], c, sb, ss, p["mask"]),
                [x] + weights)
    if name == "gemm":
        gen = torch.Generator(device=x.device).manual_seed(1)
        n_in, n_out = x.shape[1], p["coef"].shape[1]
        a = torch.randn(x.shape[0], n_in * (K + 2), device=x.device, generator=gen).to(x.dtype)
        w = torch.randn(n_in * (K + 2), n_out, device=x.device, generator=gen).to(x.dtype)
        return (lambda a, w: a @ w), [a, w]
    raise ValueError(f"provider: unknown {name!r}")


def _dense_bytes(provider, batch, n, G, elem, mode):
    """Rough peak bytes of a provider's dense intermediates (b_batch keeps k+2 orders)."""
    if provider != "dense-basis":
        return 0
    return batch * n * (G + K) * ((K + 2) if mode == "fwd+bwd" else 2) * elem


def provider_step(fn, leaves, mode):
    """One provider call, as a function of nothing: "fwd" runs fn under no_grad,
    "fwd+bwd" runs it and takes the gradients of every leaf against one random grad_y
    (drawn on the first call); the leaves are detached (and require grad for "fwd+bwd").
    Shared with bench/test_bench_gpu.py."""
    leaves = [t.detach().requires_grad_(mode == "fwd+bwd") for t in leaves]
    grad_y = None

    def step():
        nonlocal grad_y
        if mode == "fwd":
            with torch.no_grad():
                fn(*leaves)
        else:
            y = fn(*leaves)
            if grad_y is None:
                grad_y = torch.randn_like(y)
            torch.autograd.grad(y, leaves, grad_y, allow_unused=True)

    return step


def _measure(fn, leaves, mode, device, reps, warmup):
    """(median ms, peak extra MiB) of one provider call (forward, or forward+backward)."""
    step = provider_step(fn, leaves, mode)
    for _ in range(warmup):  # Triton compilation and allocator warm-up
        step()
    _sync(device)
    cuda = device.type == "cuda"
    if cuda:
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(reps):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
    peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20 if cuda else float("nan")
    return statistics.median(times), peak


def _errors(params, x):
    """{provider: max |y - y64| / max |y64|} on the first ERROR_ROWS rows, against a
    float64 dense-basis evaluation of the same inputs."""
    rows = x[:ERROR_ROWS]
    p64 = {k: v.double() for k, v in params.items()}
    with torch.no_grad():
        want = dense_basis(rows.double(), p64["grid"], p64["coef"], p64["scale_base"],
                           p64["scale_sp"], p64["mask"])
        scale = want.abs().max().clamp_min(1e-30)
        out = {}
        for name in ("triton", "dense-basis"):
            fn, leaves = _provider(name, params, rows)
            out[name] = ((fn(*leaves).double() - want).abs().max() / scale).item()
    return out


class Report:
    """The markdown file, rewritten after every measurement so a time-out keeps the rows
    measured so far."""

    def __init__(self, path: Path, header: list[str]):
        self.path, self.header = path, header
        self.timing: dict[tuple, dict] = {}
        self.errors: dict[tuple, dict] = {}
        self.notes: list[str] = []

    def write(self):
        lines = list(self.header)
        lines += ["", "## Time and peak extra memory", "",
                  "| shape | dtype | mode | triton ms | dense-basis ms | gemm ms | "
                  "triton / gemm | dense-basis / triton | triton MiB | dense-basis MiB |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for (shape, dtype, mode), r in self.timing.items():
            ms = {p: r.get(p, (None, None))[0] for p in PROVIDERS}
            mib = {p: r.get(p, (None, None))[1] for p in PROVIDERS}
            lines.append(
                f"| {shape} | {dtype} | {mode} | {_fmt(ms['triton'])} | "
                f"{_fmt(ms['dense-basis'])} | {_fmt(ms['gemm'])} | "
                f"{_ratio(ms['triton'], ms['gemm'])} | {_ratio(ms['dense-basis'], ms['triton'])}"
                f" | {_fmt(mib['triton'], 1)} | {_fmt(mib['dense-basis'], 1)} |")
        lines += ["", "## Error against float64 (first %d rows, forward)" % ERROR_ROWS, "",
                  "| shape | dtype | triton rel. err | torch dense-basis rel. err | "
                  "triton / torch | <= 2 |", "|---|---|---|---|---|---|"]
        for (shape, dtype), e in self.errors.items():
            if "error" in e:
                lines.append(f"| {shape} | {dtype} | {e['error']} | | | |")
                continue
            ratio = e["triton"] / max(e["dense-basis"], 1e-30)
            ok = "yes" if dtype == "f32" or ratio <= 2 else "NO"
            lines.append(f"| {shape} | {dtype} | {e['triton']:.2e} | {e['dense-basis']:.2e} "
                         f"| {ratio:.2f} | {ok} |")
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        self.path.write_text("\n".join(lines) + "\n")


def _fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.{digits}f}" if v == v else "n/a"


def _ratio(a, b):
    if not isinstance(a, float) or not isinstance(b, float) or b <= 0:
        return "-"
    return f"{a / b:.2f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu_results")
    parser.add_argument("--budget-s", type=float, default=200.0,
                        help="stop starting new measurements after this many seconds")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny shapes on the CPU under TRITON_INTERPRET=1")
    parser.add_argument("--reps", type=int, default=None, help="timed calls per measurement")
    args = parser.parse_args(argv)

    if args.smoke:
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernels are imported
        device, shapes, reps, warmup = torch.device("cpu"), SMOKE_SHAPES, args.reps or 1, 0
    else:
        if not torch.cuda.is_available():
            print("gpu_check: no CUDA device (use --smoke on a CPU machine)", file=sys.stderr)
            return 2
        device, shapes, reps, warmup = torch.device("cuda"), SHAPES, args.reps or 10, 2
        torch.backends.cuda.matmul.allow_tf32 = False
    import pykan_fast as pf
    from pykan_fast.triton import choose_path

    if "triton" not in pf.available_backends():
        print("gpu_check: the triton backend is not available here", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    import triton

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (interpreter)"
    header = ["# pykan_fast GPU check", "",
              f"{gpu}; torch {torch.__version__}, triton {triton.__version__}, "
              f"python {platform.python_version()}; k = {K}; "
              f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"]
    report = Report(out_dir / "gpu_check.md", header)
    total_mem = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" \
        else float("inf")
    started = time.monotonic()
    skipped = 0
    for batch, n, G in shapes:
        shape = f"B{batch} {n}->{n} G{G} ({choose_path(G + K, 1)})"
        params32, x32 = _problem(batch, n, G, device)
        for dtype_name, dtype in DTYPES.items():
            params = {name: t.to(dtype) for name, t in params32.items()}
            x = x32.to(dtype)
            for mode in MODES:
                row = report.timing.setdefault((shape, dtype_name, mode), {})
                for provider in PROVIDERS:
                    if time.monotonic() - started > args.budget_s:
                        row[provider] = ("budget", None)
                        skipped += 1
                        continue
                    need = _dense_bytes(provider, batch, n, G, x.element_size(), mode)
                    if need > MEMORY_SHARE * total_mem:
                        row[provider] = (f"skip ({need / 2**30:.0f} GiB)", None)
                        continue
                    try:
                        fn, leaves = _provider(provider, params, x)
                        row[provider] = _measure(fn, leaves, mode, device, reps, warmup)
                    except torch.cuda.OutOfMemoryError:
                        row[provider] = ("OOM", None)
                    finally:
                        if device.type == "cuda":
                            torch.cuda.empty_cache()
                    report.write()
            if time.monotonic() - started <= args.budget_s:
                try:
                    report.errors[(shape, dtype_name)] = _errors(params, x)
                except torch.cuda.OutOfMemoryError:
                    report.errors[(shape, dtype_name)] = {"error": "OOM"}
                report.write()
            del params, x
        del params32, x32
    if skipped:
        report.notes.append(f"{skipped} measurements not run: the {args.budget_s:.0f} s "
                            "budget was spent")
    report.write()
    print(report.path.read_text())
    print(f"gpu_check: wrote {report.path} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
