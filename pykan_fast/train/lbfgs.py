"""L-BFGS as pykan 0.2.8 patches it (its ``kan/LBFGS.py``), adapted from
``torch.optim.LBFGS`` (BSD-3-Clause, PyTorch contributors).

Why not ``torch.optim.LBFGS``: it keeps a curvature pair only when ``y.s > 1e-10``, a
constant it does not expose. pykan's copy makes it ``tolerance_ys`` (1e-32 in ``fit``),
and near the accuracy floor the pairs are that small: on the grid-extension run
(``experiments.grid_extension``, float64) torch's optimizer stalls at a test RMSE of
1.6e-4 at G=20 and a train RMSE of 3.4e-5 at G=200, pykan's reaches 3.4e-5 and 5.5e-9.
The other differences from torch 2.13, all as pykan: every line search may use up to 25
evaluations (torch: what is left of ``max_eval``). Unlike pykan, ``step`` does not reset
torch's global seed.

``flatten_params=True`` (what ``fit`` uses): at each step the parameters are made views of
one flat buffer (``p.data`` rebound where they are not already), so a trial point of the
line search is one ``add_`` on the buffer and its restore one ``copy_``, instead of a
split of the direction and an update per parameter: the same elementwise arithmetic as
pykan's per-parameter ``add_``, so the same iterates, bit for bit.
"""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer

__all__ = ["LBFGS"]


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clipped to bounds."""
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = math.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9,
                  max_ls=25):
    """Line search for a step satisfying the strong Wolfe conditions (minFunc's).

    Gradients are kept by reference where torch's copy clones them: every gradient here
    is a new tensor from ``obj_func`` (or the caller's), and nothing writes into one."""
    d_norm = float(d.abs().max())
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = float(g_new.dot(d))

    # Bracket an interval containing a point satisfying the Wolfe criteria.
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g = [g_prev, g_new]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g = [g_prev, g_new]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                               bounds=(min_step, max_step))
        t_prev, f_prev = tmp, f_new
        g_prev = g_new
        gtd_prev = gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = float(g_new.dot(d))
        ls_iter += 1

    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    # Zoom: shrink the bracket until a point satisfies the criteria.
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                               bracket[1], bracket_f[1], bracket_gtd[1])
        # Too close to a bracket end (twice, or outside): move 10% of the bracket inside.
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False

        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = float(g_new.dot(d))
        ls_iter += 1

        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos] = g_new
            bracket_gtd[high_pos] = gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos] = g_new
            bracket_gtd[low_pos] = gtd_new

    if len(bracket) == 1:
        return bracket_f[0], bracket_g[0], bracket[0], ls_func_evals
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


# Optimizer.add_param_group is wrapped in torch._disable_dynamo, whose first call imports
# torch._dynamo (3-4 s idle, more under load) though nothing here is compiled.
_ADD_PARAM_GROUP = getattr(Optimizer.add_param_group, "__wrapped__", Optimizer.add_param_group)


