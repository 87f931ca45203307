"""pykan_fast.kan.utils against pykan 0.2.8's kan.utils and on its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pykan_fast.kan import MultKAN
from pykan_fast.kan import utils


def test_sparse_mask_connects_every_node():
    mask = utils.sparse_mask(5, 3)
    assert mask.shape == (5, 3)
    assert bool((mask.sum(0) > 0).all()) and bool((mask.sum(1) > 0).all())
    with pytest.raises(ValueError, match="in_dim"):
        utils.sparse_mask(0, 3)


def test_jacobian_hessian_of_a_known_function():
    x = torch.randn(4, 2, dtype=torch.float64)

    def f(x):
        return (x[:, [0]] ** 2 * x[:, [1]])

    jac = utils.batch_jacobian(f, x)
    torch.testing.assert_close(jac, torch.stack([2 * x[:, 0] * x[:, 1], x[:, 0] ** 2], dim=1))
    hess = utils.batch_hessian(f, x)
    assert hess.shape == (4, 2, 2)
    torch.testing.assert_close(hess[:, 0, 1], 2 * x[:, 0])


def test_model2param_and_derivative_shapes():
    model = MultKAN(width=[2, 2, 1], grid=3, seed=0, dtype=torch.float64)
    p = utils.model2param(model)
    assert p.numel() == sum(q.numel() for q in model.parameters())
    x = torch.rand(8, 2, dtype=torch.float64)
    jac = utils.get_derivative(model, x, x[:, :1], derivative="jacobian")
    assert jac.shape == (1, p.numel())


def test_augment_input():
    sympy = pytest.importorskip("sympy")
    a, b = sympy.symbols("a b")
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    out = utils.augment_input([a, b], [a * b, a + b], x)
    assert torch.equal(out, torch.tensor([[2.0, 3.0, 1.0, 2.0], [12.0, 7.0, 3.0, 4.0]], dtype=torch.float64))


@pytest.mark.pykan
def test_utils_match_pykan(multkan, float64_default):
    kan_utils = pytest.importorskip("kan.utils")
    for shape in ((5, 3), (3, 7), (1, 1)):
        assert torch.equal(utils.sparse_mask(*shape), kan_utils.sparse_mask(*shape))
    x, y = torch.rand(30, 2), torch.rand(30, 1)
    np.random.seed(1)
    mine = utils.create_dataset_from_data(x, y)
    np.random.seed(1)
    theirs = kan_utils.create_dataset_from_data(x, y)
    for key in theirs:  # the same rows (pykan orders the test rows as a set iterates)
        assert sorted(mine[key].tolist()) == sorted(theirs[key].tolist())
    model = MultKAN(width=[2, 2, 1], grid=3, seed=0)
    ref = multkan([2, 2, 1], grid=3, seed=0, symbolic_enabled=True)
    torch.testing.assert_close(utils.model2param(model), kan_utils.model2param(ref), rtol=1e-10, atol=1e-10)
    jac_mine = utils.batch_jacobian(model, x)
    torch.testing.assert_close(jac_mine, kan_utils.batch_jacobian(ref, x))
    torch.testing.assert_close(utils.batch_jacobian(model, x, mode="vector"),
                               kan_utils.batch_jacobian(ref, x, mode="vector"))
    torch.testing.assert_close(utils.batch_hessian(model, x[:5]), kan_utils.batch_hessian(ref, x[:5]))
    inputs, labels = x[:6], y[:6]
    mine = utils.get_derivative(model, inputs, labels, derivative="hessian")
    theirs = kan_utils.get_derivative(ref, inputs, labels, derivative="hessian")
    assert mine.shape == theirs.shape
    # pykan evaluates the symbolic branch of switched-off edges too (mask 0), which
    # gives second derivatives mixing their masks and affines; here those edges are not
    # evaluated. Everything else (affines and splines, knots included) is compared.
    n = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("symbolic_fun"))
    torch.testing.assert_close(mine[:, :n, :n], theirs[:, :n, :n], rtol=1e-8, atol=1e-10)
