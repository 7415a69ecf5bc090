#!/usr/bin/env bash
# Makes this folder's files with imgconv as it was before manifest version 2 (commit aeb72e7 of
# this repository, the last whose manifests record tensors by SHA-256):
#   IMGCONV=<that imgconv binary> PYTHON=<python with numpy and Pillow> bash make_v1.sh
# src/: 7 small PNGs in 2 classes (seeded noise); v1.npz: `to-npz src v1.npz --split
# train=0.5,test=0.5 --seed 3 --shuffle`; parts/: the same options planned as 2 shards and both
# parts written as .npz (plan.json, part-0000k-of-00002.npz and their manifests).
set -euo pipefail
cd "$(dirname "$0")"
: "${IMGCONV:?the imgconv binary of the release before manifest version 2}"
PYTHON=${PYTHON:-python3}
rm -rf src parts v1.npz v1.npz.manifest.json
"$PYTHON" - <<'PY'
import numpy as np
from pathlib import Path
from PIL import Image
rng = np.random.default_rng(2026)
for i in range(7):
    cls = "ant" if i % 2 else "bee"
    Path("src", cls).mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).save(f"src/{cls}/{i}.png")
PY
opts=(--split train=0.5,test=0.5 --seed 3 --shuffle)
"$IMGCONV" to-npz src v1.npz "${opts[@]}" -q
"$IMGCONV" plan src "${opts[@]}" --shards 2 -o plan.json -q
for k in 0 1; do "$IMGCONV" to-npz --plan plan.json --shard "$k/2" parts -q; done
rm plan.json   # each part's folder holds its copy
