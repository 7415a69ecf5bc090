"""--size (bilinear, antialiased like Pillow), --color auto/gray/rgb/rgba, and the uint8/uint16 rule."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import interop_helpers as H


def _convert(run, root, tmp_path, *flags):
    out = tmp_path / "o.npz"
    run(["to-npz", root, out, *flags])
    arrays = H.load_npz(out)
    manifest = H.load_json(H.npz_manifest_path(out))
    H.check_manifest(manifest, arrays, root)
    return arrays, manifest


def _pil_resized(path, w, h, mode="RGB"):
    with Image.open(path) as im:
        a = np.asarray(im.convert(mode).resize((w, h), Image.Resampling.BILINEAR))
    return a[..., None] if a.ndim == 2 else a


def _assert_close(got, ref, what, max_diff=1, mean_diff=0.1):
    assert got.shape == ref.shape, f"{what}: {got.shape} vs {ref.shape}"
    d = np.abs(got.astype(np.int64) - ref.astype(np.int64))
    assert d.max() <= max_diff, f"{what}: max abs diff {d.max()} > {max_diff}"
    assert d.mean() < mean_diff, f"{what}: mean abs diff {d.mean():.4f} >= {mean_diff}"


def test_resize_samples_32x48(run, samples_root, tmp_path):
    arrays, manifest = _convert(run, samples_root, tmp_path, "--size", "32x48")
    xs = arrays["trainXs"]
    assert xs.shape == (len(manifest["files"]), 32, 48, 3) and xs.dtype == np.uint8
    for i, f in enumerate(manifest["files"]):
        _assert_close(xs[i], _pil_resized(samples_root / f["path"], 48, 32), f["path"])


@pytest.mark.parametrize("size", [(20, 30), (64, 48), (7, 5)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_resize_mixed_sizes_against_pillow(run, make_dataset, tmp_path, size):
    """Different input sizes are fine with --size; down- and up-scaling both follow Pillow."""
    h, w = size
    rng = np.random.default_rng(5)
    ds = make_dataset()
    # smooth-ish content so that a 1-unit rounding difference is the only tolerated deviation
    y, x = np.mgrid[0:50, 0:70]
    smooth = np.stack([(x * 3) % 256, (y * 5) % 256, ((x + y) * 2) % 256], -1).astype(np.uint8)
    ds.add_image("a/smooth.png", smooth)
    ds.add_image("a/noise.png", rng.integers(0, 256, (33, 41, 3), dtype=np.uint8))
    ds.add_image("b/gray.png", rng.integers(0, 256, (16, 12), dtype=np.uint8))
    arrays, manifest = _convert(run, ds.root, tmp_path, "--size", f"{h}x{w}")
    xs = arrays["trainXs"]
    assert xs.shape == (3, h, w, 3)
    for i, f in enumerate(manifest["files"]):
        _assert_close(xs[i], _pil_resized(ds.root / f["path"], w, h), f["path"])


def test_resize_gray_output(run, make_dataset, tmp_path):
    rng = np.random.default_rng(9)
    ds = make_dataset()
    ds.add_image("g/a.png", rng.integers(0, 256, (40, 30), dtype=np.uint8))
    ds.add_image("g/b.png", rng.integers(0, 256, (25, 50), dtype=np.uint8))
    arrays, manifest = _convert(run, ds.root, tmp_path, "--size", "10x12")
    xs = arrays["trainXs"]
    assert xs.shape == (2, 10, 12, 1)
    for i, f in enumerate(manifest["files"]):
        _assert_close(xs[i], _pil_resized(ds.root / f["path"], 12, 10, "L"), f["path"])


def test_auto_gray_only_gives_one_channel(run, make_dataset, tmp_path):
    rng = np.random.default_rng(2)
    ds = make_dataset()
    ds.add_image("c/l.png", rng.integers(0, 256, (6, 5), dtype=np.uint8))
    ds.add_image("c/la.png", Image.fromarray(rng.integers(0, 256, (6, 5, 2), dtype=np.uint8), "LA"))
    ds.add_image("c/l.jpg", rng.integers(0, 256, (6, 5), dtype=np.uint8))
    arrays, manifest = _convert(run, ds.root, tmp_path)
    xs = arrays["trainXs"]
    assert xs.shape == (3, 6, 5, 1) and xs.dtype == np.uint8
    for i, f in enumerate(manifest["files"]):
        H.assert_equal_pixels(xs[i], H.pil_array(ds.root / f["path"], "L"), f["path"])


def test_auto_mixed_gives_three_channels(run, make_dataset, tmp_path):
    rng = np.random.default_rng(4)
    ds = make_dataset()
    ds.add_image("c/1gray.png", rng.integers(0, 256, (6, 5), dtype=np.uint8))
    ds.add_image("c/2rgba.png", rng.integers(0, 256, (6, 5, 4), dtype=np.uint8))
    ds.add_image("c/3pal.png", Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).quantize(16))
    arrays, manifest = _convert(run, ds.root, tmp_path)
    xs = arrays["trainXs"]
    assert xs.shape == (3, 6, 5, 3) and xs.dtype == np.uint8
    for i, f in enumerate(manifest["files"]):
        H.assert_equal_pixels(xs[i], H.pil_array(ds.root / f["path"], "RGB"), f["path"])


def test_color_gray_uses_pillow_L_formula(run, make_dataset, tmp_path):
    rng = np.random.default_rng(6)
    ds = make_dataset()
    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    rgb[0, :8] = [[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 1, 1], [128, 64, 32], [254, 1, 127]]
    src = ds.add_image("c/rgb.png", rgb)
    src2 = ds.add_image("c/rgba.png", rng.integers(0, 256, (32, 32, 4), dtype=np.uint8))
    arrays, _ = _convert(run, ds.root, tmp_path, "--color", "gray")
    xs = arrays["trainXs"]
    assert xs.shape == (2, 32, 32, 1)
    H.assert_equal_pixels(xs[0], H.pil_array(src, "L"), "rgb.png vs convert('L')")
    H.assert_equal_pixels(xs[0][..., 0], H.pil_l_from_rgb(rgb), "rgb.png vs the L formula")
    H.assert_equal_pixels(xs[1], H.pil_array(src2, "L"), "rgba.png vs convert('L')")


def test_color_rgb_and_rgba(run, make_dataset, tmp_path):
    rng = np.random.default_rng(8)
    ds = make_dataset()
    g = ds.add_image("c/1g.png", rng.integers(0, 256, (5, 7), dtype=np.uint8))
    rgb = ds.add_image("c/2rgb.png", rng.integers(0, 256, (5, 7, 3), dtype=np.uint8))
    rgba = ds.add_image("c/3rgba.png", rng.integers(0, 256, (5, 7, 4), dtype=np.uint8))
    arrays, _ = _convert(run, ds.root, tmp_path, "--color", "rgb")
    xs = arrays["trainXs"]
    assert xs.shape == (3, 5, 7, 3)
    for i, p in enumerate((g, rgb, rgba)):
        H.assert_equal_pixels(xs[i], H.pil_array(p, "RGB"), f"{p.name} --color rgb")
    arrays, _ = _convert(run, ds.root, tmp_path, "--color", "rgba")
    xs = arrays["trainXs"]
    assert xs.shape == (3, 5, 7, 4)
    for i, p in enumerate((g, rgb, rgba)):
        H.assert_equal_pixels(xs[i], H.pil_array(p, "RGBA"), f"{p.name} --color rgba")
    assert (xs[0, ..., 3] == 255).all() and (xs[1, ..., 3] == 255).all()


def test_16bit_and_8bit_gray_mix_is_uint16_times_257(run, make_dataset, tmp_path):
    rng = np.random.default_rng(12)
    g16 = rng.integers(0, 65536, (6, 9), dtype=np.uint16)
    g16[0, :3] = [0, 1, 65535]
    g8 = rng.integers(0, 256, (6, 9), dtype=np.uint8)
    g8[0, :3] = [0, 1, 255]
    ds = make_dataset()
    p16 = ds.add_png16("c/a16.png", g16)
    ds.add_image("c/b8.png", g8)
    assert H.png_info(p16)["bit_depth"] == 16
    arrays, _ = _convert(run, ds.root, tmp_path)
    xs = arrays["trainXs"]
    assert xs.dtype == np.uint16 and xs.shape == (2, 6, 9, 1)
    H.assert_equal_pixels(xs[0][..., 0], g16, "16-bit gray kept as is")
    H.assert_equal_pixels(xs[1][..., 0], g8.astype(np.uint16) * 257, "8-bit gray x257")


def test_16bit_and_8bit_rgb_mix_rgba(run, make_dataset, tmp_path):
    rng = np.random.default_rng(13)
    c16 = rng.integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    c8 = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    ds = make_dataset()
    ds.add_png16("c/a16.png", c16)
    ds.add_image("c/b8.png", c8)
    ds.add_image("c/c8.jpg", c8, quality=95)
    arrays, manifest = _convert(run, ds.root, tmp_path)
    xs = arrays["trainXs"]
    assert xs.dtype == np.uint16 and xs.shape == (3, 4, 5, 3)
    H.assert_equal_pixels(xs[0], c16, "16-bit RGB")
    H.assert_equal_pixels(xs[1], c8.astype(np.uint16) * 257, "8-bit PNG x257")
    H.assert_equal_pixels(xs[2], H.pil_array(ds.root / "c/c8.jpg", "RGB").astype(np.uint16) * 257, "JPEG x257")
    arrays, _ = _convert(run, ds.root, tmp_path, "--color", "rgba")
    xs = arrays["trainXs"]
    assert xs.shape == (3, 4, 5, 4)
    assert (xs[..., 3] == 65535).all(), "missing alpha must be opaque 65535 in uint16 output"
    H.assert_equal_pixels(xs[0][..., :3], c16, "16-bit RGB under rgba")
