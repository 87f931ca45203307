"""The kernel builds the dispatcher did not pick, against the reference.

The extension holds one build per instruction set (generic, AVX2, AVX-512), each with its
own vector width and register blocking (src/cpp/simd.hpp), and runs the best this
processor has; ``PYKAN_FAST_ISA`` caps the choice.  This re-runs the kernel table
(test_cpu_kernels.py) in a subprocess on each lower build the processor can run, so a
machine with AVX-512 still tests the AVX2 and generic code.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pykan_fast import _C

ROOT = Path(__file__).resolve().parents[2]


def _isa_under_cap(isa: str) -> str:
    code = "from pykan_fast import _C; print(_C.active_isa())"
    env = {**os.environ, "PYKAN_FAST_ISA": isa}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True)
    return done.stdout.strip()


@pytest.mark.slow
@pytest.mark.parametrize("isa", ["generic", "avx2"])
def test_kernel_table_on_other_build(isa):
    if _C.active_isa() == isa:
        pytest.skip(f"{isa} is the build this run tests everywhere")
    if _isa_under_cap(isa) != isa:
        pytest.skip(f"this processor cannot run the {isa} build")
    test_file = ROOT / "tests" / "ops" / "test_cpu_kernels.py"
    env = {**os.environ, "PYKAN_FAST_ISA": isa}
    done = subprocess.run([sys.executable, "-m", "pytest", str(test_file), "-q", "-x",
                           "-k", "test_matches_reference", "-p", "no:cacheprovider"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
