"""GIF files built byte by byte, for the cases Pillow's writer never makes: a frame smaller than the
logical screen or reaching past it, a logical screen of 0x0, indices past the colour table, identity
gray tables, any disposal method and transparent index on any frame, stray bytes between blocks, no
trailer, LZW minimum code sizes from 2 to 11.

The LZW stream holds every pixel as a literal code (a clear code before the table would fill), which
any decoder reads: the files are valid GIFs, only not compressed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


def lzw(indices: Sequence[int], min_size: int) -> bytes:
    """The image data of `indices` (each < 2**min_size): code size byte, sub-blocks, terminator."""
    clear, end = 1 << min_size, (1 << min_size) + 1
    width = min_size + 1
    bits = 0
    nbits = 0
    out = bytearray()

    def emit(code: int) -> None:
        nonlocal bits, nbits
        bits |= code << nbits
        nbits += width
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8

    emit(clear)
    nxt, first = clear + 2, True
    for v in indices:
        emit(int(v))
        if first:
            first = False
            continue
        # the decoder adds an entry at `nxt` for this code, and widens its codes after entry 2**w - 1
        if nxt == (1 << width) - 1 and width < 12:
            width += 1
        nxt += 1
        if nxt >= 4000:
            emit(clear)
            width, nxt, first = min_size + 1, clear + 2, True
    emit(end)
    if nbits:
        out.append(bits & 0xFF)
    blocks = bytearray([min_size])
    for i in range(0, len(out), 255):
        chunk = out[i:i + 255]
        blocks += bytes([len(chunk)]) + chunk
    return bytes(blocks + b"\x00")


def _table(colors: Sequence[Sequence[int]]) -> tuple[int, bytes]:
    """(size field, bytes) of a colour table, padded to a power of two (at least 2 entries)."""
    n = max(2, len(colors))
    size = max(0, (n - 1).bit_length() - 1)
    entries = list(colors) + [(0, 0, 0)] * ((2 << size) - len(colors))
    return size, b"".join(bytes(c) for c in entries)


@dataclass
class Frame:
    pixels: np.ndarray                    # (h, w) indices
    left: int = 0
    top: int = 0
    local: Sequence[Sequence[int]] | None = None
    transparency: int | None = None
    disposal: int = 0
    gce: bool = True                      # write a graphic control extension
    interlace: bool = False
    min_size: int | None = None           # LZW minimum code size (default: from the indices)
    before: bytes = b""                   # raw bytes written before the frame's extensions


@dataclass
class Gif:
    width: int
    height: int
    frames: list[Frame] = field(default_factory=list)
    palette: Sequence[Sequence[int]] | None = None   # global colour table
    background: int = 0
    trailer: bool = True
    loop: bool = False

    def build(self) -> bytes:
        flags = 0
        table = b""
        if self.palette is not None:
            size, table = _table(self.palette)
            flags = 0x80 | 0x70 | size
        out = bytearray(b"GIF89a" + struct.pack("<HHBBB", self.width, self.height, flags, self.background, 0) + table)
        if self.loop:
            out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
        for f in self.frames:
            out += f.before
            if f.gce:
                packed = (f.disposal & 7) << 2 | (1 if f.transparency is not None else 0)
                out += b"\x21\xf9\x04" + struct.pack("<BHB", packed, 10, f.transparency or 0) + b"\x00"
            h, w = f.pixels.shape
            rows = list(range(h))
            if f.interlace:
                rows = list(range(0, h, 8)) + list(range(4, h, 8)) + list(range(2, h, 4)) + list(range(1, h, 2))
            flags = 0x40 if f.interlace else 0
            local = b""
            if f.local is not None:
                size, local = _table(f.local)
                flags |= 0x80 | size
            out += b"\x2c" + struct.pack("<HHHHB", f.left, f.top, w, h, flags) + local
            indices = [int(v) for y in rows for v in f.pixels[y]]
            min_size = f.min_size or max(2, max(indices + [1]).bit_length())
            out += lzw(indices, min_size)
        if self.trailer:
            out += b"\x3b"
        return bytes(out)


def pattern(h: int, w: int, colors: int, seed: int = 0) -> np.ndarray:
    """(h, w) indices in [0, colors), seeded."""
    return np.random.default_rng(seed).integers(0, colors, (h, w), dtype=np.int64)


def palette(n: int, seed: int = 1) -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(seed)
    return [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(n)]


def gray_identity(n: int) -> list[tuple[int, int, int]]:
    """The table Pillow takes for no palette at all: entry i is (i, i, i)."""
    return [(i, i, i) for i in range(n)]
