"""pykan 0.2.8's ``kan.LBFGS``: its L-BFGS optimizer (pykan_fast's implementation,
:mod:`pykan_fast.train.lbfgs`)."""

from ..train.lbfgs import LBFGS

__all__ = ["LBFGS"]
