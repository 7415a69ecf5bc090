"""Where each tensor of an imgconv output lies: .npy headers, stored .npz members inside the zip,
IDX headers. Nothing here reads tensor data; it finds (file, offset, dtype, shape) so that the
data can be mapped where it lies."""

from __future__ import annotations

import ast
import os
import struct
import zipfile
from dataclasses import dataclass

import numpy as np


class FormatError(ValueError):
    """An imgconv output that cannot be read: one line naming the file and the reason."""


def fail(path, reason: str) -> FormatError:
    return FormatError(f"{os.fspath(path)!r}: {reason}")


@dataclass(frozen=True)
class Location:
    """A tensor stored as raw C-order (or Fortran-order) bytes at `offset` in `path`."""
    path: str
    offset: int
    dtype: np.dtype
    shape: tuple
    fortran_order: bool = False
    # Set when the bytes cannot be mapped (a deflated .npz member, a gzip IDX file): the reason.
    unmappable: str | None = None

    @property
    def nbytes(self) -> int:
        n = self.dtype.itemsize
        for d in self.shape:
            n *= d
        return n


# --------------------------------------------------------------------------------------------------
# .npy header (format versions 1.0, 2.0 and 3.0, as numpy's format module documents them)
# --------------------------------------------------------------------------------------------------

NPY_MAGIC = b"\x93NUMPY"
MAX_NPY_HEADER = 1 << 20


def parse_npy_header(read, where) -> tuple[int, np.dtype, tuple, bool]:
    """read(n) returns the next n bytes of an .npy stream. Returns (header length in bytes,
    dtype, shape, fortran_order). `where` names the file (and member) in errors."""
    head = read(10)
    if len(head) < 10 or head[:6] != NPY_MAGIC:
        raise fail(where, "not an .npy file (no \\x93NUMPY magic)")
    major, minor = head[6], head[7]
    if major == 1:
        (hlen,) = struct.unpack("<H", head[8:10])
        start = 10
    elif major in (2, 3):
        more = read(2)
        if len(more) < 2:
            raise fail(where, "truncated .npy header")
        (hlen,) = struct.unpack("<I", head[8:10] + more)
        start = 12
    else:
        raise fail(where, f".npy format version {major}.{minor} is not supported (1.0, 2.0, 3.0 are)")
    if hlen > MAX_NPY_HEADER:
        raise fail(where, f".npy header of {hlen} bytes is implausibly long")
    raw = read(hlen)
    if len(raw) < hlen:
        raise fail(where, "truncated .npy header")
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
        d = ast.literal_eval(text)
    except (UnicodeDecodeError, ValueError, SyntaxError, MemoryError, RecursionError) as e:
        raise fail(where, f".npy header is not a Python literal ({type(e).__name__})") from None
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise fail(where, ".npy header must be a dict of exactly descr, fortran_order and shape")
    shape, fortran = d["shape"], d["fortran_order"]
    if not isinstance(shape, tuple) or not all(isinstance(x, int) and x >= 0 for x in shape):
        raise fail(where, f".npy header shape {shape!r} is not a tuple of non-negative integers")
    if not isinstance(fortran, bool):
        raise fail(where, f".npy header fortran_order {fortran!r} is not a bool")
    try:
        dtype = np.lib.format.descr_to_dtype(d["descr"])
    except (TypeError, ValueError) as e:
        raise fail(where, f".npy header descr {d['descr']!r} is not a dtype ({e})") from None
    if dtype.hasobject:
        raise fail(where, f".npy dtype {dtype} holds Python objects: refused (it would need pickle)")
    return start + hlen, dtype, shape, fortran


def npy_location(path) -> Location:
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        hlen, dtype, shape, fortran = parse_npy_header(f.read, path)
    loc = Location(path, hlen, dtype, shape, fortran)
    if hlen + loc.nbytes > size:
        raise fail(path, f"truncated: the header declares {loc.nbytes} data bytes, the file holds {size - hlen}")
    return loc


# --------------------------------------------------------------------------------------------------
# .npz: the central directory (ZIP64 included) through zipfile, then each member's local header,
# which gives where its data begins; a stored member's .npy is then mapped in place.
# --------------------------------------------------------------------------------------------------

LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
LOCAL_SIG = 0x04034B50


