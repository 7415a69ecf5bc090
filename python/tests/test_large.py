"""A tensor larger than the memory the process may use: a 3 GiB .npy and a 4.1 GiB ZIP64 .npz
(sparse files: no disk time) are iterated in a child process under a 1 GiB address-space limit
(RLIMIT_AS, as `ulimit -v`). The iteration completes, reads the right bytes (marked rows) and its
RSS stays flat; mapping the whole tensor there fails, so the limit does bind."""

from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

LIMIT = 1 << 30
ROW_SHAPE = (512, 512, 3)
ROW = 512 * 512 * 3
MARKED = (0, 1, 777, 1500)  # rows given a non-zero first byte; the last row gets one too


def marker(i: int) -> int:
    return i % 251 + 1


def write_npy_header(f, shape):
    np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": shape})


def mark_rows(f, data_offset: int, n: int):
    for i in MARKED + (n - 1,):
        f.seek(data_offset + i * ROW)
        f.write(bytes([marker(i)]))


def sparse_npy(path: Path, n: int) -> None:
    with open(path, "wb") as f:
        write_npy_header(f, (n,) + ROW_SHAPE)
        start = f.tell()
        f.truncate(start + n * ROW)
        mark_rows(f, start, n)


def npy_bytes(arr: np.ndarray) -> bytes:
    import io
    b = io.BytesIO()
    np.lib.format.write_array(b, arr, allow_pickle=False)
    return b.getvalue()


def sparse_zip64_npz(path: Path, n: int, labels: np.ndarray, names: np.ndarray) -> None:
    """An .npz as imgconv lays out a large one: the big stored member first, with ZIP64 sizes in its
    local and central headers, the small members after it at offsets past 4 GiB (ZIP64 offsets),
    then the ZIP64 end records. The big member's CRC is left 0: it is never checked by what reads
    it here (the reader maps it; `imgconv verify` checks CRCs)."""
    import io
    hdr = io.BytesIO()
    write_npy_header(hdr, (n,) + ROW_SHAPE)
    big_head = hdr.getvalue()
    big_size = len(big_head) + n * ROW
    members = []  # (name, offset, size, crc)
    with open(path, "wb") as f:
        def local(name: bytes, size: int, crc: int):
            off = f.tell()
            extra = struct.pack("<HHQQ", 1, 16, size, size)
            f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                                len(name), len(extra)) + name + extra)
            members.append((name, off, size, crc))
        local(b"trainXs.npy", big_size, 0)
        f.write(big_head)
        data = f.tell()
        f.truncate(data + n * ROW)
        mark_rows(f, data, n)
        f.seek(data + n * ROW)
        for name, arr in ((b"trainYs.npy", labels), (b"classNames.npy", names)):
            body = npy_bytes(arr)
            local(name, len(body), zlib.crc32(body))
            f.write(body)
        cd_start = f.tell()
        for name, off, size, crc in members:
            extra = struct.pack("<HHQQQ", 1, 24, size, size, off)
            f.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF,
                                0xFFFFFFFF, len(name), len(extra), 0, 0, 0, 0, 0xFFFFFFFF) + name + extra)
        cd_end = f.tell()
        f.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(members), len(members),
                            cd_end - cd_start, cd_start))
        f.write(struct.pack("<IIQI", 0x07064B50, 0, cd_end, 1))
        f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))


CHILD = r"""
import json, sys
import numpy as np
import imgconv

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

path, mode = sys.argv[1], sys.argv[2]
ds = imgconv.open(path)
s = ds["train"]
out = {"n": len(s), "names": ds.class_names}
try:
    s.xs  # the whole tensor mapped: more address space than the limit allows
    out["whole_mapping"] = "mapped"
except (OSError, MemoryError, ValueError) as e:
    out["whole_mapping"] = type(e).__name__
first = []
rows = 0
samples = []
labels = []
if mode == "batches":
    it = s.batches(64)
else:
    it = ((x[None], np.asarray(y)[None]) for x, y in s)
for xb, yb in it:
    first.extend(int(v) for v in xb.reshape(len(xb), -1)[:, 0])
    labels.extend(int(v) for v in yb)
    rows += len(xb)
    if rows % 256 < len(xb):
        samples.append(rss("VmRSS"))
out.update(rows=rows, first=first, labels=labels, rss=samples, hwm=rss("VmHWM"))
print(json.dumps(out))
"""


def run_child(path: Path, mode: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))
    res = subprocess.run([sys.executable, "-c", CHILD, str(path), mode], capture_output=True, text=True,
                         timeout=600, env=env, preexec_fn=limit)
    assert res.returncode == 0, f"child exited {res.returncode}\n{res.stderr[-3000:]}"
    return json.loads(res.stdout.strip().splitlines()[-1])


def check(out: dict, n: int, labels: np.ndarray, big: int):
    assert big > 2 * LIMIT
    assert out["whole_mapping"] != "mapped", "the whole tensor could be mapped: the limit does not bind"
    assert out["rows"] == n == out["n"]
    expected = [0] * n
    for i in MARKED + (n - 1,):
        expected[i] = marker(i)
    assert out["first"] == expected
    assert out["labels"] == labels.tolist()
    steady = out["rss"][1:]
    mib = [v / 1024 for v in out["rss"]]
    print(f"\n  {n} rows, {big / 2**30:.2f} GiB under RLIMIT_AS {LIMIT >> 20} MiB: "
          f"VmHWM {out['hwm'] / 1024:.0f} MiB, VmRSS {min(mib):.0f}-{max(mib):.0f} MiB")
    assert out["hwm"] < 300 * 1024, f"peak RSS {out['hwm']} KiB"
    assert max(steady) - min(steady) < 100 * 1024, f"RSS not flat: {out['rss']}"


