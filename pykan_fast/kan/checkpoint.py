"""pykan 0.2.8's checkpoint files, both ways: ``<path>_config.yml`` (constructor
arguments and the symbolic edges' function names), ``<path>_state`` (the state_dict
under pykan's parameter names) and ``<path>_cache_data`` (the last input).

pykan writes its YAML with ``yaml.dump``, so a numpy scalar or array in the config
(``grid_eps=np.float64(0.02)``, ``grid_range=np.array(...)``) becomes a
``!!python/object/apply`` tag that pykan's own ``yaml.safe_load`` refuses. The reader
here decodes those numpy tags (and nothing that would run code); the writer only ever
writes plain YAML types.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

__all__ = ["read_config", "write_config", "to_pykan_state", "from_pykan_state",
           "checkpoint_paths"]

_AFFINES = ("node_bias", "node_scale", "subnode_bias", "subnode_scale")


def checkpoint_paths(path) -> tuple[str, str, str]:
    """pykan's three file names for checkpoint ``path``."""
    path = str(path)
    return f"{path}_config.yml", f"{path}_state", f"{path}_cache_data"


def _yaml():
    try:
        import yaml
    except ImportError as error:
        raise ImportError("pykan checkpoints need pyyaml: pip install pyyaml") from error
    return yaml


def _numpy_loader():
    """A SafeLoader that also rebuilds the numpy scalars, dtypes and arrays yaml.dump
    writes for numpy objects (as plain Python numbers and lists)."""
    yaml = _yaml()

    class Loader(yaml.SafeLoader):
        pass

    def apply(loader, suffix, node):
        if isinstance(node, yaml.SequenceNode):
            args, state = loader.construct_sequence(node, deep=True), None
        else:
            fields = loader.construct_mapping(node, deep=True)
            args, state = fields.get("args", []), fields.get("state")
        name = suffix.rsplit(".", 1)[-1]
        if suffix.startswith("numpy") and name == "dtype":
            return np.dtype(args[0])
        if suffix.startswith("numpy") and name == "scalar":
            dtype, raw = args
            return np.frombuffer(raw, dtype=dtype)[0].item()
        if suffix.startswith("numpy") and name == "_reconstruct":
            _, shape, dtype, fortran, raw = state
            array = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")
            return array.tolist()
        raise ValueError(f"config: unsupported YAML tag python/object/apply:{suffix} "
                         "(only numpy scalars and arrays are decoded)")

    def name_tag(loader, suffix, node):
        return suffix  # only used as an argument of the numpy constructors above

    Loader.add_multi_constructor("tag:yaml.org,2002:python/object/apply:", apply)
    Loader.add_multi_constructor("tag:yaml.org,2002:python/name:", name_tag)
    Loader.add_constructor("tag:yaml.org,2002:python/tuple",
                           lambda loader, node: tuple(loader.construct_sequence(node, deep=True)))
    return Loader


def read_config(path) -> dict:
    """The config dict of a pykan checkpoint (numpy tags decoded)."""
    config_file = checkpoint_paths(path)[0]
    with open(config_file) as stream:
        config = _yaml().load(stream, Loader=_numpy_loader())
    if not isinstance(config, dict) or "width" not in config:
        raise ValueError(f"path: {config_file!r} is not a pykan checkpoint config")
    return config


def _plain(value):
    """numpy and torch values as plain Python (what pykan's safe_load can read)."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_config(model, path) -> None:
    """Write ``<path>_config.yml`` with the keys pykan 0.2.8's ``loadckpt`` reads."""
    if not isinstance(model.base_fun_name, str):
        raise ValueError("base_fun: only a named base function ('silu', 'identity', 'zero') "
                         "can be saved in a pykan checkpoint")
    nums = [layer.num for layer in model.act_fun]
    ks = [layer.k for layer in model.act_fun]
    config = dict(
        width=[list(w) for w in model.width],
        grid=nums[0] if len(set(nums)) == 1 else nums,
        k=ks[0] if len(set(ks)) == 1 else ks,
        mult_arity=model.mult_arity,
        base_fun_name=model.base_fun_name,
        symbolic_enabled=bool(model.symbolic_enabled),
        affine_trainable=bool(model.affine_trainable),
        grid_eps=model.grid_eps,
        grid_range=list(model.grid_range),
        sp_trainable=bool(model.sp_trainable),
        sb_trainable=bool(model.sb_trainable),
        state_id=int(getattr(model, "state_id", 0)),
        auto_save=bool(getattr(model, "auto_save", False)),
        ckpt_path=str(getattr(model, "ckpt_path", "./model")),
        round=int(getattr(model, "round", 0)),
        device=str(getattr(model, "device", model.act_fun[0].coef.device)),
    )
    config = {key: _plain(value) for key, value in config.items()}
    for l, sym in enumerate(model.symbolic_fun):
        config[f"symbolic.funs_name.{l}"] = [list(row) for row in sym.funs_name]
    with open(checkpoint_paths(path)[0], "w") as stream:
        _yaml().safe_dump(config, stream, default_flow_style=False)


def to_pykan_state(model) -> OrderedDict:
    """The model's state_dict under pykan's names and in pykan's order
    (``node_bias_0``, ..., ``act_fun.0.grid``, ..., ``symbolic_fun.0.mask``, ...)."""
    native = model.state_dict()
    state = OrderedDict()
    for l in range(model.depth):
        for name in _AFFINES:
            state[f"{name}_{l}"] = native[f"{name}.{l}"]
    for key, value in native.items():
        if key.startswith(("act_fun.", "symbolic_fun.")):
            state[key] = value
    return state


def from_pykan_state(state: dict) -> OrderedDict:
    """A pykan state_dict renamed to the native model's names (``node_bias.0``, ...)."""
    out = OrderedDict()
    for key, value in state.items():
        head, _, index = key.rpartition("_")
        if head in _AFFINES and index.isdigit():
            key = f"{head}.{index}"
        out[key] = value
    return out
