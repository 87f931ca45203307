"""The compiled extension ``pykan_fast._C``, with a message that says what to run when
it is missing (typically: a source checkout imported without being built)."""

try:
    from . import _C as C
except ImportError as error:  # pragma: no cover - exercised by hand in a source tree
    raise ImportError(
        "pykan_fast's compiled extension (pykan_fast._C) is not built. From the repository "
        "root run `pip install .` (or, to develop, `pip install -e . --no-build-isolation`), "
        "and run the tests from an installed copy (pytest uses --import-mode=importlib). "
        f"Original error: {error}"
    ) from error

__all__ = ["C"]
