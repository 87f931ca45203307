"""Growing a KAN to train it further: pykan 0.2.8's ``expand_depth``, ``expand_width``
and ``perturb`` as functions of a :class:`pykan_fast.KAN` (in place).

New nodes start as zero: their symbolic edges are on with the function '0', their
splines off, so a compiled (symbolic) model computes the same formula after growing;
``perturb`` then switches splines on (``mask = mag``) on a chosen class of edges so that
training can depart from the formula.

Differences from pykan 0.2.8 (its intent kept): ``expand_width`` keeps the splines of the
edges that existed (pykan replaces both layers by fresh ones with every spline off, so a
trained spline is lost); a per-layer ``mult_arity`` is used from the first expansion on
(pykan assumes it already is one).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..nn.layer import KANLayer
from ..nn.model import _default_dtype
from ..nn.symbolic_layer import SymbolicKANLayer
from .symbolic.library import SYMBOLIC_LIB

__all__ = ["expand_depth", "expand_width", "perturb"]


def _per_layer_arity(model) -> None:
    """``mult_arity`` as one list per layer (the form new layers can be added to)."""
    if isinstance(model.mult_arity, int):
        model.mult_arity = [[model.mult_arity] * n_mult for _, n_mult in model.width]


def _dtype_device(model):
    coef = model.act_fun[0].coef
    return coef.dtype, coef.device


def _new_layer(model, in_dim: int, out_dim: int, like: KANLayer) -> KANLayer:
    """A KANLayer on ``like``'s grid size and order with every spline off."""
    dtype, device = _dtype_device(model)
    with _default_dtype(dtype):
        layer = KANLayer(in_dim, out_dim, grid=like.num, k=like.k, grid_range=like.grid_range,
                         base_fun=like.base_fun, grid_eps=like.grid_eps, backend=like.backend)
    layer.to(device)
    layer.scale_base.requires_grad_(like.scale_base.requires_grad)
    layer.scale_sp.requires_grad_(like.scale_sp.requires_grad)
    with torch.no_grad():
        layer.mask.zero_()
    return layer


def _zero_symbolic(model, in_dim: int, out_dim: int) -> SymbolicKANLayer:
    """Every edge on (mask 1) with the function '0' and affine (1, 0, 1, 0)."""
    dtype, device = _dtype_device(model)
    sym = SymbolicKANLayer(in_dim, out_dim, device=device, dtype=dtype)
    with torch.no_grad():
        sym.mask.fill_(1.0)
        sym.affine[:] = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=dtype)
    sym.refresh()
    return sym


def _copy_edges(new_layer, new_sym, old_layer, old_sym, in_ids, out_ids) -> None:
    """Old edge (i, j) into new slot (in_ids[i], out_ids[j]): spline and symbolic."""
    ins = torch.tensor(in_ids, dtype=torch.long, device=old_layer.coef.device)
    outs = torch.tensor(out_ids, dtype=torch.long, device=old_layer.coef.device)
    with torch.no_grad():
        new_layer.grid[ins] = old_layer.grid
        for name in ("coef", "scale_base", "scale_sp", "mask"):
            getattr(new_layer, name)[ins[:, None], outs[None, :]] = getattr(old_layer, name)
        new_sym.mask[outs[:, None], ins[None, :]] = old_sym.mask
        new_sym.affine[outs[:, None], ins[None, :]] = old_sym.affine
    for j, nj in enumerate(out_ids):
        for i, ni in enumerate(in_ids):
            new_sym.set_function(ni, nj, old_sym.funs_name[j][i], old_sym.entry(i, j))
    new_sym.affine.requires_grad_(old_sym.affine.requires_grad)


def _affine(values: torch.Tensor, like: nn.Parameter) -> nn.Parameter:
    return nn.Parameter(values.to(like.dtype), requires_grad=like.requires_grad)


@torch.no_grad()
def expand_depth(model) -> None:
    """Append an identity layer on top: symbolic 'x' on the diagonal, '0' elsewhere,
    splines off (pykan's ``expand_depth``); the function is unchanged."""
    _per_layer_arity(model)
    n = model.width_in[-1]
    last = model.act_fun[-1]
    model.act_fun.append(_new_layer(model, n, n, last))
    sym = _zero_symbolic(model, n, n)
    for i in range(n):
        sym.set_function(i, i, "x", SYMBOLIC_LIB["x"])
    model.symbolic_fun.append(sym)
    model.width.append([n, 0])
    model.mult_arity.append([])
    model.depth += 1
    for plist, fill in ((model.node_bias, 0.0), (model.node_scale, 1.0),
                        (model.subnode_bias, 0.0), (model.subnode_scale, 1.0)):
        plist.append(_affine(torch.full((n,), fill, device=plist[0].device), plist[0]))


