"""pykan 0.2.8's ``kan.feynman`` on pykan_fast (:mod:`pykan_fast.experiments.feynman`):
``get_feynman_dataset(name) -> (symbols, expr, f, ranges)``."""

from ..experiments.feynman import get_feynman_dataset

__all__ = ["get_feynman_dataset"]
