"""Constants the kernels define, read from the compiled extension (one definition, in
src/cpp): the highest spline order they take and the codes of the base functions they
evaluate themselves (0: none, the base runs in torch)."""

from __future__ import annotations

from .._compiled import C

MAX_ORDER: int = int(C.MAX_ORDER)
_CODES: dict[str, int] = dict(C.BASE_FUN_CODES)  # enum BaseFun in src/cpp/kan_problem.hpp
NO_BASE: int = _CODES["none"]
# name -> code of the base functions the kernels fuse (pykan's default SiLU).
FUSED_BASE: dict[str, int] = {name: code for name, code in _CODES.items() if name != "none"}
SILU: int = FUSED_BASE["silu"]

__all__ = ["MAX_ORDER", "NO_BASE", "FUSED_BASE", "SILU"]
