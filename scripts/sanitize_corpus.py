#!/usr/bin/env python3
"""The corpus half of scripts/sanitize.sh: drives an AddressSanitizer/UndefinedBehaviorSanitizer build
of the CLI over

1. every fixture image (Tests/Fixtures/{pngsuite,tiff,jpeg,webp,gif,generated,avif,heic,bad,bmp}, non-images of bad/
   included), converted twice: default options, and the options that reach the most decoder code
   (the AVIFs and HEICs a third time, with --dtype uint8: their decoders narrow 10/12-bit images);
2. every one of those files cut at many lengths (fixed small lengths and fractions of the size; all
   cuts of a fixture in one class folder, with one intact image per class), converted the same two ways;
3. containers: the output of 1 inspected, verified and converted to .h5, .npy folder and IDX, each
   of those (and the MNIST fixtures) inspected and verified; then each of them cut at the same lengths
   and inspected and verified;
4. every saved crasher (Tests/Fixtures/crashers/), as Tests/Interop/test_crashers.py feeds them.

Any sanitizer report, death by signal, internal error (exit 70) or hang is a failure; the script
names the input (for a whole-tree run, it re-runs class by class to find it) and exits 1.

    python3 scripts/sanitize_corpus.py IMGCONV [--quick]

--quick uses the 12 cut lengths of Tests/Interop/test_truncation.py instead of about 40. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Tests" / "Interop"))

from crasher_replay import ANCHOR, FIXTURES, LENIENT, crasher_files, replay, run  # noqa: E402

IMAGE_FOLDERS = ("pngsuite", "tiff", "jpeg", "webp", "gif", "generated", "avif", "heic", "bad", "bmp")
NARROWED = ("avif", "heic")  # also converted with --dtype uint8
NOT_INPUTS = {".md", ".tsv", ".py", ".npy"}
QUICK_LENGTHS = (1, 8, 16, 33, 64, 100, 500)
QUICK_FRACTIONS = (0.10, 0.25, 0.50, 0.75, 0.99)
FULL_LENGTHS = (1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 28, 33, 40, 48, 56, 64, 80, 100, 128, 200, 256, 400, 500,
                1000, 2000, 4096, 8192)
FULL_FRACTIONS = (0.05, 0.10, 0.20, 0.25, 0.30, 0.40, 0.50, 0.60, 0.70, 0.75, 0.80, 0.90, 0.95, 0.99)
TREE_TIMEOUT = 3600


def cut_lengths(size: int, quick: bool) -> list[int]:
    fixed, fractions = (QUICK_LENGTHS, QUICK_FRACTIONS) if quick else (FULL_LENGTHS, FULL_FRACTIONS)
    lengths = set(fixed) | {int(size * f) for f in fractions} | ({size - 1} if not quick else set())
    return sorted(n for n in lengths if 1 <= n < size)


def inputs() -> list[Path]:
    out = []
    for folder in IMAGE_FOLDERS:
        out += [p for p in (FIXTURES / folder).rglob("*") if p.is_file() and p.suffix.lower() not in NOT_INPUTS]
    return sorted(out)


def flat_name(p: Path) -> str:
    return p.relative_to(FIXTURES).as_posix().replace("/", "__")


def convert_tree(imgconv: Path, root: Path, out: Path, label: str, passes=((), LENIENT)) -> tuple[list[str], str]:
    """Converts a tree each way of `passes`; on a failure, re-runs class by class to name the input.
    Returns the problems and what was converted."""
    problems, counts = [], []
    for k, flags in enumerate(passes):
        npz = out.with_name(f"{out.stem}-{k}.npz")
        args = ["to-npz", root, npz, "--skip-bad", "--size", "16x16", "-q", "--jobs", "2", *flags]
        res, problem = run(imgconv, args, root.parent, timeout=TREE_TIMEOUT)
        if not problem and res.returncode != 0:
            problem = f"[{label}] exit {res.returncode}: {res.stderr.strip()[-500:]}"
        if not problem:
            summary = json.loads(Path(f"{npz}.manifest.json").read_text())["summary"]
            counts.append(f"{summary['images']} decoded + {summary['skipped']} skipped")
            continue
        culprits = []
        for cls in sorted(p for p in root.iterdir() if p.is_dir()):
            single = ["to-npz", cls.parent, out.with_name("single.npz"), "--classes", cls.name, "--skip-bad",
                      "--size", "16x16", "-q", *flags]
            _, p = run(imgconv, single, root.parent, timeout=600)
            if p:
                culprits.append(f"class '{cls.name}': {p}")
        problems += culprits or [f"{label}: {problem}"]
    return problems, "; ".join(counts)


def build_cuts(files: list[Path], root: Path, quick: bool) -> int:
    count = 0
    for src in files:
        data = src.read_bytes()
        cls = root / flat_name(src)
        cls.mkdir(parents=True)
        shutil.copy(ANCHOR, cls / "000-anchor.png")
        for n in cut_lengths(len(data), quick):
            (cls / f"cut-{n:08d}{src.suffix}").write_bytes(data[:n])
            count += 1
    return count


def container_checks(imgconv: Path, work: Path, npz: Path, quick: bool) -> tuple[list[str], int]:
    """Every container format made from `npz`, plus the MNIST fixtures, read whole and cut."""
    problems = []
    made = {"npz": npz}
    for fmt, name in (("h5", "c.h5"), ("npy", "c-npy"), ("idx", "c-idx")):
        _, p = run(imgconv, ["convert", npz, work / name, "--to", fmt], work)
        if p:
            problems.append(p)
        made[fmt] = work / name
    mnist = sorted((FIXTURES / "mnist").rglob("*.gz"))
    whole = [made["npz"], made["h5"], made["npy"], made["idx"], *mnist]
    files = [made["npz"], made["h5"], *sorted((work / "c-npy").glob("*.npy")), *sorted((work / "c-idx").glob("*-idx*")),
             *mnist]
    for t in whole:
        for cmd in (["inspect", t], ["verify", t]):
            _, p = run(imgconv, cmd, work)
            if p:
                problems.append(p)
    cut_root = work / "container-cuts"
    jobs = []
    for src in files:
        if not src.is_file():
            continue
        data = src.read_bytes()
        for n in cut_lengths(len(data), quick):
            d = cut_root / f"{len(jobs):05d}-{src.name}-{n}"
            d.mkdir(parents=True)
            # keep the name: IDX pairs and .npz manifests are found by name
            (d / src.name).write_bytes(data[:n])
            jobs.append(d / src.name)

    def one(path: Path) -> list[str]:
        out = []
        for cmd in (["inspect", path.name], ["verify", path.name]):
            _, p = run(imgconv, cmd, path.parent, timeout=300)
            if p:
                out.append(f"{path.parent.name}: {p}")
        return out

    with ThreadPoolExecutor(max_workers=2) as pool:
        for found in pool.map(one, jobs):
            problems += found
    return problems, len(jobs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("imgconv", type=Path)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    imgconv = a.imgconv.resolve()
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="imgconv-sanitize-") as tmp:
        work = Path(tmp)
        files = inputs()

        t0 = time.monotonic()
        corpus = work / "corpus"
        for src in files:
            dst = corpus / src.relative_to(FIXTURES).parts[0] / flat_name(src)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
        found, counts = convert_tree(imgconv, corpus, work / "corpus.npz", "fixture corpus")
        problems += found
        narrowed = [p for p in files if p.relative_to(FIXTURES).parts[0] in NARROWED]
        if narrowed:
            found, ncounts = convert_tree(imgconv, corpus, work / "narrowed.npz", "AVIF/HEIC --dtype uint8",
                                         passes=(("--classes", ",".join(NARROWED), "--dtype", "uint8"),))
            problems += found
            print(f"sanitize: AVIF/HEIC with --dtype uint8: {len(narrowed)} files ({ncounts}): "
                  f"{'ok' if not found else f'{len(found)} problem(s)'}", flush=True)
        print(f"sanitize: fixture corpus: {len(files)} files, 2 conversions ({counts}): "
              f"{'ok' if not found else f'{len(found)} problem(s)'} ({time.monotonic() - t0:.0f} s)", flush=True)

        t0 = time.monotonic()
        cuts = work / "cuts"
        n = build_cuts(files, cuts, a.quick)
        found, counts = convert_tree(imgconv, cuts, work / "cuts.npz", "truncated fixtures")
        problems += found
        narrowed_cuts = ",".join(flat_name(p) for p in narrowed)
        if narrowed_cuts:
            found, ncounts = convert_tree(imgconv, cuts, work / "cuts-narrowed.npz", "truncated AVIF/HEIC --dtype uint8",
                                         passes=(("--classes", narrowed_cuts, "--dtype", "uint8"),))
            problems += found
            print(f"sanitize: truncated AVIF/HEIC with --dtype uint8 ({ncounts}): "
                  f"{'ok' if not found else f'{len(found)} problem(s)'}", flush=True)
        print(f"sanitize: truncated fixtures: {n} cuts of {len(files)} files, 2 conversions ({counts}): "
              f"{'ok' if not found else f'{len(found)} problem(s)'} ({time.monotonic() - t0:.0f} s)", flush=True)

        t0 = time.monotonic()
        npz = work / "corpus-0.npz"
        if npz.is_file():
            (work / "containers").mkdir()
            found, n = container_checks(imgconv, work / "containers", npz, a.quick)
        else:
            found, n = [f"containers: {npz.name} was not written"], 0
        problems += found
        print(f"sanitize: containers (npz, h5, npy, idx, MNIST): whole and {n} cuts, inspect + verify: "
              f"{'ok' if not found else f'{len(found)} problem(s)'} ({time.monotonic() - t0:.0f} s)", flush=True)

        t0 = time.monotonic()
        crashers = crasher_files()
        found = []
        for i, (target, path) in enumerate(crashers):
            found += [f"crasher {target}/{path.name}: {p}" for p in replay(imgconv, target, path, work / "crashers" / str(i))]
        problems += found
        print(f"sanitize: crashers: {len(crashers)} replayed: "
              f"{'ok' if not found else f'{len(found)} problem(s)'} ({time.monotonic() - t0:.0f} s)", flush=True)

    for p in problems:
        print(f"sanitize: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
