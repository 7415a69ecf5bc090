"""Reliability (issue #7, bullets 3, 4 and 6): outputs stay atomic under signals, full disks,
file-size limits, concurrent writers and planted links; every error is one line with a documented
exit code; readers refuse bombs and stream big files with flat memory.

How outputs are written (Sources/ImgConvCore/FileIO.swift): into `.<name>.imgconv-<pid>-<n>.tmp`
beside the target, created with O_EXCL, renamed over the target when complete; SIGINT/SIGTERM
remove registered temporaries, print one line and exit 128 + signo.

Sections
  1. SIGINT / SIGTERM part-way through a conversion, for every writer
  2. SIGKILL part-way; the next run; stale temporaries of dead processes
  3. RLIMIT_FSIZE (EFBIG) and a 1 MiB tmpfs (ENOSPC; skipped when mount is not allowed)
  4. two runs writing one target at the same time
  5. planted symlinks (at the target, at the temporary names) and a folder at the target path
  6. the README's exit codes, one stderr line each, no raw library text
  7. verify / inspect / convert stream a ~1.6 GB .npz under 256 MiB peak RSS (skipped below 8 GB free)
  8. zip bombs and NPY headers with overflowing shapes or absurd lengths: exit 65 in seconds, small RSS

Peak RSS comes from `/usr/bin/time -f %M`; without it the RSS assertions are skipped (the rest is
still checked).
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import interop_helpers as H
from corpus_runner import START_RETRY_SECONDS, run_cli

TIME_BIN = Path("/usr/bin/time")
TEMP_RE = re.compile(r"^\.(?P<name>.+)\.imgconv-(?P<pid>\d+)-(?P<n>\d+)\.tmp$")

# (subcommand, output name inside the outputs folder): every writer the CLI has.
WRITERS = [("to-npz", "o.npz"), ("to-npy", "npydir"), ("to-hdf5", "o.h5"), ("to-idx", "idxdir")]
WRITER_IDS = [w[0] for w in WRITERS]
# IDX of RGB images is 4-D and draws a (legitimate) warning; gray keeps stderr for what is tested.
WRITER_EXTRA = {"to-idx": ["--color", "gray"]}


def writer_args(sub: str, root, target, *more) -> list:
    return [sub, root, target, *WRITER_EXTRA.get(sub, []), *more]

STREAM_MAX_RSS_KIB = 256 * 1024     # issue 7: verify/inspect on multi-GB files
BOMB_MAX_RSS_KIB = 128 * 1024       # a refused bomb needs no more than a normal small run (~35 MiB)
BOMB_MAX_SECONDS = 5.0
# Safety net for the host: a regression that allocates what a bomb claims dies on this limit.
ADDRESS_SPACE_LIMIT = 4 << 30


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------

def temporaries(folder: Path) -> list[Path]:
    """Files under folder (recursively) named like imgconv's temporaries."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob(".*") if TEMP_RE.match(p.name))


def snapshot_without_temporaries(folder: Path) -> dict[str, bytes]:
    return {k: v for k, v in H.dir_snapshot(folder).items() if not TEMP_RE.match(Path(k.rstrip("/")).name)}


def nonblank_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def describe(res) -> str:
    cmd = res.args if isinstance(res.args, str) else " ".join(str(a) for a in res.args)
    return f"command: {cmd}\nexit: {res.returncode}\n--- stderr ---\n{res.stderr[-3000:]}"


def expect_rc(res, rc) -> None:
    allowed = {rc} if isinstance(rc, int) else set(rc)
    assert res.returncode in allowed, f"exit {res.returncode}, want {sorted(allowed)}\n{describe(res)}"


def assert_one_imgconv_line(stderr: str, *needles: str) -> str:
    """Exactly one non-blank stderr line, starting 'imgconv: ', containing every needle
    (case-insensitive), and nothing a library printed by itself."""
    lines = nonblank_lines(stderr)
    assert len(lines) == 1, f"expected exactly one stderr line, got {len(lines)}:\n{stderr[-3000:]}"
    line = lines[0]
    assert line.startswith("imgconv: "), f"stderr line does not start with 'imgconv: ': {line!r}"
    for needle in needles:
        assert needle.lower() in line.lower(), f"{needle!r} not in the error line {line!r}"
    return line


def assert_no_raw_library_text(stderr: str) -> None:
    """Every non-blank stderr line is imgconv's own ('imgconv: ...'): no libpng/libtiff/libjpeg/
    HDF5-DIAG/zlib text printed around it."""
    foreign = [ln for ln in nonblank_lines(stderr) if not ln.startswith("imgconv: ")]
    assert not foreign, "stderr holds lines imgconv did not write:\n" + "\n".join(foreign[:20])


def popen_cli(args, **kwargs) -> subprocess.Popen:
    """Starts the CLI (text pipes), retrying the start while the binary is being rebuilt."""
    cmd = [str(H.binary_path()), *[str(a) for a in args]]
    deadline = time.monotonic() + START_RETRY_SECONDS
    while True:
        try:
            return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
        except OSError as e:
            if e.errno not in (errno.ETXTBSY, errno.ENOENT) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def start_until_temporary(args, folder: Path, settle: float = 0.2, timeout: float = 60) -> subprocess.Popen:
    """Starts a conversion and returns once its temporary file exists in folder (and `settle`
    seconds later, so that data is being written), with the process still running."""
    proc = popen_cli(args)
    deadline = time.monotonic() + timeout
    while not temporaries(folder):
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before a temporary file appeared in {folder}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail(f"no temporary file appeared in {folder} within {timeout} s")
        time.sleep(0.005)
    time.sleep(settle)
    if proc.poll() is not None:
        proc.communicate()
        pytest.fail("the conversion finished before the signal could be sent: the slow dataset is too small "
                    "for this machine (raise SLOW_IMAGES)")
    return proc


