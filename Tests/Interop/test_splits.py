"""Splits (--split, --stratify, split folders, a CSV split column), one-hot and typed labels, and
verify's split checks (pairs, sizes, leaks)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from PIL import Image

import interop_helpers as H


def _ten_classes(make_dataset, per_class=None):
    ds = make_dataset()
    rng = np.random.default_rng(5)
    for c in range(10):
        for i in range((per_class or {}).get(c, 10 + c)):
            ds.add_image(f"class{c:02d}/{i:03d}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    return ds


def test_stratified_split_keeps_proportions_and_is_seeded(run, make_dataset, tmp_path):
    ds = _ten_classes(make_dataset)
    out, again, other = tmp_path / "s.npz", tmp_path / "s2.npz", tmp_path / "s3.npz"
    args = ["--split", "train=0.8,val=0.1,test=0.1", "--stratify"]
    run(["to-npz", ds.root, out, *args, "--seed", "3"])
    run(["to-npz", ds.root, again, *args, "--seed", "3", "--jobs", "1"])
    run(["to-npz", ds.root, other, *args, "--seed", "4"])
    assert out.read_bytes() == again.read_bytes()
    d = np.load(out)
    assert sorted(d.files) == ["classNames", "testXs", "testYs", "trainXs", "trainYs", "valXs", "valYs"]
    for c in range(10):
        n = 10 + c
        counts = {s: int((d[f"{s}Ys"] == c).sum()) for s in ("train", "val", "test")}
        assert sum(counts.values()) == n
        for s, f in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
            assert abs(counts[s] - f * n) <= 1, (c, counts)
    m = json.loads((tmp_path / "s.npz.manifest.json").read_text())
    assert m["summary"]["splits"] == {s: len(d[f"{s}Ys"]) for s in ("train", "val", "test")}
    assert {f["split"] for f in m["files"]} == {"train", "val", "test"}
    H.validate_against_schema(m)
    # the files of each split are that split's images, in order
    for s in ("train", "val", "test"):
        rows = [f for f in m["files"] if f["split"] == s]
        for i, f in enumerate(rows):
            np.testing.assert_array_equal(d[f"{s}Xs"][i], np.asarray(Image.open(ds.root / f["path"]).convert("RGB")))
            assert d[f"{s}Ys"][i] == f["label"]
    assert np.load(other)["trainYs"].tolist() != d["trainYs"].tolist() or \
        json.loads((tmp_path / "s3.npz.manifest.json").read_text())["files"] != m["files"]
    res = run(["verify", out, "--against", ds.root])
    assert "testXs and testYs agree" in res.stdout and "two splits" in res.stdout


def test_split_outputs_in_every_format(run, make_dataset, tmp_path):
    ds = _ten_classes(make_dataset, {c: 5 for c in range(10)})
    args = ["--split", "train=60,val=20,test=20", "--seed", "1"]
    run(["to-hdf5", ds.root, tmp_path / "s.h5", *args])
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert {k for k in f.keys()} == {"trainXs", "trainYs", "valXs", "valYs", "testXs", "testYs"}
        assert f["trainXs"].shape[0] + f["valXs"].shape[0] + f["testXs"].shape[0] == 50
    run(["to-idx", ds.root, tmp_path / "idx", *args])
    names = sorted(p.name for p in (tmp_path / "idx").iterdir())
    assert "t10k-images-idx4-ubyte" in names and "val-labels-idx1-ubyte" in names and "train-images-idx4-ubyte" in names
    run(["to-npy", ds.root, tmp_path / "npy", *args])
    assert (tmp_path / "npy" / "valXs.npy").is_file()
    for target in (tmp_path / "s.h5", tmp_path / "idx", tmp_path / "npy"):
        run(["verify", target, "--against", ds.root])


def test_split_folders_are_detected(run, make_dataset, tmp_path):
    ds = make_dataset()
    rng = np.random.default_rng(1)
    for split, n in (("train", 4), ("val", 2), ("test", 3)):
        for cls in ("cat", "dog"):
            for i in range(n):
                ds.add_image(f"{split}/{cls}/{i}.png", rng.integers(0, 256, (6, 6), dtype=np.uint8))
    ds.add_image("test/zebra/0.png", rng.integers(0, 256, (6, 6), dtype=np.uint8))
    out = tmp_path / "f.npz"
    run(["to-npz", ds.root, out])
    d = np.load(out)
    assert list(d["classNames"]) == ["cat", "dog", "zebra"]
    assert len(d["trainYs"]) == 8 and len(d["valYs"]) == 4 and len(d["testYs"]) == 7
    assert d["trainXs"].shape == (8, 6, 6, 1)
    res = run(["to-npz", ds.root, out, "--split", "train=0.5,test=0.5"], expect_rc=64)
    H.assert_one_line_error(res, "already split")


def test_duplicate_content_across_splits_is_a_leak(run, make_dataset, tmp_path):
    ds = make_dataset()
    rng = np.random.default_rng(2)
    same = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    ds.add_image("train/a/x.png", same)
    ds.add_image("train/b/y.png", rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    ds.add_image("test/b/copy.png", same)
    out = tmp_path / "leak.npz"
    run(["to-npz", ds.root, out])
    res = run(["verify", out], expect_rc=65)
    H.assert_one_line_error(res, "leak")


def test_csv_split_column(run, tmp_path):
    src = H.SAMPLES
    rows = ["path,label,split"]
    for cls in ("cat", "coffee"):
        files = sorted((src / cls).iterdir())
        for i, f in enumerate(files):
            rows.append(f"{f.relative_to(src)},{cls},{'test' if i == 0 else 'train'}")
    (src_csv := tmp_path / "l.csv").write_text("\n".join(rows) + "\n")
    # the CSV's paths are relative to its own folder: put it beside samples/ via a relative path
    csv = src / ".." / "tmp-split-list.csv"
    csv = tmp_path / "samples-link"
    csv.symlink_to(src)
    (tmp_path / "list.csv").write_text("\n".join(["path,label,split"] + [
        "samples-link/" + r.split(",", 1)[0] + "," + r.split(",", 1)[1] for r in rows[1:]]) + "\n")
    out = tmp_path / "c.npz"
    run(["to-npz", "--list", tmp_path / "list.csv", out, "--size", "32x32"])
    d = np.load(out)
    assert len(d["testYs"]) == 2 and list(d["testYs"]) == [0, 1]


def test_onehot_and_label_dtypes(run, samples_root, tmp_path):
    out = tmp_path / "o.npz"
    run(["to-npz", samples_root, out, "--labels", "onehot", "--label-dtype", "uint8"])
    d = np.load(out)
    y = d["trainYs"]
    assert y.dtype == np.uint8 and y.shape == (16, 4)
    assert (y.sum(axis=1) == 1).all()
    idx = tmp_path / "i.npz"
    run(["to-npz", samples_root, idx, "--label-dtype", "int32"])
    yi = np.load(idx)["trainYs"]
    assert yi.dtype == np.int32
    np.testing.assert_array_equal(y.argmax(axis=1), yi)
    run(["verify", out])
    run(["verify", idx])


def test_uint8_labels_refuse_too_many_classes(run, make_dataset, tmp_path):
    ds = make_dataset()
    img = np.zeros((2, 2), np.uint8)
    for c in range(257):
        ds.add_image(f"c{c:03d}/x.png", img)
    res = run(["to-npz", ds.root, tmp_path / "x.npz", "--label-dtype", "uint8"], expect_rc=64)
    H.assert_one_line_error(res, "256")
