"""export: class folders of PNGs (float32 TIFFs for float data) that to-idx / to-npz turn back into the
original tensors in class order (the stable sort by label), bit for bit; crafted class names never write
outside OUTDIR."""

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


def _special_floats(rng, shape) -> np.ndarray:
    """float32 noise with the values a lossy path would change: NaNs (quiet, signalling, with
    payloads and sign), infinities, negative zero, subnormals, the extremes."""
    x = (rng.standard_normal(shape) * 1000).astype(np.float32)
    bits = x.reshape(-1).view(np.uint32)
    special = [0x7FC00000, 0x7F800001, 0xFFC12345, 0x7F800000, 0xFF800000, 0x80000000, 0x00000001,
               0x807FFFFF, 0x7F7FFFFF, 0xFF7FFFFF, 0x3F800000]
    bits[:len(special)] = special
    return x


def _tiff_page(path):
    tifffile = pytest.importorskip("tifffile")
    with tifffile.TiffFile(path) as tf:
        assert len(tf.pages) == 1
        page = tf.pages[0]
        tags = {"sampleformat": int(page.sampleformat), "bits": page.bitspersample,
                "planar": int(page.planarconfig), "photometric": int(page.photometric),
                "compression": int(page.compression), "extrasamples": tuple(int(e) for e in page.extrasamples)}
        return page.asarray(), tags


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_export_float32_as_tiff_round_trips_bit_for_bit(run, tmp_path, channels):
    """float32 images become 32-bit IEEE float TIFFs that tifffile reads exactly and to-npz reads
    back bit for bit (NaN payloads, infinities, -0 and subnormals included)."""
    rng = np.random.default_rng(40 + channels)
    X = _special_floats(rng, (7, 5, 6, channels))
    y = np.array([2, 0, 1, 0, 2, 2, 1], np.int64)
    names = np.array(["zebra", "ant", "moth"])
    npz = tmp_path / "f32.npz"
    np.savez(npz, trainXs=X, trainYs=y, classNames=names)

    out = tmp_path / "tiff"
    res = run(["export", npz, out])
    assert res.stderr == "", "libtiff must not print"
    assert "7 32-bit float TIFFs" in res.stdout
    assert (out / "classes.txt").read_text() == "zebra\nant\nmoth\n"
    assert sorted(p.name for p in (out / "ant").iterdir()) == ["2.tiff", "6.tiff"]
    assert not any(p.name.startswith(".") for p in out.rglob("*")), "no temporaries left"
    for i in range(len(y)):
        arr, tags = _tiff_page(out / names[y[i]] / f"{i}.tiff")
        assert arr.dtype == np.float32
        assert arr.reshape(5, 6, channels).tobytes() == X[i].tobytes(), f"image {i}"
        assert tags["sampleformat"] == 3 and tags["bits"] == 32 and tags["planar"] == 1
        assert tags["photometric"] == (2 if channels >= 3 else 1)
        assert tags["extrasamples"] == ((2,) if channels in (2, 4) else ())
        assert tags["compression"] == 1

    order = np.argsort(y, kind="stable")
    for dtype in ("float32", "auto"):
        back = tmp_path / f"back-{dtype}.npz"
        run(["to-npz", out, back, "--dtype", dtype, "--color", "keep", "--classes-file", out / "classes.txt"])
        b = np.load(back)
        assert b["trainXs"].dtype == np.float32 and b["trainXs"].shape == X.shape
        assert b["trainXs"].tobytes() == X[order].tobytes(), f"--dtype {dtype}: not bit for bit"
        np.testing.assert_array_equal(b["trainYs"], y[order])
        assert list(b["classNames"]) == list(names)


