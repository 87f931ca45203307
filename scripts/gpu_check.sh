#!/usr/bin/env bash
# GPU check on a fresh CUDA machine (H100/H200 with Python and pip, nothing else prepared):
# install the project, run tests/ops/test_triton.py on CUDA, then bench/gpu_check.py (time,
# peak memory and bf16 error at a fixed small set of shapes). Everything lands in $OUT
# (default ./gpu_results): install.log, test_triton.log, bench.log, gpu_check.md and a
# summary.md that links them. Ends within 8 minutes: every step runs under `timeout` and
# the benchmark gets what is left of the budget (it writes its table as it goes).
#
#   bash scripts/gpu_check.sh                 # from the repository root or anywhere
#   OUT=/some/dir PYTHON=python3.11 bash scripts/gpu_check.sh
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-$PWD/gpu_results}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
TOTAL_S=470            # 8 minutes less a margin for the summary
START=$(date +%s)
left() { echo $(( TOTAL_S - ($(date +%s) - START) )); }
SUMMARY="$OUT/summary.md"
note() { echo "$*" | tee -a "$SUMMARY"; }

: > "$SUMMARY"
note "# pykan_fast GPU check ($(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
note ""
note "- GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"

# ---- 1. install: what is installed first, PyPI only where something is missing -----------
installed() {
  "$PY" - <<'EOF' 2>/dev/null
import importlib.util as u, sys
import torch
need = ("triton", "pytest", "hypothesis", "numpy")
sys.exit(0 if torch.cuda.is_available() and all(u.find_spec(m) for m in need) else 1)
EOF
}
can_build_offline() {
  "$PY" -c "import scikit_build_core, pybind11, cmake, ninja" 2>/dev/null
}
{
  # Already installed from this checkout (an editable install of another one would test
  # other kernels).
  if "$PY" -c "import os, sys, pykan_fast._C, pykan_fast.triton as t
sys.exit(not os.path.realpath(t.__file__).startswith(os.path.realpath('$PWD')))" 2>/dev/null \
      && installed; then
    echo "pykan_fast is already installed here: $("$PY" -c 'import pykan_fast; print(pykan_fast.__file__)')"
    INSTALL=ok
  elif installed && can_build_offline; then
    echo "dependencies present: building without network (--no-build-isolation --no-deps)"
    timeout 240 "$PY" -m pip install --no-build-isolation --no-deps -e . && INSTALL=ok || INSTALL=failed
  else
    echo "installing from PyPI: .[test,triton]"
    timeout 240 "$PY" -m pip install -e ".[test,triton]" && INSTALL=ok || {
      echo "the full test extra failed (pinned comparison packages?): core + pytest only"
      timeout 180 "$PY" -m pip install -e ".[triton]" pytest hypothesis && INSTALL=ok || INSTALL=failed
    }
  fi
  echo "INSTALL=$INSTALL"
} > "$OUT/install.log" 2>&1
INSTALL=$(sed -n 's/^INSTALL=//p' "$OUT/install.log" | tail -1)
note "- install: ${INSTALL:-failed} ($(( $(date +%s) - START )) s, install.log)"
"$PY" - >> "$SUMMARY" 2>&1 <<'EOF'
import torch
try:
    import triton
    tv = triton.__version__
except Exception as e:  # still report what is there
    tv = f"not importable ({e})"
print(f"- torch {torch.__version__} (CUDA {torch.version.cuda}), triton {tv}, "
      f"cuda available: {torch.cuda.is_available()}")
EOF
if [ "${INSTALL:-failed}" != ok ]; then
  note "- stopping: the install failed, see install.log"
  exit 1
fi

# ---- 2. tests/ops/test_triton.py on CUDA (the interpreter classes skip) -----------------------
T_TESTS=$(( $(left) - 200 )); [ "$T_TESTS" -gt 180 ] && T_TESTS=180
if [ "$T_TESTS" -gt 20 ]; then
  T0=$(date +%s)
  env -u TRITON_INTERPRET timeout "$T_TESTS" "$PY" -m pytest tests/ops/test_triton.py -q -rs \
      -p no:cacheprovider > "$OUT/test_triton.log" 2>&1
  RC=$?
  TAIL=$(tail -n 1 "$OUT/test_triton.log")
  [ "$RC" = 124 ] && TAIL="timed out after $T_TESTS s (partial log)"
  note "- tests/ops/test_triton.py: exit $RC, $TAIL ($(( $(date +%s) - T0 )) s, test_triton.log)"
else
  note "- tests/ops/test_triton.py: skipped, no time left after the install"
fi

# ---- 3. benchmarks: bench/gpu_check.py, time-boxed --------------------------------------
T_BENCH=$(( $(left) - 10 ))
if [ "$T_BENCH" -gt 60 ]; then
  T0=$(date +%s)
  env -u TRITON_INTERPRET timeout "$T_BENCH" "$PY" bench/gpu_check.py --out "$OUT" \
      --budget-s $(( T_BENCH - 40 )) > "$OUT/bench.log" 2>&1
  RC=$?
  note "- bench/gpu_check.py: exit $RC ($(( $(date +%s) - T0 )) s, bench.log; table in gpu_check.md)"
else
  note "- bench/gpu_check.py: skipped, no time left"
fi
note "- total: $(( $(date +%s) - START )) s"
[ -f "$OUT/gpu_check.md" ] && { echo; cat "$OUT/gpu_check.md"; } >> "$SUMMARY"
echo "results in $OUT"
