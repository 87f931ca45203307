"""Hypothesis testing on a trained model or any function: pykan 0.2.8's
``kan.hypothesis`` (separability, symmetry, general separability, the tree of modules).

All tests read derivatives of ``model`` (a :class:`pykan_fast.KAN`, an MLP or a
callable `[B, n] -> [B, m]`, first output used) at samples ``x`` `[B, n]`, through
:mod:`pykan_fast.tools.derivatives` (one autograd pass over the whole batch per input
column, ``create_graph`` where a further derivative follows). Scores are medians over the
batch of ``|d^2 f / dx_i dx_j| * std(x_i) * std(x_j)`` (or of the normalised gradient's
dependence on the other inputs), compared with a threshold, as pykan does.

Differences from pykan 0.2.8 (its intent kept): the tests return Python bools (pykan:
0-d tensors); ``detect_separability`` clusters with its own complete-linkage
agglomeration (no scikit-learn; ties broken by the lowest variable index) and treats a
function without any second derivative as fully separable (pykan divides 0 by 0 and
fails); ``plot_tree`` accepts ``in_var`` (pykan reads an undefined name) and returns the
figure; ``test_symmetry_var`` differentiates through torch (pykan's numpy lambdify).
"""

from __future__ import annotations

import copy

import torch

from .derivatives import batch_hessian, batch_jacobian

__all__ = ["detect_separability", "test_separability", "test_general_separability",
           "test_symmetry", "get_dependence", "batch_grad_normgrad", "get_molecule",
           "get_tree_node", "plot_tree", "test_symmetry_var", "hessian_scores",
           "complete_linkage"]


def _check_groups(groups, n: int, name: str = "groups") -> list[list[int]]:
    try:
        out = [[int(i) for i in g] for g in groups]
    except TypeError:
        raise ValueError(f"{name}: expected a list of lists of input indices, got {groups!r}") from None
    flat = [i for g in out for i in g]
    if any(not 0 <= i < n for i in flat) or len(set(flat)) != len(flat):
        raise ValueError(f"{name}: expected disjoint input indices in [0, {n}), got {groups!r}")
    return out


def _check_group(group, n: int) -> list[int]:
    return _check_groups([group], n, "group")[0]


def _check_mode(mode: str) -> None:
    if mode not in ("add", "mul"):
        raise ValueError(f"mode: expected 'add' or 'mul', got {mode!r}")


def _log_abs(model, bias: float):
    """Multiplicative separability of f is additive separability of log|f + bias|."""
    return lambda x: torch.log(torch.abs(model(x) + bias))


def hessian_scores(model, x: torch.Tensor, mode: str = "add", bias: float = 0.0) -> torch.Tensor:
    """`[n, n]`: median over the batch of ``|H_ij| std(x_i) std(x_j)``, H the Hessian of
    the first output (``mode='mul'``: of ``log|f + bias|``)."""
    _check_mode(mode)
    f = model if mode == "add" else _log_abs(model, bias)
    hessian = batch_hessian(f, x)
    std = torch.std(x, dim=0)
    return torch.median(torch.abs(hessian * std[None, :] * std[:, None]), dim=0)[0]


def complete_linkage(dist: torch.Tensor) -> list[tuple[list[int], list[int]]]:
    """The merges of complete-linkage agglomerative clustering of ``dist`` `[n, n]`
    (symmetric; the diagonal is ignored), each as the two clusters merged, in order;
    ties go to the pair holding the lowest variable indices."""
    d = dist.detach().cpu().double()
    clusters = [[i] for i in range(d.shape[0])]
    merges = []
    while len(clusters) > 1:
        best = None
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                link = float(d[clusters[a]][:, clusters[b]].max())
                if best is None or link < best[0]:
                    best = (link, a, b)
        _, a, b = best
        merges.append((clusters[a], clusters[b]))
        clusters[a] = sorted(clusters[a] + clusters[b])
        del clusters[b]
    return merges


def _cut(merges, n: int, n_clusters: int) -> list[list[int]]:
    """The clusters after the first ``n - n_clusters`` merges, ordered by first member."""
    clusters = {i: [i] for i in range(n)}
    for a, b in merges[:n - n_clusters]:
        merged = sorted(a + b)
        del clusters[a[0]], clusters[b[0]]
        clusters[merged[0]] = merged
    return [clusters[key] for key in sorted(clusters)]