def _check_expand(model, layer_id, n_added_nodes, sum_bool, mult_arity):
    if isinstance(layer_id, bool) or not isinstance(layer_id, (int, np.integer)) or \
            not 1 <= layer_id < model.depth:
        raise ValueError(f"layer_id: expected a hidden node layer in [1, {model.depth - 1}], "
                         f"got {layer_id!r}")
    if isinstance(n_added_nodes, bool) or not isinstance(n_added_nodes, (int, np.integer)) or \
            n_added_nodes < 1:
        raise ValueError(f"n_added_nodes: expected a positive int, got {n_added_nodes!r}")
    if sum_bool:
        return None
    arities = [mult_arity] * n_added_nodes if isinstance(mult_arity, (int, np.integer)) else list(mult_arity)
    if len(arities) != n_added_nodes or any(int(a) < 2 for a in arities):
        raise ValueError(f"mult_arity: expected an int >= 2 or {n_added_nodes} such ints, "
                         f"got {mult_arity!r}")
    return [int(a) for a in arities]


@torch.no_grad()
def expand_width(model, layer_id: int, n_added_nodes: int, sum_bool: bool = True,
                 mult_arity=2) -> None:
    """Add ``n_added_nodes`` nodes to hidden node layer ``layer_id`` (pykan's
    ``expand_width``): addition nodes go first (``sum_bool``), multiplication nodes of
    ``mult_arity`` (one int or one per node) last. Their edges are symbolic '0', so the
    function is unchanged."""
    arities = _check_expand(model, layer_id, n_added_nodes, sum_bool, mult_arity)
    _per_layer_arity(model)
    below, above = layer_id - 1, layer_id
    n_sub_old, n_node_old = model.width_out[layer_id], model.width_in[layer_id]
    if sum_bool:
        n_sub = n_node = n_added_nodes
        sub_ids = list(range(n_sub, n_sub + n_sub_old))       # new nodes first
        node_ids = list(range(n_node, n_node + n_node_old))
    else:
        n_sub, n_node = sum(arities), n_added_nodes
        sub_ids, node_ids = list(range(n_sub_old)), list(range(n_node_old))  # new ones last

    in_dim = model.width_in[below]
    layer = _new_layer(model, in_dim, n_sub_old + n_sub, model.act_fun[below])
    sym = _zero_symbolic(model, in_dim, n_sub_old + n_sub)
    _copy_edges(layer, sym, model.act_fun[below], model.symbolic_fun[below],
                list(range(in_dim)), sub_ids)
    model.act_fun[below], model.symbolic_fun[below] = layer, sym

    out_dim = model.width_out[above + 1]
    layer = _new_layer(model, n_node_old + n_node, out_dim, model.act_fun[above])
    sym = _zero_symbolic(model, n_node_old + n_node, out_dim)
    _copy_edges(layer, sym, model.act_fun[above], model.symbolic_fun[above], node_ids,
                list(range(out_dim)))
    model.act_fun[above], model.symbolic_fun[above] = layer, sym

    for plist, size, fill in ((model.node_scale, n_node, 1.0), (model.node_bias, n_node, 0.0),
                              (model.subnode_scale, n_sub, 1.0), (model.subnode_bias, n_sub, 0.0)):
        old = plist[below]
        added = torch.full((size,), fill, device=old.device, dtype=old.dtype)
        parts = (added, old.data) if sum_bool else (old.data, added)
        plist[below] = _affine(torch.cat(parts), old)
    if sum_bool:
        model.width[layer_id][0] += n_added_nodes
    else:
        model.width[layer_id][1] += n_added_nodes
        model.mult_arity[layer_id] += arities


_PERTURBED = {  # edge class -> perturbed in that mode (pykan's table)
    "all": {"aa_a": True, "aa_i": True, "ai": True, "ia": True, "ii": True},
    "non-intrusive": {"aa_a": False, "aa_i": False, "ai": True, "ia": False, "ii": True},
    "minimal": {"aa_a": True, "aa_i": False, "ai": False, "ia": False, "ii": False},
}


@torch.no_grad()
def perturb(model, mag: float = 1.0, mode: str = "non-intrusive") -> None:
    """Switch splines on (``mask = mag``) by edge class, pykan's ``perturb``.

    An edge's class: whether its input node and its output subnode have any non-'0'
    symbolic edge ('a' active, 'i' inactive), and for 'aa' whether the edge itself is
    symbolic ('aa_a') or '0' ('aa_i'). ``mode``: 'all' perturbs every edge; 'minimal'
    the active symbolic ones; 'non-intrusive' those into inactive subnodes ('ai', 'ii')
    below the last layer, and gives the last layer's edges mask 1 with zero spline and
    base scales, so the function is unchanged but every edge can train.
    """
    if mode not in _PERTURBED:
        raise ValueError(f"mode: expected one of {sorted(_PERTURBED)}, got {mode!r}")
    table = _PERTURBED[mode]
    for l in range(model.depth):
        names = np.array(model.symbolic_fun[l].funs_name)  # [out, in]
        active = names != "0"
        in_active, out_active = active.any(axis=0), active.any(axis=1)
        layer = model.act_fun[l]
        for j in range(model.width_out[l + 1]):
            for i in range(model.width_in[l]):
                if l == model.depth - 1 and mode == "non-intrusive":
                    layer.mask[i, j] = 1.0
                    layer.scale_base[i, j] = 0.0
                    layer.scale_sp[i, j] = 0.0
                    continue
                kind = ("a" if in_active[i] else "i") + ("a" if out_active[j] else "i")
                if kind == "aa":
                    kind += "_a" if active[j, i] else "_i"
                if table[kind]:
                    layer.mask[i, j] = mag
    if model.cache_data is not None:
        from .prune import get_act

        get_act(model)
