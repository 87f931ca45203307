"""``plot``: pykan 0.2.8's ``MultKAN.plot`` diagram of a :class:`pykan_fast.KAN`.

Nodes as black circles, one small panel per edge with its learned function drawn over the
sorted values its input took on ``cache_data``, lines input -> panel -> subnode, subnode
-> node (a multiplication node collects its ``arity`` subnodes), the same layout and
sizes as pykan's. Each edge's transparency is ``tanh(beta * score)`` (``metric``:
attribution ``edge_scores``, or the activation scales); black: spline only, red: symbolic
only, purple: both, invisible: masked out.

pykan renders every edge to a 400-dpi PNG file and pastes the images; here one matplotlib
``Figure`` (no pyplot state, no files but the one asked for) draws each panel's curve and
frame in its own axes, mapped into the panel's box by the limits an inset axes would
autoscale to (an inset axes per edge cost ~0.1 s each), and, with ``tick=True``, inset
axes that carry the ticks. :func:`save_edge_images` writes pykan's per-edge files (``<folder>/sp_<l>_<i>_<j>.png``),
which ``pykan_fast.kan``'s ``plot`` does on every call, as pykan. matplotlib is imported
only here (the ``plot`` extra).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .prune import activation_scales, attribution_scores, edge_activations, get_act, node_arities

__all__ = ["plot", "save_edge_images"]

_METRICS = ("backward", "forward_n", "forward_u")


def _edge_style(model, l: int, i: int, j: int) -> tuple[str, float]:
    """pykan's colour and visibility of edge (l, i, j) from its numerical and symbolic masks."""
    numeric = float(model.act_fun[l].mask[i, j]) > 0
    symbolic_fun = getattr(model, "symbolic_fun", None)
    symbolic = symbolic_fun is not None and float(symbolic_fun[l].mask[j, i]) > 0
    if symbolic:
        return ("purple" if numeric else "red"), 1.0
    return ("black", 1.0) if numeric else ("white", 0.0)


_EDGE_COLOURS = (("black", "spline"), ("red", "symbolic (fixed function)"),
                 ("purple", "spline and symbolic"))


def _fixed_function(model, l: int, i: int, j: int) -> str | None:
    """The name of edge (l, i, j)'s fixed symbolic function, or None if it has none."""
    symbolic_fun = getattr(model, "symbolic_fun", None)
    if symbolic_fun is None or float(symbolic_fun[l].mask[j, i]) == 0:
        return None
    return symbolic_fun[l].funs_name[j][i]


def _label(value) -> str:
    """A variable name: a string as it is, a sympy expression as LaTeX (pykan)."""
    if isinstance(value, str):
        return value
    from sympy import latex

    return f"${latex(value)}$"


def _sample_positions(n: int, max_points: int) -> torch.Tensor:
    """Indices of at most ``max_points`` of ``n`` sorted samples, first and last included."""
    if n <= max_points:
        return torch.arange(n)
    return torch.linspace(0, n - 1, max_points).round().long()