def run_measured(args, tmp_path: Path, timeout: float = 120, **kwargs):
    """(CompletedProcess, seconds, peak RSS in KiB or None) of one CLI run."""
    rss_file = tmp_path / f"rss-{time.monotonic_ns()}.txt"
    prefix = [str(TIME_BIN), "-f", "%M", "-o", str(rss_file)] if TIME_BIN.is_file() else []
    t0 = time.monotonic()
    res = run_cli(args, timeout=timeout, prefix=prefix, **kwargs)
    elapsed = time.monotonic() - t0
    rss = None
    if prefix and rss_file.is_file():
        # "Command exited with non-zero status 65" / "Command terminated by signal 9" precede the value
        values = [ln for ln in rss_file.read_text().splitlines() if ln.strip().isdigit()]
        rss = int(values[-1]) if values else None
        rss_file.unlink()
    return res, elapsed, rss


def fmt_rss(rss) -> str:
    return "n/a" if rss is None else f"{rss / 1024:.1f} MiB"


_SUBCOMMANDS: list[str] | None = None


def subcommands() -> list[str]:
    """Subcommand names listed by `imgconv --help`."""
    global _SUBCOMMANDS
    if _SUBCOMMANDS is None:
        res = run_cli(["--help"], timeout=30)
        text = res.stdout + res.stderr
        section = text.split("SUBCOMMANDS:", 1)[1] if "SUBCOMMANDS:" in text else ""
        names = []
        for line in section.splitlines():
            m = re.match(r"^  (\S[^ ]*(?:, \S+)*)\s{2,}", line) or re.match(r"^  (\S+(?:, \S+)*)\s*$", line)
            if m:
                names += [n.strip() for n in m.group(1).split(",")]
        _SUBCOMMANDS = names
    return _SUBCOMMANDS


def require_subcommand(name: str) -> None:
    if name not in subcommands():
        pytest.skip(f"this imgconv has no '{name}' subcommand")


def noise_dataset(make_dataset, n: int, size=(16, 16), seed: int = 0, classes=("a", "b")):
    ds = make_dataset()
    rng = np.random.default_rng(seed)
    for k in range(n):
        ds.add_image(f"{classes[k % len(classes)]}/{k:04d}.png", rng.integers(0, 256, size + (3,), dtype=np.uint8))
    return ds


def linked_dataset(root: Path, sources: list[Path], n: int, classes=("a", "b")) -> Path:
    """n hard links (copies where links fail) of the source files, spread over classes."""
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
    for k in range(n):
        src = sources[k % len(sources)]
        dst = root / classes[k % len(classes)] / f"{k:05d}.png"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    return root


def save_png(path: Path, arr: np.ndarray) -> Path:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def manifest_of(sub: str, target: Path) -> Path:
    return target.with_name(target.name + ".manifest.json") if sub in ("to-npz", "to-hdf5") else target / "manifest.json"


# --------------------------------------------------------------------------------------------------
# Datasets shared by the module
# --------------------------------------------------------------------------------------------------

SLOW_IMAGES = 500  # ~2.5 s at --jobs 1 (512x512 noise PNGs decode at ~200/s): time to interrupt


@pytest.fixture(scope="module")
def slow_root(tmp_path_factory) -> Path:
    """SLOW_IMAGES hard links of one 512x512 RGB noise PNG in two classes."""
    base = tmp_path_factory.mktemp("slow")
    src = save_png(base / "noise.png", np.random.default_rng(7).integers(0, 256, (512, 512, 3), dtype=np.uint8))
    return linked_dataset(base / "root", [src], SLOW_IMAGES)


# ==================================================================================================
# 1. SIGINT / SIGTERM part-way
# ==================================================================================================

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("sub,name", WRITERS, ids=WRITER_IDS)
def test_signal_part_way_removes_temporary_and_keeps_earlier_output(imgconv_bin, slow_root, make_dataset,
                                                                    tmp_path, sub, name, sig):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    target = outputs / name
    earlier = noise_dataset(make_dataset, 4)
    expect_rc(run_cli(writer_args(sub, earlier.root, target, "-q")), 0)
    before = H.dir_snapshot(outputs)

    proc = start_until_temporary(writer_args(sub, slow_root, target, "--jobs", "1", "-q"), outputs)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)

    assert proc.returncode == 128 + sig, f"exit {proc.returncode}, want {128 + sig}\n{err}"
    assert_one_imgconv_line(err, "interrupted")
    left = temporaries(outputs)
    assert not left, f"temporary files left after {sig.name}: {[p.name for p in left]}"
    after = H.dir_snapshot(outputs)
    assert sorted(after) == sorted(before), f"files changed: {sorted(set(after) ^ set(before))}"
    assert after == before, f"the earlier output was modified by the interrupted run ({sig.name})"


# ==================================================================================================
# 2. SIGKILL part-way
# ==================================================================================================

def _kill_part_way(slow_root: Path, target: Path) -> int:
    """Starts to-npz of the slow dataset at target, SIGKILLs it once its temporary exists; returns its pid."""
    proc = start_until_temporary(["to-npz", slow_root, target, "--jobs", "1", "-q"], target.parent)
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return proc.pid


