"""pytest fixtures for the imgconv interop suite.

Run from the repository root:  python3 -m pytest Tests/Interop
The binary is $IMGCONV, else <repo>/.build/release/imgconv; without it every test that runs the CLI
is skipped (collection still works). Fixture files come from Tests/Fixtures/ and samples/; a test
whose fixture is missing is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import interop_helpers as H  # noqa: E402


@pytest.fixture(scope="session")
def imgconv_bin() -> Path:
    p = H.binary_path()
    if not (p.is_file() and os.access(p, os.X_OK)):
        pytest.skip(f"imgconv binary not found at {p} (build it with `swift build -c release` or set IMGCONV)")
    return p


@pytest.fixture(scope="session")
def run(imgconv_bin):
    """run(args, expect_rc=0, timeout=120, **subprocess_kwargs) -> CompletedProcess (text mode).
    expect_rc may be an int, a collection of ints, or None (no check)."""
    return H.run_imgconv


@pytest.fixture
def fixture_file():
    """fixture_file('bad/truncated.png') -> Path under Tests/Fixtures, or skips the test."""
    def get(rel: str) -> Path:
        p = H.FIXTURES / rel
        if not p.is_file():
            pytest.skip(f"fixture Tests/Fixtures/{rel} is missing")
        return p
    return get


@pytest.fixture(scope="session")
def samples_root() -> Path:
    root = H.SAMPLES
    if not root.is_dir() or len(H.expected_classes(root)) < 1 or not H.expected_files(root):
        pytest.skip("samples/ is missing or holds no images")
    return root


class DatasetBuilder:
    """A ROOT/<class>/... tree in a temporary folder.

    add(rel, src)            copy a file (Path) to ROOT/rel
    add_bytes(rel, data)     write raw bytes
    add_image(rel, arr, fmt) save a numpy array or PIL image with Pillow (format from the suffix)
    add_class(name)          an (empty) class folder
    """

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _target(self, rel: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def add(self, rel: str, src: Path) -> Path:
        src = Path(src)
        if not src.is_file():
            pytest.skip(f"fixture {src.name} is missing")
        p = self._target(rel)
        shutil.copyfile(src, p)
        return p

    def add_bytes(self, rel: str, data: bytes) -> Path:
        p = self._target(rel)
        p.write_bytes(data)
        return p

    def add_image(self, rel: str, img, fmt: str | None = None, **save_kw) -> Path:
        from PIL import Image
        if isinstance(img, np.ndarray):
            a = img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img
            img = Image.fromarray(a)
        p = self._target(rel)
        img.save(p, format=fmt, **save_kw)
        return p

    def add_png16(self, rel: str, arr: np.ndarray) -> Path:
        """A 16-bit PNG via pypng: arr (H, W) gray or (H, W, 3|4) uint16."""
        import png
        a = np.asarray(arr, dtype=np.uint16)
        h, w = a.shape[:2]
        planes = 1 if a.ndim == 2 else a.shape[2]
        p = self._target(rel)
        writer = png.Writer(w, h, greyscale=planes in (1, 2), alpha=planes in (2, 4), bitdepth=16)
        with open(p, "wb") as f:
            writer.write(f, a.reshape(h, w * planes).tolist())
        return p

    def add_class(self, name: str) -> Path:
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        return p


@pytest.fixture
def make_dataset(tmp_path):
    """make_dataset(name='root') -> DatasetBuilder for a fresh tmp ROOT."""
    counter = [0]

    def make(name: str | None = None) -> DatasetBuilder:
        counter[0] += 1
        return DatasetBuilder(tmp_path / (name or f"root{counter[0]}"))
    return make


@pytest.fixture
def outdir(tmp_path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d
