"""torch.compile on a whole ``KAN`` (issue 15.5): ``fullgraph=True`` traces models with
and without multiplication nodes and fixed symbolic edges, and the compiled forward and
backward give the eager numbers."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo

import pykan_fast as pf

MODELS = {
    "plain": dict(width=[4, 8, 2]),
    "mult": dict(width=[3, [2, 2], 1], mult_arity=2),
    "mult-symbolic": dict(width=[3, [2, 2], 1], mult_arity=[[], [2, 3], []]),
    "symbolic": dict(width=[3, 4, 1]),
}


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _model(name):
    model = pf.KAN(**MODELS[name], grid=5, seed=0, dtype=torch.float64)
    x = torch.rand(23, model.width_in[0], dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    model(x)
    if "symbolic" in name:
        model.fix_symbolic(0, 0, 1, "sin", fit_params_bool=False, verbose=False)
        model.fix_symbolic(0, 2, 0, "x^2", fit_params_bool=False, verbose=False)
    return model, x * 2 - 1


@pytest.mark.parametrize("name", list(MODELS))
def test_whole_model_traces_in_one_graph(name):
    model, x = _model(name)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons


@pytest.mark.parametrize("name", list(MODELS))
def test_fullgraph_compiled_model_equals_eager(name):
    model, x = _model(name)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    want = model(x)
    want.square().sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    got = compiled(x)
    got.square().sum().backward()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for n, g in grads.items():
        torch.testing.assert_close(dict(model.named_parameters())[n].grad, g, rtol=1e-10, atol=1e-12)


def test_fixing_an_edge_after_compiling_is_seen():
    """The compiled forward reads the symbolic layer's cached edge set; fix_symbolic
    refreshes it, and dynamo's guards retrace."""
    model, x = _model("plain")
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    compiled(x)
    model.fix_symbolic(0, 1, 3, "exp", fit_params_bool=False, verbose=False)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-12, atol=1e-12)
    assert model.symbolic_fun[0].n_active == 1
