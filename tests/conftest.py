"""Fixtures and hooks only. The tests' builders, comparator, tolerances and case table are
in tests/support.py (``from support import ...``): pytest runs with
``--import-mode=importlib``, so test modules cannot import each other or this file, and
this folder is put on sys.path below for that one module."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # for `import support`

# Without CUDA the Triton kernels run under the interpreter. TRITON_INTERPRET is read when
# ``@triton.jit`` decorates, so it is set before any test (or torch.compile's inductor)
# imports pykan_fast.triton.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def restore_threads(monkeypatch):
    """Restores torch's intra-op thread count after a test that changes it; the CPU
    kernels use every thread whatever the problem size (no serial cut-off for small work)."""
    from pykan_fast.ops import cpu_backend as cpu

    monkeypatch.setattr(cpu, "SERIAL_WORK", 0)
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_backend_env(monkeypatch):
    """Tests choose the backend explicitly: an inherited PYKAN_FAST_BACKEND or
    TRITON_INTERPRET must not change what they run."""
    monkeypatch.delenv("PYKAN_FAST_BACKEND", raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)


@pytest.fixture
def float64_default():
    """pykan builds in the default dtype: float64 for the parity checks."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def multkan(monkeypatch, tmp_path):
    """A builder of pykan's MultKAN, run in a temporary directory (it may write ./model/)."""
    module = pytest.importorskip("kan.MultKAN", reason="pykan (pip install pykan-fast[compat]) is needed")
    monkeypatch.chdir(tmp_path)

    def build(width, **kwargs):
        kwargs.setdefault("auto_save", False)
        kwargs.setdefault("symbolic_enabled", False)
        return module.MultKAN(width=list(width), **kwargs)

    return build


@pytest.fixture
def backward_kernel_calls(monkeypatch):
    """Counts the CPU backend's backward kernels as the test runs: ``{"fused": n,
    "derivative": m}`` (the first-order ``backward`` and ``spline_derivative_backward``)."""
    from pykan_fast.ops import cpu_backend as cpu

    calls = {"fused": 0, "derivative": 0}

    def count(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(cpu, "backward", count("fused", cpu.backward))
    monkeypatch.setattr(cpu, "spline_derivative_backward",
                        count("derivative", cpu.spline_derivative_backward))
    return calls
