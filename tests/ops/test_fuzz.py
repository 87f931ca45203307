"""Property-based fuzzing (hypothesis) of the compiled CPU kernels.

Two entry points are driven with random shapes (0 included), dtypes, memory layouts,
knot vectors (uniform, non-uniform, clustered, duplicated, flat, unsorted, non-finite),
samples (inside, on and next to knots, outside, NaN, +-inf, +-1e30, +-1e300), orders
k = 0..16 and grid sizes G = 0..2000, and thread counts 0/1/2:

- ``pykan_fast.functional.kan_layer(..., backend="cpu")`` against ``backend="torch"`` (the
  pure-torch reference, pykan 0.2.8's mathematics);
- the raw ``pykan_fast._C.forward`` / ``backward`` on numpy arrays, against the same
  reference mathematics (``pykan_fast.ops.reference.coef2curve``).

Every call must either match the reference -- outputs and gradients (via
``torch.autograd.grad``): float64 to 1e-9 of the largest reference entry, float32 to 1e-4
of it (or twice the float32 reference's own error, where float32 cannot do better, as in
tests/support.py's ``compare_with_reference``); NaN and +-inf at the same places -- or raise
ValueError/TypeError. An argument predicate, written here from the documented checks
(bindings.cpp, checks.py), says which: a valid call that raises fails, and so does an
invalid one that runs.

Where the reference is known not to be the thing to match, the comparison is narrowed:

- inputs (grid rows) with a repeated knot: the reference's dL/dx is NaN for every sample
  (0/0 inside B_batch's backward); the kernels give the analytic derivative. Those
  columns of dL/dx are checked finite (at finite x) instead.
- finite x outside ``[t_0, t_last)``: every basis is 0 there, so dL/dx is the base
  function's part alone. The reference's backward can overflow there (products of
  (x - t_j)/(t_{j+p} - t_j) times zero bases: NaN already at |x| ~ 1e13 in float32, k=3),
  so the expected value is that base-only derivative, computed by autograd.
- per-row (y) and per-input ([in, out] gradients) scales: samples of magnitude 1e30 or
  1e300 would otherwise set the scale of the whole comparison.

Examples are derandomized (reproducible in CI) and few: the whole file runs in well under
a minute on two cores.
"""

from __future__ import annotations

import faulthandler
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import pykan_fast as pf
from pykan_fast._compiled import C
from pykan_fast.ops.grid import uniform_grid
from pykan_fast.ops.kernel_codes import MAX_ORDER
from pykan_fast.ops.reference import coef2curve, resolve_base_fun
from support import FUZZ_RTOL, LEAVES, assert_close, base_function, make_case, run_layer

HUGE = 1e20  # |x| at least this: a sample of its own scale (the 1e30 / 1e300 specials)
# support.KNOTS, weighted ("uniform" is pykan's grid, "uniform-span" equal steps elsewhere).
GRID_KINDS = ("uniform", "uniform-span", "uniform-span", "jitter", "random", "random",
              "clustered", "duplicates", "duplicates", "flat")
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}
RTOL = {np.float64: FUZZ_RTOL[torch.float64], np.float32: FUZZ_RTOL[torch.float32]}


