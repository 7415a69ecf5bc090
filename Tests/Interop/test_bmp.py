"""BMP files made here, each converted alone, against Pillow 13 (`BmpImagePlugin`): the corners the
fixtures (Tests/Fixtures/bmp, judged in test_fidelity.py) do not reach.

  PILLOW   equal to Pillow's decode (`Image.open` + `convert`: palette -> RGB, '1' -> L);
  REFUSED  Pillow refuses it and imgconv exits 65 with one line naming the file;
  OWN      imgconv departs from Pillow on purpose (Sources/ImgConvCodecs/BMPDecoder.swift says
           why): the expected pixels, or the refusal, are given here.
"""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
import pytest

import interop_helpers as H

PILLOW, REFUSED, OWN = "pillow", "refused", "own"


def bmp(width, height, bits, pixels, *, compression=0, header=40, masks=(), palette=(), colours=None,
        offset=None, planes=1, bare=False, gap=0) -> bytes:
    """A BMP: 14-byte file header (none if `bare`), info header of `header` bytes, the masks (after
    a 40-byte header, inside a longer one), the palette (RGB triples written BGR0, or BGR for the
    12-byte OS/2 1.x header), `gap` zero bytes, the pixel data. `offset` overrides the pixel
    offset field."""
    if header == 12:
        info = struct.pack("<IHHHH", 12, width, height, planes, bits)
        table = b"".join(bytes((b, g, r)) for r, g, b in palette)
    else:
        n = len(palette) if colours is None else colours
        info = struct.pack("<IiiHHIIiiII", header, width, height, planes, bits, compression, len(pixels), 0, 0, n, 0)
        if header > 40:
            info += b"".join(struct.pack("<I", m) for m in masks)
        info = info[:header].ljust(header, b"\0")
        table = b"".join(bytes((b, g, r, 0)) for r, g, b in palette)
    extra = b"".join(struct.pack("<I", m) for m in masks) if header == 40 else b""
    body = info + extra + table + bytes(gap) + pixels
    if bare:
        return body
    start = 14 + len(body) - len(pixels) if offset is None else offset
    return b"BM" + struct.pack("<IHHI", 14 + len(body), 0, 0, start) + body


COLOURS = [(i * 37 % 256, 255 - i * 11 % 256, i * 5 % 256) for i in range(256)]
RAMP16 = [(i, i, i) for i in range(16)]
BW = [(0, 0, 0), (255, 255, 255)]


def rows(a) -> np.ndarray:
    a = np.asarray(a, np.uint8)
    return a[..., None] if a.ndim == 2 else a


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


