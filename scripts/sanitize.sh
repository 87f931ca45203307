#!/usr/bin/env bash
# Build pykan_fast._C with AddressSanitizer + UndefinedBehaviorSanitizer
# (-DPYKAN_FAST_SANITIZE=ON) into a throwaway virtualenv, then run the C++-facing tests
# with the sanitizer runtimes preloaded. Exits non-zero on a test failure and on any
# sanitizer report (the reports are printed at the end).
#
#   scripts/sanitize.sh                      # tests/ops/test_cpu_kernels.py tests/ops/test_bad_input.py tests/ops/test_fuzz.py tests/ops/test_double_backward.py tests/nn/test_stack.py
#   scripts/sanitize.sh tests/ops/test_fuzz.py -x   # other pytest arguments (paths relative to the repo)
#
# Environment: PYTHON (default python3; needs torch, numpy, pytest, hypothesis,
# scikit-build-core, pybind11, cmake, ninja installed), PYKAN_SAN_VENV (default
# /tmp/pykan_san, deleted and recreated), PYKAN_SAN_BUILD_DIR (default
# <repo>/build/sanitize, kept between runs for incremental builds).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
VENV=${PYKAN_SAN_VENV:-/tmp/pykan_san}
BUILD_DIR=${PYKAN_SAN_BUILD_DIR:-$REPO/build/sanitize}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

if [ "$#" -eq 0 ]; then
  set -- tests/ops/test_cpu_kernels.py tests/ops/test_bad_input.py tests/ops/test_fuzz.py tests/ops/test_double_backward.py \
    tests/nn/test_stack.py
fi
# Test paths are given relative to the repository; pytest runs from elsewhere.
ARGS=()
for a in "$@"; do
  if [[ "$a" != -* && -e "$REPO/${a%%::*}" ]]; then ARGS+=("$REPO/$a"); else ARGS+=("$a"); fi
done

echo "== virtualenv $VENV"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
# The build and test dependencies come from $PY's site-packages, added as plain path
# lines of a .pth file -- not with --system-site-packages, which would also run that
# directory's .pth files, among them an editable install's import hook
# (_editable_skbc_pykan_fast) that redirects `import pykan_fast` to the source tree and
# its unsanitized extension, shadowing the build below.
"$PY" - "$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" <<'EOF'
import os, sys, sysconfig
paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
with open(os.path.join(sys.argv[1], "zz_pykan_san_deps.pth"), "w") as f:
    f.write("".join(p + "\n" for p in paths))
EOF

echo "== build (PYKAN_FAST_SANITIZE=ON) in $BUILD_DIR"
# --ignore-installed: never touch (uninstall) a pykan-fast outside the venv.
"$VPY" -m pip install --no-build-isolation --no-deps --ignore-installed \
  -Ccmake.define.PYKAN_FAST_SANITIZE=ON -Ccmake.build-type=RelWithDebInfo \
  -Cbuild-dir="$BUILD_DIR" "$REPO"

WORK=$(mktemp -d /tmp/pykan_san_run.XXXXXX)
cd "$WORK"  # outside the repository: the source tree must not shadow the install

# Located without importing it: loading the extension needs the runtimes preloaded.
EXT=$("$VPY" -c 'import glob, importlib.util, os
spec = importlib.util.find_spec("pykan_fast")
print(*glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "_C*.so"))[:1])')
case "$EXT" in
  "$VENV"/*) ;;
  *) echo "error: pykan_fast._C imports from $EXT, not from $VENV" >&2; exit 2 ;;
esac
# The runtimes the extension was linked against (the compiler CMake chose).
ASAN_LIB=$(ldd "$EXT" | awk '/libasan\.so/ {print $3; exit}')
UBSAN_LIB=$(ldd "$EXT" | awk '/libubsan\.so/ {print $3; exit}')
if [ -z "$ASAN_LIB" ] || [ -z "$UBSAN_LIB" ]; then
  echo "error: $EXT is not linked against libasan/libubsan (sanitizer flags not applied?)" >&2
  ldd "$EXT" >&2
  exit 2
fi
echo "== extension $EXT"
echo "== runtimes $ASAN_LIB $UBSAN_LIB"

# ASan writes its reports to files (log_path); the standalone UBSan runtime ignores
# log_path next to ASan's, so pytest runs with -s (no fd capture: a report printed during
# a test that then halts the process would be lost with pytest's captured output) and its
# output is scanned too. Either runtime exits with its own status on the first report.
LOGS="$WORK/sanitizer-logs"
mkdir -p "$LOGS"
export LD_PRELOAD="$ASAN_LIB $UBSAN_LIB"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:log_path=$LOGS/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87"

echo "== pytest ${ARGS[*]}"
set +e
"$VPY" -m pytest -p no:cacheprovider -q -s "${ARGS[@]}" 2>&1 | tee "$WORK/pytest.log"
RC=${PIPESTATUS[0]}
set -e
unset LD_PRELOAD

PATTERN='runtime error:|ERROR: AddressSanitizer|SUMMARY: (Address|UndefinedBehavior|Leak)Sanitizer|ERROR: LeakSanitizer'
FOUND=0
for f in $(find "$LOGS" -type f -size +0 | sort); do
  FOUND=1
  echo "---- ASan report $f" >&2
  cat "$f" >&2
done
if grep -Eq "$PATTERN" "$WORK/pytest.log"; then
  FOUND=1
  echo "---- sanitizer lines in the test output ($WORK/pytest.log):" >&2
  grep -En -A 12 "$PATTERN" "$WORK/pytest.log" >&2
fi
if [ "$RC" -eq 86 ] || [ "$RC" -eq 87 ]; then
  FOUND=1
  echo "---- the process was halted by a sanitizer (exit status $RC: 86 ASan, 87 UBSan)" >&2
fi
if [ "$FOUND" -ne 0 ]; then
  echo "sanitize.sh: FAILED: sanitizer report(s) above (pytest exit status $RC)" >&2
  exit 1
fi
if [ "$RC" -ne 0 ]; then
  echo "sanitize.sh: FAILED: pytest exit status $RC, no sanitizer report" >&2
  exit "$RC"
fi
echo "sanitize.sh: OK (pytest passed; no sanitizer report; output in $WORK)"