def fuzz(max_examples: int):
    return settings(max_examples=max_examples, deadline=None, derandomize=True,
                    database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def _hang_guard():
    """A hang (or a deadlock in the OpenMP regions) ends the run with every thread's
    traceback instead of stalling CI. Generous: sanitizer builds run several times slower."""
    faulthandler.dump_traceback_later(300, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


# ---- problems ------------------------------------------------------------------------


@dataclass
class Problem:
    """One layer call's values, already rounded to ``dtype`` (numpy arrays)."""

    dtype: type
    k: int
    grid_kind: str
    x: np.ndarray      # [B, in]
    grid: np.ndarray   # [in, n_knots]
    coef: np.ndarray   # [in, out, n_knots - k - 1]
    scale_base: np.ndarray
    scale_sp: np.ndarray
    mask: np.ndarray   # [in, out]
    dy: np.ndarray     # [B, out], the upstream gradient

    @property
    def batch(self):
        return self.x.shape[0]

    @property
    def in_dim(self):
        return self.x.shape[1]

    @property
    def out_dim(self):
        return self.coef.shape[1]

    @property
    def n_knots(self):
        return self.grid.shape[1]

    def dup_inputs(self) -> np.ndarray:
        """[in] bool: the inputs whose knots repeat (adjacent equal knots)."""
        if self.n_knots < 2:
            return np.zeros(self.in_dim, bool)
        return (np.diff(self.grid, axis=1) == 0).any(axis=1)

    def outside(self) -> np.ndarray:
        """[B, in] bool: finite samples where every basis is 0 (x < t_0 or x >= t_last)."""
        lo, hi = self.grid[:, 0], self.grid[:, -1]
        with np.errstate(invalid="ignore"):
            return np.isfinite(self.x) & ((self.x < lo) | (self.x >= hi))

    def huge(self) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.isfinite(self.x) & (np.abs(self.x) >= HUGE)

    def describe(self) -> str:
        return (f"{np.dtype(self.dtype).name} B={self.batch} in={self.in_dim} "
                f"out={self.out_dim} n_knots={self.n_knots} k={self.k} grid={self.grid_kind}")


@st.composite
def problems(draw, dtypes=(np.float64, np.float32), ks=None, gs=None, profile=None,
             specials=True, scales=(1.0, 1.0, 1e-3, 1e3, 1e-12, 1e12)):
    """A Problem. ``ks``/``gs``: strategies for k and G (defaults: valid ones); G = 0 gives
    2k+1 knots. Profiles: 'wide' (many inputs/outputs, small G), 'long' (G in the
    hundreds to ~2000, tiny in/out), 'chunked' (batch > 2048: the backward's batch
    chunks)."""
    dtype = draw(st.sampled_from(dtypes))
    profile = profile or draw(st.sampled_from(("wide", "wide", "wide", "long", "chunked")))
    if profile == "wide":
        batch = draw(st.sampled_from((0, 1, 2, 3, 5, 8, 17, 33, 70, 257, 513, 600)))
        in_dim = draw(st.sampled_from((0, 1, 2, 3, 4, 5, 8, 9, 16, 17)))
        out_dim = draw(st.sampled_from((0, 1, 2, 3, 5, 8, 9, 16, 17, 33, 64, 67)))
        g_default = st.integers(1, 12)
    elif profile == "long":
        batch = draw(st.sampled_from((0, 1, 3, 17, 64)))
        in_dim = draw(st.integers(0, 2))
        out_dim = draw(st.integers(0, 3))
        # n_knots 511..513: around the kernels' largest sorted (span-grouped) grid.
        g_default = st.one_of(st.integers(100, 2000), st.sampled_from((-511, -512, -513)))
    else:
        batch = draw(st.sampled_from((2049, 2100, 4100)))
        in_dim = draw(st.integers(1, 3))
        out_dim = draw(st.integers(1, 4))
        g_default = st.integers(1, 6)
    k = draw(ks if ks is not None else st.one_of(st.integers(1, 5), st.integers(6, MAX_ORDER)))
    num = draw(gs if gs is not None else g_default)
    if num < 0:  # a knot count, not a G
        num = -num - 2 * k - 1
    kind = draw(st.sampled_from(GRID_KINDS))
    scale = draw(st.sampled_from(scales))
    p_special = draw(st.sampled_from((0.0, 0.0, 0.05, 0.3))) if specials else 0.0
    mask_kind = draw(st.sampled_from(("ones", "binary", "float")))
    seed = draw(st.integers(0, 2**32 - 1))

    case = make_case(batch, in_dim, out_dim, num, k, TORCH_DTYPE[dtype], kind, seed,
                     outside=0.3, on_knots=0.15, next_to_knots=0.1, specials=p_special,
                     pin=False, scale=scale, mask=mask_kind)
    arrays = {n: t.numpy() for n, t in case.items()}
    return Problem(dtype=dtype, k=k, grid_kind=kind, **arrays)


# ---- comparison ----------------------------------------------------------------------


def _where(mask: torch.Tensor):
    return torch.nonzero(mask)[0].tolist()


def _k1_nonfinite(k: int, finite_x: torch.Tensor) -> torch.Tensor:
    """Entries of dL/dx not compared: NaN/inf x at k=1, where the reference's backward
    stays finite (no order-1 product reaches x through a NaN) but the kernels give NaN
    -- a known deviation, see test_k1_grad_x_at_nonfinite_x."""
    return ~finite_x if k == 1 else torch.zeros_like(finite_x)


def _row_groups(huge: np.ndarray, shape) -> torch.Tensor:
    """[B, out] groups: samples with a huge x, the others."""
    rows = torch.from_numpy(huge.any(axis=1).astype(np.int64))
    return rows[:, None].expand(*shape)


def _input_groups(huge: np.ndarray, shape) -> torch.Tensor:
    """[in, ...] groups: inputs with a huge sample, the others."""
    cols = torch.from_numpy(huge.any(axis=0).astype(np.int64))
    return cols.reshape(-1, *([1] * (len(shape) - 1))).expand(*shape)


# ---- the functional entry point ------------------------------------------------------

BASE_FUNS = ("silu", "silu", "identity", "zero", "tanh")


def _strided(t: torch.Tensor, kind: str) -> torch.Tensor:
    """The same values in another memory layout (a view, never contiguous when it can
    be otherwise)."""
    if kind == "contiguous" or t.dim() == 0:
        return t.contiguous()
    if kind == "transposed":
        dims = list(range(t.dim()))[::-1]
        return t.permute(*dims).contiguous().permute(*dims)
    if kind == "sliced":
        big = torch.zeros(*t.shape[:-1], 2 * t.shape[-1] + 1, dtype=t.dtype)
        big[..., 1::2] = t
        return big[..., 1::2]
    if kind == "expanded":  # stride 0 over the first dimension: every row the first's
        return t[:1].expand(*t.shape) if t.shape[0] else t
    raise ValueError(kind)


def _layer_inputs(p: Problem, torch_dtype, layouts: dict) -> dict:
    out = {}
    for name in LEAVES + ("grid",):
        t = torch.from_numpy(np.ascontiguousarray(getattr(p, name))).to(torch_dtype)
        out[name] = _strided(t, layouts.get(name, "contiguous"))
    return out


def _base_only_grad_x(inputs64: dict, base_fun, dy64: torch.Tensor) -> torch.Tensor:
    """dL/dx of the base-function term alone (the whole dL/dx where every basis is 0)."""
    x = inputs64["x"].detach().clone().requires_grad_()
    base = resolve_base_fun(base_function(base_fun))(x)
    y = (base[:, :, None] * (inputs64["scale_base"] * inputs64["mask"])[None]).sum(1)
    (g,) = torch.autograd.grad(y, x, dy64, allow_unused=True)
    return torch.zeros_like(x) if g is None else g


def compare_layer(p: Problem, base_fun, grad_of, layouts: dict) -> dict:
    """backend="cpu" on ``p`` (in p.dtype, with ``layouts``) against the float64 reference
    (and, for float32, the float32 reference for the error allowance)."""
    torch_dtype = TORCH_DTYPE[p.dtype]
    inputs = _layer_inputs(p, torch_dtype, layouts)
    dy = torch.from_numpy(p.dy).to(torch_dtype)
    got = run_layer(inputs, "cpu", p.k, base_fun, grad_of=grad_of, dy=dy)
    inputs64 = {n: t.double() for n, t in inputs.items()}
    want = run_layer(inputs64, "torch", p.k, base_fun, grad_of=grad_of, dy=dy.double())
    low = None
    if torch_dtype != torch.float64:
        low = run_layer(inputs, "torch", p.k, base_fun, grad_of=grad_of, dy=dy)
    rtol = RTOL[p.dtype]
    x_values = inputs["x"].detach().numpy()  # after the layout (an expanded x repeats row 0)
    view = Problem(p.dtype, p.k, p.grid_kind, x_values, p.grid, p.coef, p.scale_base,
                   p.scale_sp, p.mask, p.dy)
    huge = view.huge()
    # Each result in the problem's dtype, against the float64 reference.
    close = dict(dtype=torch_dtype)
    assert_close(got["y"], want["y"], rtol, "y", low=low and low["y"],
                 groups=_row_groups(huge, got["y"].shape), **close)
    if "x" in grad_of:
        expected = want["x"].clone()
        outside = torch.from_numpy(view.outside())
        expected[outside] = _base_only_grad_x(inputs64, base_fun, dy.double())[outside]
        dup = torch.from_numpy(view.dup_inputs())[None, :].expand_as(expected)
        finite_x = torch.from_numpy(np.isfinite(x_values))
        assert_close(got["x"], expected, rtol, "grad x", low=low and low["x"],
                     skip=dup | _k1_nonfinite(p.k, finite_x), **close)
        # Inputs with repeated knots: the analytic derivative, finite at finite x.
        assert torch.isfinite(got["x"][dup & finite_x]).all(), "grad x: non-finite at a finite x"
    for name in ("coef", "scale_base", "scale_sp", "mask"):
        if name in grad_of:
            assert_close(got[name], want[name], rtol, f"grad {name}",
                         low=low and low[name], groups=_input_groups(huge, got[name].shape),
                         **close)
    return got


def _grad_subsets():
    return st.sampled_from((LEAVES, LEAVES, ("x",), ("coef", "scale_sp"),
                            ("scale_base", "mask"), ("coef",), ()))


def _layouts():
    kinds = st.sampled_from(("contiguous", "contiguous", "transposed", "sliced"))
    return st.fixed_dictionaries({
        "x": st.sampled_from(("contiguous", "transposed", "sliced", "expanded")),
        "grid": kinds, "coef": kinds, "scale_base": kinds, "scale_sp": kinds, "mask": kinds})


@fuzz(300)
@given(p=problems(), base_fun=st.sampled_from(BASE_FUNS), grad_of=_grad_subsets(),
       layouts=_layouts())
def test_kan_layer_matches_reference(p, base_fun, grad_of, layouts):
    note(p.describe())
    compare_layer(p, base_fun, grad_of, layouts)


@fuzz(60)
@given(p=problems(profile="long"), base_fun=st.sampled_from(BASE_FUNS))
def test_kan_layer_large_grid(p, base_fun):
    """G from 100 to 2000 with every order up to 15: knot search over long rows."""
    note(p.describe())
    compare_layer(p, base_fun, LEAVES, {})


@fuzz(60)
@given(p=problems(dtypes=(np.float32,), profile="wide", scales=(1.0, 1e-3, 1e3)),
       half=st.sampled_from((torch.float16, torch.bfloat16)),
       base_fun=st.sampled_from(BASE_FUNS), grad_of=_grad_subsets())
def test_kan_layer_half_precision(p, half, base_fun, grad_of):
    """float16/bfloat16 inputs are computed in float32 and returned in their dtype: the
    result (and every gradient) is the float32 call's, rounded, bit for bit -- and that
    float32 call matches the reference (on the half-rounded values)."""
    note(p.describe())
    inputs = _layer_inputs(p, half, {})
    dy = torch.from_numpy(p.dy).to(half)
    got = run_layer(inputs, "cpu", p.k, base_fun, grad_of=grad_of, dy=dy)
    inputs32 = {n: t.float() for n, t in inputs.items()}
    ref32 = run_layer(inputs32, "cpu", p.k, base_fun, grad_of=grad_of, dy=dy.float())
    for name, g in got.items():
        assert g.dtype == half, f"{name}: dtype {g.dtype}"
        assert torch.equal(torch.isnan(g), torch.isnan(ref32[name].to(half))), name
        same = g.eq(ref32[name].to(half)) | torch.isnan(g)
        assert same.all(), f"{name}: differs from the float32 call at {_where(~same)}"
    # The float32 call on the same (half-rounded) values, against the reference.
    p32 = Problem(np.float32, p.k, p.grid_kind,
                  *(inputs32[n].numpy() for n in ("x", "grid", "coef", "scale_base",
                                                  "scale_sp", "mask")),
                  dy.float().numpy())
    compare_layer(p32, base_fun, grad_of, {})


# -- invalid and borderline arguments: ValueError/TypeError or a match -----------------

_BAD_DTYPES = {"int32": torch.int32, "int64": torch.int64, "bool": torch.bool,
               "float16": torch.float16, "complex64": torch.complex64}
FLOAT_TORCH = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def layer_args_valid(a: dict) -> bool:
    """check_layer_args + resolve_base_fun, restated: would kan_layer accept ``a``?"""
    k, x, grid, coef = a["k"], a["x"], a["grid"], a["coef"]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_ORDER:
        return False
    if a["base_fun"] not in ("silu", "identity", "zero") and not callable(a["base_fun"]):
        return False
    tensors = (x, grid, coef, a["scale_base"], a["scale_sp"], a["mask"])
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        return False
    if x.dim() != 2 or x.dtype not in FLOAT_TORCH or grid.dim() != 2 or coef.dim() != 3:
        return False
    in_dim, nk = grid.shape
    if x.shape[1] != in_dim or nk < 2 * k + 2 or coef.shape[0] != in_dim or coef.shape[2] != nk - k - 1:
        return False
    out = coef.shape[1]
    if any(tuple(t.shape) != (in_dim, out) for t in tensors[3:]):
        return False
    if any(t.dtype != x.dtype for t in tensors):
        return False
    g = grid.double()
    return bool(torch.isfinite(g).all()) and not bool((g[:, 1:] < g[:, :-1]).any())


def _mutate_layer(args: dict, what: str, rng) -> None:
    """One change to a call's arguments (it may or may not stay valid); a change that does
    not apply to what an earlier one left (a numpy x, a str k) is skipped."""
    tensors = all(isinstance(args[n], torch.Tensor)
                  for n in ("x", "grid", "coef", "scale_base", "scale_sp", "mask"))
    if not tensors or args["x"].dim() != 2 or args["grid"].dim() != 2:
        return
    if what in ("k+1", "k-1") and not isinstance(args["k"], int):
        return
    grid = args["grid"]
    if what.startswith("dtype-all-"):
        dt = _BAD_DTYPES[what[len("dtype-all-"):]]
        for n in ("x", "grid", "coef", "scale_base", "scale_sp", "mask"):
            args[n] = args[n].to(dt)
    elif what.startswith("dtype-"):  # one tensor's dtype
        name, dt = what[len("dtype-"):].split(":")
        args[name] = args[name].to(_BAD_DTYPES.get(dt) or getattr(torch, dt))
    elif what == "k+1":
        args["k"] += 1
    elif what == "k-1":
        args["k"] -= 1
    elif what in ("k-float", "k-bool", "k-str"):
        args["k"] = {"k-float": float(args["k"]), "k-bool": True, "k-str": str(args["k"])}[what]
    elif what == "grid-swap" and grid.numel() and grid.shape[1] >= 2 and grid.dtype != torch.bool:
        g = grid.clone()
        i, j = int(rng.integers(0, g.shape[0])), int(rng.integers(0, g.shape[1] - 1))
        g[i, j], g[i, j + 1] = g[i, j + 1].item(), g[i, j].item()
        args["grid"] = g
    elif what in ("grid-nan", "grid-inf", "grid--inf") and grid.numel() and grid.is_floating_point():
        g = grid.clone()
        value = {"grid-nan": math.nan, "grid-inf": math.inf, "grid--inf": -math.inf}[what]
        g[int(rng.integers(0, g.shape[0])), int(rng.integers(0, g.shape[1]))] = value
        args["grid"] = g
    elif what == "grid-drop-knot":
        args["grid"] = grid[:, :-1]
    elif what == "coef-drop-basis" and args["coef"].dim() == 3:
        args["coef"] = args["coef"][..., :-1]
    elif what == "x-drop-input":
        args["x"] = args["x"][:, :-1]
    elif what == "x-rank1":
        args["x"] = args["x"].reshape(-1)
    elif what == "x-rank3":
        args["x"] = args["x"][None]
    elif what == "x-numpy":
        args["x"] = args["x"].numpy()
    elif what in ("scale_base-T", "mask-T", "scale_sp-T") and args[what[:-2]].dim() == 2:
        name = what[:-2]
        args[name] = args[name].T
    elif what == "mask-extra-out" and args["mask"].dim() == 2:
        args["mask"] = torch.cat([args["mask"], args["mask"][:, :1]], 1)
    elif what == "base_fun-bad":
        args["base_fun"] = "relu"


LAYER_MUTATIONS = (
    "dtype-all-int32", "dtype-all-int64", "dtype-all-bool", "dtype-all-float16",
    "dtype-all-complex64", "dtype-x:int64", "dtype-x:bool", "dtype-x:float16",
    "dtype-grid:float32", "dtype-coef:float16", "dtype-mask:bool", "dtype-scale_sp:int32",
    "k+1", "k-1", "k-float", "k-bool", "k-str", "grid-swap", "grid-nan", "grid-inf",
    "grid--inf", "grid-drop-knot", "coef-drop-basis", "x-drop-input", "x-rank1", "x-rank3",
    "x-numpy", "scale_base-T", "mask-T", "scale_sp-T", "mask-extra-out", "base_fun-bad")


@fuzz(300)
@given(p=problems(ks=st.integers(0, MAX_ORDER + 1), gs=st.integers(0, 6), profile="wide",
                  dtypes=(np.float64,)),
       mutations=st.lists(st.sampled_from(LAYER_MUTATIONS), max_size=2),
       base_fun=st.sampled_from(BASE_FUNS), seed=st.integers(0, 2**16))
def test_kan_layer_rejects_or_matches(p, mutations, base_fun, seed):
    """Random k (0..16), G (0..6) and up to two argument changes: ValueError/TypeError
    exactly when the documented checks fail; otherwise the reference's result."""
    note(p.describe())
    rng = np.random.default_rng(seed)
    args = dict(_layer_inputs(p, torch.float64, {}), k=p.k,
                base_fun=base_function(base_fun))
    for m in mutations:
        _mutate_layer(args, m, rng)
    valid = layer_args_valid(args)
    note(f"mutations={mutations} valid={valid}")
    event(f"valid={valid}")
    bf = args["base_fun"]
    if not valid:
        for backend in ("cpu", "torch"):
            with pytest.raises((ValueError, TypeError)):
                pf.functional.kan_layer(args["x"], args["grid"], args["coef"], args["scale_base"],
                                        args["scale_sp"], args["mask"], args["k"], bf, backend)
        return
    dtype = {torch.float64: np.float64, torch.float32: np.float32}.get(args["x"].dtype)
    if dtype is None:  # a valid half-precision call: it runs, in its dtype
        y = pf.functional.kan_layer(args["x"], args["grid"], args["coef"], args["scale_base"],
                                    args["scale_sp"], args["mask"], args["k"], bf, "cpu")
        assert y.dtype == args["x"].dtype and y.shape == (args["x"].shape[0], args["coef"].shape[1])
        return
    q = Problem(dtype, args["k"], p.grid_kind,
                *(args[n].detach().numpy() for n in ("x", "grid", "coef", "scale_base",
                                                     "scale_sp", "mask")),
                p.dy.astype(dtype))
    compare_layer(q, bf, LEAVES, {})


# ---- the raw compiled entry points ---------------------------------------------------


def _silu_and_grad64(x: torch.Tensor):
    sig = torch.sigmoid(x)
    return torch.nn.functional.silu(x), sig * (1 + x * (1 - sig))


def raw_reference(p: Problem, sw: np.ndarray, bw: np.ndarray, dy: np.ndarray, base: int,
                  base_values, base_grads, dtype=torch.float64) -> dict:
    """What C.forward/C.backward compute, from pykan's B_batch: y = spline + base @ bw and
    the gradients of x, spline_weight and base_weight. Evaluated in ``dtype``."""
    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)

    x, grid, bw_t, dy_t = t(p.x), t(p.grid), t(bw), t(dy)
    coef = t(sw).permute(0, 2, 1).contiguous()  # [in, out, nb]
    xr, cr = x.clone().requires_grad_(), coef.clone().requires_grad_()
    spline = coef2curve(xr, grid, cr, p.k).sum(1)  # [B, out]
    gx, gc = torch.autograd.grad(spline, [xr, cr], dy_t)
    y = spline.detach()
    gbw = torch.zeros_like(bw_t)
    base_part = torch.zeros_like(x)
    if base == 1:
        if base_values is None:
            bv, bg = _silu_and_grad64(x)
        else:
            bv = t(base_values)
            bg = t(base_grads) if base_grads is not None else None
        y = y + bv @ bw_t
        gbw = bv.T @ dy_t
        if bg is not None:
            base_part = bg * (dy_t @ bw_t.T)
            gx = gx + base_part
    # Outside the knots every basis is 0: dL/dx is the base term's alone (the reference's
    # backward can overflow to NaN there).
    outside = torch.from_numpy(p.outside())
    gx = torch.where(outside, base_part, gx)
    return {"y": y, "grad_x": gx, "grad_spline_weight": gc.permute(0, 2, 1), "grad_base_weight": gbw}


@dataclass
class RawCall:
    """Arguments of one C.forward / C.backward call, by parameter name."""

    args: dict
    backward: bool

    def run(self):
        a = self.args
        if self.backward:
            return C.backward(a["x"], a["grid"], a["spline_weight"], a["base_weight"],
                              a["grad_y"], a["grad_x"], a["grad_spline_weight"],
                              a["grad_base_weight"], a["k"], a["base"], a["threads"],
                              a["base_values"], a["base_grads"])
        return C.forward(a["x"], a["grid"], a["spline_weight"], a["base_weight"], a["y"],
                         a["k"], a["base"], a["threads"], a["base_values"])

    def outputs(self):
        names = (("grad_x", "grad_spline_weight", "grad_base_weight") if self.backward
                 else ("y",))
        return [n for n in names if isinstance(self.args.get(n), np.ndarray)]


RAW_INPUTS = ("x", "grid", "spline_weight", "base_weight")


def raw_call(p: Problem, backward: bool, base: int, threads: int, with_base: bool,
             need=(True, True, True), rng=None) -> RawCall:
    """A valid call for ``p``: spline_weight = coef transposed, base_weight = scale_base,
    outputs prefilled with NaN (so that an entry left unwritten shows); base_values (and
    base_grads) random when ``with_base``."""
    rng = rng or np.random.default_rng(0)
    dt = p.dtype
    sw = np.ascontiguousarray(p.coef.transpose(0, 2, 1))
    args = dict(x=p.x, grid=p.grid, spline_weight=sw, base_weight=p.scale_base.copy(),
                k=p.k, base=base, threads=threads, base_values=None)
    if with_base:
        args["base_values"] = rng.standard_normal(p.x.shape).astype(dt)
    nan = lambda shape: np.full(shape, np.nan, dt)  # noqa: E731
    if backward:
        args["grad_y"] = p.dy
        args["base_grads"] = rng.standard_normal(p.x.shape).astype(dt) if with_base else None
        args["grad_x"] = nan(p.x.shape) if need[0] else None
        args["grad_spline_weight"] = nan(sw.shape) if need[1] else None
        args["grad_base_weight"] = nan(p.scale_base.shape) if need[2] else None
    else:
        args["y"] = nan((p.batch, p.out_dim))
    return RawCall(args, backward)


def raw_valid(call: RawCall) -> bool:
    """bindings.cpp's checks, restated: would the call be accepted?"""
    a = call.args
    arrays = RAW_INPUTS + (("grad_y",) if call.backward else ("y",))
    optional = (("grad_x", "grad_spline_weight", "grad_base_weight", "base_values", "base_grads")
                if call.backward else ("base_values",))
    if not all(isinstance(a[n], np.ndarray) for n in arrays):
        return False
    if not all(a[n] is None or isinstance(a[n], np.ndarray) for n in optional):
        return False
    for n in ("k", "base", "threads"):
        if not isinstance(a[n], int):  # pybind11 takes ints (and bools) only
            return False
    x = a["x"]
    if x.dtype not in (np.float32, np.float64):
        return False
    present = [n for n in arrays + optional if a[n] is not None]
    if any(a[n].dtype != x.dtype or not a[n].flags.c_contiguous for n in present):
        return False
    ndim = dict(x=2, grid=2, spline_weight=3, base_weight=2, y=2, grad_y=2, grad_x=2,
                grad_spline_weight=3, grad_base_weight=2, base_values=2, base_grads=2)
    if any(a[n].ndim != ndim[n] for n in present):
        return False
    if any(not a[n].flags.writeable for n in call.outputs()):
        return False
    k, grid = a["k"], a["grid"]
    if not 1 <= k <= MAX_ORDER or a["base"] not in (0, 1) or a["threads"] < 1:
        return False
    batch, in_dim = x.shape
    nk, out = grid.shape[1], a["spline_weight"].shape[2]
    if nk < 2 * k + 2:
        return False
    shapes = dict(x=(batch, in_dim), grid=(in_dim, nk), spline_weight=(in_dim, nk - k - 1, out),
                  base_weight=(in_dim, out), y=(batch, out), grad_y=(batch, out),
                  grad_x=(batch, in_dim), grad_spline_weight=(in_dim, nk - k - 1, out),
                  grad_base_weight=(in_dim, out), base_values=(batch, in_dim),
                  base_grads=(batch, in_dim))
    if any(a[n].shape != shapes[n] for n in present):
        return False
    if not (np.isfinite(grid).all() and (np.diff(grid, axis=1) >= 0).all()):
        return False
    if call.backward and (a["base_values"] is None) != (a["base_grads"] is None):
        return False
    return True


def run_and_check_raw(p: Problem, call: RawCall, other_threads: bool = True) -> None:
    """Runs a valid call; its outputs against raw_reference, its inputs untouched, and
    (``other_threads``) the same bits at the other thread count."""
    a = call.args
    before = {n: a[n].copy() for n in RAW_INPUTS + ("base_values", "base_grads", "grad_y")
              if isinstance(a.get(n), np.ndarray)}
    assert call.run() is None
    for n, v in before.items():
        assert np.array_equal(a[n], v, equal_nan=True), f"{n}: modified by the call"
    # base_values (and, backward, base_grads) replace SiLU and SiLU' when given.
    base_values = a["base_values"]
    base_grads = a["base_grads"] if call.backward else None
    dy = a["grad_y"] if call.backward else np.zeros(a["y"].shape, p.dtype)
    want = raw_reference(p, a["spline_weight"], a["base_weight"], dy, a["base"],
                         base_values, base_grads)
    low = None
    if p.dtype == np.float32:
        low = raw_reference(p, a["spline_weight"], a["base_weight"], dy, a["base"],
                            base_values, base_grads, torch.float32)
    rtol = RTOL[p.dtype]
    huge = p.huge()
    for n in call.outputs():
        got = torch.from_numpy(a[n])
        groups = skip = None
        if n == "y":
            groups = _row_groups(huge, got.shape)
        elif n == "grad_base_weight":
            groups = _input_groups(huge, got.shape)
        elif n == "grad_x":
            dup = torch.from_numpy(p.dup_inputs())[None, :].expand(*got.shape)
            finite_x = torch.from_numpy(np.isfinite(p.x))
            assert torch.isfinite(got[dup & finite_x]).all(), "grad_x: non-finite at a finite x"
            skip = dup | _k1_nonfinite(p.k, finite_x)
        assert_close(got, want[n], rtol, n, low=None if low is None else low[n],
                     groups=groups, skip=skip, dtype=TORCH_DTYPE[p.dtype])
    if other_threads:
        again = RawCall({**a, "threads": 3 - a["threads"] if a["threads"] in (1, 2) else 1},
                        call.backward)
        for n in call.outputs():
            again.args[n] = np.full_like(a[n], np.nan)
        again.run()
        for n in call.outputs():
            assert np.array_equal(again.args[n], a[n], equal_nan=True), (
                f"{n}: threads={a['threads']} and {again.args['threads']} differ")


@fuzz(300)
@given(p=problems(), backward=st.booleans(), base=st.sampled_from((0, 1, 1)),
       threads=st.sampled_from((1, 2)), with_base=st.booleans(),
       need=st.tuples(st.booleans(), st.booleans(), st.booleans()))
def test_raw_matches_reference(p, backward, base, threads, with_base, need):
    """Valid raw calls: the reference's values, every output entry written, inputs
    untouched, and bit-identical results at 1 and 2 threads."""
    note(p.describe())
    call = raw_call(p, backward, base, threads, with_base, need)
    assert raw_valid(call)
    run_and_check_raw(p, call)


@fuzz(60)
@given(p=problems(profile="long"), backward=st.booleans(), base=st.sampled_from((0, 1)),
       with_base=st.booleans())
def test_raw_large_grid(p, backward, base, with_base):
    note(p.describe())
    call = raw_call(p, backward, base, 2, with_base)
    run_and_check_raw(p, call)


# -- arguments that break one check (or look like they might) ---------------------------

RAW_DTYPES = (np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_, np.complex64)


def _np_layout(a: np.ndarray, kind: str) -> np.ndarray:
    """The same values in another layout: non-contiguous, transposed or negative strides
    (numpy still calls some of these C-contiguous: size-1 or empty dimensions)."""
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "sliced":
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype) if a.ndim else a.copy()
        if a.ndim:
            big[..., ::2] = a
            return big[..., ::2]
        return big
    if kind == "reversed":  # negative stride on the first axis
        return np.ascontiguousarray(a[::-1])[::-1] if a.ndim else a.copy()
    if kind == "reversed-last":
        return np.ascontiguousarray(a[..., ::-1])[..., ::-1] if a.ndim else a.copy()
    if kind == "transposed":
        return np.ascontiguousarray(a.T).T
    raise ValueError(kind)


