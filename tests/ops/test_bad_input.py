"""Bad input: a ValueError or TypeError whose message names the argument, raised before any
kernel sees a pointer; the raw compiled entry points raise too and never crash."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import pykan_fast as pf
from pykan_fast._compiled import C
from support import assert_close, make_case

K = 3


@pytest.fixture
def valid():
    """A valid float64 call: x [4, 3], grid [3, 12] (G=5, k=3), coef [3, 2, 8]."""
    case = make_case(4, 3, 2, 5, K, torch.float64, "uniform")
    return dict(case, k=K, base_fun="silu")


def _call(args, backend):
    return pf.functional.kan_layer(args["x"], args["grid"], args["coef"], args["scale_base"],
                                   args["scale_sp"], args["mask"], args["k"], args["base_fun"],
                                   backend=args.get("backend", backend))


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_valid_call_runs(valid, backend):
    """The unmodified case is accepted, so each failure below comes from its one change."""
    assert _call(valid, backend).shape == (4, 2)


def _set(**changes):
    """A mutation: each value is a function of the valid case giving the new value."""
    def apply(args):
        new = dict(args)
        for name, fn in changes.items():
            new[name] = fn(args)
        return new
    return apply


def _unsorted(args):
    g = args["grid"].clone()
    g[1, 4], g[1, 5] = g[1, 5].item(), g[1, 4].item()
    return g


def _knot(value):
    def fn(args):
        g = args["grid"].clone()
        g[2, 6] = value
        return g
    return fn


def _short_grid(args):
    # 2k+1 knots (G = 0); coef matched to n_knots - k - 1 so only the grid is wrong.
    return args["grid"][:, : 2 * K + 1].contiguous()


F64, F32 = torch.float64, torch.float32

FUNCTIONAL_CASES = [
    # x
    ("x-rank1", _set(x=lambda a: a["x"][0]), ValueError, "x"),
    ("x-rank3", _set(x=lambda a: a["x"][None]), ValueError, "x"),
    ("x-rank0", _set(x=lambda a: a["x"][0, 0]), ValueError, "x"),
    ("x-numpy", _set(x=lambda a: a["x"].numpy()), TypeError, "x"),
    ("x-list", _set(x=lambda a: a["x"].tolist()), TypeError, "x"),
    ("x-int64", _set(x=lambda a: a["x"].long()), TypeError, "x"),
    ("x-bool", _set(x=lambda a: a["x"] > 0), TypeError, "x"),
    ("x-complex", _set(x=lambda a: a["x"].to(torch.complex128)), TypeError, "x"),
    ("x-wrong-in", _set(x=lambda a: a["x"][:, :2]), ValueError, "(x|grid)"),
    ("x-float32-others-float64", _set(x=lambda a: a["x"].float()), TypeError, "x"),
    # grid
    ("grid-rank1", _set(grid=lambda a: a["grid"][0]), ValueError, "grid"),
    ("grid-rank3", _set(grid=lambda a: a["grid"][None]), ValueError, "grid"),
    ("grid-rows", _set(grid=lambda a: a["grid"][:2]), ValueError, "grid"),
    ("grid-too-short", _set(grid=_short_grid, coef=lambda a: a["coef"][:, :, :K]), ValueError, "grid"),
    ("grid-one-knot", _set(grid=lambda a: a["grid"][:, :1], coef=lambda a: a["coef"][:, :, :0]),
     ValueError, "grid"),
    ("grid-unsorted", _set(grid=_unsorted), ValueError, "grid"),
    ("grid-descending", _set(grid=lambda a: a["grid"].flip(1)), ValueError, "grid"),
    ("grid-nan", _set(grid=_knot(math.nan)), ValueError, "grid"),
    ("grid-inf", _set(grid=_knot(math.inf)), ValueError, "grid"),
    ("grid-last-inf", _set(grid=lambda a: torch.cat(
        [a["grid"][:, :-1], torch.full((3, 1), math.inf, dtype=F64)], 1)), ValueError, "grid"),
    ("grid-numpy", _set(grid=lambda a: a["grid"].numpy()), TypeError, "grid"),
    ("grid-float32", _set(grid=lambda a: a["grid"].float()), TypeError, "grid"),
    ("grid-int64", _set(grid=lambda a: a["grid"].long()), TypeError, "grid"),
    ("grid-meta-device", _set(grid=lambda a: a["grid"].to("meta")), ValueError, "grid"),
    # coef
    ("coef-rank2", _set(coef=lambda a: a["coef"][:, 0]), ValueError, "coef"),
    ("coef-rank4", _set(coef=lambda a: a["coef"][None]), ValueError, "coef"),
    ("coef-rows", _set(coef=lambda a: a["coef"][:2]), ValueError, "coef"),
    ("coef-n-basis-minus-1", _set(coef=lambda a: a["coef"][:, :, :-1]), ValueError, "coef"),
    ("coef-n-basis-plus-1", _set(coef=lambda a: torch.cat([a["coef"], a["coef"][:, :, :1]], 2)),
     ValueError, "coef"),
    ("coef-float32", _set(coef=lambda a: a["coef"].float()), TypeError, "coef"),
    ("coef-int64", _set(coef=lambda a: a["coef"].long()), TypeError, "coef"),
    ("coef-numpy", _set(coef=lambda a: a["coef"].numpy()), TypeError, "coef"),
    ("coef-meta-device", _set(coef=lambda a: a["coef"].to("meta")), ValueError, "coef"),
]
for _name in ("scale_base", "scale_sp", "mask"):
    FUNCTIONAL_CASES += [
        (f"{_name}-transposed", _set(**{_name: lambda a, n=_name: a[n].T}), ValueError, _name),
        (f"{_name}-rank1", _set(**{_name: lambda a, n=_name: a[n][:, 0]}), ValueError, _name),
        (f"{_name}-rank3", _set(**{_name: lambda a, n=_name: a[n][None]}), ValueError, _name),
        (f"{_name}-out-minus-1", _set(**{_name: lambda a, n=_name: a[n][:, :1]}), ValueError, _name),
        (f"{_name}-float32", _set(**{_name: lambda a, n=_name: a[n].float()}), TypeError, _name),
        (f"{_name}-int64", _set(**{_name: lambda a, n=_name: a[n].long()}), TypeError, _name),
        (f"{_name}-bool", _set(**{_name: lambda a, n=_name: a[n] > 0}), TypeError, _name),
        (f"{_name}-numpy", _set(**{_name: lambda a, n=_name: a[n].numpy()}), TypeError, _name),
        (f"{_name}-meta-device", _set(**{_name: lambda a, n=_name: a[n].to("meta")}), ValueError, _name),
    ]
FUNCTIONAL_CASES += [
    # k
    ("k-0", _set(k=lambda a: 0), ValueError, "k"),
    ("k-negative", _set(k=lambda a: -1), ValueError, "k"),
    ("k-16", _set(k=lambda a: 16), ValueError, "k"),
    ("k-float", _set(k=lambda a: 3.0), TypeError, "k"),
    ("k-str", _set(k=lambda a: "3"), TypeError, "k"),
    ("k-bool", _set(k=lambda a: True), TypeError, "k"),
    ("k-none", _set(k=lambda a: None), TypeError, "k"),
    ("k-tensor", _set(k=lambda a: torch.tensor(3)), TypeError, "k"),
    # k valid but inconsistent with the grid/coef shapes
    ("k-2-with-k3-shapes", _set(k=lambda a: 2), ValueError, "coef"),
    # base_fun
    ("base_fun-relu", _set(base_fun=lambda a: "relu"), ValueError, "base_fun"),
    ("base_fun-SiLU-case", _set(base_fun=lambda a: "SiLU"), ValueError, "base_fun"),
    ("base_fun-empty", _set(base_fun=lambda a: ""), ValueError, "base_fun"),
    ("base_fun-none", _set(base_fun=lambda a: None), ValueError, "base_fun"),
    ("base_fun-int", _set(base_fun=lambda a: 3), ValueError, "base_fun"),
]


@pytest.mark.parametrize("backend", ["cpu", "torch"])
@pytest.mark.parametrize("mutate,error,name", [
    pytest.param(m, e, n, id=i) for i, m, e, n in FUNCTIONAL_CASES])
def test_functional_rejects(valid, mutate, error, name, backend):
    args = mutate(valid)
    with pytest.raises(error, match=rf"^{name}\b"):
        _call(args, backend)


@pytest.mark.parametrize("backend", ["bogus", "CPU", "cuda", "", "reference", 3])
def test_unknown_backend_argument(valid, backend):
    with pytest.raises(ValueError, match=r"^backend\b"):
        _call(valid, backend)


def test_triton_backend_needs_cuda_tensors(valid):
    # TRITON_INTERPRET is unset by conftest's autouse fixture.
    with pytest.raises((ValueError, RuntimeError), match=r"^(backend\b|the triton backend)"):
        _call(valid, "triton")


@pytest.mark.parametrize("value", ["bogus", "CPU", "Torch", "cuda"])
def test_unknown_backend_env_var(valid, monkeypatch, value):
    monkeypatch.setenv("PYKAN_FAST_BACKEND", value)
    with pytest.raises(ValueError, match=r"^PYKAN_FAST_BACKEND\b"):
        _call(valid, None)


def test_backend_argument_overrides_bad_env_var(valid, monkeypatch):
    monkeypatch.setenv("PYKAN_FAST_BACKEND", "bogus")
    assert _call(valid, "torch").shape == (4, 2)


# ---- the layer -----------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,error,name", [
    pytest.param(dict(in_dim=0), ValueError, "in_dim", id="in_dim-0"),
    pytest.param(dict(in_dim=-2), ValueError, "in_dim", id="in_dim-negative"),
    pytest.param(dict(in_dim=2.5), (ValueError, TypeError), "in_dim", id="in_dim-float"),
    pytest.param(dict(out_dim=0), ValueError, "out_dim", id="out_dim-0"),
    pytest.param(dict(out_dim=True), (ValueError, TypeError), "out_dim", id="out_dim-bool"),
    pytest.param(dict(grid=0), ValueError, "grid", id="grid-0"),
    pytest.param(dict(grid="5"), (ValueError, TypeError), "grid", id="grid-str"),
    pytest.param(dict(k=0), ValueError, "k", id="k-0"),
    pytest.param(dict(k=16), ValueError, "k", id="k-16"),
    pytest.param(dict(k=2.0), TypeError, "k", id="k-float"),
    pytest.param(dict(grid_range=(1.0, -1.0)), ValueError, "grid_range", id="grid_range-reversed"),
    pytest.param(dict(grid_range=(1.0, 1.0)), ValueError, "grid_range", id="grid_range-empty"),
    pytest.param(dict(grid_range=(0.0, 1.0, 2.0)), ValueError, "grid_range", id="grid_range-3"),
])
def test_layer_constructor_rejects(kwargs, error, name):
    args = dict(in_dim=3, out_dim=2)
    args.update(kwargs)
    with pytest.raises(error, match=rf"^{name}\b"):
        pf.KANLayer(**args)


@pytest.mark.parametrize("base_fun", ["relu", None])
def test_layer_unknown_base_fun(base_fun):
    # Rejected at construction or, at the latest, on the first call.
    with pytest.raises(ValueError, match=r"^base_fun\b"):
        layer = pf.KANLayer(3, 2, base_fun=base_fun)
        layer(torch.zeros(4, 3))


def test_layer_unknown_backend():
    with pytest.raises(ValueError, match=r"^backend\b"):
        layer = pf.KANLayer(3, 2, backend="bogus")
        layer(torch.zeros(4, 3))


@pytest.mark.parametrize("x", [
    pytest.param(torch.zeros(4), id="rank1"),
    pytest.param(torch.zeros(4, 3, 1), id="rank3"),
    pytest.param(torch.zeros(4, 3, dtype=torch.int64), id="int64"),
    pytest.param(torch.zeros(4, 3, dtype=torch.float64), id="float64-vs-float32-params"),
])
def test_layer_forward_rejects_x(x):
    layer = pf.KANLayer(3, 2)
    with pytest.raises((ValueError, TypeError)):
        layer(x)


def test_layer_forward_wrong_input_count_names_x():
    layer = pf.KANLayer(3, 2)
    with pytest.raises(ValueError, match=r"\bx\b"):
        layer(torch.zeros(4, 4))


@pytest.mark.parametrize("write", ["in_place", "through_data", "assigned"])
@pytest.mark.parametrize("value", [math.nan, 5.0], ids=["nan", "unsorted"])
def test_grid_broken_after_a_valid_call_is_still_rejected(write, value):
    """check_grid skips grids it has seen unchanged; every way of changing one is caught
    (in-place writes bump the version, .data writes do not but the kernels check the knots
    too, assignment is a new tensor)."""
    layer = pf.KANLayer(2, 3)
    x = torch.rand(4, 2)
    layer(x)
    if write == "in_place":
        with torch.no_grad():
            layer.grid[0, 3] = value
    elif write == "through_data":
        layer.grid.data[0, 3] = value
    else:
        grid = layer.grid.detach().clone()
        grid[0, 3] = value
        layer.grid = torch.nn.Parameter(grid, requires_grad=False)
    with pytest.raises(ValueError, match="grid"):
        layer(x)


# ---- the raw compiled entry points ---------------------------------------------------


@pytest.fixture(params=[np.float64, np.float32], ids=["f64", "f32"])
def raw(request):
    """Valid numpy arguments of C.forward / C.backward: B=4, in=3, out=2, G=5, k=3."""
    dt = request.param
    rng = np.random.default_rng(0)
    grid = np.ascontiguousarray(np.broadcast_to(np.linspace(-1.0, 1.0, 12) * 1.6, (3, 12))).astype(dt)
    return dict(
        x=rng.uniform(-1, 1, (4, 3)).astype(dt),
        grid=grid,
        spline_weight=rng.standard_normal((3, 8, 2)).astype(dt),
        base_weight=rng.standard_normal((3, 2)).astype(dt),
        y=np.zeros((4, 2), dt),
        grad_y=rng.standard_normal((4, 2)).astype(dt),
        grad_x=np.zeros((4, 3), dt),
        grad_spline_weight=np.zeros((3, 8, 2), dt),
        grad_base_weight=np.zeros((3, 2), dt),
        k=3, base=1, threads=1,
    )


FORWARD_ARGS = ("x", "grid", "spline_weight", "base_weight", "y", "k", "base", "threads")
BACKWARD_ARGS = ("x", "grid", "spline_weight", "base_weight", "grad_y", "grad_x",
                 "grad_spline_weight", "grad_base_weight", "k", "base", "threads")


def _raw_forward(a):
    return C.forward(*(a[n] for n in FORWARD_ARGS))


def _raw_backward(a):
    return C.backward(*(a[n] for n in BACKWARD_ARGS))


def test_raw_valid_calls_match_reference(raw):
    """The valid raw arguments work and agree with the reference, so each failure below
    comes from its one change."""
    a = dict(raw)
    _raw_forward(a)
    t = {n: torch.from_numpy(a[n]) for n in ("x", "grid", "spline_weight", "base_weight")}
    # spline_weight [in, n_basis, out] = coef * scale_sp * mask transposed; base_weight = scale_base * mask.
    coef = t["spline_weight"].transpose(1, 2)
    ones = torch.ones_like(t["base_weight"])
    want = pf.ops.reference.kan_layer_reference(t["x"], t["grid"], coef, t["base_weight"], ones, ones, 3)
    rtol = 1e-10 if a["x"].dtype == np.float64 else 1e-5
    assert_close(torch.from_numpy(a["y"]), want, rtol, "y")
    _raw_backward(a)
    assert np.abs(a["grad_x"]).max() > 0 and np.abs(a["grad_spline_weight"]).max() > 0
    assert np.abs(a["grad_base_weight"]).max() > 0
    # Every output optional.
    C.backward(*(None if n.startswith("grad_") and n != "grad_y" else a[n] for n in BACKWARD_ARGS))


def _other(dt):
    return np.float32 if dt == np.float64 else np.float64


def _fortran(a):
    return np.asfortranarray(a)


def _strided(a):
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def _readonly(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def _byteswapped(a):
    return a.astype(a.dtype.newbyteorder(">" if a.dtype.byteorder in "=<" else "<"))


def _r(name, fn):
    def apply(a):
        new = dict(a)
        new[name] = fn(a)
        return new
    return apply


COMMON_RAW_CASES = [
    ("x-float16", _r("x", lambda a: a["x"].astype(np.float16)), TypeError, "x"),
    ("x-int32", _r("x", lambda a: a["x"].astype(np.int32)), TypeError, "x"),
    ("x-byteswapped", _r("x", lambda a: _byteswapped(a["x"])), TypeError, "x"),
    ("x-fortran", _r("x", lambda a: _fortran(a["x"])), ValueError, "x"),
    ("x-strided", _r("x", lambda a: _strided(a["x"])), ValueError, "x"),
    ("x-reversed", _r("x", lambda a: a["x"][::-1]), ValueError, "x"),
    ("x-rank1", _r("x", lambda a: a["x"][0].copy()), ValueError, "x"),
    ("x-rank3", _r("x", lambda a: a["x"][None].copy()), ValueError, "x"),
    ("x-wrong-in", _r("x", lambda a: a["x"][:, :2].copy()), ValueError, "grid"),
    ("grid-other-dtype", _r("grid", lambda a: a["grid"].astype(_other(a["x"].dtype))), TypeError, "grid"),
    ("grid-fortran", _r("grid", lambda a: _fortran(a["grid"])), ValueError, "grid"),
    ("grid-rank1", _r("grid", lambda a: a["grid"][0].copy()), ValueError, "grid"),
    ("grid-rows", _r("grid", lambda a: a["grid"][:2].copy()), ValueError, "grid"),
    ("grid-unsorted", _r("grid", lambda a: a["grid"][:, ::-1].copy()), ValueError, "grid"),
    ("grid-nan", _r("grid", lambda a: np.where(np.arange(12) == 5, np.nan, a["grid"]).astype(a["grid"].dtype)),
     ValueError, "grid"),
    ("grid-inf", _r("grid", lambda a: np.where(np.arange(12) == 11, np.inf, a["grid"]).astype(a["grid"].dtype)),
     ValueError, "grid"),
    ("grid-too-short", _r("grid", lambda a: a["grid"][:, :7].copy()), ValueError, "grid"),
    ("grid-empty", _r("grid", lambda a: a["grid"][:, :0].copy()), ValueError, "grid"),
    ("spline_weight-other-dtype", _r("spline_weight", lambda a: a["spline_weight"].astype(_other(a["x"].dtype))),
     TypeError, "spline_weight"),
    ("spline_weight-strided", _r("spline_weight", lambda a: _strided(a["spline_weight"])),
     ValueError, "spline_weight"),
    ("spline_weight-rank2", _r("spline_weight", lambda a: a["spline_weight"][:, :, 0].copy()),
     ValueError, "spline_weight"),
    ("spline_weight-n-basis", _r("spline_weight", lambda a: a["spline_weight"][:, :7].copy()),
     ValueError, "spline_weight"),
    ("spline_weight-rows", _r("spline_weight", lambda a: a["spline_weight"][:2].copy()),
     ValueError, "spline_weight"),
    ("base_weight-other-dtype", _r("base_weight", lambda a: a["base_weight"].astype(_other(a["x"].dtype))),
     TypeError, "base_weight"),
    ("base_weight-fortran", _r("base_weight", lambda a: _fortran(a["base_weight"])), ValueError, "base_weight"),
    ("base_weight-shape", _r("base_weight", lambda a: a["base_weight"][:, :1].copy()), ValueError, "base_weight"),
    ("base_weight-rank3", _r("base_weight", lambda a: a["base_weight"][None].copy()), ValueError, "base_weight"),
    ("k-0", _r("k", lambda a: 0), ValueError, "k"),
    ("k-16", _r("k", lambda a: 16), ValueError, "k"),
    ("k-2-vs-k3-shapes", _r("k", lambda a: 2), ValueError, "spline_weight"),
    ("base-2", _r("base", lambda a: 2), ValueError, "base"),
    ("base-negative", _r("base", lambda a: -1), ValueError, "base"),
    ("threads-0", _r("threads", lambda a: 0), ValueError, "threads"),
    ("threads-negative", _r("threads", lambda a: -3), ValueError, "threads"),
    # Rejected by pybind11's argument conversion (noconvert arrays, int casts): TypeError.
    ("x-torch-tensor", _r("x", lambda a: torch.from_numpy(a["x"])), TypeError, ""),
    ("x-list", _r("x", lambda a: a["x"].tolist()), TypeError, ""),
    ("x-none", _r("x", lambda a: None), TypeError, ""),
    ("k-float", _r("k", lambda a: 3.0), TypeError, ""),
    ("threads-none", _r("threads", lambda a: None), TypeError, ""),
]

FORWARD_RAW_CASES = COMMON_RAW_CASES + [
    ("y-other-dtype", _r("y", lambda a: a["y"].astype(_other(a["x"].dtype))), TypeError, "y"),
    ("y-fortran", _r("y", lambda a: _fortran(a["y"])), ValueError, "y"),
    ("y-strided", _r("y", lambda a: _strided(a["y"])), ValueError, "y"),
    ("y-readonly", _r("y", lambda a: _readonly(a["y"])), ValueError, "y"),
    ("y-shape", _r("y", lambda a: a["y"][:3].copy()), ValueError, "y"),
    ("y-rank1", _r("y", lambda a: a["y"][0].copy()), ValueError, "y"),
    ("y-none", _r("y", lambda a: None), TypeError, ""),
]

BACKWARD_RAW_CASES = COMMON_RAW_CASES + [
    ("grad_y-other-dtype", _r("grad_y", lambda a: a["grad_y"].astype(_other(a["x"].dtype))),
     TypeError, "grad_y"),
    ("grad_y-fortran", _r("grad_y", lambda a: _fortran(a["grad_y"])), ValueError, "grad_y"),
    ("grad_y-shape", _r("grad_y", lambda a: a["grad_y"][:, :1].copy()), ValueError, "grad_y"),
    ("grad_y-none", _r("grad_y", lambda a: None), TypeError, ""),
]
for _out in ("grad_x", "grad_spline_weight", "grad_base_weight"):
    BACKWARD_RAW_CASES += [
        (f"{_out}-other-dtype", _r(_out, lambda a, n=_out: a[n].astype(_other(a["x"].dtype))), TypeError, _out),
        (f"{_out}-strided", _r(_out, lambda a, n=_out: _strided(a[n])), ValueError, _out),
        (f"{_out}-readonly", _r(_out, lambda a, n=_out: _readonly(a[n])), ValueError, _out),
        (f"{_out}-shape", _r(_out, lambda a, n=_out: a[n][:1].copy()), ValueError, _out),
        (f"{_out}-rank", _r(_out, lambda a, n=_out: a[n][None].copy()), ValueError, _out),
        (f"{_out}-list", _r(_out, lambda a, n=_out: a[n].tolist()), TypeError, _out),
        (f"{_out}-torch-tensor", _r(_out, lambda a, n=_out: torch.from_numpy(a[n])), TypeError, _out),
    ]


@pytest.mark.parametrize("mutate,error,name", [
    pytest.param(m, e, n, id=i) for i, m, e, n in FORWARD_RAW_CASES])
def test_raw_forward_rejects(raw, mutate, error, name):
    a = mutate(raw)
    with pytest.raises(error, match=rf"^{name}\b" if name else None):
        _raw_forward(a)


@pytest.mark.parametrize("mutate,error,name", [
    pytest.param(m, e, n, id=i) for i, m, e, n in BACKWARD_RAW_CASES])
def test_raw_backward_rejects(raw, mutate, error, name):
    a = mutate(raw)
    with pytest.raises(error, match=rf"^{name}\b" if name else None):
        _raw_backward(a)

