"""What cannot be mapped and what is damaged: one-line FormatErrors naming the file and the reason."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import imgconv
from reader_helpers import build_split_root, reference


def one_line(exc: pytest.ExceptionInfo, *needles: str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    return msg


def test_compressed_npz_names_the_member_and_the_way_out(run, make_dataset, tmp_path):
    root = build_split_root(make_dataset)
    out = tmp_path / "c.npz"
    run(["to-npz", root, out, "--compress", "-q"])
    ref = reference(out, "npz")
    with imgconv.open(out) as ds:  # class names, manifest, shapes: still there
        assert ds.class_names == ref["names"] and ds.manifest == ref["manifest"]
        s = ds["train"]
        assert len(s) == len(ref["splits"]["train"][0])
        for get in (lambda: s.xs, lambda: s[0], lambda: next(iter(s)), lambda: s.labels()):
            with pytest.raises(imgconv.FormatError) as e:
                get()
            one_line(e, str(out), "deflated", "imgconv convert")
    # the way out the message gives: convert writes stored members, which map
    stored = tmp_path / "s.npz"
    run(["convert", out, stored, "-q"])
    with imgconv.open(stored) as ds:
        assert np.array_equal(ds["train"].xs, ref["splits"]["train"][0])


def test_gzip_idx_names_the_file_and_the_way_out(run, make_dataset, tmp_path):
    root = build_split_root(make_dataset, channels=1)
    out = tmp_path / "idx"
    run(["to-idx", root, out, "--gzip", "-q"])
    with imgconv.open(out) as ds:
        assert ds.class_names == ["cat", "dog", "emu"] and list(ds) == ["train", "val", "test"]
        with pytest.raises(imgconv.FormatError) as e:
            ds["val"].xs
        one_line(e, "val-images-idx3-ubyte.gz", "gzip", "gzip -dk")


def test_truncated_npy_and_npz(run, make_dataset, tmp_path):
    root = build_split_root(make_dataset)
    npy = tmp_path / "npy"
    run(["to-npy", root, npy, "-q"])
    xs = npy / "valXs.npy"
    xs.write_bytes(xs.read_bytes()[:-1])
    with pytest.raises(imgconv.FormatError) as e:
        imgconv.open(npy)
    one_line(e, "valXs.npy", "truncated")

    npz = tmp_path / "o.npz"
    run(["to-npz", root, npz, "-q"])
    cut = tmp_path / "cut.npz"
    cut.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    with pytest.raises(imgconv.FormatError) as e:
        imgconv.open(cut)
    one_line(e, "cut.npz", "zip")


def test_damaged_npy_header_and_idx(run, make_dataset, tmp_path):
    root = build_split_root(make_dataset, channels=1)
    npy = tmp_path / "npy"
    run(["to-npy", root, npy, "-q"])
    b = bytearray((npy / "trainYs.npy").read_bytes())
    b[10:20] = b"{'descr':x"
    (npy / "trainYs.npy").write_bytes(bytes(b))
    with pytest.raises(imgconv.FormatError) as e:
        imgconv.open(npy)
    one_line(e, "trainYs.npy", "header")

    idx = tmp_path / "idx"
    run(["to-idx", root, idx, "-q"])
    lab = next(idx.glob("train-labels-*"))
    b = bytearray(lab.read_bytes())
    b[2] = 0x42
    lab.write_bytes(bytes(b))
    with pytest.raises(imgconv.FormatError) as e:
        imgconv.open(idx)
    one_line(e, lab.name, "element type")


def test_split_listed_in_the_manifest_but_missing(run, make_dataset, tmp_path):
    root = build_split_root(make_dataset)
    npy = tmp_path / "npy"
    run(["to-npy", root, npy, "-q"])
    (npy / "testXs.npy").unlink()
    with pytest.raises(imgconv.FormatError) as e:
        imgconv.open(npy)
    one_line(e, str(npy), "'test'")


def test_not_an_output(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    with pytest.raises(imgconv.FormatError) as e:
        imgconv.open(p)
    one_line(e, "notes.txt", "not an imgconv output")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(imgconv.FormatError) as e:
        imgconv.open(empty)
    one_line(e, "empty", "no pair")
    with pytest.raises(FileNotFoundError):
        imgconv.open(tmp_path / "missing.npz")


def test_npz_local_header_that_names_another_member(run, make_dataset, tmp_path):
    root = build_split_root(make_dataset)
    npz = tmp_path / "o.npz"
    run(["to-npz", root, npz, "-q"])
    import zipfile
    with zipfile.ZipFile(npz) as zf:
        off = zf.getinfo("valYs.npy").header_offset
    b = bytearray(npz.read_bytes())
    assert b[off + 30: off + 39] == b"valYs.npy"
    b[off + 30] = ord("w")
    npz.write_bytes(bytes(b))
    with pytest.raises(imgconv.FormatError) as e:
        imgconv.open(npz)
    one_line(e, "o.npz:valYs.npy", "local header", "wa")
