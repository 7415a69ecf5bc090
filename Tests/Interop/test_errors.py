"""Bad input and failure behaviour: exit codes, one-line errors naming the file, outputs left intact,
no temporary files, --skip-bad, non-images and unsupported formats skipped, shape mismatch, bombs."""

from __future__ import annotations

import io
import os
import re
import time

import numpy as np

import pytest

import interop_helpers as H

CORRUPT = ["truncated.png", "bad-crc.png", "truncated.jpg", "truncated.tif"]


def _good_dataset(make_dataset, n=2, size=(96, 96)):
    """Good images as large as the Tests/Fixtures/bad pictures (96x96), so that a bad file fails on
    its data and not on a size mismatch read from its header."""
    ds = make_dataset()
    rng = np.random.default_rng(1)
    for k in range(n):
        ds.add_image(f"good/{k}.png", rng.integers(0, 256, size + (3,), dtype=np.uint8))
    return ds


def test_missing_root_is_66(run, tmp_path):
    missing = tmp_path / "no-such-root"
    out = tmp_path / "o.npz"
    res = run(["to-npz", missing, out], expect_rc=H.EX_NOINPUT)
    H.assert_one_line_error(res, "no-such-root")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [
    ["to-npz"],
    ["no-such-subcommand", "a", "b"],
    ["to-npz", "{root}", "{out}", "--color", "purple"],
    ["to-npz", "{root}", "{out}", "--size", "banana"],
    ["to-npz", "{root}", "{out}", "--no-such-flag"],
], ids=["no-operands", "bad-subcommand", "bad-color", "bad-size", "bad-flag"])
def test_usage_errors_are_64(run, make_dataset, tmp_path, args):
    ds = _good_dataset(make_dataset)
    out = tmp_path / "o.npz"
    argv = [a.format(root=ds.root, out=out) for a in args]
    res = run(argv, expect_rc=H.EX_USAGE)
    assert res.stderr.strip(), "a usage error must say something on stderr"
    assert not out.exists()


@pytest.mark.parametrize("name", CORRUPT)
def test_corrupt_image_is_65_naming_the_file(run, make_dataset, fixture_file, tmp_path, name):
    src = fixture_file(f"bad/{name}")
    ds = make_dataset()
    rel = f"cls/{name}"
    ds.add(rel, src)
    out = tmp_path / "o.npz"
    res = run(["to-npz", ds.root, out], expect_rc=H.EX_DATAERR, timeout=30)
    H.assert_one_line_error(res, rel)
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == [], "output or temporary files left behind"


@pytest.mark.parametrize("target", ["npz", "npy"])
def test_failed_run_keeps_previous_output_and_leaves_no_temp_files(run, make_dataset, fixture_file, tmp_path, target):
    bad = fixture_file("bad/truncated.png")
    good = _good_dataset(make_dataset)
    outdir = tmp_path / "outputs"
    outdir.mkdir()
    out = outdir / ("prev.npz" if target == "npz" else "prevdir")
    sub = "to-npz" if target == "npz" else "to-npy"
    run([sub, good.root, out])
    before = H.dir_snapshot(outdir)
    assert before, "the first run wrote nothing"

    broken = _good_dataset(make_dataset)
    broken.add("good/zz-bad.png", bad)
    res = run([sub, broken.root, out], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "good/zz-bad.png")
    after = H.dir_snapshot(outdir)
    assert sorted(after) == sorted(before), f"files changed: {sorted(set(after) ^ set(before))}"
    assert after == before, "the earlier output was modified by a failed run"


def test_output_parent_is_a_file(run, make_dataset, tmp_path):
    """Works as root too: a path under a regular file cannot be created by anyone."""
    ds = _good_dataset(make_dataset)
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"not a directory")
    res = run(["to-npz", ds.root, blocker / "o.npz"], expect_rc=(H.EX_IOERR, H.EX_NOINPUT))
    H.assert_one_line_error(res, "blocker")
    assert blocker.read_bytes() == b"not a directory"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: permission bits do not stop root, see test_output_parent_is_a_file")
def test_output_folder_not_writable_is_74(run, make_dataset, tmp_path):
    ds = _good_dataset(make_dataset)
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        res = run(["to-npz", ds.root, ro / "o.npz"], expect_rc=H.EX_IOERR)
        H.assert_one_line_error(res, "o.npz")
        assert list(ro.iterdir()) == []
    finally:
        os.chmod(ro, 0o755)


