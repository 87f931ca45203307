"""The torch ops around a layer's kernels (SiLU, weight folding and its chain rule) run on
one torch thread when small (issue 15, point 0: each parallel region waits for a
descheduled partner on a busy machine), the kernels keep their threads, the caller's
count comes back, and the gradients are those autograd forms through the plain fold."""

import contextlib

import pytest
import torch

import pykan_fast as pf
from pykan_fast.ops import cpu_backend
from pykan_fast.ops import functional
from pykan_fast.ops.threads import SERIAL_ELEMENTS, serial_torch


def recording(real, seen: list):
    """``real`` that first appends the torch thread count it runs under to ``seen``."""
    def wrapper(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)
    return wrapper


def recording_inside(real_context, seen: list):
    """The context manager ``real_context`` that appends to ``seen`` the torch thread
    count its block runs under: what the folding's own ops see."""
    @contextlib.contextmanager
    def wrapper(*args):
        with real_context(*args):
            seen.append(torch.get_num_threads())
            yield
    return wrapper


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_serial_torch_below_and_above_the_threshold(two_threads):
    with serial_torch(SERIAL_ELEMENTS - 1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with serial_torch(SERIAL_ELEMENTS):
        assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError):
        with serial_torch(10):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == 2


def test_layer_step_threads(two_threads, monkeypatch):
    """SiLU and the folding run on one thread, the kernels on two, and the count is
    restored after the forward and the backward."""
    seen = {"silu": [], "fold": [], "kernel": []}
    real_forward, real_backward = cpu_backend.C.forward, cpu_backend.C.backward

    class RecordingC:
        def __getattr__(self, name):
            return getattr(real_c, name)

        def forward(self, *args):
            seen["kernel"].append(args[7])
            return real_forward(*args)

        def backward(self, *args):
            seen["kernel"].append(args[10])
            return real_backward(*args)

    real_c = cpu_backend.C
    monkeypatch.setattr(cpu_backend, "C", RecordingC())

    monkeypatch.setattr(functional, "serial_torch",
                        recording_inside(functional.serial_torch, seen["fold"]))
    monkeypatch.setattr(torch.nn.functional, "silu",
                        recording(torch.nn.functional.silu, seen["silu"]))
    layer = pf.KANLayer(64, 64, grid=5, k=3)  # kernel work above SERIAL_WORK
    x = torch.rand(512, 64) * 2 - 1
    layer(x).sum().backward()
    assert torch.get_num_threads() == 2
    assert seen["fold"] == [1, 1]  # the folding, then its chain rule
    assert seen["silu"] == [1]  # SiLU once: the backward reuses it
    assert seen["kernel"] == [2, 2]
    assert layer.coef.grad is not None and layer.scale_sp.grad is not None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_mask", [False, True])
def test_fold_function_gradients_equal_autograd(dtype, with_mask):
    g = torch.Generator().manual_seed(3)
    coef = torch.randn(5, 4, 7, generator=g, dtype=dtype, requires_grad=True)
    scale_base = torch.randn(5, 4, generator=g, dtype=dtype, requires_grad=True)
    scale_sp = torch.randn(5, 4, generator=g, dtype=dtype, requires_grad=True)
    mask = (torch.rand(5, 4, generator=g) > 0.3).to(dtype) if with_mask else None
    grad_sw = torch.randn(5, 7, 4, generator=g, dtype=dtype)
    grad_bw = torch.randn(5, 4, generator=g, dtype=dtype)
    params = (coef, scale_base, scale_sp)

    plain = functional.fold_weights(coef, scale_base, scale_sp, mask)
    fused = functional._fold(coef, scale_base, scale_sp, mask)
    for a, b in zip(plain, fused):
        assert torch.equal(a, b)
    want = torch.autograd.grad(plain, params, (grad_sw, grad_bw))
    got = torch.autograd.grad(fused, params, (grad_sw, grad_bw))
    for a, b in zip(want, got):
        assert torch.equal(a, b)


def test_fold_function_double_backward():
    """create_graph through the fold: second derivatives as autograd's (float64)."""
    g = torch.Generator().manual_seed(4)
    coef = torch.randn(3, 2, 6, generator=g, dtype=torch.float64, requires_grad=True)
    scale_base = torch.randn(3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    scale_sp = torch.randn(3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    params = (coef, scale_base, scale_sp)
    torch.autograd.gradcheck(lambda *p: functional._fold(*p, None), params)
    torch.autograd.gradgradcheck(lambda *p: functional._fold(*p, None), params)


def test_trained_mask_takes_the_plain_fold():
    mask = torch.ones(3, 2, dtype=torch.float64, requires_grad=True)
    coef = torch.randn(3, 2, 6, dtype=torch.float64)
    sw, bw = functional._fold(coef, torch.ones(3, 2, dtype=torch.float64),
                              torch.ones(3, 2, dtype=torch.float64), mask)
    (grad_mask,) = torch.autograd.grad(sw.sum() + bw.sum(), mask)
    assert torch.allclose(grad_mask, coef.sum(-1) + 1)


def test_fused_stack_folds_on_one_thread(two_threads, monkeypatch):
    """The model's fused stack folds the weights and applies their chain rule on one
    thread too, and gives the count back."""
    import pykan_fast.nn.stack as stack

    seen, calls = [], []
    monkeypatch.setattr(functional, "serial_torch",
                        recording_inside(functional.serial_torch, seen))
    monkeypatch.setattr(stack, "fold_weights", recording(stack.fold_weights, calls))
    monkeypatch.setattr(stack, "fold_weights_backward",
                        recording(stack.fold_weights_backward, calls))
    model = pf.KAN([8, 16, 1], grid=5, k=3, seed=0)
    x = torch.rand(300, 8) * 2 - 1
    model(x).sum().backward()
    assert len(calls) == 4 and set(calls) == {2}  # two layers, forward and backward ...
    assert seen == [1, 1, 1, 1]  # ... each folding on one thread inside
    assert torch.get_num_threads() == 2