def detect_separability(model, x: torch.Tensor, mode: str = "add", score_th: float = 1e-2,
                        res_th: float = 1e-2, n_clusters=None, bias: float = 0.0,
                        verbose: bool = False) -> dict:
    """pykan's ``detect_separability``: cluster the inputs by their Hessian scores and
    report the largest number of groups whose cross-group scores hold less than
    ``res_th`` of the total. Returns ``{'hessian': scores [n, n], 'n_groups', 'labels',
    'groups'}`` (labels: the group of each input) and prints the verdict, as pykan."""
    scores = hessian_scores(model, x, mode, bias)
    n = x.shape[1]
    results = {"hessian": scores}
    merges = complete_linkage((scores < score_th).to(scores.dtype))
    if isinstance(n_clusters, int):
        tries = [n_clusters, n_clusters]
    elif isinstance(n_clusters, (list, tuple)):
        tries = list(n_clusters)
    else:
        tries = [1, n]
    if len(tries) != 2 or not 1 <= tries[0] <= tries[1] <= n:
        raise ValueError(f"n_clusters: expected an int or [low, high] within [1, {n}], "
                         f"got {n_clusters!r}")
    total = float(torch.sum(scores))
    for k in range(tries[0], tries[1] + 1):
        groups = _cut(merges, n, k)
        inside = sum(float(torch.sum(scores[g][:, g])) for g in groups)
        ratio = (total - inside) / total if total > 0 else 0.0
        if verbose:
            print(f"n_group={k}, residual_ratio={ratio}")
        if ratio < res_th:
            labels = [0] * n
            for label, g in enumerate(groups):
                for i in g:
                    labels[i] = label
            results.update(n_groups=k, labels=labels, groups=groups)
    found = results.get("n_groups", 1) > 1
    print(f"{mode} separability {'detected' if found else 'not detected'}")
    return results


def test_separability(model, x: torch.Tensor, groups, mode: str = "add",
                      threshold: float = 1e-2, bias: float = 0.0) -> bool:
    """pykan's ``test_separability``: True when every Hessian score between two of
    ``groups``, and between the grouped and the ungrouped inputs, is below
    ``threshold`` (``mode='mul'``: of ``log|f + bias|``)."""
    groups = _check_groups(groups, x.shape[1])
    scores = hessian_scores(model, x, mode, bias)
    ok = True
    for a in range(len(groups)):
        for b in range(a + 1, len(groups)):
            if groups[a] and groups[b]:
                ok &= bool(torch.max(scores[groups[a]][:, groups[b]]) < threshold)
    grouped = [i for g in groups for i in g]
    rest = [i for i in range(x.shape[1]) if i not in grouped]
    if grouped and rest:
        ok &= bool(torch.max(scores[grouped][:, rest]) < threshold)
    return ok


def test_general_separability(model, x: torch.Tensor, groups, threshold: float = 1e-2) -> bool:
    """pykan's ``test_general_separability``: f = g(h_1(x_A), h_2(x_B), ...) up to an outer
    function, tested as the multiplicative separability of every gradient ratio
    ``(df/dx_b) / (df/dx_a)`` across two groups."""
    groups = _check_groups(groups, x.shape[1])
    ok = True
    for a in range(len(groups)):
        for b in range(a + 1, len(groups)):
            for member_a in groups[a]:
                for member_b in groups[b]:
                    def ratio(v, member_a=member_a, member_b=member_b):
                        grad = batch_jacobian(model, v, create_graph=True)
                        return grad[:, [member_b]] / grad[:, [member_a]]
                    ok &= test_separability(ratio, x, groups, mode="mul", threshold=threshold)
    return ok


def batch_grad_normgrad(model, x: torch.Tensor, group, create_graph: bool = False) -> torch.Tensor:
    """`[B, |A|, |B|]`: derivative of the normalised gradient over the inputs of
    ``group`` (A) with respect to the other inputs (B), pykan's ``batch_grad_normgrad``."""
    group_a = _check_group(group, x.shape[1])
    group_b = [i for i in range(x.shape[1]) if i not in group_a]
    with torch.enable_grad():
        xg = x if x.requires_grad else x.detach().requires_grad_(True)
        grad = batch_jacobian(model, xg, create_graph=True)[:, group_a]
        normed = grad / (torch.norm(grad, dim=1, keepdim=True) + 1e-6)
        rows = []
        for a in range(len(group_a)):
            if normed.requires_grad:
                (g,) = torch.autograd.grad(normed[:, a].sum(), xg, create_graph=create_graph,
                                           retain_graph=True, allow_unused=True)
            else:
                g = None
            rows.append(torch.zeros_like(xg) if g is None else g)
    return torch.stack(rows, dim=1)[:, :, group_b]


