"""pykan 0.2.8's ``kan.compiler`` on pykan_fast: ``expr2kan`` (``kanpiler``, ``sf2kan``)
and ``next_nontrivial_operation``, pykan's names, signatures and defaults over
:mod:`pykan_fast.tools.compiler`; the model is a :class:`pykan_fast.kan.MultKAN`."""

from __future__ import annotations

import functools

from ..tools.compiler import expr2kan as _expr2kan
from ..tools.compiler import split_affine

__all__ = ["next_nontrivial_operation", "expr2kan", "kanpiler", "sf2kan"]


def next_nontrivial_operation(expr, scale=1, bias=0):
    """``(expr, scale, bias)``: the formula without its outer affine part."""
    return split_affine(expr, scale, bias)


def expr2kan(input_variables, expr, grid=5, k=3, auto_save=False):
    """A MultKAN computing the sympy formula ``expr`` of ``input_variables``."""
    from .MultKAN import MultKAN

    return _expr2kan(input_variables, expr, grid=grid, k=k,
                     model_class=functools.partial(MultKAN, auto_save=auto_save))


sf2kan = kanpiler = expr2kan
