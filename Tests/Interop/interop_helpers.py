"""Shared helpers for the imgconv interop tests.

Everything here is plain Python (numpy, Pillow, tifffile, pypng, jsonschema): the tests judge the
CLI's outputs with the readers the users of those outputs have. Paths are always computed from this
file's location, never from the machine the tests happen to run on.
"""

from __future__ import annotations

import csv
import filecmp
import hashlib
import io
import json
import os
import re
import resource
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "Tests" / "Fixtures"
SAMPLES = REPO_ROOT / "samples"
SCHEMA_PATH = REPO_ROOT / "Schemas" / "manifest.schema.json"

MEMBERS = ("trainXs.npy", "trainYs.npy", "classNames.npy")
TENSOR_NAMES = ("trainXs", "trainYs", "classNames")

# Exit codes of the contract.
EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_SOFTWARE, EX_IOERR = 64, 65, 66, 70, 74


# --------------------------------------------------------------------------------------------------
# The binary
# --------------------------------------------------------------------------------------------------

def binary_path() -> Path:
    """$IMGCONV if set (a path, or a bare name looked up on PATH), else <repo>/.build/release/imgconv."""
    env = os.environ.get("IMGCONV")
    if env:
        if os.sep not in env:
            found = shutil.which(env)
            if found:
                return Path(found)
        return Path(env).expanduser().resolve()
    return REPO_ROOT / ".build" / "release" / "imgconv"


def run_imgconv(args: Sequence, expect_rc: int | Iterable[int] | None = 0, timeout: float = 120,
                **kwargs) -> subprocess.CompletedProcess:
    """Runs the CLI with `args` (Paths allowed); asserts the exit code unless expect_rc is None."""
    cmd = [str(binary_path())] + [str(a) for a in args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if expect_rc is not None:
        allowed = {expect_rc} if isinstance(expect_rc, int) else set(expect_rc)
        assert res.returncode in allowed, (
            f"imgconv exited {res.returncode}, expected {sorted(allowed)}\n"
            f"command: {' '.join(cmd)}\n--- stdout ---\n{res.stdout}\n--- stderr ---\n{res.stderr}")
    return res


def stderr_lines(res: subprocess.CompletedProcess) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.strip()]


def assert_one_line_error(res: subprocess.CompletedProcess, *needles: str) -> str:
    """The contract: a failure prints exactly one line on stderr, starting with 'imgconv: ',
    that contains every needle (a file name, a member name...)."""
    lines = stderr_lines(res)
    assert len(lines) == 1, f"expected exactly one stderr line, got {len(lines)}:\n{res.stderr}"
    line = lines[0]
    assert line.startswith("imgconv: "), f"stderr line does not start with 'imgconv: ': {line!r}"
    for needle in needles:
        assert needle in line, f"{needle!r} not named in the error line {line!r}"
    return line


# --------------------------------------------------------------------------------------------------
# Peak memory of a run (the hostile-input tests)
# --------------------------------------------------------------------------------------------------

TIME_BIN = Path("/usr/bin/time")
MAX_RSS_KIB = 150 * 1024
ADDRESS_SPACE_LIMIT = 4 << 30
# scripts/sanitize.sh runs the hostile-input tests on its AddressSanitizer build too: ASan reserves
# terabytes of address space and keeps freed memory in quarantine, so the limits are the plain
# build's only.
SANITIZED = bool(os.environ.get("IMGCONV_SANITIZED"))


def _limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


def run_measured(args, tmp_path, expect_rc=EX_DATAERR):
    """Runs the CLI under /usr/bin/time (when present) and an address-space limit; returns the
    result and the peak RSS in KiB (None without /usr/bin/time, or on the sanitizer build)."""
    report = tmp_path / "time.txt"
    cmd = [str(binary_path())] + [str(a) for a in args]
    if TIME_BIN.exists():
        cmd = [str(TIME_BIN), "-f", "%M", "-o", str(report)] + cmd
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                         preexec_fn=None if SANITIZED else _limit_address_space)
    assert res.returncode == expect_rc, f"exit {res.returncode}, expected {expect_rc}\n{res.stderr}"
    rss = int(report.read_text().split()[-1]) if TIME_BIN.exists() and not SANITIZED else None
    return res, rss


