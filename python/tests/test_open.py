"""imgconv.open on every output format the CLI writes: every split's pixels and labels, the class
names and the manifest equal what np.load, h5py and idx2numpy read; the tensors are mapped (np.memmap;
h5py datasets for HDF5), never loaded whole."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import imgconv
from reader_helpers import build_split_root, reference

CASES = {
    # id: (command, output name, format, extra options, dataset kwargs)
    "npz": ("to-npz", "out.npz", "npz", [], {}),
    "npz-onehot-nchw": ("to-npz", "out.npz", "npz", ["--labels", "onehot", "--layout", "nchw"], {}),
    "npz-uint16": ("to-npz", "out.npz", "npz", [], {"bits": 16}),
    "npz-float32": ("to-npz", "out.npz", "npz", ["--dtype", "float32", "--scale", "unit"], {}),
    "npz-gray": ("to-npz", "out.npz", "npz", [], {"channels": 1}),
    "npy": ("to-npy", "outdir", "npy", [], {}),
    "npy-float16-onehot": ("to-npy", "outdir", "npy", ["--dtype", "float16", "--labels", "onehot"], {}),
    "h5": ("to-hdf5", "out.h5", "h5", [], {}),
    "h5-compress-nchw": ("to-hdf5", "out.h5", "h5", ["--compress", "--layout", "nchw"], {}),
    "idx-gray": ("to-idx", "idxdir", "idx", [], {"channels": 1}),
    "idx-rgb": ("to-idx", "idxdir", "idx", [], {}),
    "idx-float32": ("to-idx", "idxdir", "idx", ["--dtype", "float32"], {"bits": 16, "channels": 1}),
}


def make_output(run, make_dataset, tmp_path, case):
    cmd, name, fmt, extra, kw = CASES[case]
    root = build_split_root(make_dataset, **kw)
    out = tmp_path / name
    run([cmd, root, out, "-q", *extra])
    return out, fmt


def same_values(actual, expected, what):
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype.kind == expected.dtype.kind and actual.dtype.itemsize == expected.dtype.itemsize, \
        f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert np.array_equal(np.asarray(actual), expected, equal_nan=actual.dtype.kind == "f"), f"{what}: values differ"


@pytest.mark.parametrize("case", list(CASES))
def test_every_split_equals_the_independent_reader(run, make_dataset, tmp_path, case):
    out, fmt = make_output(run, make_dataset, tmp_path, case)
    ref = reference(out, fmt)
    with imgconv.open(out) as ds:
        assert ds.format == fmt
        assert list(ds) == ["train", "val", "test"]
        assert list(ds.splits) == list(ref["splits"])
        assert ds.class_names == ref["names"] == ["cat", "dog", "emu"]
        assert all(type(n) is str for n in ds.class_names)
        assert ds.manifest == ref["manifest"]
        for name, (rx, ry) in ref["splits"].items():
            s = ds[name]
            assert len(s) == len(rx) == ds.manifest["summary"]["splits"][name]
            if fmt == "h5":
                import h5py
                assert isinstance(s.xs, h5py.Dataset) and isinstance(s.ys, h5py.Dataset)
            else:
                assert isinstance(s.xs, np.memmap) and isinstance(s.ys, np.memmap)
            same_values(s.xs[:], rx, f"{name} images")
            same_values(s.ys[:], ry, f"{name} labels")
            same_values(s.labels(), ry, f"{name} labels()")
            xb = np.concatenate([x for x, _ in s.batches(2)])
            yb = np.concatenate([y for _, y in s.batches(2)])
            same_values(xb, rx, f"{name} batches")
            same_values(yb, ry, f"{name} batch labels")
            assert xb.dtype.isnative and yb.dtype.isnative
            for i in (0, len(s) // 2, -1):
                x, y = s[i]
                same_values(x, rx[i], f"{name}[{i}] image")
                same_values(np.asarray(y), ry[i], f"{name}[{i}] label")
            assert s.onehot == (ry.ndim == 2)
            expected_layout = "nhw" if rx.ndim == 3 else ds.manifest["options"]["layout"]
            assert s.layout == expected_layout


def test_npz_members_are_mapped_at_their_offsets_in_the_zip(run, make_dataset, tmp_path):
    out, _ = make_output(run, make_dataset, tmp_path, "npz")
    with imgconv.open(out) as ds, zipfile.ZipFile(out) as zf:
        for split in ds.splits.values():
            for tensor, member in ((split._xs, split.xs_name), (split._ys, split.ys_name)):
                info = zf.getinfo(member + ".npy")
                assert info.compress_type == zipfile.ZIP_STORED
                data = zf.read(info)
                m = split.xs if tensor is split._xs else split.ys
                # the mapping is of the archive itself, at the member's data bytes
                assert m.filename is not None and str(out) in str(m.filename)
                assert data.endswith(np.asarray(m).tobytes())
                assert m.offset + m.nbytes <= out.stat().st_size


def test_idx_images_file_opens_its_pair(run, make_dataset, tmp_path):
    out, _ = make_output(run, make_dataset, tmp_path, "idx-gray")
    ref = reference(out, "idx")
    images = next(out.glob("t10k-images-idx*"))
    with imgconv.open(images) as ds:
        assert list(ds) == ["test"]
        same_values(ds["test"].xs[:], ref["splits"]["test"][0], "t10k images")
        same_values(ds["test"].ys[:], ref["splits"]["test"][1], "t10k labels")
        assert ds.class_names == ["cat", "dog", "emu"]


def test_keras_style_npz_without_manifest(tmp_path):
    rng = np.random.default_rng(3)
    xt, yt = rng.integers(0, 256, (7, 4, 4), dtype=np.uint8), rng.integers(0, 4, (7, 1), dtype=np.uint8)
    xs, ys = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8), rng.integers(0, 4, (3, 1), dtype=np.uint8)
    p = tmp_path / "mnist.npz"
    np.savez(p, x_train=xt, y_train=yt, x_test=xs, y_test=ys)
    with imgconv.open(p) as ds:
        assert ds.manifest is None and list(ds) == ["train", "test"]
        same_values(ds["train"].xs[:], xt, "x_train")
        same_values(ds["test"].labels(), ys[:, 0], "y_test as indices")
        assert ds["train"][2][1] == yt[2, 0]
        top = int(max(yt.max(), ys.max()))
        assert ds.class_names == [str(i) for i in range(top + 1)]


def test_an_empty_split(run, make_dataset, tmp_path):
    b = make_dataset()
    rng = np.random.default_rng(1)
    for c in ("a", "b"):
        for i in range(2):
            b.add_image(f"{c}/{i}.png", rng.integers(0, 256, (3, 4, 3), dtype=np.uint8))
    out = tmp_path / "e.npz"
    run(["to-npz", b.root, out, "--split", "train=0.5,val=0,test=0.5", "-q"])
    ref = reference(out, "npz")
    with imgconv.open(out) as ds:
        assert list(ds) == ["train", "val", "test"]
        v = ds["val"]
        assert len(v) == 0 == ds.manifest["summary"]["splits"]["val"]
        same_values(v.xs[:], ref["splits"]["val"][0], "val images")
        assert list(v) == [] and list(v.batches(4)) == [] and v.labels().shape == (0,)
        with pytest.raises(IndexError):
            v[0]
        same_values(ds["test"].xs[:], ref["splits"]["test"][0], "test images")


def test_idx_pair_of_another_prefix_is_train(run, make_dataset, tmp_path):
    import idx2numpy
    root = make_dataset()
    rng = np.random.default_rng(2)
    for c in ("a", "b", "c"):
        root.add_image(f"{c}/0.png", rng.integers(0, 256, (4, 6), dtype=np.uint8))
    out = tmp_path / "idx"
    run(["to-idx", root.root, out, "--prefix", "mnist", "-q"])
    rx = idx2numpy.convert_from_file(str(out / "mnist-images-idx3-ubyte"))
    ry = idx2numpy.convert_from_file(str(out / "mnist-labels-idx1-ubyte"))
    for path in (out, out / "mnist-images-idx3-ubyte"):
        with imgconv.open(path) as ds:
            assert list(ds) == ["train"] and ds.class_names == ["a", "b", "c"]
            same_values(ds["train"].xs[:], rx, "images")
            same_values(ds["train"].labels(), ry, "labels")
    # a second pair of another prefix: the folder is ambiguous, each images file is not
    for n in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        (out / f"other-{n}").write_bytes((out / f"mnist-{n}").read_bytes())
    with pytest.raises(imgconv.FormatError, match="several IDX pairs"):
        imgconv.open(out)
    with imgconv.open(out / "other-images-idx3-ubyte") as ds:
        same_values(ds["train"].xs[:], rx, "other images")
