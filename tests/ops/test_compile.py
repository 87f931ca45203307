"""torch.compile (issue 6.1): the kernels are torch.library custom ops with fake kernels
and autograd, so a model with KANLayers compiles into one graph (no breaks) and gives the
eager numbers, forward and backward; ``torch.library.opcheck`` passes on every op."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo

import pykan_fast as pf
from pykan_fast.ops import autograd as ops


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _model(base_fun="silu", dtype=torch.float64):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        pf.KANLayer(3, 5, grid=7, k=3, base_fun=base_fun, backend="cpu"),
        torch.nn.LayerNorm(5),
        pf.KANLayer(5, 2, grid=4, k=2, base_fun=base_fun, backend="cpu"),
    ).to(dtype)


def _inputs(dtype=torch.float64, batch=17):
    g = torch.Generator().manual_seed(1)
    return (torch.rand(batch, 3, generator=g, dtype=dtype) * 2.4 - 1.2).requires_grad_(True)


@pytest.mark.parametrize("base_fun", ["silu", "identity"])
def test_model_compiles_without_graph_breaks(base_fun):
    model, x = _model(base_fun), _inputs()
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("compiler", ["aot_eager", "inductor"])
def test_compiled_model_matches_eager_forward_and_backward(compiler):
    model, x = _model(), _inputs()
    compiled = torch.compile(model, backend=compiler, fullgraph=True)

    params = [p for p in model.parameters() if p.requires_grad]
    y = model(x)
    gx, *gp = torch.autograd.grad(y.square().sum(), [x, *params])
    yc = compiled(x)
    gxc, *gpc = torch.autograd.grad(yc.square().sum(), [x, *params])

    torch.testing.assert_close(yc, y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gxc, gx, rtol=1e-10, atol=1e-12)
    for a, b in zip(gpc, gp):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_compiled_backward_takes_the_fused_kernel(backward_kernel_calls):
    """The compiled backward runs the fused first-order op, not the derivative ops."""
    model, x = _model(), _inputs()
    torch.compile(model, backend="aot_eager", fullgraph=True)(x).sum().backward()
    assert backward_kernel_calls == {"fused": 2, "derivative": 0}


def _op_samples(dtype):
    g = torch.Generator().manual_seed(2)
    batch, n_in, n_out, k, n_basis = 9, 3, 4, 3, 8
    grid = torch.linspace(-1.6, 1.6, n_basis + k + 1, dtype=dtype).repeat(n_in, 1)
    grid[1] = torch.sort(torch.rand(n_basis + k + 1, generator=g, dtype=dtype) * 3.2 - 1.6).values
    x = torch.rand(batch, n_in, generator=g, dtype=dtype) * 2 - 1

    def param(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    w, bw, gy, s = param(n_in, n_basis, n_out), param(n_in, n_out), param(batch, n_out), param(batch, n_in)
    return [
        (ops.kan_forward, (x, grid, w, bw, k, 1, "cpu")),
        (ops.kan_forward, (x, grid, w, bw, k, 0, "cpu")),
        (ops.kan_backward, (x, grid, w, bw, gy, k, 1, "cpu", True, True, True)),
        (ops.kan_backward, (x, grid, w, bw, gy, k, 0, "cpu", True, False, True)),
        (ops.spline_derivative, (x, grid, w, None, k, 1, "cpu")),
        (ops.spline_derivative, (x, grid, w, s, k, 2, "cpu")),
        (ops.spline_derivative_backward, (x, grid, w, s, gy, k, 1, "cpu", True, True, True)),
        (ops.spline_derivative_backward, (x, grid, w, None, gy, k, 0, "cpu", False, True, True)),
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck_on_every_op(dtype):
    for op, args in _op_samples(dtype):
        # The autograd registrations are checked where inputs require grad; kan_backward
        # has none: it only runs with grad mode off (create_graph takes the derivative ops).
        if dtype == torch.float64 and op is not ops.kan_backward:
            args = tuple(a.detach().requires_grad_(True) if isinstance(a, torch.Tensor) else a
                         for a in args)
        torch.library.opcheck(op, args)
