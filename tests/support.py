"""The tests' one support module: case builders, the comparator and its tolerances, the
knot vocabulary and the table of kernel cases.

Imported by name (``from support import ...``): tests/conftest.py puts this folder on
sys.path, as pytest's importlib mode does not; conftest itself holds only fixtures and
hooks. Everything here is plain functions and data, no fixtures.

- Knots (``KNOTS``): "uniform" is pykan's initial grid (equal steps over [-scale, scale],
  extended by k: the kernels' uniform fast path); "random" sorted random knots, spacing
  varying by up to ~20x within a row and a span per input (the binary knot search);
  "repeated" a uniform grid whose every other input has one double interior knot (what
  pykan's update_grid_from_samples makes with grid_eps=0). The fuzzer's extra kinds:
  "uniform-span" (equal steps over a random span), "jitter" (equal to 1e-9),
  "clustered" (spacings over six decades), "duplicates" (random with many zero steps),
  "flat" (all knots equal).
- ``make_case``: the inputs of one ``kan_layer`` call (x, grid, coef, scale_base,
  scale_sp, mask, and an upstream gradient dy), with samples inside, outside, on and next
  to knots, NaN/inf, in any float dtype, on any device.
- ``assert_close``: the comparator (tensors or dicts of them): same shape and dtype, NaN
  and +-inf at the same places, finite entries within ``max(rtol * max|expected|, atol,
  2 * error of a lower-precision reference)``, per group of entries where asked.
- ``run_layer`` / ``compare_with_reference``: a forward + backward through
  ``pykan_fast.functional.kan_layer`` and its check against the pure-torch reference.
- ``KERNEL_TABLE`` / ``kernel_params(backend)``: the kernel cases shared by
  tests/ops/test_cpu_kernels.py (every row) and tests/ops/test_triton.py (the rows marked
  for triton: the interpreter is slow).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from pykan_fast.ops.grid import uniform_grid

# ---- tolerances ----------------------------------------------------------------------

# Relative tolerance per dtype (norm-wise: of the largest |expected| entry), outputs and
# every gradient, for a kernel against the reference on the same inputs.
RTOL = {torch.float64: 1e-10, torch.float32: 1e-5}
# The fuzzer's (tests/ops/test_fuzz.py): knots over six decades, |x| up to 1e300, G up to
# 2000 and k up to 15, where float64 cancellation alone reaches ~1e-10.
FUZZ_RTOL = {torch.float64: 1e-9, torch.float32: 1e-4}

GRADIENT_NAMES = ("x", "coef", "scale_base", "scale_sp", "mask")
LEAVES = GRADIENT_NAMES

# ---- knots ---------------------------------------------------------------------------

KNOTS = ("uniform", "random", "repeated", "uniform-span", "jitter", "clustered",
         "duplicates", "flat")
REPEATED_AT = 5  # "repeated": knot 5 moved onto knot 6


def make_knots(kind: str, in_dim: int, num: int, k: int, rng: np.random.Generator,
               scale: float = 1.0) -> np.ndarray:
    """Sorted float64 knots `[in, num + 2k + 1]` of ``kind`` (see KNOTS); num <= 0 gives
    fewer knots than a valid grid (the argument-check tests), 'uniform' then falls back to
    'uniform-span'."""
    n_knots = num + 2 * k + 1
    if n_knots < 2:
        return np.full((in_dim, max(n_knots, 0)), rng.uniform(-1, 1) * scale)
    if kind in ("uniform", "repeated"):
        if num >= 1:
            grid = uniform_grid(in_dim, num, k, (-scale, scale), dtype=torch.float64).numpy().copy()
            if kind == "repeated":
                assert n_knots > REPEATED_AT + 2, "'repeated' needs more than 7 knots"
                grid[::2, REPEATED_AT] = grid[::2, REPEATED_AT + 1]
            return grid
        if kind == "repeated":
            raise ValueError("'repeated' needs G >= 1")
        kind = "uniform-span"
    if kind in ("uniform-span", "jitter"):
        steps = np.ones((in_dim, n_knots - 1))
        if kind == "jitter":  # uniform to 1e-9: the find_span hint, the general recursion
            steps += rng.uniform(-1e-9, 1e-9, steps.shape)
    elif kind == "random":
        steps = 0.05 + rng.random((in_dim, n_knots - 1))
    elif kind == "clustered":  # spacings over six decades
        steps = 10.0 ** rng.uniform(-6, 0, (in_dim, n_knots - 1))
    elif kind == "duplicates":
        steps = 0.05 + rng.random((in_dim, n_knots - 1))
        steps[rng.random(steps.shape) < rng.uniform(0.05, 0.5)] = 0.0
        steps[:, -1] += 1e-3  # at least one non-zero step
    elif kind == "flat":
        steps = np.zeros((in_dim, n_knots - 1))
    else:
        raise ValueError(f"knot kind {kind!r}: expected one of {KNOTS}")
    knots = np.concatenate([np.zeros((in_dim, 1)), np.cumsum(steps, axis=1)], axis=1)
    total = knots[:, -1:]
    knots = np.divide(knots, total, out=np.zeros_like(knots), where=total > 0)
    lo = rng.uniform(-2.0, 1.0, (in_dim, 1))
    width = rng.uniform(0.5, 4.0, (in_dim, 1))
    return (lo + width * knots) * scale


def knots_as_samples(grid: torch.Tensor) -> torch.Tensor:
    """x `[n_knots, in]` whose column i runs over every knot of input i (first and last
    included): each sample sits exactly on a knot."""
    return grid.T.contiguous().clone()


def knots_and_neighbours(grid: torch.Tensor) -> torch.Tensor:
    """x `[3 n_knots, in]`: every knot, and its floating-point neighbours below and above."""
    on = knots_as_samples(grid)
    below = torch.nextafter(on, torch.full_like(on, -math.inf))
    above = torch.nextafter(on, torch.full_like(on, math.inf))
    return torch.cat([on, below, above])


# ---- samples -------------------------------------------------------------------------

SPECIALS = (math.nan, math.inf, -math.inf, 1e30, -1e30, 1e300, -1e300, 0.0, -0.0)


def make_samples(grid: np.ndarray, batch: int, dtype, rng: np.random.Generator, *,
                 outside: float = 0.25, on_knots: float = 0.0, next_to_knots: float = 0.0,
                 specials: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """x `[B, in]` in numpy ``dtype`` from the knots ``grid`` (already in that dtype):
    uniform over the knot span widened by ``outside`` of its width on each side (0.25:
    about 1/3 outside), a fraction ``on_knots`` exactly on a knot, ``next_to_knots`` one
    ulp from one, ``specials`` from SPECIALS (NaN, +-inf, +-1e30, +-1e300, +-0)."""
    in_dim, nk = grid.shape
    if in_dim == 0 or batch == 0 or nk == 0:
        return np.zeros((batch, in_dim), dtype)
    lo, hi = grid[:, 0].astype(np.float64), grid[:, -1].astype(np.float64)
    width = np.where(hi > lo, hi - lo, scale)
    x = (lo + rng.uniform(-outside, 1 + outside, (batch, in_dim)) * width).astype(dtype)
    pick = rng.random((batch, in_dim))
    knot = grid[np.arange(in_dim)[None, :], rng.integers(0, nk, (batch, in_dim))]
    side = np.where(rng.random((batch, in_dim)) < 0.5, np.inf, -np.inf).astype(dtype)
    x = np.where(pick < on_knots, knot, x)
    x = np.where((pick >= on_knots) & (pick < on_knots + next_to_knots),
                 np.nextafter(knot, side), x)
    special = rng.random((batch, in_dim)) < specials
    values = np.array(SPECIALS)[rng.integers(0, len(SPECIALS), (batch, in_dim))].astype(dtype)
    return np.where(special, values, x).astype(dtype)


def _pin_samples(x: np.ndarray, grid: np.ndarray, ends: bool, nonfinite: bool,
                 repeated: bool) -> None:
    """In place: x[0] inside the grid; with ``ends`` rows 1..4 at the first and last knot
    (the last: outside, every basis 0) and 0.3 beyond either end; with ``nonfinite`` the
    fixed NaN / +-inf pattern of the non-finite cases (rows 0..4 of the first 3 inputs;
    row 3 all NaN); with ``repeated`` the first 40 samples of each input with a double
    knot run through it."""
    batch, in_dim = x.shape
    if not (batch and in_dim):
        return
    lo, hi = grid[:, 0], grid[:, -1]
    x[0] = (lo + hi) / 2 + 0.1234 * (hi - lo) / 2  # at least one sample inside the grid
    if ends and batch >= 5:
        x[1], x[2] = lo, hi
        x[3], x[4] = lo - 0.3, hi + 0.3
    if repeated:
        n = min(batch, 40)
        for i in range(0, in_dim, 2):
            x[:n, i] = np.linspace(grid[i, 2], grid[i, min(10, grid.shape[1] - 1)], n)
    if nonfinite:
        assert batch >= 5 and in_dim >= 3, "the non-finite pattern needs B >= 5, in >= 3"
        x[0, 0] = math.nan
        x[1, 1] = math.inf
        x[2, 2] = -math.inf
        x[3] = math.nan  # a whole row
        x[4, 0], x[4, 2] = math.inf, -math.inf


MASKS = ("binary", "ones", "float")


def inputs(batch: int, n: int, seed: int, low: float = -1.0, high: float = 1.0,
           dtype=torch.float64) -> torch.Tensor:
    """Model inputs: uniform samples `[batch, n]` in [low, high), drawn in float64 from
    their own generator (the model-level tests)."""
    g = torch.Generator().manual_seed(seed)
    return (low + (high - low) * torch.rand(batch, n, generator=g, dtype=torch.float64)).to(dtype)


def make_case(batch: int, in_dim: int, out_dim: int, num: int, k: int,
              dtype=torch.float64, knots: str = "uniform", seed: int = 0, *,
              outside: float = 0.25, on_knots: float = 0.0, next_to_knots: float = 0.0,
              specials: float = 0.0, pin: bool = True, pin_ends: bool = False,
              nonfinite: bool = False, scale: float = 1.0, mask: str = "binary",
              device="cpu") -> dict:
    """Inputs of one ``kan_layer`` call, as tensors of ``dtype`` on ``device``: x `[B, in]`,
    grid `[in, G + 2k + 1]` of ``knots`` (KNOTS), coef `[in, out, G + k]`, scale_base,
    scale_sp, mask `[in, out]` and dy `[B, out]` (an upstream gradient).

    Knots are rounded to ``dtype`` before the samples are drawn, so samples on knots are
    exactly on them in ``dtype``. Samples: see make_samples (``outside``, ``on_knots``,
    ``next_to_knots``, ``specials``). ``pin``: x[0] inside the grid, at least one live
    edge (mask[0, 0] = 1) and, for 'repeated' knots, samples through the double knot;
    ``pin_ends``: samples on the first and last knot and outside both ends (B >= 5);
    ``nonfinite``: NaN and +-inf at fixed places (B >= 5, in >= 3). ``mask``: 'binary'
    (0/1 with some zeros, as pykan's pruning leaves it), 'ones' or 'float' (in [-1, 1]).

    One numpy generator seeded with ``seed`` draws everything, in a fixed order (knots,
    samples, mask, coef, scale_base, scale_sp, dy)."""
    np_dtype = {torch.float64: np.float64, torch.float32: np.float32}.get(dtype, np.float64)
    rng = np.random.default_rng(seed)
    with np.errstate(all="ignore"):
        grid = make_knots(knots, in_dim, num, k, rng, scale).astype(np_dtype)
        x = make_samples(grid, batch, np_dtype, rng, outside=outside, on_knots=on_knots,
                         next_to_knots=next_to_knots, specials=specials, scale=scale)
    if pin or pin_ends or nonfinite:
        _pin_samples(x, grid, pin_ends, nonfinite, pin and knots == "repeated")
    if mask == "ones":
        m = np.ones((in_dim, out_dim))
    elif mask == "binary":
        m = (rng.random((in_dim, out_dim)) > 0.25).astype(np.float64)
    elif mask == "float":
        m = rng.uniform(-1, 1, (in_dim, out_dim))
    else:
        raise ValueError(f"mask {mask!r}: expected one of {MASKS}")
    if pin and in_dim and out_dim:
        m[0, 0] = 1.0  # at least one live edge
    n_basis = max(grid.shape[1] - k - 1, 0)
    case = dict(
        x=x, grid=grid,
        coef=rng.standard_normal((in_dim, out_dim, n_basis)),
        scale_base=rng.standard_normal((in_dim, out_dim)),
        scale_sp=rng.standard_normal((in_dim, out_dim)),
        mask=m,
        dy=rng.standard_normal((batch, out_dim)),
    )
    # Rounded to np_dtype first (what the fuzzer's numpy problems hold), then to dtype.
    return {name: torch.from_numpy(np.ascontiguousarray(a.astype(np_dtype))).to(
        dtype=dtype, device=device) for name, a in case.items()}


# ---- running a layer -----------------------------------------------------------------

BASE_FUNS = {"silu": "silu", "identity": "identity", "zero": "zero", "tanh": torch.tanh,
             "sin-x": lambda t: torch.sin(t) * t}


def base_function(name):
    """A base function by its test name (a callable or a kan_layer name)."""
    return BASE_FUNS.get(name, name) if isinstance(name, str) else name


def run_layer(case: dict, backend: str, k: int, base_fun="silu", x=None,
              grad_of=("x", "coef", "scale_base", "scale_sp"), dy=None, seed: int = 1) -> dict:
    """Forward + backward through ``pykan_fast.functional.kan_layer``.

    Returns ``{"y": y, "<name>": grad}`` for each name in ``grad_of`` (those tensors
    require grad, the others do not; an unused one gets zeros). The tensors keep their
    strides (an explicit ``x`` too). ``dy``: the upstream gradient; by default a fixed
    random tensor from ``seed``, so every output column is weighted differently.
    """
    import pykan_fast as pf

    leaves = {}
    for name in LEAVES:
        t = x if name == "x" and x is not None else case[name]
        leaves[name] = t.detach().requires_grad_(name in grad_of)
    bf = base_function(base_fun)
    args = (leaves["x"], case["grid"], leaves["coef"], leaves["scale_base"],
            leaves["scale_sp"], leaves["mask"], k, bf, backend)
    if not grad_of:
        with torch.no_grad():
            return {"y": pf.functional.kan_layer(*args)}
    y = pf.functional.kan_layer(*args)
    if dy is None:
        g = torch.Generator().manual_seed(seed)
        dy = torch.randn(y.shape, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad(y, [leaves[n] for n in grad_of],
                                dy.to(device=y.device, dtype=y.dtype), allow_unused=True)
    out = {"y": y.detach()}
    for name, grad in zip(grad_of, grads):
        out[name] = torch.zeros_like(leaves[name]) if grad is None else grad
    return out


# ---- the comparator ------------------------------------------------------------------


def _where(mask: torch.Tensor):
    return torch.nonzero(mask)[0].tolist()


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| over max |b| (1 when b is all zeros), in float64: the norm-wise relative
    error assert_close bounds, as a number (the model-level tests print and bound it;
    NaN anywhere makes it NaN, which no bound passes)."""
    a, b = a.detach().double(), b.detach().double()
    scale = b.abs().max().item() if b.numel() else 0.0
    err = (a - b).abs().max().item() if b.numel() else 0.0
    return err / (scale if scale > 0 else 1.0)


def assert_close(actual, expected, rtol: float | None = None, name: str = "", *,
                 atol: float = 0.0, low=None, groups: torch.Tensor | None = None,
                 skip: torch.Tensor | None = None, dtype: torch.dtype | None = None) -> None:
    """``actual`` against ``expected`` (tensors, or dicts of them with the same keys).

    - same shape; dtype ``dtype`` (default: expected's) -- so a float32 result can be
      compared with a float64 reference;
    - NaN at the same places, +-inf at the same places with the same signs;
    - finite entries: max |actual - expected| <= max(rtol * max|expected|, atol) -- a
      norm-wise relative error (cancellation makes single entries meaningless to compare
      relatively); ``rtol`` defaults to RTOL of the dtype. With ``low`` (the same reference
      evaluated in actual's lower precision) the bound is at least twice that reference's
      own error (where the dtype itself cannot do better: flash-attention's criterion);
    - ``groups`` (integer tensor of expected's shape): the scale (and low's error) taken per
      group, so that a few huge entries do not set the bound of all the others;
    - ``skip`` (bool tensor): entries not compared at all.
    """
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), (
            f"{name}: results {sorted(actual)} != {sorted(expected)}")
        for key in expected:
            assert_close(actual[key], expected[key], rtol, f"{name}{key}", atol=atol,
                         low=None if low is None else low[key], dtype=dtype)
        return
    if expected is None:
        assert actual is None, f"{name}: a result where the reference has none"
        return
    assert actual is not None, f"{name}: no result"
    assert tuple(actual.shape) == tuple(expected.shape), (
        f"{name}: shape {list(actual.shape)} != {list(expected.shape)}")
    want_dtype = expected.dtype if dtype is None else dtype
    assert actual.dtype == want_dtype, f"{name}: dtype {actual.dtype} != {want_dtype}"
    if rtol is None:
        rtol = RTOL[want_dtype]
    g, w = actual.detach().double().cpu(), expected.detach().double().cpu()
    keep = torch.ones_like(w, dtype=torch.bool) if skip is None else ~skip.cpu()
    bad = (torch.isnan(g) != torch.isnan(w)) & keep
    assert not bad.any(), (
        f"{name}: NaN pattern differs: {int(torch.isnan(g).sum())} NaN vs "
        f"{int(torch.isnan(w).sum())} in the reference; first mismatch at {_where(bad)}: got "
        f"{g[bad][0].item()!r}, reference {w[bad][0].item()!r}")
    bad = (torch.isinf(g) | torch.isinf(w)) & (g != w) & keep
    assert not bad.any(), (f"{name}: inf pattern or sign differs at {_where(bad)}: got "
                           f"{g[bad][0].item()!r}, reference {w[bad][0].item()!r}")
    fin = torch.isfinite(w) & keep
    if not bool(fin.any()):
        return
    lo = None if low is None else low.detach().double().cpu()
    groups = torch.zeros_like(w, dtype=torch.long) if groups is None else groups.cpu()
    for gid in torch.unique(groups[fin]).tolist():
        sel = fin & (groups == gid)
        scale = w[sel].abs().max().item()
        err = (g[sel] - w[sel]).abs().max().item()
        bound = max(rtol * scale, atol)
        if lo is not None:
            both = sel & torch.isfinite(lo)
            if both.any():
                bound = max(bound, 2 * (lo[both] - w[both]).abs().max().item())
        if err > bound:
            diff = torch.where(sel, (g - w).abs(), torch.zeros_like(w))
            at = _where(diff == err)
            raise AssertionError(
                f"{name}: max abs error {err:.3e} > bound {bound:.3e} (rtol {rtol:.0e} x "
                f"max|ref| {scale:.3e}, atol {atol:.3e}; relative "
                f"{err / scale if scale else math.inf:.3e}) at {at}: got "
                f"{g[tuple(at)].item()!r}, reference {w[tuple(at)].item()!r}")