@torch.no_grad()
def plot(model, folder=None, beta: float = 3, metric: str = "backward", scale: float = 0.5,
         tick: bool = False, sample: bool = False, in_vars=None, out_vars=None, title=None,
         varscale: float = 1.0, path=None, max_points: int = 1000, max_elements: int = 1 << 20,
         label_functions: bool = False, legend: bool = False):
    """Draw ``model`` as pykan's ``MultKAN.plot`` does; return the matplotlib ``Figure``.

    ``metric``: ``"backward"`` (attribution ``edge_scores``), ``"forward_n"`` (each edge's
    std over ``cache_data`` divided by its input's std + 0.1) or ``"forward_u"`` (the std
    alone); edge alpha = ``tanh(beta * score)``. ``scale``: figure size factor;
    ``tick``: each panel's input/output range as ticks; ``sample``: the samples as dots;
    ``in_vars``/``out_vars``: input/output names (strings or sympy expressions);
    ``title``; ``varscale``: the names' font size factor. Each panel draws at most
    ``max_points`` of the sorted input samples. ``label_functions``: each fixed
    (symbolic) edge's panel is labelled with its function's name; ``legend``: a key of
    the edge colours (neither is in pykan's plot).

    Saves a PNG to ``path`` if given, else to ``folder/kan.png`` if ``folder`` is given
    (created if missing). Each edge's line segments and curve carry the ``gid``
    ``"edge_{l}_{i}_{j}"`` and its alpha (``artist.get_alpha()``).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("plot needs matplotlib: pip install pykan-fast[plot]") from error
    if metric not in _METRICS:
        raise ValueError(f"metric: expected one of {list(_METRICS)}, got {metric!r}")
    if not beta > 0:
        raise ValueError(f"beta: expected a positive number, got {beta!r}")
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 2:
        raise ValueError(f"max_points: expected an int >= 2, got {max_points!r}")
    if model.cache_data is None:
        raise ValueError("model: it has seen no data yet; run it on inputs (or fit) first")
    for name, names, n in (("in_vars", in_vars, model.width_in[0]),
                           ("out_vars", out_vars, model.width_in[-1])):
        if names is not None and len(names) != n:
            raise ValueError(f"{name}: expected {n} names, got {len(names)}")

    scales = activation_scales(model, max_elements)
    if metric == "backward":
        scores = attribution_scores(model, scales=scales)["edge_scores"]
    elif metric == "forward_n":
        scores = scales["acts_scale"]
    else:
        scores = scales["edge_actscale"]
    alpha = [np.tanh(beta * s.detach().cpu().double().numpy()) for s in scores]  # [out, in]
    acts = scales["acts"]

    width = np.array(model.width)
    width_in, width_out = np.array(model.width_in), np.array(model.width_out)
    y0, z0 = 0.3, 0.1  # heights: node -> subnode, subnode -> next node
    neuron_depth = len(width)
    min_spacing = 1 / np.maximum(np.max(width_out), 5)
    max_num_weights = np.max(width_in[:-1] * width_out[1:])
    y1 = 0.4 / np.maximum(max_num_weights, 5)  # half-size of an edge panel
    y2 = 0.15 / np.maximum(np.max(width_out), 5)  # size of the sum/product symbols
    step = y0 + z0

    fig = Figure(figsize=(10 * scale, 10 * scale * (neuron_depth - 1) * step))
    ax = fig.add_subplot()
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.1 * step, (neuron_depth - 1 + 0.1) * step)
    ax.axis("off")
    lw = 2 * scale
    points_per_unit = 72 * fig.get_figheight() / ((neuron_depth - 0.8) * step)  # vertical

    for l in range(neuron_depth):
        n = width_in[l]
        ax.scatter(1 / (2 * n) + np.arange(n) / n, np.full(n, l * step),
                   s=min_spacing ** 2 * 10000 * scale ** 2, color="black")
        if l == neuron_depth - 1:
            break
        n_next = width_out[l + 1]
        N = n * n_next
        for i in range(n):
            xs = torch.sort(acts[l][:, i])[0]
            xs = xs[_sample_positions(xs.shape[0], max_points).to(xs.device)]
            curves = edge_activations(model, l, i, xs).cpu().numpy()
            xs = xs.cpu().numpy()
            for j in range(n_next):
                color, visible = _edge_style(model, l, i, j)
                a = float(alpha[l][j, i]) * visible
                gid = f"edge_{l}_{i}_{j}"
                center = 1 / (2 * N) + (i * n_next + j) / N
                ax.plot([1 / (2 * n) + i / n, center], [l * step, l * step + y0 / 2 - y1],
                        color=color, lw=lw, alpha=a, gid=gid)
                ax.plot([center, 1 / (2 * n_next) + j / n_next],
                        [l * step + y0 / 2 + y1, l * step + y0], color=color, lw=lw, alpha=a, gid=gid)
                box = (center - y1, l * step + y0 / 2 - y1, 2 * y1)
                if tick:
                    _inset_panel(ax, box, xs, curves[:, j], color, a, scale, sample, gid)
                else:
                    _drawn_panel(ax, box, xs, curves[:, j], color, a, scale, sample, gid)
                name = _fixed_function(model, l, i, j)
                if label_functions and name is not None and a > 0:
                    ax.text(center + 1.15 * y1, l * step + y0 / 2, name, color=color,
                            fontsize=14 * scale, ha="left", va="center", gid=f"fun_{gid}")
        # subnodes -> nodes; a multiplication node gathers its consecutive subnodes
        n_add = width[l + 1][0]
        targets = list(range(n_add)) + [n_add + m for m, a in enumerate(node_arities(model, l + 1))
                                        for _ in range(a)]
        n_nodes = width_in[l + 1]
        for s_id, node in enumerate(targets):
            ax.plot([1 / (2 * n_next) + s_id / n_next, 1 / (2 * n_nodes) + node / n_nodes],
                    [l * step + y0, (l + 1) * step], color="black", lw=lw)
        # pykan's circled + and x symbols, about 2 * y2 data units across
        symbol = dict(fontsize=0.6 * 2 * y2 * points_per_unit, ha="center", va="center",
                      bbox=dict(boxstyle="circle,pad=0.15", fc="white", ec="black", lw=lw))
        for s_id in range(n_next):
            ax.text(1 / (2 * n_next) + s_id / n_next, l * step + y0, "+", gid=f"sum_{l + 1}_{s_id}",
                    **symbol)
        for m in range(width[l + 1][1]):
            node = n_add + m
            ax.text(1 / (2 * n_nodes) + node / n_nodes, (l + 1) * step, "×",
                    gid=f"mult_{l + 1}_{node}", **symbol)

    if in_vars is not None:
        n = width_in[0]
        for i, name in enumerate(in_vars):
            ax.text(1 / (2 * n) + i / n, -0.1, _label(name), fontsize=40 * scale * varscale,
                    ha="center", va="center")
    if out_vars is not None:
        n = width_in[-1]
        for i, name in enumerate(out_vars):
            ax.text(1 / (2 * n) + i / n, step * (neuron_depth - 1) + 0.15, _label(name),
                    fontsize=40 * scale * varscale, ha="center", va="center")
    if title is not None:
        ax.text(0.5, step * (neuron_depth - 1) + 0.3, title, fontsize=40 * scale,
                ha="center", va="center")

    if legend:
        from matplotlib.lines import Line2D

        ax.legend(handles=[Line2D([], [], color=c, lw=3 * scale, label=text)
                           for c, text in _EDGE_COLOURS],
                  loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=12 * scale,
                  title=f"edges (opacity: tanh({beta:g} x score))", title_fontsize=12 * scale,
                  frameon=False)

    if path is None and folder is not None:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "kan.png")
    if path is not None:
        if str(path).lower().endswith(".png"):
            from .png_canvas import FastPngCanvas

            FastPngCanvas(fig)
        fig.savefig(path, bbox_inches="tight", dpi=200)
    return fig


def _inset_panel(ax, box, xs, ys, color, alpha, scale, sample, gid):
    """An edge's panel as pykan draws it, an inset axes, with its ranges as ticks."""
    x0, y0, size = box
    panel = ax.inset_axes([x0, y0, size, size], transform=ax.transData)
    panel.plot(xs, ys, color=color, lw=5 * scale, alpha=alpha, gid=gid)
    if sample:
        panel.scatter(xs, ys, color=color, s=400 * scale ** 2 * size / 2, alpha=alpha)
    lo, hi = float(xs[0]), float(xs[-1])
    ylo, yhi = float(ys.min()), float(ys.max())
    panel.set_xticks([lo, hi], ["%2.f" % lo, "%2.f" % hi], fontsize=6 * scale)
    panel.set_yticks([ylo, yhi], ["%2.f" % ylo, "%2.f" % yhi], fontsize=6 * scale)
    panel.patch.set_alpha(0.0)
    for spine in panel.spines.values():
        spine.set_color(color)
        spine.set_alpha(alpha)
        spine.set_linewidth(1.5 * scale)