def test_skip_bad_continues_and_lists_files(run, make_dataset, fixture_file, tmp_path):
    ds = _good_dataset(make_dataset, n=3)
    bad_rels = []
    for name in CORRUPT:
        p = H.FIXTURES / "bad" / name
        if p.is_file():
            rel = f"good/bad-{name}"
            ds.add(rel, p)
            bad_rels.append(rel)
    if not bad_rels:
        pytest.skip("no Tests/Fixtures/bad/* corrupt file is present")
    out = tmp_path / "o.npz"
    res = run(["to-npz", ds.root, out, "--skip-bad"], timeout=60)
    for rel in bad_rels:
        assert rel in res.stderr, f"--skip-bad did not list {rel} on stderr:\n{res.stderr}"
    manifest = H.load_json(H.npz_manifest_path(out))
    arrays = H.load_npz(out)
    H.check_manifest(manifest, arrays, ds.root)
    assert sorted(H.skipped_paths(manifest)) == sorted(bad_rels)
    assert [f["path"] for f in manifest["files"]] == ["good/0.png", "good/1.png", "good/2.png"]
    assert arrays["trainXs"].shape == (3, 96, 96, 3)


def test_non_image_files_are_skipped_and_counted(run, make_dataset, fixture_file, tmp_path):
    ds = _good_dataset(make_dataset)
    ds.add("good/notanimage.png", fixture_file("bad/notanimage.png"))
    ds.add_bytes("good/readme.txt", b"hello\n")
    ds.add_bytes("good/sub/labels.csv", b"a,b\n1,2\n")
    out = tmp_path / "o.npz"
    run(["to-npz", ds.root, out])
    manifest = H.load_json(H.npz_manifest_path(out))
    arrays = H.load_npz(out)
    H.check_manifest(manifest, arrays, ds.root)
    assert sorted(H.skipped_paths(manifest)) == ["good/notanimage.png", "good/readme.txt", "good/sub/labels.csv"]
    assert [f["path"] for f in manifest["files"]] == ["good/0.png", "good/1.png"]


@pytest.mark.parametrize("fmt,name", [("ICO", "image.ico"), ("JPEG2000", "image.jp2")])
def test_unsupported_formats_are_skipped(run, make_dataset, tmp_path, fmt, name):
    """A format imgconv recognises but does not read (Pillow-made ICO, JPEG 2000) is skipped by
    name, counted under its reason."""
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 20, 30)).save(buf, fmt)
    ds = _good_dataset(make_dataset)
    ds.add_bytes(f"good/{name}", buf.getvalue())
    out = tmp_path / "o.npz"
    run(["to-npz", ds.root, out])
    manifest = H.load_json(H.npz_manifest_path(out))
    assert H.skipped_paths(manifest) == [f"good/{name}"]
    assert "unsupported format" in manifest["skipped"][0]["reason"].lower(), manifest["skipped"]
    assert H.load_npz(out)["trainXs"].shape[0] == 2


def test_bmp_beside_pngs_is_converted(run, make_dataset, fixture_file, tmp_path):
    """BMP was skipped as an unsupported format until imgconv read it (issue 14): now it is one
    more image, equal to Pillow's decode, with format 'bmp' in the manifest."""
    ds = _good_dataset(make_dataset)
    ds.add("good/image.bmp", fixture_file("bad/image.bmp"))
    out = tmp_path / "o.npz"
    res = run(["to-npz", ds.root, out])
    assert "3 images (2 png, 1 bmp), " in res.stdout, res.stdout   # the summary line counts formats
    manifest = H.load_json(H.npz_manifest_path(out))
    arrays = H.load_npz(out)
    H.check_manifest(manifest, arrays, ds.root)
    assert H.skipped_paths(manifest) == []
    assert [f["format"] for f in manifest["files"]] == ["png", "png", "bmp"]
    H.assert_equal_pixels(arrays["trainXs"][2], H.pil_array(fixture_file("bad/image.bmp"), "RGB"), "image.bmp")


def test_gif_is_converted_among_other_formats(run, make_dataset, fixture_file, tmp_path):
    """bad/image.gif (once a sample of an unsupported format) is read like any image now: its
    palette expanded to RGB, counted in summary.formats."""
    ds = _good_dataset(make_dataset)
    ds.add("good/image.gif", fixture_file("bad/image.gif"))
    out = tmp_path / "o.npz"
    run(["to-npz", ds.root, out, "--size", "96x96"])
    manifest = H.load_json(H.npz_manifest_path(out))
    H.check_manifest(manifest, H.load_npz(out), ds.root)
    assert not manifest["skipped"]
    assert manifest["summary"]["formats"]["gif"] == 1
    assert [f["format"] for f in manifest["files"] if f["path"] == "good/image.gif"] == ["gif"]


