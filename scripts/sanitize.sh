#!/usr/bin/env bash
# Builds the CLI with AddressSanitizer (Swift and C) and UndefinedBehaviorSanitizer (the C shims)
# in .build-asan, then decodes through it the whole fixture corpus, every fixture cut at many
# lengths, the containers made from it (whole and cut) and every saved crasher
# (scripts/sanitize_corpus.py says exactly what), then the interop tests of hostile inputs and of
# the read model. Fails on any sanitizer report, crash, hang or failed test.
#
#   bash scripts/sanitize.sh            about 40 cut lengths per file (what CI runs)
#   bash scripts/sanitize.sh --quick    12, those of Tests/Interop/test_truncation.py
#
# Runs scripts/setup.sh first when the -dev libraries are missing; the sanitizer runtimes ship
# with the Swift toolchain. SANITIZE_SCRATCH overrides the build folder. The interop suite can
# run against this build too: IMGCONV=$PWD/.build-asan/release/imgconv .venv/bin/python -m pytest
# Tests/Interop (its memory-limit tests, which use ulimit -v, cannot run under ASan).
set -euo pipefail
cd "$(dirname "$0")/.."

SCRATCH="${SANITIZE_SCRATCH:-.build-asan}"
quick=()
[ "${1:-}" = "--quick" ] && quick=(--quick)

# The system libraries (and python3) come from the set-up, run only when they are missing.
pkg-config --exists libpng libtiff-4 libturbojpeg libwebpdemux libgif hdf5 zlib libheif libavif 2>/dev/null && command -v python3 >/dev/null \
  || bash scripts/setup.sh

echo "sanitize: building the CLI in $SCRATCH (release, -sanitize=address; C: address,undefined)" >&2
mkdir -p "$SCRATCH"
# lld (shipped with the Swift toolchain): gold cannot always link the sanitizer runtimes.
if ! swift build -c release --scratch-path "$SCRATCH" --product imgconv \
     -Xswiftc -sanitize=address -Xswiftc -use-ld=lld \
     -Xcc -fsanitize=address,undefined -Xcc -fno-sanitize-recover=undefined >"$SCRATCH/build.log" 2>&1; then
  grep -E 'error' "$SCRATCH/build.log" | head -20 >&2 || tail -20 "$SCRATCH/build.log" >&2
  echo "sanitize: build failed (full log: $SCRATCH/build.log)" >&2
  exit 1
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/scripts/lsan-suppressions.txt:print_suppressions=0}"
python3 scripts/sanitize_corpus.py "$SCRATCH/release/imgconv" "${quick[@]}"

# The interop tests of hostile inputs and of the read model, on this build (their memory and
# descriptor limits apply to the plain build only: IMGCONV_SANITIZED). They need the test set-up.
case $SCRATCH in /*) binary="$SCRATCH/release/imgconv" ;; *) binary="$PWD/$SCRATCH/release/imgconv" ;; esac
if [ -x .venv/bin/python ]; then
  echo "sanitize: interop tests of hostile inputs and the read model on the sanitizer build" >&2
  IMGCONV_SANITIZED=1 IMGCONV="$binary" .venv/bin/python -m pytest -q -p no:cacheprovider \
    Tests/Interop/test_hostile.py Tests/Interop/test_hostile_readers.py Tests/Interop/test_hostile_outputs.py \
    Tests/Interop/test_hostile_sizes.py \
    Tests/Interop/test_read_model.py
else
  echo "sanitize: no .venv (bash scripts/setup.sh --test): the interop tests were not run on this build" >&2
fi
