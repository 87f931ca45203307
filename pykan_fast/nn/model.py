"""``KAN``: pykan 0.2.8's MultKAN (addition and multiplication nodes) as a stack of
fused ``KANLayer``s.

Same constructor arguments, seeding, parameter names and shapes, node affines and
forward as ``kan.MultKAN``; grid update and grid extension (``refine``) as pykan does
them; one-file ``save``/``load``; ``from_pykan`` conversion. ``width`` is kept in
MultKAN's ``[[n_add, n_mult], ...]`` form. The symbolic branch (``symbolic_fun``,
``fix_symbolic``, ``auto_symbolic``, ``symbolic_formula``) as pykan's, evaluated only
on fixed edges; its tools live in :mod:`pykan_fast.symbolic`.
"""

from __future__ import annotations

import contextlib
import copy
import random

import numpy as np
import torch
from torch import nn

from ..ops.checks import check_like, check_tensor
from . import stack
from .layer import KANLayer
from .nodes import node_step
from .symbolic_layer import SymbolicKANLayer

__all__ = ["KAN"]

_FORMAT = "pykan_fast.KAN"
_FORMAT_VERSION = 2  # 2: the symbolic branch (function names) added


def _normalize_width(width) -> list[list[int]]:
    """MultKAN's width: ints become ``[n, 0]``; a copy (pykan edits the caller's list)."""
    if width is None or len(width) < 2:
        raise ValueError(f"width: expected at least two layer sizes, got {width!r}")
    out = []
    for entry in width:
        if isinstance(entry, (int, np.integer)) and not isinstance(entry, bool):
            entry = [int(entry), 0]
        try:
            n_add, n_mult = (int(v) for v in entry)
        except (TypeError, ValueError):
            raise ValueError(f"width: expected ints or [n_add, n_mult] pairs, got {width!r}") from None
        if n_add < 0 or n_mult < 0 or n_add + n_mult < 1:
            raise ValueError(f"width: expected positive layer sizes, got {width!r}")
        out.append([n_add, n_mult])
    return out


def _normalize_mult_arity(mult_arity, width: list[list[int]]):
    """MultKAN's ``mult_arity``: one int for every multiplication node, or one list per
    layer (``len(width)`` lists, list l holding the arity of each of layer l's
    ``n_mult`` nodes). Returns the int or a copy of the lists. Arities below 2 are
    refused (pykan's forward fails on them)."""
    if isinstance(mult_arity, (int, np.integer)) and not isinstance(mult_arity, bool):
        mult_arity = int(mult_arity)
        if mult_arity < 2 and any(n_mult for _, n_mult in width):
            raise ValueError(f"mult_arity: expected an int >= 2 for multiplication nodes, "
                             f"got {mult_arity}")
        return mult_arity
    if not isinstance(mult_arity, (list, tuple)) or len(mult_arity) != len(width):
        raise ValueError(f"mult_arity: expected an int or one list per layer ({len(width)}), "
                         f"got {mult_arity!r}")
    out = []
    for l, (arities, (_, n_mult)) in enumerate(zip(mult_arity, width)):
        try:
            arities = [int(a) for a in arities]
        except (TypeError, ValueError):
            raise ValueError(f"mult_arity: layer {l}: expected a list of ints, got {arities!r}") from None
        if len(arities) != n_mult or any(a < 2 for a in arities):
            raise ValueError(f"mult_arity: layer {l} has {n_mult} multiplication nodes; expected "
                             f"as many arities >= 2, got {arities!r}")
        out.append(arities)
    return out


# Constructor arguments and the attribute each is kept in: the one list that config()
# (save/load), refine() and from_pykan() (pykan's MultKAN keeps the same attributes,
# but not the initialisation-only ones, which a conversion overwrites anyway) read.
_CONFIG_ATTRS = {
    "width": "width", "grid": "grid", "k": "k", "mult_arity": "mult_arity",
    "noise_scale": "noise_scale", "scale_base_mu": "scale_base_mu",
    "scale_base_sigma": "scale_base_sigma", "base_fun": "base_fun_name",
    "affine_trainable": "affine_trainable", "grid_eps": "grid_eps", "grid_range": "grid_range",
    "sp_trainable": "sp_trainable", "sb_trainable": "sb_trainable", "seed": "seed",
    "backend": "backend",
}


def _config_from(model) -> dict:
    """Constructor arguments read from ``model`` (a KAN or a pykan MultKAN), grid and k
    per layer as its layers have them; arguments it does not keep are left out."""
    config = {arg: copy.deepcopy(getattr(model, attr)) for arg, attr in _CONFIG_ATTRS.items()
              if hasattr(model, attr)}
    config["width"] = [list(w) if isinstance(w, (list, tuple)) else w for w in model.width]
    config["grid"] = [layer.num for layer in model.act_fun]
    config["k"] = [layer.k for layer in model.act_fun]
    if "grid_range" in config:
        config["grid_range"] = [float(v) for v in config["grid_range"]]
    return config


def _per_layer(value, depth: int, name: str) -> list:
    """pykan accepts ``grid`` and ``k`` as one value or one per layer."""
    if isinstance(value, (list, tuple)):
        if len(value) != depth:
            raise ValueError(f"{name}: expected one value per layer ({depth}), got {value!r}")
        return [int(v) for v in value]
    return [value] * depth


