"""A CLI that helps when you guess wrong (issue 17, item 4): unknown options named with the option
imgconv has for them, --seed alone refused, progress as JSON lines, the files left out listed at the
end, an empty result that says why, counts in the right number, folder outputs that create their
parents, and --help of every command compared with its snapshot in Tests/Interop/help/
(IMGCONV_HELP_WRITE=1 rewrites the snapshots)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

import interop_helpers as H

HELP_DIR = Path(__file__).resolve().parent / "help"
COMMANDS = ["to-npz", "to-npy", "to-hdf5", "to-idx", "convert", "inspect", "export", "preview", "verify", "plan", "merge",
            "check", "card"]


@pytest.mark.parametrize("typed,suggested", [
    (["--image-size", "64x64"], "--size"),          # Keras
    (["--validation-split", "0.2"], "--split"),     # Keras
    (["--color-mode", "grayscale"], "--color"),     # Keras
    (["--num_workers", "2"], "--jobs"),             # PyTorch, with its underscore
    (["--sise", "8x8"], "--size"),                  # a typo
    (["--shufle"], "--shuffle"),
    (["--dtype=uint8", "--labls", "onehot"], "--labels"),
])
def test_an_unknown_option_is_named_with_the_one_imgconv_has(run, samples_root, tmp_path, typed, suggested):
    res = run(["to-npz", samples_root, tmp_path / "o.npz", *typed], expect_rc=H.EX_USAGE)
    unknown = next(t for t in typed if t.startswith("--") and not t.startswith("--dtype")).split("=")[0]
    line = H.assert_one_line_error(res, f"unknown option '{unknown}'", f"did you mean '{suggested}'?")
    assert "expected ROOT and OUT" not in line
    assert not (tmp_path / "o.npz").exists()


def test_an_unknown_option_without_a_near_name_is_still_named(run, samples_root, tmp_path):
    res = run(["inspect", samples_root, "--frobnicate"], expect_rc=H.EX_USAGE)
    line = H.assert_one_line_error(res, "unknown option '--frobnicate'", "imgconv inspect --help")
    assert "did you mean" not in line
    # what follows "--" is never taken for an option
    res = run(["to-npz", "--size", "8x8", "--", samples_root, tmp_path / "o.npz"], expect_rc=None)
    assert "unknown option" not in res.stderr


def test_seed_alone_is_refused(run, samples_root, tmp_path):
    res = run(["to-npz", samples_root, tmp_path / "o.npz", "--seed", "3"], expect_rc=H.EX_USAGE)
    H.assert_one_line_error(res, "--seed goes with --shuffle or --split")
    run(["to-npz", samples_root, tmp_path / "s.npz", "--seed", "3", "--shuffle", "-q"])
    run(["to-npz", samples_root, tmp_path / "p.npz", "--seed", "3", "--split", "train=0.5,test=0.5", "-q"])


def _with_junk(make_dataset, samples_root, n: int):
    ds = make_dataset()
    for cls in ("cat", "coffee"):
        for f in sorted((samples_root / cls).iterdir()):
            ds.add(f"{cls}/{f.name}", f)
    for i in range(n):
        ds.add_bytes(f"cat/notes/{i:02d}.txt", b"not an image\n")
    return ds


def test_progress_json_lines_and_the_files_left_out(run, make_dataset, samples_root, tmp_path):
    ds = _with_junk(make_dataset, samples_root, 12)
    out = tmp_path / "o.npz"
    res = run(["to-npz", ds.root, out, "--size", "32x32", "--progress", "json"])
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("{")]
    assert lines, res.stderr
    events = [json.loads(ln) for ln in lines]
    last = events[-1]
    images = int(np.load(out)["trainXs"].shape[0])
    assert last["done"] == last["total"] == images + 12 and last["percent"] == 100.0
    assert last["skipped"] == 12 and last["eta"] == 0.0
    assert all(e["done"] <= e["total"] for e in events)
    # the files left out: one line per reason, the first ten named, the count of the rest
    (left,) = [ln for ln in res.stderr.splitlines() if "left out" in ln]
    assert "left out 12 files (not an image)" in left
    assert left.count("'cat/notes/") == 10 and "and 2 more (all in the manifest)" in left
    assert len(H.load_json(H.npz_manifest_path(out))["skipped"]) == 12
    # not a terminal, no --progress: no bar drawn
    res = run(["to-npz", ds.root, tmp_path / "p.npz", "--size", "32x32"])
    assert "\r" not in res.stderr and "{" not in res.stderr
    res = run(["to-npz", ds.root, tmp_path / "q.npz", "--size", "32x32", "-q"])
    assert res.stdout == "" and "left out" not in res.stderr


def test_nothing_decodes_names_the_root_and_the_reasons(run, make_dataset, fixture_file):
    ds = make_dataset()
    ds.add_bytes("a/readme.txt", b"hello\n")
    ds.add_bytes("a/b.txt", b"hello\n")
    ds.add("a/empty.jpg", fixture_file("bad/empty.jpg"))
    res = run(["to-npz", ds.root, ds.root.parent / "o.npz"], expect_rc=H.EX_NOINPUT)
    line = H.assert_one_line_error(res, str(ds.root), "no decodable images found")
    assert "not an image" in line


def test_counts_read_in_the_right_number(run, make_dataset, samples_root, tmp_path):
    ds = make_dataset()
    f = sorted((samples_root / "cat").iterdir())[0]
    ds.add(f"only/{f.name}", f)
    out = tmp_path / "o.npz"
    res = run(["to-npz", ds.root, out])
    assert "1 image (" in res.stdout and ", 1 class," in res.stdout, res.stdout
    res = run(["inspect", out, "--no-stats"])
    assert "1 image" in res.stdout and "1 class," in res.stdout and "1 classes" not in res.stdout
    res = run(["export", out, tmp_path / "e"])
    assert "in 1 class folder" in res.stdout and "folders" not in res.stdout


def test_folder_outputs_create_their_parents_and_file_outputs_say_how(run, samples_root, tmp_path):
    npy = tmp_path / "a" / "b" / "npy"
    run(["to-npy", samples_root, npy, "-q"])
    assert (npy / "trainXs.npy").is_file()
    raw = tmp_path / "MNIST" / "raw"       # torchvision's layout
    run(["to-idx", samples_root, raw, "--color", "gray", "--size", "28x28", "-q"])
    assert (raw / "train-images-idx3-ubyte").is_file()
    exported = tmp_path / "x" / "y" / "exported"
    run(["export", npy, exported, "-q"])
    assert (exported / "classes.txt").is_file()
    res = run(["to-npz", samples_root, tmp_path / "missing" / "o.npz"], expect_rc=H.EX_IOERR)
    H.assert_one_line_error(res, "output folder does not exist", "mkdir -p")
    assert not (tmp_path / "missing").exists()


def _help(command: str) -> str:
    env = dict(os.environ, COLUMNS="100")
    return H.run_imgconv([command, "--help"], env=env).stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_help_matches_its_snapshot(command):
    text = _help(command)
    snapshot = HELP_DIR / f"{command}.txt"
    if os.environ.get("IMGCONV_HELP_WRITE"):
        HELP_DIR.mkdir(exist_ok=True)
        snapshot.write_text(text)
    assert snapshot.is_file(), f"no snapshot {snapshot.name}: run with IMGCONV_HELP_WRITE=1"
    assert text == snapshot.read_text(), f"{command} --help changed; review it, then IMGCONV_HELP_WRITE=1 rewrites the snapshot"
    # --jobs states one default: "all cores", not also the parser's count of this machine's cores
    assert not re.search(r"all cores\)[^-]*\(default: \d", text), text
