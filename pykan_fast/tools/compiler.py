"""The KAN compiler: a sympy formula turned into a KAN that computes it (pykan 0.2.8's
``kan.compiler``: ``expr2kan``, alias ``kanpiler``, ``sf2kan``).

The formula is read as a tree of nodes, top (the output) down. Every node strips its
affine part, ``scale * core + bias`` (the node affine). A core that is

- a product becomes a multiplication node, one subnode per factor (each factor's own
  affine is the subnode affine); a factor that is a sum feeds its subnode with one edge
  per term;
- a sum becomes an addition node with one subnode, fed by one edge per term;
- a one-variable function ``f(arg)`` becomes an addition node whose subnode is fed by an
  edge computing ``f`` from the node of ``arg``;
- a variable is a leaf; identity nodes carry it down to the input layer, and its affine
  moves into the edge above it (``c f(a x + b) + d``).

Edges are symbolic (``SYMBOLIC_LIB`` names: ``x``, ``sin``, ``x^2``, ``1/x^0.5``...);
every spline is off. Nodes are numbered in the order the depth-first walk meets them,
addition nodes before multiplication nodes, as pykan does, so widths, ``mult_arity``
and each edge's function match pykan's model for the same formula.

Difference from pykan 0.2.8: a formula in which one variable reaches the same subnode
twice at the input layer (``x + sin(x)``) needs two edges on one KAN edge; pykan keeps
the last silently, here a ValueError says so. Unsupported functions raise ValueError
(pykan fails on an unbound name).
"""

from __future__ import annotations

import torch

__all__ = ["expr2kan", "kanpiler", "sf2kan", "split_affine", "compile_plan"]


def split_affine(expr, scale=1, bias=0):
    """``(core, scale, bias)`` with ``expr = scale * core + bias``: the numeric terms
    of a sum and the numeric factors of a product, peeled until none is left."""
    import sympy

    while expr.func in (sympy.Add, sympy.Mul):
        numbers = [a for a in expr.args if a.is_number]
        if not numbers:
            break
        rest = [a for a in expr.args if not a.is_number]
        if expr.func == sympy.Add:
            bias = sympy.Add(*numbers)
        else:
            scale = sympy.Mul(*numbers)
        expr = expr.func(*rest)
    return expr, scale, bias


def _function_name(fun, exponent) -> str:
    """The symbolic library's name for sympy function ``fun`` (``exponent``: Pow's)."""
    import sympy

    names = {sympy.exp: "exp", sympy.sin: "sin", sympy.cos: "cos", sympy.tan: "tan",
             sympy.log: "log", sympy.tanh: "tanh", sympy.asin: "arcsin",
             sympy.acos: "arccos", sympy.atan: "arctan", sympy.atanh: "arctanh",
             sympy.sign: "sgn", sympy.Abs: "abs"}
    if fun == "x":
        return "x"
    if fun in names:
        return names[fun]
    if fun == sympy.Pow:
        half = sympy.Rational(1, 2)
        special = {half: "x^0.5", -half: "1/x^0.5", 3 * half: "x^1.5"}
        if exponent in special:
            return special[exponent]
        if exponent.is_integer and 1 <= abs(int(exponent)) <= 5:
            p = int(exponent)
            return ("x" if p == 1 else f"x^{p}") if p > 0 else ("1/x" if p == -1 else f"1/x^{-p}")
        raise ValueError(f"expr: the power {exponent} has no symbolic-library function "
                         "(supported: integers -5..5, 1/2, -1/2, 3/2)")
    raise ValueError(f"expr: the function {fun} has no symbolic-library counterpart")


