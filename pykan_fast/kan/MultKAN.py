"""pykan 0.2.8's ``kan.MultKAN``: ``MultKAN`` (alias ``KAN``), a subclass of the native
:class:`pykan_fast.KAN` with pykan's conventions where they differ from the native API:
pykan's constructor arguments (``save_act``, ``sparse_init``, ``auto_save``,
``first_init``, ``ckpt_path``, ``state_id``, ``round``, ``device``), checkpoints in
pykan's file format (``saveckpt``/``loadckpt``) with the history pykan keeps
(``log_history``, ``rewind``, ``checkout``, ``history``), ``fit``'s extra arguments and
return types, ``log_history`` on the editing methods, and a few of pykan's inspection
helpers. The numerics are the native model's (fused kernels).

One deliberate difference: ``auto_save`` is off by default (pykan writes ``./model/`` on
every construction and every edit); ``auto_save=True`` gives pykan's behaviour. With it
off the history is still kept, as pykan's default keeps it, but in a private temporary
folder (removed at exit, nothing printed): ``state_id`` advances and ``rewind`` /
``checkout`` / ``history`` work, so pykan scripts that rewind run unchanged.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings

import numpy as np
import torch

from ..nn.model import KAN as _NativeKAN
from . import checkpoint
from .utils import sparse_mask

__all__ = ["MultKAN", "KAN"]

_PRIVATE_FOLDERS: list[str] = []  # the history folders of models without auto_save


def _remove_private_folders() -> None:
    for folder in _PRIVATE_FOLDERS:
        shutil.rmtree(folder, ignore_errors=True)


def _private_folder() -> str:
    if not _PRIVATE_FOLDERS:
        atexit.register(_remove_private_folders)
    folder = tempfile.mkdtemp(prefix="pykan_fast_history_")
    _PRIVATE_FOLDERS.append(folder)
    return folder


class MultKAN(_NativeKAN):
    """pykan's ``MultKAN``: same constructor, methods and defaults (see the module
    docstring for ``auto_save``); ``dtype`` and ``backend`` are pykan_fast's extras."""

    def __init__(self, width=None, grid=3, k=3, mult_arity=2, noise_scale=0.3,
                 scale_base_mu=0.0, scale_base_sigma=1.0, base_fun="silu",
                 symbolic_enabled=True, affine_trainable=False, grid_eps=0.02,
                 grid_range=(-1, 1), sp_trainable=True, sb_trainable=True, seed=1,
                 save_act=True, sparse_init=False, auto_save=False, first_init=True,
                 ckpt_path="./model", state_id=0, round=0, device="cpu", dtype=None,
                 backend=None):
        super().__init__(width, grid=grid, k=k, mult_arity=mult_arity, noise_scale=noise_scale,
                         scale_base_mu=scale_base_mu, scale_base_sigma=scale_base_sigma,
                         base_fun=base_fun, symbolic_enabled=symbolic_enabled,
                         affine_trainable=affine_trainable, grid_eps=grid_eps,
                         grid_range=grid_range, sp_trainable=sp_trainable,
                         sb_trainable=sb_trainable, seed=seed, device=device, dtype=dtype,
                         backend=backend)
        if sparse_init:
            # pykan: the mask is sparse_mask and scale_sp is multiplied by it (no draws).
            with torch.no_grad():
                for layer in self.act_fun:
                    mask = sparse_mask(layer.in_dim, layer.out_dim).to(layer.mask)
                    layer.mask.data = mask
                    layer.scale_sp.data = layer.scale_sp.data * mask
        self.save_act = save_act
        self.auto_save = auto_save
        self.ckpt_path = ckpt_path
        self.round = round
        self.state_id = 0
        self.device = device
        self._history_dir = None  # auto_save off: the private history folder, once made
        if first_init:
            if auto_save:
                os.makedirs(ckpt_path, exist_ok=True)
                print(f"checkpoint directory created: {ckpt_path}")
                print("saving model version 0.0")
            else:
                self._history_dir = _private_folder()
            with open(self._history_file(), "w") as file:
                file.write(f"### Round {self.round} ###\n")
                file.write("init => 0.0\n")
            self.saveckpt(path=f"{self._history_root()}/0.0")
        else:
            self.state_id = state_id

    def to(self, *args, **kwargs):
        """``nn.Module.to``; records ``device`` as pykan does."""
        out = super().to(*args, **kwargs)
        device = args[0] if args and isinstance(args[0], (str, torch.device)) else kwargs.get("device")
        if device is not None:
            self.device = device
        return out

    @property
    def n_sum(self) -> list[int]:
        """Addition nodes of each hidden layer."""
        return [w[0] for w in self.width[1:-1]]

    @property
    def n_mult(self) -> list[int]:
        """Multiplication nodes of each hidden layer."""
        return [w[1] for w in self.width[1:-1]]

    # ---- bookkeeping: checkpoints and history ------------------------------------------

    def _history_root(self) -> str:
        """Where the history lives: ``ckpt_path`` with auto_save, else the private folder
        (made on first use for a model loaded from a checkpoint)."""
        if self.auto_save:
            return self.ckpt_path
        if getattr(self, "_history_dir", None) is None:
            self._history_dir = _private_folder()
            with open(f"{self._history_dir}/history.txt", "w") as file:
                file.write(f"### Round {self.round} ###\n")
        return self._history_dir

    def _history_file(self) -> str:
        return f"{self._history_root()}/history.txt"

    def _checkpoint(self, model_id: str) -> str:
        path = f"{self._history_root()}/{model_id}"
        if not os.path.exists(checkpoint.checkpoint_paths(path)[0]):
            raise ValueError(f"model_id: no checkpoint {model_id!r} in this model's history")
        return path

    def _adopt(self, new) -> "MultKAN":
        """``new`` (a model this one produced) as a MultKAN with this one's bookkeeping."""
        if not isinstance(new, MultKAN):
            new.__class__ = type(self)
        for name in ("save_act", "auto_save", "ckpt_path", "round", "state_id", "device",
                     "_history_dir"):
            setattr(new, name, getattr(self, name, None))
        return new

    def log_history(self, method_name: str) -> None:
        """Append ``method_name`` to the history file, advance ``state_id`` and save the
        checkpoint ``{round}.{state_id}``: in ``ckpt_path`` with ``auto_save`` (printing
        it, as pykan), else silently in the private history folder."""
        old = f"{self.round}.{self.state_id}"
        self.state_id = int(self.state_id) + 1
        new = f"{self.round}.{self.state_id}"
        with open(self._history_file(), "a") as file:
            file.write(f"{old} => {method_name} => {new}\n")
        self.saveckpt(path=f"{self._history_root()}/{new}")
        if self.auto_save:
            print(f"saving model version {new}")

    def saveckpt(self, path="model") -> None:
        """pykan's checkpoint files ``<path>_config.yml``, ``<path>_state``,
        ``<path>_cache_data`` (readable by pykan 0.2.8's ``loadckpt``)."""
        config_file, state_file, cache_file = checkpoint.checkpoint_paths(path)
        checkpoint.write_config(self, path)
        torch.save(checkpoint.to_pykan_state(self), state_file)
        torch.save(self.cache_data, cache_file)

    @staticmethod
    def loadckpt(path="model") -> "MultKAN":
        """The model in pykan checkpoint ``path`` (written by pykan 0.2.8 or by
        :meth:`saveckpt`). As pykan: ``round`` + 1, the generators reseeded with 1."""
        from ..tools.symbolic.library import get_symbolic

        config = checkpoint.read_config(path)
        _, state_file, cache_file = checkpoint.checkpoint_paths(path)
        state = checkpoint.from_pykan_state(torch.load(state_file, map_location="cpu",
                                                       weights_only=True))
        dtype = state["act_fun.0.coef"].dtype
        model = MultKAN(width=config["width"], grid=config["grid"], k=config["k"],
                        mult_arity=config["mult_arity"], base_fun=config["base_fun_name"],
                        symbolic_enabled=config["symbolic_enabled"],
                        affine_trainable=config["affine_trainable"],
                        grid_eps=config["grid_eps"], grid_range=config["grid_range"],
                        sp_trainable=config["sp_trainable"], sb_trainable=config["sb_trainable"],
                        state_id=config["state_id"], auto_save=config["auto_save"],
                        first_init=False, ckpt_path=config["ckpt_path"],
                        round=config["round"] + 1, device="cpu", dtype=dtype)
        model.load_state_dict(state)
        for l, sym in enumerate(model.symbolic_fun):
            for j, row in enumerate(config[f"symbolic.funs_name.{l}"]):
                for i, name in enumerate(row):
                    sym.set_function(i, j, name, get_symbolic(name))
        model.cache_data = torch.load(cache_file, map_location="cpu", weights_only=True)
        device = config.get("device", "cpu")
        if device != "cpu" and (not device.startswith("cuda") or torch.cuda.is_available()):
            model.to(device)
        return model

    def rewind(self, model_id: str) -> "MultKAN":
        """pykan's ``rewind``: start a new round and return checkpoint ``model_id``
        (``'{round}.{state}'``) of this model's ``ckpt_path``."""
        path = self._checkpoint(model_id)
        self.round += 1
        self.state_id = int(str(model_id).split(".")[-1])
        with open(self._history_file(), "a") as file:
            file.write(f"### Round {self.round} ###\n")
        self.saveckpt(path=f"{self._history_root()}/{self.round}.{self.state_id}")
        print(f"rewind to model version {self.round - 1}.{self.state_id}, renamed as "
              f"{self.round}.{self.state_id}")
        return self._same_history(MultKAN.loadckpt(path=path))

    def checkout(self, model_id: str) -> "MultKAN":
        """Checkpoint ``model_id`` of the history, without changing this model's state."""
        return self._same_history(MultKAN.loadckpt(path=self._checkpoint(model_id)))

    def _same_history(self, model: "MultKAN") -> "MultKAN":
        model._history_dir = self._history_dir
        return model

    def history(self, k="all") -> None:
        """Print the last ``k`` lines (all: ``'all'``) of the history file."""
        with open(self._history_file()) as file:
            lines = file.readlines()
        if k != "all":
            lines = lines[-int(k):]
        for line in lines:
            print(line.rstrip("\n"))

    # ---- training ----------------------------------------------------------------------

    def _native_fit(self, dataset, **kwargs) -> dict:
        return super().fit(dataset, **kwargs)

    def fit(self, dataset, opt="LBFGS", steps=100, log=1, lamb=0., lamb_l1=1., lamb_entropy=2.,
            lamb_coef=0., lamb_coefdiff=0., update_grid=True, grid_update_num=10, loss_fn=None,
            lr=1., start_grid_update_step=-1, stop_grid_update_step=50, batch=-1, metrics=None,
            save_fig=False, in_vars=None, out_vars=None, beta=3, save_fig_freq=1,
            img_folder="./video", singularity_avoiding=False, y_th=1000.,
            reg_metric="edge_forward_spline_n", display_metrics=None, **kwargs) -> dict:
        """pykan's ``MultKAN.fit`` (see :func:`pykan_fast.train.fit.fit`); ``save_fig``
        saves the network diagram every ``save_fig_freq`` steps as
        ``{img_folder}/{step}.jpg``. The losses are 0-d numpy arrays, as pykan's."""
        if lamb > 0 and not self.save_act:
            print("setting lamb=0. If you want to set lamb > 0, set self.save_act=True")
            lamb = 0.0
        metrics = list(metrics) if metrics is not None else []
        recorder = None
        if save_fig:
            if isinstance(save_fig_freq, bool) or not isinstance(save_fig_freq, int) or save_fig_freq < 1:
                raise ValueError(f"save_fig_freq: expected a positive int, got {save_fig_freq!r}")
            os.makedirs(img_folder, exist_ok=True)
            recorder = _FigureRecorder(self, img_folder, save_fig_freq, in_vars, out_vars, beta)
            metrics.append(recorder)
        # pykan carries on through a NaN/inf loss (its parameters turn NaN; Example_9
        # shows it): skip such steps, as the native fit's on_nonfinite="skip", one warning
        kwargs.setdefault("on_nonfinite", "skip")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = self._native_fit(dataset, opt=opt, steps=steps, log=log, lamb=lamb,
                                       lamb_l1=lamb_l1, lamb_entropy=lamb_entropy,
                                       lamb_coef=lamb_coef, lamb_coefdiff=lamb_coefdiff,
                                       update_grid=update_grid, grid_update_num=grid_update_num,
                                       loss_fn=loss_fn, lr=lr,
                                       start_grid_update_step=start_grid_update_step,
                                       stop_grid_update_step=stop_grid_update_step, batch=batch,
                                       metrics=metrics, reg_metric=reg_metric,
                                       display_metrics=display_metrics,
                                       singularity_avoiding=singularity_avoiding, y_th=y_th,
                                       **kwargs)
        skipped = [w for w in caught if str(w.message).startswith("fit: step ")]
        for w in caught:
            if w not in skipped:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if skipped:
            warnings.warn(f"fit: {len(skipped)} of {steps} steps skipped (non-finite loss or "
                          f"gradient), the first: {skipped[0].message}", RuntimeWarning, stacklevel=2)
        if recorder is not None:
            results.pop(recorder.__name__, None)
        dtype = self.act_fun[0].coef.detach().cpu().numpy().dtype
        for key in ("train_loss", "test_loss", "reg"):
            results[key] = [np.asarray(v, dtype=dtype) for v in results[key]]
        self.log_history("fit")
        return results

    def get_reg(self, reg_metric="edge_forward_spline_n", lamb_l1=1., lamb_entropy=2.,
                lamb_coef=0., lamb_coefdiff=0.):
        """pykan's alias of :meth:`reg`."""
        return self.reg(reg_metric, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff)

    # ---- editing (pykan logs each edit in the history) ----------------------------------

    def refine(self, new_grid=None, grid=None):
        """pykan's ``refine``; ``grid=`` is accepted as another name for ``new_grid``
        (older pykan tutorials call ``refine(grid=G)``)."""
        if (new_grid is None) == (grid is None):
            raise TypeError("refine: pass the new number of grid intervals once (new_grid)")
        new = self._adopt(super().refine(new_grid if grid is None else grid))
        self.log_history("refine")
        new.state_id = self.state_id
        return new

    def prune_node(self, threshold=1e-2, mode="auto", active_neurons_id=None, log_history=True):
        new = self._adopt(super().prune_node(threshold, mode, active_neurons_id))
        if log_history:
            self.log_history("prune_node")
            new.state_id = self.state_id
        return new

    def prune_edge(self, threshold=3e-2, log_history=True) -> None:
        super().prune_edge(threshold)
        if log_history:
            self.log_history("prune_edge")

    def prune(self, node_th=1e-2, edge_th=3e-2):
        new = self.prune_node(node_th, log_history=False)
        new.prune_edge(edge_th, log_history=False)
        new.log_history("prune")
        return new

    def prune_input(self, threshold=1e-2, active_inputs=None, log_history=True):
        new = self._adopt(super().prune_input(threshold, active_inputs))
        if log_history:
            self.log_history("prune_input")
            new.state_id = self.state_id
        return new

    def remove_edge(self, l, i, j, log_history=True) -> None:
        super().remove_edge(l, i, j)
        if log_history:
            self.log_history("remove_edge")

    def remove_node(self, l, i, mode="all", log_history=True) -> None:
        super().remove_node(l, i, mode)
        if log_history:
            self.log_history("remove_node")

    def fix_symbolic(self, l, i, j, fun_name, fit_params_bool=True, a_range=(-10, 10),
                     b_range=(-10, 10), verbose=True, random=False, log_history=True):
        r2 = super().fix_symbolic(l, i, j, fun_name, fit_params_bool, a_range, b_range,
                                  verbose, random)
        if log_history:
            self.log_history("fix_symbolic")
        return r2

    def unfix_symbolic(self, l, i, j, log_history=True) -> None:
        super().unfix_symbolic(l, i, j)
        if log_history:
            self.log_history("unfix_symbolic")

    def unfix_symbolic_all(self, log_history=True) -> None:
        for l in range(self.depth):
            for i in range(self.width_in[l]):
                for j in range(self.width_out[l + 1]):
                    self.unfix_symbolic(l, i, j, log_history=log_history)

    def auto_symbolic(self, a_range=(-10, 10), b_range=(-10, 10), lib=None, verbose=1,
                      weight_simple=0.8, r2_threshold=0.0) -> None:
        super().auto_symbolic(a_range, b_range, lib, verbose, weight_simple, r2_threshold)
        self.log_history("auto_symbolic")

    def symbolic_formula(self, var=None, normalizer=None, output_normalizer=None,
                         simplify=False, n_digit=None):
        """pykan's ``symbolic_formula``: an edge still on its spline counts only by its
        symbolic branch (0 unless fixed), as pykan counts it (silently there; here with a
        warning naming the edges). The native ``KAN`` raises instead."""
        from ..tools.symbolic.formula import symbolic_formula

        return symbolic_formula(self, var=var, normalizer=normalizer,
                                output_normalizer=output_normalizer, simplify=simplify,
                                n_digit=n_digit, spline_edges="zero")

    def attribute(self, l=None, i=None, out_score=None, plot=True):
        """pykan's ``attribute`` (bar chart by default when ``l`` and ``i`` are given)."""
        return super().attribute(l, i, out_score, plot=plot)

    def plot(self, folder="./figures", beta=3, metric="backward", scale=0.5, tick=False,
             sample=False, in_vars=None, out_vars=None, title=None, varscale=1.0, **kwargs):
        """pykan's network diagram, drawn as pyplot's current figure (so ``plt.savefig``
        and notebooks' inline display work as with pykan); returns the figure. As
        pykan, every edge's activation is also written to ``folder`` as
        ``sp_<l>_<i>_<j>.png`` (:func:`pykan_fast.tools.plot.save_edge_images`);
        ``folder=None`` skips them. The diagram itself is saved only to ``path=``."""
        from ..tools.plot import save_edge_images

        in_vars = self._kept_input_names(in_vars)
        fig = super().plot(folder=None, beta=beta, metric=metric, scale=scale, tick=tick,
                           sample=sample, in_vars=in_vars, out_vars=out_vars, title=title,
                           varscale=varscale, **kwargs)
        if folder is not None:
            save_edge_images(self, folder, tick=tick, sample=sample, scale=scale)
        return _show_on_pyplot(fig)

    def _kept_input_names(self, in_vars):
        """After ``prune_input`` (``input_id`` set), names given for all the original
        inputs label the kept ones, ``in_vars[input_id[i]]``. pykan labels them with the
        first ``width_in[0]`` names, wrong when an input before the last was pruned
        (README, differences)."""
        if in_vars is None or self.input_id is None or len(in_vars) == self.width_in[0]:
            return in_vars
        ids = [int(i) for i in self.input_id]
        return [in_vars[i] for i in ids] if len(in_vars) > max(ids) else in_vars


KAN = MultKAN


def _show_on_pyplot(fig):
    """Register a matplotlib Figure with pyplot as its current figure."""
    import matplotlib.pyplot as plt

    return plt.figure(FigureClass=lambda *args, **kwargs: fig)


class _FigureRecorder:
    """A ``fit`` metric that saves the diagram every ``freq`` steps (pykan's save_fig)."""

    __name__ = "_save_fig"

    def __init__(self, model, folder, freq, in_vars, out_vars, beta):
        self.model, self.folder, self.freq = model, folder, freq
        self.in_vars, self.out_vars, self.beta = in_vars, out_vars, beta
        self.step = 0

    def __call__(self) -> float:
        if self.step % self.freq == 0:
            from ..tools.plot import save_edge_images

            save_edge_images(self.model, self.folder)  # pykan's plot(folder=img_folder)
            fig = _NativeKAN.plot(self.model, in_vars=self.in_vars, out_vars=self.out_vars,
                                  title=f"Step {self.step}", beta=self.beta)
            fig.savefig(os.path.join(self.folder, f"{self.step}.jpg"), bbox_inches="tight", dpi=200)
        self.step += 1
        return 0.0
