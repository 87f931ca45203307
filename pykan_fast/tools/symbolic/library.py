"""The symbolic library: pykan 0.2.8's ``SYMBOLIC_LIB`` and ``add_symbolic``.

Each entry is a :class:`SymbolicFunction` ``(fun, fun_sympy, c, fun_singularity)`` --
pykan's tuple order, so ``SYMBOLIC_LIB[name][0]`` works as in pykan:

- ``fun``: the torch form, ``x -> f(x)`` elementwise;
- ``fun_sympy``: the sympy form. sympy is imported only when a sympy form is called, so
  the library (and pykan_fast) imports without sympy;
- ``c``: the complexity ``suggest_symbolic`` weighs against the fit quality;
- ``fun_singularity``: ``(x, y_th) -> y``, the form training uses with
  ``singularity_avoiding=True``: the same values as pykan's singularity-avoiding form
  (pykan returns ``(aux, y)``; a callable returning such a tuple is accepted too), but
  written with ``torch.where`` on a safe argument, so its gradient is finite everywhere
  (pykan's is NaN at the singular point itself, where ``0 * inf`` appears).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

__all__ = ["SymbolicFunction", "SYMBOLIC_LIB", "add_symbolic", "get_symbolic", "call_singular"]


class SymbolicFunction(NamedTuple):
    """One library function, in pykan's tuple order."""

    fun: Callable
    fun_sympy: Callable
    c: float
    fun_singularity: Callable


def _sympy():
    try:
        import sympy
    except ImportError as error:  # the torch forms never get here
        raise ImportError("the sympy forms of the symbolic library need sympy: "
                          "pip install pykan-fast[symbolic]") from error
    return sympy


def _sp(name: str) -> Callable:
    """``x -> sympy.<name>(x)``, importing sympy on the call."""
    def fun(x):
        return getattr(_sympy(), name)(x)
    fun.__name__ = f"sympy_{name}"
    return fun


def call_singular(fun_singularity: Callable, x: torch.Tensor, y_th) -> torch.Tensor:
    """Evaluate a singularity-avoiding form; accepts pykan's ``(aux, y)`` return too."""
    y = fun_singularity(x, y_th)
    return y[1] if isinstance(y, tuple) else y


def _threshold(y_th, x: torch.Tensor) -> torch.Tensor:
    # pykan passes torch.tensor(y_th): a 0-d tensor in the default dtype; here x's dtype.
    return torch.as_tensor(y_th, dtype=x.dtype, device=x.device)


def _inverse_power(power: int) -> Callable:
    """pykan's f_inv..f_inv5: linear (odd powers) or constant (even) below
    ``x_th = y_th^(-1/power)``, ``1/x^power`` elsewhere."""
    def fun(x, y_th):
        y_th = _threshold(y_th, x)
        x_th = 1 / y_th if power == 1 else 1 / y_th ** (1 / power)
        near = torch.abs(x) < x_th
        safe = torch.where(near, torch.ones_like(x), x)
        far = torch.nan_to_num(1 / safe if power == 1 else 1 / safe ** power)
        inner = y_th / x_th * x if power % 2 else y_th.expand_as(x)
        return torch.where(near, inner, far)
    return fun


def _sqrt_singular(x, y_th):
    y_th = _threshold(y_th, x)
    x_th = 1 / y_th ** 2
    near = torch.abs(x) < x_th
    safe = torch.where(near, torch.ones_like(x), x)
    return torch.where(near, x_th / y_th * x,
                       torch.nan_to_num(torch.sqrt(torch.abs(safe)) * torch.sign(safe)))


def _power1d5_singular(x, y_th):
    return torch.abs(x) ** 1.5


def _invsqrt_singular(x, y_th):
    y_th = _threshold(y_th, x)
    x_th = 1 / y_th ** 2
    near = torch.abs(x) < x_th
    safe = torch.where(near, torch.ones_like(x), x)
    return torch.where(near, y_th.expand_as(x), torch.nan_to_num(1 / torch.sqrt(torch.abs(safe))))


def _log_singular(x, y_th):
    y_th = _threshold(y_th, x)
    x_th = torch.e ** (-y_th)
    near = torch.abs(x) < x_th
    safe = torch.where(near, torch.ones_like(x), x)
    return torch.where(near, -y_th.expand_as(x), torch.nan_to_num(torch.log(torch.abs(safe))))


def _tan_singular(x, y_th):
    y_th = _threshold(y_th, x)
    clip = x % torch.pi
    delta = torch.pi / 2 - torch.arctan(y_th)
    near = torch.abs(clip - torch.pi / 2) < delta
    safe = torch.where(near, torch.zeros_like(clip), clip)
    return torch.where(near, -y_th / delta * (clip - torch.pi / 2), torch.nan_to_num(torch.tan(safe)))


def _arctanh_singular(x, y_th):
    y_th = _threshold(y_th, x)
    delta = 1 - torch.tanh(y_th) + 1e-4
    outside = torch.abs(x) > 1 - delta
    safe = torch.where(outside, torch.zeros_like(x), x)
    return torch.where(outside, y_th * torch.sign(x), torch.nan_to_num(torch.arctanh(safe)))


def _arcsin_singular(x, y_th):
    outside = torch.abs(x) > 1
    safe = torch.where(outside, torch.zeros_like(x), x)
    return torch.where(outside, torch.pi / 2 * torch.sign(x), torch.nan_to_num(torch.arcsin(safe)))


def _arccos_singular(x, y_th):
    outside = torch.abs(x) > 1
    safe = torch.where(outside, torch.zeros_like(x), x)
    return torch.where(outside, torch.pi / 2 * (1 - torch.sign(x)),
                       torch.nan_to_num(torch.arccos(safe)))