# (name, bytes, kind, expected pixels for OWN accepted files, why)
CASES = [
    # --- RLE, as Pillow's BmpRleDecoder -------------------------------------------------------
    ("rle8-runs-eol-delta-absolute", bmp(6, 4, 8, bytes([
        3, 1, 0, 0,                      # run of 3, end of line (index 0 to the row's end)
        0, 2, 2, 1,                      # delta: 2 right, 1 up
        0, 5, 1, 2, 3, 4, 5, 0,          # absolute 5 (odd: a pad byte) running into the next row
        9, 7,                            # run of 9 clamped to the row (x is past it: nothing)
        0, 0, 6, 3, 0, 0, 2, 250, 0, 1]), compression=1, palette=COLOURS[:8]), PILLOW, None, ""),
    ("rle8-odd-pixel-offset", bmp(5, 2, 8, bytes([0, 3, 1, 2, 3, 0, 0, 5, 4, 0, 1]), compression=1,
                                   palette=COLOURS[:8], gap=1),
     PILLOW, None, "word alignment follows the file position (even here), not the stream's (odd)"),
    ("rle4-alternating-absolute-top-down", bmp(7, -3, 4, bytes([
        7, 0x12, 0, 0, 0, 5, 0x34, 0x56, 0x70, 0, 0, 0, 2, 0x77, 0, 2, 1, 0, 4, 0x65, 0, 1]),
        compression=2, palette=COLOURS[:16]), PILLOW, None, ""),
    ("rle8-delta-past-the-end", bmp(4, 3, 8, bytes([2, 3, 0, 2, 200, 200]), compression=1, palette=COLOURS[:4]),
     PILLOW, None, "a delta beyond the image fills it with index 0"),
    ("rle8-ends-early", bmp(4, 3, 8, bytes([4, 1, 0, 0, 0, 1]), compression=1, palette=COLOURS[:4]), REFUSED, None,
     "Pillow: not enough image data"),
    ("rle4-cut-in-absolute-run", bmp(8, 2, 4, bytes([0, 8, 0x12, 0x34]), compression=2, palette=COLOURS[:16]),
     REFUSED, None, ""),
    # --- palettes and offsets --------------------------------------------------------------------
    ("pal8-index-past-palette", bmp(3, 2, 8, bytes([0, 1, 7, 0, 2, 200, 1, 0]), palette=COLOURS[:3]), PILLOW, None,
     "indices past the palette are black"),
    ("pal8-offset-zero", bmp(3, 1, 8, bytes([2, 1, 0, 0]), palette=COLOURS[:3], offset=0), PILLOW, None,
     "offset 0: pixels after the palette"),
    ("pal8-offset-right-after-header", bmp(3, 1, 8, bytes([2, 1, 0, 0]), palette=COLOURS[:3], offset=54), PILLOW, None,
     "Pillow adds the palette to an offset pointing right after the header"),
    ("pal1-black-only", bmp(8, 1, 1, bytes([0x55, 0, 0, 0]), palette=[(0, 0, 0)]), PILLOW, None,
     "mode 1: index 1 white"),
    ("pal1-one-colour", bmp(8, 1, 1, bytes([0x55, 0, 0, 0]), palette=[(9, 8, 7)]), PILLOW, None, ""),
    ("pal8-gray-ramp", bmp(4, 1, 8, bytes([0, 9, 200, 255]), palette=[(i, i, i) for i in range(256)]), PILLOW, None,
     "mode L"),
    ("pal8-last-row-unpadded", bmp(3, 2, 8, bytes([0, 1, 2, 0, 2, 1, 0]), palette=COLOURS[:3]), PILLOW, None,
     "the last row needs no padding"),
    ("core-short-palette", bmp(3, 1, 8, bytes([0, 1, 2, 0]), header=12, palette=COLOURS[:3]), PILLOW, None,
     "OS/2 1.x reads 256 entries whatever is stored"),
    ("core-24-bit", bmp(2, 2, 24, bytes(range(16)), header=12), PILLOW, None, ""),
    ("bare-dib-8", bmp(3, 2, 8, bytes([0, 1, 2, 0, 2, 1, 0, 0]), palette=COLOURS[:3], bare=True), PILLOW, None,
     "Pillow's DibImageFile"),
    ("bare-dib-24-top-down", bmp(2, -2, 24, bytes(range(16)), bare=True), PILLOW, None, ""),
    ("pal8-300-colours", bmp(2, 1, 8, bytes([0, 1, 0, 0]), palette=COLOURS + COLOURS[:44]), REFUSED, None,
     "Pillow: invalid palette size"),
    ("pal8-70000-colours", bmp(2, 1, 8, bytes([0, 1, 0, 0]), palette=COLOURS[:2], colours=70000), REFUSED, None, ""),
    ("pal8-pixels-cut", bmp(3, 2, 8, bytes([0, 1, 2, 0, 2, 1]), palette=COLOURS[:3]), REFUSED, None,
     "Pillow: image file is truncated"),
    # --- 16/24/32 bits ---------------------------------------------------------------------------
    ("rgb16-555-bottom-bit-set", bmp(2, 1, 16, bytes([0xFF, 0xFF, 0x21, 0x84])), PILLOW, None,
     "bit 15 ignored; v * 255 // 31"),
    ("rgb16-565-alpha-mask-ignored", bmp(2, 1, 16, bytes([0x21, 0x84, 0xFF, 0xFF]), compression=3, header=56,
                                         masks=(0xF800, 0x7E0, 0x1F, 0xFFFF)), PILLOW, None, ""),
    ("rgb32-zero-masks-bgra", bmp(1, 2, 32, bytes([1, 2, 3, 4, 5, 6, 7, 8]), compression=3, header=56,
                                  masks=(0, 0, 0, 0)), PILLOW, None, "all-zero masks: Pillow reads BGRA"),
    ("rgb32-v5-bi-rgb-alpha-mask", bmp(1, 1, 32, bytes([1, 2, 3, 4]), header=124,
                                       masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000)), PILLOW, None,
     "BI_RGB: no alpha"),
    ("rgb32-abgr", bmp(2, 1, 32, bytes(range(8)), compression=3, header=108,
                       masks=(0xFF000000, 0xFF0000, 0xFF00, 0xFF)), PILLOW, None, ""),
    ("rgb24-cut", bmp(2, 2, 24, bytes(range(13))), REFUSED, None, ""),
    ("two-bit", bmp(4, 1, 2, bytes([0x1B, 0, 0, 0]), palette=COLOURS[:4]), REFUSED, None,
     "Pillow: Unsupported BMP pixel depth (2)"),
    ("jpeg-inside", bmp(1, 1, 24, b"\xff\xd8\xff\xe0", compression=4), REFUSED, None, ""),
    ("png-inside", bmp(1, 1, 24, b"\x89PNG", compression=5), REFUSED, None, ""),
    ("header-of-20-bytes", bmp(1, 1, 24, bytes(4), header=20), REFUSED, None, ""),
    ("sixty-four-bit", bmp(1, 1, 64, bytes(8)), REFUSED, None, ""),
    # --- imgconv's own choices -------------------------------------------------------------------
    ("rgb16-4444", bmp(2, 1, 16, bytes([0x5A, 0xF3, 0xFF, 0x0F]), compression=3, header=56,
                       masks=(0xF00, 0xF0, 0xF, 0xF000)), OWN,
     rows([[[51, 85, 170], [255, 255, 255]]]), "Pillow refuses 4-4-4-4; 4-bit fields x17, no alpha at 16 bits"),
    ("rgb32-2-10-10-10-alphabitfields", bmp(1, 1, 32, u32(2 << 30 | 1023 << 20 | 512 << 10 | 3), compression=6,
                                            masks=(0x3FF00000, 0xFFC00, 0x3FF, 0xC0000000)), OWN,
     rows([[[255, 127, 0, 170]]]), "Pillow refuses ALPHABITFIELDS; v * 255 // (2**n - 1)"),
    ("rgb32-gbr-order", bmp(1, 1, 32, u32(0x11223344), compression=3, masks=(0xFF00, 0xFF, 0xFF0000)), OWN,
     rows([[[0x33, 0x44, 0x22]]]), "Pillow refuses the layout"),
    ("os2-v2-16-byte-header", bmp(2, 1, 24, bytes([1, 2, 3, 4, 5, 6, 0, 0]), header=16), OWN,
     rows([[[3, 2, 1], [6, 5, 4]]]), "Pillow refuses the short OS/2 2.x header"),
    ("pal4-gray-ramp", bmp(3, 1, 4, bytes([0x1F, 0x70, 0, 0]), palette=RAMP16), OWN, rows([[1, 15, 7]]),
     "Pillow reads the bytes as 8-bit gray (0x1F, 0x70, 0)"),
    ("pal8-black-white", bmp(4, 1, 8, bytes([0, 1, 1, 0]), palette=BW), OWN, rows([[0, 255, 255, 0]]),
     "Pillow reads 8-bit indices as 1-bit"),
    ("planes-2", bmp(1, 1, 24, bytes(4), planes=2), OWN, None, "refused: planes must be 1 (Pillow ignores it)"),
    ("rle8-with-4-bits", bmp(4, 1, 4, bytes([4, 1, 0, 1]), compression=1, palette=COLOURS[:16]), OWN, None,
     "refused: RLE8 needs 8 bits per pixel"),
    ("offset-inside-header", bmp(1, 1, 24, bytes(4), offset=20), OWN, None, "refused: pixels inside the header"),
]


