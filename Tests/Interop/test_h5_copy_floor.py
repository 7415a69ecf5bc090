"""bench/limit/h5_copy_floor, libhdf5's floor for `merge --materialize` (issue 15): its file holds
the /trainXs that imgconv's materializing merge writes.

The probe is built here from bench/limit/h5_copy_floor.c (the Makefile's command, with the C
compiler at hand) and run on HDF5 parts made by `imgconv to-hdf5 --plan ... --shard K/N`: the same
images, shape, chunks and maxshape as `imgconv merge --materialize` of those parts, with chunks read
by H5Dread_chunk or by pread (-p), with early writeback or not (-w), the dataset grown in batches that cross the parts' boundaries;
-r reads and writes nothing; a part it cannot copy chunk by chunk (filters, another item shape,
chunks that are not whole items, a part other than the last ending in a partial chunk, a chunk
never written, not HDF5 or cut short) fails with one line naming the part and leaves no file behind.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import interop_helpers as H

# 128x128x3 images (48 KiB: imgconv stores images of 32 KiB or more one per chunk), so batches of
# 85 chunks (imgconv's ~4 MiB): 200 images are 3 batches, the second crossing the parts' boundary
H5 = 128
N = 200
BATCH = 85


@pytest.fixture(scope="module")
def floor_bin(tmp_path_factory) -> Path:
    return H.build_limit_probe(tmp_path_factory.mktemp("h5floor_build"), "h5_copy_floor", ["hdf5"])


def run_floor(floor_bin, *args, expect_rc=0):
    return H.run_probe(floor_bin, *args, expect_rc=expect_rc)


@pytest.fixture(scope="module")
def parts(tmp_path_factory, imgconv_bin):
    """Two HDF5 parts of a 200-image set and `merge --materialize` of them."""
    from PIL import Image
    work = tmp_path_factory.mktemp("h5floor")
    rng = np.random.default_rng(15)
    y, x = np.mgrid[0:H5, 0:H5]
    for i in range(N):
        a = np.clip((x * 3 + y * 2 + i)[..., None] + rng.integers(0, 40, (H5, H5, 3)), 0, 255).astype(np.uint8)
        p = work / "data" / f"c{i % 3}" / f"{i:04d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(p, compress_level=1)
    H.run_imgconv(["plan", work / "data", "--shards", 2, "-o", work / "plan.json", "-q"])
    for k in range(2):
        H.run_imgconv(["to-hdf5", "--plan", work / "plan.json", "--shard", f"{k}/2", work / "parts", "-q"])
    H.run_imgconv(["merge", "--materialize", work / "parts", work / "merged.h5", "-q"])
    files = sorted((work / "parts").glob("part-*.h5"))
    assert [f.name for f in files] == ["part-00000-of-00002.h5", "part-00001-of-00002.h5"]
    return work, files


def xs(path: Path):
    import h5py
    with h5py.File(path, "r") as f:
        d = f["trainXs"]
        return d[...], d.chunks, d.maxshape, d.compression


def test_copy_equals_imgconv_materialized_merge(floor_bin, parts, outdir):
    import h5py
    work, files = parts
    ref, ref_chunks, ref_max, _ = xs(work / "merged.h5")
    assert ref.shape == (N, H5, H5, 3) and ref_chunks == (1, H5, H5, 3)
    with h5py.File(files[0], "r") as f0, h5py.File(files[1], "r") as f1:
        n0, n1 = f0["trainXs"].shape[0], f1["trainXs"].shape[0]
    assert n0 + n1 == N and n0 % BATCH != 0   # a batch crosses into the second part
    for opts in [(), ("-p",), ("-w",)]:
        out = outdir / f"floor{''.join(opts)}.h5"
        res = run_floor(floor_bin, *opts, out, *files)
        assert f"copied {N} chunks (1, {H5}, {H5}, 3)" in res.stdout, res.stdout
        assert f"{N} items, {N * H5 * H5 * 3} bytes" in res.stdout
        # 85 + 85 + 30 items; -w: one writeback request (the file passes 8 MiB once)
        assert f"3 extends of {BATCH} chunks, {1 if '-w' in opts else 0} writeback requests" in res.stdout, res.stdout
        got, chunks, maxshape, compression = xs(out)
        assert got.dtype == np.uint8 and got.shape == ref.shape
        assert chunks == ref_chunks and maxshape == ref_max == (None, H5, H5, 3) and compression is None
        assert np.array_equal(got, ref), f"h5_copy_floor {' '.join(opts)}: /trainXs differs from merge --materialize's"
        with h5py.File(out, "r") as f:
            assert list(f.keys()) == ["trainXs"]   # no labels, no manifest: the copy alone
    assert sorted(p.name for p in outdir.iterdir()) == ["floor-p.h5", "floor-w.h5", "floor.h5"]   # no temporary file left


def test_parts_in_another_order_differ(floor_bin, parts, outdir):
    """The comparison can fail: the parts copied last-first do not give the merge's /trainXs."""
    work, files = parts
    ref = xs(work / "merged.h5")[0]
    run_floor(floor_bin, outdir / "swapped.h5", files[1], files[0])
    got = xs(outdir / "swapped.h5")[0]
    assert got.shape == ref.shape and not np.array_equal(got, ref)


