"""Decoder fidelity table (issue #3's acceptance test).

Every image file under Tests/Fixtures/{pngsuite,tiff,jpeg,webp,gif,generated,bmp} is converted alone
(a one-file dataset) and judged against an independent reader:

  exact     our tensor equals the reference: same dtype (after imgconv's documented decoding
            policy), same shape, same values;
  refused   the references cannot read it (or it is one of the deliberately broken files) and
            imgconv exits 65 with exactly one stderr line naming the file;
  mismatch  anything else: values differ, imgconv refuses what a reference reads, accepts what must
            be refused, dies, prints several lines...

The table is printed (`pytest -s` shows it) and compared with `fidelity_expected.tsv` beside this
file. Any `mismatch` fails the test, unless the file is listed in KNOWN_GAPS below (real decoder
gaps, kept out of the expectation file and counted separately until the decoder is fixed; an entry
that starts to decode exactly fails the test too, so that it gets removed).

Regenerate the expectation (refused while any row is a mismatch):
    IMGCONV_FIDELITY_WRITE=1 python3 -m pytest Tests/Interop/test_fidelity.py -s

References, by format (the decoding policy is README.md's "What goes in, what comes out" and the
doc comments of Sources/ImgConvCodecs/*.swift):
  PNG   Pillow (`Image.open` + `ImageOps.exif_transpose` + `convert` to the mode with the channels
        libpng gives: palette/tRNS expanded to RGB(A), 1/2/4-bit gray widened to 8 bits), except
        16-bit files, which Pillow reduces to 8 bits: their reference is pypng's stored samples
        (`interop_helpers.pypng_array`).
  JPEG  Pillow: `Image.open` + `exif_transpose`, L stays L, RGB, CMYK/YCCK `convert('RGB')`.
  TIFF  Pillow as for JPEG (first frame; palette and CMYK `convert('RGB')`), except where Pillow
        cannot read the file or where its mode does not carry the stored sample type (16-bit RGB,
        RGBA and CMYK reduced to 8 bits, int8 read as `L`, odd depths it does not open): then
        tifffile's first page, brought to the policy (each adaptation is commented in
        `_tiff_policy`).
  BMP   Pillow: `Image.open` + `convert` to the mode with imgconv's channels (palette -> RGB,
        '1' -> L; L, RGB and 32-bit bit fields with alpha as RGBA kept). The bit-field layouts
        Pillow refuses (`bmpsuite/g/rgb32bf.bmp`, the 4-4-4-4 files of image-rs) are compared
        with the values their masks define, computed by `bmp_masks_array`.
  WebP  Pillow: `Image.open` + `exif_transpose` (the EXIF chunk, else XMP's tiff:Orientation),
        RGB or RGBA as Pillow opens it (its libwebp 1.6; imgconv uses the system's libwebp).
  GIF   Pillow's first frame: `Image.open` + `convert` of mode P to RGB, or to RGBA when
        `info["transparency"]` is set; mode L (no colour table, or an identity gray one) stays L, or
        LA with a transparent index. Pillow composes the first frame onto the logical screen (index 0,
        or the transparent index, around it). Every frame (`--frames all`) is judged in
        test_animation.py against Pillow's `ImageSequence`.
"""

from __future__ import annotations

import os
import struct
import subprocess
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import interop_helpers as H
from corpus_runner import corpus_files, rel_of, run_cli

HERE = Path(__file__).resolve().parent
EXPECTED_TSV = HERE / "fidelity_expected.tsv"

