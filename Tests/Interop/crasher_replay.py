"""Feeding files to the imgconv CLI the way a user would, and judging only whether it survived:
used by test_crashers.py (every input a fuzz target ever crashed on, Tests/Fixtures/crashers/) and by
scripts/sanitize.sh (the fixture corpus, its truncations and the crashers under an AddressSanitizer
build). Standard library only, so the sanitizer script runs without the test packages.

A run survives when it ends within its time with an exit status imgconv documents for errors (0, 64,
65, 66, 74), not by a signal (a Swift runtime trap, an abort), not with 70 (internal error), and with
no sanitizer report on stderr.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "Tests" / "Fixtures"
CRASHERS = FIXTURES / "crashers"
ANCHOR = FIXTURES / "pngsuite" / "basn0g08.png"  # 32x32 gray: keeps a run from having nothing to convert

# The fuzz targets (Fuzz/Package.swift), each a folder of Tests/Fixtures/crashers/.
TARGETS = ("npy", "zip", "idx", "exif", "manifest", "csv", "png", "jpeg", "tiff", "bmp", "gif", "webp", "h5")
IMAGE_TARGETS = ("png", "jpeg", "tiff", "bmp", "gif", "webp", "exif")
SURVIVED = (0, 64, 65, 66, 74)
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "UndefinedBehaviorSanitizer", "WARNING: AddressSanitizer")
# Decoding options that reach the most decoder code: truncated JPEGs accepted, every TIFF page and
# animation frame, DCT-scaled JPEG decoding, and the transforms after decoding.
LENIENT = ("--allow-truncated-jpeg", "--tiff-pages", "all", "--frames", "all", "--jpeg-draft", "--fit", "pad", "--filter", "lanczos",
           "--color", "rgba")


def env() -> dict:
    e = dict(os.environ)
    # Swift's crash handler would print its own report and delay the exit; the sanitizers halt on
    # the first report (their exit status and text are judged below).
    e["SWIFT_BACKTRACE"] = "enable=no"
    e.setdefault("ASAN_OPTIONS", "halt_on_error=1:detect_leaks=1:abort_on_error=0")
    e.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
    e.setdefault("LSAN_OPTIONS", f"suppressions={REPO / 'scripts' / 'lsan-suppressions.txt'}:print_suppressions=0")
    return e


def run(imgconv: Path, args: Sequence, cwd: Path, timeout: float = 120) -> tuple[subprocess.CompletedProcess | None, str]:
    """Runs imgconv; returns (result, problem) where problem is '' when the run survived."""
    cmd = [str(imgconv), *[str(a) for a in args]]
    what = " ".join(str(a) for a in args)
    try:
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, errors="replace", timeout=timeout, env=env())
    except subprocess.TimeoutExpired:
        return None, f"[{what}] hung: no exit within {timeout:.0f} s"
    report = [ln for ln in res.stderr.splitlines() if any(m in ln for m in SANITIZER_MARKERS)]
    if report:
        return res, f"[{what}] sanitizer report: {report[0]}\n{tail(res.stderr)}"
    if res.returncode < 0:
        return res, f"[{what}] killed by signal {-res.returncode}\n{tail(res.stderr)}"
    if res.returncode not in SURVIVED:
        return res, f"[{what}] exit {res.returncode}\n{tail(res.stderr)}"
    return res, ""


def tail(text: str, lines: int = 40) -> str:
    return "\n".join("    " + ln for ln in text.splitlines()[-lines:])


def crasher_files() -> list[tuple[str, Path]]:
    """(target, file) for every saved crasher, in path order."""
    out = []
    if CRASHERS.is_dir():
        for d in sorted(p for p in CRASHERS.iterdir() if p.is_dir()):
            out += [(d.name, f) for f in sorted(d.rglob("*")) if f.is_file() and f.suffix != ".md"]
    return out


def replay(imgconv: Path, target: str, src: Path, work: Path) -> list[str]:
    """Feeds one crasher of `target` to the CLI the ways a user could meet it; returns problems."""
    work.mkdir(parents=True, exist_ok=True)
    problems = []

    def check(args: Sequence, cwd: Path = work) -> subprocess.CompletedProcess | None:
        res, problem = run(imgconv, args, cwd)
        if problem:
            problems.append(problem)
        return res

    if target in IMAGE_TARGETS:
        root = work / "tree"
        (root / "c").mkdir(parents=True)
        shutil.copy(ANCHOR, root / "c" / "000-anchor.png")
        shutil.copy(src, root / "c" / src.name)
        check(["to-npz", root, work / "a.npz", "--skip-bad", "--size", "16x16", "-q"])
        check(["to-npz", root, work / "b.npz", "--skip-bad", "--size", "16x16", "-q", *LENIENT])
    elif target in ("npy", "zip", "idx"):
        name = {"npy": "x.npy", "zip": "x.npz", "idx": "x-images-idx3-ubyte"}[target]
        shutil.copy(src, work / name)
        check(["inspect", name])
        check(["verify", name])
        check(["convert", name, "out.h5"])
    elif target == "manifest":
        (work / "tree" / "c").mkdir(parents=True)
        shutil.copy(ANCHOR, work / "tree" / "c" / "a.png")
        res = check(["to-npz", "tree", "x.npz", "-q"])
        if res is not None and res.returncode == 0:
            shutil.copy(src, work / "x.npz.manifest.json")
            check(["verify", "x.npz"])
            check(["inspect", "x.npz"])
            check(["convert", "x.npz", "out.h5"])
    elif target == "h5":
        shutil.copy(src, work / "x.h5")
        check(["inspect", "x.h5"])
        check(["verify", "x.h5"])
        check(["convert", "x.h5", "out.npz"])
        check(["export", "x.h5", "out"])
    elif target == "csv":
        shutil.copy(ANCHOR, work / "a.png")
        shutil.copy(src, work / "list.csv")
        check(["to-npz", "--list", "list.csv", "out.npz", "--skip-bad", "--size", "16x16", "-q"])
    else:
        problems.append(f"{src}: folder '{target}' is not a fuzz target ({', '.join(TARGETS)})")
    return problems
