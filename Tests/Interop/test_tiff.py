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
    if extras[:1] == (1,) and ref.dtype == np.uint8 and ref.shape[-1] in (2, 4):
        ref = H.unpremultiplied(ref)   # associated alpha, divided back as Pillow does
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
        # with alpha: --color rgba keeps them (gray replicated for gray+alpha; associated alpha divided back)
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


# --- issue 14, item 6: the remaining differences from Pillow -----------------------------------

def _one(run, make_dataset, tmp_path, src, *flags):
    ds = make_dataset()
    ds.add("t/" + src.name, src)
    out = tmp_path / "o.npz"
    run(["to-npz", ds.root, out, *flags])
    return H.load_npz(out)["trainXs"][0], H.load_json(H.npz_manifest_path(out))


@pytest.mark.parametrize("mode,photometric", [("RGBA", "rgb"), ("LA", "minisblack")])
def test_associated_alpha_is_divided_back_as_pillow_does(run, make_dataset, tmp_path, mode, photometric):
    import tifffile
    rng = np.random.default_rng(8)
    a = rng.integers(0, 256, (16, 24), dtype=np.uint8)
    a[0, :3] = (0, 255, 1)
    colours = 3 if mode == "RGBA" else 1
    c = (rng.integers(0, 256, (16, 24, colours)).astype(np.uint16) * a[..., None] // 255).astype(np.uint8)
    c[1, 0] = 200   # above its alpha: clipped at 255
    a[1, 0] = 90
    src = tmp_path / "assoc.tif"
    tifffile.imwrite(src, np.dstack([c, a]), photometric=photometric, extrasamples=["assocalpha"])
    got, _ = _one(run, make_dataset, tmp_path, src, "--color", "keep")
    H.assert_equal_pixels(got, H.pil_array(src, mode), f"associated alpha {mode}")
    assert not np.array_equal(got[..., :colours], c), "the case must change the colours"


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_ycbcr_not_in_jpeg_converts_as_libtiff(run, make_dataset, tmp_path, compression):
    """YCbCr outside JPEG goes through libtiff's RGBA interface: Pillow reads a deflated file the
    same way (exact), but unpacks an uncompressed one itself and converts it with its own
    arithmetic, which differs by at most one level (so Pillow differs from itself there)."""
    import tifffile
    rng = np.random.default_rng(9)
    src = tmp_path / "ycc.tif"
    tifffile.imwrite(src, rng.integers(16, 240, (12, 10, 3), dtype=np.uint8), photometric="ycbcr",
                     subsampling=(1, 1), compression=compression)
    got, _ = _one(run, make_dataset, tmp_path, src)
    ref = H.pil_array(src, "RGB")
    if compression:
        H.assert_equal_pixels(got, ref, "YCbCr")
    else:
        assert got.shape == ref.shape and np.abs(got.astype(int) - ref).max() <= 1


def test_void_sample_format_is_read_as_unsigned(run, make_dataset, tmp_path):
    """A gray 8-bit strip written by hand with SampleFormat 4 ("void", which tifffile will not
    write): the samples come out as the unsigned bytes stored."""
    import struct
    import tifffile
    pixels = np.arange(60, dtype=np.uint8).reshape(6, 10)
    tags = [(256, 10), (257, 6), (258, 8), (259, 1), (262, 1), (273, 0), (277, 1), (278, 6), (279, 60), (339, 4)]
    data_at = 8 + 2 + 12 * len(tags) + 4
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHII", tag, 4, 1, data_at) if tag == 273 else struct.pack("<HHIHH", tag, 3, 1, value, 0)
        for tag, value in tags) + struct.pack("<I", 0)
    src = tmp_path / "void.tif"
    src.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + pixels.tobytes())
    with tifffile.TiffFile(src) as t:
        assert t.pages[0].sampleformat == 4
        np.testing.assert_array_equal(t.asarray(), pixels)
    got, _ = _one(run, make_dataset, tmp_path, src)
    np.testing.assert_array_equal(got[..., 0], pixels)


def test_cielab_is_refused_by_name(run, make_dataset, tmp_path):
    import tifffile
    src = tmp_path / "lab.tif"
    tifffile.imwrite(src, np.zeros((4, 4, 3), np.uint8), photometric="cielab")
    ds = make_dataset()
    ds.add("t/lab.tif", src)
    res = run(["to-npz", ds.root, tmp_path / "o.npz"], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "lab.tif", "CIE L*a*b*")


def test_16bit_cmyk_is_narrowed_with_a_warning(run, make_dataset, tmp_path):
    import tifffile
    rng = np.random.default_rng(10)
    src = tmp_path / "cmyk16.tif"
    tifffile.imwrite(src, rng.integers(0, 65536, (5, 7, 4), dtype=np.uint16), photometric="separated")
    got, manifest = _one(run, make_dataset, tmp_path, src)
    assert got.dtype == np.uint8
    assert "16-bit CMYK narrowed to 8 bits" in manifest["files"][0]["warning"]


def test_16bit_palette_expands_like_an_8bit_one(run, make_dataset, tmp_path):
    """Pillow cannot open a palette of 16-bit indices; tifffile's indices and colormap are the
    reference, narrowed as for 8-bit palettes. Its 393 KB colormap also lies past the header
    pass's 16 KiB prefix."""
    import tifffile
    rng = np.random.default_rng(12)
    idx = rng.integers(0, 65536, (5, 6), dtype=np.uint16)
    cmap = rng.integers(0, 65536, (3, 65536), dtype=np.uint16)
    src = tmp_path / "p16.tif"
    tifffile.imwrite(src, idx, photometric="palette", colormap=cmap)
    got, _ = _one(run, make_dataset, tmp_path, src)
    np.testing.assert_array_equal(got, np.stack([cmap[c][idx] >> 8 for c in range(3)], axis=-1).astype(np.uint8))


def test_palette_whose_colormap_lies_past_the_prefix_is_not_read_as_gray(run, make_dataset, tmp_path):
    """The directory is at the start, the colormap after 40 KB of pixels, past the header pass's
    16 KiB prefix: the header is read from the file. (With a colormap too large to fit in what
    libtiff takes for the file, the 393 KB one above, libtiff ignores the tag with a warning and
    calls the image gray: that header, read from the prefix, planned a gray uint16 tensor.)"""
    import struct
    w = h = 200
    rng = np.random.default_rng(13)
    pixels = rng.integers(0, 256, (h, w), dtype=np.uint8)
    cmap = rng.integers(0, 65536, (3, 256), dtype=np.uint16)
    tags = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 3), (273, 4, 1, None),
            (277, 3, 1, 1), (278, 3, 1, h), (279, 4, 1, w * h), (320, 3, 768, None)]
    data_at = 8 + 2 + 12 * len(tags) + 4
    cmap_at = data_at + w * h
    entries = b""
    for tag, typ, count, value in tags:
        value = data_at if tag == 273 else cmap_at if tag == 320 else value
        entries += struct.pack("<HHI", tag, typ, count) + (struct.pack("<HH", value, 0) if typ == 3 and count == 1
                                                           else struct.pack("<I", value))
    src = tmp_path / "late-colormap.tif"
    src.write_bytes(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(tags)) + entries + struct.pack("<I", 0)
                    + pixels.tobytes() + cmap.astype("<u2").tobytes())
    got, _ = _one(run, make_dataset, tmp_path, src)
    H.assert_equal_pixels(got, H.pil_array(src, "RGB"), "palette with a late colormap")