# Files broken on purpose by the corpus that made them. imgconv must refuse them even where a
# lenient reader decodes something (Pillow does not check PNG CRCs; libjpeg only warns about
# inserted bytes). Other files that no reference reads are "refused" on that ground alone.
DELIBERATELY_BROKEN = {
    # PngSuite: every x*.png is a corrupted file by the suite's own naming (PngSuite.txt).
    **{f"pngsuite/{n}": "PngSuite corrupted file (x*)" for n in (
        "xc1n0g08.png", "xc9n2c08.png", "xcrn0g04.png", "xcsn0g01.png", "xd0n2c08.png", "xd3n2c08.png",
        "xd9n2c08.png", "xdtn0g01.png", "xhdn0g08.png", "xlfn0g04.png", "xs1n0g01.png", "xs2n0g01.png",
        "xs4n0g01.png", "xs7n0g01.png")},
    "jpeg/jpeg-decoder/crashtest/missing-sof.jpg": "no frame header (jpeg-decoder crash test)",
    "jpeg/jpeg-decoder/crashtest/missing-sos.jpg": "no scan (jpeg-decoder crash test)",
    "jpeg/jpeg-decoder/reftest/partial_progressive.jpg": "progressive scan data cut short (libjpeg: 'premature end of data segment')",
    "jpeg/jpeg-decoder/reftest/progressive-missing-dc.jpg": "AC scan without its DC scan (libjpeg: 'Inconsistent progression sequence')",
}
# A deliberately broken JPEG that Pillow still decodes must, with --allow-truncated-jpeg (the
# documented opt-in for streams libjpeg decodes with a warning), give exactly Pillow's pixels.
# Stray bytes between segments ("N extraneous bytes before marker": `extraneous-data.jpg`, and the
# Motion-JPEG frame `mjpeg.jpg`, whose encoder pads restart intervals) are no damage: accepted by
# default, with the warning in the manifest, and judged exact like any file.

# Real gaps: imgconv refuses or mis-decodes a file a reference reads. Printed and counted apart,
# left out of fidelity_expected.tsv. Remove an entry once the decoder handles the file (the test
# then asks for its expectation line).
KNOWN_GAPS: dict[str, str] = {
    "tiff/libtiff/testfax3_bug_513.tiff":
        "system libtiff 4.5.0 fails TIFFReadEncodedStrip ('Fax3Decode1D: Buffer overflow at line 0'); "
        "Pillow's libtiff 4.7.2 and tifffile read the 2x32 pattern",
}


# --------------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------------

class Ref:
    """A reference decode: array (H, W, C) or None with the reasons every reader gave."""

    def __init__(self, array=None, source="", errors=(), notes=()):
        self.array = array
        self.source = source
        self.errors = list(errors)
        self.notes = list(notes)


def _short(e: BaseException) -> str:
    s = f"{type(e).__name__}: {e}".replace("\t", " ").replace("\n", " ").replace(str(H.FIXTURES) + os.sep, "")
    return s[:120]


def orient(a: np.ndarray, o: int) -> np.ndarray:
    """PIL.ImageOps.exif_transpose on an (H, W, C) array: 2 FLIP_LEFT_RIGHT, 3 ROTATE_180,
    4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90 (Pillow's rotations
    are counter-clockwise)."""
    if o == 2:
        return a[:, ::-1]
    if o == 3:
        return a[::-1, ::-1]
    if o == 4:
        return a[::-1]
    if o == 5:
        return a.swapaxes(0, 1)
    if o == 6:
        return np.rot90(a, -1)
    if o == 7:
        return a.swapaxes(0, 1)[::-1, ::-1]
    if o == 8:
        return np.rot90(a, 1)
    return a


