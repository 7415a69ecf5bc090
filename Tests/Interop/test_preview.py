"""preview: a contact sheet PNG, one row per class holding the first K images of that class in tensor
order, labelled '<index>: <name>', each image scaled (nearest) so its larger side fills the cell. Judged with Pillow: the sheet's size follows the documented layout
(Previewer / PreviewLayout in Sources/ImgConv/Preview.swift), every cell holds exactly the pixels of the
image of that class in the tensor (npz, h5, IDX, npy folder; uint8, uint16, float32, NCHW), the label
margin of every row holds text, and bad inputs give one line and no output."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import interop_helpers as H

GAP = 4
MAX_LABEL = 40


def _layout(rows, columns, cell_w, cell_h, label_chars):
    """The geometry PreviewLayout documents."""
    f = 2 if cell_h >= 24 else 1
    margin = min(label_chars, MAX_LABEL) * 6 * f
    row_h = max(cell_h, 9 * f)
    columns = max(1, columns)
    return {
        "width": GAP + margin + GAP + columns * (cell_w + GAP),
        "height": GAP + rows * (row_h + GAP),
        "cell": lambda r, j: (2 * GAP + margin + j * (cell_w + GAP), GAP + r * (row_h + GAP) + (row_h - cell_h) // 2),
        "label": lambda r: (GAP, GAP + r * (row_h + GAP), margin, row_h),
    }


def _label_chars(rows, names):
    return max(len(f"{c}: {names[c]}") for c in rows)


def _picks(y, rows, k):
    """The first k positions of each row's class, in tensor order."""
    return [list(np.flatnonzero(y == c)[:k]) for c in rows]


def _as_rgb(img):
    """An (H, W) or (H, W, 1|3) uint8 image as (H, W, 3)."""
    a = img if img.ndim == 3 else img[..., None]
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


