"""Sharded conversion: `imgconv plan`, `to-* --plan --shard K/N`, `imgconv merge`.

A mixed dataset (PNG and JPEG, a gray image, an EXIF-rotated JPEG, a file whose header reads but
whose data is corrupt, one whose header is bad, a non-image) is converted with --skip-bad
--split --stratify --shuffle as 5 shards; one part is deleted, `merge --check` names it (exit 66),
only that shard is run again (the others are kept, untouched), and the merged output and its
manifest are compared byte for byte (cmp) with a one-machine run.
"""

from __future__ import annotations

import filecmp
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import interop_helpers as H

SCHEMA = H.REPO_ROOT / "Schemas" / "plan.schema.json"
OPTIONS = ["--skip-bad", "--split", "train=0.7,val=0.2,test=0.1", "--stratify", "--shuffle", "--seed", "11",
           "--size", "12x12", "--jobs", "2"]
SHARDS = 5


def build_mixed(make_dataset, n: int = 240):
    from PIL import Image
    ds = make_dataset("root")
    rng = np.random.default_rng(5)
    classes = ["cat", "dog", "fox"]
    for i in range(n):
        arr = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        ext = "png" if i % 2 else "jpg"
        ds.add_image(f"{classes[i % 3]}/{i:04d}.{ext}", arr)
    ds.add_image("dog/gray.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    ds.add_image("fox/rotated.jpg", Image.fromarray(rng.integers(0, 256, (20, 16, 3), dtype=np.uint8)), exif=exif)
    # A PNG whose header reads but whose image data is cut: skipped while decoding.
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, format="PNG")
    whole = buf.getvalue()
    ds.add_bytes("cat/corrupt.png", whole[: len(whole) * 2 // 3])
    # A PNG signature with a broken header: skipped while reading headers.
    ds.add_bytes("dog/badheader.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    ds.add_bytes("fox/notes.txt", b"not an image\n")
    return ds.root


def cmp_tree(a: Path, b: Path) -> None:
    """Every file of folder a equals b's, byte for byte, and b has no other files."""
    names_a = sorted(p.name for p in a.iterdir())
    names_b = sorted(p.name for p in b.iterdir())
    assert names_a == names_b
    for name in names_a:
        assert filecmp.cmp(a / name, b / name, shallow=False), f"{name} differs"


def shard_cmd(fmt: str, plan: Path, k: int, folder: Path, *extra: str) -> list:
    return [f"to-{fmt}", "--plan", plan, "--shard", f"{k}/{SHARDS}", folder, "-q", *extra]


def test_plan_shards_merge_equal_one_machine(run, make_dataset, tmp_path):
    root = build_mixed(make_dataset)
    single = tmp_path / "single"
    single.mkdir()
    run(["to-npy", root, single / "out", "-q", *OPTIONS])
    run(["to-npz", root, single / "out.npz", "-q", *OPTIONS])

    plan = tmp_path / "plan.json"
    res = run(["plan", root, *OPTIONS, "--shards", SHARDS, "-o", plan])
    assert "5 shards" in res.stdout
    doc = H.load_json(plan)
    import jsonschema
    schema = H.load_json(SCHEMA)
    jsonschema.validators.validator_for(schema)(schema).validate(doc)
    # Every split is divided into 5 contiguous ranges that cover it.
    for split in doc["splits"]:
        ranges = split["ranges"]
        assert len(ranges) == SHARDS and ranges[0][0] == 0 and ranges[-1][1] == len(split["items"])
        assert all(ranges[k][1] == ranges[k + 1][0] for k in range(SHARDS - 1))
    skipped = {s["path"] for s in doc["skipped"]}
    assert {"dog/badheader.png", "fox/notes.txt"} <= skipped and "cat/corrupt.png" not in skipped

    parts_npy, parts_npz = tmp_path / "parts-npy", tmp_path / "parts-npz"
    for k in range(SHARDS):
        run(shard_cmd("npy", plan, k, parts_npy))
        run(shard_cmd("npz", plan, k, parts_npz))
    assert H.load_json(parts_npz / "plan.json")["hash"] == doc["hash"]

    # Every part verifies; its manifest names the shard and the plan.
    for k in range(SHARDS):
        part = parts_npz / f"part-{k:05d}-of-{SHARDS:05d}.npz"
        res = run(["verify", part])
        assert f"ok: shard {k} of {SHARDS}: its files are its ranges of plan {doc['hash'][:12]}" in res.stdout
        m = H.load_json(Path(str(part) + ".manifest.json"))
        assert m["shard"]["index"] == k and m["shard"]["count"] == SHARDS and m["shard"]["planHash"] == doc["hash"]
        H.validate_against_schema(m)
    run(["verify", parts_npz / "part-00002-of-00005.npz", "--against", root])
    # A part whose manifest lists its files in another order than the plan fails verify.
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    shutil.copyfile(parts_npz / "plan.json", tampered / "plan.json")
    shutil.copyfile(parts_npz / "part-00001-of-00005.npz", tampered / "part-00001-of-00005.npz")
    m = H.load_json(parts_npz / "part-00001-of-00005.npz.manifest.json")
    m["files"][0], m["files"][1] = m["files"][1], m["files"][0]
    (tampered / "part-00001-of-00005.npz.manifest.json").write_text(json.dumps(m))
    res = run(["verify", tampered / "part-00001-of-00005.npz"], expect_rc=65)
    H.assert_one_line_error(res, "position", "in the plan")

    # One part lost (a killed shard), a stale temporary file from it.
    shutil.rmtree(parts_npy / f"part-00003-of-{SHARDS:05d}.npy")
    (parts_npy / ".part-00003-of-00005.npy.imgconv-999999-1.tmp").write_bytes(b"partial")
    res = run(["merge", "--check", parts_npy], expect_rc=66)
    assert "missing: 3" in res.stdout.splitlines() and "shard 3: no part" in res.stdout.splitlines()
    H.assert_one_line_error(res, "1 of 5 shards missing")
    assert "stale: .part-00003-of-00005.npy.imgconv-999999-1.tmp" in res.stdout.splitlines()
    res = run(["merge", parts_npy, tmp_path / "never"], expect_rc=66)
    assert "missing: 3" in res.stderr and not (tmp_path / "never").exists()

    # The scheduler reruns every shard: the four done parts are kept as they are.
    kept = {k: os.stat(parts_npy / f"part-{k:05d}-of-{SHARDS:05d}.npy" / "trainXs.npy").st_mtime_ns for k in (0, 1, 2, 4)}
    for k in range(SHARDS):
        res = run(shard_cmd("npy", plan, k, parts_npy)[:-1])
        assert ("done already" in res.stdout) == (k != 3)
    for k, t in kept.items():
        assert os.stat(parts_npy / f"part-{k:05d}-of-{SHARDS:05d}.npy" / "trainXs.npy").st_mtime_ns == t
    os.unlink(parts_npy / ".part-00003-of-00005.npy.imgconv-999999-1.tmp")
    res = run(["merge", "--check", parts_npy])
    assert "all 5 parts" in res.stdout

    merged = tmp_path / "merged"
    merged.mkdir()
    run(["merge", parts_npy, merged / "out", "-q"])
    run(["merge", parts_npz, merged / "out.npz", "-q"])
    cmp_tree(merged / "out", single / "out")

    # A part whose images changed after it was committed (one byte): merge reads each part's images
    # once, verifying them as it copies, and names the shard to run again; nothing is written.
    rotten = tmp_path / "rotten"
    shutil.copytree(parts_npy, rotten)
    xs = rotten / f"part-00002-of-{SHARDS:05d}.npy" / "trainXs.npy"
    data = bytearray(xs.read_bytes())
    data[-1] ^= 1
    xs.write_bytes(bytes(data))
    res = run(["merge", rotten, tmp_path / "rotten-out"], expect_rc=66)
    H.assert_one_line_error(res, "missing: 2", "does not verify", "XXH3-128")
    assert not (tmp_path / "rotten-out").exists()
    res = run(["merge", "--check", rotten], expect_rc=66)
    assert "missing: 2" in res.stdout.splitlines()
    assert filecmp.cmp(merged / "out.npz", single / "out.npz", shallow=False)
    assert filecmp.cmp(merged / "out.npz.manifest.json", single / "out.npz.manifest.json", shallow=False)
    run(["verify", merged / "out.npz"])
    run(["verify", merged / "out", "--against", root])

    # The merged manifest: the decode-time skip and the header-time skips, the rotated image.
    m = H.load_json(merged / "out.npz.manifest.json")
    assert "shard" not in m
    assert {s["path"] for s in m["skipped"]} == skipped | {"cat/corrupt.png"}
    assert m["summary"]["rotated"] == 1
    assert sum(m["summary"]["splits"].values()) == 242


def test_force_reruns_and_other_plans_are_refused(run, make_dataset, tmp_path):
    root = make_dataset("small")
    rng = np.random.default_rng(1)
    for i in range(12):
        root.add_image(f"{'ab'[i % 2]}/{i}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    plan_a, plan_b = tmp_path / "a.json", tmp_path / "b.json"
    run(["plan", root.root, "--shuffle", "--seed", "1", "--shards", 2, "-o", plan_a, "-q"])
    run(["plan", root.root, "--shuffle", "--seed", "2", "--shards", 2, "-o", plan_b, "-q"])
    parts, other = tmp_path / "parts", tmp_path / "other"
    for k in range(2):
        run(["to-npz", "--plan", plan_a, "--shard", f"{k}/2", parts, "-q"])
    run(["to-npz", "--plan", plan_b, "--shard", "0/2", other, "-q"])
    part0 = parts / "part-00000-of-00002.npz"

    # --force converts a done part again (same bytes).
    before = part0.read_bytes()
    t = os.stat(part0).st_mtime_ns
    res = run(["to-npz", "--plan", plan_a, "--shard", "0/2", parts, "--force"])
    assert "done already" not in res.stdout and os.stat(part0).st_mtime_ns != t and part0.read_bytes() == before

    # The wrong N, a folder of another plan, a part of another plan: refused, one line each.
    res = run(["to-npz", "--plan", plan_a, "--shard", "0/2", parts, "--shuffle"], expect_rc=64)
    H.assert_one_line_error(res, "the plan's")
    res = run(["to-npz", "--plan", plan_a, "--shard", "0/3", parts], expect_rc=64)
    H.assert_one_line_error(res, "2 shards")
    res = run(["to-npz", "--plan", plan_b, "--shard", "1/2", parts], expect_rc=65)
    H.assert_one_line_error(res, "another plan")
    shutil.copyfile(other / "part-00000-of-00002.npz", part0)
    shutil.copyfile(other / "part-00000-of-00002.npz.manifest.json", Path(str(part0) + ".manifest.json"))
    res = run(["merge", parts, tmp_path / "m.npz"], expect_rc=65)
    H.assert_one_line_error(res, "another plan")
    assert not (tmp_path / "m.npz").exists()
    # A tampered plan is refused.
    doc = plan_a.read_text().replace('"shards":2', '"shards":3')
    bad = tmp_path / "bad.json"
    bad.write_text(doc)
    res = run(["to-npz", "--plan", bad, "--shard", "0/3", tmp_path / "x"], expect_rc=65)
    H.assert_one_line_error(res, "hash")
    # The same plan re-indented (another form of its JSON) is still the plan; changed, it is not.
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(json.loads(plan_a.read_text()), indent=2))
    res = run(["to-npz", "--plan", pretty, "--shard", "1/2", parts])
    assert "done already" in res.stdout
    changed = json.loads(plan_a.read_text())
    changed["classes"][0] += "x"
    pretty.write_text(json.dumps(changed, indent=2))
    res = run(["to-npz", "--plan", pretty, "--shard", "1/2", tmp_path / "y"], expect_rc=65)
    H.assert_one_line_error(res, "hash")


@pytest.mark.parametrize("command,name,extra", [
    ("to-idx", "out", []),
    ("to-idx", "out", ["--gzip"]),
    ("to-idx", "out", ["--prefix", "digits"]),
    ("to-hdf5", "out.h5", []),
    ("to-hdf5", "out.h5", ["--compress"]),
    ("to-npz", "out.npz", ["--compress"]),
])
def test_other_formats_merge_equal_one_machine(run, make_dataset, tmp_path, command, name, extra):
    """IDX (plain and .gz), HDF5 (plain and compressed) and a deflated .npz: the merged output
    and its manifest equal a one-machine run byte for byte."""
    from PIL import Image
    ds = make_dataset("small")
    rng = np.random.default_rng(3)
    for i in range(45):
        ds.add_image(f"{'abc'[i % 3]}/{i:02d}.png", rng.integers(0, 256, (10, 10), dtype=np.uint8))
    ds.add_bytes("a/zz-bad.png", b"\x89PNG\r\n\x1a\n" + b"\x01" * 30)
    opts = ["--skip-bad", "--split", "train=0.8,test=0.2", "--shuffle", "--seed", "4", "--jobs", "2"]
    if "--prefix" in extra:
        opts = opts[:1] + opts[3:]   # a prefix names the one pair of an unsplit IDX folder
    single = tmp_path / "single"
    single.mkdir()
    run([command, ds.root, single / name, "-q", *opts, *extra])
    plan = tmp_path / "plan.json"
    run(["plan", ds.root, *opts, "--shards", 3, "-o", plan, "-q"])
    parts = tmp_path / "parts"
    for k in range(3):
        run([command, "--plan", plan, "--shard", f"{k}/3", parts, "-q", *extra])
    merged = tmp_path / "merged"
    merged.mkdir()
    run(["merge", parts, merged / name, "-q", *(["--materialize"] if command == "to-hdf5" else [])])
    if (single / name).is_dir():
        cmp_tree(merged / name, single / name)
    else:
        assert filecmp.cmp(merged / name, single / name, shallow=False)
        assert filecmp.cmp(merged / (name + ".manifest.json"), single / (name + ".manifest.json"), shallow=False)
    run(["verify", merged / name])


def test_hdf5_virtual_merge(run, make_dataset, tmp_path):
    """merge --virtual (the default for HDF5): virtual datasets over the parts, relative to the
    merged file; the tensors and the manifest equal a one-machine run; verify reads through it,
    and fails (66), never reading zeros, when a part is missing, even with a same-named file in
    the working folder; the folder moved as a whole still reads."""
    h5py = pytest.importorskip("h5py")
    ds = make_dataset("small")
    rng = np.random.default_rng(9)
    for i in range(30):
        ds.add_image(f"{'ab'[i % 2]}/{i:02d}.png", rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    opts = ["--split", "train=0.7,val=0.3", "--shuffle", "--seed", "2"]
    single = tmp_path / "single"
    single.mkdir()
    run(["to-hdf5", ds.root, single / "out.h5", "-q", *opts])
    work = tmp_path / "work"
    work.mkdir()
    plan = tmp_path / "plan.json"
    run(["plan", ds.root, *opts, "--shards", 3, "-o", plan, "-q"])
    for k in range(3):
        run(["to-hdf5", "--plan", plan, "--shard", f"{k}/3", work / "parts", "-q"])
    run(["merge", work / "parts", work / "out.h5", "-q"])
    assert filecmp.cmp(work / "out.h5.manifest.json", single / "out.h5.manifest.json", shallow=False)
    with h5py.File(work / "out.h5", "r") as m, h5py.File(single / "out.h5", "r") as s:
        for name in ("trainXs", "valXs"):
            assert m[name].is_virtual
            assert [v.file_name for v in m[name].virtual_sources()] == [f"parts/part-{k:05d}-of-00003.h5" for k in range(3)]
            np.testing.assert_array_equal(m[name][()], s[name][()])
        for name in ("trainYs", "valYs"):
            np.testing.assert_array_equal(m[name][()], s[name][()])
    run(["verify", work / "out.h5"])

    # Moved as a whole: still reads. Outside the parts' folder tree: refused before any work.
    moved = tmp_path / "moved"
    work.rename(moved)
    run(["verify", moved / "out.h5"])
    (tmp_path / "other").mkdir()
    res = run(["merge", moved / "parts", tmp_path / "other" / "elsewhere.h5"], expect_rc=64)
    H.assert_one_line_error(res, "--materialize")
    assert not (tmp_path / "other" / "elsewhere.h5").exists()

    # A missing part fails verify, also with a decoy of the same name in the working folder.
    decoy = tmp_path / "decoy"
    (decoy / "parts").mkdir(parents=True)
    shutil.copyfile(moved / "parts" / "part-00001-of-00003.h5", decoy / "parts" / "part-00001-of-00003.h5")
    (moved / "parts" / "part-00001-of-00003.h5").unlink()
    res = run(["verify", moved / "out.h5"], expect_rc=66, cwd=decoy)
    H.assert_one_line_error(res, "part-00001-of-00003.h5", "missing")
    # A file of another shape in its place: refused, not read.
    shutil.copyfile(single / "out.h5", moved / "parts" / "part-00001-of-00003.h5")
    res = run(["verify", moved / "out.h5"], expect_rc=65)
    H.assert_one_line_error(res, "part-00001-of-00003.h5", "another shape")
    # Another part of the same shape: its data is not the manifest's.
    shutil.copyfile(moved / "parts" / "part-00000-of-00003.h5", moved / "parts" / "part-00001-of-00003.h5")
    res = run(["verify", moved / "out.h5"], expect_rc=65)
    H.assert_one_line_error(res, "XXH3-128")


def test_list_source_and_pixel_balance(run, make_dataset, tmp_path):
    """A --list CSV with a split column, shards balanced by pixels (images of two sizes, resized):
    the ranges follow the pixels, and the merge equals a one-machine run."""
    ds = make_dataset("listed")
    rng = np.random.default_rng(12)
    rows = []
    for i in range(24):
        side = 32 if i < 6 else 8   # the first images hold most of the pixels
        ds.add_image(f"img/{i:02d}.png", rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
        rows.append(f"img/{i:02d}.png,{'xy'[i % 2]},{'train' if i % 4 else 'test'}")
    csv = ds.root / "labels.csv"
    csv.write_text("path,label,split\n" + "\n".join(rows) + "\n")
    opts = ["--size", "8x8"]
    single = tmp_path / "single"
    single.mkdir()
    run(["to-npz", "--list", csv, single / "out.npz", "-q", *opts])
    plan = tmp_path / "plan.json"
    run(["plan", "--list", csv, *opts, "--shards", 3, "--balance", "pixels", "-o", plan, "-q"])
    doc = H.load_json(plan)
    assert doc["source"]["kind"] == "list" and doc["balance"] == "pixels"
    train = next(s for s in doc["splits"] if s["name"] == "train")
    assert train["ranges"][0][1] < len(train["items"]) // 3   # the big images make a short first range
    parts = tmp_path / "parts"
    for k in range(3):
        run(["to-npz", "--plan", plan, "--shard", f"{k}/3", parts, "-q"])
    merged = tmp_path / "merged"
    merged.mkdir()
    run(["merge", parts, merged / "out.npz", "-q"])
    assert filecmp.cmp(merged / "out.npz", single / "out.npz", shallow=False)
    assert filecmp.cmp(merged / "out.npz.manifest.json", single / "out.npz.manifest.json", shallow=False)


@pytest.mark.parametrize("late_color", [False, True])
def test_unsplit_one_pass_runs_merge_equal(run, make_dataset, tmp_path, late_color):
    """Without a shuffle or splits a one-machine run converts in one pass and announces every
    scanned file (non-images too) to its writer, which sizes HDF5 chunks; when an image does not
    fit the first one's plan (a colour image after gray ones) it starts over in two passes. The
    plan records which, and the merged .h5 equals the one-machine file either way."""
    ds = make_dataset("unsplit")
    rng = np.random.default_rng(21)
    for i in range(30):
        ds.add_image(f"{'ab'[i % 2]}/{i:02d}.png", rng.integers(0, 256, (10, 10), dtype=np.uint8))
    if late_color:
        ds.add_image("b/99.png", rng.integers(0, 256, (10, 10, 3), dtype=np.uint8))
    for j in range(4):
        ds.add_bytes(f"a/zz{j}.txt", b"not an image\n")
    single = tmp_path / "single"
    single.mkdir()
    run(["to-hdf5", ds.root, single / "out.h5", "-q"])
    plan = tmp_path / "plan.json"
    run(["plan", ds.root, "--shards", 3, "-o", plan, "-q"])
    assert H.load_json(plan).get("announcedCount") == (None if late_color else 34 + int(late_color))
    parts = tmp_path / "parts"
    for k in range(3):
        run(["to-hdf5", "--plan", plan, "--shard", f"{k}/3", parts, "-q"])
    merged = tmp_path / "merged"
    merged.mkdir()
    run(["merge", parts, merged / "out.h5", "--materialize", "-q"])
    assert filecmp.cmp(merged / "out.h5", single / "out.h5", shallow=False)
    assert filecmp.cmp(merged / "out.h5.manifest.json", single / "out.h5.manifest.json", shallow=False)


def test_shard_run_elsewhere_names_the_plans_folder(run, samples_root, tmp_path):
    # A plan of a relative ROOT keeps it relative: a shard run from another folder is told so at
    # once, naming the folder, instead of failing on the first image.
    shutil.copytree(samples_root, tmp_path / "data", ignore=shutil.ignore_patterns("*.py", "*.md"))
    run(["plan", "data", "--shards", 2, "-o", "plan.json", "-q"], cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = run(["to-npz", "--plan", tmp_path / "plan.json", "--shard", "0/2", tmp_path / "parts"], cwd=elsewhere, expect_rc=66)
    H.assert_one_line_error(res, "'data'", "not there from the current folder", "absolute ROOT")
    assert not (tmp_path / "parts" / "part-00000-of-00002.npz").exists()
    run(["to-npz", "--plan", "plan.json", "--shard", "0/2", "parts", "-q"], cwd=tmp_path)
    assert (tmp_path / "parts" / "part-00000-of-00002.npz").exists()


@pytest.mark.parametrize("folder,holder", [("a", 0), ("b", 1)])
def test_shard_output_never_replaces_a_planned_image(run, make_dataset, tmp_path, folder, holder):
    # An image of the plan named like shard 1's part, in the folder that shard is told to write
    # to: the shard refuses, whether the image is in its own range or in shard 0's (a shard reads
    # only its range of the plan, but checks its outputs against every file of the plan). The
    # image is left as it was.
    ds = make_dataset("root")
    rng = np.random.default_rng(3)
    for i in range(6):
        ds.add_image(f"{'ab'[i % 2]}/{i}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    ds.add_image(f"{folder}/part-00001-of-00002.npz", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), fmt="PNG")
    plan = tmp_path / "plan.json"
    run(["plan", ds.root, "--shards", 2, "-o", plan, "-q"])
    doc = json.loads(plan.read_text())
    name = f"{folder}/part-00001-of-00002.npz"
    at = next(i for i, it in enumerate(doc["splits"][0]["items"]) if doc["files"][it["file"]]["path"] == name)
    start, end = doc["splits"][0]["ranges"][holder]
    assert start <= at < end, (at, doc["splits"][0]["ranges"])
    target = ds.root / folder / "part-00001-of-00002.npz"
    before = target.read_bytes()
    res = run(["to-npz", "--plan", plan, "--shard", "1/2", ds.root / folder], expect_rc=64)
    H.assert_one_line_error(res, "part-00001-of-00002.npz", "where an output goes")
    assert target.read_bytes() == before