def _panel_limits(values: np.ndarray, margin: float) -> tuple[float, float]:
    """The view limits an axes autoscales to for these data (matplotlib's rule)."""
    from matplotlib.ticker import NullLocator

    lo, hi = NullLocator().nonsingular(float(values.min()), float(values.max()))
    delta = (hi - lo) * margin
    return lo - delta, hi + delta


def _drawn_panel(ax, box, xs, ys, color, alpha, scale, sample, gid):
    """The inset axes' picture drawn in ``ax`` itself: the curve mapped into the panel's
    box by the limits the inset would autoscale to and clipped to it, the frame a
    rectangle. A diagram's inset axes cost ~0.1 s each to make and draw."""
    import matplotlib as mpl
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import Bbox, TransformedBbox

    x0, y0, size = box
    (xlo, xhi), (ylo, yhi) = (_panel_limits(xs, mpl.rcParams["axes.xmargin"]),
                              _panel_limits(ys, mpl.rcParams["axes.ymargin"]))
    px = x0 + size * (xs - xlo) / (xhi - xlo)
    py = y0 + size * (ys - ylo) / (yhi - ylo)
    clip = TransformedBbox(Bbox.from_bounds(x0, y0, size, size), ax.transData)
    (line,) = ax.plot(px, py, color=color, lw=5 * scale, alpha=alpha, gid=gid, zorder=5)
    line.set_clip_box(clip)
    if sample:
        dots = ax.scatter(px, py, color=color, s=400 * scale ** 2 * size / 2, alpha=alpha,
                          zorder=5)
        dots.set_clip_box(clip)
    ax.add_patch(Rectangle((x0, y0), size, size, fill=False, edgecolor=color, alpha=alpha,
                           lw=1.5 * scale, zorder=5))


