#!/usr/bin/env python3
"""Seed inputs taken from the test fixtures, written when scripts/fuzz.sh runs (not committed):

    python3 Fuzz/fixture_seeds.py OUT      ->  OUT/<target>/<sha1-prefix>

- png, jpeg, tiff, bmp, gif, webp: every fixture image of that format (recognised by its first
  bytes) under Tests/Fixtures/{pngsuite,tiff,jpeg,webp,gif,generated,bad,bmp};
- exif: the segments of every JPEG fixture before its first scan, and the first 4 KiB of every
  TIFF fixture (a TIFF file is an EXIF block);
- idx: the MNIST fixtures cut down to two images and ten labels, plain and gzip;
- npy: the .npy fixtures.
The committed seeds of Fuzz/seeds/ cover what the fixtures do not hold. Standard library only.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "Tests" / "Fixtures"
IMAGE_FOLDERS = ("pngsuite", "tiff", "jpeg", "webp", "gif", "generated", "bad", "bmp")


def sniff(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return "tiff"
    if head.startswith(b"BM"):
        return "bmp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def jpeg_header_segments(data: bytes) -> bytes:
    """The bytes before the first SOS segment's data (where the EXIF reader stops)."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xDA:
            return data[: i + 4]
        if marker == 0xFF:
            i += 1
            continue
        i += 2 + (data[i + 2] << 8 | data[i + 3])
    return data[:i]


def idx_prefix(data: bytes, first: int) -> bytes:
    """An IDX file cut down to its first `first` entries along dimension 0."""
    ndims = data[3]
    dims = list(struct.unpack(">" + "I" * ndims, data[4 : 4 + 4 * ndims]))
    size = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}[data[2]]
    per_entry = size
    for d in dims[1:]:
        per_entry *= d
    dims[0] = min(dims[0], first)
    body = data[4 + 4 * ndims : 4 + 4 * ndims + dims[0] * per_entry]
    return data[:4] + struct.pack(">" + "I" * ndims, *dims) + body


def main(out: Path) -> None:
    seeds: dict[str, set[bytes]] = {t: set() for t in ("png", "jpeg", "tiff", "bmp", "gif", "webp", "exif", "idx", "npy")}
    for folder in IMAGE_FOLDERS:
        for path in sorted((FIXTURES / folder).rglob("*")):
            if not path.is_file():
                continue
            data = path.read_bytes()
            kind = sniff(data[:16])
            if kind is None:
                continue
            seeds[kind].add(data)
            if kind == "jpeg":
                seeds["exif"].add(jpeg_header_segments(data))
            elif kind == "tiff":
                seeds["exif"].add(data[:4096])
    for path in sorted((FIXTURES / "mnist").rglob("*.gz")):
        cut = idx_prefix(gzip.decompress(path.read_bytes()), 2 if "images" in path.name else 10)
        seeds["idx"] |= {cut, gzip.compress(cut, mtime=0)}
    for path in sorted(FIXTURES.rglob("*.npy")):
        seeds["npy"].add(path.read_bytes())
    for target, items in seeds.items():
        d = out / target
        d.mkdir(parents=True, exist_ok=True)
        for data in items:
            (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)
    print("fixture seeds: " + ", ".join(f"{t} {len(s)}" for t, s in seeds.items()))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: fixture_seeds.py OUT")
    main(Path(sys.argv[1]))
