"""Dataset scanning: class order by code point, file order component by component, nesting,
hidden entries and __MACOSX ignored, empty classes kept with a warning."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest

import interop_helpers as H


def _tagged(value: int) -> np.ndarray:
    """A 4x4 RGB image whose pixels identify it."""
    return np.full((4, 4, 3), (value, 255 - value, (value * 7) % 256), np.uint8)


def _convert(run, root, tmp_path, *flags):
    out = tmp_path / "o.npz"
    res = run(["to-npz", root, out, *flags])
    arrays = H.load_npz(out)
    manifest = H.load_json(H.npz_manifest_path(out))
    H.check_manifest(manifest, arrays, root)
    return arrays, manifest, res


def test_class_order_is_by_code_point(run, make_dataset, tmp_path):
    # '！' U+FF01 sorts before '😀' U+1F600 by code point, but after it in UTF-16 code-unit order
    names = ["B", "a", "É", "10", "9", "\U0001F600", "\uFF01"]
    ds = make_dataset()
    for k, n in enumerate(names):
        ds.add_image(f"{n}/img.png", _tagged(k))
    arrays, manifest, _ = _convert(run, ds.root, tmp_path)
    expected = ["10", "9", "B", "a", "É", "\uFF01", "\U0001F600"]
    assert arrays["classNames"].tolist() == expected
    assert expected == sorted(names)  # code-point order
    for i, n in enumerate(expected):
        H.assert_equal_pixels(arrays["trainXs"][i], _tagged(names.index(n)), f"image of class {n!r}")
    assert arrays["trainYs"].tolist() == list(range(len(names)))


def test_class_names_are_not_normalised(run, make_dataset, tmp_path):
    """'e'+U+0301 (NFD) sorts before 'f' by code point; NFC-based comparison would put it after."""
    nfd = unicodedata.normalize("NFD", "é")
    assert nfd != "é" and len(nfd) == 2
    ds = make_dataset()
    ds.add_image(f"{nfd}/x.png", _tagged(1))
    ds.add_image("f/x.png", _tagged(2))
    if nfd not in [p.name for p in ds.root.iterdir()]:  # a file system that normalises names
        pytest.skip("this file system normalises Unicode file names")
    arrays, _, _ = _convert(run, ds.root, tmp_path)
    assert arrays["classNames"].tolist() == [nfd, "f"]


def test_files_ordered_component_by_component_and_nested(run, make_dataset, tmp_path):
    ds = make_dataset()
    # plain string order would be: a-b.png < a.png < a/b.png < a/c/d.png ('-' < '.' < '/')
    rels = ["a.png", "a-b.png", "a/b.png", "a/c/d.png", "B.png", "z/deep/er/e.png", "Z.png", "é.png", "e.png"]
    for k, r in enumerate(rels):
        ds.add_image(f"k/{r}", _tagged(k))
    arrays, manifest, _ = _convert(run, ds.root, tmp_path)
    expected = ["B.png", "Z.png", "a/b.png", "a/c/d.png", "a-b.png", "a.png", "e.png", "z/deep/er/e.png", "é.png"]
    assert [f["path"] for f in manifest["files"]] == [f"k/{r}" for r in expected]
    assert [f["path"] for f in manifest["files"]] == [r for r, _ in H.expected_files(ds.root)]
    for i, r in enumerate(expected):
        H.assert_equal_pixels(arrays["trainXs"][i], _tagged(rels.index(r)), f"k/{r}")


def test_hidden_entries_and_macosx_are_ignored(run, make_dataset, tmp_path):
    ds = make_dataset()
    ds.add_image("cat/1.png", _tagged(1))
    ds.add_image("cat/.hidden.png", _tagged(2))
    ds.add_image("cat/._1.png", _tagged(3))                # AppleDouble
    ds.add_image("cat/.cache/2.png", _tagged(4))           # hidden folder inside a class
    ds.add_image("cat/__MACOSX/3.png", _tagged(5))         # __MACOSX inside a class
    ds.add_image("dog/1.png", _tagged(6))
    ds.add_image("__MACOSX/cat/1.png", _tagged(7))         # __MACOSX at the root is no class
    ds.add_image(".git/x.png", _tagged(8))                 # hidden folder at the root is no class
    ds.add_bytes("cat/.DS_Store", b"\x00\x00\x00\x01Bud1")
    ds.add_bytes(".DS_Store", b"\x00\x00\x00\x01Bud1")
    arrays, manifest, _ = _convert(run, ds.root, tmp_path)
    assert arrays["classNames"].tolist() == ["cat", "dog"]
    assert [f["path"] for f in manifest["files"]] == ["cat/1.png", "dog/1.png"]
    H.assert_equal_pixels(arrays["trainXs"][0], _tagged(1), "cat/1.png")
    H.assert_equal_pixels(arrays["trainXs"][1], _tagged(6), "dog/1.png")
    for s in H.skipped_paths(manifest):
        assert all(not part.startswith(".") and part != "__MACOSX" for part in s.split("/")), \
            f"an ignored entry was reported as skipped: {s}"


def test_empty_class_is_kept_with_a_warning(run, make_dataset, tmp_path):
    ds = make_dataset()
    ds.add_image("alpha/1.png", _tagged(1))
    ds.add_class("beta")                                   # nothing at all
    ds.add_bytes("gamma/.DS_Store", b"\x00")               # only a hidden file
    ds.add_image("zeta/1.png", _tagged(2))
    arrays, manifest, res = _convert(run, ds.root, tmp_path)
    assert arrays["classNames"].tolist() == ["alpha", "beta", "gamma", "zeta"]
    assert arrays["trainYs"].tolist() == [0, 3]
    assert [c["count"] for c in manifest["classes"]] == [1, 0, 0, 1]
    assert "beta" in res.stderr and "gamma" in res.stderr, f"no warning naming the empty classes:\n{res.stderr}"


def test_summary_mentions_image_count(run, make_dataset, tmp_path):
    ds = make_dataset()
    for k in range(7):
        ds.add_image(f"c{k % 2}/{k}.png", _tagged(k))
    _, _, res = _convert(run, ds.root, tmp_path)
    assert any("7" in line for line in res.stdout.splitlines()), f"summary lacks the count 7:\n{res.stdout}"