@torch.no_grad()
def save_edge_images(model, folder: str = "./figures", tick: bool = False, sample: bool = False,
                     scale: float = 0.5, dpi: int = 400) -> list[str]:
    """pykan 0.2.8's per-edge images: for every edge (l, i, j), masked-out ones included,
    ``<folder>/sp_<l>_<i>_<j>.png`` (folder created if missing), a 2 x 2 inch panel at
    ``dpi`` of the edge's activation (spline and symbolic parts) over the sorted values
    its input took on ``cache_data``: line width 5, pykan's colour (black: spline, red:
    symbolic, purple: both, white: masked out), frame in that colour; ``sample``: the
    samples as dots (size ``400 scale^2``); ``tick``: the input and output ranges as
    ticks (pykan's layout), else no ticks. Returns the paths written, in pykan's order.

    Written through matplotlib's object API (no pyplot state), one Figure redrawn for
    every edge, with a fast PNG writer (tools/png_canvas.py) encoding on a second thread
    while the next edge draws: the same pixels as pykan's files, larger files. All files
    are written when it returns.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("plot needs matplotlib: pip install pykan-fast[plot]") from error
    if model.cache_data is None:
        raise ValueError("model: it has seen no data yet; run it on inputs (or fit) first")
    acts = get_act(model)
    os.makedirs(folder, exist_ok=True)
    from .png_canvas import BackgroundPngWriter

    panel = _EdgeImage(Figure, tick, sample, scale)
    with BackgroundPngWriter() as writer:
        panel.canvas.writer = writer
        return _save_edges(model, acts, panel, folder, dpi)


def _save_edges(model, acts, panel, folder: str, dpi: int) -> list[str]:
    paths = []
    for l in range(model.depth):
        for i in range(model.width_in[l]):
            xs = torch.sort(acts[l][:, i])[0]
            # + 0.0: pykan adds the symbolic part (0 when off) to every edge, so a masked
            # edge is +0, never -0 (which would tick as "-0")
            curves = edge_activations(model, l, i, xs).cpu().double().numpy() + 0.0
            xs = xs.cpu().double().numpy()
            for j in range(model.width_out[l + 1]):
                color, visible = _edge_style(model, l, i, j)
                path = os.path.join(folder, f"sp_{l}_{i}_{j}.png")
                panel.save(path, xs, curves[:, j], color, visible, dpi)
                paths.append(path)
    return paths


class _EdgeImage:
    """One Figure and Axes redrawn for every edge image: a new Figure per edge cost about
    a third of each file's time. Every property an edge sets is set for every edge, and
    the limits are recomputed from the new data as a fresh ``plot`` would, so each file
    has the pixels of a figure made for it alone.

    Without ticks nothing outside the axes box is drawn (the curve and dots are clipped
    to it), so the box ``bbox_inches="tight"`` crops to is the same for every edge: it is
    computed by the first save at each dpi and reused (a tight crop costs a second pass
    over the figure)."""

    def __init__(self, figure_class, tick: bool, sample: bool, scale: float):
        from .png_canvas import FastPngCanvas

        self.fig = figure_class(figsize=(2.0, 2.0))
        self.canvas = FastPngCanvas(self.fig)
        self.tight_boxes = {}  # dpi -> the tight crop, tick=False only
        self.ax = self.fig.add_subplot()
        self.tick = tick
        if tick:
            self.ax.tick_params(axis="y", direction="in", pad=-22, labelsize=50)
            self.ax.tick_params(axis="x", direction="in", pad=-15, labelsize=50)
        else:
            self.ax.set_xticks([])
            self.ax.set_yticks([])
        self.ax.patch.set_linewidth(1.5)
        (self.line,) = self.ax.plot([], [], lw=5)
        self.dots = self.ax.scatter([], [], s=400 * scale ** 2) if sample else None

    def save(self, path: str, xs: np.ndarray, ys: np.ndarray, color: str, visible: float,
             dpi: int) -> None:
        ax = self.ax
        self.line.set_data(xs, ys)
        self.line.set_color(color)
        if self.dots is not None:  # before relim, which reads the dots' offsets too
            self.dots.set_offsets(np.column_stack([xs, ys]))
            self.dots.set_color(color)
        ax.relim()
        ax.autoscale_view()
        if self.tick:
            x_min, x_max = float(xs[0]), float(xs[-1])
            y_min, y_max = float(ys.min()), float(ys.max())
            ax.set_xticks([x_min, x_max], ["%2.f" % x_min, "%2.f" % x_max])
            ax.set_yticks([y_min, y_max], ["%2.f" % y_min, "%2.f" % y_max])
        ax.patch.set_edgecolor("black" if visible else "white")
        for spine in ax.spines.values():
            spine.set_color(color)
        box = None if self.tick else self.tight_boxes.get(dpi)
        self.fig.savefig(path, bbox_inches="tight" if box is None else box, dpi=dpi)
        if not self.tick and box is None and self.canvas.last_bbox_inches is not None:
            self.tight_boxes[dpi] = self.canvas.last_bbox_inches
