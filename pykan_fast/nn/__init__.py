"""``nn.Module``s: ``KANLayer`` (one fused layer), ``KAN`` (pykan's MultKAN as a stack of
layers), the symbolic branch of a layer, and the fused whole-stack forward (``stack``)."""

from .layer import KANLayer
from .model import KAN

__all__ = ["KANLayer", "KAN"]
