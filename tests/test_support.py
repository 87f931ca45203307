"""The test-support module's own tests: the comparator rejects what it must (so a passing
kernel test means something), and the case builder gives what its options say."""

from __future__ import annotations

import math

import pytest
import torch

from support import (FUZZ_RTOL, KERNEL_TABLE, KNOTS, RTOL, assert_close, kernel_params,
                     make_case, max_rel)


def _ref(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 5, generator=g, dtype=torch.float64).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_accepts_equal_and_rejects_a_perturbed_tensor(dtype):
    want = _ref(dtype)
    assert_close(want.clone(), want)
    scale = want.abs().max().item()
    # Within the dtype's tolerance passes, beyond it fails.
    near = want.clone()
    near[2, 3] += 0.5 * RTOL[dtype] * scale
    assert_close(near, want)
    far = want.clone()
    far[2, 3] += 4 * RTOL[dtype] * scale
    with pytest.raises(AssertionError, match=r"max abs error .* at \[2, 3\]"):
        assert_close(far, want)


def test_dtype_tolerance_is_the_dtypes():
    """A float32-sized error passes in float32 and fails in float64 (RTOL per dtype)."""
    want = _ref()
    off = want + 1e-6 * want.abs().max()
    assert_close(off.float(), want.float())
    with pytest.raises(AssertionError, match="max abs error"):
        assert_close(off, want)
    with pytest.raises(AssertionError, match="dtype"):
        assert_close(want.float(), want)
    assert_close(want.float(), want, 1e-6, dtype=torch.float32)  # a float64 reference


def test_rejects_nan_and_inf_in_the_wrong_place():
    want = _ref()
    want[1, 1] = math.nan
    want[4, 0] = math.inf
    assert_close(want.clone(), want)
    moved = want.clone()
    moved[1, 1], moved[1, 2] = 0.0, math.nan
    with pytest.raises(AssertionError, match="NaN pattern differs"):
        assert_close(moved, want)
    missing = want.clone()
    missing[1, 1] = 0.0
    with pytest.raises(AssertionError, match="NaN pattern differs"):
        assert_close(missing, want)
    flipped = want.clone()
    flipped[4, 0] = -math.inf
    with pytest.raises(AssertionError, match="inf pattern"):
        assert_close(flipped, want)
    # skip: entries not compared.
    skip = torch.zeros_like(want, dtype=torch.bool)
    skip[1, 1] = skip[1, 2] = True
    assert_close(moved, want, skip=skip)


def test_shape_missing_and_dict_results():
    want = _ref()
    with pytest.raises(AssertionError, match="shape"):
        assert_close(want[:, :4], want)
    with pytest.raises(AssertionError, match="no result"):
        assert_close(None, want)
    assert_close({"y": want, "x": want * 2}, {"y": want, "x": want * 2})
    with pytest.raises(AssertionError, match="results"):
        assert_close({"y": want}, {"y": want, "x": want})
    bad = {"y": want, "x": want * 2 + 1}
    with pytest.raises(AssertionError, match="^x: max abs error"):
        assert_close(bad, {"y": want, "x": want * 2})


def test_atol_low_and_groups():
    want = _ref()
    off = want + 1e-3
    with pytest.raises(AssertionError):
        assert_close(off, want)
    assert_close(off, want, atol=2e-3)
    # low: the same reference in a lower precision, its error 1e-3: twice that passes.
    assert_close(off, want, low=want + 1e-3)
    with pytest.raises(AssertionError):
        assert_close(want + 3e-3, want, low=want + 1e-3)
    # groups: a huge entry sets the scale of its own group only.
    big = want.clone()
    big[0] = 1e12
    got = big.clone()
    got[3, 2] += 1e-3
    assert_close(got, big)  # norm-wise over the whole tensor: hidden by the 1e12 row
    groups = torch.zeros_like(big, dtype=torch.long)
    groups[0] = 1
    with pytest.raises(AssertionError, match=r"at \[3, 2\]"):
        assert_close(got, big, groups=groups)


def test_max_rel():
    want = _ref()
    assert max_rel(want, want) == 0.0
    assert max_rel(want + 1e-3, want) == pytest.approx(1e-3 / want.abs().max().item())
    assert math.isnan(max_rel(torch.full_like(want, math.nan), want))


def test_tolerances():
    assert RTOL[torch.float64] < RTOL[torch.float32]
    assert all(FUZZ_RTOL[d] >= RTOL[d] for d in RTOL)


@pytest.mark.parametrize("knots", KNOTS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_make_case(knots, dtype):
    case = make_case(40, 3, 2, 8, 3, dtype, knots, seed=1, on_knots=0.3, next_to_knots=0.1,
                     pin_ends=True)
    assert set(case) == {"x", "grid", "coef", "scale_base", "scale_sp", "mask", "dy"}
    assert all(t.dtype == dtype for t in case.values())
    x, grid = case["x"], case["grid"]
    assert x.shape == (40, 3) and grid.shape == (3, 8 + 2 * 3 + 1)
    assert case["coef"].shape == (3, 2, 8 + 3) and case["dy"].shape == (40, 2)
    assert (grid.diff(dim=1) >= 0).all()
    if knots != "flat":
        # 'repeated': inputs 0 and 2 run through their double knot instead.
        cols = [1] if knots == "repeated" else [0, 1, 2]
        x, grid = x[:, cols], grid[cols]
        on = (x[:, :, None] == grid[None]).any(-1)
        assert on.float().mean() > 0.2  # samples exactly on knots, in the dtype
        lo, hi = grid[:, 0], grid[:, -1]
        assert ((x < lo) | (x > hi)).any() and ((x > lo) & (x < hi)).any()
        assert (x[1] == lo).all() and (x[2] == hi).all()
    assert case["mask"][0, 0] == 1
    if knots == "repeated":
        g = case["grid"]
        assert (g[0].diff() == 0).any() and not (g[1].diff() == 0).any()
    # Deterministic in the seed.
    again = make_case(40, 3, 2, 8, 3, dtype, knots, seed=1, on_knots=0.3, next_to_knots=0.1,
                      pin_ends=True)
    assert all(torch.equal(again[n], case[n]) for n in case)


def test_make_case_nonfinite_and_specials():
    case = make_case(8, 3, 4, 5, 3, nonfinite=True)
    x = case["x"]
    assert torch.isnan(x[3]).all() and torch.isnan(x[0, 0])
    assert x[1, 1] == math.inf and x[2, 2] == -math.inf
    assert torch.isfinite(x[5:]).all()
    case = make_case(200, 3, 2, 5, 3, specials=0.5, pin=False)
    assert torch.isnan(case["x"]).any() and torch.isinf(case["x"]).any()


def test_kernel_table():
    ids = [row.id for row in KERNEL_TABLE]
    assert len(ids) == len(set(ids)), "row ids are unique"
    triton = kernel_params("triton")
    assert triton and all(p.values[0].dtype == torch.float32 for p in triton)
    assert len(kernel_params("cpu")) == len(KERNEL_TABLE)  # every row on the CPU
    kinds = {row.knots for row in KERNEL_TABLE}
    assert {"uniform", "random", "repeated"} <= kinds
    assert {p.values[0].knots for p in triton} >= {"uniform", "random", "repeated"}
    assert {row.samples for row in KERNEL_TABLE} == {"random", "knots", "nonfinite"}
