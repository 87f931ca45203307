"""Attribution scores and pruning: pykan 0.2.8's ``MultKAN.attribute``, ``prune_node``,
``prune_edge``, ``prune`` and ``prune_input``, as functions of a :class:`pykan_fast.KAN`
(the model's methods of the same names delegate here).

pykan's forward records every edge's activation `[B, out, in]` and, from it, the std over
the batch of each edge (``edge_actscale``) and of each subnode (``subnode_actscale``);
``attribute`` propagates scores from the outputs down with them. The fused forward
records none of that: :func:`activation_scales` re-runs the model on ``cache_data`` (the
last input it saw, the one pykan's forward recorded its statistics on) and computes the
per-edge stds chunk by chunk with :func:`pykan_fast.train.edge_std.edge_std`, never holding the whole
`[B, in, out]` tensor. So the scores equal pykan's whenever the parameters have not
changed since the last forward (pykan would use statistics of the older parameters).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..train.edge_std import edge_std
from ..nn.edges import edge_activations as edge_activations_of

__all__ = ["get_act", "edge_activations", "activation_scales", "node_arities",
           "attribution_scores", "attribution_reg_scales", "attribute", "prune_node", "prune_edge", "prune",
           "prune_input"]


# ---- activations ---------------------------------------------------------------------


@torch.no_grad()
def get_act(model, x: torch.Tensor | None = None) -> list[torch.Tensor]:
    """pykan's ``get_act``: run ``model`` on ``x`` `[B, n_inputs]` (default: its
    ``cache_data``) and return the node values it records, ``model.acts``
    (``[x, x_1, ..., x_L]``, `[B, width_in[l]]` each).

    ``cache_data`` holds the columns the first layer saw (after ``input_id``), so it is
    not selected again.
    """
    if x is not None:
        model(x)
        return model.acts
    if model.cache_data is None:
        raise ValueError("x: the model has seen no data; pass x or run it on inputs first")
    input_id = model.input_id
    model.input_id = None
    try:
        model(model.cache_data)
    finally:
        model.input_id = input_id
    return model.acts


def _symbolic_layer(model, l: int):
    """Layer ``l``'s symbolic branch when it has fixed edges and is enabled, else None."""
    symbolic = getattr(model, "symbolic_fun", None)
    if symbolic is None or not getattr(model, "symbolic_enabled", True):
        return None
    sym = symbolic[l]
    return sym if bool((sym.mask != 0).any()) else None


@torch.no_grad()
def edge_activations(model, l: int, i: int, x: torch.Tensor) -> torch.Tensor:
    """Activations of the edges leaving input ``i`` of layer ``l``, evaluated at values
    ``x`` `[n]` of that input: `[n, width_out[l+1]]` (column j: edge i -> j,
    ``mask * (scale_base * b(x) + scale_sp * spline(x))`` plus its symbolic part; pykan's
    ``spline_postacts[l][:, j, i]``)."""
    layer = model.act_fun[l]
    x = x.reshape(-1, 1).to(layer.coef.dtype)
    acts = edge_activations_of(layer, x, slice(i, i + 1))[:, 0, :]
    sym = _symbolic_layer(model, l)
    if sym is not None:
        for j in torch.nonzero(sym.mask[:, i]).flatten().tolist():
            acts[:, j] = acts[:, j] + sym.edge_acts(x[:, 0], i, j)
    return acts


@torch.no_grad()
def activation_scales(model, max_elements: int = 1 << 20) -> dict:
    """What pykan's forward records for ``attribute`` and ``plot``, at ``cache_data``.

    Returns lists over layers: ``edge_actscale`` `[out, in]` (std over the batch of each
    edge's activation, symbolic part included), ``subnode_actscale`` `[out]` (std of each
    subnode before the subnode affine), ``acts_scale`` `[out, in]` (``edge_actscale /
    (std(x_i) + 0.1)``), and ``acts``, the node values (layer inputs) of that run.
    At most about ``max_elements`` edge activations exist at a time.
    """
    acts = get_act(model)
    edge_scale, subnode_scale, acts_scale = [], [], []
    for l, layer in enumerate(model.act_fun):
        x = acts[l]
        std = edge_std(layer, x, max_elements).T.clone()  # [out, in]
        y = model._layer_out(l, x, False, 10.0)  # subnodes before their affine
        sym = _symbolic_layer(model, l)
        if sym is not None:
            # std of (numerical + symbolic) is not the sum of stds: redo the fixed edges,
            # one input (all its edges, [B, out]) at a time.
            for i in torch.nonzero((sym.mask != 0).any(dim=0)).flatten().tolist():
                js = torch.nonzero(sym.mask[:, i]).flatten()
                std[js, i] = torch.std(edge_activations(model, l, i, x[:, i])[:, js], dim=0)
        edge_scale.append(std)
        subnode_scale.append(torch.std(y, dim=0))
        acts_scale.append(std / (torch.std(x, dim=0) + 0.1)[None, :])
    return {"edge_actscale": edge_scale, "subnode_actscale": subnode_scale,
            "acts_scale": acts_scale, "acts": acts}


