"""Sharded conversion on a real Dask cluster (examples/dask_shards.py).

About 2,000 small images (PNG and JPEG, gray ones, EXIF-rotated ones, files whose data is cut, one
whose header is bad, a non-image) are planned with --skip-bad --split --stratify --shuffle as 5
shards and converted on a LocalCluster of 2 worker processes, one task per shard (`client.map`
with retries), in all four formats. Shard 3 of the .npz run is killed for real on every attempt:
its imgconv process gets SIGKILL (strace's fault injection) when it renames its finished part
into place, so it dies mid-shard leaving only temporary files. `merge --check` names it (66),
the example script's --rerun-missing runs that shard alone (the others' parts untouched), and the
merged outputs of all four formats (IDX by the script from the start) equal one-machine runs
byte for byte, also for the .npy run, whose worker running shard 1 is SIGKILLed mid-shard (Dask
restarts it and runs the shard again). The virtual .h5 reads the same tensors and manifest, and
verify fails once a part is moved away.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import interop_helpers as H

EXAMPLES = H.REPO_ROOT / "examples"
SHARDS = 5
KILLED = 3
OPTIONS = ["--skip-bad", "--split", "train=0.8,val=0.1,test=0.1", "--stratify", "--shuffle", "--seed", "15",
           "--size", "16x16", "--jobs", "2"]
SINGLE_NAMES = {"npz": "out.npz", "npy": "out", "hdf5": "out.h5", "idx": "out"}
COMMANDS = {"npz": "to-npz", "npy": "to-npy", "hdf5": "to-hdf5", "idx": "to-idx"}


def part_name(fmt: str, k: int) -> str:
    ext = {"npz": ".npz", "npy": ".npy", "hdf5": ".h5", "idx": ".idx"}[fmt]
    return f"part-{k:05d}-of-{SHARDS:05d}{ext}"


@pytest.fixture(scope="module")
def dask_shards():
    pytest.importorskip("distributed", reason="dask/distributed is not installed (requirements-test.txt)")
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))   # spawned workers get the driver's sys.path
    import dask_shards
    return dask_shards


def test_dask_local_cluster_kill_rerun_merge(run, imgconv_bin, dask_shards, tmp_path, monkeypatch):
    D = dask_shards
    h5py = pytest.importorskip("h5py")
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (scripts/setup.sh --test installs it): it kills the shard")
    monkeypatch.setenv("IMGCONV", str(imgconv_bin))
    root = tmp_path / "root"
    converted = H.build_engine_dataset(root)

    single = tmp_path / "single"
    for fmt, name in SINGLE_NAMES.items():
        (single / fmt).mkdir(parents=True)
        run([COMMANDS[fmt], root, single / fmt / name, "-q", *OPTIONS], timeout=300)

    works = {fmt: tmp_path / fmt for fmt in COMMANDS}
    plan = D.make_plan(root, works["npz"], SHARDS, OPTIONS)
    doc = H.load_json(plan)
    assert sum(len(s["items"]) for s in doc["splits"]) == converted + 3   # the cut files decode later
    # Shard 3 of the .npz run dies by SIGKILL as it renames its finished part into place. (The
    # parts folder gets its plan copy first, so that the rename killed is the part's.)
    (works["npz"] / "parts").mkdir()
    shutil.copyfile(plan, works["npz"] / "parts" / "plan.json")
    killer = (strace, "-f", "-qq", "-o", os.devnull, "-e", "trace=rename,renameat,renameat2",
              "-e", "inject=rename,renameat,renameat2:signal=KILL")

    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        failed = D.run_shards(client, list(range(SHARDS)), SHARDS, "npz", plan, works["npz"] / "parts",
                              retries=1, prefixes={KILLED: killer})
        assert list(failed) == [KILLED]
        assert f"shard {KILLED}/{SHARDS} exited -9" in str(failed[KILLED])   # SIGKILL, after its retry
        # The .npy run: the worker running shard 1 is SIGKILLed while its imgconv runs (first
        # attempt only). The nanny starts a new worker, Dask runs the shard again (and any
        # finished shard whose result lived on the dead worker): all succeed, the parts agree.
        marker = tmp_path / "worker-killed"
        worker_killer = ("sh", "-c", '[ -e "$0" ] && exec "$@"; : > "$0"; "$@" & kill -KILL $PPID; wait $!', marker)
        before = set(client.scheduler_info()["workers"])
        assert D.run_shards(client, list(range(SHARDS)), SHARDS, "npy", plan, works["npy"] / "parts",
                            prefixes={1: worker_killer}) == {}
        assert marker.exists() and set(client.scheduler_info()["workers"]) != before
        assert D.run_shards(client, list(range(SHARDS)), SHARDS, "hdf5", plan, works["hdf5"] / "parts") == {}

    parts = works["npz"] / "parts"
    assert not (parts / part_name("npz", KILLED)).exists()
    res = run(["merge", "--check", parts], expect_rc=66)
    lines = res.stdout.splitlines()
    assert f"missing: {KILLED}" in lines and f"shard {KILLED}: no part" in lines
    assert any(l.startswith(f"stale: .part-{KILLED:05d}-of-{SHARDS:05d}.npz") for l in lines)
    assert D.missing_shards(parts) == [KILLED]

    # Only the missing shard runs again: the example script, on a fresh LocalCluster.
    kept = {k: os.stat(parts / part_name("npz", k)).st_mtime_ns for k in range(SHARDS) if k != KILLED}
    res = subprocess.run([sys.executable, EXAMPLES / "dask_shards.py", root, works["npz"], "--shards", str(SHARDS),
                          "--format", "npz", "--rerun-missing"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"running shards: {KILLED}" in res.stdout.splitlines()
    assert "merged and verified" in res.stdout
    for k, t in kept.items():
        assert os.stat(parts / part_name("npz", k)).st_mtime_ns == t
    H.cmp_output(works["npz"] / "out.npz", single / "npz" / "out.npz")

    # IDX: the example script from the start (plan, shards, merge, verify) on its own LocalCluster.
    res = subprocess.run([sys.executable, EXAMPLES / "dask_shards.py", root, works["idx"], "--shards", str(SHARDS),
                          "--format", "idx", "--", *OPTIONS], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "running shards: 0,1,2,3,4" in res.stdout.splitlines() and "rerunning" not in res.stdout
    assert H.load_json(works["idx"] / "plan.json")["hash"] == doc["hash"]
    H.cmp_output(works["idx"] / "out", single / "idx" / "out")

    # npy and HDF5: merged with the script's merge and verify, equal to one-machine runs.
    out = D.merge_and_verify(works["npy"], "npy")
    H.cmp_output(out, single / "npy" / "out")
    virtual = D.merge_and_verify(works["hdf5"], "hdf5")
    (works["hdf5"] / "full").mkdir()
    run(["merge", works["hdf5"] / "parts", works["hdf5"] / "full" / "out.h5", "--materialize", "-q"])
    H.cmp_output(works["hdf5"] / "full" / "out.h5", single / "hdf5" / "out.h5")

    # The virtual .h5: the one-machine manifest (tensor hashes included) and the same tensors.
    assert filecmp.cmp(f"{virtual}.manifest.json", single / "hdf5" / "out.h5.manifest.json", shallow=False)
    with h5py.File(virtual, "r") as v, h5py.File(single / "hdf5" / "out.h5", "r") as s:
        for split in ("train", "val", "test"):
            assert v[f"{split}Xs"].is_virtual
            np.testing.assert_array_equal(v[f"{split}Xs"][()], s[f"{split}Xs"][()])
            np.testing.assert_array_equal(v[f"{split}Ys"][()], s[f"{split}Ys"][()])
    m = H.load_json(works["npz"] / "out.npz.manifest.json")
    assert sum(m["summary"]["splits"].values()) == converted
    assert m["summary"]["rotated"] == 5

    # A part moved away: verify of the virtual file fails, naming it.
    moved = tmp_path / "moved.h5"
    shutil.move(works["hdf5"] / "parts" / part_name("hdf5", 2), moved)
    res = run(["verify", virtual], expect_rc=66)
    H.assert_one_line_error(res, part_name("hdf5", 2), "missing")
    shutil.move(moved, works["hdf5"] / "parts" / part_name("hdf5", 2))
    run(["verify", virtual])