def test_empty_jpg_is_not_an_image(run, make_dataset, fixture_file, tmp_path):
    """A 0-byte file has no magic bytes: skipped like any non-image (or, at most, rejected by name)."""
    ds = _good_dataset(make_dataset)
    ds.add("good/empty.jpg", fixture_file("bad/empty.jpg"))
    out = tmp_path / "o.npz"
    res = run(["to-npz", ds.root, out], expect_rc=(0, H.EX_DATAERR))
    if res.returncode == 0:
        assert H.skipped_paths(H.load_json(H.npz_manifest_path(out))) == ["good/empty.jpg"]
    else:
        H.assert_one_line_error(res, "good/empty.jpg")


def _size_pattern(h, w):
    return re.compile(rf"\b({h}\s*[x×,]\s*{w}|{w}\s*[x×,]\s*{h})\b")


def test_shape_mismatch_is_65_naming_file_and_sizes(run, make_dataset, tmp_path):
    ds = make_dataset()
    ds.add_image("c/a.png", np.zeros((12, 16, 3), np.uint8))
    ds.add_image("c/b.png", np.zeros((7, 9, 3), np.uint8))
    out = tmp_path / "o.npz"
    res = run(["to-npz", ds.root, out], expect_rc=H.EX_DATAERR)
    line = H.assert_one_line_error(res, "c/b.png")
    assert _size_pattern(12, 16).search(line), f"first image's size 12x16 not in {line!r}"
    assert _size_pattern(7, 9).search(line), f"mismatching size 7x9 not in {line!r}"
    assert not out.exists()


def test_bomb_is_rejected_quickly(run, make_dataset, fixture_file, tmp_path):
    ds = make_dataset()
    ds.add("c/bomb.png", fixture_file("bad/bomb.png"))
    out = tmp_path / "o.npz"
    t0 = time.monotonic()
    res = run(["to-npz", ds.root, out], expect_rc=H.EX_DATAERR, timeout=60)
    elapsed = time.monotonic() - t0
    H.assert_one_line_error(res, "c/bomb.png")
    assert elapsed < 10, f"bomb.png took {elapsed:.1f}s to reject"
    assert not out.exists()


def test_file_name_not_utf8_is_named_and_skippable(run, make_dataset, tmp_path):
    # Linux names are bytes: a Latin-1 name cannot be opened through a repaired Swift string nor
    # written into the JSON manifest. One line naming it (bytes as \xNN), or left out with --skip-bad.
    ds = _good_dataset(make_dataset, n=2)
    good = os.path.join(os.fsencode(ds.root), b"good")
    with open(os.path.join(good, b"0.png"), "rb") as f:
        data = f.read()
    with open(os.path.join(good, b"caf\xe9.png"), "wb") as f:
        f.write(data)
    out = tmp_path / "o.npz"
    res = run(["to-npz", ds.root, out], expect_rc=65)
    H.assert_one_line_error(res, "good/caf\\xE9.png", "not valid UTF-8", "--skip-bad")
    assert not out.exists()
    run(["to-npz", ds.root, out, "--skip-bad"])
    manifest = H.load_json(H.npz_manifest_path(out))
    H.check_manifest(manifest, H.load_npz(out), ds.root)
    assert manifest["skipped"] == [{"path": "good/caf\\xE9.png", "reason": "file name is not valid UTF-8"}]
    assert [f["path"] for f in manifest["files"]] == ["good/0.png", "good/1.png"]
    # A class folder so named would be a class without a name: refused even with --skip-bad.
    bad_class = os.path.join(os.fsencode(ds.root), b"cl\xe4ss")
    os.mkdir(bad_class)
    with open(os.path.join(bad_class, b"x.png"), "wb") as f:
        f.write(data)
    res = run(["to-npz", ds.root, out, "--skip-bad"], expect_rc=65)
    H.assert_one_line_error(res, "cl\\xE4ss", "folder name is not valid UTF-8")


def test_folders_equal_only_after_unicode_normalisation_stay_apart(run, make_dataset, tmp_path):
    # "café" in NFC and in NFD are two folders on disk; Swift's String equality takes them as one,
    # which sent the second folder's files to the first and failed with "not found".
    import unicodedata
    ds = _good_dataset(make_dataset, n=1)
    rng = np.random.default_rng(3)
    expected = {}
    for form in ["NFD", "NFC"]:
        rel = f"good/{unicodedata.normalize(form, 'café')}/{form}.png"
        a = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
        ds.add_image(rel, a)
        expected[rel.encode()] = a
    out = tmp_path / "o.npz"
    run(["to-npz", ds.root, out])
    manifest = H.load_json(H.npz_manifest_path(out))
    arrays = H.load_npz(out)
    paths = [f["path"].encode() for f in manifest["files"]]
    assert sorted(paths[1:]) == sorted(expected), paths
    for i, p in enumerate(paths[1:], start=1):
        np.testing.assert_array_equal(arrays["trainXs"][i], expected[p])