# ---- attribution -----------------------------------------------------------------------


def node_arities(model, l: int) -> list[int]:
    """The arity of each multiplication node of node layer ``l`` (one int per node)."""
    arity = model._layer_arity(l)
    return [arity] * model.width[l][1] if isinstance(arity, int) else list(arity)


def _node_to_subnode(node_score: torch.Tensor, n_add: int, arities: list[int]) -> torch.Tensor:
    """pykan's ``score_node2subnode``: `[K, n_add + n_mult]` -> `[K, n_add + sum(arities)]`,
    each multiplication node's score copied to each of its subnodes."""
    parts = [node_score[:, :n_add]]
    parts += [node_score[:, n_add + m:n_add + m + 1].expand(-1, a) for m, a in enumerate(arities)]
    return torch.cat(parts, dim=1)


def _propagate(model, l_end: int, node_score: torch.Tensor, edge_actscale: list,
               subnode_actscale: list) -> dict:
    """The attribution sweep from node layer ``l_end`` down (see
    :func:`attribution_scores`); differentiable in ``edge_actscale`` and ``node_score``."""
    node_scores, subnode_scores, edge_scores = [node_score], [], []
    for layer in range(l_end, 0, -1):
        subnode_score = _node_to_subnode(node_score, model.width[layer][0], node_arities(model, layer))
        subnode_scores.append(subnode_score)
        edge_score = torch.einsum("ij,ki,i->kij", edge_actscale[layer - 1], subnode_score,
                                  1 / (subnode_actscale[layer - 1] + 1e-4))
        edge_scores.append(edge_score)
        node_score = torch.sum(edge_score, dim=1)
        node_scores.append(node_score)
    out = {"node_scores_all": node_scores[::-1], "edge_scores_all": edge_scores[::-1],
           "subnode_scores_all": subnode_scores[::-1]}
    for name in ("node_scores", "edge_scores", "subnode_scores"):
        out[name] = [torch.mean(s, dim=0) for s in out[name + "_all"]]
    return out


@torch.no_grad()
def attribution_scores(model, l: int | None = None, out_score: torch.Tensor | None = None,
                       scales: dict | None = None, max_elements: int = 1 << 20) -> dict:
    """pykan's attribution, propagated from the nodes of layer ``l`` (default: the
    outputs) down to the inputs.

    The K = ``width_in[l]`` rows start as the identity (or ``diag(out_score)``); per layer
    (from the top): node scores -> subnode scores (a multiplication node's score goes to
    each of its subnodes) -> ``edge_score[k, j, i] = edge_actscale[j, i] *
    subnode_score[k, j] / (subnode_actscale[j] + 1e-4)`` -> node score = sum over j.

    Returns ``node_scores_all`` (`[K, width_in[l']]`), ``edge_scores_all`` (`[K, out,
    in]`), ``subnode_scores_all`` (`[K, width_out[l']]`), lists from the inputs up, and
    ``node_scores``, ``edge_scores`` (`[out, in]`), ``subnode_scores``: their means over K.
    """
    if scales is None:
        scales = activation_scales(model, max_elements)
    l_end = model.depth if l is None else _check_layer_index(model, l)
    ref = scales["edge_actscale"][0]
    out_dim = model.width_in[l_end]
    if out_score is None:
        node_score = torch.eye(out_dim, dtype=ref.dtype, device=ref.device)
    else:
        out_score = torch.as_tensor(out_score, dtype=ref.dtype, device=ref.device)
        if out_score.shape != (out_dim,):
            raise ValueError(f"out_score: expected shape [{out_dim}], got {list(out_score.shape)}")
        node_score = torch.diag(out_score)
    return _propagate(model, l_end, node_score, scales["edge_actscale"], scales["subnode_actscale"])


