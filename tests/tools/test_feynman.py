"""Feynman datasets (pykan_fast.experiments.feynman): pykan 0.2.8's expressions, a torch
function that agrees with its formula, sample ranges create_dataset respects."""

from __future__ import annotations

import pytest
import torch

sympy = pytest.importorskip("sympy")

import pykan_fast as pf  # noqa: E402
from pykan_fast.experiments.feynman import feynman_names, get_feynman_dataset  # noqa: E402


def per_variable(ranges, n):
    r = torch.tensor(ranges, dtype=torch.float64).reshape(-1, 2)
    return r.expand(n, 2)


def test_every_equation_is_sampled_in_range_and_matches_its_formula():
    names = feynman_names()
    assert [i for i, _ in names] == list(range(1, 121))
    for index, name in names:
        symbols, expr, f, ranges = get_feynman_dataset(index)
        n = len(symbols)
        ds = pf.create_dataset(f, n_var=n, ranges=ranges, train_num=40, test_num=5, seed=index,
                               device="cpu")
        r = per_variable(ranges, n).to(ds["train_input"].dtype)
        x = ds["train_input"]
        assert torch.all((x >= r[:, 0]) & (x <= r[:, 1])), name
        assert ds["train_label"].shape == (40, 1)
        row = x[0].double().tolist()
        value = complex(expr.subs(dict(zip(symbols, row))).evalf())
        got = float(f(x[:1].double())[0, 0])
        if abs(value.imag) < 1e-12 and abs(value.real) < 1e6:
            assert got == pytest.approx(value.real, rel=1e-6, abs=1e-9), name


def test_names_and_numbers_agree():
    assert get_feynman_dataset("I.6.20a")[1] == get_feynman_dataset(1)[1]
    assert get_feynman_dataset("I.18.4")[1] == get_feynman_dataset(21)[1]
    assert get_feynman_dataset("I.18.12")[1] == get_feynman_dataset(22)[1]
    symbols, expr, _, ranges = get_feynman_dataset("test")
    assert [s.name for s in symbols] == ["x", "y"] and ranges == [-1.0, 1.0]


def test_bad_names():
    for bad in (0, 121, "I.99.99", True):
        with pytest.raises(ValueError, match="name"):
            get_feynman_dataset(bad)


@pytest.mark.pykan
def test_same_expressions_as_pykan():
    kfeynman = pytest.importorskip("kan.feynman")
    for index, _ in feynman_names():
        symbols, expr, _, ranges = get_feynman_dataset(index)
        k_symbols, k_expr, k_f, k_ranges = kfeynman.get_feynman_dataset(index)
        k_symbols = tuple(k_symbols) if isinstance(k_symbols, (list, tuple)) else (k_symbols,)
        assert expr == k_expr and symbols == k_symbols, index
        assert torch.allclose(per_variable(ranges, len(symbols)),
                              per_variable([[float(a) for a in r] for r in k_ranges]
                                           if isinstance(k_ranges[0], (list, tuple))
                                           else [float(v) for v in k_ranges], len(symbols)))
