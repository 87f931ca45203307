"""``MLP``: pykan 0.2.8's ``kan.MLP``, the multilayer perceptron its tutorials compare
KANs with: same constructor, parameter layout (``linears.{l}.weight`` `[out, in]`,
``linears.{l}.bias``), seeding (``torch.manual_seed(seed)`` before the layers, so the
same initial weights), SiLU between layers, recorded activations, attribution,
regulariser, swaps and ``fit`` (pykan's L-BFGS settings).

Differences from pykan 0.2.8: importing does not reseed torch's global generator
(pykan's module runs ``torch.manual_seed(0)`` on import); ``auto_swap`` computes the
connection cost from the weights alone without re-running the model for every trial
swap (pykan's extra forward and attribution do not enter the cost); ``fit`` takes
``progress`` (hide its bar) and ``threads`` (one thread for small problems by default).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["MLP"]


def _coordinates(n: int, device) -> torch.Tensor:
    """n points centred in n equal cells of [0, 1] (pykan's plot positions)."""
    return torch.linspace(0, 1, steps=n + 1, device=device)[:n] + 1 / (2 * n)


def _l1_entropy(vec: torch.Tensor, lamb_l1: float, lamb_entropy: float) -> torch.Tensor:
    """pykan's L1 + entropy penalty of one weight-like tensor (2-D: rows and columns)."""
    vec = torch.abs(vec)
    if vec.dim() == 2:
        p_row = vec / (torch.sum(vec, dim=1, keepdim=True) + 1)
        p_col = vec / (torch.sum(vec, dim=0, keepdim=True) + 1)
        entropy = (-torch.mean(torch.sum(p_row * torch.log2(p_row + 1e-4), dim=1))
                   - torch.mean(torch.sum(p_col * torch.log2(p_col + 1e-4), dim=0)))
    else:
        p = vec / (torch.sum(vec) + 1)
        entropy = -torch.sum(p * torch.log2(p + 1e-4))
    return lamb_l1 * torch.sum(vec) + lamb_entropy * entropy


class MLP(nn.Module):
    """An MLP of ``width`` `[n_0, ..., n_L]`: Linear layers with SiLU between them.

    ``save_act``: forward records ``acts`` (each layer's input), ``acts_scale`` (std over
    the batch of each hidden layer's input and of the output) and ``wa_forward`` (weights
    times the std of their inputs), which ``attribute``, ``reg`` and ``plot`` read.
    """

    def __init__(self, width, act: str = "silu", save_act: bool = True, seed: int = 0,
                 device="cpu"):
        super().__init__()
        if (not isinstance(width, (list, tuple)) or len(width) < 2
                or any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1
                       for w in width)):
            raise ValueError(f"width: expected a list of at least two positive ints, got {width!r}")
        if act != "silu":
            raise ValueError(f"act: only 'silu' is supported (pykan's), got {act!r}")
        torch.manual_seed(seed)
        self.width = [int(w) for w in width]
        self.depth = len(width) - 1
        self.linears = nn.ModuleList(nn.Linear(self.width[l], self.width[l + 1])
                                     for l in range(self.depth))
        self.act_fun = nn.SiLU()
        self.save_act = save_act
        self.acts = None
        self.cache_data = None
        self.device = device
        self.to(device)

    def to(self, *args, **kwargs):
        module = super().to(*args, **kwargs)
        if args and isinstance(args[0], (str, torch.device)):
            self.device = args[0]
        return module

    @property
    def w(self) -> list[torch.Tensor]:
        """The weight of every layer, `[out, in]`."""
        return [linear.weight for linear in self.linears]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.width[0]:
            raise ValueError(f"x: expected a tensor [batch, {self.width[0]}], got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        self.cache_data = x
        self.acts, self.acts_scale, self.wa_forward = [], [], []
        for l, linear in enumerate(self.linears):
            if self.save_act:
                scale = torch.std(x, dim=0)
                self.acts.append(x.clone())
                if l > 0:
                    self.acts_scale.append(scale)
                self.wa_forward.append(scale[None, :] * linear.weight)
            x = linear(x)
            if l < self.depth - 1:
                x = self.act_fun(x)
            elif self.save_act:
                self.acts_scale.append(torch.std(x, dim=0))
        return x

    def get_act(self, x=None) -> None:
        """Run the model with ``save_act`` on ``x`` (a tensor or a dataset dict; default:
        the last input)."""
        if isinstance(x, dict):
            x = x["train_input"]
        if x is None:
            if self.cache_data is None:
                raise ValueError("x: the model has seen no data; pass x")
            x = self.cache_data
        save_act, self.save_act = self.save_act, True
        try:
            self.forward(x)
        finally:
            self.save_act = save_act

    @torch.no_grad()
    def attribute(self) -> None:
        """pykan's MLP attribution: ``node_scores`` (per layer) and ``edge_scores``
        (`[out, in]`, also ``wa_backward``), propagated from the outputs down."""
        if not self.acts:
            self.get_act()
        node_score = torch.ones(self.width[-1], device=self.linears[0].weight.device)
        node_scores, edge_scores = [node_score], []
        for l in range(self.depth, 0, -1):
            edge_score = torch.abs(self.wa_forward[l - 1]) * (
                node_score / (self.acts_scale[l - 1] + 1e-4))[:, None]
            edge_scores.append(edge_score)
            # pykan divides by the input width's square root (its comment: improper for MLPs)
            node_score = torch.sum(edge_score, dim=0) / np.sqrt(self.width[l - 1])
            node_scores.append(node_score)
        self.node_scores = node_scores[::-1]
        self.edge_scores = edge_scores[::-1]
        self.wa_backward = self.edge_scores

    def reg(self, reg_metric: str, lamb_l1: float, lamb_entropy: float) -> torch.Tensor:
        """pykan's MLP regulariser on ``reg_metric``: 'w' (weights), 'act'
        (``wa_forward``), 'fa' (``wa_backward``, after :meth:`attribute`) or 'a'
        (``acts_scale``)."""
        sources = {"w": lambda: self.w, "act": lambda: self.wa_forward,
                   "fa": lambda: self.wa_backward, "a": lambda: self.acts_scale}
        if reg_metric not in sources:
            raise ValueError(f"reg_metric: expected one of {sorted(sources)}, got {reg_metric!r}")
        return sum(_l1_entropy(v, lamb_l1, lamb_entropy) for v in sources[reg_metric]())

    def get_reg(self, reg_metric: str, lamb_l1: float, lamb_entropy: float) -> torch.Tensor:
        return self.reg(reg_metric, lamb_l1, lamb_entropy)

    def fit(self, dataset: dict, opt: str = "LBFGS", steps: int = 100, log: int = 1,
            lamb: float = 0.0, lamb_l1: float = 1.0, lamb_entropy: float = 2.0, loss_fn=None,
            lr: float = 1.0, batch: int = -1, metrics=None, in_vars=None, out_vars=None,
            beta: float = 3, device="cpu", reg_metric: str = "w", display_metrics=None,
            progress: bool = True, threads="auto") -> dict:
        """Train as pykan's ``MLP.fit``: ``{'train_loss', 'test_loss', 'reg'}`` per step
        (the losses as RMSE), plus one list per function in ``metrics``. The regulariser
        (``lamb > 0``) needs ``save_act``. ``threads``: torch threads for the loop, as
        :func:`pykan_fast.train.fit.fit` ('auto': one for small problems, where a second
        thread only waits; an int; None: unchanged)."""
        from ..ops.threads import training_threads

        n_params = sum(p.numel() for p in self.parameters())
        batch_rows = dataset["train_input"].shape[0] if batch == -1 else batch
        with training_threads(threads, batch_rows * n_params):
            return self._fit(dataset, opt, steps, log, lamb, lamb_l1, lamb_entropy, loss_fn, lr,
                             batch, metrics, reg_metric, display_metrics, progress)

    def _fit(self, dataset, opt, steps, log, lamb, lamb_l1, lamb_entropy, loss_fn, lr, batch,
             metrics, reg_metric, display_metrics, progress) -> dict:
        from ..train.fit import _make_optimizer, _progress

        for key in ("train_input", "train_label", "test_input", "test_label"):
            if key not in dataset:
                raise ValueError(f"dataset: missing key {key!r}")
        if opt not in ("LBFGS", "Adam"):
            raise ValueError(f"opt: expected 'LBFGS' or 'Adam', got {opt!r}")
        if lamb > 0 and not self.save_act:
            print("setting lamb=0. If you want to set lamb > 0, set save_act=True")
        old_save_act = self.save_act
        if lamb == 0.0:
            self.save_act = False
        loss_fn = loss_fn if loss_fn is not None else (lambda a, b: torch.mean((a - b) ** 2))
        optimizer = _make_optimizer(opt, self.parameters(), lr)
        n_train, n_test = dataset["train_input"].shape[0], dataset["test_input"].shape[0]
        if batch == -1 or batch > n_train:
            batch_size, batch_size_test = n_train, n_test
        else:
            batch_size = batch_size_test = batch
        results = {"train_loss": [], "test_loss": [], "reg": []}
        metrics = list(metrics) if metrics is not None else []
        for metric in metrics:
            results[metric.__name__] = []
        state = {}

        def objective(train_id):
            pred = self.forward(dataset["train_input"][train_id].to(self.device))
            state["train"] = loss_fn(pred, dataset["train_label"][train_id].to(self.device))
            if self.save_act:
                if reg_metric == "fa":
                    self.attribute()
                state["reg"] = self.get_reg(reg_metric, lamb_l1, lamb_entropy)
            else:
                state["reg"] = torch.tensor(0.0)
            return state["train"] + lamb * state["reg"]

        bar, steps_iter = _progress(steps, progress)
        try:
            for step in steps_iter:
                if step == steps - 1 and old_save_act:
                    self.save_act = True
                train_id = np.random.choice(n_train, batch_size, replace=False)
                test_id = np.random.choice(n_test, batch_size_test, replace=False)
                if opt == "LBFGS":
                    def closure():
                        optimizer.zero_grad()
                        loss = objective(train_id)
                        loss.backward()
                        return loss
                    optimizer.step(closure)
                else:
                    loss = objective(train_id)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                with torch.no_grad():
                    test_loss = loss_fn(self.forward(dataset["test_input"][test_id].to(self.device)),
                                        dataset["test_label"][test_id].to(self.device))
                for metric in metrics:
                    results[metric.__name__].append(float(metric()))
                results["train_loss"].append(float(torch.sqrt(state["train"].detach())))
                results["test_loss"].append(float(torch.sqrt(test_loss)))
                results["reg"].append(float(state["reg"].detach()))
                if bar is not None and step % log == 0:
                    names = display_metrics or ["train_loss", "test_loss", "reg"]
                    for name in names:
                        if name not in results:
                            raise ValueError(f"display_metrics: {name!r} not recognized")
                    bar.set_description("".join(f"| {n}: {results[n][-1]:.2e} " for n in names) + "|")
        finally:
            if bar is not None:
                bar.close()
            self.save_act = old_save_act
        return results

    @property
    def connection_cost(self) -> torch.Tensor:
        """Sum over layers of ``|w[j, i]| * |pos_j - pos_i|`` (neurons spread evenly over
        [0, 1], as pykan's plot draws them)."""
        with torch.no_grad():
            cc = 0.0
            for linear in self.linears:
                t = torch.abs(linear.weight)
                rows = _coordinates(t.shape[0], t.device)
                cols = _coordinates(t.shape[1], t.device)
                cc = cc + torch.sum(torch.abs(rows[:, None] - cols[None, :]) * t)
        return cc

    def _check_swap(self, l: int, *ids: int) -> None:
        if isinstance(l, bool) or not isinstance(l, (int, np.integer)) or not 1 <= l < self.depth:
            raise ValueError(f"l: expected a hidden layer index in [1, {self.depth - 1}], got {l!r}")
        for name, i in zip(("i1", "i2"), ids):
            if not 0 <= int(i) < self.width[l]:
                raise ValueError(f"{name}: expected a neuron index in [0, {self.width[l]}), got {i!r}")

    @torch.no_grad()
    def swap(self, l: int, i1: int, i2: int) -> None:
        """Exchange hidden neurons ``i1`` and ``i2`` of layer ``l`` (the function is kept)."""
        self._check_swap(l, i1, i2)
        i1, i2 = int(i1), int(i2)
        order = [i2, i1]
        for t in (self.linears[l - 1].weight, self.linears[l - 1].bias):
            t[[i1, i2]] = t[order].clone()
        w = self.linears[l].weight
        w[:, [i1, i2]] = w[:, order].clone()

    def auto_swap_l(self, l: int) -> None:
        """Greedy: each neuron of layer ``l`` in turn goes to the place that lowers the
        connection cost most."""
        n = self.width[l]
        for i in range(n):
            costs = []
            for j in range(n):
                self.swap(l, i, j)
                costs.append(float(self.connection_cost))
                self.swap(l, i, j)
            self.swap(l, i, int(np.argmin(costs)))

    def auto_swap(self) -> None:
        """:meth:`auto_swap_l` on every hidden layer."""
        for l in range(1, self.depth):
            self.auto_swap_l(l)

    def tree(self, x=None, in_var=None, style: str = "tree", sym_th: float = 1e-3,
             sep_th: float = 1e-1, skip_sep_test: bool = False, verbose: bool = False):
        """The module tree of the learned function (:func:`pykan_fast.tools.hypothesis.plot_tree`)."""
        from ..tools.hypothesis import plot_tree

        return plot_tree(self, self.cache_data if x is None else x, in_var=in_var, style=style,
                         sym_th=sym_th, sep_th=sep_th, skip_sep_test=skip_sep_test,
                         verbose=verbose)

    def plot(self, beta: float = 3, scale: float = 1.0, metric: str = "w"):
        """pykan's MLP diagram: neurons as dots, weights ('w'), ``wa_forward`` ('act') or
        attribution ('fa') as lines (blue positive, red negative). Returns the Figure."""
        import matplotlib.pyplot as plt

        if metric not in ("w", "act", "fa"):
            raise ValueError(f"metric: expected 'w', 'act' or 'fa', got {metric!r}")
        if metric == "fa":
            self.attribute()
        elif metric == "act" and not self.acts:
            self.get_act()
        y0 = 0.5
        fig, ax = plt.subplots(figsize=(3 * scale, 3 * y0 * self.depth * scale))
        spacing = 1 / max(self.width)
        for j, n in enumerate(self.width):
            for i in range(n):
                ax.scatter(1 / (2 * n) + i / n, j * y0, s=spacing ** 2 * 5000 * scale ** 2,
                           color="black")
        for l, linear in enumerate(self.linears):
            p = {"w": linear.weight, "act": None, "fa": None}[metric]
            if p is None:
                p = (self.wa_forward if metric == "act" else self.wa_backward)[l]
            p = p.detach().cpu()
            n_out, n_in = p.shape
            for i in range(n_out):
                for j in range(n_in):
                    ax.plot([1 / (2 * n_out) + i / n_out, 1 / (2 * n_in) + j / n_in],
                            [y0 * (l + 1), y0 * l], lw=0.5 * scale,
                            alpha=float(np.tanh(beta * abs(float(p[i, j])))),
                            color="blue" if p[i, j] > 0 else "red")
        ax.set_ylim(-0.1 * y0, y0 * self.depth + 0.1 * y0)
        ax.set_xlim(-0.02, 1.02)
        ax.axis("off")
        return fig
