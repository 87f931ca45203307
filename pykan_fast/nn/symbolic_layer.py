"""``SymbolicKANLayer``: pykan 0.2.8's ``Symbolic_KANLayer``, the symbolic branch of a
KAN layer, evaluated only on the edges that are fixed.

Edge (i -> j) computes ``mask[j, i] * (c * f(a * x_i + b) + d)`` with
``(a, b, c, d) = affine[j, i]``; output j sums its edges. pykan evaluates every edge on
every forward (a Python loop over ``in * out`` edges, masked afterwards); here the edges
with a non-zero mask are gathered once, grouped by function, and each group is one
vectorised call plus an ``index_add`` into the output.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from ..tools.symbolic.fitting import fit_params
from ..tools.symbolic.library import SYMBOLIC_LIB, SymbolicFunction, call_singular, get_symbolic

__all__ = ["SymbolicKANLayer"]


def _anonymous(fun: Callable) -> SymbolicFunction:
    """pykan's ``fix_symbolic`` with a callable: its own torch and sympy form."""
    def singular(x, y_th):
        return fun(x)
    return SymbolicFunction(fun, fun, 1, singular)


_FIELD_NAMES = {"fun": "funs", "fun_sympy": "funs_sympy", "fun_singularity": "funs_avoid_singularity"}


class _EdgeRow(list):
    """Row j of a layer's ``funs`` (or ``funs_sympy``, ``funs_avoid_singularity``): a
    list whose item assignment replaces that edge's form in the layer."""

    def __init__(self, layer, field: str, j: int):
        super().__init__(getattr(e, field) for e in layer._entries[j])
        self._layer, self._field, self._j = layer, field, j

    def __setitem__(self, index, value):
        super().__setitem__(index, value)
        if isinstance(index, slice):
            for i in range(len(self))[index]:
                self._layer._set_edge_form(i, self._j, self._field, self[i])
        else:
            self._layer._set_edge_form(range(len(self))[index], self._j, self._field, value)


class _EdgeTable(list):
    """A layer's ``out x in`` table of one per-edge form, rows :class:`_EdgeRow`;
    assigning a whole row sets each of its edges."""

    def __init__(self, layer, field: str):
        super().__init__(_EdgeRow(layer, field, j) for j in range(layer.out_dim))
        self._layer, self._field = layer, field

    def __setitem__(self, index, row):
        j = range(len(self))[index]
        values = list(row)
        if len(values) != self._layer.in_dim:
            raise ValueError(f"{_FIELD_NAMES[self._field]}[{j}]: expected {self._layer.in_dim} callables")
        for i, value in enumerate(values):
            self._layer._set_edge_form(i, j, self._field, value)
        super().__setitem__(index, _EdgeRow(self._layer, self._field, j))


