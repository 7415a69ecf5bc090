"""Containers that lie (issue 13, items 9 to 12): headers that declare more than the bytes behind
them, gzip IDX streams that inflate without end or run past their length, and HDF5 files that point
outside themselves or declare data they do not store.

Every case must give one stderr line naming the file and the reason, exit 65, no output, and (for
the large ones) a peak RSS from `/usr/bin/time -f %M` under 150 MiB; an address-space limit keeps a
regression from taking the host down with it.
"""

from __future__ import annotations

import io
import os
import resource
import struct
import subprocess
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import interop_helpers as H

from interop_helpers import MAX_RSS_KIB, SANITIZED, TIME_BIN, run_measured

h5py = pytest.importorskip("h5py")


def npy_bytes(descr: str, shape: tuple, payload: bytes) -> bytes:
    """An NPY v1.0 file with any header, over any payload."""
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, repr(tuple(shape)))
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload


def npy_of(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def small_pair():
    X = np.arange(4 * 8 * 8, dtype=np.uint8).reshape(4, 8, 8, 1)
    y = np.array([0, 1, 0, 1], np.int64)
    return X, y


def write_npz(path: Path, members: dict) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def assert_refused(res, *needles):
    H.assert_one_line_error(res, *needles)
    assert "Fatal error" not in res.stderr and "Backtrac" not in res.stderr


# --- item 9: allocations sized from headers -------------------------------------------------------

@pytest.mark.parametrize("command", ["inspect", "convert", "export", "preview"])
def test_unicode_header_over_32_bytes_is_refused_without_allocating(run, tmp_path, command):
    X, y = small_pair()
    npz = tmp_path / "u.npz"
    write_npz(npz, {"trainXs.npy": npy_of(X), "trainYs.npy": npy_of(y),
                    "classNames.npy": npy_bytes("<U2147483647", (1,), b"a" * 32)})
    args = {"inspect": ["inspect", npz], "convert": ["convert", npz, tmp_path / "o.npz"],
            "export": ["export", npz, tmp_path / "ex"], "preview": ["preview", npz, "-o", tmp_path / "p.png"]}[command]
    res, rss = run_measured(args, tmp_path)
    assert_refused(res, "u.npz", "classNames.npy", "32 bytes")
    assert rss is None or rss < MAX_RSS_KIB, f"peak RSS {rss} KiB"
    assert not (tmp_path / "o.npz").exists() and not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("target", ["o.h5", "o.npz", "idx"])
def test_image_header_over_768_bytes_is_refused_before_any_output(run, tmp_path, target):
    _, y = small_pair()
    npz = tmp_path / "huge.npz"
    write_npz(npz, {"trainXs.npy": npy_bytes("|u1", (4, 100000, 100000, 3), bytes(768)), "trainYs.npy": npy_of(y)})
    args = ["convert", npz, tmp_path / target] + (["--to", "idx"] if target == "idx" else [])
    res, rss = run_measured(args, tmp_path)
    assert_refused(res, "huge.npz", "trainXs.npy", "768 bytes")
    assert rss is None or rss < MAX_RSS_KIB
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.npz", "time.txt"][: 2 if TIME_BIN.exists() else 1]


def test_npy_folder_header_over_its_file_is_refused(run, tmp_path):
    X, y = small_pair()
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "trainXs.npy").write_bytes(npy_bytes("|u1", (4, 100000, 100000, 3), bytes(768)))
    (folder / "trainYs.npy").write_bytes(npy_of(y))
    res, rss = run_measured(["export", folder, tmp_path / "ex"], tmp_path)
    assert_refused(res, "trainXs.npy", "768 bytes")
    assert rss is None or rss < MAX_RSS_KIB


# --- item 10: gzip IDX at flat memory ---------------------------------------------------------------

