#!/usr/bin/env bash
# Set-up, then the first command a user types: convert samples/ into samples.npz and verify it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.build/release/imgconv to-npz samples samples.npz
.build/release/imgconv verify samples.npz --against samples | tail -n 1