def attribution_reg_scales(model, inputs: list, reg_metric: str,
                           max_elements: int = 1 << 20) -> list[torch.Tensor]:
    """The matrices pykan's ``reg`` penalises for ``reg_metric`` ``'edge_backward'``
    (``model.edge_scores`` after ``attribute()``: `[out, in]` per layer) or
    ``'node_backward'`` (``model.node_attribute()``'s scores: per node layer l = 1..L, the
    attribution of layer l's nodes to the inputs, `[width_in[l], width_in[0]]`), computed
    at the layer inputs ``inputs`` of the current forward and differentiable in the
    parameters, as pykan's fit uses them.

    As pykan: ``edge_actscale`` (std over the batch of each edge's activation, symbolic
    part included) carries the gradient, ``subnode_actscale`` is detached; the symbolic
    branch is evaluated without singularity avoidance.
    """
    edge_scale, subnode_scale = [], []
    for l, layer in enumerate(model.act_fun):
        x = inputs[l]
        std = edge_std(layer, x, max_elements).T  # [out, in]
        sym = _symbolic_layer(model, l)
        if sym is not None:
            std = std.clone()
            for i in torch.nonzero((sym.mask != 0).any(dim=0)).flatten().tolist():
                js = torch.nonzero(sym.mask[:, i]).flatten()
                acts = edge_activations_of(layer, x[:, i:i + 1], slice(i, i + 1))[:, 0, :]
                acts = acts[:, js] + torch.stack([sym.edge_acts(x[:, i], i, j) for j in js.tolist()], dim=1)
                std[js, i] = torch.std(acts, dim=0)
        edge_scale.append(std)
        with torch.no_grad():
            subnode_scale.append(torch.std(model._layer_out(l, x.detach(), False, 10.0), dim=0))
    ref = edge_scale[0]
    eye = torch.eye(model.width_in[model.depth], dtype=ref.dtype, device=ref.device)
    full = _propagate(model, model.depth, eye, edge_scale, subnode_scale)
    if reg_metric == "edge_backward":
        return full["edge_scores"]
    if reg_metric != "node_backward":
        raise ValueError(f"reg_metric: expected 'edge_backward' or 'node_backward', got {reg_metric!r}")
    return [_propagate(model, l, torch.diag(full["node_scores"][l]), edge_scale,
                       subnode_scale)["node_scores_all"][0]
            for l in range(1, model.depth + 1)]


def attribute(model, l: int | None = None, i: int | None = None,
              out_score: torch.Tensor | None = None, max_elements: int = 1 << 20):
    """pykan's ``MultKAN.attribute`` (without its bar plot): sets ``model.node_scores``
    (`[width_in[l]]` per layer), ``model.edge_scores`` (`[out, in]`),
    ``model.subnode_scores`` and their per-output ``*_all`` forms.

    ``l`` given: the scores of layer ``l``'s nodes (from a full attribution) are
    propagated to the inputs instead of the outputs'; returns ``node_scores_all[0]``
    `[width_in[l], width_in[0]]` (row ``i`` only when ``i`` is given); the model's
    attributes then hold that partial attribution, as in pykan. Returns None otherwise.
    """
    if l is not None:
        _check_layer_index(model, l)
    scales = activation_scales(model, max_elements)
    if l is not None:
        _store(model, attribution_scores(model, scales=scales))
        out_score = model.node_scores[l]
    scores = attribution_scores(model, l, out_score, scales=scales)
    _store(model, scores)
    if l is None:
        return None
    first = model.node_scores_all[0]
    return first if i is None else first[i]


def _check_layer_index(model, l) -> int:
    if isinstance(l, bool) or not isinstance(l, int) or not 0 <= l <= model.depth:
        raise ValueError(f"l: expected a node layer index in [0, {model.depth}], got {l!r}")
    return l


def _store(model, scores: dict) -> None:
    for name, value in scores.items():
        setattr(model, name, value)


