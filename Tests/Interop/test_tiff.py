"""TIFF fixtures in the contract's scope (8/16-bit unsigned gray, gray+alpha, RGB, RGBA; strips,
tiles, separate planes) against tifffile, exactly. Other TIFF flavours are not asserted on."""

from __future__ import annotations

import numpy as np
import pytest

import interop_helpers as H

BASE = H.FIXTURES / "tiff"
FILES = H.supported_tiff_files()
MISSING = "Tests/Fixtures/tiff is missing or has no 8/16-bit gray/RGB(A) file"

EXTRA_UNSPECIFIED = 0  # TIFF ExtraSamples: 0 unspecified, 1 associated alpha, 2 unassociated alpha


def _reference(src):
    try:
        ref = H.tifffile_array(src)
    except Exception as e:  # e.g. LZW without imagecodecs, or a codec stricter than libtiff's
        ref = _pillow_fallback(src)
        if ref is None:
            pytest.skip(f"tifffile cannot decode {src.name} here ({e}) and Pillow is no exact stand-in")
    extras = H.tiff_extrasamples(src)
    if EXTRA_UNSPECIFIED in extras:
        pytest.skip(f"{src.name}: extra sample of unspecified meaning; the contract says nothing about it")
    return ref


def _pillow_fallback(src):
    """Pillow (libtiff inside) as the reference when tifffile fails, for plain 8-bit L/RGB/RGBA only."""
    from PIL import Image
    try:
        with Image.open(src) as im:
            if im.mode not in ("L", "RGB", "RGBA"):
                return None
            a = np.asarray(im)
    except Exception:
        return None
    return a[..., None] if a.ndim == 2 else a


def _convert_one(run, make_dataset, tmp_path, src, *flags):
    ds = make_dataset()
    ds.add(f"t/{src.name}", src)
    out = tmp_path / "t.npz"
    run(["to-npz", ds.root, out, *flags])
    arrays = H.load_npz(out)
    H.check_manifest(H.load_json(H.npz_manifest_path(out)), arrays, ds.root)
    return arrays["trainXs"][0]


@pytest.mark.parametrize("src", H.params_or_skip(FILES, MISSING, lambda p: H.fixture_id(p, H.FIXTURES)))
def test_tiff_matches_tifffile(run, make_dataset, tmp_path, src):
    ref = _reference(src)
    spp = ref.shape[-1]
    # --color auto: gray and gray+alpha -> 1 channel (gray), RGB and RGBA -> 3 channels (alpha dropped)
    got = _convert_one(run, make_dataset, tmp_path, src)
    assert got.dtype == ref.dtype, f"dtype {got.dtype}, tifffile says {ref.dtype}"
    expected = ref[..., :1] if spp in (1, 2) else ref[..., :3]
    H.assert_equal_pixels(got, expected, f"{src.name} --color auto")
    if spp in (2, 4):
        # with alpha: --color rgba keeps the stored samples (gray replicated for gray+alpha)
        got = _convert_one(run, make_dataset, tmp_path, src, "--color", "rgba")
        expected = ref if spp == 4 else ref[..., [0, 0, 0, 1]]
        H.assert_equal_pixels(got, expected, f"{src.name} --color rgba")


def test_tiff_selection_covers_the_contract():
    """The fixture set must exercise 8 and 16 bits, gray and RGB, tiles and separate planes."""
    if not FILES:
        pytest.skip(MISSING)
    import tifffile
    seen = set()
    for p in FILES:
        with tifffile.TiffFile(p) as tf:
            pg = tf.pages[0]
            seen.add(f"bps{pg.bitspersample}")
            seen.add("gray" if pg.samplesperpixel in (1, 2) else "rgb")
            if pg.is_tiled:
                seen.add("tiled")
            if int(pg.planarconfig) == 2:
                seen.add("planar")
    missing = {"bps8", "bps16", "gray", "rgb", "tiled", "planar"} - seen
    assert not missing, f"TIFF fixtures lack: {sorted(missing)}"


def test_tiff_16bit_gray_and_8bit_rgb_mix(run, make_dataset, tmp_path):
    """uint16 output when any input is 16-bit; 8-bit samples scaled by 257 (TIFF written by tifffile)."""
    import tifffile
    rng = np.random.default_rng(3)
    g16 = rng.integers(0, 65536, (8, 8), dtype=np.uint16)
    rgb8 = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    ds = make_dataset()
    (ds.root / "a").mkdir()
    tifffile.imwrite(ds.root / "a" / "g16.tif", g16, photometric="minisblack")
    tifffile.imwrite(ds.root / "a" / "rgb8.tif", rgb8, photometric="rgb", tile=None)
    out = tmp_path / "m.npz"
    run(["to-npz", ds.root, out])
    xs = H.load_npz(out)["trainXs"]
    assert xs.dtype == np.uint16 and xs.shape == (2, 8, 8, 3)
    H.assert_equal_pixels(xs[0], np.repeat(g16[..., None], 3, axis=-1), "g16.tif as RGB")
    H.assert_equal_pixels(xs[1], rgb8.astype(np.uint16) * 257, "rgb8.tif scaled by 257")
