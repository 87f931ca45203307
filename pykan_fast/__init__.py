"""pykan_fast: the fastest exact Kolmogorov-Arnold Network layers.

pykan's numerics (same knots, bases, parameter names and shapes) on fused C++/OpenMP
(CPU) and Triton (CUDA) kernels, through torch autograd. Layout: ``ops`` (the fused op:
kernels' launchers, reference, checks), ``nn`` (layers and models), ``train``, ``tools``
(prune, plot, symbolic), ``experiments`` (demo, paper examples, CLI); docs/ARCHITECTURE.md.
"""

import sys

from ._source_tree import redirect_to_installed_copy

redirect_to_installed_copy(globals())

from ._version import __version__  # noqa: E402
from . import _compiled  # noqa: E402,F401  (fails early, with instructions, when unbuilt)
from .ops import functional  # noqa: E402
from .ops.backends import available_backends  # noqa: E402
from .nn import KAN, KANLayer  # noqa: E402
from .train.dataset import create_dataset  # noqa: E402
from .tools import symbolic  # noqa: E402  (sympy loads only when a sympy form or the formula is used)
from .tools.symbolic import SYMBOLIC_LIB, add_symbolic  # noqa: E402

# The two public modules keep their import paths (``import pykan_fast.functional``,
# ``from pykan_fast.symbolic import fit_params``) from before the package had folders.
sys.modules[__name__ + ".functional"] = functional
sys.modules[__name__ + ".symbolic"] = symbolic

__all__ = ["KANLayer", "available_backends", "functional", "__version__"]
__all__ += ["KAN", "create_dataset"]
__all__ += ["symbolic", "SYMBOLIC_LIB", "add_symbolic"]
