"""pykan checkpoint files both ways (pykan_fast.kan.MultKAN.saveckpt/loadckpt), the
YAML quirks of pykan's writer, and the history kept with auto_save."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pykan_fast.kan import MultKAN
from pykan_fast.kan import checkpoint


def _inputs(n=40, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g, dtype=torch.float64) * 2 - 1


def _symbolic_model(**kwargs):
    model = MultKAN(width=[2, [2, 1], 1], grid=4, k=3, seed=0, dtype=torch.float64, **kwargs)
    x = _inputs()
    model(x)
    model.fix_symbolic(0, 0, 1, "sin", verbose=False)
    model(x)
    return model, x


def test_round_trip_without_pykan(tmp_path):
    model, x = _symbolic_model()
    model.saveckpt(tmp_path / "m")
    for suffix in ("_config.yml", "_state", "_cache_data"):
        assert (tmp_path / f"m{suffix}").exists()
    loaded = MultKAN.loadckpt(tmp_path / "m")
    assert loaded.round == model.round + 1
    assert loaded.symbolic_fun[0].funs_name[1][0] == "sin"
    assert torch.equal(loaded.cache_data, model.cache_data)
    assert torch.equal(loaded(x), model(x))


def test_state_names_are_pykans():
    model, _ = _symbolic_model()
    names = list(checkpoint.to_pykan_state(model))
    assert names[:4] == ["node_bias_0", "node_scale_0", "subnode_bias_0", "subnode_scale_0"]
    assert "act_fun.1.coef" in names and "symbolic_fun.0.affine" in names
    assert list(checkpoint.from_pykan_state(checkpoint.to_pykan_state(model))) != names
    assert set(checkpoint.from_pykan_state(checkpoint.to_pykan_state(model))) == set(model.state_dict())


def test_numpy_scalars_in_the_yaml_are_read(tmp_path):
    """pykan's yaml.dump writes numpy values as python/object tags (its safe_load fails)."""
    yaml = pytest.importorskip("yaml")
    model, x = _symbolic_model()
    model.saveckpt(tmp_path / "m")
    config_file = tmp_path / "m_config.yml"
    config = yaml.safe_load(config_file.read_text())
    config["grid_eps"] = np.float64(0.02)
    config["grid_range"] = np.array([-1.0, 1.0])
    config_file.write_text(yaml.dump(config))
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load(config_file.read_text())
    read = checkpoint.read_config(tmp_path / "m")
    assert read["grid_eps"] == 0.02 and read["grid_range"] == [-1.0, 1.0]
    assert torch.equal(MultKAN.loadckpt(tmp_path / "m")(x), model(x))


def test_code_running_tags_are_refused(tmp_path):
    (tmp_path / "m_config.yml").write_text("width: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ValueError, match="unsupported YAML tag"):
        checkpoint.read_config(tmp_path / "m")


def test_auto_save_history_rewind_checkout(tmp_path, capsys):
    path = str(tmp_path / "ck")
    model = MultKAN(width=[2, 3, 1], grid=3, seed=0, auto_save=True, ckpt_path=path)
    x = _inputs(d=2).float()
    model(x)
    model.remove_edge(0, 0, 0)
    assert model.state_id == 1
    model.remove_node(1, 2)
    assert model.state_id == 2
    lines = (tmp_path / "ck" / "history.txt").read_text().splitlines()
    assert lines == ["### Round 0 ###", "init => 0.0", "0.0 => remove_edge => 0.1",
                     "0.1 => remove_node => 0.2"]
    old = model.checkout("0.1")
    assert old.n_edge == 8 and model.n_edge == 5
    back = model.rewind("0.1")
    assert back.n_edge == 8 and back.round == 1 and model.round == 1
    model.history()
    assert "### Round 1 ###" in capsys.readouterr().out


def test_no_files_without_auto_save(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = MultKAN(width=[2, 3, 1], seed=0)
    model(_inputs().float())
    model.remove_edge(0, 0, 0)
    model.prune()
    assert list(tmp_path.iterdir()) == []


def test_history_without_auto_save_is_private(tmp_path, monkeypatch, capsys):
    """auto_save off: nothing in the working directory and nothing printed, but the
    history pykan's default keeps (state ids, rewind, checkout) works: Example_9 and
    Interp_4 rewind a model built with the defaults."""
    monkeypatch.chdir(tmp_path)
    model = MultKAN(width=[2, 3, 1], grid=3, seed=0)
    model(_inputs(d=2).float())
    model.remove_edge(0, 0, 0)
    model.remove_edge(0, 1, 0)
    assert model.state_id == 2 and capsys.readouterr().out == ""
    assert model.checkout("0.1").n_edge == 8 and model.checkout("0.0").n_edge == 9
    back = model.rewind("0.1")
    assert back.n_edge == 8 and model.round == 1
    back.remove_edge(0, 0, 1)
    assert back.state_id == 2 and back.checkout("1.2").n_edge == 7
    with pytest.raises(ValueError, match="model_id"):
        model.checkout("7.7")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.pykan
def test_pykan_checkpoint_loads_with_equal_outputs(tmp_path, monkeypatch, float64_default):
    kan = pytest.importorskip("kan")
    monkeypatch.chdir(tmp_path)
    theirs = kan.MultKAN(width=[2, [2, 1], 1], grid=4, k=3, seed=0, auto_save=False,
                         grid_eps=np.float64(0.02))
    x = _inputs()
    theirs(x)
    theirs.fix_symbolic(0, 0, 1, "sin", verbose=False)
    theirs(x)
    theirs.saveckpt("./theirs")
    with pytest.raises(Exception):  # pykan 0.2.8 cannot read its own numpy scalar
        kan.MultKAN.loadckpt("./theirs")
    mine = MultKAN.loadckpt("./theirs")
    assert mine.symbolic_fun[0].funs_name == theirs.symbolic_fun[0].funs_name
    assert torch.equal(mine.cache_data, theirs.cache_data)
    torch.testing.assert_close(mine(x), theirs(x), rtol=1e-12, atol=1e-12)


@pytest.mark.pykan
def test_our_checkpoint_loads_in_pykan(tmp_path, monkeypatch, float64_default):
    kan = pytest.importorskip("kan")
    monkeypatch.chdir(tmp_path)
    model, x = _symbolic_model()
    model.remove_edge(1, 1, 0)
    model.saveckpt("./mine")
    theirs = kan.MultKAN.loadckpt("./mine")
    assert theirs.symbolic_fun[0].funs_name == model.symbolic_fun[0].funs_name
    torch.testing.assert_close(theirs(x), model(x), rtol=1e-12, atol=1e-12)