def _cell_size(w, h, max_cell):
    """PreviewLayout.cellSize: the larger side becomes max_cell, aspect kept (up or down)."""
    if w >= h:
        return max_cell, max(1, (h * max_cell + w // 2) // w)
    return max(1, (w * max_cell + h // 2) // h), max_cell


def _scaled(img, cell_w, cell_h):
    """Nearest neighbour as documented: the source pixel at the centre of each cell pixel."""
    h, w = img.shape[:2]
    rows = ((2 * np.arange(cell_h) + 1) * h) // (2 * cell_h)
    cols = ((2 * np.arange(cell_w) + 1) * w) // (2 * cell_w)
    return img[rows][:, cols]


def _check_sheet(png, X, y, names, rows, k, cell=None, max_cell=96):
    """Size, cell pixels and label text of a sheet drawn from X (N, H, W[, C]) uint8 and labels y,
    each image scaled to its cell (the larger side max_cell) by nearest neighbour."""
    sheet = np.asarray(Image.open(png))
    assert Image.open(png).mode == "RGB"
    picks = _picks(y, rows, k)
    h, w = X.shape[1:3]
    cell_w, cell_h = cell or _cell_size(w, h, max_cell)
    geo = _layout(len(rows), max(len(p) for p in picks), cell_w, cell_h, _label_chars(rows, names))
    assert sheet.shape == (geo["height"], geo["width"], 3), "one row per class, one column per picked image"
    for r, positions in enumerate(picks):
        for j, i in enumerate(positions):
            x0, y0 = geo["cell"](r, j)
            got = sheet[y0:y0 + cell_h, x0:x0 + cell_w]
            expected = _as_rgb(_scaled(X[i], cell_w, cell_h))
            np.testing.assert_array_equal(got, expected, err_msg=f"row {r} (class {rows[r]}), image {i}")
        lx, ly, lw, lh = geo["label"](r)
        text = sheet[ly:ly + lh, lx:lx + lw]
        assert (text.max(axis=2) < 64).sum() >= 20, f"label of row {r} ('{rows[r]}: {names[rows[r]]}') is blank"
    return sheet, geo, picks


def _no_temporaries(folder):
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")], "temporary file left behind"


def test_samples_npz_shuffled(run, samples_root, tmp_path):
    npz = tmp_path / "s.npz"
    run(["to-npz", samples_root, npz, "--shuffle", "--seed", "7", "-q"])
    d = np.load(npz)
    X, y, names = d["trainXs"], d["trainYs"], list(d["classNames"])
    out = tmp_path / "grid.png"
    res = run(["preview", npz, "-o", out, "--per-class", "3"])
    assert "wrote" in res.stdout and str(out) in res.stdout
    _check_sheet(out, X, y, names, list(range(len(names))), 3)
    _no_temporaries(tmp_path)


def test_default_options_and_deterministic(run, samples_root, tmp_path):
    npz = tmp_path / "s.npz"
    run(["to-npz", samples_root, npz, "-q"])
    d = np.load(npz)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    run(["preview", npz, "-o", a, "-q"])
    run(["preview", npz, "-o", b, "-q"])
    assert a.read_bytes() == b.read_bytes()
    _check_sheet(a, d["trainXs"], d["trainYs"], list(d["classNames"]), list(range(len(d["classNames"]))), 8)


def test_h5_with_class_subset(run, samples_root, tmp_path):
    h5py = pytest.importorskip("h5py")
    h5 = tmp_path / "s.h5"
    run(["to-hdf5", samples_root, h5, "--compress", "-q"])
    with h5py.File(h5, "r") as f:
        X, y = f["trainXs"][()], f["trainYs"][()]
        names = [str(n) for n in f.attrs["classNames"]]
    rows = [names.index("cat"), 0]
    out = tmp_path / "grid.png"
    run(["preview", h5, "-o", out, "--classes", "cat,0", "--per-class", "2"])
    _check_sheet(out, X, y, names, rows, 2)


def test_idx_pair_gray(run, samples_root, tmp_path):
    folder = tmp_path / "idx"
    run(["to-idx", samples_root, folder, "--color", "gray", "-q"])
    raw_x = (folder / "train-images-idx3-ubyte").read_bytes()
    raw_y = (folder / "train-labels-idx1-ubyte").read_bytes()
    n, h, w = (int.from_bytes(raw_x[4 + 4 * k:8 + 4 * k], "big") for k in range(3))
    X = np.frombuffer(raw_x[16:], np.uint8).reshape(n, h, w)
    y = np.frombuffer(raw_y[8:], np.uint8)
    names = [c["name"] for c in json.loads((folder / "manifest.json").read_text())["classes"]]
    for target in (folder, folder / "train-images-idx3-ubyte"):
        out = tmp_path / "grid.png"
        run(["preview", target, "-o", out])
        _check_sheet(out, X, y, names, list(range(len(names))), 8)


def test_mnist_idx_without_names(run, tmp_path):
    images = H.FIXTURES / "mnist" / "t10k-images-idx3-ubyte.gz"
    if not images.is_file():
        pytest.skip("Tests/Fixtures/mnist t10k files are missing")
    import gzip
    X = np.frombuffer(gzip.decompress(images.read_bytes())[16:], np.uint8).reshape(-1, 28, 28)
    y = np.frombuffer(gzip.decompress((images.parent / "t10k-labels-idx1-ubyte.gz").read_bytes())[8:], np.uint8)
    out = tmp_path / "mnist.png"
    run(["preview", images, "-o", out, "--per-class", "5"])
    _check_sheet(out, X, y, [str(k) for k in range(10)], list(range(10)), 5)


def test_npy_folder_uint16_float32_nchw_show_the_same_pixels(run, samples_root, tmp_path):
    npz = tmp_path / "s.npz"
    run(["to-npz", samples_root, npz, "-q"])
    d = np.load(npz)
    X, y, names = d["trainXs"], d["trainYs"], list(d["classNames"])
    variants = {
        "npy": ["to-npy", samples_root, tmp_path / "npy"],
        "u16": ["to-npz", samples_root, tmp_path / "u16.npz", "--dtype", "uint16"],
        "f32": ["to-npz", samples_root, tmp_path / "f32.npz", "--dtype", "float32", "--scale", "unit"],
        "nchw": ["to-npz", samples_root, tmp_path / "nchw.npz", "--layout", "nchw"],
    }
    for name, args in variants.items():
        run(args + ["-q"])
        out = tmp_path / f"{name}.png"
        run(["preview", args[2], "-o", out])
        _check_sheet(out, X, y, names, list(range(len(names))), 8)


def test_larger_images_scale_down_nearest(run, samples_root, tmp_path):
    npz = tmp_path / "s.npz"
    run(["to-npz", samples_root, npz, "-q"])
    d = np.load(npz)
    X, y, names = d["trainXs"], d["trainYs"], list(d["classNames"])
    out = tmp_path / "small.png"
    run(["preview", npz, "-o", out, "--cell", "32", "--per-class", "2"])
    sheet, geo, picks = _check_sheet(out, X, y, names, list(range(len(names))), 2, cell=(32, 32))
    for r, positions in enumerate(picks):
        for j, i in enumerate(positions):
            x0, y0 = geo["cell"](r, j)
            # 64 -> 32: the source pixel at the centre of each cell pixel, 2x + 1.
            np.testing.assert_array_equal(sheet[y0:y0 + 32, x0:x0 + 32], X[i][1::2, 1::2])


def test_float_range_gray_alpha_and_empty_class(run, tmp_path):
    rng = np.random.default_rng(5)
    X = rng.uniform(-3, 5, (6, 10, 12, 1)).astype(np.float32)
    X[0, 0, 0, 0], X[1, 0, 0, 0] = -3.0, 5.0
    y = np.array([0, 2, 0, 2, 0, 2])
    npz = tmp_path / "f.npz"
    np.savez(npz, trainXs=X, trainYs=y, classNames=np.array(["neg", "empty", "pos \u00e9"]))
    out = tmp_path / "f.png"
    res = run(["preview", npz, "-o", out, "--cell", "12"])
    assert "[-3, 5]" in res.stdout
    expected = np.clip(np.rint((X.astype(np.float64) + 3) / 8 * 255), 0, 255).astype(np.uint8)
    sheet, geo, _ = _check_sheet(out, expected, y, ["neg", "empty", "pos ?"], [0, 1, 2], 8, max_cell=12)
    x0, y0 = geo["cell"](1, 0)
    assert (sheet[y0:y0 + 10, x0:x0 + 60].max(axis=2) < 200).any(), "an empty class says so"

    rgba = np.zeros((2, 16, 16, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    rgba[1, :, :, 3] = 0  # fully transparent: the checkerboard shows
    npz = tmp_path / "a.npz"
    np.savez(npz, trainXs=rgba, trainYs=np.array([0, 1]))
    out = tmp_path / "a.png"
    run(["preview", npz, "-o", out, "--cell", "16"])
    sheet = np.asarray(Image.open(out))
    geo = _layout(2, 1, 16, 16, 4)
    x0, y0 = geo["cell"](0, 0)
    assert (sheet[y0:y0 + 16, x0:x0 + 16] == [200, 0, 0]).all()
    x0, y0 = geo["cell"](1, 0)
    assert set(np.unique(sheet[y0:y0 + 16, x0:x0 + 16])) == {204, 255}


def test_bad_inputs_are_one_line(run, samples_root, tmp_path):
    out = tmp_path / "grid.png"
    res = run(["preview", tmp_path / "missing.npz", "-o", out], expect_rc=H.EX_NOINPUT)
    H.assert_one_line_error(res, "missing.npz")
    text = tmp_path / "notes.txt"
    text.write_text("just some text\n")
    res = run(["preview", text, "-o", out], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "notes.txt")
    png = next(samples_root.rglob("*.png"))
    res = run(["preview", png, "-o", out], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, png.name)
    npz = tmp_path / "s.npz"
    run(["to-npz", samples_root, npz, "-q"])
    res = run(["preview", npz, "-o", out, "--classes", "dog"], expect_rc=H.EX_USAGE)
    H.assert_one_line_error(res, "dog")
    res = run(["preview", npz, "-o", tmp_path / "no" / "grid.png"], expect_rc=H.EX_IOERR)
    H.assert_one_line_error(res, "grid.png")
    assert not out.exists()
    # A truncated archive: one line, and an earlier sheet stays as it was.
    run(["preview", npz, "-o", out, "-q"])
    before = out.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    res = run(["preview", cut, "-o", out], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "cut.npz")
    assert out.read_bytes() == before
    _no_temporaries(tmp_path)
