"""TIFFs whose samples float32 cannot hold (issue 14, item 6): 25-32-bit unsigned, 32-bit signed,
float64 and 64-bit integer samples. `--dtype auto` keeps them exactly as uint32, int32 and float64
(the narrowest type holding every input: uint32 with int32, or either with float32, is float64);
NPY, NPZ, HDF5 and IDX write them (IDX has int32 and float64, not uint32); verify, export and
inspect read them back. The TIFFs are written by tifffile, which is also the reference."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

import interop_helpers as H

tifffile = pytest.importorskip("tifffile")

RNG = np.random.default_rng(20261206)
U32 = RNG.integers(0, 2**32, size=(6, 9), dtype=np.uint32)
U32[0, 0] = 2**32 - 1          # the largest value and one float32 rounds (2**24 + 1)
U32[0, 1] = 2**24 + 1
I32 = RNG.integers(-2**31, 2**31, size=(6, 9), dtype=np.int32)
I32[0, 0] = -2**31
F64 = RNG.random((6, 9)) / 3 + 1e-9   # values float32 cannot hold
U16 = RNG.integers(0, 2**16, size=(6, 9), dtype=np.uint16)


def _dataset(make_dataset, images: dict[str, np.ndarray]):
    ds = make_dataset()
    for rel, arr in images.items():
        path = ds.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, arr)
    return ds


@pytest.mark.parametrize("arr,dtype", [(U32, "uint32"), (I32, "int32"), (F64, "float64")], ids=["uint32", "int32", "float64"])
def test_auto_keeps_wide_samples_exactly(run, make_dataset, tmp_path, arr, dtype):
    ds = _dataset(make_dataset, {"a/x.tif": arr, "b/y.tif": arr[::-1].copy()})
    out = tmp_path / "o.npz"
    run(["to-npz", ds.root, out])
    X = H.load_npz(out)["trainXs"]
    assert X.dtype == np.dtype(dtype)
    assert np.array_equal(X[0, ..., 0], arr) and np.array_equal(X[1, ..., 0], arr[::-1])
    manifest = H.load_json(H.npz_manifest_path(out))
    H.check_manifest(manifest, H.load_npz(out), ds.root)
    assert not manifest["warnings"]
    run(["verify", out, "--against", ds.root])


@pytest.mark.parametrize("images,dtype", [
    ({"a/u.tif": U32, "b/i.tif": I32}, "float64"),
    ({"a/u.tif": U32, "b/s.tif": U16}, "uint32"),
    ({"a/i.tif": I32, "b/s.tif": U16}, "int32"),
    ({"a/i.tif": I32, "b/f.tif": F64.astype(np.float32)}, "float64"),
], ids=["uint32+int32", "uint32+uint16", "int32+uint16", "int32+float32"])
def test_auto_takes_the_narrowest_type_that_holds_every_input(run, make_dataset, tmp_path, images, dtype):
    ds = _dataset(make_dataset, images)
    out = tmp_path / "o.npz"
    run(["to-npz", ds.root, out])
    X = H.load_npz(out)["trainXs"]
    assert X.dtype == np.dtype(dtype)
    for k, arr in enumerate(images.values()):   # classes a, b in order; values kept (no scaling)
        assert np.array_equal(X[k, ..., 0].astype(np.float64), arr.astype(np.float64)), list(images)[k]
    run(["verify", out, "--against", ds.root])


def test_float32_on_request_rounds_with_a_warning_and_integers_refuse(run, make_dataset, tmp_path):
    ds = _dataset(make_dataset, {"a/u.tif": U32})
    out = tmp_path / "f.npz"
    res = run(["to-npz", ds.root, out, "--dtype", "float32"])
    X = H.load_npz(out)["trainXs"]
    assert X.dtype == np.float32 and np.array_equal(X[0, ..., 0], U32.astype(np.float32))
    assert "rounding 1 images of 32-bit integer or float64 samples to float32" in res.stderr, res.stderr
    for asked in ("uint16", "uint8", "int32"):
        res = run(["to-npz", ds.root, tmp_path / f"{asked}.npz", "--dtype", asked], expect_rc=H.EX_DATAERR)
        H.assert_one_line_error(res, "a/u.tif", "uint32", asked)
        assert not (tmp_path / f"{asked}.npz").exists()


def test_hdf5_npy_and_idx_write_them(run, make_dataset, tmp_path):
    ds = _dataset(make_dataset, {"a/u.tif": U32, "b/v.tif": U32 // 3})
    h5 = tmp_path / "o.h5"
    run(["to-hdf5", ds.root, h5])
    with h5py.File(h5) as f:
        X = f["trainXs"][:]
    assert X.dtype == np.uint32 and np.array_equal(X[0, ..., 0], U32) and np.array_equal(X[1, ..., 0], U32 // 3)
    run(["verify", h5, "--against", ds.root])
    npy = tmp_path / "npy"
    run(["to-npy", ds.root, npy])
    assert np.array_equal(np.load(npy / "trainXs.npy", mmap_mode="r"), X)
    # IDX has no uint32: refused with the type that holds it, which then works
    res = run(["to-idx", ds.root, tmp_path / "idx"], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "uint32", "--dtype float64")
    run(["to-idx", ds.root, tmp_path / "idx", "--dtype", "float64"])
    images = tmp_path / "idx" / "train-images-idx3-double"
    raw = images.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0E, 3]), "IDX type 0x0E (double), 3 dimensions"
    got = np.frombuffer(raw, ">f8", offset=4 + 3 * 4).reshape(2, 6, 9)
    assert np.array_equal(got[0], U32.astype(np.float64))
    run(["verify", tmp_path / "idx", "--against", ds.root])
    # int32 is an IDX type of its own (0x0C)
    ids = _dataset(make_dataset, {"a/i.tif": I32})
    run(["to-idx", ids.root, tmp_path / "idx32"])
    raw = (tmp_path / "idx32" / "train-images-idx3-int").read_bytes()
    assert raw[2] == 0x0C
    assert np.array_equal(np.frombuffer(raw, ">i4", offset=16).reshape(6, 9), I32)


@pytest.mark.parametrize("arr", [U32, I32, F64], ids=["uint32", "int32", "float64"])
def test_export_writes_tiffs_of_the_same_type_that_convert_back(run, make_dataset, tmp_path, arr):
    ds = _dataset(make_dataset, {"a/x.tif": arr})
    h5 = tmp_path / "o.h5"
    run(["to-hdf5", ds.root, h5])
    out = tmp_path / "exported"
    run(["export", h5, out])
    (tiff,) = sorted((out / "a").iterdir())
    assert tiff.suffix == ".tiff"
    back = tifffile.imread(tiff)
    assert back.dtype == arr.dtype and np.array_equal(back, arr)
    again = tmp_path / "again.npz"
    run(["to-npz", out, again])
    assert H.load_npz(again)["trainXs"].tobytes() == h5py.File(h5)["trainXs"][:].tobytes()


def test_64_bit_integers_become_float64_up_to_2_to_the_53(run, make_dataset, tmp_path):
    small = (U32.astype(np.uint64) << np.uint64(21))     # below 2**53
    ds = _dataset(make_dataset, {"a/x.tif": small})
    out = tmp_path / "o.npz"
    run(["to-npz", ds.root, out])
    X = H.load_npz(out)["trainXs"]
    assert X.dtype == np.float64 and np.array_equal(X[0, ..., 0], small.astype(np.float64))
    big = small.copy()
    big[2, 3] = 2**53 + 1
    bad = _dataset(make_dataset, {"a/x.tif": big})
    res = run(["to-npz", bad.root, tmp_path / "b.npz"], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "a/x.tif", str(2**53 + 1), "float64")


def test_inspect_and_resize_of_int32(run, make_dataset, tmp_path):
    """Pillow's mode I resizes int32 in double precision, rounding half away from zero: equal
    where no sum overflows (values within +-2**29 here)."""
    from PIL import Image
    a = RNG.integers(-2**29, 2**29, size=(37, 53), dtype=np.int32)
    ds = _dataset(make_dataset, {"a/x.tif": a})
    for flt, pil in (("bilinear", Image.BILINEAR), ("lanczos", Image.LANCZOS), ("area", Image.BOX)):
        out = tmp_path / f"{flt}.npz"
        run(["to-npz", ds.root, out, "--size", "20x30", "--filter", flt])
        X = H.load_npz(out)["trainXs"][0, ..., 0]
        assert X.dtype == np.int32
        assert np.array_equal(X, np.asarray(Image.fromarray(a, "I").resize((30, 20), pil))), flt
    stats = json.loads(run(["inspect", tmp_path / "area.npz", "--json"]).stdout)
    X = H.load_npz(tmp_path / "area.npz")["trainXs"]
    assert (stats["pixels"][0]["min"], stats["pixels"][0]["max"]) == (int(X.min()), int(X.max()))