def get_dependence(model, x: torch.Tensor, group) -> torch.Tensor:
    """`[|A|, |B|]`: median over the batch of ``|batch_grad_normgrad| std(x_a) std(x_b)``:
    how much the direction of the gradient within ``group`` depends on the other inputs."""
    group_a = _check_group(group, x.shape[1])
    group_b = [i for i in range(x.shape[1]) if i not in group_a]
    dep = batch_grad_normgrad(model, x, group_a)
    std = torch.std(x, dim=0)
    dep = dep * std[None, group_a, None] * std[None, None, group_b]
    return torch.median(torch.abs(dep), dim=0)[0]


def test_symmetry(model, x: torch.Tensor, group, dependence_th: float = 1e-3) -> bool:
    """pykan's ``test_symmetry``: True when f depends on the inputs of ``group`` only
    through one combination h(x_group) (the normalised gradient over the group does not
    depend on the other inputs). An empty or full group is trivially symmetric."""
    group = _check_group(group, x.shape[1])
    if len(group) in (0, x.shape[1]):
        return True
    return bool(torch.max(get_dependence(model, x, group)) < dependence_th)


def get_molecule(model, x: torch.Tensor, sym_th: float = 1e-3, verbose: bool = True) -> list:
    """pykan's ``get_molecule``: how the inputs combine hierarchically. Starting from
    single variables, each level greedily merges neighbouring groups ("atoms", in
    order) while :func:`test_symmetry` holds; the last level holds every variable.
    Returns the list of levels, each a list of groups, ordered so that each group of a
    level is a concatenation of groups of the level below."""
    n = x.shape[1]
    atoms = [[i] for i in range(n)]
    levels = [copy.deepcopy(atoms)]
    full_used = False
    level = 0
    last_count = n
    while True:
        molecules = []
        while atoms:
            current, taken = list(atoms[0]), [atoms[0]]
            closing_atom = None
            for atom in atoms[1:]:
                if verbose:
                    print(f"molecule {current}, trying {atom}")
                if (len(current) + len(atom) == n and not full_used and len(taken) > 1
                        and level > 0):
                    # everything would merge into one: keep the last atom apart (pykan)
                    full_used = True
                    closing_atom = atom
                    break
                if test_symmetry(model, x, current + atom, dependence_th=sym_th):
                    current += atom
                    taken.append(atom)
            molecules.append(current)
            if closing_atom is not None:
                molecules.append(closing_atom)
                taken.append(closing_atom)
            atoms = [a for a in atoms if a not in taken]
        if len(molecules) == last_count:  # no progress: close with everything
            levels.append([[i for m in molecules for i in m]])
            break
        levels.append(copy.deepcopy(molecules))
        last_count = len(molecules)
        if len(molecules) == 1:
            break
        atoms, level = molecules, level + 1
    for l in range(len(levels) - 1, 0, -1):
        levels[l - 1] = [part for molecule in levels[l] for part in _split(molecule, levels[l - 1])]
    return levels


def _split(molecule: list[int], parts: list[list[int]]) -> list[list[int]]:
    """``molecule`` cut, left to right, into the shortest prefixes found in ``parts``."""
    out, start = [], 0
    for end in range(1, len(molecule) + 1):
        if molecule[start:end] in parts:
            out.append(molecule[start:end])
            start = end
    return out


def get_tree_node(model, x: torch.Tensor, moleculess, sep_th: float = 1e-2,
                  skip_test: bool = True):
    """pykan's ``get_tree_node``: per level, the arity of each module (how many groups
    of the level below it joins) and its property: 'Id' (one group), 'GS' (generally
    separable), 'Add'/'Mul' (top level, additively/multiplicatively separable) or ''.
    ``skip_test`` skips the separability tests (only 'Id' and '')."""
    arities, properties = [], []
    for l in range(len(moleculess) - 1):
        arity_l, property_l = [], []
        for molecule in moleculess[l + 1]:
            groups = _split(molecule, moleculess[l])
            arity_l.append(len(groups))
            if len(groups) == 1:
                prop = "Id"
            else:
                prop = ""
                if not skip_test and test_general_separability(model, x, groups, threshold=sep_th):
                    prop = "GS"
                if l == len(moleculess) - 2 and not skip_test:
                    if test_separability(model, x, groups, mode="add", threshold=sep_th):
                        prop = "Add"
                    if test_separability(model, x, groups, mode="mul", threshold=sep_th):
                        prop = "Mul"
            property_l.append(prop)
        arities.append(arity_l)
        properties.append(property_l)
    return arities, properties


def _input_symbols(in_var, n: int):
    import sympy

    if in_var is None:
        return [sympy.Symbol(f"x_{i}") for i in range(1, n + 1)]
    if len(in_var) != n:
        raise ValueError(f"in_var: expected {n} names or symbols, got {len(in_var)}")
    return [v if isinstance(v, sympy.Basic) else sympy.Symbol(str(v)) for v in in_var]