class _Tree:
    """The formula's nodes, subnodes and edges by depth (0: the output), in creation
    order. ``leaf_depth``: the depth every variable is carried down to (None: none)."""

    def __init__(self, variables, leaf_depth=None):
        self.variables = list(variables)
        self.leaf_depth = leaf_depth
        self.nodes = []      # nodes[d]: dicts kind ('add'/'mult'), scale, bias, subs, var
        self.subnodes = []   # subnodes[d]: dicts scale, bias (the subnodes of nodes[d-1])
        self.edges = []      # (d, subnode index, node index, function name, [a, b, c, d])

    def _new(self, table, depth, item) -> int:
        while len(table) <= depth:
            table.append([])
        table[depth].append(item)
        return len(table[depth]) - 1

    def _subnode(self, node_depth, node, scale, bias) -> int:
        sub = self._new(self.subnodes, node_depth + 1, {"scale": scale, "bias": bias})
        self.nodes[node_depth][node]["subs"].append(sub)
        return sub

    def node(self, expr, depth: int):
        """Create the node of ``expr`` at ``depth``; ``(index, (a, b))``, (a, b) the
        affine a leaf hands to the edge above it ((1, 0) for other nodes)."""
        import sympy

        core, scale, bias = split_affine(expr)
        if core.func == sympy.Symbol:
            if core not in self.variables:
                raise ValueError(f"expr: {core} is not one of input_variables {self.variables}")
            top = self._new(self.nodes, depth, self._record("add", 1, 0))
            self._carry(core, depth, top)
            return top, (scale, bias)
        kind = "mult" if core.func == sympy.Mul else "add"
        index = self._new(self.nodes, depth, self._record(kind, scale, bias))
        if core.func == sympy.Mul:
            for factor in core.args:
                f_core, f_scale, f_bias = split_affine(factor)
                sub = self._subnode(depth, index, f_scale, f_bias)
                terms = f_core.args if f_core.func == sympy.Add else (f_core,)
                scaled = f_core.func == sympy.Add
                for term in terms:
                    self._term(term, depth + 1, sub, split=scaled)
        elif core.func == sympy.Add:
            sub = self._subnode(depth, index, 1, 0)
            for term in core.args:
                self._term(term, depth + 1, sub, split=True)
        else:
            if len(core.args) != 1 and core.func != sympy.Pow:
                raise ValueError(f"expr: {core.func} of {len(core.args)} arguments is not a "
                                 "one-variable function")
            sub = self._subnode(depth, index, 1, 0)
            self._term(core, depth + 1, sub, split=False)
        return index, (1, 0)

    @staticmethod
    def _record(kind, scale, bias):
        return {"kind": kind, "scale": scale, "bias": bias, "subs": [], "var": None}

    def _term(self, term, depth: int, sub: int, split: bool) -> None:
        """An edge into subnode ``sub`` (of depth ``depth``) computing ``term``; its
        affine ``c, d`` from the term's own (``split``), its function from the term's
        head (identity for a product or a variable)."""
        import sympy

        core, c, d = split_affine(term) if split else (term, 1, 0)
        if core.func in (sympy.Mul, sympy.Symbol):
            child, (a, b) = self.node(core, depth)
            name = "x"
        else:
            exponent = core.args[1] if core.func == sympy.Pow else None
            name = _function_name(core.func, exponent)
            child, (a, b) = self.node(core.args[0], depth)
        self.edges.append((depth, sub, child, name, [a, b, c, d]))

    def _carry(self, var, depth: int, node: int) -> None:
        """Identity nodes from ``node`` down to the input layer; the last holds ``var``."""
        target = depth if self.leaf_depth is None else self.leaf_depth
        for d in range(depth, target):
            sub = self._subnode(d, node, 1, 0)
            below = self._new(self.nodes, d + 1, self._record("add", 1, 0))
            self.edges.append((d + 1, sub, below, "x", [1, 0, 1, 0]))
            node = below
        self.nodes[target][node]["var"] = self.variables.index(var)


