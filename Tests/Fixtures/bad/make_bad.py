#!/usr/bin/env python3
"""Regenerate the deliberately broken / unsupported files in Tests/Fixtures/bad/.

    python3 Tests/Fixtures/bad/make_bad.py

Self-contained: the pictures are a synthetic 96x96 pattern computed here, so
no outside image is needed. Needs Pillow and NumPy. Writes next to itself.
"""
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parent


def pattern(size=96):
    """Deterministic 8-bit RGB test picture (no randomness)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.uint32)
    r = (x ^ y) & 0xFF
    g = (x * 3 + y * 5) & 0xFF
    b = ((x * y) >> 3) & 0xFF
    return Image.fromarray(np.stack([r, g, b], axis=-1).astype(np.uint8), "RGB")


def png_bytes(img):
    import io
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def chunks(png):
    """Yield (offset, length, type) for each chunk of a PNG byte string."""
    pos = 8
    while pos < len(png):
        length, ctype = struct.unpack(">I4s", png[pos:pos + 8])
        yield pos, length, ctype
        pos += 12 + length


def chunk(ctype, payload):
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


def main():
    img = pattern()
    png = png_bytes(img)
    (idat_pos, idat_len, _), = [c for c in chunks(png) if c[2] == b"IDAT"]

    # truncated.png: cut in the middle of the (single) IDAT chunk's data
    (OUT / "truncated.png").write_bytes(png[: idat_pos + 8 + idat_len // 2])

    # bad-crc.png: complete file, but the IDAT CRC has its last byte inverted
    crc_pos = idat_pos + 8 + idat_len + 3
    bad = bytearray(png)
    bad[crc_pos] ^= 0xFF
    (OUT / "bad-crc.png").write_bytes(bytes(bad))

    # truncated.jpg: baseline JPEG (quality 90, 4:2:0), first half of the bytes only
    import io
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, subsampling="4:2:0")
    jpg = buf.getvalue()
    (OUT / "truncated.jpg").write_bytes(jpg[: len(jpg) // 2])

    # truncated.tif: uncompressed RGB TIFF (one strip) written by Pillow, first half of the bytes only
    buf = io.BytesIO()
    img.save(buf, "TIFF")
    tif = buf.getvalue()
    (OUT / "truncated.tif").write_bytes(tif[: len(tif) // 2])

    # notanimage.png: plain text with a .png name
    (OUT / "notanimage.png").write_bytes(b"This is a text file, not a PNG image.\n")

    # empty.jpg: zero bytes
    (OUT / "empty.jpg").write_bytes(b"")

    # image.gif / image.bmp: valid pictures in formats imgconv did not read (it reads BMP now)
    img.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(OUT / "image.gif", "GIF")
    img.save(OUT / "image.bmp", "BMP")

    # bomb.png: IHDR claims 100000 x 100000 RGB 8-bit (3e10 bytes decoded) with a valid CRC,
    # followed by one small IDAT (a zlib stream of one 2-row scrap of zeros) and IEND
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * 64) * 2, 9)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    (OUT / "bomb.png").write_bytes(bomb)

    for name in ("truncated.png", "bad-crc.png", "truncated.jpg", "truncated.tif", "notanimage.png",
                 "empty.jpg", "image.gif", "image.bmp", "bomb.png"):
        print(f"{name}\t{(OUT / name).stat().st_size}")
    print(f"(full sizes before truncation: png {len(png)}, jpg {len(jpg)}, tif {len(tif)})")


if __name__ == "__main__":
    main()
