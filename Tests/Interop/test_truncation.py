"""Truncated inputs: every fixture image of the fidelity corpora (Tests/Fixtures/{pngsuite,tiff,jpeg,
webp,gif,generated,bmp}, and avif/heic of test_fidelity_heif.py) cut at 12 lengths, all cuts of one
fixture in one class, converted with --skip-bad (and for JPEG once more with --allow-truncated-jpeg,
for GIF and WebP once more with --frames all, which composes every frame a cut still holds).

Whatever a cut does to the decoders, the process must
  - not die by a signal and not hang (60 s per run),
  - exit 0 or 65,
  - print only `imgconv: ` lines on stderr (no raw libpng/libtiff/libjpeg output),
  - account for every cut: each one is in the manifest's `files` or in its `skipped`, never both,
    never neither (on exit 65 there is no manifest: the one error line must name a cut); with
    --frames all a cut may be in both (the frames it holds in `files`, each (path, page) once, and
    the frames it cuts short in `skipped`, once each).
`--size 16x16` keeps cuts that decode at different sizes from stopping the run. Each class also
holds one intact image (`000-anchor.png`): when every cut of a fixture is undecodable, imgconv
exits 66 "no decodable images found" and writes no manifest, which would leave nothing to account
the cuts against (that exit code is reported separately, not judged here).
"""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import interop_helpers as H
from corpus_runner import corpus_files, rel_of, run_cli
from test_fidelity_heif import corpus_files as heif_corpus_files

FIXED_LENGTHS = (1, 8, 16, 33, 64, 100, 500)
FRACTIONS = (0.10, 0.25, 0.50, 0.75, 0.99)
TIMEOUT = 60
ANCHOR = H.FIXTURES / "pngsuite" / "basn0g08.png"  # 32x32 8-bit gray
ANCHOR_REL = "cuts/000-anchor.png"


def cut_lengths(size: int) -> list[int]:
    """The cut lengths for a file of `size` bytes: the fixed ones and the fractions, each shorter
    than the file (a cut as long as the file is no cut), at least one byte, without duplicates."""
    lengths = set(FIXED_LENGTHS) | {int(size * f) for f in FRACTIONS}
    return sorted(n for n in lengths if 1 <= n < size)


def build_dataset(src: Path, root: Path) -> list[str]:
    data = src.read_bytes()
    cls = root / "cuts"
    cls.mkdir(parents=True)
    (root / ANCHOR_REL).write_bytes(ANCHOR.read_bytes())
    rels = []
    for n in cut_lengths(len(data)):
        name = f"cut-{n:08d}{src.suffix}"
        (cls / name).write_bytes(data[:n])
        rels.append(f"cuts/{name}")
    return rels


