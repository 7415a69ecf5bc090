"""samples/ -> .npz and .npy: read back with numpy, zipfile and unzip; pixels against Pillow;
manifest against the schema and the data; determinism."""

from __future__ import annotations

import shutil
import subprocess
import time
import zipfile

import numpy as np
import pytest

import interop_helpers as H


def _check_dataset(arrays, manifest, root):
    xs, ys, names = arrays["trainXs"], arrays["trainYs"], arrays["classNames"]
    files = H.expected_files(root)
    n = len(files)
    assert xs.shape == (n, 64, 64, 3), xs.shape
    assert xs.dtype == np.uint8
    assert ys.shape == (n,) and ys.dtype == np.int64
    assert names.dtype.kind == "U", names.dtype
    assert all(type(s) is str for s in names.tolist())
    assert names.tolist() == H.expected_classes(root)
    assert ys.min() >= 0 and ys.max() < len(names)
    H.check_manifest(manifest, arrays, root)
    # the manifest's order is the contract's order, and the tensors follow it
    assert [(f["path"], f["label"]) for f in manifest["files"]] == files
    for i, f in enumerate(manifest["files"]):
        ref = H.pil_array(root / f["path"], "RGB")
        H.assert_equal_pixels(xs[i], ref, f"trainXs[{i}] ({f['path']})")


@pytest.mark.parametrize("compress", [False, True], ids=["stored", "deflated"])
def test_samples_to_npz_reads_back(run, samples_root, outdir, compress):
    out = outdir / "samples.npz"
    res = run(["to-npz", samples_root, out, *(["--compress"] if compress else [])])
    n = len(H.expected_files(samples_root))
    assert str(n) in res.stdout, f"summary does not mention the image count {n}:\n{res.stdout}"

    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        infos = zf.infolist()
        assert sorted(i.filename for i in infos) == sorted(H.MEMBERS)
        want = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        for i in infos:
            assert i.compress_type == want, f"{i.filename}: compress_type {i.compress_type}, expected {want}"

    if shutil.which("unzip"):
        t = subprocess.run(["unzip", "-tq", str(out)], capture_output=True, text=True)
        assert t.returncode == 0, t.stdout + t.stderr

    arrays = H.load_npz(out)
    manifest = H.load_json(H.npz_manifest_path(out))
    _check_dataset(arrays, manifest, samples_root)


def test_samples_to_npy_matches_npz(run, samples_root, tmp_path):
    npz = tmp_path / "s.npz"
    npy = tmp_path / "npydir"
    run(["to-npz", samples_root, npz])
    run(["to-npy", samples_root, npy])
    assert sorted(p.name for p in npy.iterdir()) == sorted(list(H.MEMBERS) + ["manifest.json"])

    mm = H.load_npy_dir(npy, mmap=True)
    assert isinstance(mm["trainXs"], np.memmap)
    assert isinstance(mm["trainYs"], np.memmap)
    ref = H.load_npz(npz)
    for name in H.TENSOR_NAMES:
        assert mm[name].dtype == ref[name].dtype, name
        assert np.array_equal(np.asarray(mm[name]), ref[name]), name
    manifest = H.load_json(npy / "manifest.json")
    _check_dataset({k: np.asarray(v) for k, v in mm.items()}, manifest, samples_root)
    # same data, same tensor hashes in both manifests
    npz_manifest = H.load_json(H.npz_manifest_path(npz))
    assert ({H.tensor_name(t["name"]): t["xxh3"] for t in manifest["tensors"]}
            == {H.tensor_name(t["name"]): t["xxh3"] for t in npz_manifest["tensors"]})


def test_manifest_validates_against_schema(run, samples_root, outdir):
    if not H.SCHEMA_PATH.is_file():
        pytest.skip("Schemas/manifest.schema.json does not exist yet")
    out = outdir / "s.npz"
    run(["to-npz", samples_root, out])
    assert H.validate_against_schema(H.load_json(H.npz_manifest_path(out)))


@pytest.mark.parametrize("compress", [False, True], ids=["stored", "deflated"])
def test_npz_is_deterministic_across_runs_and_jobs(run, samples_root, outdir, compress):
    out = outdir / "d.npz"
    man = H.npz_manifest_path(out)
    flags = ["--compress"] if compress else []
    results = []
    for jobs in ("1", "2", "2"):
        run(["to-npz", samples_root, out, "--jobs", jobs, *flags])
        results.append((out.read_bytes(), man.read_bytes()))
    assert results[0][0] == results[1][0] == results[2][0], "npz bytes differ between runs / --jobs"
    assert results[0][1] == results[1][1] == results[2][1], "manifest bytes differ between runs / --jobs"


def test_many_images_deterministic_across_jobs(run, make_dataset, outdir):
    """Enough images for parallel decoding to reorder work: output must still be byte-identical."""
    rng = np.random.default_rng(7)
    ds = make_dataset()
    for c in ("ant", "bee", "cat"):
        for k in range(24):
            img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            ext = ("png", "jpg", "tif")[k % 3]
            ds.add_image(f"{c}/img{k:02d}.{ext}", img)
    out = outdir / "many.npz"
    blobs = []
    for jobs in ("1", "2", "4"):
        if blobs:
            time.sleep(2.1)  # a ZIP timestamp has a 2-second resolution: make a clock leak visible
        run(["to-npz", ds.root, out, "--jobs", jobs])
        blobs.append((out.read_bytes(), H.npz_manifest_path(out).read_bytes()))
    assert blobs[0] == blobs[1] == blobs[2]
    arrays = H.load_npz(out)
    manifest = H.load_json(H.npz_manifest_path(out))
    H.check_manifest(manifest, arrays, ds.root)
    assert [(f["path"], f["label"]) for f in manifest["files"]] == H.expected_files(ds.root)
    for i, f in enumerate(manifest["files"]):
        H.assert_equal_pixels(arrays["trainXs"][i], H.pil_array(ds.root / f["path"], "RGB"), f["path"])


def test_npy_dir_is_deterministic(run, samples_root, tmp_path):
    d = tmp_path / "npy"
    run(["to-npy", samples_root, d, "--jobs", "1"])
    first = H.dir_snapshot(d)
    run(["to-npy", samples_root, d, "--jobs", "2"])
    assert H.dir_snapshot(d) == first