def compare_with_reference(case: dict, k: int, base_fun="silu", x=None,
                           grad_of=GRADIENT_NAMES, backend: str = "cpu"):
    """Runs ``backend`` and the reference (backend="torch") on the same inputs and
    asserts outputs and gradients agree. Returns (got, reference_result).

    float64: to RTOL (1e-10) of the reference. float32: NaN/inf where the float32
    reference has them and values to RTOL (1e-5) of it; and, against the float64 reference
    evaluated on the same float32-rounded inputs, to 1e-5 or, where float32 itself cannot
    do that (ill-conditioned cases, e.g. G=1000 where x - t_j cancels), to twice the error
    of the float32 reference (flash-attention's criterion). Where that error exceeds 1e-5
    the float32 reference is no yardstick: only its NaN/inf places are asserted.
    """
    got = run_layer(case, backend, k, base_fun, x=x, grad_of=grad_of)
    want = run_layer(case, "torch", k, base_fun, x=x, grad_of=grad_of)
    dtype = case["x"].dtype
    if dtype == torch.float64:
        assert_close(got, want)
        return got, want
    case64 = {n: t.double() for n, t in case.items()}
    x64 = None if x is None else x.double()
    want64 = run_layer(case64, "torch", k, base_fun, x=x64, grad_of=grad_of)
    assert got.keys() == want.keys()
    for name in want:
        ref64 = want64[name].to(dtype)
        both = torch.isfinite(want[name]) & torch.isfinite(ref64)
        exact32 = max_rel(want[name][both], ref64[both]) <= RTOL[dtype]
        assert_close(got[name], want[name], name=f"{name} vs float32 reference",
                     atol=0.0 if exact32 else math.inf)
        assert_close(got[name], ref64, name=f"{name} vs float64 reference", low=want[name])
    return got, want