def npz_locations(path) -> dict[str, Location]:
    """Every member ending in .npy, by name without the suffix."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise fail(path, f"not a zip archive ({e})") from None
    out: dict[str, Location] = {}
    with zf, open(path, "rb") as f:
        seen = set()
        for info in zf.infolist():
            name = info.filename
            if name in seen:
                raise fail(path, f"two members named {name!r}")
            seen.add(name)
            if not name.endswith(".npy"):
                continue
            where = f"{path}:{name}"
            if info.flag_bits & 0x1:
                raise fail(where, "encrypted member")
            f.seek(info.header_offset)
            raw = f.read(LOCAL_HEADER.size)
            if len(raw) < LOCAL_HEADER.size:
                raise fail(where, "local header past the end of the file")
            (sig, _ver, _flags, method, _t, _d, _crc, _csize, _usize, nlen, xlen) = LOCAL_HEADER.unpack(raw)
            if sig != LOCAL_SIG:
                raise fail(where, f"no local header signature at offset {info.header_offset}")
            local_name = f.read(nlen)
            if local_name != info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437"):
                raise fail(where, f"the local header at offset {info.header_offset} names {local_name!r}, "
                                  "not the member the central directory lists")
            data_start = info.header_offset + LOCAL_HEADER.size + nlen + xlen
            key = name[:-4]
            if method == zipfile.ZIP_STORED:
                if data_start + info.file_size > size:
                    raise fail(where, f"member data ({info.file_size} bytes at {data_start}) runs past the end of the file")
                f.seek(data_start)
                end = data_start + info.file_size
                remaining = [info.file_size]

                def read(n, _f=f, _r=remaining):
                    n = min(n, _r[0])
                    b = _f.read(n)
                    _r[0] -= len(b)
                    return b
                hlen, dtype, shape, fortran = parse_npy_header(read, where)
                loc = Location(path, data_start + hlen, dtype, shape, fortran)
                if data_start + hlen + loc.nbytes > end:
                    raise fail(where, f"truncated: the header declares {loc.nbytes} data bytes, the member holds {info.file_size - hlen}")
            elif method == zipfile.ZIP_DEFLATED:
                with zf.open(info) as m:
                    hlen, dtype, shape, fortran = parse_npy_header(m.read, where)
                loc = Location(path, -1, dtype, shape, fortran, unmappable=(
                    f"member {name!r} is deflated (written with --compress or savez_compressed) and cannot be "
                    "memory-mapped; `imgconv convert IN.npz OUT.npz` (stored members) or `to-npy` gives a "
                    "mappable copy, or load it whole with numpy.load"))
            else:
                raise fail(where, f"compression method {method} is not supported (stored and deflated are)")
            out[key] = loc
    return out


def npz_member_bytes(path, name: str) -> bytes:
    """A small member (class names) read whole, stored or deflated."""
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


# --------------------------------------------------------------------------------------------------
# IDX (big-endian; the third byte is the element type, the fourth the number of dimensions)
# --------------------------------------------------------------------------------------------------

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def idx_location(path) -> Location:
    path = os.fspath(path)
    gz = path.endswith(".gz")
    if gz:
        import gzip
        opener = gzip.open
    else:
        opener = open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise fail(path, "not an IDX file (the first two bytes must be 0)")
            code, ndim = head[2], head[3]
            if code not in IDX_TYPES:
                raise fail(path, f"IDX element type 0x{code:02X} is unknown")
            if ndim == 0:
                raise fail(path, "IDX file of 0 dimensions")
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise fail(path, "truncated IDX header")
    except OSError as e:  # gzip.BadGzipFile among them
        if isinstance(e, FileNotFoundError):
            raise
        raise fail(path, f"cannot read the IDX header ({e})") from None
    shape = struct.unpack(f">{ndim}I", dims)
    offset = 4 + 4 * ndim
    loc = Location(path, offset, np.dtype(IDX_TYPES[code]), tuple(shape))
    if gz:
        return Location(path, -1, loc.dtype, loc.shape, unmappable=(
            "gzip IDX files cannot be memory-mapped; `gzip -dk` the pair (or `imgconv convert DIR out.npz`) "
            "and open the plain files"))
    size = os.path.getsize(path)
    if offset + loc.nbytes > size:
        raise fail(path, f"truncated: the header declares {loc.nbytes} data bytes, the file holds {size - offset}")
    return loc
