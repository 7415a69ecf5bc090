"""AVIF and HEIF/HEIC decoder fidelity (issue 14, item 4).

Every image of Tests/Fixtures/avif and Tests/Fixtures/heic is converted alone (a one-file
dataset) and judged against the reader its users have:

  AVIF  Pillow's own AVIF plugin (`Image.open` + `ImageOps.exif_transpose`: Pillow reports the
        container's irot/imir as an EXIF orientation, which exif_transpose applies; it does not
        apply clap);
  HEIF  pillow-heif (`register_heif_opener`; libheif applies irot/imir/clap itself).

Outcomes, as in test_fidelity.py (whose helpers this file imports):

  exact     8-bit files, and 10/12-bit files whose reference is uint16 (pillow-heif's I;16 gray):
            our tensor equals the reference (dtype, shape, values). 10/12-bit colour files, which
            both references narrow to 8 bits: `--dtype uint8` equals the reference exactly, and
            the uint16 tensor of `--dtype auto`, scaled to 8 bits (value / 257, rounded), is
            within UINT16_LEVELS of it (the detail gives the largest difference);
  refused   the reference cannot read it and imgconv exits 65 with one line naming the file;
  mismatch  anything else. KNOWN_GAPS lists the mismatches explained by library versions
            (printed and counted apart, left out of the expectation file).

The table is printed (`pytest -s`) and compared with fidelity_heif_expected.tsv. Regenerate it:
    IMGCONV_FIDELITY_WRITE=1 python3 -m pytest Tests/Interop/test_fidelity_heif.py -s
"""

from __future__ import annotations

import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import interop_helpers as H
import test_fidelity as F
from corpus_runner import rel_of

HERE = Path(__file__).resolve().parent
EXPECTED_TSV = HERE / "fidelity_heif_expected.tsv"
CORPUS = ("avif", "heic")

# Our uint16 (10/12-bit values in the top bits) narrowed to 8 bits against the references' own
# narrowing: pillow-heif (libheif 1.16+) drops the low bits of Y, Cb and Cr before converting, so an
# accurately converted 10-bit value can differ from it by up to 3 levels; Pillow's libavif 1.4
# narrows in libyuv, Debian's libavif 0.11 in its own code (up to 4 levels, see KNOWN_GAPS).
UINT16_LEVELS = 4

_AVIF_HDR = ("Debian 12's libavif 0.11 converts 10/12-bit YUV to 8-bit RGB in its own code; Pillow's "
             "bundled libavif 1.4 goes through libyuv: --dtype uint8 differs by up to 4 levels")
_HEIF_FLOAT = ("libheif 1.15's floating-point YCbCr->RGB (used for grids and alpha) rounds differently from "
               "pillow-heif's libheif 1.23, which also upsamples chroma bilinearly where alpha is present: "
               "up to 1 level")
KNOWN_GAPS: dict[str, str] = {
    "avif/av1-avif/link-u/fox.profile0.10bpc.yuv420.avif": _AVIF_HDR,
    "avif/av1-avif/link-u/fox.profile1.10bpc.yuv444.avif": _AVIF_HDR,
    "avif/av1-avif/link-u/fox.profile2.12bpc.yuv420.avif": _AVIF_HDR,
    "avif/libavif/colors_wcg_hdr_rec2020.avif": _AVIF_HDR,
    "avif/libavif/seine_hdr_rec2020.avif": _AVIF_HDR,
    "avif/libavif/color_grid_alpha_nogrid.avif":
        "libavif 0.11 does not read an alpha item that is not a grid under a grid colour item (libavif 1.x "
        "does): imgconv gives RGB where Pillow gives RGBA",
    "heic/pillow-heif/heif/RGBA_8__128x128.heif": _HEIF_FLOAT,
    "heic/pillow-heif/heif/RGBA_8__29x100.heif": _HEIF_FLOAT,
    "heic/pillow-heif/heif/RGB_8__29x100.heif": _HEIF_FLOAT,
}


def corpus_files() -> list[Path]:
    out = []
    for d in CORPUS:
        base = H.FIXTURES / d
        if base.is_dir():
            out += [p for p in base.rglob("*") if p.is_file() and p.suffix.lower() in (".avif", ".heif", ".heic")]
    return sorted(out, key=rel_of)


def coded_depths() -> dict[str, int]:
    """bit_depth of every file, from the folders' manifest.tsv (av1C / hvcC)."""
    out = {}
    for d in CORPUS:
        tsv = H.FIXTURES / d / "manifest.tsv"
        if tsv.is_file():
            for row in H.read_manifest_tsv(tsv):
                out[f"{d}/{row['file']}"] = int(row["bit_depth"])
    return out


def reference(path: Path) -> tuple[np.ndarray | None, str, int]:
    """(array (H, W, C) after exif_transpose, source or error, EXIF orientation the reader reports)."""
    from PIL import Image, ImageOps
    import pillow_heif
    pillow_heif.register_heif_opener()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                mode, fmt = im.mode, im.format
                im.load()
                o = im.getexif().get(0x0112, 1)
                a = F._chan(np.asarray(ImageOps.exif_transpose(im)))
        who = "pillow-heif" if fmt == "HEIF" else f"Pillow {fmt}"
        return a, f"{who} {mode}", int(o) if int(o) in range(1, 9) else 1
    except Exception as e:  # noqa: BLE001 - any failure is "the reference refuses"
        return None, F._short(e), 1


