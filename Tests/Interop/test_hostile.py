"""Hostile inputs, faults and the host (issue #13): what a run does when the machine around it is
not friendly. Every failure is one stderr line starting 'imgconv: ' that names the file and the
reason, with a documented exit code; nothing that was there before is changed, and no temporary
file (`.<name>.imgconv-<pid>-<n>.tmp`) is left.

Sections
  1. output targets that are not regular files: a FIFO, a socket, a folder, /dev/null (74, before
     any work); the manifest's target; folder outputs; preview, export, convert; a symlinked target
  2. a NUL byte in a --list CSV (65, naming the CSV and the line)
  3. stdout or stderr closed, full or a broken pipe: 74 (or 141 for SIGPIPE), never a trap
  4. control characters in names are escaped in every printed line
  5. unreadable inputs are 66; SIGHUP and SIGPIPE clean up like SIGTERM (129, 141)
  6. ZIP strictness: a duplicate member name or an encrypted member is 65

The tests run as any user; the ones that need root (writing /dev, dropping to another user) skip
without it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import interop_helpers as H

TEMP_RE = re.compile(r"^\..+\.imgconv-\d+-\d+\.tmp$")
EX_SIGHUP, EX_SIGPIPE = 128 + signal.SIGHUP, 128 + signal.SIGPIPE


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------

def cli(args) -> list[str]:
    return [str(H.binary_path()), *[str(a) for a in args]]


def run(args, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """The CLI with captured output (bytes decoded leniently: stderr must be judged as it is)."""
    res = subprocess.run(cli(args), capture_output=True, timeout=timeout, **kwargs)
    res.stdout = res.stdout.decode("utf-8", "replace")
    res.stderr = res.stderr.decode("utf-8", "replace")
    return res


def expect(res, rc: int) -> None:
    assert res.returncode == rc, (f"exit {res.returncode}, want {rc}\ncommand: {res.args}\n"
                                  f"--- stdout ---\n{res.stdout[-2000:]}\n--- stderr ---\n{res.stderr[-3000:]}")


def no_trap(res) -> None:
    """Not killed by a signal, no Swift runtime report."""
    assert res.returncode >= 0, f"killed by signal {-res.returncode}\n{res.stderr[-3000:]}"
    assert res.returncode not in (128 + signal.SIGILL, 128 + signal.SIGTRAP), f"exit {res.returncode}\n{res.stderr[-3000:]}"
    for marker in ("Fatal error", "Backtracing", "Program crashed", "Illegal instruction"):
        assert marker not in res.stderr, f"{marker!r} on stderr:\n{res.stderr[-3000:]}"


def one_line(res, *needles: str) -> str:
    """Exactly one stderr line (a blank line before it is allowed, as after a signal), starting
    'imgconv: ', with every needle; no raw control character in it."""
    no_trap(res)
    return H.assert_one_line_error(res, *needles)


def state(folder: Path) -> dict[str, tuple]:
    """Every entry under folder, hidden ones included: its type and, for a regular file, its bytes
    (for a device, its device number), so that a FIFO replaced by a file shows."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = os.lstat(p)
        kind = stat.S_IFMT(st.st_mode)
        rel = p.relative_to(folder).as_posix()
        if stat.S_ISREG(st.st_mode):
            out[rel] = (kind, p.read_bytes())
        elif stat.S_ISLNK(st.st_mode):
            out[rel] = (kind, os.readlink(p))
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            out[rel] = (kind, st.st_rdev)
        else:
            out[rel] = (kind, None)
    return out


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*") if TEMP_RE.match(p.name))


def assert_unchanged(before: dict, folder: Path, what: str = "") -> None:
    after = state(folder)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"{what}: entries changed: {changed}"