@pytest.mark.parametrize("mode", ["batches", "items"])
def test_npy_larger_than_the_address_space_limit(tmp_path, mode):
    n = 4096  # 3 GiB
    folder = tmp_path / "big"
    folder.mkdir()
    sparse_npy(folder / "trainXs.npy", n)
    labels = (np.arange(n) % 3).astype(np.int64)
    np.save(folder / "trainYs.npy", labels)
    np.save(folder / "classNames.npy", np.array(["a", "b", "c"]))
    try:
        out = run_child(folder, mode)
        check(out, n, labels, n * ROW)
        assert out["names"] == ["a", "b", "c"]
    finally:
        (folder / "trainXs.npy").unlink()


def test_zip64_npz_larger_than_4_gib(tmp_path):
    n = 5600  # 4.1 GiB: the members after it lie past 4 GiB
    labels = (np.arange(n) % 5).astype(np.int64)
    p = tmp_path / "big.npz"
    sparse_zip64_npz(p, n, labels, np.array(["v", "w", "x", "y", "z"]))
    try:
        assert p.stat().st_size > 1 << 32
        import zipfile
        with zipfile.ZipFile(p) as zf:  # the independent reader agrees on the layout and the small members
            assert [i.filename for i in zf.infolist()] == ["trainXs.npy", "trainYs.npy", "classNames.npy"]
            assert zf.getinfo("trainYs.npy").header_offset > 1 << 32
            with zf.open("trainYs.npy") as m:
                assert np.array_equal(np.load(m), labels)
        out = run_child(p, "batches")
        check(out, n, labels, n * ROW)
        assert out["names"] == ["v", "w", "x", "y", "z"]
    finally:
        p.unlink()


TORCH_CHILD = r"""
import json, sys
import numpy as np
import torch
import imgconv

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

class Probe(torch.utils.data.Dataset):
    # each item with the RSS of the process that read it (a worker)
    def __init__(self, inner):
        self.inner = inner
    def __len__(self):
        return len(self.inner)
    def __getitem__(self, i):
        x, y = self.inner[i]
        return x[0, 0, 0], y, rss("VmRSS"), rss("VmHWM")

split = imgconv.open(sys.argv[1])["train"]
loader = torch.utils.data.DataLoader(Probe(imgconv.to_torch(split)), batch_size=16, num_workers=2)
first, labels, worker_rss, worker_hwm, main_rss = [], [], [], [], []
for x0, y, r, h in loader:
    first += x0.tolist(); labels += y.tolist(); worker_rss += r.tolist(); worker_hwm += h.tolist()
    main_rss.append(rss("VmRSS"))
print(json.dumps(dict(first=first, labels=labels, worker_rss=worker_rss, worker_hwm=max(worker_hwm),
                      main_rss=main_rss, main_hwm=rss("VmHWM"))))
"""


def test_torch_dataloader_over_a_tensor_larger_than_the_limit(tmp_path):
    """The same 3 GiB .npy through a DataLoader with 2 worker processes, under a 1.5 GiB RLIMIT_AS
    (torch itself takes about 0.6 GiB of address space): every worker's RSS stays flat."""
    try:
        import torch  # noqa: F401
    except ImportError as e:
        pytest.skip(f"torch cannot be imported ({e}); scripts/setup.sh --test installs a CPU-only torch when pip can")
    n = 4096
    folder = tmp_path / "big"
    folder.mkdir()
    sparse_npy(folder / "trainXs.npy", n)
    labels = (np.arange(n) % 3).astype(np.int64)
    np.save(folder / "trainYs.npy", labels)
    np.save(folder / "classNames.npy", np.array(["a", "b", "c"]))
    limit = 3 << 29
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    try:
        res = subprocess.run([sys.executable, "-c", TORCH_CHILD, str(folder)], capture_output=True, text=True,
                             timeout=600, env=env,
                             preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
        assert res.returncode == 0, f"child exited {res.returncode}\n{res.stderr[-3000:]}"
        out = json.loads(res.stdout.strip().splitlines()[-1])
    finally:
        (folder / "trainXs.npy").unlink()
    expected = [0] * n
    for i in MARKED + (n - 1,):
        expected[i] = marker(i)
    assert out["first"] == expected and out["labels"] == labels.tolist()
    w = out["worker_rss"][256:]
    print(f"\n  DataLoader, 2 workers, 3.00 GiB under RLIMIT_AS {limit >> 20} MiB: worker VmHWM "
          f"{out['worker_hwm'] / 1024:.0f} MiB, worker VmRSS {min(w) / 1024:.0f}-{max(w) / 1024:.0f} MiB, "
          f"main VmHWM {out['main_hwm'] / 1024:.0f} MiB")
    assert max(w) - min(w) < 100 * 1024, "worker RSS not flat"
    assert max(out["main_rss"][16:]) - min(out["main_rss"][16:]) < 100 * 1024, "main RSS not flat"
