"""Stored tensors are memory-mapped (issue 4, readers): a stored `.npz` member and a `.npy` file are
read through an mmap'd window rather than copied through read buffers, by verify, inspect, convert
and export alike, with results equal to numpy's reading of the same files; memory stays flat on a
big file (pages behind the reader are released); header checks are as strict as before.

The mmap check itself runs the CLI under strace (skipped without it): the bytes that come through
read()/pread() stay far below the tensor's size, and the file is mapped read-only.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import interop_helpers as H

TIME_BIN = Path("/usr/bin/time")
STRACE = shutil.which("strace")
BIG_MIN_FREE = 4 << 30
# The reader keeps at most a few MiB of mapped pages resident (released every 4 MiB); a 64 MiB
# window kept whole, or the file copied, would pass this.
BIG_MAX_RSS_KIB = 80 * 1024


def _data(n: int, h: int, w: int, c: int, seed: int) -> np.ndarray:
    """Noise that differs in every image (a random block, the image index in the first pixel)."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, h, w, c), np.uint8)
    x[:] = rng.integers(0, 256, (1, h, w, c), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(n) % 256
    x[:, -1, -1, -1] = np.arange(n) // 256 % 256
    return x


def _numpy_npz(path: Path, X: np.ndarray, y: np.ndarray, names: list[str]) -> None:
    # classNames first, so trainXs.npy's data starts at an offset that is no multiple of a page.
    np.savez(path, classNames=np.array(names), trainXs=X, trainYs=y)


def _stats(X: np.ndarray) -> list[tuple[int, int, float]]:
    flat = X.reshape(-1, X.shape[-1])
    return [(int(flat[:, c].min()), int(flat[:, c].max()), float(flat[:, c].mean(dtype=np.float64)))
            for c in range(X.shape[-1])]


def _read_bytes_under_strace(args, tmp_path: Path) -> tuple[int, str]:
    """Bytes the CLI got through read()/pread() in total, and the trace."""
    trace = tmp_path / f"trace-{time.monotonic_ns()}.txt"
    cmd = [STRACE, "-f", "-qq", "-e", "trace=read,pread64,mmap,madvise", "-o", str(trace),
           str(H.binary_path())] + [str(a) for a in args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if not trace.is_file() or "PTRACE" in res.stderr or "Operation not permitted" in res.stderr:
        pytest.skip(f"strace cannot trace here: {res.stderr.strip()[:200]}")
    assert res.returncode == 0, res.stderr
    text = trace.read_text(errors="replace")
    total = sum(int(m.group(1)) for m in re.finditer(r"\b(?:read|pread64)\(.*\)\s+=\s+(\d+)", text))
    return total, text


def test_stored_npz_and_npy_folder_read_exactly(run, tmp_path):
    X = _data(300, 24, 20, 3, seed=1)
    y = (np.arange(300) * 7 % 5).astype(np.int64)
    names = ["v", "w", "x", "y", "z"]
    src = tmp_path / "np.npz"
    _numpy_npz(src, X, y, names)
    with zipfile.ZipFile(src) as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        offset, _ = H.zip_member_data_offset(src, "trainXs.npy")
        assert offset % 4096 != 0, "the member must start off a page boundary"

    # convert a numpy-written stored npz, then every stored form imgconv writes
    npz = tmp_path / "a.npz"
    run(["convert", src, npz, "-q"])
    npydir = tmp_path / "dir"
    run(["convert", npz, npydir, "--to", "npy", "-q"])
    single = tmp_path / "single"
    single.mkdir()
    np.save(single / "trainXs.npy", X)
    np.save(single / "trainYs.npy", y)
    again = tmp_path / "again.npz"
    run(["convert", npydir, again, "-q"])
    h5 = tmp_path / "b.h5"
    run(["convert", npydir, h5, "-q"])
    for path, arrays in ((npz, H.load_npz(npz)), (npydir, H.load_npy_dir(npydir, mmap=False)),
                         (again, H.load_npz(again))):
        assert arrays["trainXs"].tobytes() == X.tobytes(), path.name
        np.testing.assert_array_equal(arrays["trainYs"], y)
        assert list(arrays["classNames"]) == names
    assert npz.read_bytes() == again.read_bytes(), "npz -> npy folder -> npz gives the same file"
    h5py = pytest.importorskip("h5py")
    with h5py.File(h5, "r") as f:
        assert f["trainXs"][...].tobytes() == X.tobytes()

    # verify and inspect each, against numpy's view of the data
    manifest = H.load_json(H.npz_manifest_path(npz))
    xs = next(t for t in manifest["tensors"] if t["name"] == "trainXs")
    assert xs["xxh3"] == H.tensor_xxh3(X.tobytes())
    expected_stats = _stats(X)
    for path in (npz, npydir, again):
        run(["verify", path])
        rep = json.loads(run(["inspect", path, "--json"]).stdout)
        assert rep["images"] == 300
        assert [c["count"] for c in rep["classes"]] == [int((y == k).sum()) for k in range(5)]
        for got, (lo, hi, mean) in zip(rep["pixels"], expected_stats):
            assert (got["min"], got["max"]) == (lo, hi)
            assert got["mean"] == pytest.approx(mean, rel=1e-12)
        assert all(t["compression"] in ("stored", "none") for t in rep["tensors"])

    # export from both stored forms: the same PNGs, equal to the arrays
    from PIL import Image
    outs = []
    for path in (npz, npydir):
        out = tmp_path / f"png-{path.name}"
        run(["export", path, out, "-q"])
        outs.append(out)
        for i in (0, 1, 299):
            png = out / names[y[i]] / f"{i:03d}.png"
            np.testing.assert_array_equal(np.asarray(Image.open(png)), X[i])
    assert H.dir_snapshot(outs[0]) == H.dir_snapshot(outs[1])


def test_stored_member_damage_is_still_caught(run, tmp_path):
    """Reading in place keeps every check of the copying reader: CRC-32, short data, extra data."""
    X = _data(40, 16, 16, 3, seed=2)
    src = tmp_path / "src.npz"
    _numpy_npz(src, X, np.zeros(40, np.int64), ["only"])
    npz = tmp_path / "ok.npz"
    run(["convert", src, npz, "-q"])

    crc = tmp_path / "crc.npz"
    shutil.copyfile(npz, crc)
    shutil.copyfile(H.npz_manifest_path(npz), H.npz_manifest_path(crc))
    offset, info = H.zip_member_data_offset(crc, "trainXs.npy")
    H.flip_byte(crc, offset + info.file_size - 5)
    for sub in (["verify", crc], ["inspect", crc], ["convert", crc, tmp_path / "x.npz"], ["export", crc, tmp_path / "x"]):
        res = run(sub, expect_rc=H.EX_DATAERR)
        H.assert_one_line_error(res, "crc.npz", "CRC-32")

    # an .npy whose header claims more data than the file holds, and one with trailing data
    d = tmp_path / "dir"
    run(["convert", npz, d, "--to", "npy", "-q"])
    good = (d / "trainXs.npy").read_bytes()
    (d / "trainXs.npy").write_bytes(good[:-100])
    for sub in (["verify", d], ["inspect", d], ["convert", d, tmp_path / "y.npz"], ["export", d, tmp_path / "y"]):
        res = run(sub, expect_rc=H.EX_DATAERR)
        H.assert_one_line_error(res, "trainXs.npy")
    (d / "trainXs.npy").write_bytes(good + b"\0" * 3)
    data_bytes = len(good) - H.npy_header_length(good)
    for sub in (["verify", d], ["convert", d, tmp_path / "z.npz"]):
        res = run(sub, expect_rc=H.EX_DATAERR)
        # Refused from the file's size, before any data is read.
        H.assert_one_line_error(res, "trainXs.npy", f"data is {data_bytes + 3} bytes", f"needs {data_bytes}")


@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
def test_stored_data_is_mapped_not_read(run, tmp_path):
    X = _data(64, 256, 256, 2, seed=3)            # 8 MiB of trainXs
    src = tmp_path / "src.npz"
    _numpy_npz(src, X, np.zeros(64, np.int64), ["c"])
    npz = tmp_path / "m.npz"
    run(["convert", src, npz, "-q"])
    npydir = tmp_path / "d"
    run(["convert", npz, npydir, "--to", "npy", "-q"])
    size = X.nbytes
    for args in (["verify", npz], ["inspect", npz], ["verify", npydir], ["convert", npydir, tmp_path / "o.npz", "-q"],
                 ["export", npz, tmp_path / "png", "-q"]):
        total, trace = _read_bytes_under_strace(args, tmp_path)
        assert total < size // 8, f"{args[0]}: {total} bytes came through read()/pread() for {size} bytes of data"
        assert re.search(r"mmap\(NULL, \d+, PROT_READ, MAP_PRIVATE, \d+, \d+\)", trace), f"{args[0]}: nothing mapped"
        assert "MADV_SEQUENTIAL" in trace


def test_hdf5_chunks_are_mapped_and_read_exactly(run, tmp_path):
    """An .h5 of whole-image chunks stored as they are (imgconv's own) is read through a mapping
    of the file: its chunk index's blocks (every few dozen chunks) cut the mapped runs, and the
    data must come out exactly. A file with a user block (its addresses counted from the
    superblock at 512, not from the start of the file) is read through libhdf5, also exactly."""
    h5py = pytest.importorskip("h5py")
    X = _data(150, 128, 128, 3, seed=5)            # 7 MiB of trainXs, 48 KiB chunks
    y = (np.arange(150) % 4).astype(np.int64)
    src = tmp_path / "src.npz"
    _numpy_npz(src, X, y, ["a", "b", "c", "d"])
    h5 = tmp_path / "m.h5"
    run(["convert", src, h5, "-q"])
    with h5py.File(h5, "r") as f:
        d = f["trainXs"]
        assert d.chunks == (1, 128, 128, 3) and d.compression is None
        ends = [d.id.get_chunk_info(i).byte_offset + d.id.get_chunk_info(i).size for i in range(d.id.get_num_chunks() - 1)]
        starts = [d.id.get_chunk_info(i).byte_offset for i in range(1, d.id.get_num_chunks())]
        assert any(a != b for a, b in zip(ends, starts)), "no gap between chunks: the test would not cut a run"
    out = tmp_path / "back.npz"
    total, trace = _read_bytes_under_strace(["convert", h5, out, "-q"], tmp_path)
    assert total < X.nbytes // 8, f"{total} bytes came through read()/pread() for {X.nbytes} bytes of data"
    assert re.search(r"mmap\(NULL, \d+, PROT_READ, MAP_PRIVATE, \d+, \d+\)", trace), "nothing mapped"
    back = H.load_npz(out)
    np.testing.assert_array_equal(back["trainXs"], X)
    np.testing.assert_array_equal(back["trainYs"], y)
    run(["verify", h5])

    ub = tmp_path / "userblock.h5"
    with h5py.File(ub, "w", userblock_size=512) as f:
        f.create_dataset("trainXs", data=X, chunks=(1, 128, 128, 3))
        f.create_dataset("trainYs", data=y)
        f.attrs["classNames"] = ["a", "b", "c", "d"]
    with open(ub, "r+b") as f:
        f.write(b"user block: not HDF5".ljust(512, b"."))
    out = tmp_path / "ub.npz"
    run(["convert", ub, out, "-q"])
    np.testing.assert_array_equal(H.load_npz(out)["trainXs"], X)


def _write_big_npz(path: Path, n: int, h: int, w: int, c: int, seed: int) -> str:
    """A stored .npz of `n` images written one image at a time (this process stays small: a
    child forked from a big pytest process would inherit its peak RSS, which other tests measure
    through RUSAGE_CHILDREN); returns the manifest checksum (chunked XXH3-128) of trainXs's data."""
    block = np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)
    digest = H.TensorXXH3()
    names = io.BytesIO()
    np.save(names, np.array([str(k) for k in range(10)]))
    labels = io.BytesIO()
    np.save(labels, (np.arange(n) % 10).astype(np.int64))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr("classNames.npy", names.getvalue())     # first: trainXs starts off a page boundary
        with zf.open("trainXs.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (n, h, w, c)})
            for i in range(n):
                block[0, 0, 0], block[-1, -1, -1] = i % 256, i // 256 % 256
                f.write(block.data)
                digest.update(block.data)
        zf.writestr("trainYs.npy", labels.getvalue())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def big_stored(tmp_path_factory):
    base = tmp_path_factory.mktemp("bigmap")
    free = shutil.disk_usage(base).free
    if free < BIG_MIN_FREE:
        pytest.skip(f"only {free / 2**30:.1f} GiB free: the big-file test needs 4 GiB")
    src = base / "src.npz"
    digest = _write_big_npz(src, 2560, 256, 256, 4, seed=4)   # 640 MiB
    try:
        yield base, src, digest
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _measured(args, cwd: Path):
    prefix = [str(TIME_BIN), "-f", "%M", "-o", str(cwd / "rss.txt")] if TIME_BIN.is_file() else []
    t0 = time.monotonic()
    res = subprocess.run(prefix + [str(H.binary_path())] + [str(a) for a in args], capture_output=True, text=True,
                         timeout=600)
    secs = time.monotonic() - t0
    rss = None
    if prefix:
        values = [ln for ln in (cwd / "rss.txt").read_text().splitlines() if ln.strip().isdigit()]
        rss = int(values[-1]) if values else None
    return res, secs, rss


def test_big_stored_file_streams_with_flat_memory(big_stored):
    base, src, digest = big_stored
    npz, npydir = base / "out.npz", base / "outdir"
    steps = [("convert numpy npz -> npz", ["convert", src, npz, "-q"]),
             ("verify npz", ["verify", npz]),
             ("inspect npz", ["inspect", npz]),
             ("convert npz -> npy folder", ["convert", npz, npydir, "--to", "npy", "-q"]),
             ("verify npy folder", ["verify", npydir]),
             ("inspect npy folder", ["inspect", npydir])]
    for what, args in steps:
        res, secs, rss = _measured(args, base)
        print(f"\n{what}: exit {res.returncode}, {secs:.1f} s, peak RSS "
              f"{'n/a' if rss is None else f'{rss / 1024:.1f} MiB'}")
        assert res.returncode == 0, f"{what}: {res.stderr}"
        if rss is not None:
            assert rss < BIG_MAX_RSS_KIB, f"{what}: peak RSS {rss} KiB >= {BIG_MAX_RSS_KIB} KiB on a 640 MiB tensor"
    for manifest in (H.npz_manifest_path(npz), npydir / "manifest.json"):
        xs = next(t for t in H.load_json(manifest)["tensors"] if t["name"] == "trainXs")
        assert xs["xxh3"] == digest, "the data went through unchanged"
    if not TIME_BIN.is_file():
        pytest.skip("/usr/bin/time is not installed: peak RSS not measured (the runs themselves passed)")