# ---- pruning ---------------------------------------------------------------------------


def _blank_copy(model):
    """The model pykan's pruning starts from: a new model of the same (unpruned) shape
    built with the default seed 1 (so the global generators advance as in pykan) holding
    copies of this model's layers, affines, settings and input selection; the pruned
    layers are replaced next."""
    coef = model.act_fun[0].coef
    new = type(model)(
        [list(w) for w in model.width], grid=[layer.num for layer in model.act_fun],
        k=[layer.k for layer in model.act_fun], mult_arity=copy.deepcopy(model.mult_arity),
        noise_scale=model.noise_scale, scale_base_mu=model.scale_base_mu,
        scale_base_sigma=model.scale_base_sigma, base_fun=model.base_fun_name,
        affine_trainable=model.affine_trainable, grid_eps=model.grid_eps,
        grid_range=model.grid_range, sp_trainable=model.sp_trainable,
        sb_trainable=model.sb_trainable, seed=1, dtype=coef.dtype, backend=model.backend)
    new.to(coef.device)
    new.grid, new.k = model.grid, model.k
    if hasattr(model, "symbolic_enabled"):
        new.symbolic_enabled = model.symbolic_enabled
    new._copy_affines_from(model)
    for l in range(model.depth):
        new.act_fun[l] = copy.deepcopy(model.act_fun[l])
        if getattr(model, "symbolic_fun", None) is not None:
            new.symbolic_fun[l] = copy.deepcopy(model.symbolic_fun[l])
    new.input_id = None if model.input_id is None else model.input_id.clone()
    new.cache_data = model.cache_data
    new.acts = None
    return new


def _take(plist: nn.ParameterList, l: int, ids: torch.Tensor) -> None:
    old = plist[l]
    plist[l] = nn.Parameter(old.data[ids.to(old.device)].clone(), requires_grad=old.requires_grad)


def _subset_layer(new, model, l: int, in_id: torch.Tensor, out_id: torch.Tensor) -> None:
    new.act_fun[l] = model.act_fun[l].get_subset(in_id, out_id)
    if getattr(model, "symbolic_fun", None) is not None:
        new.symbolic_fun[l] = model.symbolic_fun[l].get_subset(in_id.tolist(), out_id.tolist())


def prune_node(model, threshold: float = 1e-2, mode: str = "auto", active_neurons_id=None,
               max_elements: int = 1 << 20):
    """pykan's ``MultKAN.prune_node``: a new, smaller model without the hidden nodes whose
    attribution score (``node_scores``) is at most ``threshold``.

    ``mode="manual"`` (implied by ``active_neurons_id``, one list of kept node ids per
    hidden layer) keeps the listed nodes instead. A kept multiplication node keeps all its
    subnodes. Layers keep rows/columns of their parameters (``get_subset``), affines their
    entries; inputs and outputs are never pruned. ``model`` itself is left unchanged
    (pykan also zeroes the removed nodes' masks in it).
    """
    if active_neurons_id is not None:
        mode = "manual"
    if mode not in ("auto", "manual"):
        raise ValueError(f"mode: expected 'auto' or 'manual', got {mode!r}")
    n_hidden = model.depth - 1
    if mode == "manual" and (active_neurons_id is None or len(active_neurons_id) != n_hidden):
        raise ValueError(f"active_neurons_id: expected one list of node ids per hidden layer "
                         f"({n_hidden}), got {active_neurons_id!r}")
    if mode == "auto":
        attribute(model, max_elements=max_elements)
    device = model.act_fun[0].grid.device
    up = [torch.arange(model.width_in[0], device=device)]  # kept nodes, per layer
    down = []  # kept subnodes, per layer output
    widths, arities = [list(model.width[0])], [[]]
    for l in range(1, model.depth):
        n_add = model.width[l][0]
        if mode == "auto":
            keep = model.node_scores[l] > threshold
        else:
            keep = torch.zeros(model.width_in[l], dtype=torch.bool, device=device)
            ids = torch.as_tensor(active_neurons_id[l - 1], dtype=torch.long)
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= model.width_in[l]):
                raise ValueError(f"active_neurons_id: layer {l}: ids must be in "
                                 f"[0, {model.width_in[l]}), got {ids.tolist()}")
            keep[ids.to(device)] = True
        if not bool(keep.any()):
            if mode == "manual":
                raise ValueError(f"active_neurons_id: no node of layer {l} is kept")
            raise ValueError(f"threshold: every node of layer {l} would be pruned (scores "
                             f"{model.node_scores[l].tolist()}); lower the threshold")
        per_node = node_arities(model, l)
        keep_sub = torch.cat([keep[:n_add]]
                             + [keep[n_add + m].expand(a) for m, a in enumerate(per_node)])
        up.append(torch.nonzero(keep).flatten())
        down.append(torch.nonzero(keep_sub).flatten())
        widths.append([int(keep[:n_add].sum()), int(keep[n_add:].sum())])
        arities.append([a for m, a in enumerate(per_node) if bool(keep[n_add + m])])
    down.append(torch.arange(model.width_out[-1], device=device))
    widths.append(list(model.width[-1]))
    arities.append(copy.deepcopy(model.mult_arity[-1]) if not model.mult_homo else [])

    new = _blank_copy(model)
    for l in range(model.depth):
        if l < model.depth - 1:
            for name in ("node_bias", "node_scale"):
                _take(getattr(new, name), l, up[l + 1])
            for name in ("subnode_bias", "subnode_scale"):
                _take(getattr(new, name), l, down[l])
        _subset_layer(new, model, l, up[l], down[l])
    new.width = widths
    if not model.mult_homo:
        new.mult_arity = arities
    return new


