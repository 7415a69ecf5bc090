"""export: class folders of PNGs that to-idx / to-npz turn back into the original tensors in class order
(the stable sort by label), bit for bit; crafted class names never write outside OUTDIR."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from PIL import Image

import interop_helpers as H

h5py = pytest.importorskip("h5py")

MNIST = H.FIXTURES / "mnist"


def _files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_mnist_export_then_to_idx_gives_the_sorted_original(run, tmp_path):
    src_images, src_labels = MNIST / "t10k-images-idx3-ubyte.gz", MNIST / "t10k-labels-idx1-ubyte.gz"
    if not src_images.is_file() or not src_labels.is_file():
        pytest.skip("Tests/Fixtures/mnist t10k files are missing")
    raw_x, raw_y = gzip.decompress(src_images.read_bytes()), gzip.decompress(src_labels.read_bytes())
    X = np.frombuffer(raw_x[16:], np.uint8).reshape(10000, 28, 28)
    y = np.frombuffer(raw_y[8:], np.uint8)
    order = np.argsort(y, kind="stable")

    out = tmp_path / "png"
    run(["export", src_images, out], timeout=300)
    assert sorted(p.name for p in out.iterdir()) == [str(d) for d in range(10)] + ["classes.txt"]
    first = sorted((out / "7").iterdir())[0]
    assert first.name == "0000.png", "index-named, zero-padded"
    np.testing.assert_array_equal(np.asarray(Image.open(first)), X[0])

    back = tmp_path / "idx"
    run(["to-idx", out, back, "--prefix", "t10k", "--classes-file", out / "classes.txt"], timeout=300)
    expected_x = raw_x[:16] + X[order].tobytes()
    expected_y = raw_y[:8] + y[order].tobytes()
    assert (back / "t10k-images-idx3-ubyte").read_bytes() == expected_x
    assert (back / "t10k-labels-idx1-ubyte").read_bytes() == expected_y
    run(["verify", back, "--against", out])


def test_export_rgb_and_uint16_round_trip_through_to_npz(run, make_dataset, tmp_path):
    rng = np.random.default_rng(3)
    ds = make_dataset()
    for k in range(4):
        ds.add_image(f"{'ba'[k % 2]}/{k}.png", rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))
    npz = tmp_path / "rgb.npz"
    run(["to-npz", ds.root, npz])
    out = tmp_path / "png"
    run(["export", npz, out])
    again = tmp_path / "again.npz"
    run(["to-npz", out, again])
    a, b = np.load(npz), np.load(again)
    for key in ("trainXs", "trainYs", "classNames"):
        np.testing.assert_array_equal(a[key], b[key])  # already in class order: identical

    ds16 = make_dataset()
    for k in range(3):
        ds16.add_png16(f"c{k % 2}/{k}.png", rng.integers(0, 65536, (4, 3), dtype=np.uint16))
    h5 = tmp_path / "u16.h5"
    run(["to-hdf5", ds16.root, h5])
    out16 = tmp_path / "png16"
    run(["export", h5, out16])
    img = H.pypng_array(sorted((out16 / "c0").iterdir())[0])
    with h5py.File(h5, "r") as f:
        np.testing.assert_array_equal(img.reshape(4, 3), f["trainXs"][0, :, :, 0])


def test_crafted_class_names_stay_inside_outdir(run, tmp_path):
    crafted = tmp_path / "crafted.h5"
    names = ["../../escape", "a/b", ".hidden", "", "nul\x01ctl", "..", "a_b"]
    with h5py.File(crafted, "w") as f:
        f["trainXs"] = np.arange(len(names) * 4, dtype=np.uint8).reshape(len(names), 2, 2, 1)
        f["trainYs"] = np.arange(len(names), dtype=np.int64)
        f.attrs["classNames"] = names
    outside_before = sorted(p.name for p in tmp_path.iterdir())
    box = tmp_path / "box" / "out"
    box.parent.mkdir()
    run(["export", crafted, box])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(outside_before + ["box"])
    assert [p.name for p in box.parent.iterdir()] == ["out"]
    folders = sorted(p.name for p in box.iterdir() if p.is_dir())
    assert len(folders) == len(names), "every class keeps its own folder"
    for f in folders:
        assert "/" not in f and ".." not in f and not f.startswith(".") and f.isprintable()
    assert len(_files_under(box)) == len(names) + 1


def test_export_refuses_float_images(run, tmp_path):
    f32 = tmp_path / "f.h5"
    with h5py.File(f32, "w") as f:
        f["trainXs"] = np.zeros((2, 2, 2, 1), np.float32)
        f["trainYs"] = np.zeros(2, np.int64)
    res = run(["export", f32, tmp_path / "out"], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "f.h5", "float32")
