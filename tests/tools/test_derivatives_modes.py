"""batch_jacobian's two modes (pykan's 'scalar' and 'vector') on a function with known
derivatives, and its argument checks."""

import pytest
import torch

from pykan_fast.tools.derivatives import batch_jacobian


def _f(x):
    # outputs (x0^2 x1, sin(x1)): rows independent
    return torch.stack([x[:, 0] ** 2 * x[:, 1], torch.sin(x[:, 1])], dim=1)


def test_vector_mode_is_every_outputs_row_jacobian():
    x = torch.randn(5, 2, dtype=torch.float64)
    jac = batch_jacobian(_f, x, mode="vector")
    assert jac.shape == (5, 2, 2)
    zero = torch.zeros(5, dtype=torch.float64)
    want = torch.stack([torch.stack([2 * x[:, 0] * x[:, 1], x[:, 0] ** 2], dim=1),
                        torch.stack([zero, torch.cos(x[:, 1])], dim=1)], dim=1)
    torch.testing.assert_close(jac, want)
    torch.testing.assert_close(batch_jacobian(_f, x), want[:, 0])


def test_vector_mode_with_create_graph_differentiates_again():
    x = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    jac = batch_jacobian(_f, x, create_graph=True, mode="vector")
    (g,) = torch.autograd.grad(jac[:, 1, 1].sum(), x)  # d/dx1 cos(x1) = -sin(x1)
    torch.testing.assert_close(g[:, 1], -torch.sin(x[:, 1].detach()))


def test_bad_mode_is_named():
    with pytest.raises(ValueError, match="mode"):
        batch_jacobian(_f, torch.randn(3, 2), mode="matrix")