def test_read_only_mode_writes_nothing(floor_bin, parts, outdir):
    work, files = parts
    for opts in [("-r",), ("-r", "-p")]:
        res = run_floor(floor_bin, *opts, *files)
        m = re.search(r"read (\d+) chunks .* (\d+) bytes\) of 2 parts", res.stdout)
        assert m and int(m.group(1)) == N and int(m.group(2)) == N * H5 * H5 * 3, res.stdout
    assert run_floor(floor_bin, "-q", "-r", *files).stdout == ""
    assert list(outdir.iterdir()) == []


def h5part(path: Path, data: np.ndarray, chunks, **kw) -> Path:
    import h5py
    with h5py.File(path, "w") as f:
        f.create_dataset("trainXs", data=data, chunks=chunks, maxshape=(None,) + data.shape[1:], **kw)
    return path


def expect_error(floor_bin, outdir, args, *needles):
    res = run_floor(floor_bin, *args, expect_rc=1)
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("h5_copy_floor: "), lines[0]
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    assert list(outdir.iterdir()) == [], "a failed run left a file behind"


def test_parts_it_cannot_copy_fail_with_one_line(floor_bin, parts, tmp_path, outdir):
    import h5py
    work, files = parts
    out = outdir / "x.h5"
    rng = np.random.default_rng(1)
    gz = h5part(tmp_path / "gz.h5", rng.integers(0, 256, (4, H5, H5, 3), dtype=np.uint8), (1, H5, H5, 3), compression="gzip")
    expect_error(floor_bin, outdir, [out, files[0], gz], gz, "filter")
    small = h5part(tmp_path / "small.h5", rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8), (1, 32, 32, 3))
    expect_error(floor_bin, outdir, [out, files[0], small], small, "holds items (32, 32, 3)")
    halves = h5part(tmp_path / "halves.h5", rng.integers(0, 256, (4, H5, H5, 3), dtype=np.uint8), (1, H5 // 2, H5, 3))
    expect_error(floor_bin, outdir, [out, halves], halves, "whole items per chunk")
    # chunks of 4 images: only the last part may end in a partial chunk
    four = h5part(tmp_path / "four.h5", rng.integers(0, 256, (6, H5, H5, 3), dtype=np.uint8), (4, H5, H5, 3))
    expect_error(floor_bin, outdir, [out, four, four], four, "partial chunk")
    # a part with chunks never written (fill values): no chunk to copy, named with its item
    holes = tmp_path / "holes.h5"
    with h5py.File(holes, "w") as f:
        d = f.create_dataset("trainXs", shape=(4, H5, H5, 3), dtype=np.uint8, chunks=(1, H5, H5, 3), maxshape=(None, H5, H5, 3))
        d[0:2] = 7
    # a part cut short: libhdf5 refuses it when it opens it (its end-of-file address is past the end)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(files[1].read_bytes()[: files[1].stat().st_size // 2])
    for opts in [[], ["-p"]]:
        expect_error(floor_bin, outdir, [*opts, out, files[0], holes], holes, "no stored chunk at item 2")
        expect_error(floor_bin, outdir, ["-r", *opts, holes], holes, "no stored chunk at item 2")
        expect_error(floor_bin, outdir, [*opts, out, files[0], cut], cut, "cannot open it as an HDF5 file")
    notes = tmp_path / "notes.h5"
    notes.write_bytes(b"not HDF5\n" * 100)
    expect_error(floor_bin, outdir, [out, notes], notes, "cannot open it as an HDF5 file")
    expect_error(floor_bin, outdir, [out, work / "plan.json", files[0]], "plan.json", "cannot open it as an HDF5 file")
    expect_error(floor_bin, outdir, [out], "usage")
    expect_error(floor_bin, outdir, ["-r", "-w", files[0]], "-w", "no output with -r")
    expect_error(floor_bin, outdir, [outdir / "missing" / "x.h5", files[0]], "cannot create the output")