def _chan(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.byteorder == ">":  # Pillow's I;16B: same values, native order
        a = a.astype(a.dtype.newbyteorder("="))
    return np.ascontiguousarray(a[..., None] if a.ndim == 2 else a)


def _pillow(path: Path, target_for_mode) -> tuple[np.ndarray | None, str | None, str]:
    """Image.open + exif_transpose + convert(target_for_mode(im)). Returns (array, error, mode)."""
    from PIL import Image, ImageOps
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                mode = im.mode
                im.load()
                im2 = ImageOps.exif_transpose(im)
                target = target_for_mode(im2)
                if target is not None and target != im2.mode:
                    im2 = im2.convert(target)
                return _chan(np.asarray(im2)), None, mode
    except Exception as e:  # noqa: BLE001 - any failure is "Pillow refuses"
        return None, _short(e), ""


def _pil_orientation(path: Path) -> int:
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                o = im.getexif().get(0x0112, 1)
        return int(o) if int(o) in range(1, 9) else 1
    except Exception:  # noqa: BLE001
        return 1


# ---- PNG -----------------------------------------------------------------------------------------

def _png_target(im) -> str | None:
    """The Pillow mode with libpng's output channels: palette -> RGB(A) (tRNS becomes alpha),
    1-bit -> L (Pillow's convert widens 0/1 to 0/255, as libpng's expand_gray_1_2_4_to_8),
    a tRNS colour -> an alpha plane (convert('LA'/'RGBA') applies it)."""
    trns = "transparency" in im.info
    if im.mode == "P":
        return "RGBA" if trns else "RGB"
    if im.mode in ("1", "L"):
        return "LA" if trns else "L"
    if im.mode == "RGB":
        return "RGBA" if trns else "RGB"
    return im.mode


def _pypng_policy(path: Path, info: dict) -> np.ndarray:
    """pypng's stored samples (interop_helpers.pypng_array: palette expanded, a tRNS colour as an
    alpha plane of 0 or max) with 1/2/4-bit gray widened x(255 / (2**bits - 1)), alpha included,
    as libpng's expand_gray_1_2_4_to_8 and Pillow do; 16-bit samples kept."""
    a = H.pypng_array(path)
    if info["bit_depth"] < 8 and info["color_type"] != 3:
        a = (a.astype(np.uint32) * (255 // ((1 << info["bit_depth"]) - 1))).astype(np.uint8)
    o = _pil_orientation(path)
    return orient(a, o)


def png_reference(path: Path) -> Ref:
    errors = []
    try:
        info = H.png_info(path)
    except Exception as e:  # noqa: BLE001
        info = None
        errors.append(f"IHDR: {_short(e)}")
    if info and info["bit_depth"] == 16:
        # Pillow reduces 16-bit colour PNGs to 8 bits (and 16-bit gray to mode I): pypng's stored
        # samples are the reference; tRNS becomes an alpha plane as with libpng's tRNS_to_alpha.
        try:
            return Ref(_pypng_policy(path, info), "pypng")
        except Exception as e:  # noqa: BLE001
            errors.append(f"pypng: {_short(e)}")
        return Ref(None, errors=errors)
    if info and info["color_type"] == 0 and info["bit_depth"] < 8 and info["trns"]:
        # 1/2/4-bit gray with a tRNS gray level: Pillow compares the *raw* tRNS value with the
        # *widened* samples (tbbn0g04: level 15 never matches 0..255, so nothing is transparent);
        # the PNG spec and libpng compare raw samples. Reference: pypng, widened.
        try:
            return Ref(_pypng_policy(path, info), "pypng (tRNS on raw gray)")
        except Exception as e:  # noqa: BLE001
            errors.append(f"pypng: {_short(e)}")
    a, err, mode = _pillow(path, _png_target)
    if a is not None:
        return Ref(a, f"Pillow {mode}")
    errors.append(f"Pillow: {err}")
    if info:
        try:  # a file Pillow refuses but pypng reads is still read by a reference
            return Ref(_pypng_policy(path, info), "pypng (Pillow refuses it)")
        except Exception as e:  # noqa: BLE001
            errors.append(f"pypng: {_short(e)}")
    return Ref(None, errors=errors)


# ---- JPEG ----------------------------------------------------------------------------------------

def _jpeg_target(im) -> str | None:
    return {"L": "L", "RGB": "RGB", "CMYK": "RGB", "YCbCr": "RGB"}.get(im.mode, "RGB")


def jpeg_reference(path: Path) -> Ref:
    a, err, mode = _pillow(path, _jpeg_target)
    if a is not None:
        return Ref(a, f"Pillow {mode}")
    return Ref(None, errors=[f"Pillow: {err}"])


# ---- TIFF ----------------------------------------------------------------------------------------

def _tiff_target(im) -> str | None:
    if im.mode in ("P", "CMYK", "YCbCr", "LAB"):
        return "RGB"  # palette expands to RGB; 8-bit CMYK as Pillow's convert('RGB')
    if im.mode == "PA":
        return "RGBA"
    if im.mode == "1":
        return "L"    # 1-bit widened x255
    return None


def _policy_dtype(bits: int, fmt: int) -> np.dtype:
    """imgconv's documented output dtype for a TIFF sample type."""
    if fmt == 1 and bits <= 8:
        return np.dtype(np.uint8)
    if fmt == 1 and bits <= 16:
        return np.dtype(np.uint16)
    if fmt == 1 and 24 < bits <= 32:
        return np.dtype(np.uint32)
    if fmt == 2 and bits == 32:
        return np.dtype(np.int32)
    if bits == 64:
        return np.dtype(np.float64)  # float64, and 64-bit integers (values up to 2**53)
    return np.dtype(np.float32)  # 8/16-bit signed, 17-24-bit unsigned, float16/32: values exact in float32


def _tiff_facts(path: Path) -> dict | None:
    import tifffile
    try:
        with tifffile.TiffFile(path) as tf:
            pg = tf.pages[0]
            cmap = pg.colormap if int(pg.photometric) == 3 else None
            return {"bits": int(pg.bitspersample), "fmt": int(pg.sampleformat), "phot": int(pg.photometric),
                    "spp": int(pg.samplesperpixel), "extras": tuple(int(e) for e in pg.extrasamples),
                    "orientation": int(pg.tags.valueof(274, 1) or 1), "colormap": cmap}
    except Exception:  # noqa: BLE001
        return None


def _tiff_policy(raw: np.ndarray, f: dict) -> np.ndarray:
    """tifffile's first page (H, W, S) brought to imgconv's documented policy. Adaptations:
    - sub-byte unsigned samples: tifffile gives 0/1 (bool), 0..3, 0..15; widened x255, x85, x17
      as Pillow does (other depths <= 8 bits keep their values in uint8);
    - min-is-white (photometric 0): inverted as (2**bits - 1) - v, before widening, for every depth;
    - palette: colormap lookup, entries >> 8 as Pillow reads them (imgconv also accepts colormaps
      written with 0..255 entries; no such file is in the corpus, and Pillow reads every palette
      file of it, so this branch is a fallback);
    - 8-bit CMYK: Pillow's convert('RGB') formula (255 - K) - C*(255 - K)/255 rounded (MULDIV255);
    - extra samples: the first one is kept when it is alpha (associated 1 or unassociated 2);
      8-bit associated alpha is divided back as Pillow's RGBa to RGBA (`H.unpremultiplied`),
      deeper samples stay as stored; any other extra sample is dropped;
    - 8/16-bit signed integers, 17-24-bit unsigned, float16: converted to float32 (values kept);
      25-32-bit unsigned, 32-bit signed and float64 samples keep their type (uint32, int32, float64);
    - Orientation tag: applied as exif_transpose."""
    bits, fmt, phot, spp = f["bits"], f["fmt"], f["phot"], f["spp"]
    a = raw
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    extras = f["extras"]
    alpha = bool(extras) and extras[0] in (1, 2)
    if phot == 3:  # palette
        cmap = np.asarray(f["colormap"]).astype(np.uint32)  # (3, 2**bits)
        idx = a[..., 0].astype(np.intp)
        out = np.stack([(cmap[c][idx] >> 8) for c in range(3)], axis=-1).astype(np.uint8)
        return orient(out, f["orientation"])
    if phot == 5:  # separated: 8-bit CMYK only
        c = a[..., :4].astype(np.uint32)
        nk = 255 - c[..., 3:4]
        t = c[..., :3] * nk + 128
        out = (nk - ((t + (t >> 8)) >> 8)).astype(np.uint8)
        return orient(out, f["orientation"])
    keep = (2 if alpha and spp >= 2 else 1) if phot in (0, 1) else (4 if alpha and spp >= 4 else 3)
    a = a[..., :keep]
    if fmt == 1:
        maxv = (1 << bits) - 1
        if phot == 0:
            a = a.astype(np.int64)
            a[..., 0] = maxv - a[..., 0]
        if bits in (1, 2, 4):
            a = a.astype(np.int64) * {1: 255, 2: 85, 4: 17}[bits]
    out = a.astype(_policy_dtype(bits, fmt))
    if alpha and extras[0] == 1 and out.dtype == np.uint8 and keep in (2, 4):
        out = H.unpremultiplied(out)
    return orient(out, f["orientation"])


def tiff_reference(path: Path) -> Ref:
    errors, notes = [], []
    facts = _tiff_facts(path)
    tf_arr, tf_err = None, None
    if facts is not None:
        try:
            raw = H.tifffile_array(path)
        except Exception as e:  # noqa: BLE001 - tifffile refuses the file
            tf_err = _short(e)
        else:
            tf_arr = _tiff_policy(raw, facts)  # an error here is the harness's: it must surface
    else:
        tf_err = "cannot parse the first IFD"
    pil_arr, pil_err, mode = _pillow(path, _tiff_target)
    if pil_arr is not None and pil_arr.dtype == np.int32:
        # mode I (int16/int32 samples): values kept, as float32 or (32-bit) int32
        pil_arr = pil_arr.astype(_policy_dtype(facts["bits"], facts["fmt"]) if facts is not None else np.float32)
    # Pillow is the reference when its mode carries the stored sample type; otherwise (it narrows
    # 16-bit RGB/RGBA/CMYK to 8 bits, reads int8 as L, cannot open the file) tifffile is.
    pil_faithful = pil_arr is not None and (
        facts is None or pil_arr.dtype == _policy_dtype(facts["bits"], facts["fmt"])
        or (facts["phot"] in (3, 5) and pil_arr.dtype == np.uint8))
    if facts is not None and facts["extras"][:1] == (1,) and facts["phot"] in (0, 1, 2):
        # Associated (premultiplied) alpha: tifffile's stored samples divided back as Pillow does
        # (Pillow itself returns zero alpha for planar-separate La, and narrows 16-bit RGBa).
        pil_faithful = False
    if pil_faithful:
        if tf_arr is not None and not (tf_arr.shape == pil_arr.shape and tf_arr.dtype == pil_arr.dtype
                                       and np.array_equal(tf_arr, pil_arr)):
            notes.append("tifffile differs from Pillow")
        return Ref(pil_arr, f"Pillow {mode}", notes=notes)
    if tf_arr is not None:
        src = "tifffile" + ("" if pil_arr is None else f" (not Pillow {mode} -> {pil_arr.dtype})")
        return Ref(tf_arr, src)
    if pil_err:
        errors.append(f"Pillow: {pil_err}")
    errors.append(f"tifffile: {tf_err}")
    return Ref(None, errors=errors)


# ---- BMP -----------------------------------------------------------------------------------------

def _bmp_target(im) -> str | None:
    """The Pillow mode with imgconv's channels: palette -> RGB (indices past the palette black),
    '1' -> L (0/255); L, RGB and RGBA (32-bit bit fields with alpha) as they are."""
    return {"P": "RGB", "1": "L"}.get(im.mode)


def bmp_masks_array(path: Path) -> np.ndarray | None:
    """The pixels of a 16/24/32-bit BITFIELDS BMP as its masks define them, computed here with numpy
    (for the files Pillow refuses: "Unsupported BMP bitfields layout"): each field is
    (p & mask) >> shift scaled v * 255 // (2**n - 1) (Pillow's 5-5-5 and 5-6-5 scaling: 4-bit
    fields x17, 8-bit fields as they are); alpha is kept only in 32-bit files with an alpha mask
    (Pillow's rule; it ignores the alpha mask of 16-bit files); rows bottom-up unless the height is
    negative. None when the file is not such a BMP."""
    d = path.read_bytes()
    if d[:2] != b"BM" or len(d) < 54:
        return None
    (offset,), (hsize,) = struct.unpack_from("<I", d, 10), struct.unpack_from("<I", d, 14)
    if hsize not in (40, 52, 56, 108, 124):
        return None
    w, h, _planes, bits, comp = struct.unpack_from("<iiHHI", d, 18)
    if comp != 3 or bits not in (16, 24, 32):
        return None
    # masks: after a 40-byte header (R, G, B), else in the header (A from 56 bytes on)
    n_masks = 3 if hsize in (40, 52) else 4
    masks = list(struct.unpack_from(f"<{n_masks}I", d, 54)) + [0] * (4 - n_masks)
    stride = ((w * bits + 31) >> 5) * 4
    rows = np.frombuffer(d, np.uint8, count=stride * abs(h), offset=offset).reshape(abs(h), stride)
    raw = rows[:, : w * bits // 8].reshape(abs(h), w, bits // 8).astype(np.uint64)
    p = sum(raw[..., i] << np.uint64(8 * i) for i in range(bits // 8))
    if h > 0:
        p = p[::-1]
    keep = masks[:4] if bits == 32 and masks[3] else masks[:3]
    planes = []
    for m in keep:
        if m == 0:
            planes.append(np.zeros(p.shape, np.uint8))
            continue
        shift = (m & -m).bit_length() - 1
        top = (1 << bin(m).count("1")) - 1
        v = (p & np.uint64(m)) >> np.uint64(shift)
        planes.append((v * 255 // top).astype(np.uint8))
    return np.stack(planes, axis=-1)


def bmp_reference(path: Path) -> Ref:
    a, err, mode = _pillow(path, _bmp_target)
    if a is not None:
        return Ref(a, f"Pillow {mode}")
    if err and "bitfields layout" in err:
        masks = bmp_masks_array(path)
        if masks is not None:
            return Ref(masks, "the masks (Pillow: unsupported bit-field layout)")
    return Ref(None, errors=[f"Pillow: {err}"])


# ---- WebP, GIF -----------------------------------------------------------------------------------

def _palette_target(im) -> str | None:
    """Pillow's GIF/WebP modes as imgconv's channels: P expanded to RGB, or RGBA when a transparent
    index is set; L stays L, or LA with a transparent gray level; RGB and RGBA (WebP) kept."""
    trns = "transparency" in im.info
    if im.mode == "P":
        return "RGBA" if trns else "RGB"
    if im.mode == "L":
        return "LA" if trns else "L"
    return None


def animated_reference(path: Path) -> Ref:
    a, err, mode = _pillow(path, _palette_target)
    if a is not None:
        return Ref(a, f"Pillow {mode}")
    return Ref(None, errors=[f"Pillow: {err}"])


def reference(path: Path) -> Ref:
    kind = H.sniff(path)
    if kind == "bmp":
        return bmp_reference(path)
    if kind == "png":
        return png_reference(path)
    if kind == "jpeg":
        return jpeg_reference(path)
    if kind == "tiff":
        return tiff_reference(path)
    if kind in ("webp", "gif"):
        return animated_reference(path)
    # Not an image signature: still ask Pillow (the references decide, not our sniffer).
    a, err, mode = _pillow(path, lambda im: None)
    if a is not None:
        return Ref(a, f"Pillow {mode}")
    return Ref(None, errors=[f"Pillow: {err}"])


# --------------------------------------------------------------------------------------------------
# imgconv
# --------------------------------------------------------------------------------------------------

COLOR_FOR_CHANNELS = {1: "gray", 2: "rgba", 3: "rgb", 4: "rgba"}


def run_ours(src: Path, work: Path, color: str, extra_good: Path | None = None, flags=()):
    """One-file dataset c/<name> converted with --color; returns (CompletedProcess, npz path, root)."""
    root = work / ("root" + "".join(flags).replace("-", "_"))
    (root / "c").mkdir(parents=True)
    (root / "c" / src.name).write_bytes(src.read_bytes())
    if extra_good is not None:
        (root / "c" / ("000-good" + extra_good.suffix)).write_bytes(extra_good.read_bytes())
    out = root.with_name(root.name + ".npz")
    try:
        res = run_cli(["to-npz", root, out, "--color", color, "-q", "--jobs", "1", *flags], timeout=60)
    except subprocess.TimeoutExpired:
        res = None
    return res, out, root


def evaluate(src: Path, work: Path) -> tuple[str, str]:
    rel = rel_of(src)
    ref = reference(src)
    broken = DELIBERATELY_BROKEN.get(rel)
    relpath = f"c/{src.name}"

    if ref.array is None or broken:
        why = broken or "; ".join(ref.errors)
        if H.sniff(src) is None:
            # The signature itself is damaged: imgconv's sniffer sees no image, skips the file and
            # lists it in the manifest (README: "Other files are skipped and counted"). A one-file
            # dataset would only say "no decodable images found" (exit 66), so a good file goes
            # beside it and the manifest must list it as skipped.
            good = H.FIXTURES / "pngsuite" / "basn0g08.png"
            res, out, root = run_ours(src, work, "rgb", extra_good=good)
            if res is None:
                return "mismatch", "timeout"
            if res.returncode == 0:
                m = H.load_json(H.npz_manifest_path(out))
                if relpath in H.skipped_paths(m) and [f["path"] for f in m["files"]] == ["c/000-good.png"]:
                    reason = [s["reason"] for s in m["skipped"] if s["path"] == relpath][0]
                    return "refused", f"{why} | not sniffed as an image: skipped ({reason!r})"
                return "mismatch", f"{why} | exit 0 but not listed as skipped"
            return _judge_refusal(res, relpath, why, out)
        res, out, _ = run_ours(src, work, "rgb")
        if res is None:
            return "mismatch", f"{why} | timeout"
        if res.returncode == 0:
            got = H.load_npz(out)["trainXs"]
            return "mismatch", f"{why} | imgconv accepts it: {got.shape[1:]} {got.dtype}"
        outcome, detail = _judge_refusal(res, relpath, why, out)
        if outcome == "refused" and ref.array is not None and H.sniff(src) == "jpeg":
            exp = ref.array
            res2, out2, _ = run_ours(src, work, COLOR_FOR_CHANNELS[exp.shape[-1]], flags=("--allow-truncated-jpeg",))
            if res2 is None or res2.returncode != 0:
                return "mismatch", f"{detail} | --allow-truncated-jpeg still refuses what {ref.source} reads"
            verdict = compare(H.load_npz(out2)["trainXs"][0], exp)
            if verdict:
                return "mismatch", f"{detail} | --allow-truncated-jpeg vs {ref.source}: {verdict}"
            detail = f"{why} | {ref.source} decodes it; with --allow-truncated-jpeg: equal"
        return outcome, detail

    exp = ref.array
    chans = exp.shape[-1]
    color = COLOR_FOR_CHANNELS.get(chans)
    if color is None:
        return "mismatch", f"reference has {chans} channels ({ref.source})"
    if chans == 2:  # gray + alpha -> RGBA as Pillow's convert('RGBA') of LA: gray replicated
        exp = exp[..., [0, 0, 0, 1]]
    res, out, root = run_ours(src, work, color)
    if res is None:
        return "mismatch", f"{ref.source} | timeout"
    lines = H.stderr_lines(res)
    if res.returncode != 0:
        detail = (f"{ref.source} reads {exp.shape} {exp.dtype}; imgconv exit {res.returncode}: "
                  + " / ".join(lines)[:200])
        if res.returncode == H.EX_DATAERR and "--allow-truncated-jpeg" in res.stderr:
            res2, out2, _ = run_ours(src, work, color, flags=("--allow-truncated-jpeg",))
            if res2 is not None and res2.returncode == 0:
                verdict = compare(H.load_npz(out2)["trainXs"][0], exp)
                detail += f" | with --allow-truncated-jpeg: {verdict or 'equal to the reference'}"
        return "mismatch", detail
    if any(not ln.startswith("imgconv: ") for ln in lines):
        return "mismatch", f"raw library output on stderr: {lines!r}"[:200]
    arrays = H.load_npz(out)
    manifest = H.load_json(H.npz_manifest_path(out))
    try:
        H.check_manifest(manifest, arrays, root)
    except AssertionError as e:
        return "mismatch", f"manifest: {e}"[:200]
    # the orientation applied is recorded: files[].orientation (absent or 1 when upright already)
    # and summary.rotated
    o = _pil_orientation(src)
    recorded = manifest["files"][0].get("orientation") or 1
    rotated = manifest.get("summary", {}).get("rotated", 0)
    if recorded != o or rotated != (1 if o > 1 else 0):
        return "mismatch", f"orientation {o}, manifest says orientation {recorded}, summary.rotated {rotated}"
    got = arrays["trainXs"]
    if got.shape[0] != 1:
        return "mismatch", f"{got.shape[0]} images in the tensor"
    got = got[0]
    desc = f"{ref.source}; {exp.dtype} {'x'.join(map(str, exp.shape))} --color {color}"
    if o > 1:
        desc += f" (orientation {o} applied)"
    if ref.notes:
        desc += " [" + "; ".join(ref.notes) + "]"
    if lines:
        desc += f" [stderr: {lines[0][:80]}]"
    verdict = compare(got, exp)
    return ("mismatch", f"{desc} | {verdict}") if verdict else ("exact", desc)


def compare(got: np.ndarray, exp: np.ndarray) -> str | None:
    """None when equal (dtype, shape, values; NaN equals NaN), else what differs."""
    if got.dtype != exp.dtype or got.shape != exp.shape:
        return f"got {got.dtype} {'x'.join(map(str, got.shape))}"
    if np.array_equal(got, exp, equal_nan=exp.dtype.kind == "f"):
        return None
    d = np.abs(got.astype(np.float64) - exp.astype(np.float64))
    d = np.nan_to_num(d, nan=np.inf)
    return f"{int((d != 0).sum())}/{d.size} samples differ, max abs diff {float(d.max()):g}"


def _judge_refusal(res, relpath: str, why: str, out: Path) -> tuple[str, str]:
    lines = H.stderr_lines(res)
    if res.returncode != H.EX_DATAERR:
        return "mismatch", f"{why} | exit {res.returncode} (want 65): {' / '.join(lines)[:160]}"
    if len(lines) != 1:
        return "mismatch", f"{why} | {len(lines)} stderr lines: {lines!r}"[:200]
    line = lines[0]
    if not line.startswith("imgconv: ") or f"'{relpath}'" not in line:
        return "mismatch", f"{why} | error line does not name the file: {line!r}"[:200]
    if out.exists():
        return "mismatch", f"{why} | output written despite exit 65"
    return "refused", f"{why} | {line[len('imgconv: '):]}"[:220]


# --------------------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------------------

def build_table(work: Path) -> list[tuple[str, str, str]]:
    files = corpus_files()

    def one(i_src):
        i, src = i_src
        w = work / f"f{i:04d}"
        w.mkdir(parents=True)
        try:
            outcome, detail = evaluate(src, w)
        except Exception as e:  # noqa: BLE001 - a harness error is a mismatch, shown in the table
            outcome, detail = "mismatch", f"harness error: {_short(e)}"
        return rel_of(src), outcome, detail

    with ThreadPoolExecutor(max_workers=max(2, min(8, (os.cpu_count() or 2) * 2))) as pool:
        return list(pool.map(one, enumerate(files)))


def test_fidelity_table(imgconv_bin, tmp_path):
    files = corpus_files()
    if not files:
        pytest.skip("Tests/Fixtures/{pngsuite,tiff,jpeg,webp,gif,generated,bmp} hold no images")
    t0 = time.monotonic()
    table = build_table(tmp_path)
    elapsed = time.monotonic() - t0

    width = max(len(f) for f, _, _ in table)
    print(f"\n{'file':<{width}}  outcome    detail")
    for f, outcome, detail in table:
        shown = "known-gap" if (outcome == "mismatch" and f in KNOWN_GAPS) else outcome
        print(f"{f:<{width}}  {shown:<9}  {detail}")
    counts = {k: 0 for k in ("exact", "refused", "mismatch", "known-gap")}
    for f, outcome, _ in table:
        counts["known-gap" if (outcome == "mismatch" and f in KNOWN_GAPS) else outcome] += 1
    print(f"\n{len(table)} files in {elapsed:.1f} s: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if KNOWN_GAPS:
        print("KNOWN_GAPS (not in the expectation; fix the decoder, then remove the entry):")
        for f, why in sorted(KNOWN_GAPS.items()):
            print(f"  {f}: {why}")

    H.check_fidelity_table(table, KNOWN_GAPS, EXPECTED_TSV)


def test_orient_matches_exif_transpose():
    """The numpy `orient` used on tifffile/pypng references equals Pillow's exif_transpose for every
    orientation (the corpus itself only has JPEGs with orientations 3, 6 and 8)."""
    from PIL import Image, ImageOps
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for o in range(1, 9):
        im = Image.fromarray(a)
        exif = im.getexif()
        exif[0x0112] = o
        im.info["exif"] = exif.tobytes()
        want = np.asarray(ImageOps.exif_transpose(im))
        assert np.array_equal(orient(a, o), want), f"orientation {o}"
