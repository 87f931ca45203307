"""Issue 16, point 0: every public entry point says what is wrong with the caller's
argument and how to fix it (type, dtype, device)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pykan_fast as pf

NUMPY_MSG = r"^x: expected a torch\.Tensor, got numpy\.ndarray \(use torch\.as_tensor\(x\)\)"


def _functional(x, layer):
    return pf.functional.kan_layer(x, layer.grid, layer.coef, layer.scale_base, layer.scale_sp,
                                   layer.mask, layer.k)


def _entry_points():
    layer = pf.KANLayer(2, 3)
    model = pf.KAN([2, 3, 1], grid=3)
    return {
        "layer": layer,
        "model": model,
        "functional": lambda x: _functional(x, layer),
        "layer.update_grid": layer.update_grid_from_samples,
        "model.update_grid": model.update_grid_from_samples,
        "model.fit": lambda x: model.fit({"train_input": x, "train_label": torch.zeros(8, 1),
                                          "test_input": torch.zeros(4, 2),
                                          "test_label": torch.zeros(4, 1)},
                                         steps=1, progress=False),
    }


ENTRY_POINTS = sorted(_entry_points())


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_numpy_input_says_use_as_tensor(entry):
    fn = _entry_points()[entry]
    with pytest.raises(TypeError, match=NUMPY_MSG.replace("x:", "(x|dataset\\['train_input'\\]):")
                       .replace("as_tensor\\(x\\)", "as_tensor\\(.*\\)")):
        fn(np.zeros((8, 2), dtype=np.float32))


@pytest.mark.parametrize("entry", ["layer", "model", "functional", "model.fit"])
def test_float64_input_to_float32_parameters_says_how_to_fix(entry):
    fn = _entry_points()[entry]
    owner = "model" if entry.startswith("model") else "layer"
    with pytest.raises(TypeError, match=rf"is float64 but the {owner} is float32: use "
                                        rf".*\.float\(\) or {owner}\.double\(\)"):
        fn(torch.zeros(8, 2, dtype=torch.float64))


def test_float32_input_to_float64_layer():
    layer = pf.KANLayer(2, 3).double()
    with pytest.raises(TypeError, match=r"^x is float32 but the layer is float64: use "
                                        r"x\.double\(\) or layer\.float\(\)"):
        layer(torch.zeros(4, 2))


@pytest.mark.parametrize("entry", ["layer", "model", "functional"])
def test_input_on_another_device_says_how_to_fix(entry):
    fn = _entry_points()[entry]
    owner = "model" if entry == "model" else "layer"
    with pytest.raises(ValueError, match=rf"^x is on meta but the {owner} is on cpu: use "
                                         rf"x\.to\('cpu'\) or {owner}\.to\('meta'\)"):
        fn(torch.zeros(8, 2, device="meta"))


def test_grid_update_on_another_device_says_how_to_fix():
    layer = pf.KANLayer(2, 3)
    with pytest.raises(ValueError, match=r"^x is on meta but the layer is on cpu"):
        layer.update_grid_from_samples(torch.zeros(8, 2, device="meta"))


def test_model_names_a_list_input_and_a_wrong_rank():
    model = pf.KAN([2, 3, 1], grid=3)
    with pytest.raises(TypeError, match=r"^x: expected a torch\.Tensor, got list"):
        model([[0.0, 0.0]])
    with pytest.raises(ValueError, match=r"^x: expected a 2-D tensor \[batch, inputs\], got shape \[8\]"):
        model(torch.zeros(8))