def make_socket(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    return s


def make_special(path: Path, kind: str):
    """A FIFO, a bound Unix socket or a folder (with a file in it) at path; returns what must stay open."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        return make_socket(path)
    elif kind == "dir":
        path.mkdir()
        (path / "keep.txt").write_bytes(b"keep me")
    else:
        raise ValueError(kind)
    return None


KIND_WORDS = {"fifo": "FIFO", "socket": "socket", "dir": "folder"}


def noise_dataset(make_dataset, n: int = 4, size=(12, 12), seed: int = 0):
    ds = make_dataset()
    rng = np.random.default_rng(seed)
    for k in range(n):
        ds.add_image(f"{'ab'[k % 2]}/{k:04d}.png", rng.integers(0, 256, size + (3,), dtype=np.uint8))
    return ds


@pytest.fixture
def work(tmp_path, make_dataset):
    """An outputs folder holding an earlier good to-npz output, and a small dataset."""
    ds = noise_dataset(make_dataset)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    expect(run(["to-npz", ds.root, outputs / "earlier.npz", "-q"]), 0)
    return ds, outputs


# ==================================================================================================
# 1. Output targets that are not regular files
# ==================================================================================================

@pytest.mark.parametrize("kind", ["fifo", "socket", "dir"])
@pytest.mark.parametrize("sub,name", [("to-npz", "o.npz"), ("to-hdf5", "o.h5")])
def test_special_file_target_is_refused_and_left_alone(imgconv_bin, work, kind, sub, name):
    ds, outputs = work
    keep = make_special(outputs / name, kind)
    before, inputs = state(outputs), state(ds.root)
    res = run([sub, ds.root, outputs / name, "-q"])
    expect(res, H.EX_IOERR)
    one_line(res, name, KIND_WORDS[kind])
    assert not temporaries(outputs), temporaries(outputs)
    assert_unchanged(before, outputs, f"{sub} onto a {kind}")
    assert_unchanged(inputs, ds.root, "inputs")
    if keep:
        keep.close()


def test_special_target_is_refused_before_any_work(imgconv_bin, work, fixture_file):
    """The target is checked before the images: a corrupt image is not even reached."""
    ds, outputs = work
    ds.add("b/zz-corrupt.png", fixture_file("bad/truncated.png"))
    os.mkfifo(outputs / "o.npz")
    res = run(["to-npz", ds.root, outputs / "o.npz", "-q"])
    expect(res, H.EX_IOERR)
    line = one_line(res, "o.npz", "FIFO")
    assert "zz-corrupt" not in line


@pytest.mark.parametrize("kind", ["fifo", "socket", "dir"])
def test_special_manifest_target_keeps_the_output_too(imgconv_bin, work, kind):
    ds, outputs = work
    target = outputs / "earlier.npz"   # an earlier output whose manifest path is taken over
    manifest = H.npz_manifest_path(target)
    manifest.unlink()
    keep = make_special(manifest, kind)
    before = state(outputs)
    res = run(["to-npz", ds.root, target, "-q", "--shuffle", "--seed", "3"])
    expect(res, H.EX_IOERR)
    one_line(res, manifest.name, KIND_WORDS[kind])
    assert not temporaries(outputs)
    assert_unchanged(before, outputs, f"manifest target a {kind}")
    if keep:
        keep.close()


def test_character_device_target_is_refused_and_stays_a_device(imgconv_bin, work):
    """A twin of /dev/null (character device 1, 3) made in the outputs folder: the same lstat
    check as /dev/null itself, without putting the host's /dev/null at the mercy of the binary."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make a device node")
    ds, outputs = work
    for sub, name in (("to-npz", "null.npz"), ("to-hdf5", "null.h5"), ("to-npy", "nulldir")):
        os.mknod(outputs / name, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        before = state(outputs)
        res = run([sub, ds.root, outputs / name, "-q"])
        expect(res, H.EX_IOERR)
        one_line(res, name, "character device")
        assert not temporaries(outputs)
        assert_unchanged(before, outputs, f"{sub} onto a character device")


# Runs the CLI with /dev a private tmpfs holding a fresh null device (1, 3) and a /dev/stdout link,
# in a mount namespace of its own: the host's /dev is out of reach whatever the binary does.
PRIVATE_DEV = r"""
set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /dev
mknod -m 666 /dev/null c 1 3
mknod -m 444 /dev/urandom c 1 9
ln -s /proc/self/fd/1 /dev/stdout
set +e
"$IMGCONV" to-npz "$ROOT" "$TARGET" -q >"$OUT/stdout" 2>"$OUT/stderr"
echo $? >"$OUT/rc"
stat -c '%F %t:%T' /dev/null >"$OUT/null"
readlink /dev/stdout >"$OUT/stdout-link"
ls -A /dev >"$OUT/dev"
"""


@pytest.mark.parametrize("target", ["/dev/null", "/dev/stdout"])
def test_dev_null_and_dev_stdout_targets_are_refused(imgconv_bin, make_dataset, tmp_path, target):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare for a private /dev")
    out = tmp_path / "report"
    out.mkdir()
    env = dict(os.environ, IMGCONV=str(H.binary_path()), ROOT=str(noise_dataset(make_dataset).root),
               TARGET=target, OUT=str(out))
    ns = subprocess.run(["unshare", "-m", "sh", "-c", PRIVATE_DEV], env=env, capture_output=True, text=True, timeout=120)
    if ns.returncode != 0 or not (out / "rc").is_file():
        pytest.skip(f"no private mount namespace here: {ns.stderr.strip()[:200]}")
    assert (out / "null").read_text().split() == ["character", "special", "file", "1:3"], "/dev/null was replaced"
    assert (out / "stdout-link").read_text().strip() == "/proc/self/fd/1", "/dev/stdout was replaced"
    assert sorted((out / "dev").read_text().split()) == ["null", "stdout", "urandom"], "files were left in /dev"
    res = subprocess.CompletedProcess(target, int((out / "rc").read_text()), (out / "stdout").read_text(),
                                      (out / "stderr").read_text())
    expect(res, H.EX_IOERR)
    one_line(res, target, "character device" if target == "/dev/null" else "symbolic link")


@pytest.mark.parametrize("what", ["folder-is-fifo", "trainXs.npy", "trainYs.npy", "classNames.npy", "manifest.json"])
def test_npy_folder_target_entries_are_checked(imgconv_bin, work, what):
    ds, outputs = work
    target = outputs / "npydir"
    if what == "folder-is-fifo":
        os.mkfifo(target)
        named, keep = "npydir", None
    else:
        expect(run(["to-npy", ds.root, target, "-q"]), 0)
        (target / what).unlink()
        keep = make_special(target / what, "socket" if what == "manifest.json" else "fifo")
        named = what
    before = state(outputs)
    res = run(["to-npy", ds.root, target, "-q", "--shuffle"])
    expect(res, H.EX_IOERR)
    one_line(res, named)
    assert not temporaries(outputs)
    assert_unchanged(before, outputs, f"to-npy with {what} special")
    if keep:
        keep.close()


@pytest.mark.parametrize("what", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "manifest.json"])
def test_idx_folder_target_entries_are_checked(imgconv_bin, work, what):
    ds, outputs = work
    target = outputs / "idxdir"
    expect(run(["to-idx", ds.root, target, "--color", "gray", "-q"]), 0)
    (target / what).unlink()
    os.mkfifo(target / what)
    before = state(outputs)
    res = run(["to-idx", ds.root, target, "--color", "gray", "-q", "--shuffle"])
    expect(res, H.EX_IOERR)
    one_line(res, what, "FIFO")
    assert not temporaries(outputs)
    assert_unchanged(before, outputs, f"to-idx with a FIFO at {what}")


def test_preview_and_convert_refuse_a_fifo_target(imgconv_bin, work):
    ds, outputs = work
    os.mkfifo(outputs / "sheet.png")
    os.mkfifo(outputs / "copy.h5")
    before = state(outputs)
    res = run(["preview", outputs / "earlier.npz", "-o", outputs / "sheet.png", "-q"])
    expect(res, H.EX_IOERR)
    one_line(res, "sheet.png", "FIFO")
    res = run(["convert", outputs / "earlier.npz", outputs / "copy.h5", "-q"])
    expect(res, H.EX_IOERR)
    one_line(res, "copy.h5", "FIFO")
    assert not temporaries(outputs)
    assert_unchanged(before, outputs, "preview / convert onto FIFOs")


def test_export_refuses_a_fifo_among_its_files(imgconv_bin, work):
    ds, outputs = work
    export = outputs / "exported"
    export.mkdir()
    os.mkfifo(export / "classes.txt")
    res = run(["export", outputs / "earlier.npz", export, "-q"])
    expect(res, H.EX_IOERR)
    one_line(res, "classes.txt", "FIFO")
    assert stat.S_ISFIFO(os.lstat(export / "classes.txt").st_mode), "the FIFO was replaced"
    assert not temporaries(outputs)


def test_symlinked_target_is_replaced_by_the_file_and_its_target_untouched(imgconv_bin, work):
    """README: a symbolic link to a regular file at the target is itself replaced (rename); the
    file it points to is never opened or changed. A link to a FIFO or device is refused (74)."""
    ds, outputs = work
    victim = outputs.parent / "victim.bin"
    victim.write_bytes(b"precious")
    target = outputs / "o.npz"
    target.symlink_to(victim)
    expect(run(["to-npz", ds.root, target, "-q"]), 0)
    assert not target.is_symlink() and target.is_file()
    assert victim.read_bytes() == b"precious"
    H.load_npz(target)

    fifo = outputs / "pipe"
    os.mkfifo(fifo)
    linked = outputs / "linked.npz"
    linked.symlink_to(fifo)
    before = state(outputs)
    res = run(["to-npz", ds.root, linked, "-q"], timeout=60)
    expect(res, H.EX_IOERR)
    one_line(res, "linked.npz", "symbolic link to a FIFO")
    assert_unchanged(before, outputs, "link to a FIFO")
    assert not temporaries(outputs)


# ==================================================================================================
# 2. A NUL byte in a --list CSV
# ==================================================================================================

def test_nul_in_list_csv_is_an_error_naming_the_line(imgconv_bin, work):
    ds, outputs = work
    files = sorted(p.relative_to(ds.root).as_posix() for p in ds.root.rglob("*.png"))
    rows = [f"{ds.root / f},{f.split('/')[0]}" for f in files]
    text = "path,label\n" + rows[0] + "\n" + rows[1] + "\x00junk\n" + "\n".join(rows[2:]) + "\n"
    csv = outputs.parent / "list.csv"
    csv.write_bytes(text.encode())
    before = state(outputs)
    res = run(["to-npz", "--list", csv, outputs / "earlier.npz", "-q"])
    expect(res, H.EX_DATAERR)
    one_line(res, "list.csv:3", "NUL")
    assert not temporaries(outputs)
    assert_unchanged(before, outputs, "NUL in the list")


# ==================================================================================================
# 3. stdout / stderr closed, full, or a broken pipe
# ==================================================================================================

def run_sh(redirect: str, args, timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI through sh with a redirection such as '>&-' or '2>/dev/full' applied to it."""
    res = subprocess.run(["sh", "-c", f'exec "$@" {redirect}', "sh", *cli(args)], capture_output=True, timeout=timeout)
    res.stdout = res.stdout.decode("utf-8", "replace")
    res.stderr = res.stderr.decode("utf-8", "replace")
    return res


@pytest.mark.parametrize("sub", ["to-npz", "verify", "inspect", "--help"])
def test_closed_stdout_is_74_and_the_output_stays(imgconv_bin, work, sub):
    ds, outputs = work
    target = outputs / "new.npz"
    args = {"to-npz": ["to-npz", ds.root, target],
            "verify": ["verify", outputs / "earlier.npz"],
            "inspect": ["inspect", outputs / "earlier.npz"],
            "--help": ["--help"]}[sub]
    before = state(outputs)
    res = run_sh(">&-", args)
    expect(res, H.EX_IOERR)
    one_line(res, "standard output", "closed")
    assert not temporaries(outputs)
    if sub == "to-npz":
        # the conversion was committed before its summary line failed: a complete, valid output
        arrays = H.load_npz(target)
        H.check_manifest(H.load_json(H.npz_manifest_path(target)), arrays, ds.root)
        expect(run(["verify", target]), 0)
    else:
        assert_unchanged(before, outputs, f"{sub} with stdout closed")


def test_full_stdout_is_74(imgconv_bin, work):
    ds, outputs = work
    res = run_sh(">/dev/full", ["verify", outputs / "earlier.npz"])
    expect(res, H.EX_IOERR)
    one_line(res, "standard output", "No space left")


@pytest.mark.parametrize("redirect", ["2>/dev/full", "2>&-"])
def test_unwritable_stderr_on_an_error_is_74_without_a_trap(imgconv_bin, tmp_path, redirect):
    res = run_sh(redirect, ["to-npz", tmp_path / "no-such-root", tmp_path / "o.npz"])
    no_trap(res)
    expect(res, H.EX_IOERR)
    assert list(tmp_path.iterdir()) == []


def test_closed_stderr_never_lands_in_an_output(imgconv_bin, work):
    """With stderr closed, the first file a run opens would get descriptor 2, and a warning would
    be written into it. The warning (an empty class) is lost instead, the run exits 74 and its
    output is complete."""
    ds, outputs = work
    (ds.root / "c-empty").mkdir()
    target = outputs / "warned.npz"
    res = run_sh("2>&-", ["to-npz", ds.root, target, "-q"])
    no_trap(res)
    expect(res, H.EX_IOERR)
    arrays = H.load_npz(target)
    assert list(arrays["classNames"]) == ["a", "b", "c-empty"]
    expect(run(["verify", target]), 0)


def test_broken_stdout_pipe_is_141_and_the_output_stays(imgconv_bin, work):
    ds, outputs = work
    target = outputs / "piped.npz"
    r, w = os.pipe()
    os.close(r)   # nobody will read: the first write raises SIGPIPE
    try:
        res = subprocess.run(cli(["to-npz", ds.root, target]), stdout=w, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(w)
    err = res.stderr.decode("utf-8", "replace")
    assert res.returncode == EX_SIGPIPE, f"exit {res.returncode}, want {EX_SIGPIPE}\n{err}"
    # The summary line comes after the commit: nothing temporary is left to remove, and the line
    # does not claim so.
    assert [ln for ln in err.splitlines() if ln.strip()] == ["imgconv: interrupted (SIGPIPE: output pipe closed)"]
    assert not temporaries(outputs)
    expect(run(["verify", target]), 0)


# ==================================================================================================
# 4. Control characters in names
# ==================================================================================================

HOSTILE_NAME = "x\ny\x1b[31mred.png"


def test_control_characters_in_a_file_name_are_escaped_in_the_error(imgconv_bin, work, fixture_file):
    ds, outputs = work
    ds.add("a/" + HOSTILE_NAME, fixture_file("bad/truncated.png"))
    before = state(outputs)
    res = run(["to-npz", ds.root, outputs / "earlier.npz", "--size", "12x12", "-q"])
    expect(res, H.EX_DATAERR)
    one_line(res, "corrupt", r"a/x\ny\x1B[31mred.png")
    assert "\x1b" not in res.stderr and "\r" not in res.stderr
    assert_unchanged(before, outputs, "corrupt hostile name")

    # --skip-bad: the warning about it is one line too, and the manifest keeps the real name
    res = run(["to-npz", ds.root, outputs / "skipped.npz", "--size", "12x12", "--skip-bad", "-q"])
    expect(res, 0)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("imgconv: warning: ") and r"x\ny\x1B[31m" in lines[0], res.stderr
    assert "\x1b" not in res.stderr
    skipped = H.load_json(H.npz_manifest_path(outputs / "skipped.npz"))["skipped"]
    assert [s["path"] for s in skipped] == ["a/" + HOSTILE_NAME]


def test_control_characters_in_class_names_are_escaped_by_inspect_and_verify(imgconv_bin, make_dataset, tmp_path):
    ds = make_dataset()
    rng = np.random.default_rng(1)
    ds.add_image("a\x1b[31mb\x07/0.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    ds.add_image("c\x9b31md\x7f/0.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))   # C1 CSI, DEL
    ds.add_image("e\nf/0.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    ds.add_image("plain/0.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    target = tmp_path / "o.npz"
    expect(run(["to-npz", ds.root, target, "-q"]), 0)
    raw = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")   # every control but the newline
    res = run(["inspect", target])
    expect(res, 0)
    assert not raw.search(res.stdout), res.stdout
    assert r"a\x1B[31mb\x07" in res.stdout and r"c\u009B31md\u007F" in res.stdout, res.stdout
    class_lines = [ln for ln in res.stdout.splitlines() if re.match(r"^  \d+  ", ln)]
    assert len(class_lines) == 4 and any(r"e\nf" in ln for ln in class_lines), res.stdout   # one line each
    res = run(["inspect", target, "--json"])   # a valid document, with the exact names
    expect(res, 0)
    assert not raw.search(res.stdout)
    import json
    names = [c["name"] for c in json.loads(res.stdout)["classes"]]
    assert "a\x1b[31mb\x07" in names and "c\x9b31md\x7f" in names and "e\nf" in names, names
    res = run(["verify", target])
    expect(res, 0)
    assert not raw.search(res.stdout)


def test_control_characters_in_zip_member_names_are_escaped(imgconv_bin, work):
    ds, outputs = work
    bad = outputs.parent / "member.npz"
    evil = "evil\n\x1b[31mX.npy"
    with zipfile.ZipFile(outputs / "earlier.npz") as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr(evil, b"\x93NUMPY")
    data = bytearray(bad.read_bytes())
    at = data.index(evil.encode())                  # the local header's copy of the name comes first
    data[at + len("evil\n\x1b[31m")] = ord("Y")     # local and central names now differ
    bad.write_bytes(bytes(data))
    res = run(["inspect", bad])
    expect(res, H.EX_DATAERR)
    one_line(res, "member.npz", r"evil\n\x1B[31mX.npy")
    assert "\x1b" not in res.stderr


# ==================================================================================================
# 5. Unreadable inputs and signals
# ==================================================================================================

def test_folder_where_an_input_file_goes_is_66(imgconv_bin, work):
    ds, outputs = work
    folder = outputs.parent / "a-folder"
    folder.mkdir()
    before = state(outputs)
    for args, named in ([["to-npz", ds.root, outputs / "earlier.npz", "--classes-file", folder], "a-folder"],
                        [["to-npz", "--list", folder, outputs / "earlier.npz"], "a-folder"]):
        res = run(args)
        expect(res, H.EX_NOINPUT)
        one_line(res, named, "folder")
    assert_unchanged(before, outputs, "a folder as an input file")


@pytest.mark.parametrize("sub", ["verify", "inspect"])
def test_fifo_as_input_is_66_and_does_not_hang(imgconv_bin, tmp_path, sub):
    fifo = tmp_path / "in.npz"
    os.mkfifo(fifo)
    res = run([sub, fifo], timeout=20)   # a blocking open would wait for a writer forever
    expect(res, H.EX_NOINPUT)
    one_line(res, "in.npz", "FIFO")


def _drop_to_nobody():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def test_permission_denied_input_is_66(imgconv_bin):
    """chmod 000 means nothing to root: the CLI runs as nobody here."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the CLI as another user")
    import tempfile
    base = Path(tempfile.mkdtemp(prefix="imgconv-eacces-"))
    try:
        base.chmod(0o777)
        from PIL import Image
        rng = np.random.default_rng(2)
        for k in range(4):
            (base / "root" / "ab"[k % 2]).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(base / "root" / "ab"[k % 2] / f"{k:04d}.png")
        for p in [base / "root", *base.joinpath("root").rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        (base / "root" / "a" / "0000.png").chmod(0)
        out = base / "out"
        out.mkdir()
        out.chmod(0o777)
        try:
            probe = subprocess.run(cli(["--version"]), capture_output=True, preexec_fn=_drop_to_nobody, timeout=30)
        except PermissionError:   # the exec itself fails: nobody cannot reach the binary
            probe = None
        if probe is None or probe.returncode != 0:
            pytest.skip("the binary cannot run as nobody here (a parent folder is private)")
        res = subprocess.run(cli(["to-npz", base / "root", out / "o.npz", "-q"]), capture_output=True,
                             preexec_fn=_drop_to_nobody, timeout=120)
        res.stdout, res.stderr = res.stdout.decode(), res.stderr.decode("utf-8", "replace")
        expect(res, H.EX_NOINPUT)
        one_line(res, "0000.png", "Permission denied")
        assert list(out.iterdir()) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


SIGNAL_IMAGES = 3000


@pytest.fixture(scope="module")
def big_root(tmp_path_factory) -> Path:
    """SIGNAL_IMAGES PNGs in three classes, hard links (copies where links fail) of 30 generated
    256x256 noise images: about 5 s of work at --jobs 1 on 2 cores (3000 distinct 64x64 ones took
    0.3 s, too short to signal reliably)."""
    from PIL import Image
    base = tmp_path_factory.mktemp("signals")
    rng = np.random.default_rng(13)
    sources = []
    for i in range(30):
        sources.append(base / f"src{i:02d}.png")
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(sources[-1])
    root = base / "root"
    for c in "abc":
        (root / c).mkdir(parents=True)
    for k in range(SIGNAL_IMAGES):
        dst = root / "abc"[k % 3] / f"{k:05d}.png"
        try:
            os.link(sources[k % 30], dst)
        except OSError:
            shutil.copyfile(sources[k % 30], dst)
    return root


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGPIPE], ids=["SIGHUP", "SIGPIPE"])
@pytest.mark.parametrize("sub,name", [("to-npz", "o.npz"), ("to-hdf5", "o.h5")])
def test_sighup_and_sigpipe_clean_up_like_sigterm(imgconv_bin, big_root, make_dataset, tmp_path, sig, sub, name):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    target = outputs / name
    expect(run([sub, noise_dataset(make_dataset).root, target, "-q"]), 0)
    before = state(outputs)
    proc = subprocess.Popen(cli([sub, big_root, target, "--jobs", "1", "-q"]), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not temporaries(outputs):
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before its temporary file appeared"
        assert time.monotonic() < deadline, "no temporary file within 60 s"
        time.sleep(0.005)
    time.sleep(0.2)
    assert proc.poll() is None, f"the run finished before the signal ({SIGNAL_IMAGES} images are too few here)"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    err = err.decode("utf-8", "replace")
    assert proc.returncode == 128 + sig, f"exit {proc.returncode}, want {128 + sig}\n{err}"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("imgconv: interrupted (" + sig.name), err
    assert not temporaries(outputs), temporaries(outputs)
    assert_unchanged(before, outputs, f"{sub} interrupted by {sig.name}")


def test_signal_while_renaming_into_place_waits_for_the_manifest(imgconv_bin, big_root, make_dataset, tmp_path):
    """strace holds the first rename (the .npz into place) for 3 s; SIGTERM arrives then. The run
    must finish renaming (its manifest too) before it exits 143: a new .npz beside the earlier
    manifest would fail verification. Before the fix the handler removed the manifest's temporary
    file and left exactly that."""
    if not shutil.which("strace"):
        pytest.skip("needs strace to hold a rename")
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    target = outputs / "o.npz"
    expect(run(["to-npz", noise_dataset(make_dataset).root, target, "-q"]), 0)
    earlier = target.read_bytes()
    proc = subprocess.Popen(cli(["to-npz", big_root, target, "--jobs", "1", "-q"]), stderr=subprocess.PIPE)
    tracer = subprocess.Popen(["strace", "-qq", "-f", "-o", str(tmp_path / "trace.txt"), "-p", str(proc.pid),
                               "-e", "trace=rename", "-e", "inject=rename:delay_exit=3000000:when=1"],
                              stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        if tracer.poll() is not None:
            proc.kill()
            pytest.skip(f"strace cannot attach here: {tracer.stderr.read().decode()[:200]}")
        deadline = time.monotonic() + 60
        while target.read_bytes() == earlier:   # the .npz is renamed; the rename has not returned
            assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before its rename"
            assert time.monotonic() < deadline, "no rename within 60 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        tracer.wait(timeout=30)
    err = err.decode("utf-8", "replace")
    assert proc.returncode == 128 + signal.SIGTERM, f"exit {proc.returncode}\n{err}"
    expect(run(["verify", target]), 0)   # the new .npz and its own manifest
    assert not temporaries(outputs), temporaries(outputs)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("imgconv: interrupted (SIGTERM)"), err


# ==================================================================================================
# 6. ZIP strictness
# ==================================================================================================

def _duplicate_member(src: Path, dst: Path, member: str) -> None:
    """A copy of src with a second member named `member` (other bytes: numpy returns this one)."""
    with zipfile.ZipFile(src) as z:
        infos = [(i, z.read(i)) for i in z.infolist()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # zipfile warns about the duplicate name, and writes it
        with zipfile.ZipFile(dst, "w") as out:
            for info, data in infos:
                out.writestr(info, data)
            original = dict((i.filename, d) for i, d in infos)[member]
            out.writestr(member, original[:-1] + bytes([original[-1] ^ 0xFF]))


def _set_encrypted_flag(path: Path, member: str) -> None:
    """Sets general purpose bit 0 of `member` in its local header and its central directory entry."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    patched = 0
    for sig, name_len_at, flag_at, header in ((b"PK\x03\x04", 26, 6, 30), (b"PK\x01\x02", 28, 8, 46)):
        at = data.find(sig)
        while at >= 0:
            n = struct.unpack_from("<H", data, at + name_len_at)[0]
            if data[at + header:at + header + n] == name:
                struct.pack_into("<H", data, at + flag_at, struct.unpack_from("<H", data, at + flag_at)[0] | 1)
                patched += 1
            at = data.find(sig, at + 4)
    assert patched == 2, f"patched {patched} headers of {member}"
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("sub", ["verify", "inspect", "convert"])
def test_duplicate_member_name_is_refused(imgconv_bin, work, sub):
    ds, outputs = work
    bad = outputs.parent / "dup.npz"
    _duplicate_member(outputs / "earlier.npz", bad, "trainXs.npy")
    shutil.copyfile(H.npz_manifest_path(outputs / "earlier.npz"), H.npz_manifest_path(bad))
    with np.load(bad) as z:   # what a user gets is the second member
        assert not np.array_equal(z["trainXs"], H.load_npz(outputs / "earlier.npz")["trainXs"])
    before = state(outputs.parent)
    args = [sub, bad] + ([outputs.parent / "converted.h5"] if sub == "convert" else [])
    res = run(args)
    expect(res, H.EX_DATAERR)
    one_line(res, "dup.npz", "trainXs.npy", "twice")
    assert_unchanged(before, outputs.parent, f"{sub} of a duplicate member")


@pytest.mark.parametrize("member", ["trainXs.npy", "trainYs.npy"])
def test_encrypted_member_is_refused(imgconv_bin, work, member):
    ds, outputs = work
    bad = outputs.parent / "enc.npz"
    shutil.copyfile(outputs / "earlier.npz", bad)
    shutil.copyfile(H.npz_manifest_path(outputs / "earlier.npz"), H.npz_manifest_path(bad))
    _set_encrypted_flag(bad, member)
    for sub in ("verify", "inspect"):
        res = run([sub, bad])
        expect(res, H.EX_DATAERR)
        one_line(res, "enc.npz", member, "encrypted")
