"""Runs whose options would damage what they read or the host (issue 13, items 2 and 8): an output
that is one of the run's inputs, and a --size whose images cannot fit in memory. Each is refused
before any work, in one line, with the inputs byte-identical afterwards and no temporary file left.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import interop_helpers as H

# scripts/sanitize.sh runs these tests on its AddressSanitizer build too (slower; it needs more
# descriptors than the limits below leave).
SANITIZED = bool(os.environ.get("IMGCONV_SANITIZED"))


def _dataset(root: Path) -> Path:
    rng = np.random.default_rng(11)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / c / f"{k:03d}.png")
    return root


def _temporaries(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if ".imgconv-" in p.name and p.name.endswith(".tmp")]


@pytest.mark.parametrize("sub", ["to-npz", "to-hdf5"])
def test_output_onto_a_source_image_is_refused(run, tmp_path, sub):
    root = _dataset(tmp_path / "root")
    before = H.dir_snapshot(root)
    res = run([sub, root, root / "cat" / "000.png"], expect_rc=H.EX_USAGE)
    H.assert_one_line_error(res, "000.png", "input")
    assert H.dir_snapshot(root) == before
    assert not _temporaries(tmp_path)


def test_output_onto_a_source_image_by_another_spelling_is_refused(run, tmp_path):
    root = _dataset(tmp_path / "root")
    (tmp_path / "link").symlink_to(root / "dog")
    before = H.dir_snapshot(root)
    for target in (root / "cat" / ".." / "dog" / "001.png", tmp_path / "link" / "001.png"):
        res = run(["to-npz", root, target], expect_rc=H.EX_USAGE)
        H.assert_one_line_error(res, "001.png", "input")
    assert H.dir_snapshot(root) == before


def test_output_onto_the_list_csv_or_the_classes_file_is_refused(run, tmp_path):
    root = _dataset(tmp_path / "root")
    csv = tmp_path / "list.csv"
    csv.write_text("".join(f"root/{c}/{k:03d}.png,{c}\n" for c in ("cat", "dog") for k in range(3)))
    res = run(["to-npz", "--list", csv, csv], expect_rc=H.EX_USAGE)
    H.assert_one_line_error(res, "list.csv", "--list CSV")
    classes = tmp_path / "classes.txt"
    classes.write_text("dog\ncat\n")
    res = run(["to-npz", root, classes, "--classes-file", classes], expect_rc=H.EX_USAGE)
    H.assert_one_line_error(res, "classes.txt", "--classes-file")
    assert csv.read_text().count("\n") == 6 and classes.read_text() == "dog\ncat\n"
    assert not _temporaries(tmp_path)


@pytest.mark.parametrize("fmt", ["npz", "h5"])
def test_convert_onto_its_own_input_or_manifest_is_refused(run, tmp_path, fmt):
    root = _dataset(tmp_path / "root")
    src = tmp_path / f"a.{fmt}"
    run([{"npz": "to-npz", "h5": "to-hdf5"}[fmt], root, src, "-q"])
    manifest = Path(str(src) + ".manifest.json")
    before = (src.read_bytes(), manifest.read_bytes())
    for target in (src, tmp_path / "root" / ".." / src.name):
        res = run(["convert", src, target], expect_rc=H.EX_USAGE)
        H.assert_one_line_error(res, src.name, "input")
    assert (src.read_bytes(), manifest.read_bytes()) == before
    run(["verify", src])


def test_convert_of_an_npy_folder_into_itself_is_refused(run, tmp_path):
    root = _dataset(tmp_path / "root")
    folder = tmp_path / "d"
    run(["to-npy", root, folder, "-q"])
    before = H.dir_snapshot(folder)
    res = run(["convert", folder, folder, "--to", "npy"], expect_rc=H.EX_USAGE)
    H.assert_one_line_error(res, "input")
    assert H.dir_snapshot(folder) == before


def test_outputs_beside_the_inputs_still_work(run, tmp_path):
    """The check compares entries, not folders: an output inside the dataset's folder is fine."""
    root = _dataset(tmp_path / "root")
    run(["to-npz", root, root / "cat" / "all.npz", "-q"])
    assert np.load(root / "cat" / "all.npz")["trainXs"].shape == (6, 8, 8, 3)


