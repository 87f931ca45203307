"""Constants the kernels define, read from the compiled extension (one definition, in
src/cpp): the highest spline order they take and the codes of the base functions they
evaluate themselves (0: none, the base runs in torch)."""

from __future__ import annotations

from .._compiled import C

MAX_ORDER: int = int(C.MAX_ORDER)
NO_BASE = 0
# name -> code of the base functions the kernels fuse (pykan's default SiLU).
FUSED_BASE: dict[str, int] = dict(getattr(C, "BASE_FUNCTIONS", None) or {"silu": 1})
SILU: int = FUSED_BASE["silu"]

__all__ = ["MAX_ORDER", "NO_BASE", "FUSED_BASE", "SILU"]
