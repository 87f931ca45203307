"""Plain helpers shared by the model-level test files (imported by name: tests/conftest.py
puts this folder on sys.path, as pytest's importlib mode does not)."""

from __future__ import annotations

import torch


def inputs(batch: int, n: int, seed: int, low: float = -1.0, high: float = 1.0,
           dtype=torch.float64) -> torch.Tensor:
    """Uniform samples `[batch, n]` in [low, high), drawn in float64 from its own generator."""
    g = torch.Generator().manual_seed(seed)
    return (low + (high - low) * torch.rand(batch, n, generator=g, dtype=torch.float64)).to(dtype)


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| over max |b| (1 when b is all zeros), in float64."""
    a, b = a.detach().double(), b.detach().double()
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / (scale if scale > 0 else 1.0)