class SymbolicKANLayer(nn.Module):
    """The symbolic branch of a ``[B, in] -> [B, out]`` KAN layer (pykan's names).

    ``mask`` `[out, in]` (not trained): which edges are symbolic (and their weight);
    ``affine`` `[out, in, 4]` (trained, as pykan): ``(a, b, c, d)`` per edge;
    ``funs_name`` `out x in` lists of library names ('0' for none, 'anonymous' for a
    callable). ``funs``, ``funs_sympy`` and ``funs_avoid_singularity`` are pykan's
    per-edge callables; assigning ``funs[j][i] = f`` replaces that edge's function (as
    in pykan, where the forward calls ``funs[j][i]``). ``forward`` returns ``y`` only (pykan's also returns the dense
    `[B, out, in]` activations; :meth:`edge_acts` gives one edge's).

    Change the mask through :meth:`fix_symbolic`, :meth:`unfix_symbolic`,
    :meth:`set_mask` or in-place tensor ops (``mask[j, i] = 1``); a write through
    ``mask.data[...]`` is invisible to the cache of fixed edges: call :meth:`refresh`.
    """

    def __init__(self, in_dim: int = 3, out_dim: int = 2, device=None, dtype=None):
        super().__init__()
        for name, v in (("in_dim", in_dim), ("out_dim", out_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name}: expected a non-negative int, got {v!r}")
        self.in_dim, self.out_dim = in_dim, out_dim
        self.mask = nn.Parameter(torch.zeros(out_dim, in_dim, device=device, dtype=dtype),
                                 requires_grad=False)
        self.affine = nn.Parameter(torch.zeros(out_dim, in_dim, 4, device=device, dtype=dtype))
        zero = SYMBOLIC_LIB["0"]
        self.funs_name = [["0"] * in_dim for _ in range(out_dim)]
        self._entries = [[zero] * in_dim for _ in range(out_dim)]
        self._edits = 0
        self._cache_key = None
        self._groups = []

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}"

    # ---- pykan's per-edge callables ---------------------------------------------------

    # As pykan's lists, ``funs[j][i] = f`` (and a whole new table) takes effect: the edge's
    # function is replaced in place (its other forms and its name are kept, as pykan).
    @property
    def funs(self) -> list[list[Callable]]:
        return _EdgeTable(self, "fun")

    @funs.setter
    def funs(self, table) -> None:
        self._set_table("fun", table)

    @property
    def funs_sympy(self) -> list[list[Callable]]:
        return _EdgeTable(self, "fun_sympy")

    @funs_sympy.setter
    def funs_sympy(self, table) -> None:
        self._set_table("fun_sympy", table)

    @property
    def funs_avoid_singularity(self) -> list[list[Callable]]:
        return _EdgeTable(self, "fun_singularity")

    @funs_avoid_singularity.setter
    def funs_avoid_singularity(self, table) -> None:
        self._set_table("fun_singularity", table)

    def _set_edge_form(self, i: int, j: int, field: str, value: Callable) -> None:
        """Edge (i -> j)'s ``field`` form (a ``SymbolicFunction`` field) becomes ``value``."""
        if not callable(value):
            raise TypeError(f"{_FIELD_NAMES[field]}[{j}][{i}]: expected a callable, got "
                            f"{type(value).__name__}")
        self._entries[j][i] = self._entries[j][i]._replace(**{field: value})
        self.refresh()

    def _set_table(self, field: str, table) -> None:
        rows = [list(row) for row in table]
        if len(rows) != self.out_dim or any(len(row) != self.in_dim for row in rows):
            raise ValueError(f"{_FIELD_NAMES[field]}: expected {self.out_dim} lists of "
                             f"{self.in_dim} callables")
        for j, row in enumerate(rows):
            for i, value in enumerate(row):
                self._set_edge_form(i, j, field, value)

    def entry(self, i: int, j: int) -> SymbolicFunction:
        """The function on edge (i -> j)."""
        return self._entries[j][i]

    # ---- which edges run -------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the set of fixed edges from ``mask`` (every edit through this class
        calls it): now, so that a compiled forward, which cannot read the mask's values
        while tracing, finds it current."""
        self._edits += 1
        if not torch.compiler.is_compiling():
            self._active_groups()

    def _active_groups(self):
        """``[(entry, j_idx, i_idx)]``: the edges with a non-zero mask, grouped by
        function. Cached until the mask tensor changes (version counter, storage) or an
        edit through this class. Under torch.compile the cache is taken as it stands (a
        data-dependent ``nonzero`` would break the graph; dynamo guards on the cached
        groups): edits through this class keep it current, an in-place edit of ``mask``
        is seen at the next eager call."""
        if torch.compiler.is_compiling():
            return self._groups
        key = (self.mask.data_ptr(), self.mask._version, self._edits, self.mask.device)
        if key != self._cache_key:
            edges = torch.nonzero(self.mask.detach()).tolist()  # one sync per change
            groups = {}
            for j, i in edges:
                entry = self._entries[j][i]
                groups.setdefault(id(entry), (entry, [], []))
                groups[id(entry)][1].append(j)
                groups[id(entry)][2].append(i)
            device = self.mask.device
            self._groups = [(entry, torch.tensor(js, device=device),
                             torch.tensor(is_, device=device))
                            for entry, js, is_ in groups.values()]
            self._cache_key = key
        return self._groups

    @property
    def n_active(self) -> int:
        """Number of edges with a non-zero mask (those the forward evaluates)."""
        return sum(len(g[1]) for g in self._active_groups())

    # ---- forward ----------------------------------------------------------------------

    def forward(self, x: torch.Tensor, singularity_avoiding: bool = False,
                y_th: float = 10.0) -> torch.Tensor:
        """x: `[B, in]` -> y: `[B, out]`, the sum over the fixed edges of
        ``mask * (c * f(a x + b) + d)`` (``singularity_avoiding``: f's finite form with
        threshold ``y_th``). Zeros when no edge is fixed."""
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x: expected shape [batch, {self.in_dim}], got {list(x.shape)}")
        # torch.promote_types, not torch.result_type(x, affine): the same dtype for these
        # (non-scalar) tensors, and it traces under torch.compile.
        y = torch.zeros(x.shape[0], self.out_dim, dtype=torch.promote_types(x.dtype, self.affine.dtype),
                        device=x.device)
        for entry, j_idx, i_idx in self._active_groups():
            y = y.index_add(1, j_idx, self._group_acts(x, entry, j_idx, i_idx, singularity_avoiding, y_th))
        return y

    def _group_acts(self, x, entry, j_idx, i_idx, singularity_avoiding, y_th):
        """`[B, n]`: the activations of n edges sharing one function."""
        affine = self.affine[j_idx, i_idx]  # [n, 4]
        pre = affine[:, 0] * x[:, i_idx] + affine[:, 1]
        if singularity_avoiding:
            value = call_singular(entry.fun_singularity, pre, y_th)
        else:
            value = entry.fun(pre)
        return self.mask[j_idx, i_idx] * (affine[:, 2] * value + affine[:, 3])

    def edge_acts(self, x: torch.Tensor, i: int, j: int, singularity_avoiding: bool = False,
                  y_th: float = 10.0) -> torch.Tensor:
        """x: `[B]` (input i) -> `[B]`: edge (i -> j)'s activation, mask included."""
        entry = self._entries[j][i]
        a, b, c, d = self.affine[j, i]
        pre = a * x + b
        value = call_singular(entry.fun_singularity, pre, y_th) if singularity_avoiding else entry.fun(pre)
        return self.mask[j, i] * (c * value + d)

    # ---- editing ----------------------------------------------------------------------

    def _check_edge(self, i: int, j: int) -> None:
        for name, v, n in (("i", i, self.in_dim), ("j", j, self.out_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < n:
                raise ValueError(f"{name}: expected an int in [0, {n}), got {v!r}")

    def set_mask(self, i: int, j: int, value: float) -> None:
        """``mask[j, i] = value`` (pykan's ``set_mode`` writes it this way)."""
        self._check_edge(i, j)
        with torch.no_grad():
            self.mask[j, i] = value
        self.refresh()

    @torch.no_grad()
    def fix_symbolic(self, i: int, j: int, fun_name, x: torch.Tensor | None = None,
                     y: torch.Tensor | None = None, random: bool = False, a_range=(-10, 10),
                     b_range=(-10, 10), verbose: bool = True):
        """Set edge (i -> j)'s function (pykan's ``Symbolic_KANLayer.fix_symbolic``).

        ``fun_name``: a library name or a callable ('anonymous'). Without x, y `[B]`:
        affine = (1, 0, 1, 0) (or uniform in [-1, 1] with ``random``), returns None.
        With them: affine fitted by :func:`fit_params`, returns r2 (a 0-d tensor).
        Does not touch the mask (the model's ``fix_symbolic`` sets it)."""
        self._check_edge(i, j)
        if isinstance(fun_name, str):
            entry, name = get_symbolic(fun_name), fun_name
        elif callable(fun_name):
            if x is not None or y is not None:
                raise ValueError("fun_name: fitting (x, y) needs a library name; "
                                 "register the callable with add_symbolic first")
            entry, name = _anonymous(fun_name), "anonymous"
        else:
            raise TypeError(f"fun_name: expected a library name or a callable, got "
                            f"{type(fun_name).__name__}")
        self.funs_name[j][i] = name
        self._entries[j][i] = entry
        self.refresh()
        if x is None or y is None:
            if random:
                self.affine.data[j][i] = torch.rand(4, device=self.affine.device, dtype=self.affine.dtype) * 2 - 1
            else:
                self.affine.data[j][i] = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=self.affine.dtype)
            return None
        params, r2 = fit_params(x, y, entry.fun, a_range=a_range, b_range=b_range, verbose=verbose)
        self.affine.data[j][i] = params.to(self.affine.dtype)
        return r2

    def unfix_symbolic(self, i: int, j: int) -> None:
        """Name '0' and mask 0 on edge (i -> j) (the affine is kept, as pykan)."""
        self._check_edge(i, j)
        self.funs_name[j][i] = "0"
        self._entries[j][i] = SYMBOLIC_LIB["0"]
        self.set_mask(i, j, 0.0)

    def set_function(self, i: int, j: int, name: str, entry: SymbolicFunction) -> None:
        """Put ``entry`` under ``name`` on edge (i -> j) without touching affine or mask
        (loading, conversion)."""
        self._check_edge(i, j)
        self.funs_name[j][i] = name
        self._entries[j][i] = entry
        self.refresh()

    def get_subset(self, in_id, out_id) -> "SymbolicKANLayer":
        """The layer restricted to inputs ``in_id`` and outputs ``out_id`` (pykan's, for
        pruning): a new layer with copies of the selected mask, affine and functions."""
        in_id = [int(i) for i in in_id]
        out_id = [int(j) for j in out_id]
        sub = SymbolicKANLayer(len(in_id), len(out_id), device=self.mask.device, dtype=self.mask.dtype)
        with torch.no_grad():
            sub.mask.data = self.mask.data[out_id][:, in_id].clone()
            sub.affine.data = self.affine.data[out_id][:, in_id].clone()
        sub.affine.requires_grad_(self.affine.requires_grad)
        sub.funs_name = [[self.funs_name[j][i] for i in in_id] for j in out_id]
        sub._entries = [[self._entries[j][i] for i in in_id] for j in out_id]
        sub.refresh()
        return sub