RAW_MUTATIONS = ("layout", "layout", "dtype", "dtype", "shape", "ndim", "readonly",
                 "k", "k-float", "base", "threads", "grid-swap", "grid-nonfinite",
                 "not-array", "base-pair", "none")


def _mutate_raw(call: RawCall, what: str, data) -> str:
    a = call.args
    arrays = [n for n, v in a.items() if isinstance(v, np.ndarray)]
    if what == "layout":
        n = data.draw(st.sampled_from(arrays), label="layout target")
        kind = data.draw(st.sampled_from(("fortran", "sliced", "reversed", "reversed-last",
                                          "transposed")), label="layout")
        a[n] = _np_layout(a[n], kind)
        return f"{n} {kind} strides={a[n].strides}"
    if what == "dtype":
        n = data.draw(st.sampled_from(arrays), label="dtype target")
        dt = data.draw(st.sampled_from(RAW_DTYPES), label="dtype")
        with np.errstate(all="ignore"):
            a[n] = a[n].astype(dt)
        return f"{n} as {np.dtype(dt).name}"
    if what == "shape":
        n = data.draw(st.sampled_from(arrays), label="shape target")
        axis = data.draw(st.integers(0, max(a[n].ndim - 1, 0)), label="axis")
        grow = data.draw(st.booleans(), label="grow")
        if a[n].ndim == 0:
            return "no-op"
        if grow or a[n].shape[axis] == 0:
            extra = np.take(a[n], [0], axis=axis) if a[n].shape[axis] else np.zeros(
                a[n].shape[:axis] + (1,) + a[n].shape[axis + 1:], a[n].dtype)
            a[n] = np.concatenate([a[n], extra], axis=axis)
        else:
            a[n] = np.ascontiguousarray(np.delete(a[n], -1, axis=axis))
        return f"{n} axis {axis} {'+1' if grow else '-1'} -> {a[n].shape}"
    if what == "ndim":
        n = data.draw(st.sampled_from(arrays), label="ndim target")
        a[n] = a[n][None] if data.draw(st.booleans(), label="add") else a[n].reshape(-1)
        return f"{n} shape {a[n].shape}"
    if what == "readonly":
        outs = call.outputs()
        if not outs:
            return "no-op"
        n = data.draw(st.sampled_from(outs), label="readonly target")
        a[n] = a[n].copy()
        a[n].flags.writeable = False
        return f"{n} read-only"
    if what == "k":
        a["k"] = data.draw(st.sampled_from((-1, 0, 16, 17, 2**20, a["k"] - 1, a["k"] + 1)))
        return f"k={a['k']}"
    if what == "k-float":
        a["k"] = float(a["k"])
        return "k float"
    if what == "base":
        a["base"] = data.draw(st.sampled_from((-1, 2, 7)))
        return f"base={a['base']}"
    if what == "threads":
        a["threads"] = data.draw(st.sampled_from((0, -1, -(2**31))))
        return f"threads={a['threads']}"
    if what == "grid-swap":
        g = a["grid"]
        if g.ndim != 2 or g.size == 0 or g.shape[1] < 2:
            return "no-op"
        g = g.copy()
        i = data.draw(st.integers(0, g.shape[0] - 1), label="row")
        j = data.draw(st.integers(0, g.shape[1] - 2), label="knot")
        g[i, j], g[i, j + 1] = g[i, j + 1], g[i, j]
        a["grid"] = g
        return f"grid[{i}] knots {j},{j + 1} swapped"
    if what == "grid-nonfinite":
        g = a["grid"]
        if g.size == 0 or g.dtype.kind != "f":
            return "no-op"
        g = g.copy()
        value = data.draw(st.sampled_from((math.nan, math.inf, -math.inf)), label="knot value")
        at = data.draw(st.integers(0, g.size - 1), label="flat index")
        g.reshape(-1)[at] = value
        a["grid"] = g
        return f"grid flat[{at}] = {value}"
    if what == "not-array":
        n = data.draw(st.sampled_from(arrays), label="not-array target")
        kind = data.draw(st.sampled_from(("list", "tensor", "scalar")), label="as")
        a[n] = {"list": lambda v: v.tolist(),
                "tensor": lambda v: torch.from_numpy(np.ascontiguousarray(v)),
                "scalar": lambda v: 1.0}[kind](a[n])
        return f"{n} as {kind}"
    if what == "base-pair":
        if not call.backward:
            return "no-op"
        if a["base_values"] is None:
            a["base_values"] = np.zeros(a["x"].shape, a["x"].dtype)
        else:
            a["base_grads"] = None
        return "base_values without base_grads (or the reverse)"
    return "none"


