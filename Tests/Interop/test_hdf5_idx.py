"""HDF5 and IDX: to-hdf5 / to-idx outputs judged by h5py, h5dump and idx2numpy; convert between every
format (the real MNIST t10k pair round-trips IDX -> npz -> h5 -> IDX byte for byte); verify and
inspect on every format; malformed inputs give one clear line and a non-zero exit."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess

import numpy as np
import pytest

import interop_helpers as H

h5py = pytest.importorskip("h5py")

MNIST = H.FIXTURES / "mnist"


def _dataset(make_dataset, n=7, shape=(12, 10, 3), classes=("cat", "dög", "z")):
    rng = np.random.default_rng(4)
    ds = make_dataset()
    arrays = []
    for k in range(n):
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        ds.add_image(f"{classes[k % len(classes)]}/{k:02d}.png", a)
        arrays.append((classes[k % len(classes)], k, a))
    return ds, arrays


def _expected(arrays, classes):
    order = sorted(arrays, key=lambda t: (sorted(classes).index(t[0]), t[1]))
    X = np.stack([a for _, _, a in order])
    y = np.array([sorted(classes).index(c) for c, _, _ in order], dtype=np.int64)
    return X, y


@pytest.fixture
def mnist_pair(tmp_path):
    """The real MNIST t10k pair, gunzipped into tmp_path/mnist."""
    images, labels = MNIST / "t10k-images-idx3-ubyte.gz", MNIST / "t10k-labels-idx1-ubyte.gz"
    if not images.is_file() or not labels.is_file():
        pytest.skip("Tests/Fixtures/mnist t10k files are missing")
    d = tmp_path / "mnist"
    d.mkdir()
    for src in (images, labels):
        (d / src.name[:-3]).write_bytes(gzip.decompress(src.read_bytes()))
    return d / "t10k-images-idx3-ubyte", d / "t10k-labels-idx1-ubyte"


# ------------------------------------------------------------------------------------------------
# to-hdf5
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags", [[], ["--compress"], ["--compress", "--level", "9"]], ids=["plain", "gzip4", "gzip9"])
def test_to_hdf5_as_h5py_reads_it(run, make_dataset, tmp_path, flags):
    classes = ("cat", "dög", "z")
    ds, arrays = _dataset(make_dataset, classes=classes)
    out = tmp_path / "o.h5"
    run(["to-hdf5", ds.root, out, *flags])
    X, y = _expected(arrays, classes)
    with h5py.File(out, "r") as f:
        assert set(f.keys()) == {"trainXs", "trainYs"}
        x, ys = f["trainXs"], f["trainYs"]
        assert x.shape == X.shape and x.dtype == np.uint8
        assert ys.shape == (len(y),) and ys.dtype == np.int64
        np.testing.assert_array_equal(x[...], X)
        np.testing.assert_array_equal(ys[...], y)
        assert x.maxshape[0] is None and ys.maxshape[0] is None, "N must be extendible"
        assert x.chunks[1:] == X.shape[1:], "chunked along N only"
        if flags:
            assert x.compression == "gzip" and x.shuffle
            assert x.compression_opts == (int(flags[-1]) if len(flags) == 3 else 4)
        else:
            assert x.compression is None
        names = f.attrs["classNames"]
        assert [type(n) for n in names] == [str] * 3, "class names must read back as str"
        assert list(names) == sorted(classes)
        embedded = f.attrs["imgconv_manifest"]
        assert isinstance(embedded, str)
    sidecar = (tmp_path / "o.h5.manifest.json").read_text()
    assert embedded == sidecar
    manifest = json.loads(sidecar)
    H.validate_against_schema(manifest)
    assert manifest["output"]["format"] == "h5"
    run(["verify", out, "--against", ds.root])


def test_to_h5_alias_chunks_and_h5dump(run, make_dataset, tmp_path):
    if not shutil.which("h5dump"):
        pytest.skip("h5dump (hdf5-tools) is not installed")
    ds, _ = _dataset(make_dataset, n=3, shape=(128, 128, 3))  # 48 KiB per image: one per chunk
    out = tmp_path / "big.h5"
    run(["to-h5", ds.root, out])
    with h5py.File(out, "r") as f:
        assert f["trainXs"].chunks == (1, 128, 128, 3)
    dump = subprocess.run(["h5dump", "-H", str(out)], capture_output=True, text=True, check=True).stdout
    assert 'DATASET "trainXs"' in dump and 'DATASET "trainYs"' in dump
    assert "H5T_STD_U8LE" in dump and "H5T_STD_I64LE" in dump
    assert "H5S_UNLIMITED" in dump
    assert 'ATTRIBUTE "classNames"' in dump and "H5T_CSET_UTF8" in dump


def test_manifest_over_64k_fits_in_the_attribute(run, make_dataset, tmp_path):
    ds = make_dataset()
    rng = np.random.default_rng(9)
    for k in range(500):
        ds.add_image(f"class-{k % 3}/a-rather-long-file-name-{k:04d}.png", rng.integers(0, 256, (4, 4), dtype=np.uint8))
    out = tmp_path / "m.h5"
    run(["to-hdf5", ds.root, out])
    sidecar = (tmp_path / "m.h5.manifest.json").read_text()
    assert len(sidecar) > 65536
    with h5py.File(out, "r") as f:
        assert f.attrs["imgconv_manifest"] == sidecar


def test_to_hdf5_is_reproducible_and_leaves_no_temporary(run, make_dataset, tmp_path):
    ds, _ = _dataset(make_dataset)
    a, b = tmp_path / "a" / "x.h5", tmp_path / "b" / "x.h5"
    a.parent.mkdir()
    b.parent.mkdir()
    run(["to-hdf5", ds.root, a, "--compress", "--jobs", "1"])
    run(["to-hdf5", ds.root, b, "--compress", "--jobs", "3"])
    assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in a.parent.iterdir()) == ["x.h5", "x.h5.manifest.json"]


def test_to_hdf5_into_missing_folder_is_74(run, make_dataset, tmp_path):
    ds, _ = _dataset(make_dataset, n=2)
    res = run(["to-hdf5", ds.root, tmp_path / "nope" / "x.h5"], expect_rc=H.EX_IOERR)
    H.assert_one_line_error(res, "x.h5")


# ------------------------------------------------------------------------------------------------
# to-idx
# ------------------------------------------------------------------------------------------------

def test_to_idx_gray_reads_with_idx2numpy(run, make_dataset, tmp_path):
    idx2numpy = pytest.importorskip("idx2numpy")
    classes = ("a", "b")
    ds, arrays = _dataset(make_dataset, n=5, shape=(9, 7), classes=classes)
    out = tmp_path / "idx"
    run(["to-idx", ds.root, out, "--prefix", "t10k"])
    X, y = _expected(arrays, classes)
    images = idx2numpy.convert_from_file(str(out / "t10k-images-idx3-ubyte"))
    labels = idx2numpy.convert_from_file(str(out / "t10k-labels-idx1-ubyte"))
    assert images.shape == (5, 9, 7) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, X)
    np.testing.assert_array_equal(labels, y.astype(np.uint8))
    raw = (out / "t10k-images-idx3-ubyte").read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03" and len(raw) == 16 + X.size, "big-endian header, no trailing bytes"
    manifest = json.loads((out / "manifest.json").read_text())
    H.validate_against_schema(manifest)
    assert [c["name"] for c in manifest["classes"]] == list(classes), "class names go to the manifest"
    run(["verify", out, "--against", ds.root])
    run(["verify", out / "t10k-images-idx3-ubyte"])


def test_to_idx_keeps_another_pairs_manifest(run, make_dataset, tmp_path):
    # One manifest.json per folder: a run with another --prefix must not replace the manifest of
    # the pair already there (its class names and checksums), whichever pair came first.
    ds, _ = _dataset(make_dataset, n=4, shape=(6, 5), classes=("a", "b"))
    for first, second in [("train", "t10k"), ("t10k", "train"), ("mine", "val")]:
        out = tmp_path / f"{first}-{second}"
        run(["to-idx", ds.root, out, "--prefix", first])
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        res = run(["to-idx", ds.root, out, "--prefix", second], expect_rc=74)
        H.assert_one_line_error(res, "manifest.json", f"'{first}' IDX pair")
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before, "nothing replaced, nothing left behind"
        run(["verify", out / f"{first}-images-idx3-ubyte", "--against", ds.root])
        # The same pair again replaces it as usual.
        run(["to-idx", ds.root, out, "--prefix", first, "--gzip"])
        run(["verify", out / f"{first}-images-idx3-ubyte.gz"])
    # No manifest there (pairs from elsewhere, e.g. MNIST's own files): nothing to lose.
    out = tmp_path / "foreign"
    out.mkdir()
    for name in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]:
        shutil.copy(MNIST / name, out / name)
    run(["to-idx", ds.root, out])
    run(["verify", out / "train-images-idx3-ubyte"])


def test_to_idx_gzip_and_colour_warning(run, make_dataset, tmp_path):
    classes = ("a", "b", "c")
    ds, arrays = _dataset(make_dataset, classes=classes)
    out = tmp_path / "idx"
    res = run(["to-idx", ds.root, out, "--gzip"])
    assert "torchvision" in res.stderr, "idx4 output must warn about torchvision's 3-dimension limit"
    X, y = _expected(arrays, classes)
    raw = gzip.decompress((out / "train-images-idx4-ubyte.gz").read_bytes())
    assert raw[:4] == b"\x00\x00\x08\x04"
    dims = np.frombuffer(raw[4:20], dtype=">u4")
    assert tuple(dims) == X.shape
    np.testing.assert_array_equal(np.frombuffer(raw[20:], np.uint8).reshape(X.shape), X)
    lab = gzip.decompress((out / "train-labels-idx1-ubyte.gz").read_bytes())
    np.testing.assert_array_equal(np.frombuffer(lab[8:], np.uint8), y)
    run(["verify", out, "--against", ds.root])


def test_to_idx_refuses_uint16_without_dtype(run, make_dataset, tmp_path):
    ds = make_dataset()
    ds.add_png16("a/0.png", np.full((4, 5), 1000, np.uint16))
    out = tmp_path / "idx"
    res = run(["to-idx", ds.root, out], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "uint16", "--dtype")
    assert not out.exists() or not any(out.iterdir())
    run(["to-idx", ds.root, out, "--dtype", "float32"])
    raw = (out / "train-images-idx3-float").read_bytes()
    assert raw[2] == 0x0D
    assert np.frombuffer(raw[16:], ">f4").tolist() == [1000.0] * 20


# ------------------------------------------------------------------------------------------------
# convert
# ------------------------------------------------------------------------------------------------

def test_mnist_round_trip_is_byte_identical(run, mnist_pair, tmp_path):
    images, labels = mnist_pair
    npz, h5, back = tmp_path / "m.npz", tmp_path / "m.h5", tmp_path / "back"
    run(["convert", images, npz])
    run(["convert", npz, h5, "--compress"])
    run(["convert", h5, back, "--to", "idx", "--prefix", "t10k"])
    assert (back / "t10k-images-idx3-ubyte").read_bytes() == images.read_bytes()
    assert (back / "t10k-labels-idx1-ubyte").read_bytes() == labels.read_bytes()

    d = np.load(npz)
    assert d["trainXs"].shape == (10000, 28, 28, 1) and d["trainXs"].dtype == np.uint8
    assert d["trainYs"].dtype == np.int64 and d["trainYs"][0] == 7
    assert list(d["classNames"]) == [str(i) for i in range(10)]
    assert np.bincount(d["trainYs"]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    with h5py.File(h5, "r") as f:
        np.testing.assert_array_equal(f["trainXs"][...], d["trainXs"])
    for path in (npz, h5, back, back / "t10k-images-idx3-ubyte"):
        run(["verify", path])
    for m in (tmp_path / "m.npz.manifest.json", tmp_path / "m.h5.manifest.json", back / "manifest.json"):
        H.validate_against_schema(json.loads(m.read_text()))


def test_convert_reads_gzip_idx_and_npy_folders(run, mnist_pair, tmp_path):
    gz = MNIST / "t10k-images-idx3-ubyte.gz"
    a, folder, b = tmp_path / "a.npz", tmp_path / "npy", tmp_path / "b.npz"
    run(["convert", gz, a])
    run(["convert", a, folder, "--to", "npy"])
    run(["convert", folder, b])
    assert a.read_bytes() == b.read_bytes()
    x = np.load(folder / "trainXs.npy", mmap_mode="r")
    assert x.shape == (10000, 28, 28, 1)


def test_convert_carries_class_names_and_manifest(run, make_dataset, tmp_path):
    classes = ("cat", "dög", "z")
    ds, arrays = _dataset(make_dataset, classes=classes)
    npz = tmp_path / "o.npz"
    run(["to-npz", ds.root, npz])
    h5 = tmp_path / "o.h5"
    run(["convert", npz, h5])
    with h5py.File(h5, "r") as f:
        assert list(f.attrs["classNames"]) == sorted(classes)
    m = json.loads((tmp_path / "o.h5.manifest.json").read_text())
    src = json.loads((tmp_path / "o.npz.manifest.json").read_text())
    assert m["files"] == src["files"] and m["classes"] == src["classes"]
    assert m["output"] == {"format": "h5", "name": "o.h5"}
    run(["verify", h5, "--against", ds.root])
    idx = tmp_path / "idx"
    run(["convert", h5, idx, "--to", "idx"])
    run(["verify", idx, "--against", ds.root])


def test_convert_refuses_what_idx_cannot_hold(run, make_dataset, tmp_path):
    ds = make_dataset()
    ds.add_png16("a/0.png", np.full((4, 5), 1000, np.uint16))
    npz = tmp_path / "u16.npz"
    run(["to-npz", ds.root, npz])
    out = tmp_path / "idx"
    res = run(["convert", npz, out, "--to", "idx"], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "uint16")
    assert not out.exists() or not any(out.iterdir())
    run(["convert", npz, out, "--to", "idx", "--dtype", "int32"])
    raw = (out / "train-images-idx3-int").read_bytes()
    assert np.frombuffer(raw[16:], ">i4").tolist() == [1000] * 20
    run(["verify", out, "--against", ds.root])


def test_convert_without_a_target_format_is_64(run, mnist_pair, tmp_path):
    images, _ = mnist_pair
    res = run(["convert", images, tmp_path / "out.bin"], expect_rc=H.EX_USAGE)
    H.assert_one_line_error(res, "out.bin")


# ------------------------------------------------------------------------------------------------
# inspect
# ------------------------------------------------------------------------------------------------

def test_inspect_json_matches_numpy(run, make_dataset, tmp_path):
    classes = ("cat", "dög", "z")
    ds, arrays = _dataset(make_dataset, classes=classes)
    X, y = _expected(arrays, classes)
    h5 = tmp_path / "o.h5"
    run(["to-hdf5", ds.root, h5, "--compress"])
    for path in (h5,):
        rep = json.loads(run(["inspect", path, "--json"]).stdout)
        assert rep["format"] == "h5"
        t = {t["name"]: t for t in rep["tensors"]}
        assert t["trainXs"]["shape"] == list(X.shape) and t["trainXs"]["dtype"] == "uint8"
        assert t["trainXs"]["compression"].startswith("shuffle+gzip(4)")
        assert [c["name"] for c in rep["classes"]] == sorted(classes)
        assert [c["count"] for c in rep["classes"]] == np.bincount(y, minlength=3).tolist()
        for c, s in enumerate(rep["pixels"]):
            assert s["min"] == X[..., c].min() and s["max"] == X[..., c].max()
            assert abs(s["mean"] - X[..., c].mean()) < 1e-9
    text = run(["inspect", h5]).stdout
    assert "trainXs" in text and "channel 2" in text


def test_inspect_mnist_idx(run, mnist_pair):
    images, _ = mnist_pair
    rep = json.loads(run(["inspect", images, "--json"]).stdout)
    assert rep["format"] == "idx" and rep["images"] == 10000
    assert [c["count"] for c in rep["classes"]] == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    X = np.frombuffer(images.read_bytes()[16:], np.uint8)
    assert rep["pixels"][0]["max"] == 255 and abs(rep["pixels"][0]["mean"] - X.mean()) < 1e-9


# ------------------------------------------------------------------------------------------------
# malformed inputs: one line, non-zero exit, no crash
# ------------------------------------------------------------------------------------------------

def test_idx_with_wrong_length(run, mnist_pair, tmp_path):
    images, labels = mnist_pair
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x-images-idx3-ubyte").write_bytes(images.read_bytes()[:-100])
    shutil.copy(labels, bad / "x-labels-idx1-ubyte")
    for cmd in (["convert", bad / "x-images-idx3-ubyte", tmp_path / "o.npz"], ["inspect", bad / "x-images-idx3-ubyte"]):
        res = run(cmd, expect_rc=H.EX_DATAERR)
        H.assert_one_line_error(res, "x-images-idx3-ubyte", "7839900", "10000x28x28")
    assert not (tmp_path / "o.npz").exists()


def test_idx_with_bad_magic(run, mnist_pair, tmp_path):
    images, labels = mnist_pair
    raw = bytearray(images.read_bytes())
    raw[2] = 0x0A
    bad = tmp_path / "b-images-idx3-ubyte"
    bad.write_bytes(bytes(raw))
    shutil.copy(labels, tmp_path / "b-labels-idx1-ubyte")
    res = run(["inspect", bad], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "b-images-idx3-ubyte", "type byte", "0x0a")


def test_unknown_magic_and_truncated_npy(run, make_dataset, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"GIF89a not a tensor")
    res = run(["inspect", junk], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "junk.bin", "47 49 46 38")
    ds, _ = _dataset(make_dataset, n=2)
    npy = tmp_path / "npy"
    run(["to-npy", ds.root, npy])
    data = (npy / "trainXs.npy").read_bytes()
    (npy / "trainXs.npy").write_bytes(data[:-10])
    for cmd in (["convert", npy, tmp_path / "o.h5"], ["verify", npy], ["inspect", npy]):
        res = run(cmd, expect_rc=H.EX_DATAERR)
        H.assert_one_line_error(res, "trainXs.npy")
    assert not (tmp_path / "o.h5").exists()


def test_hdf5_missing_a_dataset(run, tmp_path):
    path = tmp_path / "partial.h5"
    with h5py.File(path, "w") as f:
        f["trainXs"] = np.zeros((2, 3, 3, 1), np.uint8)
        f.attrs["classNames"] = ["a", "b"]
    for cmd in (["convert", path, tmp_path / "o.npz"], ["verify", path]):
        res = run(cmd, expect_rc=(H.EX_DATAERR, H.EX_NOINPUT))
        H.assert_one_line_error(res, "partial.h5")
    res = run(["convert", path, tmp_path / "o.npz"], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "partial.h5", "/trainYs", "missing")
    assert not (tmp_path / "o.npz").exists()


def test_truncated_hdf5(run, make_dataset, tmp_path):
    ds, _ = _dataset(make_dataset, n=3)
    h5 = tmp_path / "t.h5"
    run(["to-hdf5", ds.root, h5])
    h5.write_bytes(h5.read_bytes()[:2000])
    res = run(["verify", h5], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "t.h5", "HDF5")


def test_verify_detects_a_flipped_pixel_in_hdf5(run, make_dataset, tmp_path):
    ds, _ = _dataset(make_dataset, n=3)
    h5 = tmp_path / "f.h5"
    run(["to-hdf5", ds.root, h5])
    with h5py.File(h5, "r+") as f:
        f["trainXs"][1, 2, 3, 0] = f["trainXs"][1, 2, 3, 0] ^ 0xFF
    res = run(["verify", h5], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "trainXs", "XXH3-128")
