"""The Feynman equations as datasets: pykan 0.2.8's ``kan.feynman.get_feynman_dataset``.

``get_feynman_dataset(name)`` takes pykan's names ('I.6.20a', 'III.4.33', 'test') or
numbers (1..120) and returns ``(symbols, expr, f, ranges)``: the sympy input symbols,
the sympy formula (the same expression pykan builds), ``f`` `[B, n] -> [B, 1]` in torch
and the sampling ranges in :func:`pykan_fast.create_dataset`'s format. Needs sympy.

``f`` is evaluated from ``expr`` itself, so the two always agree. Differences from
pykan 0.2.8, whose hand-written torch functions disagree with its formulas for three
equations: 20 (I.16.6: pykan computes ``u v / (1 + u v / c^2)`` instead of
``(u + v) / (1 + u v / c^2)``), 113 (Goldstein 12.80: ``alpha x / y`` for ``alpha y / x``)
and 114 (Jackson 2.11: pykan's function fails on an index error). The name 'I.18.4'
gives equation 21; equation 22 (``r F sin(theta)``, which pykan also labels 'I.18.4',
so that pykan's 'I.18.4' gives 22) is 'I.18.12', its AI Feynman name. ``symbols`` is
always a tuple (pykan returns a list for one variable). Ranges are floats (pykan's
multiples of pi are 0-d tensors).
"""

from __future__ import annotations

from .feynman_table import FEYNMAN_EQUATIONS

__all__ = ["get_feynman_dataset", "feynman_names", "FEYNMAN_EQUATIONS"]

_BY_INDEX = {row[0]: row for row in FEYNMAN_EQUATIONS if row[0] is not None}
_BY_NAME = {row[1]: row for row in FEYNMAN_EQUATIONS}


def feynman_names() -> list[tuple[int, str]]:
    """``(index, name)`` of every numbered equation, in pykan's order."""
    return [(row[0], row[1]) for row in FEYNMAN_EQUATIONS if row[0] is not None]


def _row(name):
    if isinstance(name, bool):
        raise ValueError(f"name: expected an equation name or a number in 1..120, got {name!r}")
    if isinstance(name, int):
        if name not in _BY_INDEX:
            raise ValueError(f"name: no Feynman equation number {name} (expected 1..120)")
        return _BY_INDEX[name]
    if name not in _BY_NAME:
        raise ValueError(f"name: no Feynman equation named {name!r}; see feynman_names()")
    return _BY_NAME[name]


def _ranges(ranges):
    if isinstance(ranges, tuple):
        return [float(ranges[0]), float(ranges[1])]
    return [[float(a), float(b)] for a, b in ranges]


def get_feynman_dataset(name):
    """``(symbols, expr, f, ranges)`` of Feynman equation ``name`` (a pykan name or a
    number 1..120); see the module docstring."""
    import sympy

    from ..tools.sympy_torch import sympy_to_torch

    _, _, variables, formula, ranges = _row(name)
    namespace = {k: getattr(sympy, k) for k in ("exp", "sqrt", "sin", "cos", "tan", "asin",
                                                 "acos", "atan", "tanh", "sinh", "cosh",
                                                 "log", "pi", "Abs", "nsimplify")}
    symbols = []
    for token in variables.split():
        ident, _, symbol = token.partition(":")
        symbols.append(sympy.Symbol(symbol or ident))
        namespace[ident] = symbols[-1]
    # The formula is this package's own constant table, evaluated without builtins.
    expr = eval(formula, {"__builtins__": {}}, namespace)  # noqa: S307
    symbols = tuple(symbols)
    return symbols, expr, sympy_to_torch(expr, symbols), _ranges(ranges)