@fuzz(450)
@given(p=problems(ks=st.integers(0, MAX_ORDER + 1), gs=st.integers(0, 5), profile="wide"),
       backward=st.booleans(), base=st.sampled_from((0, 1)), with_base=st.booleans(),
       threads=st.sampled_from((0, 1, 2)), mutations=st.lists(st.sampled_from(RAW_MUTATIONS),
                                                               max_size=2),
       data=st.data())
def test_raw_rejects_or_matches(p, backward, base, with_base, threads, mutations, data):
    """k in 0..16, G in 0..5, threads 0/1/2 and up to two argument changes (dtype, layout,
    shape, rank, read-only output, k, base, unsorted or non-finite knots, non-arrays,
    base_values without base_grads): ValueError/TypeError exactly when bindings.cpp's
    checks fail, else the reference's result."""
    note(p.describe())
    call = raw_call(p, backward, base, threads, with_base, rng=np.random.default_rng(1))
    done = [_mutate_raw(call, m, data) for m in mutations]
    valid = raw_valid(call)
    note(f"mutations: {done}; valid={valid}")
    event(f"valid={valid}")
    if valid and mutations and mutations != ["none"]:
        event("valid after a change: " + "; ".join(done))
    if not valid:
        with pytest.raises((ValueError, TypeError)):
            call.run()
        return
    # Still valid (a layout numpy calls contiguous, k=True, ...): the values must be right.
    a = call.args
    q = Problem(a["x"].dtype.type, a["k"], p.grid_kind, np.ascontiguousarray(a["x"]),
                np.ascontiguousarray(a["grid"]), p.coef, p.scale_base, p.scale_sp, p.mask,
                p.dy)
    run_and_check_raw(q, call, other_threads=False)


