"""Decompression bombs: headers that declare gigapixel images over a few bytes of data.

  PNG   Tests/Fixtures/bad/bomb.png: IHDR 100000 x 100000 RGB, a 2-row IDAT
  JPEG  a small fixture JPEG whose SOF height and width are patched to 65000 x 65000
  TIFF  a hand-built 8-bit gray TIFF declaring 100000 x 100000 with one 16-byte strip
  BMP   a 24-bit BMP header declaring 100000 x 100000 over 16 bytes of pixels; and an RLE8 BMP of
        12000 x 12000 (within --max-pixels) whose 8 bytes of RLE data cannot fill it: refused
        before the 576 MB its decode would take are allocated
  GIF   a logical screen of 60000 x 60000 holding one 1x1 frame (Pillow's image is the screen)
  WebP  a Pillow-made 2-frame animation of 1x1 frames whose VP8X canvas is patched to 16384 x 16384
        (WebPAnimDecoder would allocate two RGBA canvases of 1 GiB each)

Each must fail in under 2 s with exit 65 and one stderr line that names the file and the limit
(`--max-pixels`) or the corruption, without writing an output, and the process's peak RSS
(`/usr/bin/time -f %M`; the assertion is skipped without /usr/bin/time) must stay under 100 MiB.
"""

from __future__ import annotations

import io
import resource
import struct
import time
import warnings
from pathlib import Path

import pytest

import interop_helpers as H
from corpus_runner import run_cli

TIME_BIN = Path("/usr/bin/time")
MAX_SECONDS = 2.0
MAX_RSS_KIB = 100 * 1024
# Safety net for the machine running the suite: a regression that allocates the declared size
# (30 GB for bomb.png) dies on this address-space limit instead of swapping the host.
ADDRESS_SPACE_LIMIT = 4 << 30


def patch_jpeg_sof(data: bytes, height: int, width: int) -> bytes:
    """Rewrites the frame size in the first SOFn segment."""
    d = bytearray(data)
    assert d[:2] == b"\xff\xd8", "not a JPEG"
    i = 2
    while i + 4 <= len(d):
        assert d[i] == 0xFF, f"lost marker sync at {i}"
        marker = d[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        (seglen,) = struct.unpack(">H", d[i + 2:i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            d[i + 5:i + 9] = struct.pack(">HH", height, width)  # after length (2) and precision (1)
            return bytes(d)
        assert marker not in (0xDA, 0xD9), "no SOF before the scan"
        i += 2 + seglen
    raise AssertionError("no SOF segment")


def small_jpeg() -> bytes:
    src = H.FIXTURES / "jpeg" / "jpeg-decoder" / "reftest" / "mozilla" / "jpg-size-16x16.jpg"
    if src.is_file():
        return src.read_bytes()
    import numpy as np
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def tiff_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """Little-endian baseline TIFF: 8-bit gray, uncompressed, one strip of 16 bytes."""
    strip = bytes(16)
    # (tag, type, value): type 3 SHORT, 4 LONG; StripOffsets is filled in below
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, None), (277, 3, 1), (278, 4, height), (279, 4, len(strip))]
    ifd_offset = 8
    data_offset = ifd_offset + 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_offset) + struct.pack("<H", len(entries)))
    for tag, typ, value in entries:
        value = data_offset if tag == 273 else value
        packed = struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, typ, 1) + packed
    out += struct.pack("<I", 0) + strip
    return bytes(out)


def bmp_bomb(width: int, height: int, bits: int, compression: int, pixels: bytes) -> bytes:
    """A BMP with a 40-byte info header (and a 256-entry gray palette for 8 bits)."""
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256)) if bits == 8 else b""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, compression, len(pixels), 0, 0, 0, 0)
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


def gif_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    import gif_craft as G
    import numpy as np
    return G.Gif(width, height, [G.Frame(np.zeros((1, 1), np.int64))], palette=[(0, 0, 0), (255, 255, 255)]).build()


def webp_bomb(width: int = 16_384, height: int = 16_384) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    frames = [Image.new("RGBA", (1, 1), (k * 100, 0, 0, 255)) for k in range(2)]
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], lossless=True, duration=10)
    d = bytearray(buf.getvalue())
    assert d[12:16] == b"VP8X", "Pillow's animated WebP starts without VP8X"
    d[24:27] = (width - 1).to_bytes(3, "little")
    d[27:30] = (height - 1).to_bytes(3, "little")
    return bytes(d)


def bomb_bytes(kind: str) -> bytes:
    if kind == "png":
        p = H.FIXTURES / "bad" / "bomb.png"
        if not p.is_file():
            pytest.skip("Tests/Fixtures/bad/bomb.png is missing")
        return p.read_bytes()
    if kind == "jpeg":
        return patch_jpeg_sof(small_jpeg(), 65_000, 65_000)
    if kind == "bmp":
        return bmp_bomb(100_000, 100_000, 24, 0, bytes(16))
    if kind == "bmp-rle":
        return bmp_bomb(12_000, 12_000, 8, 1, bytes([255, 7, 0, 2, 255, 255, 0, 1]))
    if kind == "gif":
        return gif_bomb()
    if kind == "webp":
        return webp_bomb()
    return tiff_bomb()


def _limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


