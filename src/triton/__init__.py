"""Triton kernels of the fused KAN layer (installed as ``pykan_fast.triton``).

- ``basis``: the B-spline mathematics (span search, Cox-de Boor step, derivative step,
  pykan's repeated-knot and NaN rules), device functions only;
- ``blocks``: device helpers shared by the kernels (block offsets, x blocks with their
  spans, weight-row gathers, basis tiles, stage 1 of the weight gradient);
- ``layer``: the layer's forward/backward kernels and their launchers;
- ``derivative``: the spline-derivative kernels (double backward, PINNs) and launchers;
- ``launch``: block sizes, path choice, argument checks, the output's trivial cases and
  the weight gradient's two-stage launch (plain Python).

Importing this package never imports triton: the launchers below are loaded on first
attribute access. ``TRITON_INTERPRET=1`` is read by ``@triton.jit`` when the kernel
modules are imported: set it before the first access to run the kernels on CPU tensors.
"""

from __future__ import annotations

import importlib

# launcher name -> module holding it
_PUBLIC = {
    "kan_forward": "layer",
    "kan_backward": "layer",
    "spline_derivative": "derivative",
    "spline_derivative_backward": "derivative",
    "choose_path": "launch",
    "LOCAL_MIN_COLUMNS": "launch",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
