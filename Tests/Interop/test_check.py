"""`imgconv check`: a dataset with planted problems, built here from real photos with Pillow, must be
reported with each problem found and nothing else; the report is the same for any --jobs and
valid against Schemas/check.schema.json."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from PIL import Image

from interop_helpers import (EX_DATAERR, EX_NOINPUT, EX_USAGE, FIXTURES, REPO_ROOT, SAMPLES,
                             assert_one_line_error, run_imgconv)

CHECK_SCHEMA = json.loads((REPO_ROOT / "Schemas" / "check.schema.json").read_text())
ROTATED_SOURCE = FIXTURES / "jpeg" / "exif-orientation" / "Portrait_6.jpg"
FILLERS_PER_CLASS = 47


def smooth_image(rng: np.random.Generator, gray: bool = False) -> Image.Image:
    """A distinct 64x64 picture: random coarse structure with finer detail over it."""
    channels = 1 if gray else 3
    coarse = rng.integers(0, 256, (8, 8, channels), dtype=np.uint8)
    fine = rng.integers(0, 256, (16, 16, channels), dtype=np.uint8)
    mode = "L" if gray else "RGB"
    squeeze = (lambda a: a[:, :, 0]) if gray else (lambda a: a)
    a = np.asarray(Image.fromarray(squeeze(coarse), mode).resize((64, 64), Image.BICUBIC), dtype=np.float64)
    b = np.asarray(Image.fromarray(squeeze(fine), mode).resize((64, 64), Image.BICUBIC), dtype=np.float64)
    return Image.fromarray(np.clip(0.75 * a + 0.25 * b, 0, 255).astype(np.uint8), mode)


def planted_dataset(root: Path) -> dict:
    """ROOT/train and ROOT/test with classes 1, 2 and 10; returns what check must find."""
    rng = np.random.default_rng(16)
    for split, cls in [("train", "1"), ("train", "2"), ("train", "10"), ("test", "1"), ("test", "2")]:
        (root / split / cls).mkdir(parents=True)
    for cls in ("1", "2"):
        for i in range(FILLERS_PER_CLASS):
            smooth_image(rng).save(root / "train" / cls / f"f{i:02d}.png")
    smooth_image(rng).save(root / "train" / "10" / "only.png")
    # Distinct real photos, kept apart.
    shutil.copy(SAMPLES / "astronaut" / "astronaut_01.jpg", root / "train" / "1" / "astronaut.jpg")
    shutil.copy(SAMPLES / "rocket" / "rocket_01.jpg", root / "train" / "2" / "rocket.jpg")
    # The same photo in train and test: a copy, a resized copy, a re-compressed JPEG.
    cat = SAMPLES / "cat" / "cat_01.jpg"
    shutil.copy(cat, root / "train" / "1" / "cat.jpg")
    shutil.copy(cat, root / "test" / "1" / "cat_copy.jpg")
    Image.open(cat).resize((48, 48), Image.LANCZOS).save(root / "test" / "1" / "cat_small.png")
    Image.open(cat).save(root / "test" / "1" / "cat_q50.jpg", quality=50)
    # The same pixels in two lossless files (PNG in train, BMP in test).
    coffee = Image.open(SAMPLES / "coffee" / "coffee_01.jpg").convert("RGB")
    coffee.save(root / "train" / "2" / "coffee.png")
    coffee.save(root / "test" / "2" / "coffee.bmp")
    # A truncated JPEG, a PNG named .jpg, a rotated photo, a gray image among RGB ones.
    data = (SAMPLES / "coffee" / "coffee_04.jpg").read_bytes()
    (root / "train" / "1" / "truncated.jpg").write_bytes(data[: len(data) * 6 // 10])
    buf = io.BytesIO()
    smooth_image(rng).save(buf, format="PNG")
    (root / "train" / "2" / "really_png.jpg").write_bytes(buf.getvalue())
    shutil.copy(ROTATED_SOURCE, root / "train" / "2" / "rotated.jpg")
    smooth_image(rng, gray=True).save(root / "train" / "2" / "gray.png")
    counts = {"1": FILLERS_PER_CLASS + 2 + 3, "2": FILLERS_PER_CLASS + 5 + 1, "10": 1}
    return {"counts": counts}


def check_json(args, expect_rc=0) -> dict:
    res = run_imgconv(["check", *args, "--json"], expect_rc=expect_rc)
    report = json.loads(res.stdout)
    jsonschema.validate(report, CHECK_SCHEMA)
    return report


def paths(group: dict) -> list[str]:
    return [f["path"] for f in group["files"]]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("check") / "data"
    expected = planted_dataset(root)
    return root, expected


def test_check_finds_each_planted_problem_and_nothing_else(planted):
    root, expected = planted
    r = check_json([root, "--size", "64x64"])
    p = r["problems"]
    assert [f["path"] for f in p["decodeFailures"]] == ["train/1/truncated.jpg"]
    assert p["extensionMismatches"] == [{"path": "train/2/really_png.jpg", "named": "jpeg", "format": "png"}]
    for kind in ("unsupported", "notImages", "refused", "skipped"):
        assert p[kind] == [], kind
    assert "conversionRefusal" not in p
    assert r["orientation"]["rotated"] == 1 and r["orientation"]["examples"] == ["train/2/rotated.jpg"]
    assert r["orientation"]["malformed"] == []
    # Channels: one gray image among RGB ones; --color auto gives RGB, forced by the first colour file.
    assert r["channels"]["histogram"] == {"1": 1, "3": r["images"] - 1}
    assert r["channels"]["decision"] == "rgb" and r["channels"]["against"] == ["train/2/gray.png"]
    assert r["channels"]["forcedBy"][0] == "test/1/cat_copy.jpg"   # split folders in code-point order
    assert r["depths"]["histogram"] == {"uint8": r["images"]} and r["depths"]["decision"] == "uint8"
    assert r["depths"]["forcedBy"] == [] and r["depths"]["againstCount"] == 0
    # Sizes: --size 64x64 resizes the photo (upright 1200x1800) and the 48x48 copy.
    assert r["sizes"]["decision"] == "64x64"
    assert r["sizes"]["histogram"] == {"64x64": r["images"] - 2, "1800x1200": 1, "48x48": 1}
    assert sorted(r["sizes"]["against"]) == ["test/1/cat_small.png", "train/2/rotated.jpg"]
    # Classes 1, 2, 10: code-point order is 1, 10, 2.
    assert r["classes"]["numericOrder"] == {"order": ["1", "10", "2"], "natural": ["1", "2", "10"]}
    assert r["classes"]["similarNames"] == [] and r["classes"]["empty"] == []
    counts = {c["name"]: c["count"] for c in r["balance"]["classes"]}
    assert counts == expected["counts"]
    assert r["balance"]["ratio"] == pytest.approx(max(counts.values()) / 1)
    assert r["balance"]["smallest"] == "10"
    assert [s["name"] for s in r["balance"]["splits"]] == ["train", "test"]
    assert [s["count"] for s in r["balance"]["splits"]] == [sum(counts.values()) - 4, 4]
    assert r["balance"]["splits"][1]["classes"] == [3, 0, 1]   # labels: 1, 10, 2
    d = r["duplicates"]
    assert [paths(g) for g in d["bytes"]] == [["test/1/cat_copy.jpg", "train/1/cat.jpg"]]
    assert [paths(g) for g in d["pixels"]] == [["test/2/coffee.bmp", "train/2/coffee.png"]]
    assert [paths(g) for g in d["near"]] == [["test/1/cat_copy.jpg", "test/1/cat_q50.jpg", "test/1/cat_small.png",
                                              "train/1/cat.jpg"]]
    assert all(g["leak"] for g in d["bytes"] + d["pixels"] + d["near"])
    assert d["near"][0]["maxDistance"] <= d["threshold"]
    assert r["counts"] == {"corrupt": 1, "mismatch": 1, "unsupported": 0, "refused": 0, "orientation": 0,
                           "names": 1, "empty": 0, "duplicates": 2, "near": 1, "leak": 3,
                           "imbalance": r["balance"]["ratio"]}


def test_check_report_does_not_depend_on_jobs(planted):
    root, _ = planted
    one = run_imgconv(["check", root, "--size", "64x64", "--json", "--jobs", "1"]).stdout
    four = run_imgconv(["check", root, "--size", "64x64", "--json", "--jobs", "4"]).stdout
    assert one == four
    text1 = run_imgconv(["check", root, "--jobs", "1"]).stdout
    text3 = run_imgconv(["check", root, "--jobs", "3"]).stdout
    assert text1 == text3
    assert "LEAK test:test/1/cat_copy.jpg, train:train/1/cat.jpg" in text1
    assert "train/1/truncated.jpg:" in text1
    assert "--sort natural gives 1, 2, 10" in text1


def test_check_without_size_names_the_size_refusal(planted):
    root, _ = planted
    r = check_json([root])
    assert r["sizes"]["decision"] == "64x64" and r["sizes"]["forcedBy"] == ["test/1/cat_copy.jpg"]
    assert r["sizes"]["against"] == ["test/1/cat_small.png", "train/2/rotated.jpg"]
    assert r["problems"]["conversionRefusal"].startswith("shape mismatch: 'test/1/cat_small.png': image is 48x48")
    assert r["counts"]["refused"] == 1


def test_check_a_list_and_a_split_that_would_be_made(tmp_path):
    """--list rows with a split column carry their splits; --split makes them as a conversion would,
    and a duplicate across the made splits is a leak."""
    rng = np.random.default_rng(3)
    (tmp_path / "img").mkdir()
    for i in range(20):
        smooth_image(rng).save(tmp_path / "img" / f"{i}.png")
    shutil.copy(tmp_path / "img" / "0.png", tmp_path / "img" / "dup.png")
    rows = [f"img/{i}.png,{'a' if i % 2 else 'b'},{'test' if i == 5 else 'train'}" for i in range(20)]
    (tmp_path / "list.csv").write_text("\n".join(rows + ["img/dup.png,a,test"]) + "\n")
    r = check_json(["--list", tmp_path / "list.csv"])
    assert [s["name"] for s in r["balance"]["splits"]] == ["train", "test"]
    assert [paths(g) for g in r["duplicates"]["bytes"]] == [["img/0.png", "img/dup.png"]]
    assert r["duplicates"]["bytes"][0]["leak"] and r["counts"]["leak"] == 1
    # The same files without the split column, split by --split (seeded as a conversion is).
    (tmp_path / "plain.csv").write_text("\n".join(row.rsplit(",", 1)[0] for row in rows + ["img/dup.png,a,test"]) + "\n")
    made = check_json(["--list", tmp_path / "plain.csv", "--split", "train=0.5,test=0.5", "--seed", "1"])
    group = made["duplicates"]["bytes"][0]
    assert paths(group) == ["img/0.png", "img/dup.png"]
    # Where the files went is what to-npz --split writes in its manifest.
    out = tmp_path / "out.npz"
    run_imgconv(["to-npz", "--list", tmp_path / "plain.csv", "--split", "train=0.5,test=0.5", "--seed", "1", out, "-q"])
    manifest = json.loads((tmp_path / "out.npz.manifest.json").read_text())
    split_of = {f["path"]: f["split"] for f in manifest["files"]}
    assert [m["split"] for m in group["files"]] == [split_of["img/0.png"], split_of["img/dup.png"]]
    assert group["leak"] == (split_of["img/0.png"] != split_of["img/dup.png"])
    sizes = {s["name"]: s["count"] for s in made["balance"]["splits"]}
    assert sizes == manifest["summary"]["splits"]


def test_check_class_names_by_case_and_normalization_and_empty(tmp_path):
    rng = np.random.default_rng(5)
    for name in ("Cat", "cat", "caf\u00e9", "cafe\u0301", "empty"):
        (tmp_path / name).mkdir()
        if name != "empty":
            smooth_image(rng).save(tmp_path / name / "a.png")
    r = check_json([tmp_path])
    similar = sorted((s["kind"], sorted(s["names"])) for s in r["classes"]["similarNames"])
    assert similar == [("case", ["Cat", "cat"]), ("normalization", sorted(["caf\u00e9", "cafe\u0301"]))]
    assert r["classes"]["empty"] == ["empty"] and r["counts"]["empty"] == 1
    assert "numericOrder" not in r["classes"]


def test_check_refused_unsupported_and_malformed_orientation(tmp_path):
    rng = np.random.default_rng(7)
    (tmp_path / "a").mkdir()
    smooth_image(rng).resize((200, 100)).save(tmp_path / "a" / "big.png")
    smooth_image(rng).save(tmp_path / "a" / "ok.png")
    (tmp_path / "a" / "x.psd").write_bytes(b"8BPS" + bytes(60))
    (tmp_path / "a" / "y.png").write_bytes(b"8BPS" + bytes(60))   # a PSD named .png
    (tmp_path / "a" / "notes.txt").write_text("hello\n")
    # A JPEG whose EXIF orientation is 9 (outside 1-8).
    exif = Image.Exif()
    exif[0x0112] = 9
    smooth_image(rng).save(tmp_path / "a" / "bad_orientation.jpg", exif=exif.tobytes())
    r = check_json([tmp_path, "--max-pixels", "10000", "--size", "64x64"])
    p = r["problems"]
    assert [f["path"] for f in p["refused"]] == ["a/big.png"] and "pixels" in p["refused"][0]["reason"]
    assert p["unsupported"] == [{"path": "a/x.psd", "reason": "unsupported format: PSD"},
                                {"path": "a/y.png", "reason": "unsupported format: PSD"}]
    assert p["extensionMismatches"] == [{"path": "a/y.png", "named": "png", "format": "psd"}]
    assert p["notImages"] == [{"path": "a/notes.txt", "reason": "not an image"}]
    assert [f["path"] for f in r["orientation"]["malformed"]] == ["a/bad_orientation.jpg"]
    assert r["orientation"]["rotated"] == 0
    assert r["counts"]["refused"] == 1 and r["counts"]["unsupported"] == 2 and r["counts"]["orientation"] == 1


def test_check_bad_invocations(tmp_path):
    res = run_imgconv(["check", tmp_path / "missing"], expect_rc=EX_NOINPUT)
    assert_one_line_error(res, "missing")
    res = run_imgconv(["check"], expect_rc=EX_USAGE)
    assert_one_line_error(res, "ROOT")


def test_near_threshold_separates_copies_from_distinct_photos(tmp_path):
    """The measurement behind the default threshold (README, "Check"): every sample photo resized
    and re-compressed gives one group of its 8 versions, and no two photos are grouped."""
    root = tmp_path / "copies"
    (root / "a").mkdir(parents=True)
    photos = sorted(p for p in SAMPLES.glob("*/*") if p.suffix in (".jpg", ".png", ".tif"))
    assert len(photos) == 16
    for p in photos:
        im = Image.open(p).convert("RGB")
        stem = f"{p.parent.name}_{p.stem}"
        im.save(root / "a" / f"{stem}.png")
        for s in (32, 48, 128, 200):
            im.resize((s, s), Image.LANCZOS).save(root / "a" / f"{stem}_r{s}.png")
        for q in (30, 50, 75):
            im.save(root / "a" / f"{stem}_q{q}.jpg", quality=q)
    r = check_json([root, "--size", "64x64"])
    groups = r["duplicates"]["near"]
    assert len(groups) == 16
    for g in groups:
        stems = {re.sub(r"(_r\d+|_q\d+)?\.(png|jpg)$", "", Path(f["path"]).name) for f in g["files"]}
        assert len(stems) == 1 and len(g["files"]) == 8, paths(g)
        assert g["maxDistance"] <= 8
    # Distinct photos lie 18 bits or more apart: at 17 no two are joined yet.
    assert len(check_json([root, "--size", "64x64", "--near-threshold", "17"])["duplicates"]["near"]) == 16


def test_fail_on(planted):
    """--fail-on makes findings an exit status for CI: 65 with one line naming what failed, after the
    whole report; 0 when nothing named is found (or within its limit)."""
    root, _ = planted
    base = [root, "--size", "64x64", "-q"]
    res = run_imgconv(["check", *base, "--json", "--fail-on", "corrupt,leak"], expect_rc=EX_DATAERR)
    line = assert_one_line_error(res, "check --fail-on", "corrupt 1", "leak 3")
    assert "imbalance" not in line
    assert json.loads(res.stdout)["counts"]["leak"] == 3   # the report is printed in full first
    run_imgconv(["check", *base, "--fail-on", "unsupported,refused,orientation,empty,corrupt=1"])
    run_imgconv(["check", *base, "--fail-on", "imbalance=60"])
    res = run_imgconv(["check", *base, "--fail-on", "imbalance=50"], expect_rc=EX_DATAERR)
    assert_one_line_error(res, "imbalance 53.00 (limit 50)")
    res = run_imgconv(["check", *base, "--fail-on", "imbalance"], expect_rc=EX_DATAERR)
    assert_one_line_error(res, "imbalance 53.00 (limit 10)")
    res = run_imgconv(["check", *base, "--fail-on", "any"], expect_rc=EX_DATAERR)
    assert_one_line_error(res, "corrupt 1, mismatch 1, names 1, duplicates 2, near 1, leak 3, imbalance 53.00")
    res = run_imgconv(["check", *base, "--fail-on", "near=1,duplicates=2,leak=3,names=1,mismatch=1"])
    for bad in ("bogus", "leak=x", "imbalance=0.5", "any=3", ""):
        res = run_imgconv(["check", *base, "--fail-on", bad], expect_rc=EX_USAGE)
        assert_one_line_error(res, "--fail-on")


@pytest.mark.parametrize("fmt", ["to-npz", "to-hdf5"])
def test_check_an_existing_output(planted, tmp_path, fmt):
    """check FILE reports from the manifest (skipped files, orientation, the sources' hashes) and
    the stored tensors (shapes, counts, pixel and near duplicates, leaks across the stored splits)."""
    root, expected = planted
    out = tmp_path / ("out.npz" if fmt == "to-npz" else "out.h5")
    run_imgconv([fmt, root, out, "--size", "64x64", "--skip-bad", "-q"])
    r = check_json([out])
    assert r["source"]["kind"] == ("npz" if fmt == "to-npz" else "h5")
    assert [f["path"] for f in r["problems"]["decodeFailures"]] == ["train/1/truncated.jpg"]
    assert r["problems"]["extensionMismatches"] == [{"path": "train/2/really_png.jpg", "named": "jpeg", "format": "png"}]
    assert r["orientation"]["rotated"] == 1 and r["orientation"]["examples"] == ["train/2/rotated.jpg"]
    images = sum(expected["counts"].values())
    assert r["images"] == images
    assert r["channels"]["histogram"] == {"3": images} and r["sizes"]["histogram"] == {"64x64": images}
    assert r["depths"]["decision"] == "uint8"
    assert {c["name"]: c["count"] for c in r["balance"]["classes"]} == expected["counts"]
    assert [(s["name"], s["count"]) for s in r["balance"]["splits"]] == [("train", images - 4), ("test", 4)]
    assert r["classes"]["numericOrder"]["natural"] == ["1", "2", "10"]
    d = r["duplicates"]
    # The manifest's SHA-256 of the sources: the copy; the pixels: the PNG and BMP of one photo.
    assert [sorted(paths(g)) for g in d["bytes"]] == [["test/1/cat_copy.jpg", "train/1/cat.jpg"]]
    assert [sorted(paths(g)) for g in d["pixels"]] == [["test/2/coffee.bmp", "train/2/coffee.png"]]
    assert [sorted(paths(g)) for g in d["near"]] == [["test/1/cat_copy.jpg", "test/1/cat_q50.jpg",
                                                      "test/1/cat_small.png", "train/1/cat.jpg"]]
    assert all(g["leak"] for g in d["bytes"] + d["pixels"] + d["near"])
    assert r["counts"]["leak"] == 3
    run_imgconv(["check", out, "--fail-on", "leak", "-q"], expect_rc=EX_DATAERR)


def test_check_an_output_without_manifest(planted, tmp_path):
    """Without a manifest, images are named by tensor and position, and only pixels group them."""
    root, _ = planted
    out = tmp_path / "npy"
    run_imgconv(["to-npy", root, out, "--size", "64x64", "--skip-bad", "-q"])
    (out / "manifest.json").unlink()
    r = check_json([out])
    assert r["source"]["kind"] == "npy" and r["problems"]["decodeFailures"] == []
    d = r["duplicates"]
    assert d["bytes"] == []
    pixel_groups = [paths(g) for g in d["pixels"]]
    assert len(pixel_groups) == 2 and all(len(g) == 2 for g in pixel_groups)
    assert all(p.startswith("trainXs[") or p.startswith("testXs[") for g in pixel_groups for p in g)
    assert [len(g["files"]) for g in d["near"]] == [4]
    assert all(g["leak"] for g in d["pixels"] + d["near"])


def test_to_commands_with_check_put_the_findings_in_the_manifest(planted, tmp_path):
    """to-* --check: the manifest's `check` is the report `check --json` gives with the same options;
    without --check there is none."""
    from interop_helpers import validate_against_schema
    root, _ = planted
    expected = check_json([root, "--size", "64x64", "--skip-bad"])
    out = tmp_path / "out.npz"
    run_imgconv(["to-npz", root, out, "--size", "64x64", "--skip-bad", "--check", "-q"])
    manifest = json.loads((tmp_path / "out.npz.manifest.json").read_text())
    validate_against_schema(manifest)
    jsonschema.validate(manifest["check"], CHECK_SCHEMA)
    assert manifest["check"] == expected
    assert manifest["check"]["counts"]["leak"] == 3
    # HDF5 holds the same manifest inside; verify reads it (and fails on the planted leak, as it
    # would without --check: the copy's SHA-256 is in two splits).
    h5 = tmp_path / "out.h5"
    run_imgconv(["to-hdf5", root, h5, "--size", "64x64", "--skip-bad", "--check", "-q", "--jobs", "1"])
    h5_manifest = json.loads((tmp_path / "out.h5.manifest.json").read_text())
    assert h5_manifest["check"] == expected
    for container in (h5, out):
        res = run_imgconv(["verify", container], expect_rc=EX_DATAERR)
        assert_one_line_error(res, "leak: 'test/1/cat_copy.jpg' (test) and 'train/1/cat.jpg' (train)")
    # A dataset without problems verifies with its findings inside.
    clean = tmp_path / "samples.h5"
    run_imgconv(["to-hdf5", SAMPLES, clean, "--check", "-q"])
    run_imgconv(["verify", clean, "--against", SAMPLES])
    assert json.loads((tmp_path / "samples.h5.manifest.json").read_text())["check"]["images"] == 16
    plain = tmp_path / "plain.npz"
    run_imgconv(["to-npz", root, plain, "--size", "64x64", "--skip-bad", "-q"])
    assert "check" not in json.loads((tmp_path / "plain.npz.manifest.json").read_text())


def test_check_memory_stays_bounded_by_the_images_in_flight(tmp_path):
    """Ten 3000x2000 photos (18 MB each decoded, 180 MB together) are checked within the hostile
    tests' peak-memory bound: pixels are hashed and dropped, never kept."""
    from interop_helpers import MAX_RSS_KIB, run_measured
    rng = np.random.default_rng(11)
    (tmp_path / "big" / "a").mkdir(parents=True)
    base = Image.open(SAMPLES / "cat" / "cat_01.jpg").convert("RGB").resize((3000, 2000), Image.BILINEAR)
    for i in range(10):
        noise = rng.integers(0, 40, (2000, 3000, 3), dtype=np.uint8)
        Image.fromarray(np.asarray(base) // 2 + noise).save(tmp_path / "big" / "a" / f"{i}.jpg", quality=80)
    res, rss = run_measured(["check", tmp_path / "big", "--jobs", "2", "--json"], tmp_path, expect_rc=0)
    assert json.loads(res.stdout)["images"] == 10
    if rss is not None:
        assert rss < MAX_RSS_KIB, f"peak RSS {rss} KiB"


def test_check_pages_and_frames_the_options_refuse_or_count(tmp_path):
    """--tiff-pages error / --frames error: such files are refused; with all, each page or frame is
    an image of the histograms and balance (hashed by its first)."""
    (tmp_path / "a").mkdir()
    shutil.copy(FIXTURES / "tiff" / "image-tiff" / "seq" / "seq-1c-8b-multipage-adeefdcc.tiff", tmp_path / "a" / "pages.tiff")
    shutil.copy(FIXTURES / "gif" / "image-rs" / "anim" / "any-disposal.gif", tmp_path / "a" / "anim.gif")
    smooth_image(np.random.default_rng(9)).save(tmp_path / "a" / "still.png")
    r = check_json([tmp_path, "--tiff-pages", "error", "--frames", "error", "--size", "16x16"])
    refused = {f["path"]: f["reason"] for f in r["problems"]["refused"]}
    assert sorted(refused) == ["a/anim.gif", "a/pages.tiff"]
    assert "3 pages" in refused["a/pages.tiff"] and "5 frames" in refused["a/anim.gif"]
    assert r["images"] == 1 and r["counts"]["refused"] == 2
    r = check_json([tmp_path, "--tiff-pages", "all", "--frames", "all", "--size", "16x16"])
    assert r["problems"]["refused"] == [] and r["images"] == 3 + 5 + 1
    assert r["balance"]["classes"] == [{"index": 0, "name": "a", "count": 9}]
    assert sum(r["channels"]["histogram"].values()) == 9


def test_check_progress_as_json_lines(planted):
    root, _ = planted
    res = run_imgconv(["check", root, "--size", "64x64", "--progress", "json"])
    last = json.loads(res.stderr.strip().splitlines()[-1])
    files = sum(1 for p in root.rglob("*") if p.is_file())
    assert (last["done"], last["total"], last["skipped"]) == (files, files, 1)   # the truncated JPEG