def _exp_singular(x, y_th):
    y_th = _threshold(y_th, x)
    above = x > torch.log(y_th)
    safe = torch.where(above, torch.zeros_like(x), x)
    return torch.where(above, y_th.expand_as(x), torch.exp(safe))


def _regular(fun: Callable) -> Callable:
    """A function without singularities: its singular form is itself."""
    def singular(x, y_th):
        return fun(x)
    return singular


def _entry(fun, fun_sympy, c, singular=None) -> SymbolicFunction:
    return SymbolicFunction(fun, fun_sympy, c, singular if singular is not None else _regular(fun))


def _sympy_sqrt(x):
    return _sympy().sqrt(x)


# pykan 0.2.8's SYMBOLIC_LIB: same names, torch forms, sympy forms and complexities.
SYMBOLIC_LIB: dict[str, SymbolicFunction] = {
    "x": _entry(lambda x: x, lambda x: x, 1),
    "x^2": _entry(lambda x: x ** 2, lambda x: x ** 2, 2),
    "x^3": _entry(lambda x: x ** 3, lambda x: x ** 3, 3),
    "x^4": _entry(lambda x: x ** 4, lambda x: x ** 4, 3),
    "x^5": _entry(lambda x: x ** 5, lambda x: x ** 5, 3),
    "1/x": _entry(lambda x: 1 / x, lambda x: 1 / x, 2, _inverse_power(1)),
    "1/x^2": _entry(lambda x: 1 / x ** 2, lambda x: 1 / x ** 2, 2, _inverse_power(2)),
    "1/x^3": _entry(lambda x: 1 / x ** 3, lambda x: 1 / x ** 3, 3, _inverse_power(3)),
    "1/x^4": _entry(lambda x: 1 / x ** 4, lambda x: 1 / x ** 4, 4, _inverse_power(4)),
    "1/x^5": _entry(lambda x: 1 / x ** 5, lambda x: 1 / x ** 5, 5, _inverse_power(5)),
    "sqrt": _entry(torch.sqrt, _sympy_sqrt, 2, _sqrt_singular),
    "x^0.5": _entry(torch.sqrt, _sympy_sqrt, 2, _sqrt_singular),
    "x^1.5": _entry(lambda x: torch.sqrt(x) ** 3, lambda x: _sympy_sqrt(x) ** 3, 4, _power1d5_singular),
    "1/sqrt(x)": _entry(lambda x: 1 / torch.sqrt(x), lambda x: 1 / _sympy_sqrt(x), 2, _invsqrt_singular),
    "1/x^0.5": _entry(lambda x: 1 / torch.sqrt(x), lambda x: 1 / _sympy_sqrt(x), 2, _invsqrt_singular),
    "exp": _entry(torch.exp, _sp("exp"), 2, _exp_singular),
    "log": _entry(torch.log, _sp("log"), 2, _log_singular),
    "abs": _entry(torch.abs, _sp("Abs"), 3),
    "sin": _entry(torch.sin, _sp("sin"), 2),
    "cos": _entry(torch.cos, _sp("cos"), 2),
    "tan": _entry(torch.tan, _sp("tan"), 3, _tan_singular),
    "tanh": _entry(torch.tanh, _sp("tanh"), 3),
    "sgn": _entry(torch.sign, _sp("sign"), 3),
    "arcsin": _entry(torch.arcsin, _sp("asin"), 4, _arcsin_singular),
    "arccos": _entry(torch.arccos, _sp("acos"), 4, _arccos_singular),
    "arctan": _entry(torch.arctan, _sp("atan"), 4),
    "arctanh": _entry(torch.arctanh, _sp("atanh"), 4, _arctanh_singular),
    "0": _entry(lambda x: x * 0, lambda x: x * 0, 0),
    "gaussian": _entry(lambda x: torch.exp(-x ** 2), lambda x: _sympy().exp(-x ** 2), 3),
}


def get_symbolic(name: str) -> SymbolicFunction:
    """The library entry called ``name``; ValueError naming the known ones otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"fun_name: expected a library name (str), got {type(name).__name__}")
    try:
        return SYMBOLIC_LIB[name]
    except KeyError:
        raise ValueError(f"fun_name: {name!r} is not in the symbolic library (known: "
                         f"{', '.join(SYMBOLIC_LIB)}); add_symbolic registers new "
                         "functions") from None


def add_symbolic(name: str, fun: Callable, c: float = 1, fun_singularity: Callable | None = None,
                 fun_sympy: Callable | None = None) -> None:
    """Register ``fun`` (a torch function of one tensor) as ``name``, as pykan's
    ``add_symbolic``: complexity ``c``, singularity-avoiding form ``fun_singularity``
    (``(x, y_th) -> y``; default ``fun`` itself) and sympy form ``fun_sympy`` (default,
    as pykan, an undefined sympy function ``name(x)``). Replaces an existing entry."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty str, got {name!r}")
    if not callable(fun):
        raise TypeError(f"fun: expected a callable, got {type(fun).__name__}")
    if fun_singularity is not None and not callable(fun_singularity):
        raise TypeError(f"fun_singularity: expected a callable, got {type(fun_singularity).__name__}")
    if fun_sympy is not None and not callable(fun_sympy):
        raise TypeError(f"fun_sympy: expected a callable, got {type(fun_sympy).__name__}")
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c):
        raise ValueError(f"c: expected a finite number (the complexity), got {c!r}")
    if fun_sympy is None:
        def fun_sympy(x, _name=name):
            return _sympy().Function(_name)(x)
    SYMBOLIC_LIB[name] = _entry(fun, fun_sympy, c, fun_singularity)