# ---- known deviations ----------------------------------------------------------------


@pytest.mark.xfail(strict=True, reason=(
    "bug: knot differences below 1/FLT_MAX (float32, ~2.9e-39) or 1/DBL_MAX (float64, "
    "~5.6e-309) overflow the kernels' reciprocal table (1/d = inf): inf/NaN outputs where "
    "pykan's B_batch divides and stays finite"))
@pytest.mark.parametrize("dtype,tiny", [(torch.float64, 1e-310), (torch.float32, 1e-40)])
def test_subnormal_knot_spacing(dtype, tiny):
    grid = torch.tensor([[0.0, tiny, 1.0, 2.0]], dtype=dtype)  # k=1, G=1: sorted, finite
    x = torch.tensor([[tiny / 2], [0.5]], dtype=dtype)
    coef = torch.ones(1, 1, 2, dtype=dtype)
    one = torch.ones(1, 1, dtype=dtype)
    args = (x, grid, coef, one * 0, one, one, 1, "silu")
    got = pf.functional.kan_layer(*args, backend="cpu")
    want = pf.functional.kan_layer(*args, backend="torch")
    torch.testing.assert_close(got, want)


@pytest.mark.xfail(strict=True, reason=(
    "deviation: at k=1 the reference's dL/dx at NaN/inf x is finite (the base function's "
    "part; README: 'gradients at NaN/inf x are NaN, as pykan's') -- the kernels give NaN"))
@pytest.mark.parametrize("base_fun", ["identity", "zero"])
def test_k1_grad_x_at_nonfinite_x(base_fun):
    grid = uniform_grid(1, 3, 1, dtype=torch.float64)
    coef = torch.ones(1, 1, 4, dtype=torch.float64)
    one = torch.ones(1, 1, dtype=torch.float64)
    grads = {}
    for backend in ("cpu", "torch"):
        x = torch.tensor([[math.inf], [math.nan]], dtype=torch.float64, requires_grad=True)
        y = pf.functional.kan_layer(x, grid, coef, one, one, one, 1, base_fun, backend)
        (grads[backend],) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grads["cpu"], grads["torch"], equal_nan=True)