# ---- the table of kernel cases -------------------------------------------------------

TRITON = "triton"
CUDA = "cuda"  # the compiled Triton kernels on a GPU only


@dataclass(frozen=True)
class KernelCase:
    """One row of the kernel table: a layer call and what is checked of it.

    ``samples``: 'random' (make_case with samples outside the grid, on and next to knots,
    and pinned at both ends), 'knots' (every knot and its floating-point neighbours),
    'nonfinite' (NaN and +-inf at fixed places). ``backends``: where the row runs (every
    row on 'cpu'; 'triton' rows also on the Triton backend, interpreted or compiled;
    'cuda' rows on the compiled Triton kernels only; float32 only on Triton)."""

    batch: int
    in_dim: int
    out_dim: int
    num: int
    k: int
    knots: str = "uniform"
    dtype: torch.dtype = torch.float64
    samples: str = "random"
    base_fun: str = "silu"
    grad_of: tuple = GRADIENT_NAMES
    note: str = ""
    backends: tuple = ("cpu",)
    seed: int = 0

    @property
    def id(self) -> str:
        parts = [f"B{self.batch}-in{self.in_dim}-out{self.out_dim}-G{self.num}-k{self.k}",
                 self.knots, {torch.float64: "f64", torch.float32: "f32"}[self.dtype]]
        if self.samples != "random":
            parts.append(self.samples)
        if self.base_fun != "silu":
            parts.append(self.base_fun)
        if self.grad_of != GRADIENT_NAMES:
            parts.append("grad-" + "+".join(self.grad_of) if self.grad_of else "no-grad")
        if self.note:
            parts.append(self.note)
        return "-".join(parts)

    def build(self, device="cpu") -> tuple[dict, torch.Tensor | None]:
        """(case, x): the make_case inputs and the samples to run (None: case["x"])."""
        if self.samples == "random":
            case = make_case(self.batch, self.in_dim, self.out_dim, self.num, self.k,
                             self.dtype, self.knots, self.seed, on_knots=0.15,
                             next_to_knots=0.1, pin_ends=True, device=device)
            return case, None
        if self.samples == "knots":
            case = make_case(1, self.in_dim, self.out_dim, self.num, self.k, self.dtype,
                             self.knots, self.seed, device=device)
            return case, knots_and_neighbours(case["grid"])
        if self.samples == "nonfinite":
            case = make_case(self.batch, self.in_dim, self.out_dim, self.num, self.k,
                             self.dtype, self.knots, self.seed, nonfinite=True, device=device)
            return case, None
        raise ValueError(self.samples)