# --------------------------------------------------------------------------------------------------
# Reading the outputs
# --------------------------------------------------------------------------------------------------

def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:  # allow_pickle=False: classNames must be a plain '<U' array
        assert sorted(z.files) == sorted(TENSOR_NAMES), f"npz members: {z.files}"
        return {name: z[name] for name in z.files}


def load_npy_dir(path: Path, mmap: bool = True) -> dict[str, np.ndarray]:
    out = {}
    for name in TENSOR_NAMES:
        out[name] = np.load(path / f"{name}.npy", mmap_mode="r" if mmap else None)
    return out


def npz_manifest_path(npz: Path) -> Path:
    return npz.with_name(npz.name + ".manifest.json")


def load_json(path: Path) -> dict:
    with open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


XXH3_CHUNK = 4 * 1024 * 1024


def tensor_xxh3(data) -> str:
    """Manifest version 2's tensor checksum, from its definition in Schemas/manifest.schema.json:
    the bytes in chunks of 4 MiB (the last one shorter, none for no bytes), each chunk's XXH3-128
    (seed 0) in canonical big-endian form, and the XXH3-128 of those digests concatenated."""
    import xxhash
    view = memoryview(data).cast("B")
    digests = b"".join(xxhash.xxh3_128(view[i:i + XXH3_CHUNK], seed=0).digest()
                       for i in range(0, len(view), XXH3_CHUNK))
    return xxhash.xxh3_128(digests, seed=0).hexdigest()


class TensorXXH3:
    """The same checksum fed piece by piece (for data too large to hold)."""

    def __init__(self):
        import xxhash
        self._xxhash = xxhash
        self._digests = []
        self._chunk = xxhash.xxh3_128(seed=0)
        self._filled = 0

    def update(self, data) -> None:
        view = memoryview(data).cast("B")
        while len(view):
            n = min(len(view), XXH3_CHUNK - self._filled)
            self._chunk.update(view[:n])
            self._filled += n
            view = view[n:]
            if self._filled == XXH3_CHUNK:
                self._digests.append(self._chunk.digest())
                self._chunk, self._filled = self._xxhash.xxh3_128(seed=0), 0

    def hexdigest(self) -> str:
        tail = [self._chunk.digest()] if self._filled else []
        return self._xxhash.xxh3_128(b"".join(self._digests + tail), seed=0).hexdigest()


def tensor_digest(manifest: dict, record: dict, data) -> tuple[str, str]:
    """(recorded, computed) checksum of a tensor record, by the manifest's version: SHA-256 in
    version 1, the chunked XXH3-128 in version 2."""
    version = manifest["version"]
    if version == 1:
        assert "xxh3" not in record, f"version 1 record with xxh3: {record}"
        return record["sha256"], hashlib.sha256(data).hexdigest()
    assert version == 2, f"unknown manifest version {version}"
    assert "sha256" not in record, f"version 2 record with sha256: {record}"
    return record["xxh3"], tensor_xxh3(data)


def tensor_name(entry_name: str) -> str:
    """The contract does not say whether a tensor is called 'trainXs' or 'trainXs.npy'; accept both."""
    return entry_name[:-4] if entry_name.endswith(".npy") else entry_name


def validate_against_schema(manifest: dict) -> bool:
    """Validates with jsonschema if Schemas/manifest.schema.json exists; returns whether it did."""
    if not SCHEMA_PATH.is_file():
        return False
    import jsonschema
    schema = load_json(SCHEMA_PATH)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    cls(schema).validate(manifest)
    return True


