"""Higher-order derivatives through the fused kernels (issue 6.2): the derivative-order
ops against autograd of the dense reference, gradgradcheck, third order (a PINN's loss on
d2y/dx2, differentiated for training), and a Laplacian against pykan's own autograd."""

from __future__ import annotations

import pytest
import torch
from torch.func import jvp

import pykan_fast as pf
from pykan_fast.ops import autograd as ops
from pykan_fast.ops.functional import fold_weights, kan_layer
from pykan_fast.experiments.pde import laplacian
from pykan_fast.ops.reference import b_batch
from support import RTOL, assert_close, knots_as_samples, make_case

CASES = [  # (batch, in, out, G, k, grid kind)
    (5, 3, 2, 4, 3, "uniform"),
    (7, 2, 3, 5, 1, "random"),
    (6, 1, 1, 3, 2, "random"),
    (4, 2, 5, 6, 4, "random"),
    (3, 3, 2, 7, 5, "uniform"),
]


def _ids(cases):
    return [f"B{b}-in{i}-out{o}-G{g}-k{k}-{kind}" for b, i, o, g, k, kind in cases]


IDS = _ids(CASES)
# Several tiles of 256 samples and full SIMD vectors of samples; both backward tiles
# (out <= 8: the narrow one, a vector of samples per weight row; out > 8: per sample).
LARGE = [(600, 3, 4, 5, 3, "uniform"), (530, 2, 2, 40, 3, "random"),
         (300, 2, 11, 6, 2, "random"), (290, 1, 8, 7, 5, "uniform"),
         (280, 1, 3, 520, 3, "random")]  # past 512 knots the tile is not span-sorted
LARGE_IDS = _ids(LARGE)


def _case(batch, in_dim, out_dim, num, k, kind, dtype=torch.float64, seed=0):
    case = make_case(batch, in_dim, out_dim, num, k, dtype=dtype, knots=kind, seed=seed,
                     outside=0.1)
    # Samples exactly on knots too (the derivative bases are one-sided there, as pykan's).
    on_knots = knots_as_samples(case["grid"])[1:-1:2]
    case["x"] = torch.cat([case["x"], on_knots]).contiguous()
    return case


def _reference_derivative_bases(x, grid, k, order):
    """B^(order)_j(x) `[B, in, G+k]` by nested forward-mode autograd of pykan's dense
    B_batch (each basis depends on its own x[b, i] only, so a jvp with ones is the
    elementwise derivative). Above order k the pieces are constants' derivatives: 0."""
    if order > k:
        return torch.zeros(*x.shape, grid.shape[1] - k - 1, dtype=x.dtype)

    def bases(t):
        return b_batch(t, grid, k)

    fn = bases
    for _ in range(order):
        fn = (lambda inner: lambda t: jvp(inner, (t,), (torch.ones_like(t),))[1])(fn)
    return fn(x.detach())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case_args", CASES + LARGE, ids=IDS + LARGE_IDS)
def test_derivative_ops_match_dense_reference(case_args, dtype):
    case = _case(*case_args, dtype=dtype)
    k = case_args[4]
    x, grid = case["x"], case["grid"]
    g = torch.Generator().manual_seed(3)
    weight = torch.randn(grid.shape[0], grid.shape[1] - k - 1, case["coef"].shape[1],
                         generator=g, dtype=torch.float64).to(dtype)
    scale = torch.randn(x.shape, generator=g, dtype=torch.float64).to(dtype)
    grad_y = torch.randn(x.shape[0], weight.shape[2], generator=g, dtype=torch.float64).to(dtype)
    w64, s64, gy64 = weight.double(), scale.double(), grad_y.double()
    rtol = RTOL[dtype] * (10 if dtype == torch.float32 else 100)
    for order in range(k + 2):
        bases = _reference_derivative_bases(x.double(), grid.double(), k, order)
        above = _reference_derivative_bases(x.double(), grid.double(), k, order + 1)
        for s in (None, scale):
            y = ops.spline_derivative(x, grid, weight, s, k, order, "cpu")
            rows = torch.ones_like(s64) if s is None else s64
            want = torch.einsum("bi,bij,ijo->bo", rows, bases, w64)
            assert_close(y, want.to(dtype), rtol, f"y order {order}")
            t0, t1, gw = ops.spline_derivative_backward(x, grid, weight, s, grad_y, k, order,
                                                        "cpu", True, True, True)
            assert_close(t0, torch.einsum("bo,ijo,bij->bi", gy64, w64, bases).to(dtype),
                                  rtol, f"t0 order {order}")
            assert_close(t1, torch.einsum("bo,ijo,bij->bi", gy64, w64, above).to(dtype),
                                  rtol, f"t1 order {order}")
            assert_close(gw, torch.einsum("bi,bij,bo->ijo", rows, bases, gy64).to(dtype),
                                  rtol, f"grad_weight order {order}")