@pytest.mark.parametrize("earlier", [True, False], ids=["earlier-output", "no-earlier-output"])
def test_sigkill_part_way_leaves_target_untouched(imgconv_bin, slow_root, make_dataset, tmp_path, earlier):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    target = outputs / "o.npz"
    if earlier:
        expect_rc(run_cli(["to-npz", noise_dataset(make_dataset, 4).root, target, "-q"]), 0)
    before = H.dir_snapshot(outputs)

    pid = _kill_part_way(slow_root, target)
    try:
        assert snapshot_without_temporaries(outputs) == before, (
            "the target changed" if earlier else f"files appeared: {sorted(snapshot_without_temporaries(outputs))}")
        if not earlier:
            assert not target.exists() and not H.npz_manifest_path(target).exists()
        left = temporaries(outputs)
        assert len(left) <= 1, f"more than one leftover: {[p.name for p in left]}"
        for p in left:
            m = TEMP_RE.match(p.name)
            assert m["name"] == "o.npz" and int(m["pid"]) == pid, f"unexpected leftover name {p.name!r} (pid {pid})"
    finally:
        for p in temporaries(outputs):
            p.unlink()


def test_run_after_sigkill_succeeds_and_says_nothing_odd(imgconv_bin, slow_root, make_dataset, tmp_path):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    target = outputs / "o.npz"
    _kill_part_way(slow_root, target)
    try:
        ds = noise_dataset(make_dataset, 4)
        res = run_cli(["to-npz", ds.root, target])
        expect_rc(res, 0)
        assert res.stderr.strip() == "", f"a clean run after a killed one printed on stderr:\n{res.stderr}"
        H.check_manifest(H.load_json(H.npz_manifest_path(target)), H.load_npz(target), ds.root)
        expect_rc(run_cli(["verify", target]), 0)
    finally:
        for p in temporaries(outputs):
            p.unlink()


def test_run_after_sigkill_removes_stale_temporary_of_dead_process(imgconv_bin, slow_root, make_dataset, tmp_path):
    """Issue 7: "the next run removes stale ones of its own or ignores them". Ignoring them lets a
    ~40 MB leftover accumulate per killed run forever; the next run writing the same target should
    remove `.o.npz.imgconv-<dead pid>-<n>.tmp`."""
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    target = outputs / "o.npz"
    pid = _kill_part_way(slow_root, target)
    stale = temporaries(outputs)
    assert stale, "SIGKILL left no temporary file: nothing to clean up (the test is moot)"
    try:
        expect_rc(run_cli(["to-npz", noise_dataset(make_dataset, 4).root, target, "-q"]), 0)
        still = [p.name for p in stale if os.path.lexists(p)]
        assert not still, (f"the next run left the stale temporary of dead pid {pid}: {still} "
                           f"({sum(p.stat().st_size for p in stale if p.exists())} bytes)")
    finally:
        for p in temporaries(outputs):
            p.unlink()


def test_temporary_of_a_live_process_is_not_removed(imgconv_bin, make_dataset, tmp_path):
    """Whatever clean-up exists must spare a run in progress (here: a name carrying this test's pid)."""
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    target = outputs / "o.npz"
    live = outputs / f".o.npz.imgconv-{os.getpid()}-0.tmp"
    live.write_bytes(b"a run in progress")
    expect_rc(run_cli(["to-npz", noise_dataset(make_dataset, 4).root, target, "-q"]), 0)
    assert live.is_file() and live.read_bytes() == b"a run in progress", "a live process's temporary was touched"
    H.load_npz(target)


# ==================================================================================================
# 3. File-size limit (EFBIG) and a full disk (ENOSPC)
# ==================================================================================================

def _fsize_limit(limit: int):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


@pytest.fixture
def medium_root(make_dataset):
    """100 RGB noise images of 128x128: 4.9 MB of pixels (1.6 MB as gray), over a 1 MiB limit in any format."""
    return noise_dataset(make_dataset, 100, size=(128, 128), seed=3).root


@pytest.mark.parametrize("sub,name", WRITERS, ids=WRITER_IDS)
def test_file_size_limit_is_74_and_keeps_earlier_output(imgconv_bin, make_dataset, medium_root, tmp_path, sub, name):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    target = outputs / name
    expect_rc(run_cli(writer_args(sub, noise_dataset(make_dataset, 4).root, target, "-q")), 0)
    before = H.dir_snapshot(outputs)

    res = run_cli(writer_args(sub, medium_root, target, "-q"), preexec_fn=_fsize_limit(1 << 20))
    print(f"\n{sub} under RLIMIT_FSIZE=1 MiB: exit {res.returncode}: {res.stderr.strip()[:300]}")
    expect_rc(res, H.EX_IOERR)
    assert_one_imgconv_line(res.stderr, name, "file too large")
    assert not temporaries(outputs), f"temporary files left: {[p.name for p in temporaries(outputs)]}"
    assert H.dir_snapshot(outputs) == before, "the earlier output changed"


