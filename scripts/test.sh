#!/usr/bin/env bash
# Set-up with the test packages, then every test: Swift unit tests, the Python reader's tests, then
# the interop tests that run the release binary and judge its outputs with numpy, zipfile, unzip,
# Pillow and tifffile.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
swift test 2>&1 | { grep -Ev '^\[[0-9]+/[0-9]+\]|^Test Case .* (started|passed)' || true; }
# The Python reader's tests (python/tests) first, with the reason of each skip (-rs); the interop
# suite last, whose summary line closes the run.
IMGCONV="$PWD/.build/release/imgconv" TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m pytest -q -rs -p no:cacheprovider python/tests
IMGCONV="$PWD/.build/release/imgconv" .venv/bin/python -m pytest -q Tests/Interop "$@"