F64_F32 = (torch.float64, torch.float32)


def _rows(shapes, knots=("uniform", "random"), dtypes=F64_F32, triton=False, cuda=False,
          **fields):
    """Rows for each shape x knot kind x dtype; ``triton``: the float32 ones run there too
    (interpreted without a GPU); ``cuda``: the float32 ones also run the compiled Triton
    kernels where there is a GPU (too large for the interpreter)."""
    rows = []
    for shape in shapes:
        *dims, note = shape if len(shape) == 6 else (*shape, "")
        for kind in knots:
            for dtype in dtypes:
                backends = ("cpu",)
                if dtype == torch.float32:
                    backends += (TRITON,) * triton + (CUDA,) * cuda
                rows.append(KernelCase(*dims, knots=kind, dtype=dtype, note=note,
                                       backends=backends, seed=sum(dims), **fields))
    return rows


# (batch, in, out, G, k[, note]): odd shapes for the compiled CPU kernels.
CPU_SHAPES = [
    (0, 3, 4, 5, 3, "empty-batch"),
    (1, 3, 4, 5, 3),
    (7, 1, 5, 5, 3),
    (9, 4, 1, 5, 3),
    (33, 17, 33, 5, 3),
    (20, 3, 5, 4, 1),
    (20, 3, 5, 4, 2),
    (20, 3, 5, 4, 3),
    (20, 3, 5, 4, 4),
    (20, 3, 5, 4, 5),
    (15, 2, 3, 1, 3),
    (15, 2, 3, 1, 1),
    (15, 3, 2, 2, 2),
    (64, 2, 3, 1000, 3, "large-G"),
    (40, 1, 2, 1000, 1, "large-G"),
    (4100, 3, 2, 5, 3, "batch-chunks"),
    # Span search: knots counted in SIMD lanes up to 64 of them (uniform ones up to 32),
    # binary search beyond, find_span's guess for uniform knots past 32; out 9 is under
    # one vector of float32 outputs and over one of float64.
    (130, 2, 9, 100, 3, "binary-search"),
    (130, 2, 5, 40, 3, "guessed-span"),
    # Forward tiles of 512 samples past 16 bases: two full tiles and a partial one.
    (1100, 2, 17, 20, 3, "long-tiles"),
    (130, 3, 17, 20, 2, "wide-out"),
    (300, 3, 1, 7, 2, "one-output"),
    (10, 2, 3, 4, 7, "runtime-k"),
    (10, 2, 2, 3, 15, "max-k"),
    (5, 0, 3, 5, 3, "no-inputs"),
    (5, 3, 0, 5, 3, "no-outputs"),
]
# Tiny odd shapes that the Triton interpreter also runs. Interpreter tiles are 16 wide,
# so these cover several sample / output / input / column blocks, several batch chunks in
# the weight gradient (B17, B33), the k extension intervals and a grid with many bases
# (G40). k=1 with x on knots (B6) is where half-open spans show in grad_x.
TRITON_SHAPES = [
    (1, 1, 1, 1, 1),
    (6, 2, 3, 4, 1),
    (7, 3, 5, 5, 3),
    (17, 4, 3, 11, 5),
    (0, 2, 3, 5, 3),
    (33, 2, 17, 3, 2),
    (5, 19, 2, 2, 4),
    (9, 2, 4, 40, 3),
]
NONFINITE_BASES = ("silu", "identity", "zero", "tanh")
NONFINITE_WEIGHT_GRADS = ("coef", "scale_base", "scale_sp", "mask")

