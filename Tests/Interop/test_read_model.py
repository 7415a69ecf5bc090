"""One read model for every read command (issue 12): convert keeps every split in every direction
(IDX included) and `verify` of the result passes; verify proves that a container holds exactly the
pairs of its manifest; export writes one folder per split; inspect reports every split (counts and
pixel statistics checked against numpy); preview draws every split and scales small images up
(nearest neighbour); foreign tensors (`--xs/--ys`, Keras' x_train/y_train layout) are read by every
command; one-hot labels stay one-hot, go to IDX only as indices, and malformed one-hot rows are
refused. All datasets are tiny and generated in tmp_path (or samples/)."""

from __future__ import annotations

import gzip
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import interop_helpers as H

h5py = pytest.importorskip("h5py")

FORMATS = ("npz", "npy", "h5", "idx")
CONTAINERS = ("npz", "npy", "h5")  # formats that hold any dtype and label shape
WRITER = {"npz": "to-npz", "npy": "to-npy", "h5": "to-hdf5", "idx": "to-idx"}
SPLITS = ("train", "val", "test")
IDX_PREFIX = {"train": "train", "val": "val", "test": "t10k"}
CLASSES = ("ant", "bee", "cat")
# 4 images a class, stratified: 2 train, 1 val, 1 test of every class (no class missing anywhere)
SPLIT_ARGS = ["--split", "train=0.5,val=0.25,test=0.25", "--seed", "1", "--stratify"]
INSPECT_SCHEMA = H.REPO_ROOT / "Schemas" / "inspect.schema.json"

IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
IDX_NAME = re.compile(r"^(?P<prefix>.+)-(?P<kind>images|labels)-idx(?P<ndim>\d)-"
                      r"(?P<type>ubyte|sbyte|short|int|float|double)(?P<gz>\.gz)?$")


# --------------------------------------------------------------------------------------------------
# Datasets and outputs
# --------------------------------------------------------------------------------------------------

def _gray_root(make_dataset, classes=CLASSES, per_class=4, shape=(8, 8), seed=0) -> Path:
    """ROOT/<class>/NN.png: random gray images (all distinct, so no split 'leaks')."""
    rng = np.random.default_rng(seed)
    ds = make_dataset()
    for c in classes:
        for i in range(per_class):
            ds.add_image(f"{c}/{i:02d}.png", rng.integers(0, 256, shape, dtype=np.uint8))
    return ds.root


def _rgb_root(make_dataset, per_class=3, shape=(6, 5, 3), seed=1) -> Path:
    rng = np.random.default_rng(seed)
    ds = make_dataset()
    for c in CLASSES:
        for i in range(per_class):
            # channels with different ranges, so that a statistic of the wrong channel shows
            a = rng.integers(0, 256, shape, dtype=np.uint8)
            a[..., 1] //= 3
            a[..., 2] = 200 + a[..., 2] % 50
            ds.add_image(f"{c}/{i:02d}.png", a)
    return ds.root


def _target(tmp_path: Path, fmt: str, stem: str) -> Path:
    return tmp_path / {"npz": f"{stem}.npz", "h5": f"{stem}.h5"}.get(fmt, stem)


def _write(run, root: Path, fmt: str, out: Path, *args) -> Path:
    extra = ["--color", "gray"] if fmt == "idx" else []
    run([WRITER[fmt], root, out, *extra, *args, "-q"])
    return out


def _write_split(run, root, fmt, tmp_path, stem="a", *args) -> Path:
    return _write(run, root, fmt, _target(tmp_path, fmt, stem), *SPLIT_ARGS, *args)


def _read_idx_file(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    assert raw[:2] == b"\x00\x00", f"{path.name}: not IDX"
    dt, ndim = IDX_DTYPES[raw[2]], raw[3]
    dims = [int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim)]
    return np.frombuffer(raw[4 + 4 * ndim:], dt).reshape(dims)


def _idx_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if IDX_NAME.match(p.name)}


