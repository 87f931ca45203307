"""A training step (forward, backward, Adam) of a whole KAN, eager against
``torch.compile(model, fullgraph=True)`` (inductor), per model kind.

    pytest bench/test_bench_compile.py --benchmark-only --benchmark-group-by=param:name
"""

import pytest
import torch

import pykan_fast as pf
from shapes import SMOKE

BATCH = 64 if SMOKE else 1024
MODELS = {
    "plain [8, 16, 4]": dict(width=[8, 16, 4]),
    "mult [8, [8, 4], 4]": dict(width=[8, [8, 4], 4], mult_arity=2),
}


def _step(model, forward, x, y, opt):
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.mse_loss(forward(x), y)
    loss.backward()
    opt.step()
    return loss


@pytest.mark.parametrize("mode", ["eager", "compiled"])
@pytest.mark.parametrize("name", list(MODELS))
def test_train_step(benchmark, name, mode):
    torch._dynamo.reset()
    model = pf.KAN(**MODELS[name], grid=5, seed=0)
    x = torch.rand(BATCH, model.width_in[0]) * 2 - 1
    y = torch.randn(BATCH, model.width_in[-1])
    forward = torch.compile(model, fullgraph=True) if mode == "compiled" else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    if SMOKE and mode == "compiled":
        forward = torch.compile(model, fullgraph=True, backend="aot_eager")  # no C++ build in CI
    for _ in range(2):  # compile and warm up outside the timing
        _step(model, forward, x, y, opt)
    benchmark(_step, model, forward, x, y, opt)