KERNEL_TABLE = (
    _rows(CPU_SHAPES)
    + _rows(TRITON_SHAPES, triton=True)
    + _rows([(1000, 37, 70, 7, 3, "larger")], knots=("random",), dtypes=(torch.float32,),
            cuda=True)
    # Every knot (first and last included) and its floating-point neighbours on both
    # sides: the half-open order-0 rule decides the span; at the last knot every basis
    # is zero.
    # (Triton: k = 1, where half-open spans show in grad_x, and k = 3; k = 2 and 5 cost the
    # interpreter minutes.)
    + _rows([(1, 3, 4, 6, k) for k in (1, 3)], samples="knots", triton=True)
    + _rows([(1, 3, 4, 6, k) for k in (2, 5)], samples="knots")
    # A double interior knot, on each of the CPU kernels' knot paths (counted span,
    # narrow and wide; binary search; gathered knots) and at k = 1, 2, 3: pykan zeroes the
    # whole basis whose recursion meets 0/0 (nan_to_num of each order), and so do the
    # kernels. The reference's grad_x is NaN there (autograd through the 0/0 terms).
    + _rows([(80, 2, 3, 6, 3, "counted-span-narrow"), (80, 2, 20, 6, 3, "counted-span-wide"),
             (80, 2, 3, 100, 3, "binary-search"), (80, 2, 20, 600, 3, "gathered-knots")],
            knots=("repeated",), grad_of=("coef", "scale_base", "scale_sp", "mask"))
    + _rows([(16, 2, 3, 6, k) for k in (1, 2, 3)], knots=("repeated",), triton=True,
            grad_of=("coef", "scale_base", "scale_sp", "mask"))
    # NaN and +-inf samples: y and the weight gradients equal the reference's (NaN where
    # it has NaN); dL/dx where x is NaN or +-inf: the reference's (pykan's B_batch
    # backward gives NaN there).
    + [row for base in NONFINITE_BASES
       for row in _rows([(8, 3, 4, 5, 3)], samples="nonfinite", base_fun=base,
                        grad_of=NONFINITE_WEIGHT_GRADS, triton=base == "silu")]
    + [row for base in NONFINITE_BASES
       for row in _rows([(8, 3, 4, 5, 3)], knots=("uniform",), samples="nonfinite",
                        base_fun=base, grad_of=("x",))]
    # Every base function: SiLU and the kernels' base 0 (identity, zero: the base term in
    # torch), callables.
    + [row for base in ("silu", "identity", "zero", "tanh", "sin-x")
       for row in _rows([(25, 5, 6, 4, 3)], base_fun=base)]
    + [row for base in ("identity", "zero")
       for row in _rows([(7, 3, 5, 5, 3, "base-0")], knots=("random",), base_fun=base,
                        triton=True)]
)


def kernel_params(backend: str):
    """pytest params (id: the row's) of the table's rows for ``backend``."""
    return [pytest.param(row, id=row.id) for row in KERNEL_TABLE if backend in row.backends]


def check_kernel_case(row: KernelCase, backend: str, device="cpu"):
    """One table row on ``backend``: outputs and gradients against the reference
    (compare_with_reference), plus the row's own checks. Returns (got, want)."""
    case, x = row.build(device)
    got, want = compare_with_reference(case, row.k, row.base_fun, x=x, grad_of=row.grad_of,
                                       backend=backend)
    batch = case["x"].shape[0] if x is None else x.shape[0]
    assert got["y"].shape == (batch, row.out_dim)
    assert got["y"].dtype == row.dtype
    if row.samples == "random" and row.batch and row.in_dim and row.out_dim:
        # The case is not degenerate: some output and some gradient entry is non-zero.
        assert got["y"].abs().max() > 0 and got[row.grad_of[0]].abs().max() > 0
    if row.samples == "nonfinite":
        # The rows without non-finite samples stay finite.
        assert torch.isfinite(got["y"][5:]).all()
    return got, want
