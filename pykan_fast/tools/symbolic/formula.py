"""The closed-form expression of a fully symbolic KAN (pykan 0.2.8's
``MultKAN.symbolic_formula``), as sympy expressions. Needs sympy."""

from __future__ import annotations

import warnings

import torch

__all__ = ["symbolic_formula", "ex_round"]


def _sympy():
    try:
        import sympy
    except ImportError as error:
        raise ImportError("symbolic_formula needs sympy: pip install pykan-fast[symbolic]") from error
    return sympy


def ex_round(ex1, n_digit: int):
    """``ex1`` with every float rounded to ``n_digit`` decimals (pykan's ``ex_round``).

    Unlike pykan's (one ``subs`` per float, each by a ``Float`` of ``n_digit`` digits'
    precision), all floats are replaced at once by the double nearest the rounded decimal,
    integers becoming sympy Integers: a product of rounded constants then stays exact
    (pykan turns ``0.01 * (10.0 x)^2`` into ``1.00002288817308 x^2``), and ``1.0 *
    exp(...)`` prints as ``exp(...)``.
    """
    sympy = _sympy()
    if isinstance(n_digit, bool) or not isinstance(n_digit, int) or n_digit < 0:
        raise ValueError(f"n_digit: expected a non-negative int, got {n_digit!r}")

    def rounded(a):
        v = round(float(a), n_digit)
        return sympy.Integer(int(v)) if v.is_integer() else sympy.Float(v)

    ex2 = ex1
    for _ in range(3):  # replacing may fold constants into new floats (0.01 * 10^2 = 1.0)
        floats = ex2.atoms(sympy.Float)
        ex3 = ex2.xreplace({a: rounded(a) for a in floats})
        if ex3 == ex2:
            break
        ex2 = ex3
    return ex2


def _variables(sympy, var, n: int) -> list:
    if var is None:
        return [sympy.Symbol(f"x_{i}") for i in range(1, n + 1)]
    var = list(var)
    if len(var) != n:
        raise ValueError(f"var: expected {n} variables (one per input), got {len(var)}")
    if all(isinstance(v, sympy.Expr) for v in var):
        return var
    if all(isinstance(v, str) for v in var):
        return [sympy.Symbol(v) for v in var]
    raise TypeError("var: expected sympy expressions or names (str)")


def _spline_edges(model) -> list[tuple[int, int, int]]:
    """Edges (l, i, j) whose spline branch is still on (act_fun mask != 0)."""
    edges = []
    for l, layer in enumerate(model.act_fun):
        for i, j in (layer.mask.detach() != 0).nonzero().tolist():
            edges.append((l, i, j))
    return edges


def _arities(model, l: int, n_mult: int) -> list[int]:
    """Arity of each multiplication node of layer l+1 (int mult_arity or per layer)."""
    if isinstance(model.mult_arity, int):
        return [model.mult_arity] * n_mult
    return [int(a) for a in model.mult_arity[l + 1]]


