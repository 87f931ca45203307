"""Run pykan's tutorial notebooks on pykan_fast (``python -m pykan_fast.kan``) and,
with ``--pykan``, on pykan itself; print each notebook's status and time side by side.

    python scripts/pykan_tutorials.py PATH [--pykan | --pykan-only] [--timeout S]
                                          [--only SUBSTR ...] [--markdown FILE] [--jsonl FILE]

PATH: a checkout of pykan's repository (its ``tutorials/`` folder) or the folder
itself. Each run happens in a fresh temporary copy of the notebook's folder (pykan
writes ``./model``, ``./figures`` ...). pykan's side runs the same notebook runner with
the real ``kan`` package, so both sides skip the same IPython lines. The notebooks import
the ``pykan_fast`` of the checkout this script is in (put first on ``PYTHONPATH``).
``--jsonl`` appends one line per notebook and side with the load average before and
after it.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import json
import tempfile
import time

# The checkout this script lives in: its ``pykan_fast`` goes first on the notebooks'
# path, so the runner tests this source tree, not whatever copy site-packages holds (the
# notebooks run in a temporary folder, where ``python -m`` would find only that copy).
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs a notebook with whatever ``kan`` is importable (pykan itself), through the same
# cell runner as pykan_fast's side.
_PYKAN_RUNNER = ("import sys; from pykan_fast.kan.__main__ import run_notebook; "
                 "sys.exit(run_notebook(sys.argv[1]))")


def notebooks(path: str) -> list[str]:
    root = os.path.join(path, "tutorials") if os.path.isdir(os.path.join(path, "tutorials")) else path
    found = sorted(glob.glob(os.path.join(root, "**", "*.ipynb"), recursive=True))
    return [f for f in found if ".ipynb_checkpoints" not in f]


def run_one(notebook: str, side: str, timeout: float) -> tuple[str, float, str]:
    """(status, seconds, last line of output) of one notebook on one side."""
    with tempfile.TemporaryDirectory(prefix="pykan_tutorial_") as tmp:
        work = os.path.join(tmp, "work")
        shutil.copytree(os.path.dirname(notebook), work,
                        ignore=shutil.ignore_patterns("*.ipynb_checkpoints"))
        target = os.path.join(work, os.path.basename(notebook))
        if side == "pykan_fast":
            cmd = [sys.executable, "-m", "pykan_fast.kan", target]
        else:
            cmd = [sys.executable, "-c", _PYKAN_RUNNER, target]
        env = dict(os.environ, MPLBACKEND="Agg")
        if os.path.isdir(os.path.join(_REPO, "pykan_fast")):
            env["PYTHONPATH"] = os.pathsep.join(
                [_REPO] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", time.perf_counter() - start, ""
        seconds = time.perf_counter() - start
        lines = [l for l in (proc.stderr + proc.stdout).splitlines() if l.strip()]
        errors = [l for l in proc.stderr.splitlines() if "Error" in l or "Exception" in l]
        note = (errors[-1] if errors else (lines[-1] if lines else "")).strip()[:120]
        return ("ok" if proc.returncode == 0 else "fail"), seconds, note


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="pykan checkout (or its tutorials/ folder)")
    parser.add_argument("--pykan", action="store_true", help="also run each notebook on pykan")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per notebook and side")
    parser.add_argument("--only", nargs="*", default=None, help="run notebooks whose path contains one of these")
    parser.add_argument("--markdown", default=None, help="also write the table (Markdown) to this file")
    parser.add_argument("--pykan-only", action="store_true", help="run pykan's side only")
    parser.add_argument("--jsonl", default=None,
                        help="append one JSON line per notebook and side (name, side, status, seconds, note, load)")
    args = parser.parse_args(argv)
    found = notebooks(args.path)
    if args.only:
        found = [f for f in found if any(s in f for s in args.only)]
    if not found:
        print(f"no notebooks under {args.path!r}", file=sys.stderr)
        return 2
    sides = ["pykan"] if args.pykan_only else ["pykan_fast"] + (["pykan"] if args.pykan else [])
    rows = []
    header = f"{'notebook':52s} " + " ".join(f"{s:>18s}" for s in sides)
    print(header, flush=True)
    for nb in found:
        name = os.path.relpath(nb, os.path.dirname(os.path.dirname(nb)))
        results = []
        for side in sides:
            load = os.getloadavg()[0]
            results.append(run_one(nb, side, args.timeout))
            if args.jsonl:
                status, seconds, note = results[-1]
                with open(args.jsonl, "a") as log:
                    log.write(json.dumps({"notebook": name, "side": side, "status": status,
                                          "seconds": round(seconds, 1), "note": note,
                                          "load_before": round(load, 2),
                                          "load_after": round(os.getloadavg()[0], 2)}) + "\n")
        rows.append((name, results))
        cells = " ".join(f"{status:>7s} {seconds:8.1f} s" for status, seconds, _ in results)
        print(f"{name:52s} {cells}", flush=True)
        for side, (status, _, note) in zip(sides, results):
            if status != "ok" and note:
                print(f"    {side}: {note}", flush=True)
    totals = {side: sum(r[i][1] for _, r in rows) for i, side in enumerate(sides)}
    passed = {side: sum(r[i][0] == "ok" for _, r in rows) for i, side in enumerate(sides)}
    print("total: " + ", ".join(f"{s} {passed[s]}/{len(rows)} ok, {totals[s]:.0f} s" for s in sides))
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write("| notebook | " + " | ".join(sides) + " |\n")
            out.write("|---|" + "---|" * len(sides) + "\n")
            for name, results in rows:
                out.write(f"| {name} | " + " | ".join(
                    f"{status} {seconds:.0f} s" + (f" ({note.replace('|', '/')})" if status != "ok" and note else "")
                    for status, seconds, note in results) + " |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
