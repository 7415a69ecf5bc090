"""Dataset shaping against Pillow on real photographs: every filter and fit, gray conversion,
float normalisation, float16, NCHW, class selection and order, shuffling."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageOps

import interop_helpers as H

PHOTOS = [H.FIXTURES / "jpeg/exif-orientation/Portrait_1.jpg",   # 1200x1800 photo
          H.FIXTURES / "jpeg/jpeg-decoder/benches/tower.jpg"]     # a second real photo
FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
           "lanczos": Image.LANCZOS, "area": Image.BOX}
SIZES = [(96, 128), (240, 200), (700, 1000)]   # (H, W): down both ways, and up for one axis


def _photos_dataset(make_dataset):
    ds = make_dataset()
    for i, p in enumerate(PHOTOS):
        if not p.is_file():
            pytest.skip(f"{p.name} missing")
        ds.add(f"c{i}/{p.name}", p)
    return ds


def _convert(run, tmp_path, root, *flags):
    out = tmp_path / "o.npz"
    run(["to-npz", root, out, *flags])
    return np.load(out), json.loads((tmp_path / "o.npz.manifest.json").read_text())


def _reference(path, fit, filt, size, mode="RGB"):
    h, w = size
    im = Image.open(path).convert(mode)
    if fit == "stretch":
        im = im.resize((w, h), FILTERS[filt])
    elif fit == "crop":
        im = ImageOps.fit(im, (w, h), FILTERS[filt])
    else:
        im = ImageOps.pad(im, (w, h), FILTERS[filt], color=(0, 0, 0) if mode == "RGB" else 0)
    a = np.asarray(im)
    return a[..., None] if a.ndim == 2 else a


@pytest.mark.parametrize("fit", ["stretch", "crop", "pad"])
@pytest.mark.parametrize("filt", list(FILTERS))
def test_resize_matches_pillow(run, make_dataset, tmp_path, fit, filt):
    ds = _photos_dataset(make_dataset)
    for size in SIZES:
        d, m = _convert(run, tmp_path, ds.root, "--size", f"{size[0]}x{size[1]}", "--fit", fit, "--filter", filt)
        for i, f in enumerate(m["files"]):
            ref = _reference(ds.root / f["path"], fit, filt, size).astype(int)
            got = d["trainXs"][i].astype(int)
            diff = np.abs(got - ref)
            if filt == "nearest":
                assert diff.max() == 0, (f["path"], size, fit)
            else:
                assert diff.max() <= 1 and diff.mean() < 0.1, (f["path"], size, fit, diff.max(), diff.mean())
        assert m["options"]["resizeFilter"] == filt and m["options"]["fit"] == fit


def test_gray_resize_matches_pillow(run, make_dataset, tmp_path):
    ds = _photos_dataset(make_dataset)
    d, m = _convert(run, tmp_path, ds.root, "--size", "150x100", "--color", "gray", "--filter", "bicubic")
    for i, f in enumerate(m["files"]):
        ref = _reference(ds.root / f["path"], "stretch", "bicubic", (150, 100), mode="L").astype(int)
        assert np.abs(d["trainXs"][i].astype(int) - ref).max() <= 1


def test_float_normalisation_and_layouts(run, samples_root, tmp_path):
    base = tmp_path / "u8.npz"
    run(["to-npz", samples_root, base])
    u8 = np.load(base)["trainXs"]
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    out = tmp_path / "f.npz"
    run(["to-npz", samples_root, out, "--dtype", "float32", "--scale", "unit",
         "--mean", ",".join(map(str, mean)), "--std", ",".join(map(str, std)), "--layout", "nchw"])
    got = np.load(out)["trainXs"]
    assert got.dtype == np.float32 and got.shape == (u8.shape[0], 3, u8.shape[1], u8.shape[2])
    expect = ((u8.astype(np.float32) / np.float32(255) - np.array(mean, np.float32)) / np.array(std, np.float32))
    np.testing.assert_allclose(got, expect.transpose(0, 3, 1, 2), rtol=1e-6, atol=1e-6)

    h16 = tmp_path / "h.npz"
    run(["to-npz", samples_root, h16, "--dtype", "float16", "--scale", "unit"])
    half = np.load(h16)["trainXs"]
    assert half.dtype == np.float16
    np.testing.assert_array_equal(half, (u8.astype(np.float32) / np.float32(255)).astype(np.float16))

    chw = tmp_path / "c.npz"
    run(["to-npz", samples_root, chw, "--layout", "nchw"])
    np.testing.assert_array_equal(np.load(chw)["trainXs"], u8.transpose(0, 3, 1, 2))


def test_normalisation_needs_float(run, samples_root, tmp_path):
    res = run(["to-npz", samples_root, tmp_path / "x.npz", "--mean", "0.5"], expect_rc=64)
    assert "float" in res.stderr


def test_classes_selection_order_and_errors(run, samples_root, tmp_path):
    out = tmp_path / "s.npz"
    run(["to-npz", samples_root, out, "--classes", "rocket,cat"])
    d = np.load(out)
    assert list(d["classNames"]) == ["rocket", "cat"]
    m = json.loads((tmp_path / "s.npz.manifest.json").read_text())
    assert all(f["path"].split("/")[0] == ["rocket", "cat"][f["label"]] for f in m["files"])
    (tmp_path / "list.txt").write_text("cat\r\ncoffee\n\n")
    run(["to-npz", samples_root, out, "--classes-file", tmp_path / "list.txt"])
    assert list(np.load(out)["classNames"]) == ["cat", "coffee"]
    res = run(["to-npz", samples_root, out, "--classes", "cat,zebra"], expect_rc=66)
    assert "zebra" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_natural_sort(run, make_dataset, tmp_path):
    ds = make_dataset()
    src = H.SAMPLES / "cat" / "cat_01.jpg"
    for name in ["10", "9", "2", "b1", "b10", "b2"]:
        ds.add(f"{name}/x.jpg", src)
    out = tmp_path / "n.npz"
    run(["to-npz", ds.root, out, "--sort", "natural"])
    assert list(np.load(out)["classNames"]) == ["2", "9", "10", "b1", "b2", "b10"]
    run(["to-npz", ds.root, out])
    assert list(np.load(out)["classNames"]) == ["10", "2", "9", "b1", "b10", "b2"]


def test_shuffle_is_seeded_and_keeps_pairs(run, samples_root, tmp_path):
    plain = tmp_path / "p.npz"
    run(["to-npz", samples_root, plain])
    a, b, c = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "c.npz"
    run(["to-npz", samples_root, a, "--shuffle", "--seed", "7"])
    run(["to-npz", samples_root, b, "--shuffle", "--seed", "7", "--jobs", "1"])
    run(["to-npz", samples_root, c, "--shuffle", "--seed", "8"])
    assert a.read_bytes() == b.read_bytes()
    da, dc, dp = np.load(a), np.load(c), np.load(plain)
    assert not np.array_equal(da["trainYs"], dp["trainYs"])
    assert not np.array_equal(da["trainYs"], dc["trainYs"])
    # every (image, label) pair survives the shuffle
    pairs = {(dp["trainXs"][i].tobytes(), int(dp["trainYs"][i])) for i in range(len(dp["trainYs"]))}
    assert {(da["trainXs"][i].tobytes(), int(da["trainYs"][i])) for i in range(len(da["trainYs"]))} == pairs


def test_background_composites_alpha(run, make_dataset, tmp_path):
    ds = make_dataset()
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    ds.add_image("a/x.png", rgba)
    out = tmp_path / "bg.npz"
    run(["to-npz", ds.root, out, "--color", "rgb", "--background", "255,255,255"])
    bg = Image.new("RGB", (8, 8), (255, 255, 255))
    im = Image.fromarray(rgba, "RGBA")
    bg.paste(im, mask=im.split()[3])
    np.testing.assert_array_equal(np.load(out)["trainXs"][0], np.asarray(bg))


def test_color_keep(run, make_dataset, tmp_path):
    ds = make_dataset()
    la = np.zeros((4, 4, 2), np.uint8)
    la[..., 0] = 9
    la[..., 1] = 99
    ds.add_image("a/x.png", Image.fromarray(la, "LA"))
    out = tmp_path / "k.npz"
    run(["to-npz", ds.root, out, "--color", "keep"])
    np.testing.assert_array_equal(np.load(out)["trainXs"][0], la)
    ds.add_image("a/y.png", np.zeros((4, 4, 3), np.uint8))
    res = run(["to-npz", ds.root, out, "--color", "keep"], expect_rc=65)
    assert "channels" in res.stderr


@pytest.mark.parametrize("size", [(112, 112), (300, 200)])
def test_jpeg_draft_equals_pillow_draft(run, make_dataset, tmp_path, size):
    """--jpeg-draft decodes at 1/2, 1/4 or 1/8 scale as Pillow's `draft` does, then resizes."""
    ds = _photos_dataset(make_dataset)
    ds.add("c9/Portrait_6.jpg", H.FIXTURES / "jpeg/exif-orientation/Portrait_6.jpg")
    h, w = size
    d, m = _convert(run, tmp_path, ds.root, "--size", f"{h}x{w}", "--jpeg-draft")
    assert m["options"]["jpegDraft"] is True
    for i, f in enumerate(m["files"]):
        im = Image.open(ds.root / f["path"])
        im.draft("RGB", (w, h) if f.get("orientation", 1) < 5 else (h, w))
        assert im.size[0] < 1200  # the draft really scaled
        ref = np.asarray(ImageOps.exif_transpose(im).convert("RGB").resize((w, h), Image.BILINEAR))
        np.testing.assert_array_equal(d["trainXs"][i], ref)
    run(["verify", tmp_path / "o.npz", "--against", ds.root])