def test_export_float16_widens_to_float32_tiff(run, tmp_path):
    rng = np.random.default_rng(7)
    X = (rng.standard_normal((4, 3, 5, 3)) * 300).astype(np.float16)
    X.reshape(-1)[:6] = np.array([np.inf, -np.inf, -0.0, 6e-8, 65504, np.nan], np.float16)
    y = np.array([1, 0, 1, 0], np.int64)
    h5 = tmp_path / "f16.h5"
    with h5py.File(h5, "w") as f:
        f["trainXs"] = X
        f["trainYs"] = y
        f.attrs["classNames"] = ["a", "b"]
    out = tmp_path / "tiff"
    run(["export", h5, out])
    arr, tags = _tiff_page(out / "b" / "0.tiff")
    assert arr.dtype == np.float32 and tags["bits"] == 32
    np.testing.assert_array_equal(arr, X[0].astype(np.float32))  # widening is exact (NaN == NaN here)
    assert arr.reshape(-1).view(np.uint32)[5] == 0x7FC00000, "float16 quiet NaN -> float32 quiet NaN"
    order = np.argsort(y, kind="stable")
    back = tmp_path / "back16.npz"
    run(["to-npz", out, back, "--dtype", "float16"])
    assert np.load(back)["trainXs"].tobytes() == X[order].tobytes()
    back32 = tmp_path / "back32.npz"
    run(["to-npz", out, back32])
    assert np.load(back32)["trainXs"].tobytes() == X[order].astype(np.float32).tobytes()


def test_export_float16_nans_keep_sign_payload_and_kind(run, tmp_path):
    """Widening is bit-level for NaNs: a hardware float16 -> float32 conversion quiets a signalling
    NaN; the TIFF keeps it signalling, with its sign and payload."""
    X = np.zeros((1, 1, 4, 1), np.float16)
    X.reshape(-1).view(np.uint16)[:] = [0x7C01, 0xFE05, 0xFD55, 0x0001]
    npz = tmp_path / "nan16.npz"
    np.savez(npz, trainXs=X, trainYs=np.zeros(1, np.int64), classNames=np.array(["n"]))
    run(["export", npz, tmp_path / "out"])
    arr, _ = _tiff_page(tmp_path / "out" / "n" / "0.tiff")
    assert [hex(v) for v in arr.reshape(-1).view(np.uint32)] == ["0x7f802000", "0xffc0a000", "0xffaaa000", "0x33800000"]


def test_export_float_nchw_from_a_real_conversion(run, make_dataset, tmp_path):
    """to-npz --dtype float32 --scale unit --layout nchw of real PNGs (non-integer floats, channels
    first), export, and to-npz with the same layout gives the same tensor."""
    rng = np.random.default_rng(11)
    ds = make_dataset()
    for k in range(5):
        ds.add_image(f"{'pq'[k % 2]}/{k}.png", rng.integers(0, 256, (4, 6, 3), dtype=np.uint8))
    npz = tmp_path / "nchw.npz"
    run(["to-npz", ds.root, npz, "--dtype", "float32", "--scale", "unit", "--layout", "nchw"])
    X = np.load(npz)["trainXs"]
    assert X.shape == (5, 3, 4, 6) and X.dtype == np.float32
    out = tmp_path / "tiff"
    run(["export", npz, out])
    first = sorted((out / "p").iterdir())[0]
    arr, _ = _tiff_page(first)
    assert arr.shape == (4, 6, 3), "TIFFs are interleaved (H, W, C)"
    assert arr.tobytes() == np.moveaxis(X[0], 0, -1).tobytes()
    back = tmp_path / "back.npz"
    run(["to-npz", out, back, "--layout", "nchw"])
    assert np.load(back)["trainXs"].tobytes() == X.tobytes()
    run(["verify", back, "--against", out])


@pytest.mark.parametrize("dtype", ["int8", "int16", "int64"])
def test_export_refuses_what_neither_png_nor_tiff_holds(run, tmp_path, dtype):
    bad = tmp_path / "f.h5"
    with h5py.File(bad, "w") as f:
        f["trainXs"] = np.zeros((2, 2, 2, 1), dtype)
        f["trainYs"] = np.zeros(2, np.int64)
    res = run(["export", bad, tmp_path / "out"], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "f.h5", dtype)
