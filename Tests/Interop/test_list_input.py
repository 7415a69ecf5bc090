"""--list CSV input: quoting, CRLF, spaces and non-ASCII in paths, optional header, class names or
integers as labels, missing files and unknown labels reported with their line number."""

from __future__ import annotations

import json
import shutil

import numpy as np

import interop_helpers as H


def _files(tmp_path):
    src = H.SAMPLES
    d = tmp_path / "imgs"
    (d / "sub dir").mkdir(parents=True)
    shutil.copy(src / "cat" / "cat_01.jpg", d / "sub dir" / "a, b.jpg")
    shutil.copy(src / "coffee" / "coffee_01.jpg", d / "café.jpg")
    shutil.copy(src / "rocket" / "rocket_01.jpg", d / 'q"uote.jpg')
    return d


def test_list_with_quotes_crlf_and_names(run, tmp_path):
    _files(tmp_path)
    csv = tmp_path / "labels.csv"
    csv.write_bytes('path,label\r\n"imgs/sub dir/a, b.jpg",cat\r\nimgs/café.jpg, coffee \r\n"imgs/q""uote.jpg",rocket\r\n'.encode())
    out = tmp_path / "l.npz"
    run(["to-npz", "--list", csv, out])
    d = np.load(out)
    assert list(d["classNames"]) == ["cat", "coffee", "rocket"]
    assert list(d["trainYs"]) == [0, 1, 2]
    m = json.loads((tmp_path / "l.npz.manifest.json").read_text())
    assert [f["path"] for f in m["files"]] == ["imgs/sub dir/a, b.jpg", "imgs/café.jpg", 'imgs/q"uote.jpg']
    assert m["source"]["kind"] == "list"
    from PIL import Image
    ref = np.asarray(Image.open(H.SAMPLES / "coffee" / "coffee_01.jpg").convert("RGB"))
    np.testing.assert_array_equal(d["trainXs"][1], ref)


def test_list_integer_labels_without_header(run, tmp_path):
    _files(tmp_path)
    csv = tmp_path / "n.csv"
    csv.write_text("imgs/café.jpg,2\nimgs/sub dir/a, b.jpg,0\n".replace("imgs/sub dir/a, b.jpg", '"imgs/sub dir/a, b.jpg"'))
    out = tmp_path / "n.npz"
    run(["to-npz", "--list", csv, out])
    d = np.load(out)
    assert list(d["classNames"]) == ["0", "1", "2"] and list(d["trainYs"]) == [2, 0]


def test_list_missing_file_names_the_line(run, tmp_path):
    _files(tmp_path)
    csv = tmp_path / "bad.csv"
    csv.write_text("path,label\r\nimgs/café.jpg,coffee\r\nimgs/nope.jpg,cat\r\n")
    res = run(["to-npz", "--list", csv, tmp_path / "x.npz"], expect_rc=66)
    line = H.assert_one_line_error(res, "bad.csv:3", "nope.jpg")
    assert not (tmp_path / "x.npz").exists(), line


def test_list_bad_rows_are_clear_errors(run, tmp_path):
    _files(tmp_path)
    for text, needle in [('imgs/café.jpg,coffee,train,extra\n', "bad.csv:1"),
                         ('"imgs/café.jpg,coffee\n', "unterminated"),
                         ('imgs/café.jpg,\n', "empty label")]:
        csv = tmp_path / "bad.csv"
        csv.write_text(text)
        res = run(["to-npz", "--list", csv, tmp_path / "x.npz"], expect_rc=65 if needle != "empty label" else (64, 65))
        H.assert_one_line_error(res, needle)


def test_list_labels_must_be_listed_classes(run, tmp_path):
    _files(tmp_path)
    csv = tmp_path / "c.csv"
    csv.write_text("imgs/café.jpg,coffee\nimgs/q\"\"uote.jpg,dog\n".replace('q""uote', 'q"uote') if False else 'imgs/café.jpg,coffee\n"imgs/q""uote.jpg",dog\n')
    res = run(["to-npz", "--list", csv, tmp_path / "x.npz", "--classes", "coffee"], expect_rc=64)
    H.assert_one_line_error(res, "c.csv:2", "dog")


def test_usage_needs_root_or_list(run, tmp_path):
    run(["to-npz", tmp_path / "only.npz"], expect_rc=64)