class LBFGS(Optimizer):
    """L-BFGS with pykan's ``tolerance_ys``: a curvature pair (s, y) is kept when
    ``y.s > tolerance_ys``. Otherwise ``torch.optim.LBFGS``'s arguments and behaviour;
    one parameter group; ``step(closure)`` runs up to ``max_iter`` iterations."""

    def __init__(self, params, lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 tolerance_ys: float = 1e-32, history_size: int = 100,
                 line_search_fn: str | None = None, flatten_params: bool = False):
        if not 0.0 <= lr:
            raise ValueError(f"lr: expected a non-negative learning rate, got {lr}")
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"line_search_fn: expected None or 'strong_wolfe', got {line_search_fn!r}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                        tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                        tolerance_ys=tolerance_ys, history_size=history_size,
                        line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("params: LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]
        self._numel_cache = None
        self._closure = self._flat_closure = self._split_cache = None
        self._flatten = bool(flatten_params)
        self._flat = None  # the buffer the parameters view, while flatten_params holds

    def add_param_group(self, param_group: dict) -> None:
        """Optimizer's, without the torch._dynamo import (see ``_ADD_PARAM_GROUP``)."""
        _ADD_PARAM_GROUP(self, param_group)

    def _numel(self) -> int:
        if self._numel_cache is None:
            self._numel_cache = sum(p.numel() for p in self._params)
        return self._numel_cache

    def _gather_flat_grad(self) -> torch.Tensor:
        views = []
        for p in self._params:
            if p.grad is None:
                views.append(p.new_zeros(p.numel()))
            elif p.grad.is_sparse:
                views.append(p.grad.to_dense().view(-1))
            else:
                views.append(p.grad.view(-1))
        return torch.cat(views, 0)

    def _flat_views(self) -> list[torch.Tensor]:
        """1-D views of the parameters, made at each step: a grid update between steps
        replaces a parameter's storage (``.data =``)."""
        return [p.view(-1) for p in self._params]

    def _split(self, flat: torch.Tensor):
        """``flat`` split into the parameters' sizes. The line search applies the same
        direction and restores the same point at every evaluation, so the splits made
        within a step are kept, by tensor (views, not copies: the same values as
        splitting again; the dict holds the tensors, so their ids stay theirs)."""
        cached = self._split_cache.get(id(flat))
        if cached is not None:
            return cached[1]
        parts = torch.split(flat, self._sizes)
        self._split_cache[id(flat)] = (flat, parts)
        return parts

    def _flat_buffer(self):
        """The one buffer every parameter is a view of, in order (made so where they are
        not: a grid update between steps rebinds a parameter's ``.data``); None where the
        parameters differ in dtype or device, or one is sparse."""
        params = self._params
        first = params[0]
        if any(p.dtype != first.dtype or p.device != first.device or p.is_sparse
               for p in params):
            return None
        flat = self._flat
        if flat is not None and self._views_of(flat):
            return flat
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1) for p in params])
            offset = 0
            for p in params:
                p.data = flat[offset:offset + p.numel()].view_as(p)
                offset += p.numel()
        self._flat = flat
        return flat

    def _views_of(self, flat) -> bool:
        offset, ptr = 0, flat.untyped_storage().data_ptr()
        for p in self._params:
            if (p.untyped_storage().data_ptr() != ptr or p.storage_offset() != offset
                    or not p.is_contiguous()):
                return False
            offset += p.numel()
        return offset == flat.numel()

    def _add_grad(self, step_size, update) -> None:
        if self._flat is not None:
            self._flat.add_(update, alpha=step_size)
        else:
            torch._foreach_add_(self._views, self._split(update), alpha=step_size)

    def _clone_param(self):
        if self._flat is not None:
            return self._flat.clone()
        return torch.cat(self._views)

    def _set_param(self, params_data) -> None:
        if self._flat is not None:
            self._flat.copy_(params_data)
        else:
            torch._foreach_copy_(self._views, self._split(params_data))

    def _evaluate(self):
        """(loss as returned, the flat gradient) at the current parameters."""
        if self._flat_closure is not None:
            return self._flat_closure()
        loss = self._closure()
        return loss, self._gather_flat_grad()

    def _directional_evaluate(self, closure, x, t, d):
        self._add_grad(t, d)
        loss, flat_grad = self._evaluate()
        self._set_param(x)
        return float(loss), flat_grad

    @torch.no_grad()
    def step(self, closure, flat_closure=None):
        """One optimisation step; ``closure`` re-evaluates the model and returns the loss.

        ``flat_closure`` (optional): called instead of ``closure`` and returns ``(loss,
        flat gradient)``, the gradient as one 1-D tensor in the parameters' order, for a
        caller that computes it without autograd (``fit``'s fused evaluation); the
        iterates are those the closure would give for the same gradients."""
        self._closure = torch.enable_grad()(closure)
        self._flat_closure = flat_closure
        self._split_cache = {}
        try:
            return self._step()
        finally:
            self._closure = self._flat_closure = self._split_cache = None

    def _step(self):
        closure = self._closure
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        tolerance_ys, history_size = group["tolerance_ys"], group["history_size"]
        line_search_fn = group["line_search_fn"]

        if not self._flatten or self._flat_buffer() is None:
            self._flat = None
            self._views = self._flat_views()
            self._sizes = [v.numel() for v in self._views]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss, flat_grad = self._evaluate()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        if flat_grad.abs().max() <= tolerance_grad:
            return orig_loss

        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        H_diag = state.get("H_diag")
        prev_flat_grad, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            # Direction: steepest descent first, then the two-loop L-BFGS recursion.
            if state["n_iter"] == 1:
                d = flat_grad.neg()
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad.sub(prev_flat_grad)
                s = d.mul(t)
                ys = float(y.dot(s))
                if ys > tolerance_ys:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / float(y.dot(y))
                num_old = len(old_dirs)
                if "al" not in state:
                    state["al"] = [None] * history_size
                al = state["al"]
                q = flat_grad.neg()
                for i in range(num_old - 1, -1, -1):
                    al[i] = float(old_stps[i].dot(q)) * ro[i]
                    q.add_(old_dirs[i], alpha=-al[i])
                d = r = torch.mul(q, H_diag)
                for i in range(num_old):
                    be_i = float(old_dirs[i].dot(r)) * ro[i]
                    r.add_(old_stps[i], alpha=al[i] - be_i)

            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.clone(memory_format=torch.contiguous_format)
            else:
                prev_flat_grad.copy_(flat_grad)
            prev_loss = loss

            # Step length.
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / float(flat_grad.abs().sum())) * lr
            else:
                t = lr
            gtd = float(flat_grad.dot(d))
            if gtd > -tolerance_change:
                break

            ls_func_evals = 0
            if line_search_fn == "strong_wolfe":
                x_init = self._clone_param()

                def obj_func(x, t, d):
                    return self._directional_evaluate(closure, x, t, d)

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd)
                self._add_grad(t, d)
                opt_cond = flat_grad.abs().max() <= tolerance_grad
            else:
                self._add_grad(t, d)
                opt_cond = False
                if n_iter != max_iter:
                    loss, flat_grad = self._evaluate()
                    loss = float(loss)
                    opt_cond = flat_grad.abs().max() <= tolerance_grad
                    ls_func_evals = 1

            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if d.mul(t).abs().max() <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss
