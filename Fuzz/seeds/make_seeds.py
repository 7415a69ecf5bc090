#!/usr/bin/env python3
"""Writes the committed seed inputs of the fuzz targets (Fuzz/seeds/<target>/), a few small files
each. Seeds for the image targets and more for idx and exif are taken from Tests/Fixtures when
scripts/fuzz.sh runs (Fuzz/fixture_seeds.py); these cover what the fixtures do not hold.

Python standard library only, except the npz and manifest seeds written by imgconv itself:
    IMGCONV=.build/release/imgconv python3 Fuzz/seeds/make_seeds.py
(without an imgconv binary those are left as they are). Paths are relative to this file.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import struct
import subprocess
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FIXTURES = REPO / "Tests" / "Fixtures"


def write(target: str, name: str, data: bytes) -> None:
    d = HERE / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def npy(descr: str, shape: tuple, data: bytes, fortran: bool = False, version: tuple = (1, 0)) -> bytes:
    dims = "()" if not shape else "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
    text = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {dims}, }}"
    size = 2 if version == (1, 0) else 4
    unpadded = 6 + 2 + size + len(text.encode("utf-8")) + 1
    text += " " * ((-unpadded) % 64) + "\n"
    raw = text.encode("latin-1" if version != (3, 0) else "utf-8")
    length = struct.pack("<H" if size == 2 else "<I", len(raw))
    return b"\x93NUMPY" + bytes(version) + length + raw + data


def unicode_array(names: list[str]) -> bytes:
    width = max(len(n) for n in names)
    body = b"".join(n.ljust(width, "\0").encode("utf-32-le") for n in names)
    return npy(f"<U{width}", (len(names),), body)


def npy_seeds() -> None:
    write("npy", "uint8-2x3.npy", npy("|u1", (2, 3), bytes(range(6))))
    write("npy", "v2-float32.npy", npy("<f4", (2,), struct.pack("<2f", 0.5, -1.0), version=(2, 0)))
    write("npy", "v3-unicode.npy", npy("<U2", (2,), "aé\0b".encode("utf-32-le"), version=(3, 0)))
    write("npy", "fortran-int64.npy", npy("<i8", (1, 2), struct.pack("<2q", 1, 2), fortran=True))
    write("npy", "scalar-uint16.npy", npy("<u2", (), struct.pack("<H", 7)))
    write("npy", "empty.npy", npy("|u1", (0, 4), b""))


def zip_seeds() -> None:
    # numpy's savez layout (zipfile, no ZIP64 records for small members), stored and deflated.
    xs = npy("|u1", (2, 2, 2, 1), bytes(range(8)))
    ys = npy("<i8", (2,), struct.pack("<2q", 0, 1))
    names = unicode_array(["cat", "dog"])
    for name, method in (("savez.npz", zipfile.ZIP_STORED), ("savez-compressed.npz", zipfile.ZIP_DEFLATED)):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", method) as z:
            for member, data in (("trainXs.npy", xs), ("trainYs.npy", ys), ("classNames.npy", names)):
                info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = method
                z.writestr(info, data)
        write("zip", name, buf.getvalue())
    # A member written with force_zip64 (ZIP64 extra in the local header), as large streams are.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open(zipfile.ZipInfo("trainXs.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w", force_zip64=True) as f:
            f.write(xs)
    write("zip", "force-zip64.npz", buf.getvalue())


def imgconv_seeds() -> None:
    """npz files and manifests as imgconv writes them (ZIP64 extras, ZIP64 end records)."""
    binary = Path(os.environ.get("IMGCONV", REPO / ".build" / "release" / "imgconv"))
    if not binary.is_file():
        print(f"make_seeds: no imgconv at {binary}: npz and manifest seeds from imgconv left as they are")
        return
    runs = {
        "imgconv-stored": ["--size", "4x4"],
        "imgconv-compressed": ["--size", "2x3", "--dtype", "float32", "--scale", "unit", "--mean", "0.5,0.5,0.5",
                               "--std", "0.25,0.25,0.25", "--compress", "--shuffle", "--seed", "3"],
        "imgconv-splits": ["--size", "4x4", "--split", "train=0.5,test=0.5", "--seed", "1"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tree"
        for cls, src, dst in (("cat", "pngsuite/basn0g01.png", "a.png"), ("dog", "pngsuite/basn2c08.png", "b.png"),
                              ("dog", "jpeg/exif-orientation/Portrait_6.jpg", "c.jpg")):
            (root / cls).mkdir(parents=True, exist_ok=True)
            shutil.copy(FIXTURES / src, root / cls / dst)
        for name, flags in runs.items():
            out = Path(tmp) / f"{name}.npz"
            subprocess.run([str(binary), "to-npz", "tree", str(out), "-q", *flags], cwd=tmp, check=True)
            write("zip", f"{name}.npz", out.read_bytes())
            write("manifest", f"{name}.json", Path(str(out) + ".manifest.json").read_bytes())


def idx(type_byte: int, dims: tuple, data: bytes) -> bytes:
    return bytes([0, 0, type_byte, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data


def idx_seeds() -> None:
    write("idx", "int16-2x2x2-idx3-short", idx(0x0B, (2, 2, 2), struct.pack(">8h", *range(-4, 4))))
    write("idx", "float32-idx1-float", idx(0x0D, (3,), struct.pack(">3f", 0.0, 1.5, -2.0)))
    write("idx", "ubyte-idx4-ubyte", idx(0x08, (1, 2, 2, 3), bytes(range(12))))
    write("idx", "labels-idx1-ubyte.gz", gzip.compress(idx(0x08, (4,), bytes([0, 1, 2, 1])), mtime=0))


def tiff_block(little: bool, orientation: int) -> bytes:
    e = "<" if little else ">"
    head = (b"II" if little else b"MM") + struct.pack(e + "HI", 42, 8)
    entries = [struct.pack(e + "HHIHH", 0x010F, 2, 4, 0, 0),   # Make (ASCII, inline)
               struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0)]
    return head + struct.pack(e + "H", len(entries)) + b"".join(entries) + struct.pack(e + "I", 0)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    import zlib
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def exif_seeds() -> None:
    write("exif", "tiff-block-le-8", tiff_block(True, 8))
    app1 = b"Exif\0\0" + tiff_block(False, 6)
    jpeg = b"\xff\xd8" + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + b"\xff\xda\x00\x02\xff\xd9"
    write("exif", "jpeg-app1-be-6.jpg", jpeg)
    png = (FIXTURES / "pngsuite" / "basn0g01.png").read_bytes()
    exif_png = png[:33] + png_chunk(b"eXIf", tiff_block(True, 3)) + png[33:]  # after IHDR
    write("exif", "png-exif-le-3.png", exif_png)
    # The same PNG is a seed for the png target too: eXIf drives the orientation code there.
    write("png", "exif-orientation-3.png", exif_png)


def csv_seeds() -> None:
    write("csv", "header-names.csv", b"path,label\ncat/a.png,cat\ndog/b.png,dog\n")
    write("csv", "integers-split.csv", b"a.png,0,train\nb.png,2,val\r\nc.png,1,test\r\n")
    write("csv", "quoted-unicode.csv", '"dir, with comma/\u00e9t\u00e9.png","say ""hi"""\n"multi\nline.png",x\n'.encode())
    write("csv", "blank-lines.csv", b"\n a.png , b \n\n")
    # A NUL byte is an error naming the line, never the silent end of the list.
    write("csv", "nul-byte.csv", b"a.png,cat\nb.p\x00ng,dog\nc.png,cat\n")
    write("csv", "nul-in-quotes.csv", b'"a\x00.png",cat\n')


def h5_seeds() -> None:
    """Small HDF5 files as h5py writes them: contiguous and chunked (shuffle + gzip) datasets,
    class names as an attribute of variable-length strings and as a fixed-length string dataset,
    an embedded manifest, a scalar, an external link and a virtual dataset (both refused)."""
    import io
    try:
        import h5py
        import numpy as np
    except ImportError:
        print("make_seeds: h5py is not installed; the h5 seeds are left as they are")
        return

    def h5(name: str, build) -> None:
        buf = io.BytesIO()
        with h5py.File(buf, "w", libver=("v108", "latest") if name.startswith("v108") else "earliest") as f:
            build(f)
        write("h5", name, buf.getvalue())

    x = (np.arange(2 * 4 * 4 * 1) % 251).astype(np.uint8).reshape(2, 4, 4, 1)
    y = np.array([0, 1], np.int64)

    def plain(f):
        f["trainXs"] = x
        f["trainYs"] = y
        f.attrs["classNames"] = np.array(["a", "b"], dtype=h5py.string_dtype())
        f.attrs["imgconv_manifest"] = '{"format": "imgconv-manifest"}'

    def chunked(f):
        f.create_dataset("trainXs", data=x, chunks=(1, 4, 4, 1), shuffle=True, compression="gzip", maxshape=(None, 4, 4, 1))
        f.create_dataset("trainYs", data=y.astype(np.uint8), chunks=(2,))
        f["classNames"] = np.array([b"a", b"b"], dtype="S1")
        f["scalar"] = np.float32(1.5)

    def links(f):
        f["trainXs"] = h5py.ExternalLink("other.h5", "/x")
        f["trainYs"] = y
        layout = h5py.VirtualLayout(shape=(2,), dtype="i8")
        layout[:] = h5py.VirtualSource("part.h5", "y", shape=(2,))
        f.create_virtual_dataset("valYs", layout)

    h5("plain.h5", plain)
    h5("chunked.h5", chunked)
    h5("v108-links.h5", links)


def bmp(width: int, height: int, bits: int, pixels: bytes, compression: int = 0, header: int = 40,
        masks: tuple = (), palette: list | None = None, offset: int | None = None, bare: bool = False) -> bytes:
    """A BMP (or, `bare`, a DIB without the file header): info header of `header` bytes, masks after
    a 40-byte header or inside a longer one, palette (RGB triples, written BGR0 or BGR for OS/2 1.x)."""
    palette = palette or []
    if header == 12:
        info = struct.pack("<IHHHH", 12, width, height, 1, bits)
        table = b"".join(bytes((b, g, r)) for r, g, b in palette)
    else:
        info = struct.pack("<IiiHHIIiiII", header, width, height, 1, bits, compression, len(pixels), 0, 0, len(palette), 0)
        if header > 40:
            info += b"".join(struct.pack("<I", m) for m in masks)
        info = info[:header].ljust(header, b"\0")
        table = b"".join(bytes((b, g, r, 0)) for r, g, b in palette)
    extra = b"".join(struct.pack("<I", m) for m in masks) if header == 40 else b""
    body = info + extra + table + pixels
    if bare:
        return body
    start = 14 + len(body) - len(pixels) if offset is None else offset
    return b"BM" + struct.pack("<IHHI", 14 + len(body), 0, 0, start) + body


def bmp_seeds() -> None:
    """Kinds of BMP the fixtures (Tests/Fixtures/bmp, added by Fuzz/fixture_seeds.py) do not hold:
    RLE streams with deltas, absolute runs and early ends, a bare DIB, the 16-byte OS/2 2.x header,
    ALPHABITFIELDS, 10-bit masks, a gray ramp palette, a pixel offset of 0."""
    ramp = [(i * 17, i * 17, i * 17) for i in range(16)]
    colours = [(i * 40 % 256, 255 - i * 30, i * 7) for i in range(8)]
    write("bmp", "rle8-delta-absolute.bmp", bmp(6, 4, 8, bytes([3, 1, 0, 0, 0, 2, 2, 1, 0, 5, 1, 2, 3, 4, 5, 0, 2, 7,
                                                                   0, 0, 6, 3, 0, 1]), compression=1, palette=colours))
    write("bmp", "rle8-early-end.bmp", bmp(6, 4, 8, bytes([3, 1, 0, 0, 0, 1]), compression=1, palette=colours))
    write("bmp", "rle4-top-down.bmp", bmp(7, -3, 4, bytes([7, 0x12, 0, 0, 0, 5, 0x34, 0x56, 0x70, 0, 0, 0, 2, 0x77,
                                                           0, 2, 1, 0, 4, 0x65, 0, 1]), compression=2, palette=ramp))
    write("bmp", "bare-dib-24.dib", bmp(3, 2, 24, bytes(range(24)), bare=True))
    write("bmp", "os2v2-short-header.bmp", bmp(5, 2, 8, bytes(range(16)), header=16, palette=colours))
    write("bmp", "core-1bit.bmp", bmp(9, 2, 1, bytes([0xA5, 0x80, 0, 0, 0x5A, 0x00, 0, 0]), header=12,
                                      palette=[(0, 0, 0), (255, 255, 255)]))
    write("bmp", "alphabitfields-32.bmp", bmp(2, 2, 32, bytes(range(16)), compression=6,
                                              masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000)))
    write("bmp", "v5-2-10-10-10.bmp", bmp(2, 1, 32, bytes(range(8)), compression=3, header=124,
                                          masks=(0x3FF00000, 0xFFC00, 0x3FF, 0xC0000000)))
    write("bmp", "v3-4444-top-down.bmp", bmp(3, -2, 16, bytes(range(16)), compression=3, header=56,
                                             masks=(0xF00, 0xF0, 0xF, 0xF000)))
    write("bmp", "pal4-ramp-offset0.bmp", bmp(5, 2, 4, bytes(range(8)), palette=ramp, offset=0))


def main() -> None:
    npy_seeds()
    zip_seeds()
    imgconv_seeds()
    idx_seeds()
    exif_seeds()
    csv_seeds()
    h5_seeds()
    bmp_seeds()


if __name__ == "__main__":
    main()
