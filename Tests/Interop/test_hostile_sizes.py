"""Inputs whose size the tool must not trust (issue 13, item 7): an image file is recognised from
its first bytes and read whole only when its header shows the size plausible; the text inputs
(the --list CSV, --classes-file, manifests) are read in bounded pieces or refused unread.

Every large input is a sparse file of 1 GiB or more (little disk), and every run's peak RSS from
`/usr/bin/time -f %M` must stay under 150 MiB, under an address-space limit that keeps a
regression from taking the host down.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import interop_helpers as H
from interop_helpers import MAX_RSS_KIB, SANITIZED, run_measured

GIB = 1 << 30


def rss_ok(rss):
    assert rss is None or rss < MAX_RSS_KIB, f"peak RSS {rss} KiB"


def image_bytes(fmt: str, size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), 7, np.uint8)).save(buf, fmt)
    return buf.getvalue()


def sparse(path: Path, head: bytes, size: int) -> Path:
    """A file of `size` bytes that starts with `head`; the rest is a hole."""
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return path


@pytest.fixture
def dataset(tmp_path):
    """Two classes of small PNGs, and a folder for outputs."""
    root = tmp_path / "ds"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i + (c == "b"), np.uint8)).save(root / c / f"{i}.png")
    out = tmp_path / "out"
    out.mkdir()
    return root, out


# ==================================================================================================
# Image files: larger than their header can need, or not images at all
# ==================================================================================================

@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("JPEG", "jpg"), ("TIFF", "tif")])
@pytest.mark.parametrize("mode", ["single-pass", "two-pass"])
def test_image_larger_than_its_header_can_need_is_refused_unread(dataset, tmp_path, fmt, ext, mode):
    root, out = dataset
    sparse(root / "a" / f"huge.{ext}", image_bytes(fmt), GIB)
    extra = ["--shuffle", "--seed", "3"] if mode == "two-pass" else []
    start = time.monotonic()
    res, rss = run_measured(["to-npz", root, out / "o.npz", "-q", *extra], tmp_path)
    H.assert_one_line_error(res, f"a/huge.{ext}", f"file is {GIB} bytes", f"more than a 8x8 {fmt}", "can need")
    rss_ok(rss)
    assert time.monotonic() - start < (90 if SANITIZED else 30)
    assert list(out.iterdir()) == [], "no output, no temporary file"

    # --skip-bad skips it (the file is wrong, not the host) and converts the rest.
    res, rss = run_measured(["to-npz", root, out / "o.npz", "-q", "--skip-bad", *extra], tmp_path, expect_rc=0)
    rss_ok(rss)
    manifest = H.load_json(H.npz_manifest_path(out / "o.npz"))
    assert [s["path"] for s in manifest["skipped"]] == [f"a/huge.{ext}"]
    assert "can need" in manifest["skipped"][0]["reason"]
    assert H.load_npz(out / "o.npz")["trainXs"].shape == (6, 8, 8, 3)


def test_a_huge_non_image_is_skipped_from_its_first_bytes(dataset, tmp_path):
    root, out = dataset
    sparse(root / "b" / "zeros.png", b"", 10 * GIB)
    start = time.monotonic()
    res, rss = run_measured(["to-npz", root, out / "o.npz", "-q"], tmp_path, expect_rc=0)
    assert time.monotonic() - start < (90 if SANITIZED else 20), "the 10 GiB file was read"
    rss_ok(rss)
    manifest = H.load_json(H.npz_manifest_path(out / "o.npz"))
    assert manifest["skipped"] == [{"path": "b/zeros.png", "reason": "not an image"}]


def test_verify_against_sources_reads_no_huge_replacement(dataset, tmp_path):
    root, out = dataset
    H.run_imgconv(["to-npz", root, out / "o.npz", "-q"])
    src = root / "a" / "1.png"
    sparse(src, src.read_bytes(), GIB)
    res, rss = run_measured(["verify", out / "o.npz", "--against", root], tmp_path)
    H.assert_one_line_error(res, "a/1.png", "can need")
    rss_ok(rss)


def tiff_with_directory_at_the_end(pixels: np.ndarray, gap: int) -> bytes:
    """An uncompressed 8-bit gray little-endian TIFF whose pixels come first and whose only
    directory lies `gap` bytes after them (past the prefix the header pass reads)."""
    h, w = pixels.shape
    data = pixels.tobytes()
    data_at = 8
    ifd_at = data_at + len(data) + gap
    ifd_at += ifd_at % 2
    tags = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
            (273, 4, 1, data_at), (277, 3, 1, 1), (278, 4, 1, h), (279, 4, 1, len(data))]
    ifd = struct.pack("<H", len(tags))
    for tag, typ, count, value in tags:
        ifd += struct.pack("<HHI", tag, typ, count) + (struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value))
    ifd += struct.pack("<I", 0)
    body = b"II*\x00" + struct.pack("<I", ifd_at) + data
    return body + b"\x00" * (ifd_at - len(body)) + ifd


def test_tiff_directory_past_the_prefix_is_read_in_place(tmp_path):
    """The header pass reads 16 KiB; a TIFF whose directory lies further on is read through the
    file (libtiff seeks to it), and converts exactly."""
    root = tmp_path / "ds"
    (root / "c").mkdir(parents=True)
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (40, 30), dtype=np.uint8)
    (root / "c" / "late.tif").write_bytes(tiff_with_directory_at_the_end(pixels, 200_000))
    for extra in ([], ["--shuffle", "--seed", "1"]):
        out = tmp_path / f"o{len(extra)}.npz"
        H.run_imgconv(["to-npz", root, out, "-q", *extra])
        np.testing.assert_array_equal(H.load_npz(out)["trainXs"][0, :, :, 0], pixels)
        H.run_imgconv(["verify", out, "--against", root])


def test_tiff_directory_at_the_end_of_a_huge_file_is_refused_without_reading_it(tmp_path):
    root = tmp_path / "ds"
    (root / "c").mkdir(parents=True)
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8)
    (root / "c" / "late.tif").write_bytes(tiff_with_directory_at_the_end(pixels, GIB))
    res, rss = run_measured(["to-npz", root, tmp_path / "o.npz", "-q"], tmp_path)
    H.assert_one_line_error(res, "c/late.tif", "more than a 8x8 TIFF can need")
    rss_ok(rss)


# ==================================================================================================
# Text inputs
# ==================================================================================================

def test_huge_list_csv_of_zeros_stops_at_its_first_line(dataset, tmp_path):
    root, out = dataset
    csv = sparse(tmp_path / "list.csv", f"path,label\n{root}/a/0.png,a\n".encode(), 4 * GIB)
    start = time.monotonic()
    res, rss = run_measured(["to-npz", "--list", csv, out / "o.npz", "-q"], tmp_path)
    H.assert_one_line_error(res, "list.csv:3", "NUL")
    assert time.monotonic() - start < (90 if SANITIZED else 20)
    rss_ok(rss)
    assert list(out.iterdir()) == []


def test_list_csv_with_a_field_longer_than_any_path_is_refused(dataset, tmp_path):
    root, out = dataset
    csv = tmp_path / "list.csv"
    csv.write_bytes(f"{root}/a/0.png,a\n".encode() + b"x" * (200 << 20) + b",a\n")
    res, rss = run_measured(["to-npz", "--list", csv, out / "o.npz", "-q"], tmp_path)
    H.assert_one_line_error(res, "list.csv:2", "longer than 65536 bytes")
    rss_ok(rss)


def test_large_valid_list_csv_streams(dataset, tmp_path):
    """100,000 rows (quoted, CRLF, a quoted field spanning lines) parse as before."""
    root, out = dataset
    rows = ['"path","label"']
    for i in range(100_000):
        rows.append(f'"{root}/a/{i % 3}.png",a' if i % 2 else f'{root}/b/{i % 3}.png,"b"')
    csv = tmp_path / "list.csv"
    csv.write_bytes(("\r\n".join(rows) + "\r\n").encode())
    res, rss = run_measured(["to-npz", "--list", csv, out / "o.npz", "-q"], tmp_path, expect_rc=0)
    ys = H.load_npz(out / "o.npz")["trainYs"]
    assert len(ys) == 100_000 and ys[0] == 1 and ys[1] == 0


def test_huge_classes_file_is_read_in_pieces(dataset, tmp_path):
    root, out = dataset
    classes = sparse(tmp_path / "classes.txt", b"b\na\n", 4 * GIB)
    res, rss = run_measured(["to-npz", root, out / "o.npz", "-q", "--classes-file", classes], tmp_path, expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "classes.txt:3", "NUL")
    rss_ok(rss)


def test_classes_file_that_is_not_utf8_names_its_line(dataset, tmp_path):
    root, out = dataset
    classes = tmp_path / "classes.txt"
    classes.write_bytes(b"b\na\xff\n")
    res = H.run_imgconv(["to-npz", root, out / "o.npz", "-q", "--classes-file", classes], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "classes.txt:2", "not UTF-8")
    classes.write_bytes(b"b\r\n\r\n  a  \r\n")
    H.run_imgconv(["to-npz", root, out / "o.npz", "-q", "--classes-file", classes])
    assert list(H.load_npz(out / "o.npz")["classNames"]) == ["b", "a"]


@pytest.mark.parametrize("head", [b"", b"{\n"], ids=["zeros", "json-start"])
@pytest.mark.parametrize("command", ["inspect", "verify", "export", "convert"])
def test_huge_manifest_is_refused_unread(dataset, tmp_path, head, command):
    root, out = dataset
    target = out / "o.npz"
    H.run_imgconv(["to-npz", root, target, "-q"])
    sparse(H.npz_manifest_path(target), head, 2 * GIB)
    args = {"inspect": ["inspect", target],
            "verify": ["verify", target],
            "export": ["export", target, tmp_path / "exported"],
            "convert": ["convert", target, tmp_path / "o.h5"]}[command]
    res, rss = run_measured(args, tmp_path)
    H.assert_one_line_error(res, "o.npz.manifest.json", "not a JSON object" if not head else "tensor rows can be")
    rss_ok(rss)
    assert not (tmp_path / "exported").exists() and not (tmp_path / "o.h5").exists()