@pytest.mark.parametrize("size,color,dtype", [("60000x60000", "rgb", "auto"), ("30000x30000", "rgba", "float32")])
def test_size_beyond_memory_is_refused_with_the_figure(run, tmp_path, size, color, dtype):
    root = _dataset(tmp_path / "root")
    start = time.monotonic()
    res = run(["to-npz", root, tmp_path / "o.npz", "--size", size, "--color", color, "--dtype", dtype],
              expect_rc=H.EX_USAGE)
    assert time.monotonic() - start < (20 if SANITIZED else 2)
    line = H.assert_one_line_error(res, f"--size {size}", "GiB", "memory")
    assert not (tmp_path / "o.npz").exists()
    assert line.count("GiB") >= 2, "says what it needs and what there is"


def test_a_large_but_possible_size_is_not_refused(run, tmp_path):
    root = _dataset(tmp_path / "root")
    run(["to-npz", root, tmp_path / "o.npz", "--size", "512x512", "-q"])
    assert np.load(tmp_path / "o.npz")["trainXs"].shape == (6, 512, 512, 3)


@pytest.mark.parametrize("args", [["--help"], ["to-npz", "--help"], ["inspect", "--help"]])
def test_help_is_printed_as_lines_not_escapes(run, args):
    """Escaping control characters in printed names must not reach the tool's own help text."""
    res = run(args)
    assert "\\n" not in res.stdout and res.stdout.count("\n") > 5
    assert res.stdout.startswith("OVERVIEW: ")


# --- item 17: walks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["/proc", "/sys"])
def test_links_into_pseudo_filesystems_are_not_entered(run, tmp_path, target):
    root = _dataset(tmp_path / "root")
    (root / "cat" / "kernel").symlink_to(target)
    start = time.monotonic()
    run(["to-npz", root, tmp_path / "o.npz", "-q"])
    assert time.monotonic() - start < (60 if SANITIZED else 10)
    manifest = H.load_json(tmp_path / "o.npz.manifest.json")
    reasons = {s["path"]: s["reason"] for s in manifest["skipped"]}
    assert "pseudo filesystem" in reasons.get("cat/kernel", ""), reasons
    assert not any(p.startswith("cat/kernel/") for p in reasons), "nothing below it was listed"
    assert manifest["summary"]["images"] == 6


def test_a_diamond_of_links_is_walked_once_per_folder(run, tmp_path):
    """Twenty levels, each folder linking twice to the next: 2^20 paths to the last folder, one
    real folder each. Every real folder is walked once, so its image counts once."""
    root = _dataset(tmp_path / "root")
    levels = [tmp_path / f"level{k:02d}" for k in range(21)]
    for d in levels:
        d.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(levels[-1] / "deep.png")
    for a, b in zip(levels, levels[1:]):
        (a / "left").symlink_to(b)
        (a / "right").symlink_to(b)
    (root / "dog" / "maze").symlink_to(levels[0])
    start = time.monotonic()
    run(["to-npz", root, tmp_path / "o.npz", "-q"])
    assert time.monotonic() - start < (60 if SANITIZED else 10)
    manifest = H.load_json(tmp_path / "o.npz.manifest.json")
    deep = [f["path"] for f in manifest["files"] if f["path"].endswith("deep.png")]
    assert deep == ["dog/maze/" + "left/" * 20 + "deep.png"]
    assert any("already walked" in s["reason"] for s in manifest["skipped"])


# --- item 3: the host's faults are never a bad file ---------------------------------------------------

def _fd_limit(n):
    import resource

    def apply():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return apply


@pytest.mark.parametrize("extra", [[], ["--skip-bad"], ["--skip-bad", "--shuffle"]], ids=["plain", "skip-bad", "two-pass"])
def test_out_of_descriptors_stops_the_run_and_is_never_skipped(imgconv_bin, tmp_path, extra):
    """With 4 descriptors the images cannot be opened (EMFILE): that is the machine's fault, exit
    71 (EX_OSERR), never 'corrupt' and never skipped, and no output appears. Before, --skip-bad
    exited 0 with valid images left out."""
    import subprocess
    if SANITIZED:
        pytest.skip("the sanitizer runtime needs more descriptors than the limit leaves")
    root = _dataset(tmp_path / "root")
    out = tmp_path / "o.npz"
    res = subprocess.run([str(imgconv_bin), "to-npz", str(root), str(out), "--jobs", "1"] + extra,
                         preexec_fn=_fd_limit(4), capture_output=True, text=True, timeout=60)
    assert res.returncode == 71, (res.returncode, res.stderr)
    line = H.assert_one_line_error(res, "out of resources", "Too many open files")
    assert "corrupt" not in line
    assert not out.exists() and not _temporaries(tmp_path)


# --- item 5: export is built beside its target and moved into place ---------------------------------

def _npz(run, tmp_path, n_split=False):
    root = _dataset(tmp_path / "root")
    npz = tmp_path / "s.npz"
    run(["to-npz", root, npz, "-q"] + (["--split", "train=0.5,val=0.5", "--seed", "1"] if n_split else []))
    return npz