@pytest.mark.parametrize("base_fun", ["silu", "identity"])
@pytest.mark.parametrize("case_args", CASES, ids=IDS)
def test_gradgradcheck(case_args, base_fun):
    case = _case(*case_args)
    k = case_args[4]
    # gradcheck's finite differences must not straddle a knot: keep x off the knots.
    case["x"] = case["x"][: case_args[0]] + 1e-3

    def layer(x, coef, scale_base, scale_sp):
        return kan_layer(x, case["grid"], coef, scale_base, scale_sp, case["mask"], k,
                         base_fun, "cpu")

    inputs = tuple(case[n].clone().requires_grad_(True)
                   for n in ("x", "coef", "scale_base", "scale_sp"))
    assert torch.autograd.gradcheck(layer, inputs)
    assert torch.autograd.gradgradcheck(layer, inputs)


def _second_derivative_loss(backend, case, k, base_fun="silu"):
    """sum((d2y/dx2)^2) for y summed over outputs, and its gradients: third derivatives."""
    leaves = {n: case[n].clone().requires_grad_(True)
              for n in ("x", "coef", "scale_base", "scale_sp")}
    y = kan_layer(leaves["x"], case["grid"], leaves["coef"], leaves["scale_base"],
                  leaves["scale_sp"], case["mask"], k, base_fun, backend)
    weights = torch.linspace(0.5, 1.5, y.shape[1], dtype=y.dtype)
    (dx,) = torch.autograd.grad((y * weights).sum(), leaves["x"], create_graph=True)
    (dxx,) = torch.autograd.grad(dx.sum(), leaves["x"], create_graph=True)
    loss = (dxx ** 2).sum() + (dx ** 3).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return {"dx": dx.detach(), "dxx": dxx.detach(),
            **{n: g for n, g in zip(leaves, grads)}}


@pytest.mark.parametrize("case_args", CASES, ids=IDS)
def test_third_order_matches_reference(case_args):
    case = _case(*case_args)
    k = case_args[4]
    got = _second_derivative_loss("cpu", case, k)
    want = _second_derivative_loss("torch", case, k)
    assert_close(got, want, 1e-9)


@pytest.mark.parametrize("order", [0, 1, 2, 3])
@pytest.mark.parametrize("case_args", CASES[1:4] + LARGE, ids=IDS[1:4] + LARGE_IDS)
def test_derivative_backward_same_on_one_and_two_threads(restore_threads, case_args,
                                                          order):
    """One thread takes the single pass (each sample's bases serve T and the weight
    gradient); more threads split the batch for T and the inputs for the weight gradient.
    Same operations in the same order: equal results."""
    case = _case(*case_args)
    k = case_args[4]
    sw, _ = fold_weights(case["coef"], case["scale_base"], case["scale_sp"], case["mask"])
    g = torch.Generator().manual_seed(5)
    scale = torch.randn(case["x"].shape, generator=g, dtype=torch.float64)
    grad_y = torch.randn(case["x"].shape[0], sw.shape[2], generator=g, dtype=torch.float64)
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        results.append(ops.spline_derivative_backward(case["x"], case["grid"], sw, scale, grad_y,
                                                      k, order, "cpu", True, True, True))
    for one, two in zip(*results):
        assert torch.equal(one, two)
    if order <= k:  # above k the derivatives vanish
        assert results[0][2].abs().sum() > 0


def test_double_backward_does_not_build_dense_bases(monkeypatch):
    """The create_graph path runs on the derivative ops, never on the dense reference."""
    import pykan_fast.ops.reference as reference

    def forbidden(*args, **kwargs):
        raise AssertionError("the dense reference was called")

    monkeypatch.setattr(reference, "b_batch", forbidden)
    monkeypatch.setattr(reference, "kan_layer_reference", forbidden)
    layer = pf.KANLayer(3, 2, grid=5, k=3).double()
    x = torch.rand(9, 3, dtype=torch.float64, requires_grad=True)
    (dx,) = torch.autograd.grad(layer(x).sum(), x, create_graph=True)
    (dx ** 2).sum().backward()
    assert torch.isfinite(layer.coef.grad).all() and torch.isfinite(x.grad).all()


