"""pykan 0.2.8's ``kan.hypothesis`` on pykan_fast (:mod:`pykan_fast.tools.hypothesis`):
separability, symmetry and the module tree. The tests return Python bools (pykan: 0-d
tensors), ``plot_tree`` returns its Figure; see the native module for the differences."""

from ..tools.derivatives import batch_hessian, batch_jacobian
from ..tools.hypothesis import (batch_grad_normgrad, detect_separability, get_dependence,
                                get_molecule, get_tree_node, plot_tree, test_general_separability,
                                test_separability, test_symmetry, test_symmetry_var)

__all__ = ["detect_separability", "batch_grad_normgrad", "get_dependence", "test_symmetry",
           "test_separability", "test_general_separability", "get_molecule", "get_tree_node",
           "plot_tree", "test_symmetry_var", "batch_jacobian", "batch_hessian"]