FULL_DISK = r"""
set -e
mount --make-rprivate /
mount -t tmpfs -o size=64k tmpfs "$DISK"
set +e
"$IMGCONV" export "$NPZ" "$DISK/out" -q >"$OUT/stdout" 2>"$OUT/stderr"
echo $? >"$OUT/rc"
ls -A "$DISK" >"$OUT/left"
"""


def test_export_on_a_full_disk_leaves_no_partial_folder(run, tmp_path):
    import os
    import subprocess
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare for a small private filesystem")
    rng = np.random.default_rng(5)
    X = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)   # noise: about 120 KiB of PNGs
    npz = tmp_path / "noise.npz"
    np.savez(npz, trainXs=X, trainYs=np.arange(40) % 2)
    disk, out = tmp_path / "disk", tmp_path / "report"
    disk.mkdir()
    out.mkdir()
    env = dict(os.environ, IMGCONV=str(H.binary_path()), NPZ=str(npz), DISK=str(disk), OUT=str(out))
    ns = subprocess.run(["unshare", "-m", "sh", "-c", FULL_DISK], env=env, capture_output=True, text=True, timeout=120)
    if ns.returncode != 0 or not (out / "rc").is_file():
        pytest.skip(f"no private mount namespace here: {ns.stderr.strip()[:200]}")
    assert int((out / "rc").read_text()) == H.EX_IOERR, (out / "stderr").read_text()
    lines = [ln for ln in (out / "stderr").read_text().splitlines() if ln.strip()]
    assert len(lines) == 1 and "No space left" in lines[0], lines
    assert (out / "left").read_text().split() == [], "a partial or temporary folder was left"


def test_interrupted_export_leaves_the_earlier_export_and_no_temporary(imgconv_bin, tmp_path):
    import signal
    import subprocess
    rng = np.random.default_rng(6)
    X = rng.integers(0, 256, (3000, 64, 64, 3), dtype=np.uint8)
    npz = tmp_path / "many.npz"
    np.savez(npz, trainXs=X, trainYs=np.arange(3000) % 3)
    target = tmp_path / "out"
    subprocess.run([str(imgconv_bin), "export", str(npz), str(target), "-q"], check=True)
    earlier = H.dir_snapshot(target)
    newer = tmp_path / "newer.npz"   # other pixels: a partly rewritten export would show
    np.savez(newer, trainXs=255 - X, trainYs=np.arange(3000) % 3)
    proc = subprocess.Popen([str(imgconv_bin), "export", str(newer), str(target), "-q"], stderr=subprocess.PIPE)
    time.sleep(0.4)   # well into the export (it takes about 2 s)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the export finished before the signal")
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert H.dir_snapshot(target) == earlier, "the earlier export changed"
    assert not _temporaries(tmp_path), _temporaries(tmp_path)[:3]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "a hidden folder was left"


def test_export_replaces_an_earlier_export_but_never_a_folder_of_other_files(run, tmp_path):
    npz = _npz(run, tmp_path, n_split=True)
    target = tmp_path / "out"
    run(["export", npz, target, "-q"])
    first = sorted((target / "train" / "cat").iterdir())[0]
    first.write_bytes(b"stale")   # the earlier export, changed since
    run(["export", npz, target, "-q"])
    assert first.read_bytes() != b"stale"
    assert sorted(p.name for p in target.iterdir()) == ["classes.txt", "train", "val"]

    other = tmp_path / "photos"
    (other / "cat").mkdir(parents=True)
    (other / "cat" / "IMG_0001.jpg").write_bytes(b"a photo")
    (other / "classes.txt").write_text("cat\n")
    before = H.dir_snapshot(other)
    res = run(["export", npz, other], expect_rc=H.EX_IOERR)
    H.assert_one_line_error(res, "photos", "cat/IMG_0001.jpg", "no part of an earlier export")
    assert H.dir_snapshot(other) == before
    assert not _temporaries(tmp_path)

    empty = tmp_path / "empty"
    empty.mkdir()
    run(["export", npz, empty, "-q"])
    assert (empty / "classes.txt").is_file()


# --- item 15: verify --against reads only regular files ----------------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_verify_against_a_source_that_is_not_a_regular_file_is_refused_not_hung(run, tmp_path, kind):
    import os
    root = _dataset(tmp_path / "root")
    npz = tmp_path / "o.npz"
    run(["to-npz", root, npz, "-q"])
    source = root / "dog" / "001.png"
    source.unlink()
    os.mkfifo(source) if kind == "fifo" else source.mkdir()
    start = time.monotonic()
    res = run(["verify", npz, "--against", root], expect_rc=H.EX_NOINPUT, timeout=20)
    assert time.monotonic() - start < (60 if SANITIZED else 10)
    H.assert_one_line_error(res, "dog/001.png", "not a regular file")