@pytest.mark.parametrize("kind,name,declared", [
    ("png", "bomb.png", (100_000, 100_000)),
    ("jpeg", "bomb.jpg", (65_000, 65_000)),
    ("tiff", "bomb.tif", (100_000, 100_000)),
    ("bmp", "bomb.bmp", (100_000, 100_000)),
    ("bmp-rle", "bomb-rle.bmp", (12_000, 12_000)),
    ("gif", "bomb.gif", (60_000, 60_000)),
    ("webp", "bomb.webp", (16_384, 16_384)),
])
def test_bomb_is_refused_fast_and_small(imgconv_bin, make_dataset, tmp_path, kind, name, declared):
    ds = make_dataset()
    rel = f"c/{name}"
    ds.add_bytes(rel, bomb_bytes(kind))
    out = tmp_path / "bomb.npz"
    rss_file = tmp_path / "rss.txt"
    prefix = [str(TIME_BIN), "-f", "%M", "-o", str(rss_file)] if TIME_BIN.is_file() else []

    t0 = time.monotonic()
    res = run_cli(["to-npz", ds.root, out], timeout=30, prefix=prefix, preexec_fn=_limit_address_space)
    elapsed = time.monotonic() - t0

    rss_kib = None
    if prefix and rss_file.is_file():
        # /usr/bin/time writes "Command exited with non-zero status 65" before the value
        values = [ln for ln in rss_file.read_text().splitlines() if ln.strip().isdigit()]
        rss_kib = int(values[-1]) if values else None
    print(f"\n{name}: declared {declared[1]}x{declared[0]}, exit {res.returncode}, {elapsed:.2f} s, "
          f"peak RSS {'n/a' if rss_kib is None else f'{rss_kib / 1024:.1f} MiB'}: {res.stderr.strip()[:200]}")

    assert res.returncode == H.EX_DATAERR, f"exit {res.returncode}, want 65\n{res.stderr[-2000:]}"
    line = H.assert_one_line_error(res, rel)
    assert "--max-pixels" in line or "corrupt" in line.lower(), f"names neither the limit nor corruption: {line!r}"
    assert elapsed < MAX_SECONDS, f"took {elapsed:.2f} s (limit {MAX_SECONDS} s)"
    assert not out.exists() and not H.npz_manifest_path(out).exists(), "output written despite the error"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".bomb.npz")]
    assert not leftovers, f"temporary output left behind: {leftovers}"
    if not prefix:
        pytest.skip("/usr/bin/time is not installed: peak RSS not measured (the other checks passed)")
    assert rss_kib is not None, f"/usr/bin/time gave no RSS: {rss_file.read_text() if rss_file.is_file() else ''!r}"
    assert rss_kib < MAX_RSS_KIB, f"peak RSS {rss_kib} KiB >= {MAX_RSS_KIB} KiB"


def test_bomb_inputs_declare_what_they_claim(tmp_path):
    """The crafted files are what the test says: the readers see the huge declared sizes."""
    import tifffile
    from PIL import Image
    p = tmp_path / "b.tif"
    p.write_bytes(tiff_bomb())
    with tifffile.TiffFile(p) as tf:
        assert tf.pages[0].shape == (100_000, 100_000)
    j = tmp_path / "b.jpg"
    j.write_bytes(patch_jpeg_sof(small_jpeg(), 65_000, 65_000))
    assert H.jpeg_sof(j)["height"] == 65_000 and H.jpeg_sof(j)["width"] == 65_000
    b = tmp_path / "b.bmp"
    b.write_bytes(bomb_bytes("bmp"))
    g = tmp_path / "b.gif"
    g.write_bytes(gif_bomb())
    w = tmp_path / "b.webp"
    w.write_bytes(webp_bomb())
    for f in (p, j, b, g, w):  # Pillow refuses them from the header, too
        with pytest.raises(Image.DecompressionBombError):
            Image.open(f)
    r = tmp_path / "r.bmp"
    r.write_bytes(bomb_bytes("bmp-rle"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(r) as im:  # within Pillow's limit: it opens, and fails only on the data
            assert im.size == (12_000, 12_000)


def test_an_animation_whose_canvas_grows_past_the_limit_is_refused_with_frames_all(run, make_dataset, tmp_path):
    """A GIF whose first frame is 1x1 and whose second reaches 60000 x 60000 (Pillow enlarges its
    image to hold it): the first frame converts; with --frames all the second frame's header is
    over the pixel limit and the file is refused before any pixel is decoded."""
    import gif_craft as G
    import numpy as np
    data = G.Gif(1, 1, [G.Frame(np.zeros((1, 1), np.int64)), G.Frame(np.zeros((1, 1), np.int64), left=59_999, top=59_999)],
                 palette=[(0, 0, 0), (255, 255, 255)]).build()
    ds = make_dataset()
    ds.add_bytes("c/grow.gif", data)
    out = tmp_path / "o.npz"
    run(["to-npz", ds.root, out, "-q"])
    assert H.load_json(H.npz_manifest_path(out))["summary"]["ignoredFrames"] == 1
    t0 = time.monotonic()
    res = run(["to-npz", ds.root, tmp_path / "all.npz", "--frames", "all"], expect_rc=H.EX_DATAERR,
              preexec_fn=_limit_address_space)
    assert time.monotonic() - t0 < MAX_SECONDS
    line = H.assert_one_line_error(res, "c/grow.gif")
    assert "--max-pixels" in line, line
