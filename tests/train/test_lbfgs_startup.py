"""pykan_fast's L-BFGS starts without importing torch._dynamo (torch.optim.Optimizer's
add_param_group would, seconds on a first fit) and still validates its parameter group."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from pykan_fast.train.lbfgs import LBFGS

_CODE = """
import sys, torch
from pykan_fast.train.lbfgs import LBFGS
p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
opt = LBFGS([p], line_search_fn="strong_wolfe")
def closure():
    p.grad = None
    loss = ((p - 2) ** 2).sum()
    loss.backward()
    return loss
opt.step(closure)
print("torch._dynamo" in sys.modules, round(float(p.sum()), 6))
"""


def test_lbfgs_fit_imports_no_dynamo():
    out = subprocess.run([sys.executable, "-c", _CODE], capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["False", "6.0"], out.stderr


def test_lbfgs_param_group_checks_still_run():
    p = torch.nn.Parameter(torch.ones(2))
    opt = LBFGS([p])
    assert opt.param_groups[0]["params"] == [p] and opt.param_groups[0]["lr"] == 1
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        opt.add_param_group({"params": [p]})
