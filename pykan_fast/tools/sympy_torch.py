"""A sympy expression as a torch function of the columns of `[B, n]` inputs (for the
Feynman datasets and ``test_symmetry_var``). sympy is imported by the caller only."""

from __future__ import annotations

import math

import torch

__all__ = ["sympy_to_torch", "TORCH_FUNCTIONS"]


def _tensor_fun(fun):
    """``fun`` on tensors, also on the plain numbers of constant sub-expressions."""
    def call(v):
        return fun(v if isinstance(v, torch.Tensor) else torch.as_tensor(v, dtype=torch.get_default_dtype()))
    return call


# sympy's printed names -> torch
TORCH_FUNCTIONS = {name: _tensor_fun(getattr(torch, target)) for name, target in {
    "sin": "sin", "cos": "cos", "tan": "tan", "exp": "exp", "log": "log", "sqrt": "sqrt",
    "tanh": "tanh", "sinh": "sinh", "cosh": "cosh", "asin": "asin", "acos": "acos",
    "atan": "atan", "atanh": "atanh", "asinh": "asinh", "acosh": "acosh", "Abs": "abs",
    "sign": "sign", "erf": "erf"}.items()}
TORCH_FUNCTIONS.update(pi=math.pi, E=math.e)


def sympy_to_torch(expr, variables):
    """``x [B, n] -> [B, 1]``: ``expr`` with ``variables[i]`` read from column i."""
    import sympy

    variables = list(variables)
    fn = sympy.lambdify(variables, expr, modules=[TORCH_FUNCTIONS, "math"])

    def f(x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != len(variables):
            raise ValueError(f"x: expected shape [batch, {len(variables)}], got {list(x.shape)}")
        y = fn(*[x[:, [i]] for i in range(len(variables))])
        if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0], 1):
            y = torch.as_tensor(y, dtype=x.dtype, device=x.device).expand(x.shape[0], 1)
        return y
    return f
