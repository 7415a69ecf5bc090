"""imgconv verify: passes on fresh outputs, fails (naming the member) on a flipped byte in stored
or deflated data and in a .npy file, and --against ROOT notices an edited source image."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

import interop_helpers as H


def _dataset(make_dataset, n=6):
    rng = np.random.default_rng(21)
    ds = make_dataset()
    for k in range(n):
        ds.add_image(f"c{k % 2}/{k}.png", rng.integers(0, 256, (16, 20, 3), dtype=np.uint8))
    return ds


def _assert_verify_fails(run, path, member, *extra):
    res = run(["verify", path, *extra], expect_rc=H.EX_DATAERR)
    return H.assert_one_line_error(res, member)


def test_verify_passes_on_fresh_outputs(run, make_dataset, tmp_path):
    ds = _dataset(make_dataset)
    for flags in ([], ["--compress"]):
        npz = tmp_path / f"v{len(flags)}.npz"
        run(["to-npz", ds.root, npz, *flags])
        res = run(["verify", npz])
        assert res.stdout.strip(), "verify must print what it checked"
        res = run(["verify", npz, "--against", ds.root])
        assert res.stdout.strip()
    npy = tmp_path / "npy"
    run(["to-npy", ds.root, npy])
    assert run(["verify", npy]).stdout.strip()
    assert run(["verify", npy, "--against", ds.root]).stdout.strip()


def test_verify_detects_flipped_byte_in_stored_trainxs(run, make_dataset, tmp_path):
    ds = _dataset(make_dataset)
    npz = tmp_path / "s.npz"
    run(["to-npz", ds.root, npz])
    start, info = H.zip_member_data_offset(npz, "trainXs.npy")
    assert info.compress_type == zipfile.ZIP_STORED
    with open(npz, "rb") as f:
        f.seek(start)
        head = f.read(256)
    data_start = start + H.npy_header_length(head)
    data_len = info.file_size - H.npy_header_length(head)
    assert data_len == 6 * 16 * 20 * 3
    H.flip_byte(npz, data_start + data_len // 2)
    _assert_verify_fails(run, npz, "trainXs")


def test_verify_detects_flipped_byte_in_deflated_trainxs(run, make_dataset, tmp_path):
    ds = _dataset(make_dataset)
    npz = tmp_path / "d.npz"
    run(["to-npz", ds.root, npz, "--compress"])
    start, info = H.zip_member_data_offset(npz, "trainXs.npy")
    assert info.compress_type == zipfile.ZIP_DEFLATED
    H.flip_byte(npz, start + info.compress_size // 2)
    _assert_verify_fails(run, npz, "trainXs.npy")


@pytest.mark.parametrize("member", ["trainXs.npy", "trainYs.npy"])
def test_verify_detects_flipped_byte_in_npy_dir(run, make_dataset, tmp_path, member):
    ds = _dataset(make_dataset)
    d = tmp_path / "npy"
    run(["to-npy", ds.root, d])
    p = d / member
    buf = p.read_bytes()
    hl = H.npy_header_length(buf)
    H.flip_byte(p, hl + (len(buf) - hl) // 2)
    _assert_verify_fails(run, d, member)


def test_verify_against_samples(run, samples_root, tmp_path):
    npz = tmp_path / "samples.npz"
    run(["to-npz", samples_root, npz])
    res = run(["verify", npz, "--against", samples_root])
    assert res.stdout.strip()


def test_verify_against_detects_edited_source(run, samples_root, tmp_path):
    root = tmp_path / "samples-copy"
    shutil.copytree(samples_root, root)
    npz = tmp_path / "s.npz"
    run(["to-npz", root, npz])
    run(["verify", npz, "--against", root])
    files = H.load_json(H.npz_manifest_path(npz))["files"]
    # prefer a lossless file so that the edit is certain to change the decoded pixels too
    pick = next((f["path"] for f in files if H.sniff(root / f["path"]) == "png"), files[0]["path"])
    p = root / pick
    with Image.open(p) as im:
        fmt = im.format
        edited = im.copy()
    edited.paste(tuple([0] * len(edited.getbands())) if edited.mode != "P" else 0, (0, 0, 8, 8))
    edited.paste(tuple([255] * len(edited.getbands())) if edited.mode != "P" else 1, (8, 8, 16, 16))
    edited.save(p, format=fmt)
    res = run(["verify", npz, "--against", root], expect_rc=H.EX_DATAERR)
    line = H.assert_one_line_error(res)
    assert pick in line or "trainXs" in line, f"neither the edited file {pick} nor trainXs is named: {line!r}"
