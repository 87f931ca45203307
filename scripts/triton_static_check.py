"""Compile every Triton kernel at every launch configuration the launchers can pick, for an
sm_90 (H100/H200) target, on a machine without a GPU; report registers per thread,
spills, shared memory and the theoretical occupancy.

No GPU is needed: ``triton.compile`` builds the cubin with the ptxas bundled in the
triton wheel, whose ``-v`` log gives registers and spills; shared memory comes from the
compiled kernel's metadata. The configurations are those ``pykan_fast.triton.launch.
LaunchConfig`` returns for a sweep of (k, G, base function): every block shape each k can
reach, both tl.dot precisions (ieee, tf32) for the tile kernels, and, for the derivative
kernels, the heaviest variant (order 1 with a row scale, both T outputs).

Occupancy (CUDA's calculator for compute capability 9.0): 64 K registers, 64 warps,
32 blocks and 228 KB of shared memory per SM (1 KB reserved per block), registers
allocated per warp in units of 256. A configuration passes with no spills and at least
``MIN_BLOCKS_PER_SM`` resident blocks.

Run after ``pip install -e .`` (the kernels are imported from pykan_fast.triton):
    python scripts/triton_static_check.py [--quick] [--jobs 2] [--markdown FILE]
Exit status 1 when a configuration spills or misses the occupancy bar.
"""

from __future__ import annotations

import argparse
import importlib
import json
import inspect
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

# The kernels must be JIT functions, not the interpreter's: read when they are decorated.
os.environ.pop("TRITON_INTERPRET", None)
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # the runtime default, unwarned

ARCH = 90
MIN_BLOCKS_PER_SM = 2
REGS_PER_SM, MAX_WARPS_PER_SM, MAX_BLOCKS_PER_SM = 65536, 64, 32
SMEM_PER_SM, SMEM_RESERVED_PER_BLOCK = 228 * 1024, 1024

# (k, G) sweep: for each k, the smallest G reaching each block shape, and the largest k.
FULL_ORDERS = (1, 2, 3, 5, 15)
QUICK_ORDERS = (3,)
GRIDS = (1, 2, 3, 5, 10, 13, 29, 50, 61)

# kernel -> (module, whether it is a tile kernel, problem constexprs beyond K). The layer's
# kernels run with and without a base function; the derivative ones never have one, and
# run at their heaviest: order 1, a row scale, both T outputs.
KERNELS = {
    "_kan_fwd_dense_kernel": ("layer", True, {"BASE": (0, 1)}),
    "_kan_bwd_x_dense_kernel": ("layer", True, {"BASE": (0, 1)}),
    "_kan_bwd_w_kernel": ("layer", True, {"BASE": (0, 1)}),
    "_kan_fwd_local_kernel": ("layer", False, {"BASE": (0, 1)}),
    "_kan_bwd_x_local_kernel": ("layer", False, {"BASE": (0, 1)}),
    "_spline_derivative_w_kernel": ("derivative", True, {"D": 1, "HAS_SCALE": 1}),
    "_spline_derivative_kernel": ("derivative", False, {"D": 1, "HAS_SCALE": 1}),
    "_spline_derivative_t_kernel": ("derivative", False, {"D": 1, "NEED_T0": 1, "NEED_T1": 1}),
}
LAUNCH_OPTIONS = ("num_warps", "num_stages", "maxnreg")
VARIANT_CONSTEXPRS = ("BASE", "D", "HAS_SCALE")
DIVISIBLE_BY_16 = ("n_batch", "n_in", "n_out", "chunk_len")


def plan_for(name, k, G, base, prec="ieee", overrides=None):
    """(kernel, module, constexprs, launch options) of one kernel as its launcher sets it
    up for order k, grid size G and base function ``base`` (0 or 1; the derivative
    kernels have none); ``prec``: tl.dot's precision (tile kernels only); ``overrides``:
    LaunchConfig attributes to replace (to try a configuration before editing launch.py)."""
    from pykan_fast.triton.launch import LaunchConfig

    module, tile, extra = KERNELS[name]
    cfg = LaunchConfig(G + k, k, base)
    for attr, value in (overrides or {}).items():
        setattr(cfg, attr, value)
    consts = {"K": k, **extra}
    if "BASE" in extra:
        consts["BASE"] = base
    meta = cfg.tile_meta(prec) if tile else cfg.local_meta()
    opts = {o: meta.pop(o) for o in LAUNCH_OPTIONS if o in meta}
    return name, module, {**consts, **meta}, opts


def plans(orders, overrides=None):
    """The unique plans (see ``plan_for``) the launchers can pick for k in ``orders`` and
    every G in GRIDS: both base settings of the layer's kernels, both tl.dot precisions."""
    seen, out = set(), []
    for k in orders:
        for G in GRIDS:
            for name, (_, tile, extra) in KERNELS.items():
                for base in extra.get("BASE", (0,)):
                    for prec in ("tf32", "ieee") if tile else ("ieee",):
                        plan = plan_for(name, k, G, base, prec, overrides)
                        # LOG_NK only sets the bisection's step count: one value is enough.
                        key = (name, tuple(sorted((c, v) for c, v in plan[2].items()
                                                  if c != "LOG_NK")),
                               tuple(sorted(plan[3].items())))
                        if key not in seen:
                            seen.add(key)
                            out.append(plan)
    return out


