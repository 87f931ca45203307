"""Argument checks for the public entry points: clear ValueError/TypeError messages that
name the argument, raised before any kernel sees a pointer."""

from __future__ import annotations

import numbers
import weakref

import torch

from .kernel_codes import MAX_ORDER

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_order(k) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k: expected an int spline order, got {type(k).__name__}")
    if not 1 <= k <= MAX_ORDER:
        raise ValueError(f"k: expected 1 <= k <= {MAX_ORDER}, got {k}")
    return int(k)


def type_name(value) -> str:
    """``numpy.ndarray``, ``list``: the type as a user would write it."""
    cls = type(value)
    module = cls.__module__.split(".")[0]
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def check_tensor(name: str, value) -> torch.Tensor:
    """A TypeError naming ``name`` and the fix unless ``value`` is a tensor."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type_name(value)} "
                        f"(use torch.as_tensor({name}))")
    return value


_tensor = check_tensor

# The Tensor/Module method that converts to each dtype (for the suggested fix).
_DTYPE_METHOD = {torch.float16: "half", torch.bfloat16: "bfloat16", torch.float32: "float",
                 torch.float64: "double"}


def _dtype_fix(dtype: torch.dtype) -> str:
    method = _DTYPE_METHOD.get(dtype)
    return f"{method}()" if method else f"to({dtype})"


def check_like(name: str, x: torch.Tensor, ref: torch.Tensor, owner: str = "layer",
               var: str | None = None) -> None:
    """``x`` has ``ref``'s dtype and device (``ref``: a parameter of ``owner``), else an
    error that says which differs and how to fix it on either side (``var``: what to call
    x in the fix, default ``name``)."""
    var = name if var is None else var
    # Under torch.autocast low-precision activations are expected: kan_layer casts them.
    autocast = x.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(x.device.type)
    if x.dtype != ref.dtype and x.dtype in FLOAT_DTYPES and not autocast:
        have, want = str(x.dtype).replace("torch.", ""), str(ref.dtype).replace("torch.", "")
        raise TypeError(f"{name} is {have} but the {owner} is {want}: use "
                        f"{var}.{_dtype_fix(ref.dtype)} or {owner}.{_dtype_fix(x.dtype)}")
    if x.device != ref.device:
        raise ValueError(f"{name} is on {x.device} but the {owner} is on {ref.device}: use "
                         f"{var}.to('{ref.device}') or {owner}.to('{x.device}')")


def check_layer_args(x, grid, coef, scale_base, scale_sp, mask, k, check_values: bool = True) -> None:
    """Shapes, dtypes, devices and grid sanity for ``functional.kan_layer``.

    ``check_values=False`` skips the knot-value check, which reads the data (a compiled
    graph would break there); the C++ entry points check the knots again either way."""
    k = check_order(k)
    x = _tensor("x", x)
    if x.dim() != 2:
        raise ValueError(f"x: expected a 2-D tensor [batch, in], got shape {list(x.shape)}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"x: expected a floating-point tensor, got dtype {x.dtype}")
    grid = _tensor("grid", grid)
    coef = _tensor("coef", coef)
    if grid.dim() != 2:
        raise ValueError(f"grid: expected a 2-D tensor [in, n_knots], got shape {list(grid.shape)}")
    # The number of inputs is what two of x, grid and coef agree on (else x's): the one
    # that disagrees is named.
    coef_in = coef.shape[0] if coef.dim() == 3 else None
    in_dim = grid.shape[0] if grid.shape[0] == coef_in != x.shape[1] else x.shape[1]
    if grid.shape[0] != in_dim:
        raise ValueError(f"grid: expected shape [in={in_dim}, n_knots], got {list(grid.shape)}")
    if x.shape[1] != in_dim:
        raise ValueError(
            f"x: expected shape [batch, in={in_dim}] (the layer's inputs, grid.shape[0]), "
            f"got {list(x.shape)}"
        )
    n_knots = grid.shape[1]
    if n_knots < 2 * k + 2:
        raise ValueError(
            f"grid: expected at least 2k+2 = {2 * k + 2} knots per input (G >= 1 plus k "
            f"extension knots on each side), got {n_knots}"
        )
    n_basis = n_knots - k - 1
    if coef.dim() != 3 or coef.shape[0] != in_dim or coef.shape[2] != n_basis:
        raise ValueError(
            f"coef: expected shape [in={in_dim}, out, n_knots-k-1={n_basis}], got {list(coef.shape)}"
        )
    out_dim = coef.shape[1]
    for name, t in (("scale_base", scale_base), ("scale_sp", scale_sp), ("mask", mask)):
        t = _tensor(name, t)
        if tuple(t.shape) != (in_dim, out_dim):
            raise ValueError(f"{name}: expected shape [in={in_dim}, out={out_dim}], got {list(t.shape)}")
    params = (("grid", grid), ("coef", coef), ("scale_base", scale_base),
              ("scale_sp", scale_sp), ("mask", mask))
    # The parameters agree with each other and x differs: x is what the caller got wrong.
    if len({t.dtype for _, t in params}) == 1 and len({t.device for _, t in params}) == 1:
        check_like("x", x, grid)
    for name, t in params:
        if t.dtype != x.dtype:
            raise TypeError(f"{name}: expected dtype {x.dtype} like x, got {t.dtype}")
        if t.device != x.device:
            raise ValueError(f"{name}: expected device {x.device} like x, got {t.device}")
    if check_values:
        check_grid(grid)


# Grids that passed check_grid, by id: (weak reference, version counter, storage). A
# layer's grid changes only by assignment or in-place writes (which bump the version), so
# an unchanged one is not read again on every call (two reductions and a sync each).
_CHECKED_GRIDS: dict[int, tuple] = {}
_CHECKED_MAX = 256


def _grid_key(grid: torch.Tensor) -> tuple:
    return grid._version, grid.data_ptr(), grid.shape, grid.stride(), grid.device


def check_grid(grid: torch.Tensor) -> None:
    """Finite and sorted ascending along each row."""
    seen = _CHECKED_GRIDS.get(id(grid))
    if seen is not None and seen[0]() is grid and seen[1] == _grid_key(grid):
        return
    with torch.no_grad():
        if not bool(torch.isfinite(grid).all()):
            raise ValueError("grid: expected finite knots, found NaN or inf")
        if grid.shape[1] > 1 and bool((grid[:, 1:] < grid[:, :-1]).any()):
            raise ValueError("grid: expected each row sorted ascending")
    if len(_CHECKED_GRIDS) >= _CHECKED_MAX:
        _CHECKED_GRIDS.clear()
    try:
        _CHECKED_GRIDS[id(grid)] = (weakref.ref(grid), _grid_key(grid))
    except TypeError:  # a tensor subclass without weak references: check every time
        pass
