"""python -m pykan_fast.kan: unmodified pykan scripts and notebooks, every
``import kan...`` resolved to pykan_fast.kan (also where pykan is installed)."""

from __future__ import annotations

import json
import subprocess
import sys

from pykan_fast.kan.__main__ import cell_source

_SCRIPT = """
import sys
from kan import *
from kan.utils import ex_round, create_dataset_from_data
from kan.MultKAN import KAN as K2
import kan.MultKAN, kan.spline
import kan
assert kan.__name__ == "pykan_fast.kan" and K2 is MultKAN and kan.MultKAN is MultKAN
assert kan.spline.__name__ == "pykan_fast.kan.spline"
model = KAN(width=[2, 2, 1], grid=3, seed=0)
print("OK", type(model).__module__, sys.argv[1:])
"""


def _run(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "pykan_fast.kan", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def test_script_imports_resolve_to_pykan_fast(tmp_path):
    (tmp_path / "script.py").write_text(_SCRIPT)
    proc = _run(tmp_path, "script.py", "--flag", "1")
    assert proc.returncode == 0, proc.stderr
    assert "OK pykan_fast.kan.MultKAN ['--flag', '1']" in proc.stdout
    assert not (tmp_path / "model").exists()


def test_notebook_cells_share_a_namespace_and_skip_magics(tmp_path):
    cells = [["%matplotlib inline\n", "from kan import *\n", "!ls\n", "x = torch.rand(5, 2)\n"],
             "%%time\nraise SystemExit(3)\n",
             ["model = KAN(width=[2, 1], grid=3, seed=0)\n", "model(x)\n", "model.plot()\n",
              "plt.show()\n", "print('DONE', model(x).shape)\n"]]
    notebook = {"cells": [{"cell_type": "markdown", "source": "# title"}]
                + [{"cell_type": "code", "source": c} for c in cells], "nbformat": 4}
    (tmp_path / "nb.ipynb").write_text(json.dumps(notebook))
    proc = _run(tmp_path, "nb.ipynb")
    assert proc.returncode == 0, proc.stderr
    assert "DONE torch.Size([5, 1])" in proc.stdout
    assert "skipped IPython line '%matplotlib inline'" in proc.stdout
    assert "skipped cell magic '%%time'" in proc.stdout


def test_failing_cell_is_reported(tmp_path):
    notebook = {"cells": [{"cell_type": "code", "source": "1 / 0"}]}
    (tmp_path / "bad.ipynb").write_text(json.dumps(notebook))
    proc = _run(tmp_path, "bad.ipynb")
    assert proc.returncode == 1 and "cell 1 of 1 failed" in proc.stderr
    assert _run(tmp_path, "missing.py").returncode == 2


def test_cell_source_keeps_indentation():
    assert cell_source("if True:\n    !echo hi\n    y = 1", 1) == "if True:\n    pass\n    y = 1"
