"""pykan 0.2.8's namespace on pykan_fast: replace ``kan`` by ``pykan_fast.kan`` in a
pykan script's imports (or run it unchanged with ``python -m pykan_fast.kan
SCRIPT.py``). Same module paths (``.MultKAN``, ``.KANLayer``, ``.Symbolic_KANLayer``,
``.spline``, ``.utils``, ``.LBFGS``, ``.MLP``, ``.compiler``, ``.hypothesis``,
``.feynman``, ``.experiment``), names, signatures and defaults; the classes are
pykan_fast's own. ``from pykan_fast.kan import *`` hands out what pykan's ``from kan
import *`` does (torch, np, plt, sympy and sympy's names, MultKAN, KAN, LBFGS,
create_dataset, ex_round, ...); matplotlib, sympy, pandas, yaml and the discovery
modules load on first use (pandas and scikit-learn's ``LinearRegression`` even under
``import *``: stand-ins that import on first use).
"""

import copy  # noqa: F401  (pykan's namespace hands these modules out)
import glob  # noqa: F401
import importlib
import importlib.util
import os  # noqa: F401
import random  # noqa: F401
import re  # noqa: F401

import numpy as np  # noqa: F401
import torch  # noqa: F401
import torch.nn as nn  # noqa: F401

from . import spline, utils  # noqa: F401
from .KANLayer import KANLayer
from .LBFGS import LBFGS
from .MultKAN import KAN, MultKAN
from .spline import curve2coef  # noqa: F401
from .Symbolic_KANLayer import Symbolic_KANLayer
from .utils import *  # noqa: F401,F403
from .utils import __all__ as _utils_all
from ._lazy import LazyModule, lazy_class

# Modules of the discovery tools (written separately): imported on first use.
DISCOVERY_MODULES = ("compiler", "hypothesis", "feynman", "MLP", "experiment")
# Optional packages pykan's namespace re-exports: name -> (module, attribute or None).
_OPTIONAL = {
    "plt": ("matplotlib.pyplot", None),
    "sympy": ("sympy", None),
    "yaml": ("yaml", None),
    "pd": ("pandas", None),
    "tqdm": ("tqdm", "tqdm"),
    "latex": ("sympy.printing", "latex"),
    "LinearRegression": ("sklearn.linear_model", "LinearRegression"),
}
# Of those, the ones whose import costs seconds: handed out as stand-ins (kan/_lazy.py).
_LAZY = ("pd", "LinearRegression")
_EAGER = ["KAN", "MultKAN", "KANLayer", "Symbolic_KANLayer", "LBFGS", "curve2coef", "spline",
          "utils", "torch", "np", "nn", "os", "glob", "random", "copy", "re"] + list(_utils_all)


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _discovery(name: str):
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as error:
        if error.name == f"{__name__}.{name}":
            raise ImportError(f"{__name__}.{name} (pykan's kan.{name}) is not available in "
                              "this version of pykan_fast") from None
        raise


def _star_names() -> list:
    """What ``from pykan_fast.kan import *`` hands out: pykan's names that exist here."""
    names = list(_EAGER)
    # the top-level package: finding ``sklearn.linear_model`` imports sklearn (seconds)
    names += [n for n, (module, _) in _OPTIONAL.items() if _available(module.split(".")[0])]
    names += [n for n in DISCOVERY_MODULES if _available(f"{__name__}.{n}")]
    if _available(f"{__name__}.hypothesis"):
        names.append("plot_tree")
    if _available("sympy"):
        import sympy

        names += [n for n in sympy.__all__ if n not in names and not n.startswith("_")]
    return names


def __getattr__(name):
    if name == "__all__":
        return _star_names()
    if name in DISCOVERY_MODULES:
        return _discovery(name)
    if name == "plot_tree":
        return _discovery("hypothesis").plot_tree
    if name in _LAZY:
        module, attr = _OPTIONAL[name]
        return LazyModule(module) if attr is None else lazy_class(module, attr)
    if name in _OPTIONAL:
        module, attr = _OPTIONAL[name]
        value = importlib.import_module(module)
        return value if attr is None else getattr(value, attr)
    if not name.startswith("_") and _available("sympy"):
        import sympy  # pykan's ``from sympy import *``: sin, exp, Symbol, ...

        if name in sympy.__all__:
            return getattr(sympy, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