def _read_pairs(path: Path, fmt: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split name -> (images, labels), read with numpy / h5py / by hand (IDX)."""
    arrays: dict[str, np.ndarray] = {}
    if fmt == "npz":
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
    elif fmt == "npy":
        arrays = {p.stem: np.load(p) for p in sorted(path.glob("*.npy"))}
    elif fmt == "h5":
        with h5py.File(path, "r") as f:
            arrays = {k: f[k][()] for k in f.keys()}
    elif fmt == "idx":
        out = {}
        for p in sorted(path.iterdir()):
            m = IDX_NAME.match(p.name)
            if not m or m["kind"] != "images":
                continue
            labels = [q for q in path.iterdir() if (n := IDX_NAME.match(q.name)) and n["kind"] == "labels"
                      and n["prefix"] == m["prefix"]]
            assert len(labels) == 1, f"no single labels file for {p.name}"
            split = "test" if m["prefix"] == "t10k" else m["prefix"]
            out[split] = (_read_idx_file(p), _read_idx_file(labels[0]))
        return out
    out = {}
    for k in arrays:
        if k.endswith("Xs") and k[:-2] + "Ys" in arrays:
            out[k[:-2]] = (arrays[k], arrays[k[:-2] + "Ys"])
    return out


def _class_names(path: Path, fmt: str) -> list[str]:
    if fmt == "npz":
        with np.load(path) as z:
            return [str(n) for n in z["classNames"]]
    if fmt == "npy":
        return [str(n) for n in np.load(path / "classNames.npy")]
    if fmt == "h5":
        with h5py.File(path, "r") as f:
            return [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs["classNames"]]
    return [c["name"] for c in json.loads((path / "manifest.json").read_text())["classes"]]


def _as_nhwc(X: np.ndarray, layout: str = "nhwc") -> np.ndarray:
    if X.ndim == 3:
        return X[..., None]
    return np.moveaxis(X, 1, -1) if layout == "nchw" else X


def _mentions(line: str, split: str) -> bool:
    """The line names the split (`val`, `valXs`, `valYs`, `val-images-...`, 'val')."""
    return re.search(rf"\b{split}(Xs|Ys)?\b", line) is not None


def _nothing_at(out: Path) -> bool:
    return not out.exists() or (out.is_dir() and not any(out.iterdir()))


def _npz_without(npz: Path, members: set[str]) -> None:
    tmp = npz.with_name(npz.name + ".rewrite")
    with zipfile.ZipFile(npz) as zin, zipfile.ZipFile(tmp, "w") as zout:
        names = [i.filename for i in zin.infolist()]
        assert members <= set(names), f"{members} not all in {names}"
        for info in zin.infolist():
            if info.filename not in members:
                zout.writestr(info, zin.read(info.filename))
    tmp.replace(npz)


def _npz_add(npz: Path, arrays: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(npz, "a") as z:
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, a)
            z.writestr(name + ".npy", buf.getvalue())


def _validate_inspect_schema(rep: dict) -> None:
    if INSPECT_SCHEMA.is_file():
        import jsonschema
        jsonschema.validate(rep, json.loads(INSPECT_SCHEMA.read_text()))


def _inspect(run, path, *args) -> dict:
    rep = json.loads(run(["inspect", path, "--json", *args]).stdout)
    _validate_inspect_schema(rep)
    return rep


def _check_pixels(stats, X: np.ndarray, what: str, layout: str = "nhwc") -> None:
    """Per channel min/max (exact), mean and population std (numpy float64, rtol 1e-6)."""
    X4 = _as_nhwc(X, layout)
    assert stats is not None, f"{what}: no pixel statistics"
    assert [s["channel"] for s in stats] == list(range(X4.shape[-1])), f"{what}: channels {stats}"
    for c, s in enumerate(stats):
        v = X4[..., c].astype(np.float64)
        assert s["min"] == v.min() and s["max"] == v.max(), f"{what} channel {c}: {s}"
        assert s["mean"] == pytest.approx(v.mean(), rel=1e-6), f"{what} channel {c}: mean {s['mean']} vs {v.mean()}"
        assert "std" in s, f"{what} channel {c}: no std in {s}"
        assert s["std"] == pytest.approx(v.std(), rel=1e-6), f"{what} channel {c}: std {s['std']} vs {v.std()}"


def _check_classes(entries, y: np.ndarray, names, what: str) -> None:
    counts = np.bincount(np.asarray(y, np.int64).reshape(-1), minlength=len(names))
    got = [{"index": e["index"], "name": e["name"], "count": e["count"]} for e in entries]
    assert got == [{"index": i, "name": n, "count": int(counts[i])} for i, n in enumerate(names)], what


# --------------------------------------------------------------------------------------------------
# The sheet: blocks searched for, not computed from a layout
# --------------------------------------------------------------------------------------------------

def _block(img: np.ndarray, factor: int) -> np.ndarray:
    """An (H, W[, 1|3]) uint8 image scaled up by `factor` with nearest neighbour, as RGB."""
    a = img if img.ndim == 3 else img[..., None]
    a = np.kron(a, np.ones((factor, factor, 1), np.uint8))
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


def _find_block(sheet: np.ndarray, block: np.ndarray) -> list[tuple[int, int]]:
    bh, bw = block.shape[:2]
    sh, sw = sheet.shape[:2]
    if sh < bh or sw < bw:
        return []
    ch, cw = sh - bh + 1, sw - bw + 1
    mask = np.ones((ch, cw), bool)
    step_y, step_x = max(1, bh // 8), max(1, bw // 8)
    for dy in range(0, bh, step_y):
        for dx in range(0, bw, step_x):
            mask &= (sheet[dy:dy + ch, dx:dx + cw] == block[dy, dx]).all(axis=2)
            if not mask.any():
                return []
    return [(int(y), int(x)) for y, x in np.argwhere(mask)
            if np.array_equal(sheet[y:y + bh, x:x + bw], block)]


def _sheet(png: Path) -> np.ndarray:
    with Image.open(png) as im:
        return np.asarray(im.convert("RGB"))


def _first_of_each_class(X, y, classes) -> dict[int, np.ndarray]:
    y = np.asarray(y).reshape(-1)
    return {c: X[np.flatnonzero(y == c)[0]] for c in classes if (y == c).any()}


# --------------------------------------------------------------------------------------------------
# The issue's reproduction
# --------------------------------------------------------------------------------------------------

def test_issue_reproduction_convert_keeps_val_split_and_verify_passes(run, samples_root, tmp_path):
    s, s2 = tmp_path / "s.npz", tmp_path / "s2.npz"
    run(["to-npz", samples_root, s, "--split", "train=0.75,val=0.25", "--shuffle", "--seed", "1", "-q"])
    run(["convert", s, s2])
    run(["verify", s2])
    a, b = np.load(s), np.load(s2)
    assert "valXs" in a.files and len(a["valYs"]) > 0
    assert sorted(b.files) == sorted(a.files), f"convert wrote {sorted(b.files)} from {sorted(a.files)}"
    for k in ("trainXs", "trainYs", "valXs", "valYs"):
        assert b[k].dtype == a[k].dtype and b[k].shape == a[k].shape, k
        assert b[k].tobytes() == a[k].tobytes(), k


# --------------------------------------------------------------------------------------------------
# convert: every split, every direction, and back byte for byte
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("src,via", [(a, b) for a in FORMATS for b in FORMATS if a != b],
                         ids=[f"{a}-{b}" for a in FORMATS for b in FORMATS if a != b])
def test_convert_keeps_every_split_and_round_trips_byte_identical(run, make_dataset, tmp_path, src, via):
    root = _gray_root(make_dataset)
    a = _write_split(run, root, src, tmp_path, "a")
    orig = _read_pairs(a, src)
    assert sorted(orig) == sorted(SPLITS), f"the {WRITER[src]} output itself: {sorted(orig)}"

    b = _target(tmp_path, via, "b")
    run(["convert", a, b, "--to", via, "-q"])
    got = _read_pairs(b, via)
    assert sorted(got) == sorted(SPLITS), f"convert {src} -> {via} kept {sorted(got)}"
    for s in SPLITS:
        X, y = orig[s]
        X2, y2 = got[s]
        if via == "idx":
            shape = X.shape[:3]
        elif src == "idx":
            shape = X.shape + (1,)
        else:
            shape = X.shape
        assert X2.shape == shape and X2.dtype == X.dtype, f"{s}Xs: {X2.shape} {X2.dtype}"
        assert X2.tobytes() == X.tobytes(), f"{s}Xs: image bytes changed"
        if via == "idx":
            assert y2.dtype == np.uint8, f"{s}Ys in IDX: {y2.dtype}"
        else:
            assert y2.dtype == (np.int64 if src == "idx" else y.dtype), f"{s}Ys: {y2.dtype}"
        assert y2.shape == y.shape and y2.tolist() == y.tolist(), f"{s}Ys: values changed"
    assert _class_names(b, via) == list(CLASSES)
    run(["verify", b])

    c = _target(tmp_path, src, "c")
    run(["convert", b, c, "--to", src, "-q"])
    back = _read_pairs(c, src)
    assert sorted(back) == sorted(SPLITS), f"convert {via} -> {src} kept {sorted(back)}"
    for s in SPLITS:
        for k, (t0, t1) in enumerate(zip(orig[s], back[s])):
            what = f"{s}{'XsYs'[2 * k:2 * k + 2]} after {src} -> {via} -> {src}"
            assert (t1.shape, t1.dtype) == (t0.shape, t0.dtype), f"{what}: {t1.shape} {t1.dtype}"
            assert t1.tobytes() == t0.tobytes(), f"{what}: bytes differ"
    if src == "idx":
        assert _idx_files(c) == _idx_files(a), "IDX files differ after the round trip"
    run(["verify", c])


@pytest.mark.parametrize("label_dtype", ["uint8", "int32"])
def test_convert_keeps_label_dtype_of_every_split(run, make_dataset, tmp_path, label_dtype):
    root = _gray_root(make_dataset)
    a = _write_split(run, root, "npz", tmp_path, "a", "--label-dtype", label_dtype)
    orig = _read_pairs(a, "npz")
    prev = a
    for fmt in ("h5", "npy", "npz"):
        out = _target(tmp_path, fmt, f"via-{fmt}")
        run(["convert", prev, out, "--to", fmt, "-q"])
        got = _read_pairs(out, fmt)
        assert sorted(got) == sorted(SPLITS), f"{fmt}: {sorted(got)}"
        for s in SPLITS:
            assert got[s][1].dtype == np.dtype(label_dtype), f"{fmt} {s}Ys: {got[s][1].dtype}"
            assert got[s][1].tobytes() == orig[s][1].tobytes()
        run(["verify", out])
        prev = out


# --------------------------------------------------------------------------------------------------
# one-hot labels
# --------------------------------------------------------------------------------------------------

def test_onehot_labels_are_float32_by_default_and_label_dtype_still_chooses(run, make_dataset, tmp_path):
    root = _gray_root(make_dataset)
    for dtype in (None, "uint8", "int32", "int64"):
        out = tmp_path / f"oh-{dtype}.npz"
        _write(run, root, "npz", out, *SPLIT_ARGS, "--labels", "onehot", *(["--label-dtype", dtype] if dtype else []))
        pairs = _read_pairs(out, "npz")
        assert sorted(pairs) == sorted(SPLITS)
        for s, (X, y) in pairs.items():
            assert y.dtype == np.dtype(dtype or "float32"), f"--label-dtype {dtype}: {s}Ys is {y.dtype}"
            assert y.shape == (len(X), len(CLASSES))
            assert (y.sum(axis=1) == 1).all() and set(np.unique(y).tolist()) <= {0, 1}
        run(["verify", out])


@pytest.mark.parametrize("via", CONTAINERS)
@pytest.mark.parametrize("label_dtype", ["float32", "uint8"])
def test_convert_keeps_onehot_labels_onehot_with_their_dtype(run, make_dataset, tmp_path, via, label_dtype):
    root = _gray_root(make_dataset)
    src = "h5" if via == "npz" else "npz"
    a = _write_split(run, root, src, tmp_path, "a", "--labels", "onehot", "--label-dtype", label_dtype)
    orig = _read_pairs(a, src)
    b = _target(tmp_path, via, "b")
    run(["convert", a, b, "--to", via, "-q"])
    got = _read_pairs(b, via)
    assert sorted(got) == sorted(SPLITS), f"kept {sorted(got)}"
    for s in SPLITS:
        y, y2 = orig[s][1], got[s][1]
        assert (y2.shape, y2.dtype) == (y.shape, y.dtype), f"{s}Ys: {y2.shape} {y2.dtype}, was {y.shape} {y.dtype}"
        assert y2.tobytes() == y.tobytes()
        assert got[s][0].tobytes() == orig[s][0].tobytes()
    run(["verify", b])


@pytest.mark.parametrize("src", CONTAINERS)
def test_convert_onehot_to_idx_is_refused_naming_labels_index(run, make_dataset, tmp_path, src):
    root = _gray_root(make_dataset)
    a = _write_split(run, root, src, tmp_path, "a", "--labels", "onehot")
    out = tmp_path / "idx"
    res = run(["convert", a, out, "--to", "idx"], expect_rc=None)
    assert res.returncode != 0, f"one-hot labels went to IDX:\n{res.stdout}{res.stderr}"
    H.assert_one_line_error(res, "--labels index")
    assert _nothing_at(out), f"written at OUT: {sorted(p.name for p in out.iterdir())}"


@pytest.mark.parametrize("via", FORMATS)
def test_convert_labels_index_turns_onehot_rows_into_class_indices(run, make_dataset, tmp_path, via):
    root = _gray_root(make_dataset)
    a = _write_split(run, root, "npz", tmp_path, "a", "--labels", "onehot")
    orig = _read_pairs(a, "npz")
    b = _target(tmp_path, via, "b")
    run(["convert", a, b, "--to", via, "--labels", "index", "-q"])
    got = _read_pairs(b, via)
    assert sorted(got) == sorted(SPLITS), f"kept {sorted(got)}"
    for s in SPLITS:
        X, y = orig[s]
        X2, y2 = got[s]
        assert y2.ndim == 1 and y2.dtype.kind in "iu", f"{s}Ys: {y2.shape} {y2.dtype}"
        assert y2.tolist() == y.argmax(axis=1).tolist(), f"{s}Ys: not the argmax of the one-hot rows"
        assert X2.tobytes() == X.tobytes()
    run(["verify", b])


ONEHOT_BAD_ROW = 11


@pytest.mark.parametrize("command", ["inspect", "export", "convert"])
@pytest.mark.parametrize("row", ["two_ones", "all_zeros"])
def test_malformed_onehot_row_is_refused_naming_the_row(run, tmp_path, command, row):
    rng = np.random.default_rng(9)
    n = 13
    X = rng.integers(0, 256, (n, 4, 4, 1), dtype=np.uint8)
    y = np.eye(3, dtype=np.float32)[np.arange(n) % 3]
    y[ONEHOT_BAD_ROW] = [1, 1, 0] if row == "two_ones" else [0, 0, 0]
    npz = tmp_path / "bad.npz"
    np.savez(npz, trainXs=X, trainYs=y, classNames=np.array(list(CLASSES)))
    out = {"inspect": None, "export": tmp_path / "exported", "convert": tmp_path / "out.npz"}[command]
    res = run([command, npz, *([out] if out else [])], expect_rc=H.EX_DATAERR)
    line = H.assert_one_line_error(res)
    assert re.search(rf"\b{ONEHOT_BAD_ROW}\b", line), f"row {ONEHOT_BAD_ROW} not named: {line!r}"
    if out is not None:
        assert _nothing_at(out)


# --------------------------------------------------------------------------------------------------
# verify: exactly the pairs of the manifest
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_verify_passes_on_untouched_split_outputs(run, make_dataset, tmp_path, fmt):
    root = _gray_root(make_dataset)
    run(["verify", _write_split(run, root, fmt, tmp_path)])


def _remove_val(path: Path, fmt: str) -> None:
    if fmt == "npz":
        _npz_without(path, {"valXs.npy", "valYs.npy"})
    elif fmt == "npy":
        (path / "valXs.npy").unlink()
        (path / "valYs.npy").unlink()
    elif fmt == "h5":
        with h5py.File(path, "r+") as f:
            del f["valXs"]
            del f["valYs"]
    else:
        for p in list(path.iterdir()):
            if p.name.startswith("val-"):
                p.unlink()


@pytest.mark.parametrize("fmt", FORMATS)
def test_verify_names_a_split_missing_from_the_container(run, make_dataset, tmp_path, fmt):
    root = _gray_root(make_dataset)
    out = _write_split(run, root, fmt, tmp_path)
    assert "val" in _read_pairs(out, fmt)
    _remove_val(out, fmt)
    assert "val" not in _read_pairs(out, fmt) and "train" in _read_pairs(out, fmt)
    res = run(["verify", out], expect_rc=H.EX_DATAERR)
    line = H.assert_one_line_error(res)
    assert _mentions(line, "val"), f"the missing val split is not named: {line!r}"


@pytest.mark.parametrize("fmt", CONTAINERS)
def test_verify_names_an_extra_pair_not_in_the_manifest(run, make_dataset, tmp_path, fmt):
    root = _gray_root(make_dataset)
    out = _write_split(run, root, fmt, tmp_path)
    rng = np.random.default_rng(77)
    extra = {"extraXs": rng.integers(0, 256, (2, 8, 8, 1), dtype=np.uint8), "extraYs": np.array([0, 2], np.int64)}
    if fmt == "npz":
        _npz_add(out, extra)
    elif fmt == "npy":
        for k, v in extra.items():
            np.save(out / f"{k}.npy", v)
    else:
        with h5py.File(out, "r+") as f:
            for k, v in extra.items():
                f[k] = v
    assert "extra" in _read_pairs(out, fmt)
    res = run(["verify", out], expect_rc=H.EX_DATAERR)
    line = H.assert_one_line_error(res)
    assert _mentions(line, "extra"), f"the extra pair is not named: {line!r}"


# --------------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------------

def _check_export_split(folder: Path, X: np.ndarray, y: np.ndarray, names, what: str) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p != folder / "classes.txt")
    assert files, f"{what}: nothing exported"
    assert all(p.suffix == ".png" and p.parent.parent == folder for p in files), f"{what}: {files}"
    stems = [p.stem for p in files]
    assert sorted(int(s) for s in stems) == list(range(len(y))), f"{what}: indices {stems}"
    assert len({len(s) for s in stems}) == 1, f"{what}: not zero-padded: {stems}"
    for p in files:
        i = int(p.stem)
        assert p.parent.name == names[int(y[i])], f"{what}: image {i} in {p.parent.name}, label {y[i]}"
        with Image.open(p) as im:
            a = np.asarray(im)
        assert a.reshape(-1).tobytes() == np.ascontiguousarray(X[i]).reshape(-1).tobytes(), f"{what}: {p.name}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_writes_one_folder_per_split_and_to_npz_gives_each_split_back_in_class_order(
        run, make_dataset, tmp_path, fmt):
    root = _gray_root(make_dataset)
    a = _write_split(run, root, fmt, tmp_path)
    orig = _read_pairs(a, fmt)
    out = tmp_path / "png"
    run(["export", a, out, "-q"])
    assert (out / "classes.txt").read_text() == "".join(c + "\n" for c in CLASSES)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(SPLITS), \
        f"top level of the export: {sorted(p.name for p in out.iterdir())}"
    for s in SPLITS:
        _check_export_split(out / s, *orig[s], CLASSES, s)
    back = tmp_path / "back.npz"
    run(["to-npz", out, back, "--classes-file", out / "classes.txt", "-q"])
    got = _read_pairs(back, "npz")
    assert sorted(got) == sorted(SPLITS)
    for s in SPLITS:
        X, y = orig[s]
        order = np.argsort(y, kind="stable")
        X2, y2 = got[s]
        assert y2.tolist() == np.sort(y, kind="stable").tolist(), f"{s}Ys"
        assert X2.tobytes() == X[order].tobytes(), f"{s}Xs"


def test_export_of_a_single_split_file_keeps_flat_class_folders(run, make_dataset, tmp_path):
    root = _gray_root(make_dataset)
    npz = _write(run, root, "npz", tmp_path / "one.npz")
    X, y = _read_pairs(npz, "npz")["train"]
    out = tmp_path / "png"
    run(["export", npz, out, "-q"])
    assert sorted(p.name for p in out.iterdir()) == sorted(list(CLASSES) + ["classes.txt"])
    _check_export_split(out, X, y, CLASSES, "train")


def test_export_of_onehot_labels_files_images_by_label_index(run, make_dataset, tmp_path):
    root = _gray_root(make_dataset)
    npz = _write_split(run, root, "npz", tmp_path, "oh", "--labels", "onehot")
    orig = _read_pairs(npz, "npz")
    out = tmp_path / "png"
    run(["export", npz, out, "-q"])
    for s in SPLITS:
        X, y = orig[s]
        _check_export_split(out / s, X, y.argmax(axis=1), CLASSES, s)


# --------------------------------------------------------------------------------------------------
# inspect
# --------------------------------------------------------------------------------------------------

def _check_split_entries(rep, pairs, names, tensor_names):
    """Every split entry of an inspect report against the arrays (X, y) numpy reads per split:
    its tensor names, N, per-class counts (none out of range) and per-channel statistics."""
    for entry in rep["splits"]:
        s = entry["name"]
        X, y = pairs[s]
        assert (entry["images"], entry["labels"]) == tensor_names(s), entry
        assert entry["count"] == len(y)
        _check_classes(entry["classes"], y, names, f"split {s}")
        assert entry["labelsOutOfRange"] == 0
        _check_pixels(entry.get("pixels"), X, f"split {s}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_inspect_json_reports_every_split_with_counts_and_pixel_stats(run, make_dataset, tmp_path, fmt):
    root = _gray_root(make_dataset, per_class=5)  # 5 a class: uneven counts per split
    a = _write_split(run, root, fmt, tmp_path)
    orig = _read_pairs(a, fmt)
    rep = _inspect(run, a)
    assert "splits" in rep, f"no 'splits' key: {sorted(rep)}"
    assert [s["name"] for s in rep["splits"]] == list(SPLITS)
    _check_split_entries(rep, orig, CLASSES, lambda s: (f"{s}Xs", f"{s}Ys"))
    X_all = np.concatenate([_as_nhwc(orig[s][0]) for s in SPLITS])
    y_all = np.concatenate([orig[s][1] for s in SPLITS])
    assert rep["images"] == len(y_all)
    _check_classes(rep["classes"], y_all, CLASSES, "top-level classes (all splits)")
    _check_pixels(rep["pixels"], X_all, "top-level pixels (all splits)")
    assert rep["labelForm"] == "index" and rep["layout"] == "nhwc"
    for key in ("path", "format", "tensors", "classNamesSource", "labelsOutOfRange", "manifest"):
        assert key in rep, key
    assert rep["format"] == fmt


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_inspect_json_pixel_stats_are_per_channel_in_either_layout(run, make_dataset, tmp_path, layout):
    root = _rgb_root(make_dataset)
    a = _write_split(run, root, "npz", tmp_path, "rgb", "--layout", layout)
    orig = _read_pairs(a, "npz")
    rep = _inspect(run, a)
    assert rep["layout"] == layout
    for entry in rep["splits"]:
        _check_pixels(entry.get("pixels"), orig[entry["name"]][0], f"split {entry['name']}", layout)
    X_all = np.concatenate([_as_nhwc(orig[s][0], layout) for s in SPLITS])
    _check_pixels(rep["pixels"], X_all, "top-level pixels")


def test_inspect_json_of_onehot_labels_counts_by_label_index(run, make_dataset, tmp_path):
    root = _gray_root(make_dataset, per_class=5)
    a = _write_split(run, root, "h5", tmp_path, "oh", "--labels", "onehot")
    orig = _read_pairs(a, "h5")
    rep = _inspect(run, a)
    assert rep["labelForm"] == "onehot"
    assert [s["name"] for s in rep["splits"]] == list(SPLITS)
    for entry in rep["splits"]:
        _check_classes(entry["classes"], orig[entry["name"]][1].argmax(axis=1), CLASSES, f"split {entry['name']}")
    _check_classes(rep["classes"], np.concatenate([orig[s][1].argmax(axis=1) for s in SPLITS]), CLASSES, "top level")


def test_inspect_no_stats_keeps_splits_and_counts_without_pixels(run, make_dataset, tmp_path):
    root = _gray_root(make_dataset)
    a = _write_split(run, root, "npz", tmp_path)
    orig = _read_pairs(a, "npz")
    rep = _inspect(run, a, "--no-stats")
    assert [s["name"] for s in rep["splits"]] == list(SPLITS)
    for entry in rep["splits"]:
        assert entry["count"] == len(orig[entry["name"]][1])
        assert not entry.get("pixels"), f"--no-stats, yet pixels for {entry['name']}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_inspect_text_names_every_split(run, make_dataset, tmp_path, fmt):
    root = _gray_root(make_dataset)
    a = _write_split(run, root, fmt, tmp_path)
    text = run(["inspect", a]).stdout
    for s in SPLITS:
        # the split's own name, not only inside tensor or file names (valXs, val-images-idx3-ubyte)
        assert re.search(rf"(?<![\w-]){s}(?![\w-])", text), f"split {s!r} not named in:\n{text}"


# --------------------------------------------------------------------------------------------------
# preview
# --------------------------------------------------------------------------------------------------

def test_preview_scales_small_images_up_to_the_cell_with_nearest_neighbour(run, make_dataset, tmp_path):
    root = _gray_root(make_dataset, per_class=2)
    npz = _write(run, root, "npz", tmp_path / "one.npz")
    X, y = _read_pairs(npz, "npz")["train"]
    out = tmp_path / "sheet.png"
    run(["preview", npz, "-o", out, "--cell", "64", "--per-class", "1", "-q"])
    sheet = _sheet(out)
    for c in range(len(CLASSES)):
        first, second = X[np.flatnonzero(y == c)[:2]]
        assert len(_find_block(sheet, _block(first, 8))) == 1, f"class {c}: its first image, 8x scaled, is not in the sheet"
        assert not _find_block(sheet, _block(second, 8)), f"class {c}: --per-class 1 drew a second image"


@pytest.mark.parametrize("fmt", FORMATS)
def test_preview_draws_every_split_by_default(run, make_dataset, tmp_path, fmt):
    root = _gray_root(make_dataset)
    a = _write_split(run, root, fmt, tmp_path)
    orig = _read_pairs(a, fmt)
    out = tmp_path / "all.png"
    res = run(["preview", a, "-o", out, "--cell", "64", "--per-class", "1"])
    assert "warning" not in res.stderr, res.stderr
    sheet = _sheet(out)
    for s in SPLITS:
        X, y = orig[s]
        for c, img in _first_of_each_class(X, y, range(len(CLASSES))).items():
            assert _find_block(sheet, _block(img.reshape(8, 8), 8)), f"{s}: first image of class {c} not drawn"


@pytest.mark.parametrize("fmt", CONTAINERS)
def test_preview_tensor_picks_one_split_and_the_full_sheet_is_taller(run, make_dataset, tmp_path, fmt):
    root = _gray_root(make_dataset)
    a = _write_split(run, root, fmt, tmp_path)
    orig = _read_pairs(a, fmt)
    sheets = {}
    for pick in (None, "trainXs", "valXs"):
        out = tmp_path / f"{pick}.png"
        run(["preview", a, "-o", out, "--cell", "64", "--per-class", "1", *(["--tensor", pick] if pick else []), "-q"])
        sheets[pick] = _sheet(out)
    assert sheets[None].shape[0] > sheets["trainXs"].shape[0], \
        f"the 3-split sheet {sheets[None].shape} is not taller than trainXs alone {sheets['trainXs'].shape}"
    firsts = {s: _first_of_each_class(*orig[s], range(len(CLASSES))) for s in SPLITS}
    for c in range(len(CLASSES)):
        val_block, train_block = _block(firsts["val"][c].reshape(8, 8), 8), _block(firsts["train"][c].reshape(8, 8), 8)
        assert _find_block(sheets["valXs"], val_block), f"--tensor valXs: val's class {c} missing"
        assert not _find_block(sheets["valXs"], train_block), f"--tensor valXs shows train's class {c}"
        assert _find_block(sheets["trainXs"], train_block), f"--tensor trainXs: train's class {c} missing"
        assert not _find_block(sheets["trainXs"], val_block), f"--tensor trainXs shows val's class {c}"


def test_preview_warns_when_a_class_has_no_image_in_a_split(run, make_dataset, tmp_path):
    rng = np.random.default_rng(3)
    ds = make_dataset()
    for split, classes in (("train", CLASSES), ("val", ("ant", "bee")), ("test", CLASSES)):
        for c in classes:
            for i in range(2):
                ds.add_image(f"{split}/{c}/{i}.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
    npz = tmp_path / "f.npz"
    run(["to-npz", ds.root, npz, "-q"])
    assert np.load(npz)["valYs"].tolist() == [0, 0, 1, 1]
    res = run(["preview", npz, "-o", tmp_path / "sheet.png"])
    warnings = [ln for ln in H.stderr_lines(res) if ln.startswith("imgconv: warning:")]
    assert any("cat" in ln and _mentions(ln, "val") for ln in warnings), \
        f"no warning naming class cat and split val:\n{res.stderr}"
    assert not any(re.search(r"\b(ant|bee)\b", ln) for ln in warnings), f"a warning about a class that is in every split:\n{res.stderr}"
    assert (tmp_path / "sheet.png").is_file()


# --------------------------------------------------------------------------------------------------
# foreign tensors: --xs/--ys and Keras' layout
# --------------------------------------------------------------------------------------------------

KERAS_Y_TRAIN = [0, 1, 3, 0, 1, 3, 1]
KERAS_Y_TEST = [3, 0, 1, 1]
KERAS_NAMES = ["0", "1", "2", "3"]  # up to the largest label; class 2 has no image


def _keras_npz(path: Path, kind: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(12 if kind == "mnist" else 13)
    shape = (28, 28) if kind == "mnist" else (32, 32, 3)
    arrays = {}
    for s, ys in (("train", KERAS_Y_TRAIN), ("test", KERAS_Y_TEST)):
        y = np.array(ys, np.uint8)
        arrays[f"x_{s}"] = rng.integers(0, 256, (len(y), *shape), dtype=np.uint8)
        arrays[f"y_{s}"] = y if kind == "mnist" else y[:, None]
    np.savez(path, **arrays)
    return {s: (arrays[f"x_{s}"], arrays[f"y_{s}"].reshape(-1)) for s in ("train", "test")}


@pytest.mark.parametrize("kind", ["mnist", "cifar"])
def test_keras_npz_is_inspected_with_train_and_test_splits(run, tmp_path, kind):
    npz = tmp_path / "keras.npz"
    pairs = _keras_npz(npz, kind)
    rep = _inspect(run, npz)
    assert [s["name"] for s in rep["splits"]] == ["train", "test"]
    assert [c["name"] for c in rep["classes"]] == KERAS_NAMES
    _check_split_entries(rep, pairs, KERAS_NAMES, lambda s: (f"x_{s}", f"y_{s}"))
    assert rep["images"] == len(KERAS_Y_TRAIN) + len(KERAS_Y_TEST)
    assert rep["labelForm"] == "index", "(N, 1) CIFAR labels are indices, not one-hot"


@pytest.mark.parametrize("kind", ["mnist", "cifar"])
def test_keras_npz_preview_draws_both_splits(run, tmp_path, kind):
    npz = tmp_path / "keras.npz"
    pairs = _keras_npz(npz, kind)
    side = 28 if kind == "mnist" else 32
    out = tmp_path / "sheet.png"
    run(["preview", npz, "-o", out, "--cell", str(2 * side), "--per-class", "1"])
    sheet = _sheet(out)
    for s, (X, y) in pairs.items():
        for c, img in _first_of_each_class(X, y, range(4)).items():
            assert _find_block(sheet, _block(img, 2)), f"{s}: first image of class {c} not drawn (2x nearest)"


@pytest.mark.parametrize("kind", ["mnist", "cifar"])
def test_keras_npz_export_writes_train_and_test_folders(run, tmp_path, kind):
    npz = tmp_path / "keras.npz"
    pairs = _keras_npz(npz, kind)
    out = tmp_path / "png"
    run(["export", npz, out, "-q"])
    assert (out / "classes.txt").read_text() == "".join(n + "\n" for n in KERAS_NAMES)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["test", "train"]
    for s, (X, y) in pairs.items():
        _check_export_split(out / s, X, y, KERAS_NAMES, s)


@pytest.mark.parametrize("kind", ["mnist", "cifar"])
def test_keras_npz_convert_writes_train_and_test_pairs_and_verify_passes(run, tmp_path, kind):
    npz = tmp_path / "keras.npz"
    pairs = _keras_npz(npz, kind)
    out = tmp_path / "out.npz"
    run(["convert", npz, out, "-q"])
    with np.load(out) as d:
        assert sorted(d.files) == ["classNames", "testXs", "testYs", "trainXs", "trainYs"]
        assert [str(n) for n in d["classNames"]] == KERAS_NAMES
        for s, (X, y) in pairs.items():
            assert d[f"{s}Xs"].dtype == np.uint8 and d[f"{s}Xs"].tobytes() == X.tobytes(), f"{s}Xs"
            assert d[f"{s}Ys"].reshape(-1).tolist() == y.tolist(), f"{s}Ys"
    run(["verify", out])


def _foreign(tmp_path: Path, container: str):
    rng = np.random.default_rng(21)
    X = rng.integers(0, 256, (6, 8, 8), dtype=np.uint8)
    y = np.array([2, 0, 1, 2, 0, 1], np.int64)
    path = tmp_path / f"foreign.{container}"
    if container == "npz":
        np.savez(path, images=X, targets=y, other=np.zeros(3))
    else:
        with h5py.File(path, "w") as f:
            f["images"] = X
            f["targets"] = y
    return path, X, y


@pytest.mark.parametrize("container", ["npz", "h5"])
@pytest.mark.parametrize("command", ["inspect", "export", "convert", "preview"])
def test_xs_ys_options_read_a_foreign_pair(run, tmp_path, container, command):
    path, X, y = _foreign(tmp_path, container)
    names = ["0", "1", "2"]
    pick = ["--xs", "images", "--ys", "targets"]
    if command == "inspect":
        rep = _inspect(run, path, *pick)
        assert rep["images"] == 6 and len(rep["splits"]) == 1
        assert rep["splits"][0]["images"] == "images" and rep["splits"][0]["labels"] == "targets"
        _check_classes(rep["classes"], y, names, "classes")
        _check_pixels(rep["pixels"], X, "pixels")
    elif command == "export":
        out = tmp_path / "png"
        run(["export", path, out, *pick, "-q"])
        assert (out / "classes.txt").read_text() == "0\n1\n2\n"
        _check_export_split(out, X, y, names, "images")
    elif command == "convert":
        out = tmp_path / "out.npz"
        run(["convert", path, out, *pick, "-q"])
        pairs = _read_pairs(out, "npz")
        assert len(pairs) == 1, sorted(pairs)
        X2, y2 = next(iter(pairs.values()))
        assert X2.tobytes() == X.tobytes() and y2.tolist() == y.tolist()
        assert _class_names(out, "npz") == names
        run(["verify", out])
    else:
        out = tmp_path / "sheet.png"
        run(["preview", path, "-o", out, "--cell", "64", "--per-class", "1", *pick, "-q"])
        sheet = _sheet(out)
        for c, img in _first_of_each_class(X, y, range(3)).items():
            assert _find_block(sheet, _block(img, 8)), f"class {c} not drawn"


def test_verify_takes_xs_ys_to_check_one_pair(run, make_dataset, tmp_path):
    root = _gray_root(make_dataset)
    npz = _write_split(run, root, "npz", tmp_path)
    run(["verify", npz, "--xs", "valXs", "--ys", "valYs"])
    res = run(["verify", npz, "--xs", "nopeXs", "--ys", "nopeYs"], expect_rc=None)
    assert res.returncode != 0, "a pair that is not there was verified"
    H.assert_one_line_error(res, "nopeXs")


# --------------------------------------------------------------------------------------------------
# --labels-file (the IDX labels file of the read commands)
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["inspect", "export", "preview", "verify", "convert"])
def test_idx_labels_file_option_names_an_oddly_named_labels_file(run, make_dataset, tmp_path, command):
    root = _gray_root(make_dataset)
    flat = _write(run, root, "idx", tmp_path / "flat")
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "pics.bin").write_bytes((flat / "train-images-idx3-ubyte").read_bytes())
    (odd / "tags.bin").write_bytes((flat / "train-labels-idx1-ubyte").read_bytes())
    (odd / "manifest.json").write_bytes((flat / "manifest.json").read_bytes())
    y = _read_idx_file(flat / "train-labels-idx1-ubyte")
    args = {"inspect": ["--json"], "export": [tmp_path / "png"], "preview": ["-o", tmp_path / "s.png"],
            "verify": [], "convert": [tmp_path / "o.npz"]}[command]
    res = run([command, odd / "pics.bin", *args, "--labels-file", odd / "tags.bin"])
    if command == "inspect":
        rep = json.loads(res.stdout)
        _check_classes(rep["classes"], y, CLASSES, "classes")
    elif command == "convert":
        assert np.load(tmp_path / "o.npz")["trainYs"].tolist() == y.tolist()