def check_manifest(manifest: dict, arrays: dict[str, np.ndarray], root: Path | None = None) -> None:
    """Cross-checks a manifest with the arrays it describes (and with the sources under root)."""
    validate_against_schema(manifest)
    tool = manifest["tool"]
    assert tool["name"] == "imgconv" and isinstance(tool["version"], str) and tool["version"]

    xs, ys, names = arrays["trainXs"], arrays["trainYs"], arrays["classNames"]

    # tensors: name, shape, dtype, checksum of the raw C-order little-endian data bytes (version 2:
    # the chunked XXH3-128; version 1: SHA-256)
    assert manifest["version"] == 2, f"imgconv writes manifest version 2, not {manifest['version']}"
    tensors = {tensor_name(t["name"]): t for t in manifest["tensors"]}
    assert set(tensors) == set(TENSOR_NAMES), f"manifest tensors: {sorted(tensors)}"
    for name, arr in arrays.items():
        t = tensors[name]
        assert list(t["shape"]) == list(arr.shape), f"{name}: manifest shape {t['shape']} vs {arr.shape}"
        assert np.dtype(t["dtype"]) == arr.dtype, f"{name}: manifest dtype {t['dtype']} vs {arr.dtype}"
        data = np.ascontiguousarray(arr)
        assert data.dtype.byteorder in ("<", "|", "="), f"{name} is not little-endian: {data.dtype}"
        recorded, computed = tensor_digest(manifest, t, data.tobytes())
        assert recorded == computed, f"{name}: checksum mismatch"

    # classes: index, name, count
    classes = manifest["classes"]
    assert [c["index"] for c in classes] == list(range(len(names)))
    assert [c["name"] for c in classes] == names.tolist()
    counts = np.bincount(np.asarray(ys), minlength=len(names)) if len(ys) else np.zeros(len(names), int)
    assert [c["count"] for c in classes] == counts.tolist()

    # files: one per image, in tensor order
    files = manifest["files"]
    assert len(files) == xs.shape[0] == ys.shape[0]
    assert [f["label"] for f in files] == np.asarray(ys).tolist()
    for f in files:
        assert "\\" not in f["path"] and not f["path"].startswith("/"), f["path"]
        assert f["path"].split("/")[0] == names[f["label"]], f"{f['path']} is not under class {names[f['label']]}"
        if root is not None:
            assert f["sha256"].lower() == sha256_file(root / f["path"]), f"file sha256 mismatch: {f['path']}"
        if root is not None and "format" in f:
            assert f["format"] == sniff(root / f["path"]), f"{f['path']}: format {f['format']!r}"
    assert isinstance(manifest["skipped"], list)
    for s in manifest["skipped"]:
        assert isinstance(s["path"], str) and isinstance(s["reason"], str) and s["reason"]
    assert isinstance(manifest["options"], dict)
    summary = manifest.get("summary")  # not in the brief's contract, but in the schema: keep it honest
    if isinstance(summary, dict):
        if "images" in summary:
            assert summary["images"] == xs.shape[0], f"summary.images {summary['images']} vs {xs.shape[0]}"
        if "skipped" in summary:
            assert summary["skipped"] == len(manifest["skipped"])
        if isinstance(summary.get("skippedByReason"), dict):
            assert sum(summary["skippedByReason"].values()) == len(manifest["skipped"])
        if isinstance(summary.get("formats"), dict):
            per_format: dict[str, int] = {}
            for f in files:
                per_format[f["format"]] = per_format.get(f["format"], 0) + 1
            assert summary["formats"] == per_format, f"summary.formats {summary['formats']} vs the files' {per_format}"


def skipped_paths(manifest: dict) -> list[str]:
    return [s["path"] for s in manifest["skipped"]]


# --------------------------------------------------------------------------------------------------
# Scanning, as the contract describes it, to know the expected order independently of the tool
# --------------------------------------------------------------------------------------------------

PNG_SIG = b"\x89PNG\r\n\x1a\n"


