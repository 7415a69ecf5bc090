"""Datasets made with the real CLI, and the independent readers (np.load, h5py, idx2numpy) the
reader is compared with."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SPLIT_KEYS = {"train": ("trainXs", "trainYs"), "val": ("valXs", "valYs"), "test": ("testXs", "testYs")}
IDX_PREFIX = {"train": "train", "val": "val", "test": "t10k"}


def build_split_root(make_dataset, channels=3, bits=8, per_class=(4, 3, 2), size=(6, 5), seed=0):
    """ROOT/{train,val,test}/{cat,dog,emu}/i.png with random pixels: 3 classes, 3 splits."""
    rng = np.random.default_rng(seed)
    b = make_dataset()
    h, w = size
    for split, n in zip(("train", "val", "test"), per_class):
        for c in ("cat", "dog", "emu"):
            for i in range(n):
                if bits == 16:
                    a = rng.integers(0, 65536, (h, w, 3) if channels == 3 else (h, w), dtype=np.uint16)
                    b.add_png16(f"{split}/{c}/{i}.png", a)
                else:
                    a = rng.integers(0, 256, (h, w, 3) if channels == 3 else (h, w), dtype=np.uint8)
                    b.add_image(f"{split}/{c}/{i}.png", a)
    return b.root


def reference(path: Path, fmt: str) -> dict:
    """{split: (xs, ys)}, class names and manifest, by the readers users have."""
    out = {}
    if fmt == "npz":
        with np.load(path) as z:
            for s, (xk, yk) in SPLIT_KEYS.items():
                if xk in z.files:
                    out[s] = (z[xk], z[yk])
            names = [str(x) for x in z["classNames"]]
        manifest = json.loads(Path(str(path) + ".manifest.json").read_text())
    elif fmt == "npy":
        for s, (xk, yk) in SPLIT_KEYS.items():
            if (path / f"{xk}.npy").exists():
                out[s] = (np.load(path / f"{xk}.npy"), np.load(path / f"{yk}.npy"))
        names = [str(x) for x in np.load(path / "classNames.npy")]
        manifest = json.loads((path / "manifest.json").read_text())
    elif fmt == "h5":
        import h5py
        with h5py.File(path, "r") as f:
            for s, (xk, yk) in SPLIT_KEYS.items():
                if xk in f:
                    out[s] = (f[xk][()], f[yk][()])
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs["classNames"]]
        manifest = json.loads(Path(str(path) + ".manifest.json").read_text())
    elif fmt == "idx":
        import idx2numpy
        for s, prefix in IDX_PREFIX.items():
            imgs = sorted(path.glob(f"{prefix}-images-idx*"))
            if imgs:
                labs = sorted(path.glob(f"{prefix}-labels-idx1-*"))
                out[s] = (idx2numpy.convert_from_file(str(imgs[0])), idx2numpy.convert_from_file(str(labs[0])))
        manifest = json.loads((path / "manifest.json").read_text())
        names = [c["name"] for c in sorted(manifest["classes"], key=lambda c: c["index"])]
    else:
        raise ValueError(fmt)
    return {"splits": out, "names": names, "manifest": manifest}