def _ours(src: Path, work: Path, color: str, flags=()):
    """(CompletedProcess or None, array or None, manifest or None, problem or None)."""
    res, out, root = F.run_ours(src, work, color, flags=flags)
    if res is None:
        return None, None, None, "timeout"
    lines = H.stderr_lines(res)
    if res.returncode != 0:
        return res, None, None, f"imgconv exit {res.returncode}: " + " / ".join(lines)[:200]
    if any(not ln.startswith("imgconv: ") for ln in lines):
        return res, None, None, f"raw library output on stderr: {lines!r}"[:200]
    arrays = H.load_npz(out)
    manifest = H.load_json(H.npz_manifest_path(out))
    try:
        H.check_manifest(manifest, arrays, root)
    except AssertionError as e:
        return res, None, None, f"manifest: {e}"[:200]
    if arrays["trainXs"].shape[0] != 1:
        return res, None, None, f"{arrays['trainXs'].shape[0]} images in the tensor"
    return res, arrays["trainXs"][0], manifest, None


def evaluate(src: Path, work: Path, depth: int) -> tuple[str, str]:
    exp, source, o = reference(src)
    if exp is None:
        res, out, _ = F.run_ours(src, work, "rgb")
        if res is None:
            return "mismatch", f"{source} | timeout"
        return F._judge_refusal(res, f"c/{src.name}", source, out)
    color = F.COLOR_FOR_CHANNELS[exp.shape[-1]]
    res, got, manifest, problem = _ours(src, work, color)
    if problem:
        return "mismatch", f"{source} reads {exp.shape} {exp.dtype} | {problem}"
    recorded = manifest["files"][0].get("orientation") or 1
    if recorded != o:
        return "mismatch", f"{source} reports orientation {o}, the manifest says {recorded}"
    desc = f"{source}; {exp.dtype} {'x'.join(map(str, exp.shape))} --color {color}" + (f" (orientation {o})" if o > 1 else "")
    if depth <= 8 or exp.dtype == np.uint16:
        verdict = F.compare(got, exp)
        return ("mismatch", f"{desc} | {verdict}") if verdict else ("exact", desc)
    # 10/12-bit colour: the reference narrowed it to 8 bits.
    if got.dtype != np.uint16 or got.shape != exp.shape:
        return "mismatch", f"{desc} | --dtype auto gives {got.dtype} {'x'.join(map(str, got.shape))}, want uint16"
    levels = int(np.abs((got.astype(np.int64) + 128) // 257 - exp.astype(np.int64)).max())
    _, got8, _, problem = _ours(src, work, color, flags=("--dtype", "uint8"))
    if problem:
        return "mismatch", f"{desc} | --dtype uint8: {problem}"
    verdict = F.compare(got8, exp)
    desc += f"; {depth}-bit: uint16 / 257 within {levels} level(s)"
    if levels > UINT16_LEVELS:
        return "mismatch", f"{desc} (more than {UINT16_LEVELS})"
    return ("mismatch", f"{desc} | --dtype uint8: {verdict}") if verdict else ("exact", desc + ", --dtype uint8 equal")


def test_fidelity_heif_table(imgconv_bin, tmp_path):
    pytest.importorskip("pillow_heif")
    files = corpus_files()
    if not files:
        pytest.skip("Tests/Fixtures/{avif,heic} hold no images")
    depths = coded_depths()
    t0 = time.monotonic()

    def one(i_src):
        i, src = i_src
        w = tmp_path / f"f{i:04d}"
        w.mkdir(parents=True)
        try:
            outcome, detail = evaluate(src, w, depths.get(rel_of(src), 8))
        except Exception as e:  # noqa: BLE001 - a harness error is a mismatch, shown in the table
            outcome, detail = "mismatch", f"harness error: {F._short(e)}"
        return rel_of(src), outcome, detail

    with ThreadPoolExecutor(max_workers=max(2, min(8, (os.cpu_count() or 2) * 2))) as pool:
        table = list(pool.map(one, enumerate(files)))
    elapsed = time.monotonic() - t0

    width = max(len(f) for f, _, _ in table)
    print(f"\n{'file':<{width}}  outcome    detail")
    counts = {k: 0 for k in ("exact", "refused", "mismatch", "known-gap")}
    for f, outcome, detail in table:
        shown = "known-gap" if (outcome == "mismatch" and f in KNOWN_GAPS) else outcome
        counts[shown] += 1
        print(f"{f:<{width}}  {shown:<9}  {detail}")
    print(f"\n{len(table)} files in {elapsed:.1f} s: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print("KNOWN_GAPS (not in the expectation):")
    for f, why in sorted(KNOWN_GAPS.items()):
        print(f"  {f}: {why}")

    H.check_fidelity_table(table, KNOWN_GAPS, EXPECTED_TSV)
