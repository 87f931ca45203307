"""``python -m pykan_fast.kan SCRIPT.py [args]`` runs an unmodified pykan script with
every ``import kan...`` resolved to :mod:`pykan_fast.kan` (also where pykan is
installed); ``python -m pykan_fast.kan NOTEBOOK.ipynb`` runs a notebook's code cells in
order in one namespace: IPython magics (``%``) and shell lines (``!``) are skipped with
a message, matplotlib draws on the Agg backend, ``plt.show()`` does nothing and each
cell's figures are closed after it, as a notebook's inline backend does."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import json
import os
import runpy
import sys
import time
import traceback

_ALIAS, _TARGET = "kan", "pykan_fast.kan"


class KanAliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``kan`` and ``kan.<sub>`` to ``pykan_fast.kan`` and its submodules
    (the same module objects, so ``kan.MultKAN is pykan_fast.kan.MultKAN``)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _ALIAS and not fullname.startswith(_ALIAS + "."):
            return None
        real = _TARGET + fullname[len(_ALIAS):]
        if importlib.util.find_spec(real) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(_TARGET + spec.name[len(_ALIAS):])
        self._spec = module.__spec__  # the import system overwrites it; restored below
        return module

    def exec_module(self, module):
        module.__spec__ = self._spec


def install_alias() -> None:
    """Make ``import kan...`` give :mod:`pykan_fast.kan` from now on in this process."""
    for name in [n for n in sys.modules if n == _ALIAS or n.startswith(_ALIAS + ".")]:
        del sys.modules[name]  # a pykan imported earlier must not answer later imports
    if not any(isinstance(f, KanAliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, KanAliasFinder())
    import pykan_fast.kan as target

    # The submodules already imported are aliased up front, so that a script's
    # ``import kan.MultKAN`` finds them and does not rebind ``kan.MultKAN`` (the class)
    # to the module.
    sys.modules[_ALIAS] = target
    for name, module in list(sys.modules.items()):
        if name.startswith(_TARGET + "."):
            sys.modules[_ALIAS + name[len(_TARGET):]] = module


def _headless_matplotlib() -> None:
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.show = lambda *args, **kwargs: None


def _close_figures() -> None:
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def cell_source(source: str, number: int) -> str | None:
    """A code cell as Python: ``%``/``!`` lines become ``pass`` (with a message); a
    cell magic (``%%``) skips the whole cell (None)."""
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        print(f"[pykan_fast.kan] cell {number}: skipped cell magic {lines[0].strip()!r}")
        return None
    out = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            print(f"[pykan_fast.kan] cell {number}: skipped IPython line {stripped!r}")
            line = line[:len(line) - len(stripped)] + "pass"
        out.append(line)
    return "\n".join(out)


def run_notebook(path: str) -> int:
    """Run the code cells of notebook ``path`` in one namespace; 1 at the first error."""
    with open(path, encoding="utf-8") as stream:
        notebook = json.load(stream)
    _headless_matplotlib()
    namespace = {"__name__": "__main__", "__file__": os.path.abspath(path)}
    cells = [c for c in notebook.get("cells", []) if c.get("cell_type") == "code"]
    for number, cell in enumerate(cells, 1):
        source = cell.get("source", "")
        source = cell_source("".join(source) if isinstance(source, list) else source, number)
        if source is None:
            continue
        start = time.perf_counter()
        try:
            exec(compile(source, f"<{os.path.basename(path)} cell {number}>", "exec"), namespace)
        except BaseException as error:  # SystemExit included: report the failing cell
            if isinstance(error, SystemExit) and error.code in (None, 0):
                return 0
            traceback.print_exc()
            print(f"[pykan_fast.kan] {path}: cell {number} of {len(cells)} failed", file=sys.stderr)
            return 1
        finally:
            _close_figures()
        print(f"[pykan_fast.kan] cell {number}/{len(cells)} ok ({time.perf_counter() - start:.1f} s)",
              flush=True)
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    path = argv[0]
    if not os.path.isfile(path):
        print(f"pykan_fast.kan: {path!r}: no such file", file=sys.stderr)
        return 2
    install_alias()
    sys.argv = argv
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    if path.endswith(".ipynb"):
        return run_notebook(path)
    runpy.run_path(path, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