@torch.no_grad()
def prune_edge(model, threshold: float = 3e-2, max_elements: int = 1 << 20) -> None:
    """pykan's ``MultKAN.prune_edge``, in place: zero the mask of every edge whose score
    (``edge_scores``, from a fresh :func:`attribute`) is at most ``threshold``."""
    attribute(model, max_elements=max_elements)
    for layer, score in zip(model.act_fun, model.edge_scores):
        keep = (score > threshold).T.to(device=layer.mask.device, dtype=layer.mask.dtype)
        layer.mask.data = keep * layer.mask.data


def prune(model, node_th: float = 1e-2, edge_th: float = 3e-2, max_elements: int = 1 << 20):
    """pykan's ``MultKAN.prune``: :func:`prune_node` with ``node_th``, then, on the pruned
    model re-run on ``cache_data``, :func:`prune_edge` with ``edge_th``. Returns the new
    model (``model`` is left unchanged)."""
    new = prune_node(model, node_th, max_elements=max_elements)
    prune_edge(new, edge_th, max_elements=max_elements)
    return new


def prune_input(model, threshold: float = 1e-2, active_inputs=None, max_elements: int = 1 << 20):
    """pykan's ``MultKAN.prune_input``: a new model reading only the inputs whose score
    (``node_scores[0]``) is above ``threshold``, or the listed ``active_inputs``.

    The new model's ``input_id`` maps its inputs to columns of the original data, so it
    is called on the same `[B, n_inputs]` data (pykan sets ``input_id`` relative to the
    current inputs, which is the same unless inputs were pruned before); its
    ``cache_data`` keeps the kept columns.
    """
    device = model.act_fun[0].grid.device
    if active_inputs is None:
        attribute(model, max_elements=max_elements)
        kept = torch.nonzero(model.node_scores[0] > threshold).flatten()
    else:
        kept = torch.as_tensor(active_inputs, dtype=torch.long).reshape(-1).to(device)
        n_in = model.width_in[0]
        if kept.numel() and (int(kept.min()) < 0 or int(kept.max()) >= n_in):
            raise ValueError(f"active_inputs: ids must be in [0, {n_in}), got {kept.tolist()}")
    if kept.numel() == 0:
        raise ValueError("threshold: every input would be pruned")
    new = _blank_copy(model)
    _subset_layer(new, model, 0, kept, torch.arange(model.width_out[1], device=device))
    new.width[0] = [int(kept.numel()), 0]
    if not model.mult_homo:
        new.mult_arity[0] = []
    if model.input_id is None:
        new.input_id = kept.clone()
    else:
        new.input_id = model.input_id[kept.to(model.input_id.device)]
    if model.cache_data is not None:
        new.cache_data = model.cache_data[:, kept.to(model.cache_data.device)]
    return new
