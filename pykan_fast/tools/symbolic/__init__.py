"""Symbolic regression on KAN edges (pykan 0.2.8's symbolic tools).

:mod:`.library` (``SYMBOLIC_LIB``, ``add_symbolic``), :mod:`.fitting` (``fit_params``,
ranking), ``SymbolicKANLayer`` (the per-layer symbolic branch, :mod:`pykan_fast.nn.symbolic_layer`),
:mod:`.edges` (``fix_symbolic``, ``suggest_symbolic``, ``auto_symbolic`` on a KAN, which
its methods call) and :mod:`.formula` (``symbolic_formula``, sympy). sympy is imported
only by the sympy forms and the formula: everything else works without it.
"""

from .fitting import Candidate, fit_params, rank_functions
from .formula import ex_round, symbolic_formula
from .library import SYMBOLIC_LIB, SymbolicFunction, add_symbolic, get_symbolic

__all__ = ["SYMBOLIC_LIB", "SymbolicFunction", "add_symbolic", "get_symbolic", "fit_params",
           "Candidate", "rank_functions", "SymbolicKANLayer", "symbolic_formula", "ex_round"]


def __getattr__(name):
    # The layer is part of the model's forward (pykan_fast.nn), which imports this
    # package's library: resolved lazily so neither import waits on the other.
    if name == "SymbolicKANLayer":
        from ...nn.symbolic_layer import SymbolicKANLayer

        return SymbolicKANLayer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
