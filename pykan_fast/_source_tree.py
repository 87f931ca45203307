"""Running from a source checkout whose extension was built elsewhere.

``python -m pykan_fast`` (or ``python`` started) in the repository root puts the source
folder ``pykan_fast/`` first on ``sys.path``, ahead of the copy ``pip install .`` put in
site-packages with the compiled ``_C`` and the Triton kernels (``src/triton`` installed as
``pykan_fast.triton``). The source folder has neither, so this package adds the installed
copy to its submodule search, after the source folder: the source's Python modules (so a
developer's edits take effect without a reinstall), the installed extension and Triton
kernels.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import importlib.util
from pathlib import Path

_DIST = "pykan-fast"


def _has_extension(folder: Path) -> bool:
    return any(
        (folder / f"_C{suffix}").exists() for suffix in importlib.machinery.EXTENSION_SUFFIXES
    )


def _installed_package_dir() -> Path | None:
    """The installed distribution's ``pykan_fast`` folder, when it holds the extension."""
    try:
        dist = importlib.metadata.distribution(_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    folder = Path(str(dist.locate_file("pykan_fast")))
    return folder if (folder / "__init__.py").exists() and _has_extension(folder) else None


def redirect_to_installed_copy(namespace: dict) -> None:
    """Called first by ``pykan_fast/__init__.py`` with its globals."""
    here = Path(namespace["__file__"]).resolve().parent
    if _has_extension(here):
        return  # an installed copy, or a source tree built in place
    if importlib.util.find_spec(f"{namespace['__name__']}._C") is not None:
        return  # an editable install: its import hook maps the extension
    installed = _installed_package_dir()
    if installed is not None and installed.resolve() != here:
        namespace["__path__"].append(str(installed))
    # else: _compiled raises an ImportError that says what to build.
