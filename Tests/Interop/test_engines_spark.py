"""Sharded conversion on Spark local[2,3] (examples/spark_shards.py).

Runs only when pyspark and Java are there (not in requirements-test.txt: pyspark installs about
490 MB, Java about 190 MB); it skips, saying which is missing, otherwise. The mixed dataset is
planned with --skip-bad --split --stratify --shuffle as 5 shards, one Spark task per shard. Shard
3 fails for real on every attempt (a folder stands where its part goes, so imgconv refuses to
replace it): the Spark job fails, the script's rerun of the missing shards fails again, and it
exits 1 naming them. With the folder gone, --rerun-missing runs exactly the shards merge --check
lists (3, and any the failed job cancelled), leaves the other parts untouched, merges and
verifies; the merge equals a one-machine run byte for byte.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import interop_helpers as H

SCRIPT = H.REPO_ROOT / "examples" / "spark_shards.py"
SHARDS = 5
FAILING = 3
OPTIONS = ["--skip-bad", "--split", "train=0.8,val=0.2", "--stratify", "--shuffle", "--seed", "9",
           "--size", "16x16", "--jobs", "1"]


def test_spark_local_failed_shard_rerun_merge(run, imgconv_bin, tmp_path):
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install pyspark; not a test requirement)")
    if shutil.which("java") is None:
        pytest.skip("no java on PATH (Debian: openjdk-17-jre-headless)")
    root = tmp_path / "root"
    converted = H.build_engine_dataset(root, n_regular=300)
    single = tmp_path / "single"
    single.mkdir()
    run(["to-npz", root, single / "out.npz", "-q", *OPTIONS])

    work = tmp_path / "work"
    parts = work / "parts"
    (parts / f"part-{FAILING:05d}-of-{SHARDS:05d}.npz").mkdir(parents=True)
    env = dict(os.environ, IMGCONV=str(imgconv_bin))
    cmd = [sys.executable, SCRIPT, root, work, "--shards", str(SHARDS), "--format", "npz"]
    res = subprocess.run([*cmd, "--", *OPTIONS], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "running shards: 0,1,2,3,4" in res.stdout.splitlines()
    assert f"shard {FAILING}/{SHARDS} exited 74" in res.stderr
    still = next(l for l in res.stderr.splitlines() if l.startswith("still missing: "))
    assert FAILING in [int(k) for k in still[len("still missing: "):].split(";")[0].split(",")]
    assert not (work / "out.npz").exists()

    (parts / f"part-{FAILING:05d}-of-{SHARDS:05d}.npz").rmdir()
    res = run(["merge", "--check", parts], expect_rc=66)
    missing = next(l for l in res.stdout.splitlines() if l.startswith("missing: "))[len("missing: "):]
    assert FAILING in [int(k) for k in missing.split(",")]
    kept = {p.name: os.stat(p).st_mtime_ns for p in parts.glob("part-*.npz")}
    assert len(kept) == SHARDS - len(missing.split(","))

    res = subprocess.run([*cmd, "--rerun-missing"], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"running shards: {missing}" in res.stdout.splitlines()
    assert "merged and verified" in res.stdout
    for name, t in kept.items():
        assert os.stat(parts / name).st_mtime_ns == t
    H.cmp_output(work / "out.npz", single / "out.npz")
    m = H.load_json(work / "out.npz.manifest.json")
    assert sum(m["summary"]["splits"].values()) == converted