def _pillow(data: bytes):
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                target = {"P": "RGB", "1": "L"}.get(im.mode)
                return rows(np.asarray(im.convert(target) if target else im)), None
    except Exception as e:  # noqa: BLE001 - any failure is a refusal
        return None, f"{type(e).__name__}: {e}"


def _ours(run, make_dataset, tmp_path, name, data, color):
    ds = make_dataset()
    ds.add_bytes(f"c/{name}.bmp", data)
    out = tmp_path / f"{name}.npz"
    res = run(["to-npz", ds.root, out, "--color", color, "-q"], expect_rc=(0, H.EX_DATAERR))
    if res.returncode != 0:
        H.assert_one_line_error(res, f"c/{name}.bmp")
        assert not out.exists()
        return None
    return H.load_npz(out)["trainXs"][0]


COLOR = {1: "gray", 3: "rgb", 4: "rgba"}


@pytest.mark.parametrize("name,data,kind,expected,why", CASES, ids=[c[0] for c in CASES])
def test_bmp_case(run, make_dataset, tmp_path, name, data, kind, expected, why):
    ref, err = _pillow(data)
    if kind == PILLOW:
        assert ref is not None, f"Pillow refuses {name}: {err}"
        got = _ours(run, make_dataset, tmp_path, name, data, COLOR[ref.shape[-1]])
        assert got is not None, f"imgconv refuses {name}, Pillow reads {ref.shape}"
        H.assert_equal_pixels(got, ref, name)
    elif kind == REFUSED:
        assert ref is None, f"Pillow reads {name} ({ref.shape}): not a shared refusal"
        assert _ours(run, make_dataset, tmp_path, name, data, "rgb") is None, f"imgconv reads {name}"
    else:
        if expected is None:
            assert _ours(run, make_dataset, tmp_path, name, data, "rgb") is None, f"imgconv reads {name} ({why})"
        else:
            got = _ours(run, make_dataset, tmp_path, name, data, COLOR[expected.shape[-1]])
            assert got is not None, f"imgconv refuses {name} ({why})"
            H.assert_equal_pixels(got, expected, f"{name} ({why})")
        # an OWN case must really depart from Pillow, else it belongs in PILLOW or REFUSED
        assert ref is None or expected is None or ref.shape != expected.shape or not np.array_equal(ref, expected), \
            f"{name}: Pillow agrees, classify it as {PILLOW}"


def test_dib_named_files_and_bare_dibs_are_bmp(run, make_dataset, tmp_path):
    """'.dib' is only a name: a BMP called x.dib and a DIB without the file header are both read
    (recognised from their bytes), with Pillow's pixels."""
    whole = bmp(3, 2, 8, bytes([0, 1, 2, 0, 2, 1, 0, 0]), palette=COLOURS[:3])
    bare = whole[14:]
    ds = make_dataset()
    ds.add_bytes("c/a.dib", whole)
    ds.add_bytes("c/b.dib", bare)
    out = tmp_path / "d.npz"
    run(["to-npz", ds.root, out, "-q"])
    manifest = H.load_json(H.npz_manifest_path(out))
    arrays = H.load_npz(out)
    H.check_manifest(manifest, arrays, ds.root)
    assert [f["path"] for f in manifest["files"]] == ["c/a.dib", "c/b.dib"]
    assert [f["format"] for f in manifest["files"]] == ["bmp", "bmp"]
    ref, _ = _pillow(whole)
    H.assert_equal_pixels(arrays["trainXs"][0], ref, "a.dib")
    H.assert_equal_pixels(arrays["trainXs"][1], ref, "b.dib")
