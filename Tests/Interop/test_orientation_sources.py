"""Where the orientation comes from, as Pillow's `ImageOps.exif_transpose` finds it (issue 14,
item 6): a PNG `eXIf` chunk before or after the image data, ImageMagick's "Raw profile type exif"
text chunk (tEXt, zTXt, iTXt), and XMP's `tiff:Orientation` (a PNG text chunk "XML:com.adobe.xmp", JPEG
APP1 XMP) when there is no EXIF orientation. Each file is made here and judged against Pillow.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

import interop_helpers as H


def exif_block(orientation: int | None) -> bytes:
    """A big-endian TIFF-structured EXIF block whose IFD0 holds Orientation (or only Software)."""
    entries = []
    if orientation is not None:
        entries.append(struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0))
    entries.append(struct.pack(">HHI4s", 0x0131, 2, 4, b"imc\x00"))
    return b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", len(entries)) + b"".join(entries) + b"\x00" * 4


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def raw_profile(data: bytes) -> bytes:
    digits = data.hex()
    lines = [digits[i:i + 72] for i in range(0, len(digits), 72)]
    return ("\nexif\n%8d\n" % len(data) + "\n".join(lines) + "\n").encode()


def xmp(orientation: int, attribute: bool = True) -> bytes:
    inner = (f'<rdf:Description tiff:Orientation="{orientation}"/>' if attribute
             else f"<rdf:Description><tiff:Orientation>{orientation}</tiff:Orientation></rdf:Description>")
    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            'xmlns:tiff="http://ns.adobe.com/tiff/1.0/">' + inner + "</rdf:RDF></x:xmpmeta>").encode()


def base_png() -> bytes:
    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (4, 7, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def png_with(before_idat: list[bytes], after_idat: list[bytes], padding: int = 0) -> bytes:
    """The base PNG with chunks inserted before its first IDAT and before IEND; `padding` bytes of
    a private ancillary chunk before IDAT push the later chunks past the header pass's 16 KiB."""
    data = base_png()
    idat = data.index(b"IDAT") - 4
    iend = data.index(b"IEND") - 4
    pad = [chunk(b"prVt", b"\x00" * padding)] if padding else []
    return data[:idat] + b"".join(pad + before_idat) + data[idat:iend] + b"".join(after_idat) + data[iend:]


def itxt(keyword: str, text: bytes, compressed: bool = False) -> bytes:
    body = text if not compressed else zlib.compress(text)
    return chunk(b"iTXt", keyword.encode() + b"\x00" + bytes([int(compressed), 0]) + b"\x00\x00" + body)


CASES = {
    "exif-before-idat": lambda: png_with([chunk(b"eXIf", exif_block(6))], []),
    "exif-after-idat": lambda: png_with([], [chunk(b"eXIf", exif_block(8))]),
    "exif-after-idat-past-16k": lambda: png_with([], [chunk(b"eXIf", exif_block(5))], padding=40_000),
    "raw-profile-text": lambda: png_with([chunk(b"tEXt", b"Raw profile type exif\x00" + raw_profile(b"Exif\x00\x00" + exif_block(3)))], []),
    "raw-profile-ztxt": lambda: png_with([chunk(b"zTXt", b"Raw profile type exif\x00\x00" + zlib.compress(raw_profile(exif_block(6))))], []),
    "raw-profile-itxt-compressed": lambda: png_with([itxt("Raw profile type exif", raw_profile(exif_block(7)), compressed=True)], []),
    "xmp-attribute": lambda: png_with([itxt("XML:com.adobe.xmp", xmp(6))], []),
    "xmp-element-after-idat": lambda: png_with([], [itxt("XML:com.adobe.xmp", xmp(8, attribute=False))]),
    "exif-without-tag-then-xmp": lambda: png_with([chunk(b"eXIf", exif_block(None)), itxt("XML:com.adobe.xmp", xmp(6))], []),
    "exif-tag-wins-over-xmp": lambda: png_with([chunk(b"eXIf", exif_block(3)), itxt("XML:com.adobe.xmp", xmp(6))], []),
    "xmp-in-text": lambda: png_with([chunk(b"tEXt", b"XML:com.adobe.xmp\x00" + xmp(6))], []),
}


def jpeg_with(segments: list[bytes]) -> bytes:
    rng = np.random.default_rng(4)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (16, 40, 3), dtype=np.uint8)).save(buf, "JPEG", quality=95)
    data = buf.getvalue()
    return data[:2] + b"".join(b"\xff\xe1" + struct.pack(">H", len(s) + 2) + s for s in segments) + data[2:]


XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
JPEG_CASES = {
    "jpeg-xmp-only": lambda: jpeg_with([XMP_HEADER + xmp(6)]),
    "jpeg-exif-without-tag-then-xmp": lambda: jpeg_with([b"Exif\x00\x00" + exif_block(None), XMP_HEADER + xmp(8)]),
    "jpeg-exif-wins-over-xmp": lambda: jpeg_with([b"Exif\x00\x00" + exif_block(3), XMP_HEADER + xmp(6)]),
}


def pillow_upright(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


@pytest.mark.parametrize("name", list(CASES) + list(JPEG_CASES))
def test_orientation_is_found_where_pillow_finds_it(run, make_dataset, tmp_path, name):
    make = CASES.get(name) or JPEG_CASES[name]
    src = tmp_path / (name + (".jpg" if name.startswith("jpeg") else ".png"))
    src.write_bytes(make())
    expected = pillow_upright(src)
    with Image.open(src) as im:
        stored = np.asarray(im.convert("RGB"))
    ds = make_dataset()
    ds.add("c/" + src.name, src)
    out = tmp_path / "o.npz"
    run(["to-npz", ds.root, out, "--color", "rgb"])
    got = H.load_npz(out)["trainXs"][0]
    H.assert_equal_pixels(got, expected, name)
    # Every case turns the image: the test would fail without the orientation.
    assert got.shape != stored.shape or not np.array_equal(got, stored), "the case does not rotate"
    run(["verify", out, "--against", ds.root])