def test_file_size_limit_hit_by_the_manifest_keeps_earlier_output(imgconv_bin, make_dataset, tmp_path):
    """Many tiny images: the .npz (~3 KB) fits under the limit, its manifest (~45 KB) does not.
    The run must fail with 74 and leave the earlier .npz AND manifest as they were (not a new .npz
    beside the old manifest)."""
    def tiny(seed):
        ds = make_dataset()
        for k in range(160):
            ds.add_image(f"c/img-{'x' * 60}-{k:04d}.png", np.full((1, 1), (k * 7 + seed) % 256, np.uint8))
        return ds.root

    outputs = tmp_path / "outputs"
    outputs.mkdir()
    target = outputs / "o.npz"
    expect_rc(run_cli(["to-npz", tiny(1), target, "-q"]), 0)
    before = H.dir_snapshot(outputs)
    new_root = tiny(2)
    limit = 16 << 10
    assert target.stat().st_size < limit < H.npz_manifest_path(target).stat().st_size, "dataset does not split the sizes"

    res = run_cli(["to-npz", new_root, target, "-q"], preexec_fn=_fsize_limit(limit))
    print(f"\nmanifest over RLIMIT_FSIZE: exit {res.returncode}: {res.stderr.strip()[:300]}")
    expect_rc(res, H.EX_IOERR)
    assert_one_imgconv_line(res.stderr, "o.npz", "file too large")
    assert not temporaries(outputs), f"temporary files left: {[p.name for p in temporaries(outputs)]}"
    after = H.dir_snapshot(outputs)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, (f"a failed run changed {changed}: the new .npz was renamed into place before its "
                         "manifest was written, so the old manifest now describes a different file")


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs mounted at tmp_path/tmpfs (root only); skips when it cannot be mounted."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.parametrize("sub,name", WRITERS, ids=WRITER_IDS)
def test_full_disk_is_74_and_keeps_earlier_output(imgconv_bin, make_dataset, medium_root, small_tmpfs, sub, name):
    outputs = small_tmpfs / "outputs"
    outputs.mkdir()
    target = outputs / name
    expect_rc(run_cli(writer_args(sub, noise_dataset(make_dataset, 4).root, target, "-q")), 0)
    before = H.dir_snapshot(outputs)

    res = run_cli(writer_args(sub, medium_root, target, "-q"))
    print(f"\n{sub} on a 1 MiB tmpfs: exit {res.returncode}: {res.stderr.strip()[:300]}")
    expect_rc(res, H.EX_IOERR)
    assert_one_imgconv_line(res.stderr, name, "disk full")
    assert not temporaries(outputs), f"temporary files left: {[p.name for p in temporaries(outputs)]}"
    assert H.dir_snapshot(outputs) == before, "the earlier output changed"


# ==================================================================================================
# 4. Two runs writing one target at the same time
# ==================================================================================================

def test_concurrent_runs_on_one_target_never_mix(imgconv_bin, tmp_path):
    rng = np.random.default_rng(11)
    srcs = tmp_path / "srcs"
    a_srcs = [save_png(srcs / f"a{k}.png", rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)) for k in range(3)]
    b_srcs = [save_png(srcs / f"b{k}.png", rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)) for k in range(3)]
    root_a = linked_dataset(tmp_path / "A", a_srcs, 160, classes=("x", "y"))
    root_b = linked_dataset(tmp_path / "B", b_srcs, 240, classes=("p", "q", "r"))

    solo = {}
    for label, root in (("A", root_a), ("B", root_b)):
        d = tmp_path / f"solo-{label}"
        d.mkdir()
        expect_rc(run_cli(["to-npz", root, d / "shared.npz", "--jobs", "1", "-q"]), 0)
        solo[label] = ((d / "shared.npz").read_bytes(), H.npz_manifest_path(d / "shared.npz").read_bytes())
    assert solo["A"][0] != solo["B"][0]

    shared = tmp_path / "shared"
    shared.mkdir()
    target = shared / "shared.npz"
    winners = []
    for round_ in range(3):
        procs = [popen_cli(["to-npz", root, target, "--jobs", "1", "-q"]) for root in (root_a, root_b)]
        results = [(p, *p.communicate(timeout=120)) for p in procs]
        for (p, _, err), label in zip(results, "AB"):
            assert p.returncode == 0, f"round {round_}: run {label} exited {p.returncode}\n{err}"
        data = target.read_bytes()
        matches = [label for label in "AB" if data == solo[label][0]]
        assert matches, (f"round {round_}: the final file ({len(data)} bytes) is neither run's output "
                         f"(A {len(solo['A'][0])} bytes, B {len(solo['B'][0])} bytes): a mixed file")
        arrays = H.load_npz(target)
        with np.load(tmp_path / f"solo-{matches[0]}" / "shared.npz") as ref:
            for k in ref.files:
                assert np.array_equal(arrays[k], ref[k])
        manifest = H.npz_manifest_path(target).read_bytes()
        assert manifest in (solo["A"][1], solo["B"][1]), f"round {round_}: the manifest is neither run's"
        left = temporaries(shared)
        assert not left, f"round {round_}: temporaries left: {[p.name for p in left]}"
        winners.append(matches[0])
    print(f"\nlast writer per round: {winners}")


# ==================================================================================================
# 5. Links and folders where the output goes
# ==================================================================================================

def test_symlink_at_target_is_replaced_not_followed(imgconv_bin, make_dataset, tmp_path):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim, victim_m = elsewhere / "victim.bin", elsewhere / "victim-manifest.bin"
    victim.write_bytes(b"precious data")
    victim_m.write_bytes(b"precious manifest")
    target = outputs / "o.npz"
    target.symlink_to(victim)
    H.npz_manifest_path(target).symlink_to(victim_m)

    ds = noise_dataset(make_dataset, 4)
    expect_rc(run_cli(["to-npz", ds.root, target, "-q"]), 0)
    assert victim.read_bytes() == b"precious data", "the file the target link pointed to was written"
    assert victim_m.read_bytes() == b"precious manifest", "the file the manifest link pointed to was written"
    assert not target.is_symlink() and target.is_file(), "the target is still a link"
    assert not H.npz_manifest_path(target).is_symlink()
    H.check_manifest(H.load_json(H.npz_manifest_path(target)), H.load_npz(target), ds.root)


def test_folder_at_target_path_is_one_line_74(imgconv_bin, make_dataset, tmp_path):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    target = outputs / "o.npz"
    target.mkdir()
    (target / "keep.txt").write_bytes(b"keep me")
    before = H.dir_snapshot(outputs)
    res = run_cli(["to-npz", noise_dataset(make_dataset, 4).root, target, "-q"])
    expect_rc(res, H.EX_IOERR)
    assert_one_imgconv_line(res.stderr, "o.npz")
    assert not temporaries(outputs), f"temporary files left: {[p.name for p in temporaries(outputs)]}"
    assert H.dir_snapshot(outputs) == before


