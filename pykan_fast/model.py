"""``KAN``: pykan 0.2.8's MultKAN (addition nodes) as a stack of fused ``KANLayer``s.

Same constructor arguments, seeding, parameter names and shapes, node affines and
forward as ``kan.MultKAN``; grid update and grid extension (``refine``) as pykan does
them; one-file ``save``/``load``; ``from_pykan`` conversion. Multiplication nodes and the
symbolic branch are not implemented yet: ``width`` is kept in MultKAN's
``[[n_add, n_mult], ...]`` form so they can be added.
"""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch
from torch import nn

from .layer import KANLayer

__all__ = ["KAN"]

_FORMAT = "pykan_fast.KAN"
_FORMAT_VERSION = 1


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

    ``width``: layer sizes, ints or MultKAN's ``[n_add, n_mult]`` pairs (only
    ``n_mult = 0`` for now). ``grid`` (intervals G) and ``k`` (spline order): one value or
    one per layer. ``seed`` reseeds torch, numpy and random as MultKAN does, so
    ``KAN(width, grid, k, seed)`` starts from the same parameters as
    ``kan.MultKAN(width, grid, k, seed=seed)`` built under the same default dtype.
    ``dtype`` builds as pykan would under ``torch.set_default_dtype(dtype)``;
    ``backend`` goes to every layer (None: by device).

    Parameters (MultKAN's names): ``act_fun`` (ModuleList of KANLayer), ``node_scale``,
    ``node_bias`` `[width_in[l+1]]`, ``subnode_scale``, ``subnode_bias``
    `[width_out[l+1]]` (ParameterLists, trained only if ``affine_trainable``).
    Layer l computes ``x -> node_scale * (subnode_scale * act_fun[l](x) + subnode_bias)
    + node_bias``.
    """

    def __init__(self, width, grid=3, k=3, mult_arity=2, noise_scale: float = 0.3,
                 scale_base_mu: float = 0.0, scale_base_sigma: float = 1.0, base_fun="silu",
                 affine_trainable: bool = False, grid_eps: float = 0.02, grid_range=(-1.0, 1.0),
                 sp_trainable: bool = True, sb_trainable: bool = True, seed: int = 1,
                 device=None, dtype: torch.dtype | None = None, backend: str | None = None):
        super().__init__()
        width = _normalize_width(width)
        if any(n_mult for _, n_mult in width):
            raise NotImplementedError(
                "width: multiplication nodes ([n_add, n_mult] with n_mult > 0) are not "
                "supported yet; use addition nodes only")
        if not isinstance(mult_arity, int):
            raise NotImplementedError("mult_arity: only an int is supported (no multiplication nodes yet)")
        self.width = width
        self.mult_arity = mult_arity
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
        if device is not None:
            self.to(device)

    # ---- sizes (MultKAN's properties) --------------------------------------------------

    @property
    def width_in(self) -> list[int]:
        """Input nodes of each layer: ``n_add + n_mult``."""
        return [a + m for a, m in self.width]

    @property
    def width_out(self) -> list[int]:
        """Output subnodes of each layer: ``n_add + mult_arity * n_mult``."""
        return [a + self.mult_arity * m for a, m in self.width]

    def extra_repr(self) -> str:
        return f"width={self.width}, grid={self.grid}, k={self.k}, backend={self.backend!r}"

    # ---- forward ----------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: `[B, n_0]` -> `[B, n_L]` (MultKAN's forward, addition nodes)."""
        return self._forward(x, keep_inputs=False)[0]

    def _forward(self, x: torch.Tensor, keep_inputs: bool):
        """The output and, when ``keep_inputs``, each layer's input with its graph (what
        the regulariser needs). Records ``cache_data`` and ``acts`` as pykan does."""
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            raise ValueError(f"x: expected a 2-D tensor [batch, inputs], got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        if self.input_id is not None:
            x = x[:, self.input_id]
        if x.shape[1] != self.width_in[0]:
            raise ValueError(f"x: expected {self.width_in[0]} input columns, got {x.shape[1]}")
        self.cache_data = x.detach()
        acts = [x.detach()]
        inputs = [x] if keep_inputs else None
        for l, layer in enumerate(self.act_fun):
            x = layer(x)
            x = self.subnode_scale[l][None, :] * x + self.subnode_bias[l][None, :]
            x = self.node_scale[l][None, :] * x + self.node_bias[l][None, :]
            acts.append(x.detach())
            if keep_inputs and l < self.depth - 1:
                inputs.append(x)
        self.acts = acts
        return x, inputs

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
        self._forward(self.cache_data, keep_inputs=False)
        acts = self.acts
        coef = self.act_fun[0].coef
        new = KAN(self.width, grid=new_grid, k=self.k, mult_arity=self.mult_arity,
                  noise_scale=self.noise_scale, scale_base_mu=self.scale_base_mu,
                  scale_base_sigma=self.scale_base_sigma, base_fun=self.base_fun_name,
                  affine_trainable=self.affine_trainable, grid_eps=self.grid_eps,
                  grid_range=self.grid_range, sp_trainable=self.sp_trainable,
                  sb_trainable=self.sb_trainable, seed=1, dtype=coef.dtype,
                  backend=self.backend)
        new.to(coef.device)
        for l in range(self.depth):
            new.act_fun[l] = self.act_fun[l].refine(new_grid, x=acts[l])
        new._copy_affines_from(self)
        new.input_id = self.input_id
        new.cache_data = self.cache_data
        return new

    def _copy_affines_from(self, other) -> None:
        with torch.no_grad():
            for name in ("node_bias", "node_scale", "subnode_bias", "subnode_scale"):
                for mine, theirs in zip(getattr(self, name), getattr(other, name)):
                    mine.data = theirs.data.detach().clone().to(mine.device)
                    mine.requires_grad_(theirs.requires_grad)

    # ---- training (the loop lives in pykan_fast.fit) ---------------------------------

    def fit(self, dataset, **kwargs) -> dict:
        """Train as pykan's ``MultKAN.fit``; see :func:`pykan_fast.fit.fit`."""
        from .fit import fit  # the training tools sit above the model

        return fit(self, dataset, **kwargs)

    def reg(self, reg_metric: str = "edge_forward_spline_n", lamb_l1: float = 1.0,
            lamb_entropy: float = 2.0, lamb_coef: float = 0.0, lamb_coefdiff: float = 0.0,
            x: torch.Tensor | None = None) -> torch.Tensor:
        """pykan's regulariser at inputs ``x`` (default: ``cache_data``); differentiable."""
        from .fit import regularization

        if x is None:
            x = self.cache_data
        if x is None:
            raise ValueError("x: reg needs inputs; pass x or run the model on data first")
        _, inputs = self._forward(x, keep_inputs=True)
        return regularization(self, inputs, reg_metric, lamb_l1, lamb_entropy, lamb_coef,
                              lamb_coefdiff)

    # ---- save / load ------------------------------------------------------------------

    def config(self) -> dict:
        """Constructor arguments that rebuild this model's shapes (per-layer grid and k)."""
        if not isinstance(self.base_fun_name, str):
            raise ValueError("base_fun: only a named base function ('silu', 'identity', "
                             "'zero') can be saved")
        return dict(
            width=[list(w) for w in self.width],
            grid=[layer.num for layer in self.act_fun],
            k=[layer.k for layer in self.act_fun],
            mult_arity=self.mult_arity, noise_scale=self.noise_scale,
            scale_base_mu=self.scale_base_mu, scale_base_sigma=self.scale_base_sigma,
            base_fun=self.base_fun_name, affine_trainable=self.affine_trainable,
            grid_eps=self.grid_eps, grid_range=list(self.grid_range),
            sp_trainable=self.sp_trainable, sb_trainable=self.sb_trainable, seed=self.seed,
            backend=self.backend,
        )

    def save(self, path) -> None:
        """Weights, config and ``cache_data`` in one file (``torch.save`` of a dict)."""
        torch.save({
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "config": self.config(),
            "grid": self.grid,
            "input_id": None if self.input_id is None else self.input_id.tolist(),
            "state_dict": self.state_dict(),
            "cache_data": self.cache_data,
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
        model.load_state_dict(state)
        model.grid = ckpt["grid"]
        if ckpt["input_id"] is not None:
            model.input_id = torch.tensor(ckpt["input_id"], dtype=torch.long)
        model.cache_data = ckpt["cache_data"]
        return model

    # ---- pykan interop ----------------------------------------------------------------

    @classmethod
    def from_pykan(cls, model, backend: str | None = None) -> "KAN":
        """The same network as a pykan 0.2.8 ``MultKAN`` (addition nodes, no symbolic
        edges); leaves the global random generators alone."""
        width = _normalize_width(model.width)
        if any(n_mult for _, n_mult in width):
            raise NotImplementedError("model: multiplication nodes are not supported yet")
        for l, sym in enumerate(getattr(model, "symbolic_fun", [])):
            if bool((sym.mask != 0).any()):
                raise NotImplementedError(
                    f"model: layer {l} has symbolic edges (fix_symbolic); not supported yet")
        layers = list(model.act_fun)
        coef = layers[0].coef
        with _rng_preserved():
            out = cls(width, grid=[layer.num for layer in layers], k=[layer.k for layer in layers],
                      mult_arity=model.mult_arity, base_fun=model.base_fun_name,
                      affine_trainable=model.affine_trainable, grid_eps=model.grid_eps,
                      grid_range=model.grid_range, sp_trainable=model.sp_trainable,
                      sb_trainable=model.sb_trainable, dtype=coef.dtype, backend=backend)
        out.to(coef.device)
        out.grid, out.k = model.grid, model.k
        for l, layer in enumerate(layers):
            out.act_fun[l] = KANLayer.from_pykan(layer, backend=backend)
        out._copy_affines_from(model)
        input_id = getattr(model, "input_id", None)
        if input_id is not None and not torch.equal(
                input_id.long().cpu(), torch.arange(out.width_in[0])):
            out.input_id = input_id.long().clone()
        if model.cache_data is not None:
            out.cache_data = model.cache_data.detach().clone()
        return out
