"""Making a KAN's edges symbolic: pykan 0.2.8's ``set_mode``, ``fix_symbolic``,
``unfix_symbolic``, ``suggest_symbolic`` and ``auto_symbolic`` as functions of a
:class:`pykan_fast.KAN` (its methods call these).

pykan fits an edge to the activations its last forward recorded for every edge
(``spline_postacts`` `[B, out, in]`); here the edge's activation is recomputed on demand
from the last forward's layer inputs (``model.acts``), one edge at a time.
"""

from __future__ import annotations

import numpy as np
import torch

from ...nn.edges import edge_activations
from .fitting import Candidate, rank_functions
from .library import SYMBOLIC_LIB

__all__ = ["check_edge", "set_mode", "edge_data", "fix_symbolic", "unfix_symbolic",
           "rank_symbolic", "suggest_symbolic", "auto_symbolic"]


def _is_index(v, n: int) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v < n


def check_edge(model, l: int, i: int, j: int) -> None:
    """ValueError naming l, i or j unless (l, i, j) is an edge of ``model``."""
    ok_l = _is_index(l, model.depth)
    for name, v, n in (("l", l, model.depth),
                       ("i", i, model.width_in[l] if ok_l else 0),
                       ("j", j, model.width_out[l + 1] if ok_l else 0)):
        if not _is_index(v, n):
            raise ValueError(f"{name}: expected an int in [0, {n}), got {v!r}")


def set_mode(model, l: int, i: int, j: int, mode: str, mask_n: float | None = None) -> None:
    """pykan's ``set_mode``: edge (l, i, j) spline-only ('n'), symbolic-only ('s'), both
    ('sn'/'ns', spline weight ``mask_n``, default 1) or off (anything else)."""
    check_edge(model, l, i, j)
    if mode == "s":
        mask_n, mask_s = 0.0, 1.0
    elif mode == "n":
        mask_n, mask_s = 1.0, 0.0
    elif mode in ("sn", "ns"):
        mask_n, mask_s = (1.0 if mask_n is None else mask_n), 1.0
    else:
        mask_n, mask_s = 0.0, 0.0
    with torch.no_grad():
        model.act_fun[l].mask[i, j] = mask_n
    model.symbolic_fun[l].set_mask(i, j, mask_s)


@torch.no_grad()
def edge_data(model, l: int, i: int, j: int):
    """x, y `[B]`: edge (l, i, j)'s input and activation (spline branch, on the fused
    kernel, plus symbolic branch) at the last forward's inputs of layer l."""
    check_edge(model, l, i, j)
    if model.acts is None or len(model.acts) <= l:
        raise ValueError("fix_symbolic: fitting needs the activations of a forward; run the "
                         "model on inputs first (or pass fit_params_bool=False)")
    x = model.acts[l][:, i]
    y = edge_activations(model.act_fun[l], x[:, None], slice(i, i + 1), slice(j, j + 1),
                         dense=False)[:, 0, 0]
    if model.symbolic_enabled:
        y = y + model.symbolic_fun[l].edge_acts(x, i, j)
    return x, y


def fix_symbolic(model, l: int, i: int, j: int, fun_name, fit_params_bool: bool = True,
                 a_range=(-10, 10), b_range=(-10, 10), verbose: bool = True,
                 random: bool = False):
    """Make edge (l, i, j) symbolic: ``c * f(a x + b) + d`` with f = ``fun_name`` (a
    library name, or a callable), its spline masked off (pykan's ``fix_symbolic``).

    ``fit_params_bool``: (a, b, c, d) fitted to the edge's activation at the last
    forward's inputs (:func:`~pykan_fast.symbolic.fit_params`), returns r2 as a float
    (pykan's -1e8 if the spline was already off); otherwise (1, 0, 1, 0) (uniform in
    [-1, 1] with ``random``) and None.
    """
    check_edge(model, l, i, j)
    if not fit_params_bool:
        model.symbolic_fun[l].fix_symbolic(i, j, fun_name, verbose=verbose, random=random)
        r2 = None
    else:
        x, y = edge_data(model, l, i, j)
        r2 = float(model.symbolic_fun[l].fix_symbolic(i, j, fun_name, x, y, a_range=a_range,
                                                      b_range=b_range, verbose=verbose))
        if model.act_fun[l].mask[i, j] == 0:
            r2 = -1e8
    set_mode(model, l, i, j, "s")
    return r2


