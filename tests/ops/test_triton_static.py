"""The default layer forward compiles for sm_90 (H100/H200) without spills and with the
occupancy bar of scripts/triton_static_check.py, at the launcher's configuration. No GPU
is needed, only the ptxas bundled in the triton wheel; the full table: run the script.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton", reason="triton is not installed (pip install pykan-fast[triton])")

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"

# A fresh process: this one may have the kernels decorated for the interpreter.
_CHECK = """
import sys
sys.path.insert(0, sys.argv[1])
import triton_static_check as check
# k = 3, G = 5, SiLU base, float32 without TF32: the defaults of KANLayer and torch.
r = check.compile_one(check.plan_for("_kan_fwd_dense_kernel", 3, 5, 1, "ieee"))
blocks, _ = check.occupancy(r["regs"], r["shared"], r["num_warps"])
print(r["regs"], r["spill_stores"], r["spill_loads"], blocks, check.MIN_BLOCKS_PER_SM)
"""


def _ptxas_missing() -> str | None:
    try:
        from triton.backends.nvidia.compiler import get_ptxas

        path = get_ptxas(90).path
    except Exception as error:  # no CUDA backend in this triton build
        return f"triton's CUDA backend or its ptxas is unavailable ({error})"
    return None if path and os.path.exists(path) else f"ptxas not found ({path})"


def test_default_forward_compiles_for_sm90_without_spills():
    why = _ptxas_missing()
    if why:
        pytest.skip(why)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", _CHECK, str(SCRIPTS)], env=env,
                          capture_output=True, text=True, timeout=240, cwd="/")
    assert proc.returncode == 0, proc.stderr[-4000:]
    regs, stores, loads, blocks, min_blocks = map(int, proc.stdout.split()[-5:])
    assert stores == loads == 0, f"{regs} registers, spills {stores}/{loads} bytes"
    assert blocks >= min_blocks, f"{regs} registers: {blocks} blocks per SM"
