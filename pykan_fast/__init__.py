"""pykan_fast: the fastest exact Kolmogorov-Arnold Network layers.

pykan's numerics (same knots, bases, parameter names and shapes) on fused C++/OpenMP
(CPU) and Triton (CUDA) kernels, through torch autograd.
"""

from . import _compiled  # noqa: F401  (fails early, with instructions, when unbuilt)
from . import functional
from .backends import available_backends
from .layer import KANLayer
from .model import KAN
from .dataset import create_dataset
from . import symbolic  # sympy loads only when a sympy form or the formula is used
from .symbolic import SYMBOLIC_LIB, add_symbolic

__version__ = "0.1.0"

__all__ = ["KANLayer", "available_backends", "functional", "__version__"]
__all__ += ["KAN", "create_dataset"]
__all__ += ["symbolic", "SYMBOLIC_LIB", "add_symbolic"]