def unfix_symbolic(model, l: int, i: int, j: int) -> None:
    """Edge (l, i, j) back to its spline (pykan's): spline mask 1, symbolic mask 0,
    function '0'."""
    set_mode(model, l, i, j, "n")
    model.symbolic_fun[l].unfix_symbolic(i, j)


def rank_symbolic(model, l: int, i: int, j: int, a_range=(-10, 10), b_range=(-10, 10),
                  lib=None, weight_simple: float = 0.8, r2_loss_fun=None,
                  c_loss_fun=None) -> list[Candidate]:
    """Every function of ``lib`` (default: the whole library) fitted to edge (l, i, j),
    best first, as pykan's ``suggest_symbolic`` orders them. Leaves the model as it was."""
    x, y = edge_data(model, l, i, j)
    kwargs = {}
    if r2_loss_fun is not None:
        kwargs["r2_loss_fun"] = r2_loss_fun
    if c_loss_fun is not None:
        kwargs["c_loss_fun"] = c_loss_fun
    return rank_functions(x, y, lib, a_range=a_range, b_range=b_range,
                          weight_simple=weight_simple,
                          dead=bool(model.act_fun[l].mask[i, j] == 0), **kwargs)


def suggest_symbolic(model, l: int, i: int, j: int, a_range=(-10, 10), b_range=(-10, 10),
                     lib=None, topk: int = 5, verbose: bool = True, r2_loss_fun=None,
                     c_loss_fun=None, weight_simple: float = 0.8):
    """pykan's ``suggest_symbolic``: ``(name, library entry, r2, complexity)`` of the
    function ranking first by ``weight_simple * complexity + (1 - weight_simple) *
    log2(1 + 1e-5 - r2)``; ``verbose`` prints the ``topk`` best. Unlike pykan (which
    leaves the edge unfixed), the edge is left as it was."""
    ranking = rank_symbolic(model, l, i, j, a_range=a_range, b_range=b_range, lib=lib,
                            weight_simple=weight_simple, r2_loss_fun=r2_loss_fun,
                            c_loss_fun=c_loss_fun)
    if verbose:
        print(f"{'function':>12} {'fitting r2':>14} {'complexity':>10} {'total loss':>12}")
        for cand in ranking[:topk]:
            print(f"{cand.name:>12} {cand.r2:>14.6g} {cand.c:>10g} {cand.loss:>12.5g}")
    best = ranking[0]
    return best.name, SYMBOLIC_LIB[best.name], best.r2, best.c


def auto_symbolic(model, a_range=(-10, 10), b_range=(-10, 10), lib=None, verbose: int = 1,
                  weight_simple: float = 0.8, r2_threshold: float = 0.0) -> None:
    """pykan's ``auto_symbolic``: each edge still on its spline gets the function
    :func:`suggest_symbolic` ranks first, if its r2 reaches ``r2_threshold``; edges that
    are off become '0'; symbolic ones stay. ``verbose >= 1`` prints one line per edge."""
    for l in range(model.depth):
        for i in range(model.width_in[l]):
            for j in range(model.width_out[l + 1]):
                symbolic = bool(model.symbolic_fun[l].mask[j, i] > 0)
                spline = bool(model.act_fun[l].mask[i, j] != 0)
                if symbolic and not spline:
                    if verbose >= 1:
                        print(f"skipping ({l},{i},{j}) since already symbolic")
                elif not symbolic and not spline:
                    fix_symbolic(model, l, i, j, "0", verbose=verbose > 1)
                    if verbose >= 1:
                        print(f"fixing ({l},{i},{j}) with 0")
                else:
                    best = rank_symbolic(model, l, i, j, a_range=a_range, b_range=b_range,
                                         lib=lib, weight_simple=weight_simple)[0]
                    if best.r2 >= r2_threshold:
                        # The ranking fitted this function already: pykan's refit would
                        # find the same affine.
                        model.symbolic_fun[l].fix_symbolic(i, j, best.name)
                        model.symbolic_fun[l].affine.data[j, i] = best.params
                        set_mode(model, l, i, j, "s")
                        if verbose >= 1:
                            print(f"fixing ({l},{i},{j}) with {best.name}, r2={best.r2}, c={best.c}")
                    elif verbose >= 1:
                        print(f"For ({l},{i},{j}) the best fit was {best.name}, but r^2 = "
                              f"{best.r2} and this is lower than {r2_threshold}. This edge "
                              "was omitted, keep training or try a different threshold.")