def sniff(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(PNG_SIG):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":  # ISO BMFF: the major and compatible brands (as ImageFormat.sniff)
        box = head
        end = min(len(box), int.from_bytes(box[:4], "big"))
        brands = {box[i:i + 4] for i in range(8, end - 3, 4) if i != 12}
        if brands & {b"avif", b"avis"}:
            return "avif"
        if brands & {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}:
            return "heif"
    if head.startswith(b"BM") and len(head) >= 14:
        return "bmp"
    if _bare_dib(head[:20]):
        return "bmp"
    return None


def _bare_dib(h: bytes) -> bool:
    """A DIB without the BMP file header: a known info-header size, 1 plane, a BMP bit depth, a
    positive size and (in longer headers) a known compression."""
    if len(h) < 16:
        return False
    size, depths = struct.unpack_from("<I", h)[0], (1, 4, 8, 16, 24, 32)
    if size == 12:
        w, hh, planes, bits = struct.unpack_from("<4H", h, 4)
        return w > 0 and hh > 0 and planes == 1 and bits in depths
    if size not in (16, 40, 52, 56, 64, 108, 124):
        return False
    w, hh, planes, bits = struct.unpack_from("<iiHH", h, 4)
    if w <= 0 or hh == 0 or planes != 1 or bits not in depths:
        return False
    return size == 16 or (len(h) >= 20 and struct.unpack_from("<I", h, 16)[0] in (0, 1, 2, 3, 6))


def _ignored(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def expected_classes(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not _ignored(p.name))


def expected_files(root: Path) -> list[tuple[str, int]]:
    """(relative path, label) of every file with a PNG/JPEG/TIFF/BMP/GIF/WebP signature, in contract order:
    classes by code point, then relative paths compared component by component."""
    out = []
    for label, cls in enumerate(expected_classes(root)):
        rels = []
        for dirpath, dirnames, filenames in os.walk(root / cls):
            dirnames[:] = [d for d in dirnames if not _ignored(d)]
            for fn in filenames:
                if _ignored(fn):
                    continue
                p = Path(dirpath) / fn
                if p.is_file() and sniff(p) is not None:
                    rels.append(p.relative_to(root).as_posix())
        rels.sort(key=lambda r: tuple(r.split("/")))  # str compare == code-point compare
        out += [(r, label) for r in rels]
    return out


# --------------------------------------------------------------------------------------------------
# Pixel references
# --------------------------------------------------------------------------------------------------

def pil_array(path: Path, mode: str) -> np.ndarray:
    """np.asarray(Image.open(p).convert(mode)) with an explicit channel axis."""
    import warnings
    from PIL import Image
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Palette images with Transparency expressed in bytes..."
        with Image.open(path) as im:
            a = np.asarray(im.convert(mode))
    return a[..., None] if a.ndim == 2 else a


def png_info(path: Path) -> dict:
    """IHDR facts: width, height, bit_depth, color_type, and whether tRNS is present."""
    data = Path(path).read_bytes()
    assert data.startswith(PNG_SIG)
    w, h, bd, ct = struct.unpack(">IIBB", data[16:26])
    return {"width": w, "height": h, "bit_depth": bd, "color_type": ct, "trns": b"tRNS" in data[:data.find(b"IDAT")]}


def pypng_array(path: Path) -> np.ndarray:
    """Stored samples (no sBIT rescaling, no gamma) via pypng's raw reader, (H, W, planes) uint16.
    A tRNS colour (gray or RGB) becomes an alpha plane (0 where the colour matches, else max);
    a palette is expanded to RGB(A). Meant for 16-bit files, which Pillow reduces to 8 bits."""
    import png
    r = png.Reader(filename=str(path))
    w, h, rows, info = r.read()  # read(), not asDirect(): asDirect rescales by sBIT
    planes = info["planes"]
    a = np.vstack([np.asarray(row, dtype=np.uint32) for row in rows]).reshape(h, w, planes)
    maxval = (1 << info["bitdepth"]) - 1
    if r.colormap:
        pal = np.array([tuple(e) + ((255,) if len(e) == 3 else ()) for e in info["palette"]], dtype=np.uint32)
        a = pal[a[..., 0]]
        if not r.trns:
            a = a[..., :3]
    elif info.get("transparent") is not None:
        t = np.asarray(info["transparent"], dtype=np.uint32)
        alpha = np.where((a == t).all(axis=-1), 0, maxval).astype(np.uint32)
        a = np.concatenate([a, alpha[..., None]], axis=-1)
    return a.astype(np.uint16 if info["bitdepth"] > 8 else np.uint8)


def tifffile_array(path: Path) -> np.ndarray:
    """The first page as tifffile reads it, as (H, W, S) even for planar-separate files and gray."""
    import tifffile
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        a = page.asarray()
        if a.ndim == 3 and int(page.planarconfig) == 2:  # SEPARATE: (S, H, W)
            a = np.moveaxis(a, 0, -1)
    return a[..., None] if a.ndim == 2 else a


def unpremultiplied(a: np.ndarray) -> np.ndarray:
    """8-bit colour samples (..., C + alpha) divided by their associated alpha as Pillow's RGBa to
    RGBA does (checked against Pillow in test_tiff.py): 255*c // a clipped to 255, unchanged where
    alpha is 0 or 255."""
    c, alpha = a[..., :-1].astype(np.int64), a[..., -1:].astype(np.int64)
    divided = np.minimum(255, 255 * c // np.maximum(alpha, 1))
    keep = (alpha == 0) | (alpha == 255)
    return np.concatenate([np.where(keep, c, divided), alpha], axis=-1).astype(np.uint8)


def tiff_extrasamples(path: Path) -> tuple[int, ...]:
    import tifffile
    with tifffile.TiffFile(path) as tf:
        return tuple(int(e) for e in tf.pages[0].extrasamples)


def pil_l_from_rgb(rgb: np.ndarray) -> np.ndarray:
    """Pillow's convert('L'): L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16, for 8-bit RGB."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def assert_equal_pixels(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs reference {expected.shape}"
    if not np.array_equal(actual, expected):
        diff = np.abs(actual.astype(np.int64) - expected.astype(np.int64))
        idx = np.unravel_index(np.argmax(diff), diff.shape)
        raise AssertionError(
            f"{what}: {int((diff != 0).sum())} of {diff.size} samples differ, max abs diff {int(diff.max())} "
            f"at {tuple(int(i) for i in idx)} (got {actual[idx]}, reference {expected[idx]})")


# --------------------------------------------------------------------------------------------------
# Byte surgery on outputs
# --------------------------------------------------------------------------------------------------

def npy_header_length(buf: bytes) -> int:
    """Bytes before the data in an NPY stream: magic(6) + version(2) + len field(2 or 4) + header."""
    assert buf[:6] == b"\x93NUMPY", "not an NPY stream"
    major = buf[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", buf[8:10])
        return 10 + hlen
    (hlen,) = struct.unpack("<I", buf[8:12])
    return 12 + hlen


def zip_member_data_offset(npz: Path, member: str) -> tuple[int, zipfile.ZipInfo]:
    """Absolute offset of a member's (possibly compressed) data: local header offset + 30 +
    the *local* header's name length + extra length."""
    with zipfile.ZipFile(npz) as zf:
        info = zf.getinfo(member)
    with open(npz, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
    assert local[:4] == b"PK\x03\x04", "no local file header at header_offset"
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    return info.header_offset + 30 + name_len + extra_len, info


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        assert len(b) == 1, f"offset {offset} is past the end of {path}"
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def dir_snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder (relative path -> bytes), to prove a failed run changed nothing."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[p.relative_to(folder).as_posix()] = p.read_bytes()
        elif p.is_dir():
            out[p.relative_to(folder).as_posix() + "/"] = b""
    return out


# --------------------------------------------------------------------------------------------------
# Fixture selection (done at collection time; an absent fixture folder gives one skipped case)
# --------------------------------------------------------------------------------------------------

def params_or_skip(items: list, reason: str, ids=None) -> list:
    if items:
        return [pytest.param(i, id=(ids(i) if ids else None)) for i in items]
    return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="missing")]


def pngsuite_files() -> list[Path]:
    d = FIXTURES / "pngsuite"
    if not d.is_dir():
        return []
    return sorted(p for p in d.rglob("*.png") if p.is_file())


def read_manifest_tsv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def parse_details(details: str) -> dict:
    """'tifffile: pages=1 shape=(16, 16) dtype=uint8 photometric=RGB ...' -> {'pages': '1', ...}"""
    out = {}
    for k, v in re.findall(r"(\w+)=(\([^)]*\)|\S+)", details or ""):
        out.setdefault(k, v)
    return out


_TIFF_COMPRESSION = {"1": "NONE", "5": "LZW", "8": "ADOBE_DEFLATE", "32946": "DEFLATE", "32773": "PACKBITS"}
_TIFF_PHOTOMETRIC = {"1": "MINISBLACK", "2": "RGB"}
_TIFF_SAMPLEFORMAT = {"1": "UINT"}
# Compressions every libtiff build decodes; JPEG/OJPEG-in-TIFF (lossy, decoder-dependent), ZSTD,
# WEBP, LZMA, CCITT are left out of the exact comparison (the contract does not name them).
TIFF_COMPRESSIONS = {"NONE", "LZW", "PACKBITS", "ADOBE_DEFLATE", "DEFLATE"}


# Files whose IFD chain loops: a fuzzing case, not a picture; whether the first page is still read
# is not in the contract.
TIFF_EXCLUDED_SUBSTRINGS = ("ifd_loop",)


def _tiff_row_supported(d: dict) -> bool:
    comp = _TIFF_COMPRESSION.get(d.get("compression", ""), d.get("compression", ""))
    phot = _TIFF_PHOTOMETRIC.get(d.get("photometric", ""), d.get("photometric", ""))
    sfmt = _TIFF_SAMPLEFORMAT.get(d.get("sampleformat", ""), d.get("sampleformat", ""))
    spp = int(d.get("spp", "0") or 0)
    return (d.get("pages") == "1" and d.get("bps") in ("8", "16") and d.get("dtype") in ("uint8", "uint16")
            and sfmt == "UINT" and comp in TIFF_COMPRESSIONS and d.get("decode", "ok") == "ok"
            and ((phot == "MINISBLACK" and spp in (1, 2)) or (phot == "RGB" and spp in (3, 4))))


def supported_tiff_files() -> list[Path]:
    """TIFF fixtures in the contract's scope: one page, 8/16-bit unsigned, MINISBLACK (gray,
    gray+alpha) or RGB (RGB, RGBA), strips or tiles, contiguous or separate planes, and a
    compression any libtiff decodes. From the fixture manifest.tsv when there is one, else by
    asking tifffile."""
    d = FIXTURES / "tiff"
    manifest = d / "manifest.tsv"
    picked = []
    if not d.is_dir():
        unlisted = []
    elif manifest.is_file():
        for row in read_manifest_tsv(manifest):
            details = row.get("details", "")
            if not details.startswith("tifffile:"):
                continue
            p = d / row["file"]
            if any(x in p.name for x in TIFF_EXCLUDED_SUBSTRINGS):
                continue
            if p.is_file() and _tiff_row_supported(parse_details(details)):
                picked.append(p)
        unlisted = []
    else:
        unlisted = sorted(d.rglob("*"))
    # the project-made files in generated/ have no manifest line
    gen = FIXTURES / "generated"
    unlisted += sorted(gen.rglob("*")) if gen.is_dir() else []
    return sorted(picked) + _tiff_by_tifffile(unlisted)


def _tiff_by_tifffile(paths) -> list[Path]:
    import tifffile
    picked = []
    for p in paths:
        if not p.is_file() or sniff(p) != "tiff" or any(x in p.name for x in TIFF_EXCLUDED_SUBSTRINGS):
            continue
        try:
            with tifffile.TiffFile(p) as tf:
                pg = tf.pages[0]
                info = {"pages": str(len(tf.pages)), "bps": str(pg.bitspersample), "dtype": str(pg.dtype),
                        "sampleformat": str(int(pg.sampleformat)), "compression": str(int(pg.compression)),
                        "photometric": str(int(pg.photometric)), "spp": str(pg.samplesperpixel)}
        except Exception:
            continue
        if _tiff_row_supported(info):
            picked.append(p)
    return picked


def jpeg_sof(path: Path) -> dict | None:
    """Walks the JPEG markers to the first SOFn: {'sof': n, 'precision', 'height', 'width', 'components'}."""
    data = Path(path).read_bytes()
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (seglen,) = struct.unpack(">H", data[i + 2:i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            p, h, w, nc = struct.unpack(">BHHB", data[i + 4:i + 10])
            return {"sof": marker - 0xC0, "precision": p, "height": h, "width": w, "components": nc}
        if marker in (0xD9, 0xDA):
            return None
        i += 2 + seglen
    return None


# Files of the jpeg-decoder corpus that are damaged on purpose: libjpeg-turbo decodes them with a
# warning ("Corrupt JPEG data", "premature end", inconsistent progression) or not at all. Whether
# imgconv accepts such warnings is not in the contract, so they are not compared.
JPEG_DAMAGED = {"extraneous-data.jpg", "mjpeg.jpg", "partial_progressive.jpg", "progressive-missing-ac.jpg",
                "progressive-missing-dc.jpg", "missing-sof.jpg", "missing-sos.jpg"}
JPEG_MAX_PIXELS = 1_000_000  # keeps the suite fast; the big photos add nothing the small ones lack


def supported_jpeg_files() -> list[Path]:
    """JPEG fixtures in the contract's scope: baseline/extended/progressive Huffman, 8-bit, gray,
    YCbCr/RGB or CMYK/YCCK, no EXIF rotation (the contract has no orientation rule), Pillow-decodable."""
    candidates = []
    for d in (FIXTURES / "jpeg", FIXTURES / "generated"):
        candidates += sorted(d.rglob("*")) if d.is_dir() else []
    from PIL import Image
    picked = []
    for p in candidates:
        if not p.is_file() or p.name in JPEG_DAMAGED or sniff(p) != "jpeg":
            continue
        sof = jpeg_sof(p)
        if not sof or sof["sof"] not in (0, 1, 2) or sof["precision"] != 8 or sof["components"] not in (1, 3, 4):
            continue
        if sof["width"] * sof["height"] > JPEG_MAX_PIXELS:
            continue
        try:
            with Image.open(p) as im:
                if im.getexif().get(0x0112, 1) not in (0, 1):
                    continue
                if im.mode not in ("L", "RGB", "CMYK"):
                    continue
                im.load()
        except Exception:
            continue
        picked.append(p)
    return picked


def fixture_id(p: Path | None, base: Path) -> str:
    return "missing" if p is None else p.relative_to(base).as_posix()


# --------------------------------------------------------------------------------------------------
# Fidelity tables (test_fidelity*.py): a table of (file, outcome, detail) against its expectation
# --------------------------------------------------------------------------------------------------

def read_expectation(tsv: Path) -> dict[str, str]:
    """file -> outcome from an expectation TSV (blank lines and # comments skipped)."""
    if not tsv.is_file():
        return {}
    out = {}
    for line in tsv.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            f, outcome = line.split("\t")[:2]
            out[f] = outcome
    return out


def check_fidelity_table(table, known_gaps: dict, tsv: Path) -> None:
    """Fails on a mismatch not listed in `known_gaps`, on a stale known gap, and on any difference
    from the expectation `tsv`; with IMGCONV_FIDELITY_WRITE=1 writes the expectation first
    (refused while a row is an unlisted mismatch)."""
    problems = []
    outcomes = {f: o for f, o, _ in table}
    for f in known_gaps:
        if f not in outcomes:
            problems.append(f"KNOWN_GAPS lists {f}, which is not in the corpus")
        elif outcomes[f] != "mismatch":
            problems.append(f"KNOWN_GAPS lists {f}, but it is now {outcomes[f]!r}: remove the entry and add "
                            f"'{f}\\t{outcomes[f]}' to {tsv.name}")
    mismatches = [(f, d) for f, o, d in table if o == "mismatch" and f not in known_gaps]
    problems += [f"mismatch: {f}: {d}" for f, d in mismatches]
    actual = {f: o for f, o, _ in table if f not in known_gaps}
    if os.environ.get("IMGCONV_FIDELITY_WRITE") == "1":
        assert not mismatches, "refusing to write an expectation with mismatches:\n" + "\n".join(problems)
        tsv.write_text("".join(f"{f}\t{o}\n" for f, o in sorted(actual.items())), encoding="utf-8")
        print(f"wrote {tsv.name} ({len(actual)} rows)")
    expected = read_expectation(tsv)
    if not expected:
        problems.append(f"{tsv.name} is missing or empty")
    for f in sorted(set(expected) | set(actual)):
        if expected.get(f) != actual.get(f):
            problems.append(f"table differs from {tsv.name}: {f}: expected {expected.get(f)!r}, "
                            f"got {actual.get(f)!r}")
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


# --------------------------------------------------------------------------------------------------
# Sharded conversion on engines (Dask, Slurm, Spark)
# --------------------------------------------------------------------------------------------------

def build_engine_dataset(root: Path, n_regular: int = 1980) -> int:
    """The mixed dataset of the engine tests (test_engines_*.py): n_regular 16x16 PNGs and
    JPEGs in three classes, 10 gray images, 5 EXIF-rotated JPEGs, 3 PNGs whose data is cut, a PNG
    with a bad header and a non-image. Returns the number of files that convert (--skip-bad)."""
    from PIL import Image
    rng = np.random.default_rng(2026)
    classes = ["cat", "dog", "fox"]

    def save(rel: str, img, **kw):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        img.save(p, **kw)

    for i in range(n_regular):
        arr = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        save(f"{classes[i % 3]}/{i:04d}.{'png' if i % 2 else 'jpg'}", Image.fromarray(arr))
    for i in range(10):   # gray images among colour ones: replicated to 3 channels
        save(f"{classes[i % 3]}/gray{i}.png", Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)))
    for i, orientation in enumerate((6, 8, 3, 6, 8)):   # stored 20x16, upright 16x20 for 6 and 8
        exif = Image.Exif()
        exif[0x0112] = orientation
        save(f"{classes[i % 3]}/rotated{i}.jpg",
             Image.fromarray(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)), exif=exif)
    for i in range(3):   # headers read, data cut: skipped by the shard that decodes them
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, format="PNG")
        (root / classes[i] / f"corrupt{i}.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) * 2 // 3])
    (root / "dog" / "badheader.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (root / "fox" / "notes.txt").write_bytes(b"not an image\n")
    return n_regular + 10 + 5


def cmp_output(a: Path, b: Path) -> None:
    """a equals b byte for byte: a file and its manifest, or every file of a folder."""
    if a.is_dir():
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        for p in a.iterdir():
            assert filecmp.cmp(p, b / p.name, shallow=False), f"{p.name} differs"
    else:
        assert filecmp.cmp(a, b, shallow=False), f"{a.name} differs"
        assert filecmp.cmp(f"{a}.manifest.json", f"{b}.manifest.json", shallow=False)


def build_limit_probe(out_dir: Path, name: str, packages: Sequence[str], extra: Sequence[str] = (),
                      sources: Sequence[str] = ()) -> Path:
    """Builds bench/limit/<name>.c (and `sources`, with their flags) into out_dir with
    bench/limit/Makefile's command (make itself is not on every machine that runs these tests),
    the C compiler at hand and pkg-config's flags for `packages`."""
    cc = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    assert cc, f"no C compiler (cc, gcc or clang) on PATH to build bench/limit/{name}"
    assert shutil.which("pkg-config"), "pkg-config is missing (scripts/setup.sh installs it)"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", *packages], capture_output=True, text=True)
    assert flags.returncode == 0, f"pkg-config {' '.join(packages)}: {flags.stderr}"
    out = Path(out_dir) / name
    cmd = [cc, "-O2", "-Wall", "-o", str(out), str(REPO_ROOT / "bench" / "limit" / f"{name}.c"), *sources] + flags.stdout.split() + list(extra)
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, f"building {name} failed: {' '.join(cmd)}\n{res.stdout}\n{res.stderr}"
    return out


def run_probe(probe: Path, *args, expect_rc: int = 0) -> subprocess.CompletedProcess:
    """Runs a bench/limit probe; its exit status must be expect_rc."""
    res = subprocess.run([str(probe)] + [str(a) for a in args], capture_output=True, text=True, timeout=120)
    assert res.returncode == expect_rc, f"{Path(probe).name} exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res
