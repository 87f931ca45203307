"""Backend registry: which implementation runs a call, chosen per call by device,
overridable by argument or the ``PYKAN_FAST_BACKEND`` environment variable."""

from __future__ import annotations

import importlib
import os

import torch

BACKENDS = ("cpu", "triton", "torch")
ENV_VAR = "PYKAN_FAST_BACKEND"

_TRITON_FIX = (
    "install Triton with `pip install pykan-fast[triton]` (Linux x86-64 with a CUDA GPU), "
    'or pass backend="torch" for the pure-torch reference'
)


def _triton_error() -> str | None:
    """Why the triton backend cannot be used here, or None when it can."""
    try:
        importlib.import_module("triton")
    except Exception as error:  # ImportError, or a broken install
        return f"triton does not import ({error})"
    return None


def available_backends() -> list[str]:
    """The backends usable in this process, e.g. ``["cpu", "torch"]``."""
    names = ["cpu"]
    if _triton_error() is None:
        names.append("triton")
    names.append("torch")
    return names


def select_backend(requested: str | None, device: torch.device) -> str:
    """The backend for a call on tensors of ``device``."""
    name = requested if requested is not None else os.environ.get(ENV_VAR) or None
    source = "backend" if requested is not None else ENV_VAR
    if name is None:
        name = "triton" if device.type == "cuda" else "cpu" if device.type == "cpu" else "torch"
    if name not in BACKENDS:
        raise ValueError(f"{source}: expected one of {list(BACKENDS)} or None, got {name!r}")
    if name == "cpu" and device.type != "cpu":
        raise ValueError(f'{source}: "cpu" runs on CPU tensors, got tensors on {device}')
    if name == "triton":
        if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError(
                f'{source}: "triton" runs on CUDA tensors (or on CPU tensors under '
                f"TRITON_INTERPRET=1), got tensors on {device}"
            )
        why = _triton_error()
        if why is not None:
            raise RuntimeError(f"the triton backend is unavailable: {why}; {_TRITON_FIX}")
    return name


def implementation(name: str):
    """The module holding ``forward``/``backward`` for a compiled backend."""
    if name == "cpu":
        from . import cpu_backend as cpu

        return cpu
    if name == "triton":
        from . import triton_backend

        return triton_backend
    raise ValueError(f"backend: {name!r} has no fused implementation")