@pytest.mark.parametrize("filt", ["bilinear", "bicubic", "lanczos", "area"])
@pytest.mark.parametrize("fit", ["stretch", "crop"])
def test_alpha_images_resize_premultiplied_as_pillow(run, make_dataset, tmp_path, filt, fit):
    # Pillow resizes RGBA through RGBa (and LA through La): colour under transparent pixels
    # must not bleed into the neighbours. Random colour under alpha 0, 1, 7, 128, 254, 255.
    rng = np.random.default_rng(7)
    ds = make_dataset()
    images = {}
    for name, mode, ch in [("rgba/a.png", "RGBA", 4), ("rgba/b.png", "RGBA", 4)]:
        a = rng.integers(0, 256, (61, 47, ch), dtype=np.uint8)
        a[..., -1] = rng.choice(np.array([0, 1, 7, 128, 254, 255], np.uint8), (61, 47))
        ds.add_image(name, a)
        images[name] = Image.fromarray(a, mode)
    def same(got, ref, what):
        # Exact for stretch; a crop box's float arithmetic may put a few samples 1 apart (as for
        # RGB in test_resize_matches_pillow). Without premultiplying, differences reach ~250.
        diff = np.abs(got.astype(int) - np.asarray(ref).astype(int))
        if fit == "stretch":
            assert diff.max() == 0, (what, diff.max())
        else:
            assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (what, diff.max(), (diff > 0).mean())

    d, m = _convert(run, tmp_path, ds.root, "--size", "29x36", "--color", "rgba", "--filter", filt, "--fit", fit)
    for i, f in enumerate(m["files"]):
        im = images[f["path"]]
        ref = im.resize((36, 29), FILTERS[filt]) if fit == "stretch" else ImageOps.fit(im, (36, 29), FILTERS[filt])
        same(d["trainXs"][i], ref, f["path"])

    gray = rng.integers(0, 256, (40, 33, 2), dtype=np.uint8)
    gray[..., 1] = rng.choice(np.array([0, 3, 100, 255], np.uint8), (40, 33))
    ds2 = make_dataset()
    ds2.add_image("la/x.png", gray)
    d2, _ = _convert(run, tmp_path, ds2.root, "--size", "17x25", "--color", "keep", "--filter", filt, "--fit", fit)
    im = Image.fromarray(gray, "LA")
    ref = im.resize((25, 17), FILTERS[filt]) if fit == "stretch" else ImageOps.fit(im, (25, 17), FILTERS[filt])
    same(d2["trainXs"][0], ref, "la/x.png")


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_stretch_of_awkward_sizes_equals_pillow_exactly(run, make_dataset, tmp_path, mode):
    # 8-bit RGB and RGBA rows are resampled four lanes at a time, with RGB reading one byte past
    # each pixel: single rows and columns, the buffer's last pixel, up- and down-scaling, every
    # filter. Opaque RGBA, so the premultiplied path changes nothing.
    rng = np.random.default_rng(11)
    ch = len(mode)
    for k, (h, w) in enumerate([(1, 1), (1, 7), (7, 1), (3, 5), (33, 65), (2, 300)]):
        a = rng.integers(0, 256, (h, w, ch), dtype=np.uint8)
        if ch == 4:
            a[..., 3] = 255
        ds = make_dataset()
        ds.add_image("a/x.png", Image.fromarray(a, mode))
        for th, tw in [(1, 1), (5, 3), (17, 29), (100, 7)]:
            for name, filt in FILTERS.items():
                d, _ = _convert(run, tmp_path, ds.root, "--size", f"{th}x{tw}", "--filter", name, "--color", mode.lower())
                ref = np.asarray(Image.fromarray(a, mode).resize((tw, th), filt))
                np.testing.assert_array_equal(d["trainXs"][0], ref, err_msg=f"{mode} {h}x{w} -> {th}x{tw} {name}")