def test_npy_folder_failing_late_keeps_every_earlier_file(imgconv_bin, make_dataset, tmp_path):
    """to-npy renames trainXs.npy, trainYs.npy, classNames.npy one by one. When the last rename
    fails (here: a folder sits at classNames.npy), the run exits 74 and must not leave the earlier
    trainXs.npy / trainYs.npy replaced by new ones beside an old manifest."""
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    target = outputs / "npydir"
    expect_rc(run_cli(["to-npy", noise_dataset(make_dataset, 4, seed=1).root, target, "-q"]), 0)
    (target / "classNames.npy").unlink()
    (target / "classNames.npy").mkdir()
    (target / "classNames.npy" / "keep.txt").write_bytes(b"keep me")
    before = H.dir_snapshot(outputs)

    res = run_cli(["to-npy", noise_dataset(make_dataset, 6, seed=2).root, target, "-q"])
    print(f"\nto-npy with a folder at classNames.npy: exit {res.returncode}: {res.stderr.strip()[:300]}")
    expect_rc(res, H.EX_IOERR)
    assert_one_imgconv_line(res.stderr, "classNames.npy")
    assert not temporaries(outputs), f"temporary files left: {[p.name for p in temporaries(outputs)]}"
    after = H.dir_snapshot(outputs)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"a failed run replaced {changed} (a mixed folder: new tensors, old manifest)"


def _plant(folder: Path, names_for_pid, link_to: Path):
    """preexec_fn: in the child (whose pid the CLI will have), symlink each temporary name it
    would try first to link_to."""
    def pre():
        pid = os.getpid()
        for name in names_for_pid(pid):
            os.symlink(link_to, folder / name)
    return pre


def test_planted_symlinks_at_temporary_names_are_not_followed(imgconv_bin, make_dataset, tmp_path):
    """The child's pid is known in preexec_fn, so the names `.o.npz.imgconv-<pid>-0.tmp` (and the
    manifest's) can be planted before exec: as links to an existing file and to a path that does
    not exist yet. O_EXCL must refuse both; the run still succeeds under another name."""
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / "victim.bin"
    victim.write_bytes(b"precious data")
    absent = elsewhere / "must-not-appear"

    def names(pid):
        return [f".o.npz.imgconv-{pid}-0.tmp", f".o.npz.manifest.json.imgconv-{pid}-0.tmp"]

    def names_dangling(pid):
        return [f".o.npz.imgconv-{pid}-1.tmp", f".o.npz.manifest.json.imgconv-{pid}-1.tmp"]

    pre_a, pre_b = _plant(outputs, names, victim), _plant(outputs, names_dangling, absent)

    def pre():
        pre_a()
        pre_b()

    ds = noise_dataset(make_dataset, 4)
    res = run_cli(["to-npz", ds.root, outputs / "o.npz", "-q"], preexec_fn=pre)
    planted = [p for p in outputs.iterdir() if p.is_symlink()]
    try:
        expect_rc(res, 0)
        assert len(planted) == 4, f"planted links: {[p.name for p in planted]}"
        assert victim.read_bytes() == b"precious data", "a planted temporary-name link was followed"
        assert not absent.exists(), "a dangling planted link was followed and its target created"
        H.check_manifest(H.load_json(H.npz_manifest_path(outputs / "o.npz")), H.load_npz(outputs / "o.npz"), ds.root)
        others = [p.name for p in temporaries(outputs) if not p.is_symlink()]
        assert not others, f"temporaries left: {others}"
    finally:
        for p in planted:
            p.unlink()


def test_every_temporary_name_taken_fails_cleanly(imgconv_bin, make_dataset, tmp_path):
    """Links planted at `.o.npz.imgconv-<pid>-0..99.tmp`: either another name is found (exit 0) or
    the run fails with one line and 74; never a write through a link."""
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious data")
    pre = _plant(outputs, lambda pid: [f".o.npz.imgconv-{pid}-{n}.tmp" for n in range(100)], victim)
    res = run_cli(["to-npz", noise_dataset(make_dataset, 4).root, outputs / "o.npz", "-q"], preexec_fn=pre)
    print(f"\nall 100 temporary names taken: exit {res.returncode}: {res.stderr.strip()[:200]}")
    try:
        expect_rc(res, (0, H.EX_IOERR))
        assert victim.read_bytes() == b"precious data"
        if res.returncode == 0:
            H.load_npz(outputs / "o.npz")
        else:
            assert_one_imgconv_line(res.stderr, "o.npz")
            assert not (outputs / "o.npz").exists()
    finally:
        for p in outputs.iterdir():
            if p.is_symlink():
                p.unlink()


# ==================================================================================================
# 6. Exit codes and one-line messages (README table)
# ==================================================================================================

@pytest.mark.parametrize("extra", [["--no-such-flag"], ["--color", "purple"], ["--jobs", "0"], None],
                         ids=["unknown-flag", "bad-color", "jobs-0", "no-operands"])
def test_exit_64_usage_error_is_one_line(imgconv_bin, make_dataset, tmp_path, extra):
    ds = noise_dataset(make_dataset, 2)
    out = tmp_path / "o.npz"
    argv = ["to-npz"] if extra is None else ["to-npz", ds.root, out, *extra]
    res = run_cli(argv)
    expect_rc(res, H.EX_USAGE)
    assert_one_imgconv_line(res.stderr)
    assert not out.exists()


CORRUPT = ["truncated.png", "bad-crc.png", "truncated.jpg", "truncated.tif"]