def symbolic_formula(model, var=None, normalizer=None, output_normalizer=None,
                     simplify: bool = False, n_digit: int | None = None,
                     spline_edges: str = "raise"):
    """sympy expressions of every output of ``model`` (a :class:`pykan_fast.KAN` whose
    edges are all symbolic or removed), and the input variables: ``(formulas, variables)``
    as pykan's ``MultKAN.symbolic_formula``.

    Layer l: subnode j = ``subnode_scale[j] * sum_i mask[j, i] * (c f(a x_i + b) + d)
    + subnode_bias[j]``; the first ``n_add`` subnodes are nodes, each following group of
    ``arity`` subnodes multiplies into one multiplication node; then ``node_scale *
    node + node_bias``. ``var``: sympy expressions or names (default ``x_1 .. x_n``).
    ``normalizer`` = (mean, std) of the inputs (the formula takes un-normalised inputs),
    ``output_normalizer`` = (mean, std) of the outputs. ``simplify``: ``sympy.simplify``
    each subnode (pykan never does: its flag is shadowed by sympy's function).
    ``n_digit``: round every float constant of the results to that many decimals
    (:func:`ex_round`). Also sets ``model.symbolic_acts`` and
    ``model.symbolic_acts_premult`` (the node and subnode expressions) as pykan does.

    Unlike pykan, which silently counts a spline edge as 0, an edge whose spline branch is
    still on raises ValueError: the formula would not be the model's function
    (``spline_edges='zero'``: counted as pykan counts it, with one warning naming the
    edges; the ``pykan_fast.kan`` namespace does that, so pykan's scripts run). Group
    offsets of multiplication nodes follow the forward (pykan's formula assumes arity 2).
    """
    sympy = _sympy()
    if n_digit is not None and (isinstance(n_digit, bool) or not isinstance(n_digit, int) or n_digit < 0):
        raise ValueError(f"n_digit: expected None or a non-negative int, got {n_digit!r}")
    if spline_edges not in ("raise", "zero"):
        raise ValueError(f"spline_edges: expected 'raise' or 'zero', got {spline_edges!r}")
    spline = _spline_edges(model)
    if spline:
        shown = ", ".join(map(str, spline[:8])) + (" ..." if len(spline) > 8 else "")
        what = f"{len(spline)} edge(s) (l, i, j) still use their spline: {shown}"
        if spline_edges == "raise":
            raise ValueError(f"model: {what}; fix them first (auto_symbolic or fix_symbolic)")
        warnings.warn(f"symbolic_formula: {what}; they count only by their symbolic branch "
                      "(0 where none is fixed), as in pykan, so the formula is not the "
                      "model's function", stacklevel=3)

    def value(t) -> float:
        return float(t.detach()) if isinstance(t, torch.Tensor) else float(t)

    def num(t) -> "sympy.Float":
        return sympy.Float(value(t))

    # Affine steps with their identity cases left out, so an exact 1 or 0 does not
    # print as "1.0*" or "+ 0".
    def scale(s, e):
        return e if value(s) == 1.0 else num(s) * e

    def shift(e, b):
        return e if value(b) == 0.0 else e + num(b)

    x = _variables(sympy, var, model.width_in[0])
    variables = x
    if normalizer is not None:
        mean, std = normalizer
        x = [(x[i] - num(mean[i])) / num(std[i]) for i in range(len(x))]
    symbolic_acts, symbolic_acts_premult = [x], []
    for l in range(model.depth):
        sym = model.symbolic_fun[l]
        mask = sym.mask.detach().cpu()
        affine = sym.affine.detach().cpu()
        n_add, n_mult = model.width[l + 1]
        y = []
        for j in range(model.width_out[l + 1]):
            yj = sympy.Integer(0)
            for i in range(model.width_in[l]):
                m = float(mask[j, i])
                if m == 0.0:
                    continue
                a, b, c, d = affine[j, i]
                term = shift(scale(c, sym.entry(i, j).fun_sympy(shift(scale(a, x[i]), b))), d)
                yj += scale(m, term)
            yj = shift(scale(model.subnode_scale[l][j], yj), model.subnode_bias[l][j])
            y.append(sympy.simplify(yj) if simplify else yj)
        symbolic_acts_premult.append(y)
        nodes, start = list(y[:n_add]), n_add
        for arity in _arities(model, l, n_mult):
            prod = y[start]
            for s in range(1, arity):
                prod = prod * y[start + s]
            nodes.append(prod)
            start += arity
        x = [shift(scale(model.node_scale[l][j], nodes[j]), model.node_bias[l][j])
             for j in range(model.width_in[l + 1])]
        symbolic_acts.append(x)
    if output_normalizer is not None:
        means, stds = output_normalizer
        if len(means) != len(x) or len(stds) != len(x):
            raise ValueError(f"output_normalizer: expected {len(x)} means and stds, one per output")
        x = [x[i] * num(stds[i]) + num(means[i]) for i in range(len(x))]
        symbolic_acts[-1] = x
    model.symbolic_acts = [list(layer) for layer in symbolic_acts]
    model.symbolic_acts_premult = [list(layer) for layer in symbolic_acts_premult]
    formulas = list(x)
    if n_digit is not None:
        formulas = [ex_round(f, n_digit) for f in formulas]
    return formulas, variables