def plot_tree(model, x: torch.Tensor, in_var=None, style: str = "tree", sym_th: float = 1e-3,
              sep_th: float = 1e-1, skip_sep_test: bool = False, verbose: bool = False):
    """pykan's ``plot_tree``: the module tree of :func:`get_molecule` drawn with
    matplotlib, inputs at the bottom. ``style='tree'``: separable modules as lines
    joining their groups ('+'/'*' marked), other modules as boxes; ``'box'``: every
    module a box labelled with its property. Returns the Figure."""
    if style not in ("tree", "box"):
        raise ValueError(f"style: expected 'tree' or 'box', got {style!r}")
    import matplotlib.pyplot as plt
    from sympy.printing import latex

    moleculess = get_molecule(model, x, sym_th=sym_th, verbose=verbose)
    arities, properties = get_tree_node(model, x, moleculess, sep_th=sep_th,
                                        skip_test=skip_sep_test)
    n = x.shape[1]
    symbols = _input_symbols(in_var, n)
    delta, pad, half_h, y0 = 1 / n, 0.3, 0.15, 0.5
    fig, ax = plt.subplots()

    def box(cx, cy, w, h):
        ax.plot([cx - w / 2, cx + w / 2, cx + w / 2, cx - w / 2, cx - w / 2],
                [cy - h / 2, cy - h / 2, cy + h / 2, cy + h / 2, cy - h / 2], color="k")

    below = [(i + 0.5) * delta for i in range(n)]
    for l in range(len(moleculess) - 1):
        centers, start, used = [], 0, 0
        for m, molecule in enumerate(moleculess[l + 1]):
            end = start + len(molecule)
            cx = (start + (end - 1 - start) / 2) * delta + delta / 2
            cy = (l + 0.5) * y0
            width = (end - start - 1 + 2 * pad) * delta
            prop, arity = properties[l][m], arities[l][m]
            if style == "box":
                box(cx, cy, width, 2 * half_h)
                ax.text(cx, cy, prop, fontsize=15, ha="center", va="center")
            elif prop in ("GS", "Add", "Mul"):
                for a in range(arity):
                    ax.plot([below[used + a], cx], [cy - half_h, cy + half_h], color="blue")
                if prop != "GS":
                    ax.text(cx, cy + half_h, "+" if prop == "Add" else "*", ha="center",
                            va="center", color="red", fontsize=40)
            elif prop == "Id":
                ax.plot([cx, cx], [cy - half_h, cy + half_h], color="black")
            else:
                box(cx, cy, width, 2 * half_h)
            used += arity
            ax.plot([cx, cx], [cy + half_h, cy + y0 - half_h], color="k")
            centers.append(cx)
            start = end
        below = centers
    for i in range(n):
        xi = (i + 0.5) * delta
        ax.plot([xi, xi], [0, y0 / 2 - half_h], color="k")
        ax.text(xi, -0.05 * (len(moleculess) - 1), f"${latex(symbols[moleculess[0][i][0]])}$",
                fontsize=20, ha="center")
    ax.set_xlim(0, 1)
    ax.axis("off")
    return fig


def test_symmetry_var(model, x: torch.Tensor, input_vars, symmetry_var) -> torch.Tensor:
    """pykan's ``test_symmetry_var``: the cosine similarity `[B]` between the gradient of
    f and that of the candidate combination ``symmetry_var`` (a sympy expression in
    ``input_vars``), over the variables it contains; prints whether more than 90% of the
    samples exceed 0.9 (symmetry suggested)."""
    import sympy

    from .sympy_torch import sympy_to_torch

    input_vars = list(input_vars)
    if len(input_vars) != x.shape[1]:
        raise ValueError(f"input_vars: expected {x.shape[1]} symbols, got {len(input_vars)}")
    h = sympy_to_torch(sympy.sympify(symmetry_var), input_vars)
    grad_f = batch_jacobian(model, x)
    grad_h = batch_jacobian(h, x)
    idx = [j for j, v in enumerate(input_vars) if v in symmetry_var.free_symbols]
    gf, gh = grad_f[:, idx], grad_h[:, idx]
    cossim = torch.abs(torch.sum(gf * gh, dim=1) / (torch.norm(gf, dim=1) * torch.norm(gh, dim=1)))
    ratio = float(torch.sum(cossim > 0.9)) / len(cossim)
    print(f"{100 * ratio}% data have more than 0.9 cosine similarity")
    print("suggesting symmetry" if ratio > 0.9 else "not suggesting symmetry")
    return cossim