def check_run(rels: list[str], root: Path, out: Path, flags: tuple[str, ...]) -> tuple[list[str], dict]:
    """Runs one conversion; returns (problems, counts)."""
    what = " ".join(flags)
    try:
        res = run_cli(["to-npz", root, out, "--skip-bad", "--size", "16x16", "-q", *flags], timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return [f"[{what}] hung: no exit within {TIMEOUT} s"], {}
    problems = []
    lines = H.stderr_lines(res)
    if res.returncode < 0:
        problems.append(f"[{what}] killed by signal {-res.returncode}: {' / '.join(lines)[:300]}")
    elif res.returncode not in (0, H.EX_DATAERR):
        problems.append(f"[{what}] exit {res.returncode}: {' / '.join(lines)[:300]}")
    raw = [ln for ln in lines if not ln.startswith("imgconv: ")]
    if raw:
        problems.append(f"[{what}] stderr lines not from imgconv: {raw[:3]!r}")
    counts = {"total": len(rels), "converted": 0, "skipped": 0, "failed_runs": 0}
    if res.returncode == 0:
        manifest = H.load_json(H.npz_manifest_path(out))
        files = [f["path"] for f in manifest["files"]]
        skipped = H.skipped_paths(manifest)
        if ANCHOR_REL not in files:
            problems.append(f"[{what}] the intact anchor image is missing from files")
        frames = "--frames" in flags
        pages = [(f["path"], f.get("page")) for f in manifest["files"] if f["path"] != ANCHOR_REL]
        files = [f for f in files if f != ANCHOR_REL]
        if frames:
            if len(pages) != len(set(pages)):
                problems.append(f"[{what}] a frame is listed twice")
            files = sorted(set(files))
        both = set() if frames else set(files) & set(skipped)
        lost = set(rels) - set(files) - set(skipped)
        extra = (set(files) | set(skipped)) - set(rels)
        if both:
            problems.append(f"[{what}] in files and skipped: {sorted(both)}")
        if lost:
            problems.append(f"[{what}] cuts lost (neither converted nor skipped): {sorted(lost)}")
        if extra:
            problems.append(f"[{what}] manifest lists unknown paths: {sorted(extra)}")
        if len(files) != len(set(files)) or (len(skipped) != len(set(skipped)) and not frames):
            problems.append(f"[{what}] a path is listed twice")
        # README: --skip-bad lists undecodable images on stderr and in the manifest (files that are
        # not images at all, e.g. a 1-byte cut, are only counted in the manifest)
        unnamed = [s["path"] for s in manifest["skipped"] if s["reason"] != "not an image"
                   and not any(f"'{s['path']}'" in ln for ln in lines)]
        if unnamed:
            problems.append(f"[{what}] skipped but not named on stderr: {unnamed}")
        xs = H.load_npz(out)["trainXs"]
        if xs.shape[0] != len(pages) + 1 or tuple(xs.shape[1:3]) != (16, 16):
            problems.append(f"[{what}] trainXs {xs.shape} for {len(files)} files")
        counts["converted"], counts["skipped"] = len(files), len(skipped)
    elif res.returncode == H.EX_DATAERR:
        counts["failed_runs"] = 1
        if len(lines) != 1 or not any(f"'{r}'" in lines[0] for r in rels):
            problems.append(f"[{what}] exit 65 without one error line naming a cut: {lines[:3]!r}")
    return problems, counts


def test_truncated_fixtures(imgconv_bin, tmp_path):
    files = corpus_files() + heif_corpus_files()
    if not files or not ANCHOR.is_file():
        pytest.skip("Tests/Fixtures/{pngsuite,tiff,jpeg,webp,gif,generated,bmp} hold no images (or pngsuite/basn0g08.png is missing)")
    t0 = time.monotonic()

    def one(i_src):
        i, src = i_src
        root = tmp_path / f"d{i:04d}"
        rels = build_dataset(src, root)
        runs = [()]
        if H.sniff(src) == "jpeg":
            runs.append(("--allow-truncated-jpeg",))
        if H.sniff(src) in ("gif", "webp"):
            runs.append(("--frames", "all"))
        results = []
        for k, flags in enumerate(runs):
            results.append(check_run(rels, root, tmp_path / f"d{i:04d}-{k}.npz", flags))
        return rel_of(src), results

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcome = list(pool.map(one, enumerate(files)))
    elapsed = time.monotonic() - t0

    problems = []
    totals = {"runs": 0, "total": 0, "converted": 0, "skipped": 0, "failed_runs": 0}
    extra = {"--allow-truncated-jpeg": {"total": 0, "converted": 0, "skipped": 0},
             "--frames all": {"total": 0, "converted": 0, "skipped": 0}}
    for rel, results in outcome:
        for k, (probs, counts) in enumerate(results):
            problems += [f"{rel}: {p}" for p in probs]
            totals["runs"] += 1
            for key in ("total", "converted", "skipped", "failed_runs"):
                totals[key] += counts.get(key, 0)
            if k == 1:
                flag = "--allow-truncated-jpeg" if H.sniff(H.FIXTURES / rel) == "jpeg" else "--frames all"
                for key in extra[flag]:
                    extra[flag][key] += counts.get(key, 0)
            if counts.get("failed_runs"):
                print(f"  exit 65 (run stopped): {rel} [{k}]")
    print(f"\ntruncation: {len(files)} fixtures, {totals['runs']} runs in {elapsed:.1f} s; cuts: "
          f"{totals['converted']} converted, {totals['skipped']} skipped, {totals['total']} total "
          f"(runs stopped with exit 65: {totals['failed_runs']})")
    for flag, c in extra.items():
        print(f"  of which with {flag}: {c['converted']} cuts converted, {c['skipped']} skipped, {c['total']} total")
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)