# --- item 4: data and manifest always from one run -----------------------------------------------------

def _two_images(root: Path, seed: int) -> Path:
    """Classes x and y of one noise image each."""
    rng = np.random.default_rng(seed)
    for c in ("x", "y"):
        (root / c).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / c / "0.png")
    return root


def _with_first_rename_held(tmp_path: Path, cmd: list):
    """Starts `cmd` under strace, its first rename held for 2 s after it is done."""
    import subprocess
    return subprocess.Popen(["strace", "-qq", "-f", "-o", str(tmp_path / "trace.txt"), "-e", "trace=rename,renameat,renameat2",
                             "-e", "inject=rename,renameat,renameat2:delay_exit=2000000:when=1"] + [str(c) for c in cmd],
                            stderr=subprocess.PIPE)


@pytest.mark.parametrize("sub,name", [("to-npz", "o.npz"), ("to-hdf5", "o.h5")])
def test_two_runs_into_one_target_leave_one_runs_pair(imgconv_bin, tmp_path, sub, name):
    """Run A's first rename (its data into place) is held for 2 s by strace; run B, converting
    other images to the same target, finishes meanwhile. B must wait for A's manifest before it
    commits, so the pair left is B's (verify passes). Before, B's data and manifest went in
    between A's two renames and A's manifest ended beside B's data."""
    import subprocess
    if not shutil.which("strace"):
        pytest.skip("needs strace to hold a rename")
    if SANITIZED:
        pytest.skip("LeakSanitizer cannot run under ptrace (strace)")
    a, b = _dataset(tmp_path / "a"), _two_images(tmp_path / "b", seed=12)
    out = tmp_path / "out"
    out.mkdir()
    target = out / name
    first = _with_first_rename_held(tmp_path, [imgconv_bin, sub, a, target, "-q"])
    deadline = time.monotonic() + 30
    while not target.exists() and time.monotonic() < deadline:   # A's data is in place, its rename held
        time.sleep(0.01)
    if not target.exists():
        first.kill()
        pytest.skip("strace could not hold the rename here")
    second = subprocess.run([str(imgconv_bin), sub, str(b), str(target), "-q"], capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert first.wait(timeout=60) == 0, first.stderr.read()
    res = subprocess.run([str(imgconv_bin), "verify", str(target)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "2 classes" in subprocess.run([str(imgconv_bin), "inspect", str(target), "--no-stats"],
                                         capture_output=True, text=True).stdout
    manifest = H.load_json(Path(str(target) + ".manifest.json"))
    assert manifest["summary"]["images"] == 2, "the manifest is B's, as the data is"


@pytest.mark.parametrize("sub,name", [("to-npz", "o.npz"), ("to-hdf5", "o.h5")])
def test_a_reader_never_sees_data_and_manifest_of_two_runs(imgconv_bin, tmp_path, sub, name):
    """An earlier pair is in place. Run A's first rename (its data over the earlier data) is held
    for 2 s by strace; `verify` started meanwhile must not read A's data with the earlier manifest:
    it waits for A's commit (the folder's lock) and verifies A's pair. Before, it read the new
    data beside the old manifest and failed."""
    import subprocess
    if not shutil.which("strace"):
        pytest.skip("needs strace to hold a rename")
    if SANITIZED:
        pytest.skip("LeakSanitizer cannot run under ptrace (strace)")
    a, b = _dataset(tmp_path / "a"), _two_images(tmp_path / "b", seed=13)
    out = tmp_path / "out"
    out.mkdir()
    target = out / name
    H.run_imgconv([sub, b, target, "-q"])
    earlier = target.stat().st_ino
    writer = _with_first_rename_held(tmp_path, [imgconv_bin, sub, a, target, "-q"])
    deadline = time.monotonic() + 30
    while target.stat().st_ino == earlier and time.monotonic() < deadline:   # A's data is in place, its rename held
        time.sleep(0.01)
    if target.stat().st_ino == earlier:
        writer.kill()
        pytest.skip("strace could not hold the rename here")
    res = subprocess.run([str(imgconv_bin), "verify", str(target)], capture_output=True, text=True, timeout=60)
    assert writer.wait(timeout=60) == 0, writer.stderr.read()
    assert res.returncode == 0, res.stderr
    assert "6 images" in res.stdout or "6 files" in res.stdout, res.stdout