def compile_one(plan):
    """Compile one plan for sm_ARCH, then run the bundled ptxas -v on its PTX with the
    flags Triton uses (its own log is not printed on a cache hit); returns the plan and
    its resource usage."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    name, module, consts, opts = plan
    fn = getattr(importlib.import_module(f"pykan_fast.triton.{module}"), name)
    params = list(inspect.signature(fn.fn).parameters)
    signature = {p: "constexpr" if p in consts else "*fp32" if p.endswith("_ptr") else "i32"
                 for p in params}
    # What the JIT specializes at run time for torch tensors and the usual sizes: 16-byte
    # aligned pointers and sizes divisible by 16 (it enables vector loads; without it the
    # local forward spills 5.7 KB instead of 64 B).
    attrs = {(i,): [["tt.divisibility", 16]] for i, p in enumerate(params)
             if p.endswith("_ptr") or p in DIVISIBLE_BY_16}
    src = triton.compiler.ASTSource(fn=fn, signature=signature, attrs=attrs,
                                    constexprs={p: v for p, v in consts.items() if p in params})
    started = time.monotonic()
    kernel = triton.compile(src, target=GPUTarget("cuda", ARCH, 32), options=dict(opts))
    with tempfile.TemporaryDirectory() as tmp:
        ptx = os.path.join(tmp, "kernel.ptx")
        with open(ptx, "w") as f:
            f.write(kernel.asm["ptx"])
        log = subprocess.run(
            [get_ptxas(ARCH).path, "-lineinfo", "-v", "--regAllocOptLevel=2",
             f"--gpu-name={sm_arch_from_capability(ARCH)}", ptx, "-o", ptx + ".o"],
            capture_output=True, text=True, check=True).stderr
    regs = int(re.search(r"Used (\d+) registers", log).group(1))
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    return dict(plan=plan, regs=regs, spill_stores=int(spill.group(1)),
                spill_loads=int(spill.group(2)), shared=int(kernel.metadata.shared),
                num_warps=int(kernel.metadata.num_warps),
                seconds=time.monotonic() - started)


def occupancy(regs: int, shared: int, num_warps: int):
    """(resident blocks per SM, occupancy as a fraction of 64 warps) on compute 9.0."""
    regs_per_warp = -(-regs * 32 // 256) * 256
    by_regs = (REGS_PER_SM // regs_per_warp) // num_warps
    by_smem = SMEM_PER_SM // (shared + SMEM_RESERVED_PER_BLOCK)
    blocks = min(by_regs, by_smem, MAX_WARPS_PER_SM // num_warps, MAX_BLOCKS_PER_SM)
    return blocks, blocks * num_warps / MAX_WARPS_PER_SM


def table(results) -> tuple[str, int]:
    """Markdown table of the results and the number of failing rows."""
    rows = ["| kernel | K | variant | blocks (B, I, J, O) | prec | warps, stages, maxnreg | "
            "regs | spill st/ld B | smem B | blocks/SM | occupancy | ok |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    failing = 0
    for r in results:
        name, _, consts, opts = r["plan"]
        blocks, occ = occupancy(r["regs"], r["shared"], r["num_warps"])
        ok = r["spill_stores"] == 0 and r["spill_loads"] == 0 and blocks >= MIN_BLOCKS_PER_SM
        failing += not ok
        shape = ", ".join(str(consts.get(f"BLOCK_{d}", "-")) for d in "BIJO")
        variant = " ".join(f"{c}={consts[c]}" for c in VARIANT_CONSTEXPRS if c in consts)
        rows.append(
            f"| {name} | {consts['K']} | {variant} | {shape} | {consts.get('PREC', '-')} | "
            f"{opts.get('num_warps', 4)}, {opts.get('num_stages', 3)}, "
            f"{opts.get('maxnreg', '-')} | {r['regs']} | {r['spill_stores']}/{r['spill_loads']}"
            f" | {r['shared']} | {blocks} | {occ:.0%} | {'yes' if ok else 'NO'} |")
    return "\n".join(rows), failing


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"k in {QUICK_ORDERS} only")
    parser.add_argument("--orders", help="comma-separated spline orders k (default: "
                        f"{','.join(map(str, FULL_ORDERS))})")
    parser.add_argument("--jobs", type=int, default=2, help="parallel compiles")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--kernel", action="append", default=None,
                        help="only kernels whose name contains this (repeatable)")
    parser.add_argument("--set", action="append", default=[], metavar="ATTR=JSON",
                        help="try a LaunchConfig attribute, e.g. "
                             """local_options='{"num_warps": 8}'""")
    parser.add_argument("--prec", choices=("tf32", "ieee"),
                        help="only this tl.dot precision for the tile kernels")
    args = parser.parse_args(argv)

    import triton

    overrides = {}
    for item in args.set:
        attr, _, value = item.partition("=")
        overrides[attr] = json.loads(value)
    orders = (tuple(int(k) for k in args.orders.split(",")) if args.orders
              else QUICK_ORDERS if args.quick else FULL_ORDERS)
    todo = plans(orders, overrides)
    if args.kernel:
        todo = [p for p in todo if any(s in p[0] for s in args.kernel)]
    if args.prec:
        todo = [p for p in todo if p[2].get("PREC", args.prec) == args.prec]
    print(f"triton {triton.__version__}: compiling {len(todo)} configurations for "
          f"sm_{ARCH} with {args.jobs} jobs", flush=True)
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(compile_one, todo))
    text, failing = table(results)
    header = (f"triton {triton.__version__}, target sm_{ARCH}, {len(results)} configurations "
              f"({time.monotonic() - started:.0f} s); pass: no spills and >= "
              f"{MIN_BLOCKS_PER_SM} blocks/SM")
    print(header + "\n\n" + text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(header + "\n\n" + text + "\n")
    print(f"{failing} of {len(results)} configurations fail", file=sys.stderr)
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