def _gzip_idx(path: Path, header: bytes, zero_bytes: int) -> None:
    """A gzip file of `header` and `zero_bytes` zeros, written in pieces."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)   # zeros at level 9: about 1000:1
    piece = bytes(8 << 20)
    with open(path, "wb") as f:
        f.write(comp.compress(header))
        left = zero_bytes
        while left > 0:
            f.write(comp.compress(piece[: min(left, len(piece))]))
            left -= len(piece)
        f.write(comp.flush())


@pytest.fixture(scope="module")
def gib_idx(tmp_path_factory):
    """1 GiB of images (16384 of 256x256) in a gzip IDX pair, and a 4-image pair whose stream runs
    on for 1 GiB past its length."""
    folder = tmp_path_factory.mktemp("gzidx")
    n, side = 16384, 256
    _gzip_idx(folder / "big-images-idx3-ubyte.gz", struct.pack(">IIII", 0x803, n, side, side), n * side * side)
    _gzip_idx(folder / "big-labels-idx1-ubyte.gz", struct.pack(">II", 0x801, n), n)
    _gzip_idx(folder / "long-images-idx3-ubyte.gz", struct.pack(">IIII", 0x803, 4, side, side), 4 * side * side + (1 << 30))
    _gzip_idx(folder / "long-labels-idx1-ubyte.gz", struct.pack(">II", 0x801, 4), 4)
    return folder


def test_gzip_idx_of_a_gibibyte_streams_at_flat_memory(run, tmp_path, gib_idx):
    res, rss = run_measured(["inspect", gib_idx / "big-images-idx3-ubyte.gz", "--json"], tmp_path, expect_rc=0)
    assert '"count" : 16384' in res.stdout or '"count": 16384' in res.stdout
    assert rss is None or rss < MAX_RSS_KIB, f"peak RSS {rss} KiB inflating 1 GiB"


def test_gzip_idx_running_past_its_length_stops_at_the_first_extra_byte(run, tmp_path, gib_idx):
    import time
    start = time.monotonic()
    res, rss = run_measured(["inspect", gib_idx / "long-images-idx3-ubyte.gz"], tmp_path)
    seconds = time.monotonic() - start
    line = H.assert_one_line_error(res, "long-images-idx3-ubyte.gz", "goes on past the 262144 bytes")
    assert "bytes, dimensions" not in line, "no made-up total length"
    assert seconds < (20 if SANITIZED else 2), f"read on for {seconds:.1f} s after the end"
    assert rss is None or rss < MAX_RSS_KIB


# --- items 11 and 12: HDF5 ---------------------------------------------------------------------------

def _labels(f, n=4):
    f["trainYs"] = np.array([0, 1] * (n // 2), np.int64)


@pytest.mark.parametrize("command", ["inspect", "convert", "export", "preview"])
def test_hdf5_external_link_is_refused(run, tmp_path, command):
    X, _ = small_pair()
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = X
    h5 = tmp_path / "elink.h5"
    with h5py.File(h5, "w") as f:
        f["trainXs"] = h5py.ExternalLink("other.h5", "/x")
        _labels(f)
    args = {"inspect": ["inspect", h5], "convert": ["convert", h5, tmp_path / "o.npz"],
            "export": ["export", h5, tmp_path / "ex"], "preview": ["preview", h5, "-o", tmp_path / "p.png"]}[command]
    res = run(args, expect_rc=H.EX_DATAERR)
    assert_refused(res, "elink.h5", "trainXs", "external link")
    assert not (tmp_path / "o.npz").exists() and not (tmp_path / "ex").exists()


@pytest.mark.parametrize("source", ["/etc/passwd", "/dev/zero"])
def test_hdf5_external_storage_is_refused(run, tmp_path, source):
    h5 = tmp_path / "ext.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("trainXs", shape=(4, 8, 8, 1), dtype="u1", external=[(source, 0, 256)])
        _labels(f)
    for args in (["convert", h5, tmp_path / "o.npz"], ["export", h5, tmp_path / "ex"],
                 ["preview", h5, "-o", tmp_path / "p.png"]):
        res, rss = run_measured(args, tmp_path)
        assert_refused(res, "ext.h5", "trainXs", "external files")
        assert "root:" not in res.stderr + res.stdout
    assert not (tmp_path / "o.npz").exists() and not (tmp_path / "ex").exists()


def _vds(path: Path, source_file: str, source_name: str = "x") -> None:
    layout = h5py.VirtualLayout(shape=(4, 8, 8, 1), dtype="u1")
    layout[:] = h5py.VirtualSource(source_file, source_name, shape=(4, 8, 8, 1))
    with h5py.File(path, "w") as f:
        f.create_virtual_dataset("trainXs", layout)
        _labels(f)


def test_hdf5_virtual_dataset_beside_the_file_is_read(run, tmp_path, monkeypatch):
    X, _ = small_pair()
    folder = tmp_path / "merged"
    folder.mkdir()
    with h5py.File(folder / "part.h5", "w") as f:
        f["x"] = X
    _vds(folder / "all.h5", "part.h5")
    monkeypatch.chdir(tmp_path)   # sources resolve beside the file, not from the working folder
    run(["convert", folder / "all.h5", tmp_path / "o.npz"])
    np.testing.assert_array_equal(np.load(tmp_path / "o.npz")["trainXs"], X)


def test_hdf5_virtual_dataset_reaching_outside_its_folder_is_refused(run, tmp_path):
    X, _ = small_pair()
    with h5py.File(tmp_path / "secret.h5", "w") as f:
        f["x"] = X
    folder = tmp_path / "inner"
    folder.mkdir()
    _vds(folder / "vds.h5", "../secret.h5")
    res = run(["convert", folder / "vds.h5", tmp_path / "o.npz"], expect_rc=H.EX_DATAERR)
    assert_refused(res, "vds.h5", "trainXs", "../secret.h5", "outside")
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("command", ["inspect", "convert", "export"])
def test_hdf5_unallocated_chunks_are_refused_up_front(run, tmp_path, command):
    h5 = tmp_path / "bomb.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("trainXs", shape=(10**8, 64, 64, 3), dtype="u1", chunks=(1, 64, 64, 3))
        f.create_dataset("trainYs", shape=(10**8,), dtype="u1", chunks=(1 << 20,))
    assert h5.stat().st_size < 64 << 10
    import time
    start = time.monotonic()
    args = {"inspect": ["inspect", h5], "convert": ["convert", h5, tmp_path / "o.npz"],
            "export": ["export", h5, tmp_path / "ex"]}[command]
    res, rss = run_measured(args, tmp_path)
    assert time.monotonic() - start < (30 if SANITIZED else 5)
    assert_refused(res, "bomb.h5", "chunks")
    assert rss is None or rss < MAX_RSS_KIB
    assert not (tmp_path / "o.npz").exists() and not (tmp_path / "ex").exists()


def test_hdf5_contiguous_dataset_without_its_data_is_refused(run, tmp_path):
    h5 = tmp_path / "big.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("trainXs", shape=(4, 100000, 100000, 3), dtype="u1")
        _labels(f)
    res, rss = run_measured(["convert", h5, tmp_path / "o.npz"], tmp_path)
    assert_refused(res, "big.h5", "trainXs", "stores 0")
    assert rss is None or rss < MAX_RSS_KIB


@pytest.mark.parametrize("shape,chunks", [((2, 700, 700, 3), (1, 700, 700, 3)), ((1, 3, 1100, 1100), None),
                                          ((3, 5, 300, 300), (1, 5, 300, 300))],
                         ids=["row-over-1MiB", "nchw-contiguous", "chunked-nchw"])
def test_hdf5_images_larger_than_a_read_stream_exactly(run, tmp_path, shape, chunks):
    rng = np.random.default_rng(3)
    X = rng.integers(0, 256, shape, dtype=np.uint8)
    y = np.arange(shape[0], dtype=np.int64) % 2
    h5 = tmp_path / "rows.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("trainXs", data=X, chunks=chunks, compression="gzip" if chunks else None)
        f["trainYs"] = y
    run(["convert", h5, tmp_path / "o.npz"])
    d = np.load(tmp_path / "o.npz")
    np.testing.assert_array_equal(d["trainXs"], X)
    np.testing.assert_array_equal(d["trainYs"], y)


# --- item 16: a member that is not an array --------------------------------------------------------

def test_an_extra_non_npy_member_is_left_alone_by_every_command(run, tmp_path):
    X, y = small_pair()
    npz = tmp_path / "e.npz"
    np.savez(npz, trainXs=X, trainYs=y)
    run(["convert", npz, tmp_path / "c.npz", "-q"])   # gets a manifest
    with zipfile.ZipFile(tmp_path / "c.npz", "a") as z:
        z.writestr("README.txt", "made by hand")
    c = tmp_path / "c.npz"
    report = run(["inspect", c, "--json"]).stdout
    assert "README" not in report
    run(["verify", c])
    run(["convert", c, tmp_path / "d.npz", "-q"])
    run(["export", c, tmp_path / "ex", "-q"])
    run(["preview", c, "-o", tmp_path / "p.png", "-q"])
    np.testing.assert_array_equal(np.load(tmp_path / "d.npz")["trainXs"], X)


def test_hdf5_header_asking_for_exabytes_is_refused_in_one_line(run, tmp_path):
    """The h5 fuzz target's first report (Tests/Fixtures/hdf5/README.md): a metadata size of
    0x6400000000000001. libhdf5 cannot allocate it and fails the open; imgconv says so in one line."""
    if SANITIZED:
        pytest.skip("AddressSanitizer reports libhdf5's request for 7 EB itself (the release build refuses the file)")
    src = H.FIXTURES / "hdf5" / "huge-metadata-size.h5"
    for args in (["inspect", src], ["convert", src, tmp_path / "o.npz"], ["export", src, tmp_path / "ex"]):
        res, rss = run_measured(args, tmp_path)
        assert_refused(res, "huge-metadata-size.h5", "HDF5")
        assert rss is None or rss < MAX_RSS_KIB
    assert not (tmp_path / "o.npz").exists()


def test_hdf5_metadata_libhdf5_loops_on_ends_the_run_after_the_deadline(run, tmp_path):
    """Tests/Fixtures/hdf5/README.md: a damaged global heap on which libhdf5 spins for minutes.
    The call's deadline ends the run as a damaged file: one line naming it, exit 65, no output
    and no temporary file left."""
    src = H.FIXTURES / "hdf5" / "looping-global-heap.h5"
    out = tmp_path / "out"
    out.mkdir()
    start = time.monotonic()
    res, rss = run_measured(["convert", src, out / "o.npz"], tmp_path)
    assert_refused(res, "looping-global-heap.h5", "libhdf5 did not finish reading it in 60 s")
    assert time.monotonic() - start < 120
    assert rss is None or rss < MAX_RSS_KIB
    assert list(out.iterdir()) == []


def test_an_interrupted_read_command_does_not_claim_to_remove_an_output(tmp_path):
    """`inspect` writes nothing: SIGTERM ends it with the plain line, not 'temporary output
    removed' (it used to say so). The looping file keeps it busy long enough."""
    import signal
    proc = subprocess.Popen([str(H.binary_path()), "inspect", H.FIXTURES / "hdf5" / "looping-global-heap.h5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    assert proc.poll() is None, "inspect ended before the signal"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert [ln for ln in err.decode().splitlines() if ln.strip()] == ["imgconv: interrupted (SIGTERM)"]


def test_hdf5_driver_information_block_is_refused_before_libhdf5_reads_it(run, tmp_path):
    """Tests/Fixtures/hdf5/README.md: a 62-byte file whose driver information block's length made
    libhdf5 use 3.4 GB; and a real file of h5py's family driver (which writes such a block)."""
    src = H.FIXTURES / "hdf5" / "driver-block-size.h5"
    for args in (["inspect", src], ["convert", src, tmp_path / "o.npz"]):
        res, rss = run_measured(args, tmp_path)
        assert_refused(res, "driver-block-size.h5", "driver information block")
        assert rss is None or rss < MAX_RSS_KIB, f"peak RSS {rss} KiB"
    family = tmp_path / "fam%d.h5"
    X, y = small_pair()
    with h5py.File(family, "w", driver="family", memb_size=1 << 20) as f:
        f["trainXs"], f["trainYs"] = X, y
    res, _ = run_measured(["inspect", tmp_path / "fam0.h5"], tmp_path)
    assert_refused(res, "fam0.h5", "driver information block")
