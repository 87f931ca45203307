"""Stand-ins for names pykan's namespace re-exports from slow-to-import packages (pandas,
scikit-learn: ~4 s, more than torch): ``from pykan_fast.kan import *`` binds them at once,
as pykan's does, and the package is imported on the name's first use."""

from __future__ import annotations

import importlib
import types

__all__ = ["LazyModule", "lazy_class"]


class LazyModule(types.ModuleType):
    """A module imported on its first attribute access (``pd.DataFrame``)."""

    def __init__(self, name: str):
        super().__init__(name)

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self.__name__), attr)

    def __dir__(self):
        return dir(importlib.import_module(self.__name__))


class _LazyClassMeta(type):
    """Calls, attributes and isinstance/issubclass go to the real class."""

    def __call__(cls, *args, **kwargs):
        return cls._resolve()(*args, **kwargs)

    def __getattr__(cls, attr):
        return getattr(cls._resolve(), attr)

    def __instancecheck__(cls, obj):
        return isinstance(obj, cls._resolve())

    def __subclasscheck__(cls, sub):
        return issubclass(sub, cls._resolve())

    def __repr__(cls):
        return repr(cls._resolve())


def lazy_class(module: str, name: str) -> type:
    """A stand-in for ``module.name`` (a class) that imports ``module`` when first used."""

    def resolve():
        return getattr(importlib.import_module(module), name)

    return _LazyClassMeta(name, (), {"_resolve": staticmethod(resolve), "__module__": module})