@pytest.mark.parametrize("name", CORRUPT)
def test_exit_65_corrupt_image_is_one_line(imgconv_bin, make_dataset, fixture_file, tmp_path, name):
    ds = make_dataset()
    rel = f"cls/{name}"
    ds.add(rel, fixture_file(f"bad/{name}"))
    out = tmp_path / "o.npz"
    res = run_cli(["to-npz", ds.root, out])
    expect_rc(res, H.EX_DATAERR)
    assert_one_imgconv_line(res.stderr, rel)
    assert_no_raw_library_text(res.stderr)
    assert not out.exists() and not temporaries(tmp_path)


def test_exit_66_missing_root_is_one_line(imgconv_bin, tmp_path):
    res = run_cli(["to-npz", tmp_path / "no-such-root", tmp_path / "o.npz"])
    expect_rc(res, H.EX_NOINPUT)
    assert_one_imgconv_line(res.stderr, "no-such-root")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sub,name", WRITERS, ids=WRITER_IDS)
def test_exit_74_output_under_a_regular_file_is_one_line(imgconv_bin, make_dataset, tmp_path, sub, name):
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"not a folder")
    res = run_cli(writer_args(sub, noise_dataset(make_dataset, 2).root, blocker / name))
    expect_rc(res, H.EX_IOERR)
    assert_one_imgconv_line(res.stderr, "blocker")
    assert_no_raw_library_text(res.stderr)
    assert blocker.read_bytes() == b"not a folder"