@contextlib.contextmanager
def _default_dtype(dtype):
    """Build under ``dtype`` as pykan would under ``torch.set_default_dtype(dtype)``."""
    if dtype is None:
        yield
        return
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


@contextlib.contextmanager
def _rng_preserved():
    """Leave the global torch/numpy/random generators as they were."""
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


class KAN(nn.Module):
    """A Kolmogorov-Arnold network: pykan's ``MultKAN`` on fused ``KANLayer``s.

    ``width``: layer sizes, ints or MultKAN's ``[n_add, n_mult]`` pairs (addition and
    multiplication nodes); ``mult_arity``: how many subnodes each multiplication node
    multiplies, one int or one list per layer with one arity per node (e.g.
    ``[[], [2, 3], []]`` for ``width=[2, [0, 2], 1]``). ``grid`` (intervals G) and
    ``k`` (spline order): one value or one per layer. ``seed`` reseeds torch, numpy and
    random as MultKAN does, so ``KAN(width, grid, k, seed)`` starts from the same
    parameters as ``kan.MultKAN(width, grid, k, seed=seed)`` built under the same default
    dtype.
    ``dtype`` builds as pykan would under ``torch.set_default_dtype(dtype)``;
    ``backend`` goes to every layer (None: by device).

    Parameters (MultKAN's names): ``act_fun`` (ModuleList of KANLayer), ``node_scale``,
    ``node_bias`` `[width_in[l+1]]`, ``subnode_scale``, ``subnode_bias``
    `[width_out[l+1]]` (ParameterLists, trained only if ``affine_trainable``).
    Layer l computes the subnodes ``s = subnode_scale * act_fun[l](x) + subnode_bias``
    `[B, width_out[l+1]]`, keeps the first ``n_add`` of them and replaces each following
    group of ``arity`` subnodes by their product (multiplication nodes), then applies
    ``node_scale * . + node_bias`` `[B, width_in[l+1]]`.

    Symbolic branch (pykan's): ``symbolic_fun`` (ModuleList of
    :class:`~pykan_fast.nn.symbolic_layer.SymbolicKANLayer`, masks `[out, in]` and affines
    `[out, in, 4]`); ``act_fun[l](x)`` gains ``symbolic_fun[l](x)``, evaluated on the fixed
    edges only, before the subnode affine. ``symbolic_enabled=False`` ignores it.
    """

    def __init__(self, width, grid=3, k=3, mult_arity=2, noise_scale: float = 0.3,
                 scale_base_mu: float = 0.0, scale_base_sigma: float = 1.0, base_fun="silu",
                 symbolic_enabled: bool = True,
                 affine_trainable: bool = False, grid_eps: float = 0.02, grid_range=(-1.0, 1.0),
                 sp_trainable: bool = True, sb_trainable: bool = True, seed: int = 1,
                 device=None, dtype: torch.dtype | None = None, backend: str | None = None):
        super().__init__()
        width = _normalize_width(width)
        self.width = width
        self.mult_arity = _normalize_mult_arity(mult_arity, width)
        self.depth = len(width) - 1
        grids = _per_layer(grid, self.depth, "grid")
        ks = _per_layer(k, self.depth, "k")
        self.grid, self.k = grid, k
        self.base_fun_name = base_fun
        self.noise_scale = noise_scale
        self.scale_base_mu, self.scale_base_sigma = scale_base_mu, scale_base_sigma
        self.affine_trainable = affine_trainable
        self.grid_eps = grid_eps
        self.grid_range = (float(grid_range[0]), float(grid_range[1]))
        self.sp_trainable, self.sb_trainable = sp_trainable, sb_trainable
        self.seed = seed
        self.backend = backend
        self.input_id = None  # pykan's input selection (after prune_input); None: all
        self.cache_data = None  # last input seen: refine() fits on it, as pykan
        self.acts = None  # node values of the last forward: [x, x_1, ..., x_L] (detached)
        # attribution scores, set by attribute() (pykan's names; see pykan_fast.tools.prune)
        self.node_scores = self.edge_scores = self.subnode_scores = None

        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        width_in, width_out = self.width_in, self.width_out
        with _default_dtype(dtype):
            self.act_fun = nn.ModuleList(
                KANLayer(width_in[l], width_out[l + 1], grid=grids[l], k=ks[l],
                         grid_range=self.grid_range, noise_scale=noise_scale,
                         scale_base_mu=scale_base_mu, scale_base_sigma=scale_base_sigma,
                         scale_sp=1.0, base_fun=base_fun, grid_eps=grid_eps,
                         sp_trainable=sp_trainable, sb_trainable=sb_trainable, backend=backend)
                for l in range(self.depth))

            def affine(size, fill):
                return nn.Parameter(torch.full((size,), fill)).requires_grad_(affine_trainable)

            self.node_bias = nn.ParameterList(affine(width_in[l + 1], 0.0) for l in range(self.depth))
            self.node_scale = nn.ParameterList(affine(width_in[l + 1], 1.0) for l in range(self.depth))
            self.subnode_bias = nn.ParameterList(affine(width_out[l + 1], 0.0) for l in range(self.depth))
            self.subnode_scale = nn.ParameterList(affine(width_out[l + 1], 1.0) for l in range(self.depth))
            # pykan's symbolic front: one SymbolicKANLayer per layer, no edge fixed.
            self.symbolic_fun = nn.ModuleList(
                SymbolicKANLayer(width_in[l], width_out[l + 1]) for l in range(self.depth))
        self.symbolic_enabled = bool(symbolic_enabled)  # pykan's: False ignores symbolic edges
        if device is not None:
            self.to(device)

    # ---- sizes (MultKAN's properties) --------------------------------------------------

    @property
    def width_in(self) -> list[int]:
        """Input nodes of each layer: ``n_add + n_mult``."""
        return [a + m for a, m in self.width]

    @property
    def width_out(self) -> list[int]:
        """Output subnodes of each layer: ``n_add + mult_arity * n_mult`` (or ``n_add`` +
        the sum of the layer's arities when ``mult_arity`` is per node)."""
        if self.mult_homo:
            return [a + self.mult_arity * m for a, m in self.width]
        return [a + sum(arities) for (a, _), arities in zip(self.width, self.mult_arity)]

    @property
    def mult_homo(self) -> bool:
        """pykan's flag: one arity for every multiplication node."""
        return isinstance(self.mult_arity, int)

    def _layer_arity(self, l: int):
        """The arity (int) or arities (list) of layer ``l``'s multiplication nodes."""
        return self.mult_arity if self.mult_homo else self.mult_arity[l]

    def extra_repr(self) -> str:
        return f"width={self.width}, grid={self.grid}, k={self.k}, backend={self.backend!r}"

    # ---- forward ----------------------------------------------------------------------

    def forward(self, x: torch.Tensor, singularity_avoiding: bool = False,
                y_th: float = 10.0) -> torch.Tensor:
        """x: `[B, n_0]` -> `[B, n_L]` (MultKAN's forward). ``singularity_avoiding``:
        symbolic edges use their functions' finite forms (threshold ``y_th``), as pykan."""
        return self._forward(x, keep_inputs=False, singularity_avoiding=singularity_avoiding,
                             y_th=y_th)[0]

    def _forward(self, x: torch.Tensor, keep_inputs: bool, singularity_avoiding: bool = False,
                 y_th: float = 10.0):
        """The output and, when ``keep_inputs``, each layer's input with its graph (what
        the regulariser needs). Records ``cache_data`` and ``acts`` as pykan does."""
        check_tensor("x", x)
        if x.dim() != 2:
            raise ValueError(f"x: expected a 2-D tensor [batch, inputs], got shape {list(x.shape)}")
        check_like("x", x, self.act_fun[0].coef, owner="model")
        if self.input_id is not None:
            x = x[:, self.input_id]
        if x.shape[1] != self.width_in[0]:
            raise ValueError(f"x: expected {self.width_in[0]} input columns, got {x.shape[1]}")
        self.cache_data = x.detach()
        acts = [x.detach()]
        if not keep_inputs and stack.supported(self, x):
            x = stack.stack_forward(self, x, acts)
            self.acts = acts
            return x, None
        inputs = [x] if keep_inputs else None
        x = self._layers_forward(x, acts, inputs, singularity_avoiding, y_th)
        self.acts = acts
        return x, inputs

    def _layers_forward(self, x: torch.Tensor, acts: list | None = None, inputs: list | None = None,
                        singularity_avoiding: bool = False, y_th: float = 10.0) -> torch.Tensor:
        """The per-layer path: each layer's edges (:meth:`_layer_out`), then its node step.
        Appends each layer's output (detached) to ``acts`` and, but for the last, with
        its graph to ``inputs``, when given. The fused stack's recompute calls it too."""
        for l in range(self.depth):
            y = self._layer_out(l, x, singularity_avoiding, y_th)
            _, x = node_step(y, self.subnode_scale[l], self.subnode_bias[l], self.node_scale[l],
                             self.node_bias[l], self.width[l + 1][0], self._layer_arity(l + 1))
            if acts is not None:
                acts.append(x.detach())
            if inputs is not None and l < self.depth - 1:
                inputs.append(x)
        return x

    def _layer_out(self, l: int, x: torch.Tensor, singularity_avoiding: bool, y_th: float):
        """Layer l's subnodes before their affine: the spline branch (fused kernel) plus,
        when some edge is fixed, the symbolic branch on those edges only."""
        y = self.act_fun[l](x)
        sym = self.symbolic_fun[l]
        if self.symbolic_enabled and sym.n_active:
            y = y + sym(x, singularity_avoiding=singularity_avoiding, y_th=y_th)
        elif torch.is_grad_enabled() and sym.affine.requires_grad:
            # pykan evaluates every symbolic edge (times mask 0), so affine always gets a
            # (zero) gradient; keep it in the graph so DistributedDataParallel sees it used.
            y = y + sym.affine[:0].sum()
        return y

    def _layer_fuses_in_stack(self, l: int) -> bool:
        """Whether layer ``l`` is one the fused stack (:mod:`pykan_fast.nn.stack`) computes:
        its kernels fuse the spline and SiLU branches of addition nodes. Excluded, as the
        per-layer path above handles them: multiplication nodes, active symbolic edges,
        and whatever the layer itself excludes (:meth:`KANLayer._fuses_in_stack`)."""
        if self.width[l + 1][1]:
            return False
        if self.symbolic_enabled and self.symbolic_fun[l].n_active:
            return False
        return self.act_fun[l]._fuses_in_stack()

    # ---- grids ------------------------------------------------------------------------

    @torch.no_grad()
    def update_grid_from_samples(self, x: torch.Tensor) -> None:
        """Adaptive grids from samples, layer by layer on each layer's input (pykan):
        layer l is updated on the activations the already-updated layers give."""
        for l in range(self.depth):
            self._forward(x, keep_inputs=False)
            self.act_fun[l].update_grid_from_samples(self.acts[l])

    def update_grid(self, x: torch.Tensor) -> None:
        """Alias of :meth:`update_grid_from_samples` (pykan keeps both)."""
        self.update_grid_from_samples(x)

    @torch.no_grad()
    def refine(self, new_grid: int) -> "KAN":
        """Grid extension: a new KAN with ``new_grid`` intervals in every layer, computing
        the same function, fitted on ``cache_data`` (the last input this model saw).

        As pykan's ``MultKAN.refine`` builds the new model with its default seed, this
        reseeds torch/numpy/random with 1 (so a later ``fit`` draws the same batches).
        """
        if self.cache_data is None:
            raise ValueError("refine: the model has seen no data; run it on inputs (or fit) first")
        acts = self.get_act()  # cache_data already holds the input_id columns
        coef = self.act_fun[0].coef
        new = KAN(**{**_config_from(self), "grid": new_grid, "k": self.k, "seed": 1},
                  dtype=coef.dtype)
        new.to(coef.device)
        for l in range(self.depth):
            new.act_fun[l] = self.act_fun[l].refine(new_grid, x=acts[l])
        new._copy_affines_from(self)
        # pykan hands the same Symbolic_KANLayer objects to the refined model; copies
        # keep the two models independent.
        new.symbolic_fun = copy.deepcopy(self.symbolic_fun)
        new.symbolic_enabled = self.symbolic_enabled
        new.input_id = self.input_id
        new.cache_data = self.cache_data
        return new

    def _copy_affines_from(self, other) -> None:
        with torch.no_grad():
            for name in ("node_bias", "node_scale", "subnode_bias", "subnode_scale"):
                for mine, theirs in zip(getattr(self, name), getattr(other, name)):
                    mine.data = theirs.data.detach().clone().to(mine.device)
                    mine.requires_grad_(theirs.requires_grad)

    # ---- attribution, pruning, plotting (pykan_fast.tools.prune, pykan_fast.tools.plot) -----------

    def get_act(self, x=None) -> list[torch.Tensor]:
        """Run on ``x`` (default: ``cache_data``; a dataset dict: its ``train_input``, as
        pykan) and return ``acts``; see :func:`pykan_fast.tools.prune.get_act`."""
        from ..tools.prune import get_act

        if isinstance(x, dict):
            x = x["train_input"]
        return get_act(self, x)

    def attribute(self, l: int | None = None, i: int | None = None, out_score=None,
                  plot: bool = False):
        """pykan's attribution scores (``node_scores``, ``edge_scores``,
        ``subnode_scores``) at ``cache_data``; see :func:`pykan_fast.tools.prune.attribute`.
        ``plot`` (with ``l`` and ``i``): node (l, i)'s input scores as a pyplot bar chart."""
        from ..tools.prune import attribute

        scores = attribute(self, l, i, out_score)
        if plot and l is not None and i is not None:
            self._plot_input_scores(scores)
        return scores

    @property
    def feature_score(self) -> torch.Tensor:
        """pykan's input attribution scores `[width_in[0]]` (runs :meth:`attribute`)."""
        self.attribute()
        return self.node_scores[0]

    def prune_node(self, threshold: float = 1e-2, mode: str = "auto",
                   active_neurons_id=None) -> "KAN":
        """A new KAN without the hidden nodes scoring at most ``threshold``; see
        :func:`pykan_fast.tools.prune.prune_node`."""
        from ..tools.prune import prune_node

        return prune_node(self, threshold, mode, active_neurons_id)

    def prune_edge(self, threshold: float = 3e-2) -> None:
        """In place: mask out the edges scoring at most ``threshold``; see
        :func:`pykan_fast.tools.prune.prune_edge`."""
        from ..tools.prune import prune_edge

        prune_edge(self, threshold)

    def prune(self, node_th: float = 1e-2, edge_th: float = 3e-2) -> "KAN":
        """pykan's ``prune``: :meth:`prune_node` then :meth:`prune_edge` on the new model,
        which is returned; see :func:`pykan_fast.tools.prune.prune`."""
        from ..tools.prune import prune

        return prune(self, node_th, edge_th)

    def prune_input(self, threshold: float = 1e-2, active_inputs=None) -> "KAN":
        """A new KAN reading only the inputs scoring above ``threshold`` (or
        ``active_inputs``); see :func:`pykan_fast.tools.prune.prune_input`."""
        from ..tools.prune import prune_input

        return prune_input(self, threshold, active_inputs)

    def plot(self, folder=None, beta: float = 3, metric: str = "backward", **kwargs):
        """pykan's network diagram as a matplotlib Figure, saved as PNG to ``path=`` or
        ``folder``; see :func:`pykan_fast.tools.plot.plot` for the other arguments."""
        from ..tools.plot import plot  # matplotlib stays out of the model's imports

        return plot(self, folder=folder, beta=beta, metric=metric, **kwargs)

    # ---- training (the loop lives in pykan_fast.train.fit) ---------------------------------

    def fit(self, dataset, **kwargs) -> dict:
        """Train: on pykan's dataset dict as ``MultKAN.fit``, or on a DataLoader (any
        iterable of ``(input, label)`` batches) for ``epochs`` with any optimizer,
        evaluation, early stopping and checkpoints; see :func:`pykan_fast.train.fit.fit`."""
        from ..train.fit import fit  # the training tools sit above the model

        return fit(self, dataset, **kwargs)

    def reg(self, reg_metric: str = "edge_forward_spline_n", lamb_l1: float = 1.0,
            lamb_entropy: float = 2.0, lamb_coef: float = 0.0, lamb_coefdiff: float = 0.0,
            x: torch.Tensor | None = None) -> torch.Tensor:
        """pykan's regulariser at inputs ``x`` (default: ``cache_data``); differentiable."""
        from ..train.fit import regularization

        if x is None:
            x = self.cache_data
        if x is None:
            raise ValueError("x: reg needs inputs; pass x or run the model on data first")
        _, inputs = self._forward(x, keep_inputs=True)
        return regularization(self, inputs, reg_metric, lamb_l1, lamb_entropy, lamb_coef,
                              lamb_coefdiff)

    # ---- symbolic (pykan_fast.tools.symbolic.edges, pykan_fast.tools.symbolic.formula) -------------

    def set_mode(self, l: int, i: int, j: int, mode: str, mask_n: float | None = None) -> None:
        """pykan's ``set_mode``: edge (l, i, j) spline-only ('n'), symbolic-only ('s'),
        both ('sn'/'ns', spline weight ``mask_n``) or off (anything else)."""
        from ..tools.symbolic.edges import set_mode

        set_mode(self, l, i, j, mode, mask_n)

    def fix_symbolic(self, l: int, i: int, j: int, fun_name, fit_params_bool: bool = True,
                     a_range=(-10, 10), b_range=(-10, 10), verbose: bool = True,
                     random: bool = False, log_history: bool = True):
        """Make edge (l, i, j) ``c * f(a x + b) + d``, f = ``fun_name`` (library name or
        callable), fitted to the edge on the last forward's inputs (``fit_params_bool``;
        returns r2) or set to (1, 0, 1, 0); see :func:`pykan_fast.tools.symbolic.edges.fix_symbolic`.
        ``log_history`` is accepted for pykan's signature (no history is kept)."""
        from ..tools.symbolic.edges import fix_symbolic

        return fix_symbolic(self, l, i, j, fun_name, fit_params_bool, a_range, b_range,
                            verbose, random)

    def unfix_symbolic(self, l: int, i: int, j: int, log_history: bool = True) -> None:
        """Edge (l, i, j) back to its spline (pykan's)."""
        from ..tools.symbolic.edges import unfix_symbolic

        unfix_symbolic(self, l, i, j)

    def unfix_symbolic_all(self, log_history: bool = True) -> None:
        """Every edge back to its spline."""
        for l in range(self.depth):
            for i in range(self.width_in[l]):
                for j in range(self.width_out[l + 1]):
                    self.unfix_symbolic(l, i, j)

    def rank_symbolic(self, l: int, i: int, j: int, a_range=(-10, 10), b_range=(-10, 10),
                      lib=None, weight_simple: float = 0.8, r2_loss_fun=None, c_loss_fun=None):
        """Every function of ``lib`` fitted to edge (l, i, j), best first (a list of
        :class:`pykan_fast.symbolic.Candidate`); the model is left unchanged."""
        from ..tools.symbolic.edges import rank_symbolic

        return rank_symbolic(self, l, i, j, a_range, b_range, lib, weight_simple,
                             r2_loss_fun, c_loss_fun)

    def suggest_symbolic(self, l: int, i: int, j: int, a_range=(-10, 10), b_range=(-10, 10),
                         lib=None, topk: int = 5, verbose: bool = True, r2_loss_fun=None,
                         c_loss_fun=None, weight_simple: float = 0.8):
        """pykan's ``suggest_symbolic``: ``(name, library entry, r2, complexity)`` of the
        best function for edge (l, i, j); see :func:`pykan_fast.tools.symbolic.edges.suggest_symbolic`."""
        from ..tools.symbolic.edges import suggest_symbolic

        return suggest_symbolic(self, l, i, j, a_range, b_range, lib, topk, verbose,
                                r2_loss_fun, c_loss_fun, weight_simple)

    def auto_symbolic(self, a_range=(-10, 10), b_range=(-10, 10), lib=None, verbose: int = 1,
                      weight_simple: float = 0.8, r2_threshold: float = 0.0) -> None:
        """pykan's ``auto_symbolic``: every spline edge gets its best library function
        (if r2 >= ``r2_threshold``); see :func:`pykan_fast.tools.symbolic.edges.auto_symbolic`."""
        from ..tools.symbolic.edges import auto_symbolic

        auto_symbolic(self, a_range, b_range, lib, verbose, weight_simple, r2_threshold)

    def symbolic_formula(self, var=None, normalizer=None, output_normalizer=None,
                         simplify: bool = False, n_digit: int | None = None):
        """``(formulas, variables)``: a sympy expression per output and the input
        symbols (pykan's ``symbolic_formula``); every edge must be symbolic or off;
        ``n_digit`` rounds the constants. See :func:`pykan_fast.symbolic.symbolic_formula`."""
        from ..tools.symbolic.formula import symbolic_formula

        return symbolic_formula(self, var=var, normalizer=normalizer,
                                output_normalizer=output_normalizer, simplify=simplify,
                                n_digit=n_digit)

    # ---- model surgery and bookkeeping (pykan names) ----------------------------------

    def copy(self) -> "KAN":
        """An independent deep copy (pykan's ``copy``, which round-trips through checkpoint
        files in the working directory; none are written here)."""
        return copy.deepcopy(self)

    @property
    def n_edge(self) -> int:
        """Number of active spline edges (mask > 0), pykan's ``n_edge``."""
        return int(sum(int((layer.mask > 0).sum()) for layer in self.act_fun))

    def get_params(self):
        """``self.parameters()`` (pykan's name)."""
        return self.parameters()

    @torch.no_grad()
    def evaluate(self, dataset: dict) -> dict:
        """pykan's ``evaluate``: test RMSE, ``n_edge`` and ``n_grid`` (``self.grid``)."""
        for key in ("test_input", "test_label"):
            if key not in dataset:
                raise ValueError(f"dataset: missing key {key!r}")
        pred = self(dataset["test_input"])
        rmse = torch.sqrt(torch.mean((pred - dataset["test_label"]) ** 2))
        return {"test_loss": float(rmse), "n_edge": self.n_edge, "n_grid": self.grid}

    def _check_node(self, l: int, i: int) -> None:
        if isinstance(l, bool) or not isinstance(l, (int, np.integer)) or not 0 <= l <= self.depth:
            raise ValueError(f"l: expected a node layer index in [0, {self.depth}], got {l!r}")
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < self.width_in[l]:
            raise ValueError(f"i: expected a node index in [0, {self.width_in[l]}), got {i!r}")

    @torch.no_grad()
    def remove_edge(self, l: int, i: int, j: int) -> None:
        """Switch edge (l, i, j) off: its spline mask and its symbolic mask to 0 (pykan
        zeroes the spline mask only, so a symbolic edge stayed on)."""
        from ..tools.symbolic.edges import check_edge

        check_edge(self, l, i, j)
        self.act_fun[l].mask[i, j] = 0.0
        self.symbolic_fun[l].set_mask(i, j, 0.0)

    @torch.no_grad()
    def remove_node(self, l: int, i: int, mode: str = "all") -> None:
        """pykan's ``remove_node``: zero the masks (spline and symbolic) of node (l, i)'s
        incoming edges (``mode='down'``), outgoing edges (``'up'``) or both (``'all'``).
        ``i`` indexes layer l's nodes and, on the incoming side, the subnodes of layer
        l-1's outputs, as pykan. An input node has no incoming edges and an output node
        no outgoing ones: those sides are skipped ('all') or refused (pykan indexes
        layer -1 there)."""
        if mode not in ("all", "up", "down"):
            raise ValueError(f"mode: expected 'all', 'up' or 'down', got {mode!r}")
        self._check_node(l, i)
        down = mode in ("all", "down") and l > 0
        up = mode in ("all", "up") and l < self.depth
        if mode == "down" and not down or mode == "up" and not up:
            raise ValueError(f"l: node layer {l} has no {'incoming' if mode == 'down' else 'outgoing'} edges")
        if down:
            self.act_fun[l - 1].mask[:, i] = 0.0
            self.symbolic_fun[l - 1].mask[i, :] = 0.0
        if up:
            self.act_fun[l].mask[i, :] = 0.0
            self.symbolic_fun[l].mask[:, i] = 0.0

    def _plot_input_scores(self, scores: torch.Tensor) -> None:
        """pykan's attribution bar chart of one node's input scores, on pyplot."""
        import matplotlib.pyplot as plt

        n = self.width_in[0]
        plt.figure(figsize=(1 * n, 3))
        plt.bar(range(n), scores.detach().cpu().numpy())
        plt.xticks(range(n))

    def speed(self, compile: bool = False):
        """pykan's speed mode: symbolic branch, activation recording and checkpoints off;
        ``compile=True`` returns ``torch.compile(self)``."""
        self.symbolic_enabled = False
        self.save_act = False
        self.auto_save = False
        return torch.compile(self) if compile else self

    @torch.no_grad()
    def initialize_from_another_model(self, another_model, x: torch.Tensor) -> "KAN":
        """pykan's ``initialize_from_another_model``: this model (same width and k, any
        grid) takes ``another_model``'s function: grids interpolated from its knots, coef
        fitted to its splines on its activations at ``x``, scales, masks, affines and
        (copies of) its symbolic branch."""
        if [list(w) for w in another_model.width] != [list(w) for w in self.width]:
            raise ValueError(f"another_model: expected width {self.width}, got {another_model.width}")
        if [layer.k for layer in another_model.act_fun] != [layer.k for layer in self.act_fun]:
            raise ValueError("another_model: expected the same spline order k in every layer")
        acts = another_model.get_act(x)
        for l, layer in enumerate(self.act_fun):
            child = another_model.act_fun[l].refine(layer.num, x=acts[l])
            for name in ("grid", "coef", "scale_base", "scale_sp", "mask"):
                getattr(layer, name).data = getattr(child, name).data.to(getattr(layer, name).device)
        self._copy_affines_from(another_model)
        self.symbolic_fun = copy.deepcopy(another_model.symbolic_fun)
        self.symbolic_enabled = getattr(another_model, "symbolic_enabled", True)
        return self

    # ---- save / load ------------------------------------------------------------------

    def config(self) -> dict:
        """Constructor arguments that rebuild this model's shapes (per-layer grid and k)."""
        if not isinstance(self.base_fun_name, str):
            raise ValueError("base_fun: only a named base function ('silu', 'identity', "
                             "'zero') can be saved")
        return _config_from(self)

    def _symbolic_state(self) -> dict:
        """The symbolic branch's function names per layer (out x in lists) and switch;
        its masks and affines are in the state_dict."""
        for l, sym in enumerate(self.symbolic_fun):
            for j, row in enumerate(sym.funs_name):
                for i, name in enumerate(row):
                    if name == "anonymous":
                        raise ValueError(
                            f"symbolic_fun: edge ({l},{i},{j}) holds an anonymous function, which "
                            "cannot be saved by name; register it with "
                            "pykan_fast.symbolic.add_symbolic(name, fun) and fix the edge by name")
        return {"enabled": self.symbolic_enabled,
                "funs_name": [[list(row) for row in sym.funs_name] for sym in self.symbolic_fun]}

    def _set_symbolic_state(self, state: dict) -> None:
        from ..tools.symbolic.library import SYMBOLIC_LIB

        self.symbolic_enabled = bool(state["enabled"])
        for l, (sym, names) in enumerate(zip(self.symbolic_fun, state["funs_name"])):
            for j, row in enumerate(names):
                for i, name in enumerate(row):
                    if name not in SYMBOLIC_LIB:
                        raise ValueError(
                            f"symbolic_fun: edge ({l},{i},{j}) uses the function {name!r}, which "
                            "is not in the symbolic library; register it with "
                            f"pykan_fast.symbolic.add_symbolic({name!r}, fun) before loading")
                    sym.set_function(i, j, name, SYMBOLIC_LIB[name])

    def save(self, path) -> None:
        """Weights, config, ``cache_data`` and the symbolic edges' function names (by
        name: user functions must be registered again before :meth:`load`) in one file
        (``torch.save`` of a dict)."""
        torch.save({
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "config": self.config(),
            "grid": self.grid,
            "input_id": None if self.input_id is None else self.input_id.tolist(),
            "state_dict": self.state_dict(),
            "cache_data": self.cache_data,
            "symbolic": self._symbolic_state(),
        }, path)

    @classmethod
    def load(cls, path, map_location=None) -> "KAN":
        """The model written by :meth:`save`; leaves the global random generators alone."""
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
        if not isinstance(ckpt, dict) or ckpt.get("format") != _FORMAT:
            raise ValueError(f"path: {path!r} is not a file written by KAN.save")
        state = ckpt["state_dict"]
        coef = state["act_fun.0.coef"]
        with _rng_preserved():
            model = cls(**ckpt["config"], dtype=coef.dtype)
        model.to(coef.device)
        if "symbolic" in ckpt:
            model._set_symbolic_state(ckpt["symbolic"])
        else:  # version 1: written before the symbolic branch existed
            state = {**model.state_dict(), **state}
        model.load_state_dict(state)
        model.grid = ckpt["grid"]
        if ckpt["input_id"] is not None:
            model.input_id = torch.tensor(ckpt["input_id"], dtype=torch.long)
        model.cache_data = ckpt["cache_data"]
        return model

    # ---- pykan interop ----------------------------------------------------------------

    def _copy_symbolic_from_pykan(self, l: int, sym) -> None:
        """Layer l's symbolic branch from a pykan ``Symbolic_KANLayer``."""
        from ..tools.symbolic.library import SYMBOLIC_LIB, SymbolicFunction

        mine = self.symbolic_fun[l]
        with torch.no_grad():
            for name in ("mask", "affine"):
                src = getattr(sym, name)
                getattr(mine, name).data = src.data.detach().clone().to(mine.affine.device)
                getattr(mine, name).requires_grad_(src.requires_grad)
        for j, row in enumerate(sym.funs_name):
            for i, name in enumerate(row):
                entry = SYMBOLIC_LIB.get(name) if name != "anonymous" else None
                if entry is None:
                    try:
                        from kan.utils import SYMBOLIC_LIB as PYKAN_LIB
                        c = PYKAN_LIB[name][2]
                    except (ImportError, KeyError):
                        c = 1
                    entry = SymbolicFunction(sym.funs[j][i], sym.funs_sympy[j][i], c,
                                             sym.funs_avoid_singularity[j][i])
                mine.set_function(i, j, name, entry)

    @classmethod
    def from_pykan(cls, model, backend: str | None = None) -> "KAN":
        """The same network as a pykan 0.2.8 ``MultKAN`` (addition and multiplication
        nodes, symbolic edges: masks, affines, function names, ``symbolic_enabled``);
        leaves the global random generators alone. A function name pykan_fast's library
        lacks (pykan's ``add_symbolic``, 'anonymous') keeps pykan's callables."""
        layers = list(model.act_fun)
        coef = layers[0].coef
        config = {**_config_from(model), "width": _normalize_width(model.width), "backend": backend}
        config.pop("seed", None)  # pykan's seed attribute, where present, is not MultKAN's
        with _rng_preserved():
            out = cls(**config, dtype=coef.dtype)
        out.to(coef.device)
        out.grid, out.k = model.grid, model.k
        for l, layer in enumerate(layers):
            out.act_fun[l] = KANLayer.from_pykan(layer, backend=backend)
        out._copy_affines_from(model)
        for l, sym in enumerate(getattr(model, "symbolic_fun", [])):
            out._copy_symbolic_from_pykan(l, sym)
        out.symbolic_enabled = bool(getattr(model, "symbolic_enabled", True))
        input_id = getattr(model, "input_id", None)
        if input_id is not None and not torch.equal(
                input_id.long().cpu(), torch.arange(out.width_in[0])):
            out.input_id = input_id.long().clone()
        if model.cache_data is not None:
            out.cache_data = model.cache_data.detach().clone()
        return out

    # ---- discovery tools (pykan_fast.tools.hypothesis, .growth, .swap, .interaction) ----

    def tree(self, x: torch.Tensor | None = None, in_var=None, style: str = "tree",
             sym_th: float = 1e-3, sep_th: float = 1e-1, skip_sep_test: bool = False,
             verbose: bool = False):
        """pykan's ``tree``: the module tree of the learned function at ``x`` (default:
        ``cache_data``); see :func:`pykan_fast.tools.hypothesis.plot_tree`. Returns the Figure."""
        from ..tools.hypothesis import plot_tree

        if x is None:
            if self.cache_data is None:
                raise ValueError("x: the model has seen no data; pass x")
            x = self.cache_data
        return plot_tree(self, x, in_var=in_var, style=style, sym_th=sym_th, sep_th=sep_th,
                         skip_sep_test=skip_sep_test, verbose=verbose)

    def perturb(self, mag: float = 1.0, mode: str = "non-intrusive") -> None:
        """Switch splines on by edge class (pykan's); see :func:`pykan_fast.tools.growth.perturb`."""
        from ..tools.growth import perturb

        perturb(self, mag, mode)

    def expand_depth(self) -> None:
        """Append an identity layer (pykan's); see :func:`pykan_fast.tools.growth.expand_depth`."""
        from ..tools.growth import expand_depth

        expand_depth(self)

    def expand_width(self, layer_id: int, n_added_nodes: int, sum_bool: bool = True,
                     mult_arity=2) -> None:
        """Add zero nodes to a hidden layer (pykan's); see
        :func:`pykan_fast.tools.growth.expand_width`."""
        from ..tools.growth import expand_width

        expand_width(self, layer_id, n_added_nodes, sum_bool, mult_arity)

    def swap(self, l: int, i1: int, i2: int, log_history: bool = True) -> None:
        """Exchange two addition nodes of hidden layer ``l``; see
        :func:`pykan_fast.tools.swap.swap`. ``log_history``: pykan's signature (no history)."""
        from ..tools.swap import swap

        swap(self, l, i1, i2)

    @property
    def connection_cost(self) -> torch.Tensor:
        """Attribution-weighted wiring length; see :func:`pykan_fast.tools.swap.connection_cost`."""
        from ..tools.swap import connection_cost

        return connection_cost(self)

    def auto_swap_l(self, l: int) -> None:
        """Greedy reordering of layer ``l``; see :func:`pykan_fast.tools.swap.auto_swap_l`."""
        from ..tools.swap import auto_swap_l

        auto_swap_l(self, l)

    def auto_swap(self) -> None:
        """Reorder every hidden layer to lower :attr:`connection_cost` (pykan's)."""
        from ..tools.swap import auto_swap

        auto_swap(self)

    def feature_interaction(self, l: int, neuron_th: float = 1e-2, feature_th: float = 1e-2) -> dict:
        """Which inputs each node of layer ``l`` combines; see
        :func:`pykan_fast.tools.interaction.feature_interaction`."""
        from ..tools.interaction import feature_interaction

        return feature_interaction(self, l, neuron_th, feature_th)

    def node_attribute(self) -> list:
        """Every node's attribution to the inputs; see
        :func:`pykan_fast.tools.interaction.node_attribute`."""
        from ..tools.interaction import node_attribute

        return node_attribute(self)

    def get_range(self, l: int, i: int, j: int, verbose: bool = True):
        """Input and output range of edge (l, i, j) at the last forward (pykan's)."""
        from ..tools.interaction import get_range

        return get_range(self, l, i, j, verbose)

    def get_fun(self, l: int, i: int, j: int, plot: bool = True):
        """Edge (l, i, j)'s sorted samples at the last forward, plotted (pykan's)."""
        from ..tools.interaction import get_fun

        return get_fun(self, l, i, j, plot)