def test_plain_backward_takes_the_fused_kernel(backward_kernel_calls):
    """Without create_graph, backward() runs the fused first-order kernel only."""
    layer = pf.KANLayer(3, 2)
    layer(torch.rand(8, 3)).sum().backward()
    assert backward_kernel_calls == {"fused": 1, "derivative": 0}


def test_laplacian_of_a_model_matches_the_reference_backend():
    x = torch.rand(40, 2, dtype=torch.float64) * 2 - 1
    values = {}
    for backend in ("cpu", "torch"):
        model = pf.KAN(width=[2, 3, 1], grid=5, k=3, seed=2, dtype=torch.float64,
                       backend=backend)
        xb = x.clone().requires_grad_(True)
        lap = laplacian(model, xb)
        (lap ** 2).sum().backward()
        values[backend] = (lap.detach(), model.act_fun[0].coef.grad, xb.grad)
    for got, want in zip(values["cpu"], values["torch"]):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_laplacian_matches_pykan(multkan, float64_default):
    """Same network in pykan (its dense autograd) and here: equal Laplacians and equal
    parameter gradients of a loss on them."""
    reference = multkan([2, 3, 1], grid=5, k=3, seed=0)
    ours = pf.KAN.from_pykan(reference)
    x = torch.rand(30, 2) * 2 - 1
    results = []
    for model in (reference, ours):
        xb = x.clone().requires_grad_(True)
        lap = laplacian(model, xb)
        loss = (lap ** 2).mean()
        loss.backward()
        results.append((lap.detach(), model.act_fun[0].coef.grad.clone(),
                        model.act_fun[1].coef.grad.clone()))
    for got, want in zip(results[1], results[0]):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_laplacian_rejects_bad_input():
    model = pf.KAN(width=[2, 2], grid=3, k=3)
    with pytest.raises(ValueError, match="x: expected a tensor with requires_grad"):
        laplacian(model, torch.rand(3, 2))
    two_outputs = pf.KAN(width=[2, 2], grid=3, k=3)
    with pytest.raises(ValueError, match=r"fn: expected outputs of shape \[B, 1\]"):
        laplacian(two_outputs, torch.rand(3, 2, requires_grad=True))


def test_derivative_ops_reject_bad_input():
    layer = pf.KANLayer(2, 3, grid=4, k=3)
    sw, _ = fold_weights(layer.coef.detach(), layer.scale_base.detach(),
                         layer.scale_sp.detach(), layer.mask)
    x = torch.rand(5, 2)
    with pytest.raises(ValueError, match="order: expected a derivative order >= 0"):
        ops.spline_derivative(x, layer.grid, sw, None, 3, -1, "cpu")
    with pytest.raises(ValueError, match=r"row_scale: expected shape \[5, 2\]"):
        ops.spline_derivative(x, layer.grid, sw, torch.ones(5, 3), 3, 1, "cpu")
    with pytest.raises(TypeError, match="row_scale: expected dtype float32"):
        ops.spline_derivative(x, layer.grid, sw, torch.ones(5, 2, dtype=torch.float64), 3, 1,
                              "cpu")
    with pytest.raises(ValueError, match=r"grad_y: expected shape \[5, 3\]"):
        ops.spline_derivative_backward(x, layer.grid, sw, None, torch.ones(5, 2), 3, 0, "cpu",
                                       True, True, True)


def _poisson_like_gradients(model, x):
    """A PINN loss's parameter gradients: Laplacian (two nested create_graph grads),
    then backward: third derivatives through the derivative ops."""
    model.zero_grad()
    loss = torch.mean(laplacian(model, x) ** 2) + torch.mean(model(x) ** 2)
    loss.backward()
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_eager_derivative_path_skips_the_custom_ops_with_the_same_bits(monkeypatch):
    """In eager mode the double backward runs on the derivative ops' autograd.Functions,
    never the torch.library ops (whose dispatch cost ~40% of a Poisson step), with the
    custom ops' results bit for bit."""
    model = pf.KAN([2, 5, 1], grid=5, k=3, seed=2, dtype=torch.float64, backend="cpu")
    x = (torch.rand(40, 2, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    eager_ops = ops.EAGER_OPS
    monkeypatch.setattr(ops, "EAGER_OPS", ops.CUSTOM_OPS)
    want = _poisson_like_gradients(model, x)

    def refuse(*args, **kwargs):
        raise AssertionError("the eager path called a torch.library derivative op")

    monkeypatch.setattr(ops, "EAGER_OPS", eager_ops)
    monkeypatch.setattr(ops, "CUSTOM_OPS", ops._DerivativeOps(refuse, refuse))
    got = _poisson_like_gradients(model, x)
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        assert torch.equal(g, w)
