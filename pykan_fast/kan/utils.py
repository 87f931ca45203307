"""pykan 0.2.8's ``kan.utils``: datasets, the symbolic library, derivatives and
helpers, with pykan's signatures and results, implemented here or taken from
pykan_fast (sympy is imported by the functions that need it)."""

from __future__ import annotations

import numpy as np
import torch

from ..tools.derivatives import batch_hessian, batch_jacobian
from ..tools.symbolic.fitting import fit_params
from ..tools.symbolic.formula import ex_round
from ..tools.symbolic.library import SYMBOLIC_LIB, add_symbolic
from ..train.dataset import create_dataset, create_dataset_from_data

__all__ = ["create_dataset", "create_dataset_from_data", "fit_params", "sparse_mask",
           "add_symbolic", "ex_round", "augment_input", "batch_jacobian", "batch_hessian",
           "get_derivative", "model2param", "SYMBOLIC_LIB",
           "f_inv", "f_inv2", "f_inv3", "f_inv4", "f_inv5", "f_sqrt", "f_power1d5",
           "f_invsqrt", "f_log", "f_tan", "f_arctanh", "f_arcsin", "f_arccos", "f_exp"]

# pykan's singularity-avoiding forms, by their pykan names: ``(x, y_th) -> y``.
f_inv = SYMBOLIC_LIB["1/x"].fun_singularity
f_inv2 = SYMBOLIC_LIB["1/x^2"].fun_singularity
f_inv3 = SYMBOLIC_LIB["1/x^3"].fun_singularity
f_inv4 = SYMBOLIC_LIB["1/x^4"].fun_singularity
f_inv5 = SYMBOLIC_LIB["1/x^5"].fun_singularity
f_sqrt = SYMBOLIC_LIB["sqrt"].fun_singularity
f_power1d5 = SYMBOLIC_LIB["x^1.5"].fun_singularity
f_invsqrt = SYMBOLIC_LIB["1/sqrt(x)"].fun_singularity
f_log = SYMBOLIC_LIB["log"].fun_singularity
f_tan = SYMBOLIC_LIB["tan"].fun_singularity
f_arctanh = SYMBOLIC_LIB["arctanh"].fun_singularity
f_arcsin = SYMBOLIC_LIB["arcsin"].fun_singularity
f_arccos = SYMBOLIC_LIB["arccos"].fun_singularity
f_exp = SYMBOLIC_LIB["exp"].fun_singularity


def sparse_mask(in_dim: int, out_dim: int) -> torch.Tensor:
    """pykan's sparse initialisation mask `[in, out]`: nodes of both layers placed
    evenly on [0, 1]; each input connects to its nearest output and each output to its
    nearest input."""
    for name, v in (("in_dim", in_dim), ("out_dim", out_dim)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    in_coord = torch.arange(in_dim) * 1 / in_dim + 1 / (2 * in_dim)
    out_coord = torch.arange(out_dim) * 1 / out_dim + 1 / (2 * out_dim)
    dist = torch.abs(out_coord[:, None] - in_coord[None, :])  # [out, in]
    mask = torch.zeros(in_dim, out_dim)
    mask[torch.arange(in_dim), torch.argmin(dist, dim=0)] = 1.0
    mask[torch.argmin(dist, dim=1), torch.arange(out_dim)] = 1.0
    return mask


def augment_input(orig_vars, aux_vars, x):
    """pykan's ``augment_input``: prepend the auxiliary variables ``aux_vars`` (sympy
    expressions of ``orig_vars``) evaluated on x `[B, n]` (or on both inputs of a
    dataset dict, in place)."""
    if isinstance(x, dict):
        x["train_input"] = augment_input(orig_vars, aux_vars, x["train_input"])
        x["test_input"] = augment_input(orig_vars, aux_vars, x["test_input"])
        return x
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a tensor or a dataset dict, got {type(x).__name__}")
    from sympy.utilities.lambdify import lambdify

    columns = [x[:, [i]].detach().cpu().numpy() for i in range(len(orig_vars))]
    aux = []
    for var in aux_vars:
        value = np.asarray(lambdify(orig_vars, var, "numpy")(*columns))
        aux.append(torch.from_numpy(np.broadcast_to(value, columns[0].shape).copy()).to(x.device))
    return torch.cat(aux + [x], dim=1) if aux else x


def _pykan_parameters(model) -> list[tuple[str, torch.Tensor]]:
    """(native name, parameter) in pykan's parameter order (its affines first)."""
    from .checkpoint import to_pykan_state

    params = dict(model.named_parameters())
    order = []
    for key in to_pykan_state(model):
        head, _, index = key.rpartition("_")
        native = f"{head}.{index}" if index.isdigit() and "." not in key else key
        if native in params:
            order.append((native, params[native]))
    return order


def model2param(model) -> torch.Tensor:
    """All parameters flattened into one vector, in pykan's order."""
    return torch.cat([p.reshape(-1) for _, p in _pykan_parameters(model)])


def get_derivative(model, inputs, labels, derivative: str = "hessian", loss_mode: str = "pred",
                   reg_metric: str = "edge_forward_spline_n", lamb: float = 0.,
                   lamb_l1: float = 1., lamb_entropy: float = 0.):
    """pykan's ``get_derivative``: the Jacobian or Hessian of the loss with respect to
    :func:`model2param`'s vector: ``[1, P]`` or ``[1, P, P]``. ``loss_mode``: ``'pred'``
    (MSE), ``'reg'`` (the regulariser) or ``'all'`` (MSE + lamb * reg)."""
    if derivative not in ("hessian", "jacobian"):
        raise ValueError(f"derivative: expected 'hessian' or 'jacobian', got {derivative!r}")
    if loss_mode not in ("pred", "reg", "all"):
        raise ValueError(f"loss_mode: expected 'pred', 'reg' or 'all', got {loss_mode!r}")
    # pykan differentiates every parameter, knots included, which the fused kernels
    # treat as constants: the derivative runs on a copy on the pure-torch backend.
    model = model.copy()
    for layer in model.act_fun:
        layer.backend = "torch"
    named = _pykan_parameters(model)
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]
    fixed = {name: p.detach() for name, p in model.named_parameters()}

    def loss_of(p):
        chunks = torch.split(p[0], sizes)
        params = dict(fixed)
        params.update({name: c.reshape(s) for (name, _), c, s in zip(named, chunks, shapes)})
        loss = 0.0
        if loss_mode in ("pred", "all"):
            pred = torch.func.functional_call(model, params, (inputs,))
            loss = torch.mean((pred - labels) ** 2, dim=(0, 1), keepdim=True)
        if loss_mode in ("reg", "all"):
            reg = torch.func.functional_call(
                _Regulariser(model), {f"model.{k}": v for k, v in params.items()},
                (inputs, reg_metric, lamb_l1, lamb_entropy)) * torch.ones(1, 1)
            loss = reg if loss_mode == "reg" else loss + lamb * reg
        return loss

    p = model2param(model).detach()[None, :]
    return batch_hessian(loss_of, p) if derivative == "hessian" else batch_jacobian(loss_of, p)


class _Regulariser(torch.nn.Module):
    """``model.reg`` as a module's forward (what ``torch.func.functional_call`` runs)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, reg_metric, lamb_l1, lamb_entropy):
        return self.model.reg(reg_metric, lamb_l1, lamb_entropy, 0.0, 0.0, x=x)