def test_exit_130_sigint_is_one_line(imgconv_bin, slow_root, tmp_path):
    proc = start_until_temporary(["to-npz", slow_root, tmp_path / "o.npz", "--jobs", "1"], tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, f"exit {proc.returncode}\n{err}"
    assert_one_imgconv_line(err)
    assert_no_raw_library_text(err)
    assert list(tmp_path.iterdir()) == [], f"left behind: {[p.name for p in tmp_path.iterdir()]}"


def test_library_warnings_never_reach_stderr(imgconv_bin, make_dataset, tmp_path):
    """A TIFF with an unknown private tag makes libtiff warn ("Unknown field with tag ..."); the
    conversion succeeds and stderr holds nothing but imgconv's own lines."""
    import tifffile
    ds = make_dataset()
    p = ds.root / "c" / "odd.tif"
    p.parent.mkdir(parents=True)
    arr = np.random.default_rng(5).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    tifffile.imwrite(p, arr, photometric="rgb", extratags=[(65000, "s", 0, "private", True)])
    out = tmp_path / "o.npz"
    res = run_cli(["to-npz", ds.root, out])
    expect_rc(res, 0)
    assert_no_raw_library_text(res.stderr)
    H.assert_equal_pixels(H.load_npz(out)["trainXs"][0], arr, "odd.tif")


def test_corrupt_hdf5_is_one_line_without_hdf5_diagnostics(imgconv_bin, make_dataset, tmp_path):
    """HDF5 prints its error stack ("HDF5-DIAG: Error detected in ...") unless told not to."""
    ds = noise_dataset(make_dataset, 2)
    good = tmp_path / "good.h5"
    expect_rc(run_cli(["to-hdf5", ds.root, good, "-q"]), 0)
    bad = tmp_path / "bad.h5"
    data = bytearray(good.read_bytes())
    data[8:] = bytes(len(data) - 8)  # keep the signature, zero the superblock and everything after it
    bad.write_bytes(bytes(data))
    shutil.copyfile(H.npz_manifest_path(good), H.npz_manifest_path(bad))
    for sub in ("verify", "inspect"):
        res = run_cli([sub, bad])
        expect_rc(res, H.EX_DATAERR)
        assert "HDF5-DIAG" not in res.stderr, f"{sub}: raw HDF5 error stack on stderr:\n{res.stderr[:2000]}"
        assert_one_imgconv_line(res.stderr, "bad.h5")


# ==================================================================================================
# 7. Streaming a big file: verify / inspect / convert under 256 MiB
# ==================================================================================================

BIG_IMAGES = 2000  # 2000 x 512x512x3 uint8 = 1.57 GB of trainXs
BIG_MIN_FREE = 8 << 30


@pytest.fixture(scope="module")
def big_npz(tmp_path_factory):
    base = tmp_path_factory.mktemp("big")
    free = shutil.disk_usage(base).free
    if free < BIG_MIN_FREE:
        pytest.skip(f"only {free / 2**30:.1f} GiB free under {base.parent}: the streaming tests need 8 GiB")
    p = H.binary_path()
    if not (p.is_file() and os.access(p, os.X_OK)):
        pytest.skip(f"imgconv binary not found at {p}")
    # A smooth picture: PNG-decodes fast, so building 1.6 GB takes seconds.
    y, x = np.mgrid[0:512, 0:512]
    arr = np.stack([(x // 2) % 256, (y // 2) % 256, ((x + y) // 4) % 256], -1).astype(np.uint8)
    src = save_png(base / "smooth.png", arr)
    root = linked_dataset(base / "root", [src], BIG_IMAGES)
    out = base / "big.npz"
    res, secs, rss = run_measured(["to-npz", root, out, "-q"], base, timeout=300)
    expect_rc(res, 0)
    print(f"\nto-npz of {BIG_IMAGES} 512x512x3 images: {out.stat().st_size / 1e9:.2f} GB in {secs:.1f} s, "
          f"peak RSS {fmt_rss(rss)}")
    try:
        yield out
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _assert_streamed(what: str, res, secs, rss):
    print(f"\n{what}: exit {res.returncode}, {secs:.1f} s, peak RSS {fmt_rss(rss)}")
    expect_rc(res, 0)
    if not TIME_BIN.is_file():
        pytest.skip("/usr/bin/time is not installed: peak RSS not measured (the run itself passed)")
    assert rss is not None, "/usr/bin/time reported no RSS"
    assert rss < STREAM_MAX_RSS_KIB, f"{what}: peak RSS {rss} KiB >= {STREAM_MAX_RSS_KIB} KiB on a {BIG_IMAGES}-image file"


def test_verify_streams_big_npz(big_npz, tmp_path):
    res, secs, rss = run_measured(["verify", big_npz], tmp_path, timeout=300)
    _assert_streamed("verify", res, secs, rss)


def test_inspect_streams_big_npz(big_npz, tmp_path):
    require_subcommand("inspect")
    res, secs, rss = run_measured(["inspect", big_npz], tmp_path, timeout=300)
    _assert_streamed("inspect", res, secs, rss)
    assert str(BIG_IMAGES) in res.stdout, f"inspect does not report N = {BIG_IMAGES}:\n{res.stdout[:2000]}"


def test_convert_streams_big_npz(big_npz, tmp_path):
    require_subcommand("convert")
    out = tmp_path / "copy.npz"
    try:
        res, secs, rss = run_measured(["convert", big_npz, out, "-q"], tmp_path, timeout=300)
        _assert_streamed("convert npz -> npz", res, secs, rss)
        assert out.stat().st_size == big_npz.stat().st_size
    finally:
        for p in (out, H.npz_manifest_path(out)):
            if p.exists():
                p.unlink()


# ==================================================================================================
# 8. Zip bombs and absurd NPY headers
# ==================================================================================================

def npy_header(descr: str, shape: tuple, version: int = 1) -> bytes:
    """An NPY header as numpy writes it (dict, padded with spaces to a multiple of 64, newline)."""
    shape_text = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    d = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}".encode("latin1")
    pre = 10 if version == 1 else 12
    total = pre + len(d) + 1
    d += b" " * ((64 - total % 64) % 64) + b"\n"
    length = struct.pack("<H", len(d)) if version == 1 else struct.pack("<I", len(d))
    return b"\x93NUMPY" + bytes([version, 0]) + length + d


def deflate_zeros(prefix: bytes, n_zeros: int, block: int = 1 << 24) -> tuple[bytes, int]:
    """Raw deflate of prefix + n_zeros zero bytes, built from one fully-flushed block of zeros
    repeated (each flush point is byte-aligned and needs no earlier data), and its CRC-32."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    zeros = bytes(block)
    mid = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    k, rem = divmod(n_zeros, block)
    tail = c.compress(bytes(rem)) + c.flush(zlib.Z_FINISH)
    crc = zlib.crc32(prefix)
    for _ in range(k):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(bytes(rem), crc)
    return first + mid * k + tail, crc


def write_zip(path: Path, members: list[dict]) -> None:
    """A ZIP written byte by byte: members are dicts of name, data (as stored), method (0/8), crc,
    usize; a ZIP64 extra (local and central) carries usize and csize whenever either is >= 4 GiB."""
    out = bytearray()
    central = bytearray()
    for m in members:
        name = m["name"].encode()
        data, usize, csize = m["data"], m["usize"], len(m["data"])
        z64 = usize >= 0xFFFFFFFF or csize >= 0xFFFFFFFF
        extra = struct.pack("<HHQQ", 1, 16, usize, csize) if z64 else b""
        u32, c32 = (0xFFFFFFFF, 0xFFFFFFFF) if z64 else (usize, csize)
        version = 45 if z64 else 20
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, version, 0, m["method"], 0, 0x21, m["crc"], c32, u32,
                           len(name), len(extra)) + name + extra + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, version, 0, m["method"], 0, 0x21, m["crc"],
                               c32, u32, len(name), len(extra), 0, 0, 0, 0, offset) + name + extra
    cd_offset = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), cd_offset, 0)
    path.write_bytes(bytes(out))


@pytest.fixture(scope="module")
def bomb_base(tmp_path_factory):
    """A real 2-image conversion (8x8 RGB, classes a and b) as .npz and as an .npy folder."""
    p = H.binary_path()
    if not (p.is_file() and os.access(p, os.X_OK)):
        pytest.skip(f"imgconv binary not found at {p}")
    base = tmp_path_factory.mktemp("bombbase")
    rng = np.random.default_rng(9)
    for k, c in enumerate("ab"):
        save_png(base / "root" / c / f"{k}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    expect_rc(run_cli(["to-npz", base / "root", base / "base.npz", "-q"]), 0)
    expect_rc(run_cli(["to-npy", base / "root", base / "basedir", "-q"]), 0)
    with zipfile.ZipFile(base / "base.npz") as zf:
        small = {n: zf.read(n) for n in ("trainYs.npy", "classNames.npy")}
    return {"npz": base / "base.npz", "dir": base / "basedir", "small": small,
            "manifest": H.load_json(H.npz_manifest_path(base / "base.npz")),
            "dir_manifest": H.load_json(base / "basedir" / "manifest.json")}


def _manifest_with_shape(manifest: dict, shape) -> bytes:
    m = json.loads(json.dumps(manifest))
    for t in m["tensors"]:
        if H.tensor_name(t["name"]) == "trainXs":
            t["shape"] = list(shape)
    return json.dumps(m, indent=2, sort_keys=True).encode()


def _bomb_npz(base: dict, folder: Path, xs_member: dict, shape) -> Path:
    out = folder / "bomb.npz"
    small = [{"name": n, "data": d, "method": 0, "crc": zlib.crc32(d), "usize": len(d)} for n, d in base["small"].items()]
    write_zip(out, [{"name": "trainXs.npy", **xs_member}] + small)
    H.npz_manifest_path(out).write_bytes(_manifest_with_shape(base["manifest"], shape))
    return out


ONE_GIB = 1 << 30
TIB_SHAPE = (1 << 20, 1024, 1024, 1)    # uint8: 1 TiB
OVERFLOW_SHAPE = (1 << 40, 1 << 40, 1 << 40)


def make_bomb(kind: str, base: dict, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "zip-claims-1TiB":
        # The directory records 1 TiB (ZIP64), the header's shape agrees, the data inflates to 1 GiB of zeros.
        header = npy_header("|u1", TIB_SHAPE)
        data, crc = deflate_zeros(header, ONE_GIB)
        return _bomb_npz(base, folder, {"data": data, "method": 8, "crc": crc, "usize": len(header) + (1 << 40)},
                         TIB_SHAPE)
    if kind == "zip-inflates-past-its-size":
        # The directory records header + 384 bytes (2x8x8x3, as the manifest says); ~1 MB of deflate
        # inflates to 1 GiB.
        header = npy_header("|u1", (2, 8, 8, 3))
        data, _ = deflate_zeros(header, ONE_GIB)
        claimed = header + bytes(384)
        return _bomb_npz(base, folder, {"data": data, "method": 8, "crc": zlib.crc32(claimed), "usize": len(claimed)},
                         (2, 8, 8, 3))
    if kind == "npz-shape-overflows":
        d = npy_header("|u1", OVERFLOW_SHAPE) + bytes(64)
        return _bomb_npz(base, folder, {"data": d, "method": 0, "crc": zlib.crc32(d), "usize": len(d)}, OVERFLOW_SHAPE)
    # .npy folders: a copy of the real one with trainXs.npy replaced
    out = folder / "bombdir"
    shutil.copytree(base["dir"], out)
    if kind == "npy-shape-overflows":
        (out / "trainXs.npy").write_bytes(npy_header("|u1", OVERFLOW_SHAPE) + bytes(64))
        shape = OVERFLOW_SHAPE
    elif kind == "npy-claims-1TiB":
        (out / "trainXs.npy").write_bytes(npy_header("|u1", TIB_SHAPE) + bytes(4096))
        shape = TIB_SHAPE
    elif kind == "npy-header-length-4GiB":
        # version 2.0: a 4-byte header length of 0xFFFFFFF0 over a 100-byte file
        (out / "trainXs.npy").write_bytes(b"\x93NUMPY\x02\x00" + struct.pack("<I", 0xFFFFFFF0) + b"{" + b" " * 87)
        shape = (2, 8, 8, 3)
    else:
        raise AssertionError(kind)
    (out / "manifest.json").write_bytes(_manifest_with_shape(base["dir_manifest"], shape))
    return out


BOMBS = ["zip-claims-1TiB", "zip-inflates-past-its-size", "npz-shape-overflows", "npy-shape-overflows",
         "npy-claims-1TiB", "npy-header-length-4GiB"]


def _limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


@pytest.mark.parametrize("sub", ["verify", "inspect", "convert"])
@pytest.mark.parametrize("kind", BOMBS)
def test_bomb_is_refused_fast_with_flat_memory(imgconv_bin, bomb_base, tmp_path, kind, sub):
    require_subcommand(sub)
    bomb = make_bomb(kind, bomb_base, tmp_path / "in")
    conv = tmp_path / "conv"
    conv.mkdir()
    args = [sub, bomb] + ([conv / "out.npz"] if sub == "convert" else [])
    res, secs, rss = run_measured(args, tmp_path, timeout=120, preexec_fn=_limit_address_space)
    print(f"\n{sub} {kind}: exit {res.returncode}, {secs:.2f} s, peak RSS {fmt_rss(rss)}: {res.stderr.strip()[:300]}")

    expect_rc(res, H.EX_DATAERR)
    assert_one_imgconv_line(res.stderr, "bomb")
    assert secs < BOMB_MAX_SECONDS, f"took {secs:.2f} s (limit {BOMB_MAX_SECONDS} s)"
    if sub == "convert":
        assert list(conv.iterdir()) == [], f"convert left {[p.name for p in conv.iterdir()]}"
    if not TIME_BIN.is_file():
        pytest.skip("/usr/bin/time is not installed: peak RSS not measured (the other checks passed)")
    assert rss is not None, "/usr/bin/time reported no RSS"
    assert rss < BOMB_MAX_RSS_KIB, f"peak RSS {rss} KiB >= {BOMB_MAX_RSS_KIB} KiB"


def test_bombs_are_what_they_claim(bomb_base, tmp_path):
    """The crafted inputs are valid enough for Python's readers to see the claims."""
    z = make_bomb("zip-claims-1TiB", bomb_base, tmp_path / "a")
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("trainXs.npy")
        assert info.file_size > 1 << 40 and info.compress_size < 2 << 20
        with zf.open("trainXs.npy") as f:
            assert np.lib.format.read_magic(f) == (1, 0)
            shape, _, _ = np.lib.format.read_array_header_1_0(f)
            assert shape == TIB_SHAPE
    z = make_bomb("zip-inflates-past-its-size", bomb_base, tmp_path / "b")
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("trainXs.npy")
        assert info.file_size < 1024
        raw = Path(z).read_bytes()
        off, _ = H.zip_member_data_offset(z, "trainXs.npy")
        inflated = zlib.decompressobj(-15).decompress(raw[off:off + info.compress_size], 64 << 20)
        assert len(inflated) == 64 << 20, "the member does not inflate past its recorded size"
    d = make_bomb("npy-shape-overflows", bomb_base, tmp_path / "c")
    with pytest.raises(ValueError):
        np.load(d / "trainXs.npy")
    assert int(np.prod(np.array(OVERFLOW_SHAPE, dtype=object))) > 2 ** 63