def compile_plan(input_variables, expr) -> dict:
    """The KAN a formula compiles to, without building it: ``width`` (MultKAN form),
    ``mult_arity`` (one list per layer), ``node_affine`` ``{(layer, index): (scale,
    bias)}`` (node layer >= 1), ``subnode_affine`` ``{(layer, index): (scale, bias)}``
    and ``edges`` ``{(l, i, j): (function name, [a, b, c, d])}``."""
    import sympy

    variables = list(input_variables)
    if not variables or not all(isinstance(v, sympy.Symbol) for v in variables):
        raise ValueError(f"input_variables: expected a list of sympy Symbols, got {input_variables!r}")
    expr = sympy.sympify(expr)
    if split_affine(expr)[0].func == sympy.Symbol or expr.is_number:
        raise ValueError(f"expr: expected a formula with at least one operation, got {expr}")
    first = _Tree(variables)
    first.node(expr, 0)
    tree = _Tree(variables, leaf_depth=len(first.nodes) - 1)
    tree.node(expr, 0)
    depth = len(tree.nodes) - 1

    node_id, sub_id, width, arities = {}, {}, [], []
    for d, nodes in enumerate(tree.nodes):
        n_add = sum(node["kind"] == "add" for node in nodes)
        n_mult, seen_add, offset, arity_d = 0, 0, n_add, []
        for index, node in enumerate(nodes):
            if node["kind"] == "add":
                node_id[d, index] = node["var"] if d == depth else seen_add
                for sub in node["subs"]:
                    sub_id[d + 1, sub] = seen_add
                seen_add += 1
            else:
                node_id[d, index] = n_add + n_mult
                for t, sub in enumerate(node["subs"]):
                    sub_id[d + 1, sub] = offset + t
                offset += len(node["subs"])
                arity_d.append(len(node["subs"]))
                n_mult += 1
        width.append([n_add, n_mult])
        arities.append(arity_d)
    width.reverse()
    arities.reverse()
    width[0] = [len(variables), 0]

    plan = {"width": width, "mult_arity": arities, "node_affine": {}, "subnode_affine": {},
            "edges": {}}
    for d, nodes in enumerate(tree.nodes):
        if d < depth:
            for index, node in enumerate(nodes):
                plan["node_affine"][depth - d, node_id[d, index]] = (node["scale"], node["bias"])
    for d, subs in enumerate(tree.subnodes):
        for index, sub in enumerate(subs):
            if d > 0:
                plan["subnode_affine"][depth - d, sub_id[d, index]] = (sub["scale"], sub["bias"])
    for d, sub, node, name, affine in tree.edges:
        key = (depth - d, node_id[d, node], sub_id[d, sub])
        if key in plan["edges"]:
            raise ValueError(f"expr: {expr} needs two functions on the KAN edge {key} (a "
                             "variable reaching one subnode twice); rewrite the formula")
        plan["edges"][key] = (name, affine)
    return plan


def expr2kan(input_variables, expr, grid: int = 5, k: int = 3, auto_save: bool = False,
             seed: int = 1, dtype=None, model_class=None):
    """A :class:`pykan_fast.KAN` computing the sympy formula ``expr`` of
    ``input_variables`` (pykan's ``expr2kan``): every edge symbolic (splines off, on a
    ``grid``/``k`` spline basis for later training), node and subnode affines set.
    ``auto_save`` is accepted for pykan's signature (pykan_fast keeps no checkpoints);
    ``model_class``: what to build (default :class:`pykan_fast.KAN`; called with KAN's
    keyword arguments)."""
    from ..nn.model import KAN
    from .symbolic.library import SYMBOLIC_LIB

    plan = compile_plan(input_variables, expr)
    model = (model_class or KAN)(width=plan["width"], mult_arity=plan["mult_arity"], grid=grid,
                                 k=k, seed=seed, dtype=dtype)
    with torch.no_grad():
        for l in range(model.depth):
            model.act_fun[l].mask.zero_()
            sym = model.symbolic_fun[l]
            sym.mask.fill_(1.0)
            sym.affine[:] = torch.tensor([1.0, 0.0, 1.0, 0.0])
            for j in range(sym.out_dim):
                for i in range(sym.in_dim):
                    sym.set_function(i, j, "0", SYMBOLIC_LIB["0"])
        for (layer, index), (scale, bias) in plan["node_affine"].items():
            model.node_scale[layer - 1][index] = float(scale)
            model.node_bias[layer - 1][index] = float(bias)
        for (layer, index), (scale, bias) in plan["subnode_affine"].items():
            model.subnode_scale[layer][index] = float(scale)
            model.subnode_bias[layer][index] = float(bias)
        for (l, i, j), (name, affine) in plan["edges"].items():
            sym = model.symbolic_fun[l]
            sym.set_function(i, j, name, SYMBOLIC_LIB[name])
            sym.affine[j, i] = torch.tensor([float(v) for v in affine], dtype=sym.affine.dtype)
    return model


kanpiler = sf2kan = expr2kan
