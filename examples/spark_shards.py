#!/usr/bin/env python3
"""imgconv past one machine, on Spark: plan, one task per shard, merge --check, rerun the missing
shards, merge, verify.

    python examples/spark_shards.py ROOT WORK --shards 5 --format npz -- --skip-bad --shuffle --seed 7
    python examples/spark_shards.py ROOT WORK --shards 5 --format npz --rerun-missing

WORK gets plan.json, parts/ and the merged output (out.npz, out.h5, or the folder out/ for npy and
idx); everything after `--` goes to `imgconv plan`. The shards are `sc.parallelize(shards,
len(shards)).map(run_shard)`: one partition, so one task, per shard. --master defaults to
local[2,3] (2 threads, 3 attempts a task: plain local[N] never retries a failed task); on a
cluster pass its master URL (or run under spark-submit) and set spark.task.maxFailures; every
executor must see ROOT and WORK at the same paths, and the imgconv binary ($IMGCONV, else
`imgconv` on PATH).

A shard that fails on every attempt fails the Spark job, which cancels the tasks still running or
waiting: `imgconv merge --check` then names every shard without a part, and only those are
submitted again, once. --rerun-missing does just that for an earlier run (plan.json kept).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

COMMANDS = {"npz": "to-npz", "npy": "to-npy", "hdf5": "to-hdf5", "idx": "to-idx"}
OUTPUTS = {"npz": "out.npz", "npy": "out", "hdf5": "out.h5", "idx": "out"}


def imgconv() -> str:
    return os.environ.get("IMGCONV") or shutil.which("imgconv") or "imgconv"


def shard_runner(n: int, fmt: str, plan: str, parts: str, binary: str):
    def run_shard(k: int) -> int:
        """Converts shard k (on an executor); raises when the command fails, so Spark retries it."""
        cmd = [binary, COMMANDS[fmt], "--plan", plan, "--shard", f"{k}/{n}", parts, "-q"]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"shard {k}/{n} exited {res.returncode}: {res.stderr.strip()}")
        return k
    return run_shard


def run_shards(sc, shards: list, n: int, fmt: str, plan: Path, parts: Path) -> bool:
    """Runs the shards as one Spark job; False when it failed (some shards then have no part)."""
    runner = shard_runner(n, fmt, str(plan), str(parts), imgconv())
    try:
        sc.parallelize(shards, len(shards)).map(runner).collect()
        return True
    except Exception as err:   # py4j's Py4JJavaError: the task's last failure is in its text
        reason = next((l for l in str(err).splitlines() if "RuntimeError: shard" in l), str(err).splitlines()[0])
        print(f"spark job failed: {reason.strip()}", file=sys.stderr)
        return False


def missing_shards(parts: Path) -> list:
    """The shards `imgconv merge --check` lists as missing (none when it exits 0)."""
    res = subprocess.run([imgconv(), "merge", "--check", str(parts)], capture_output=True, text=True)
    if res.returncode == 0:
        return []
    if res.returncode != 66:
        raise RuntimeError(f"merge --check exited {res.returncode}: {res.stderr.strip()}")
    line = next(l for l in res.stdout.splitlines() if l.startswith("missing: "))
    return [int(k) for k in line[len("missing: "):].split(",")]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = []
    if "--" in argv:
        options = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("work", type=Path)
    ap.add_argument("--shards", type=int, required=True)
    ap.add_argument("--format", choices=sorted(COMMANDS), default="npz")
    ap.add_argument("--master", default="local[2,3]")
    ap.add_argument("--rerun-missing", action="store_true",
                    help="keep WORK/plan.json and the parts; run only the shards merge --check lists")
    args = ap.parse_args(argv)
    work = args.work.resolve()
    plan, parts = work / "plan.json", work / "parts"
    if args.rerun_missing:
        todo = missing_shards(parts)
    else:
        work.mkdir(parents=True, exist_ok=True)
        subprocess.run([imgconv(), "plan", str(args.root), *options, "--shards", str(args.shards), "-o", str(plan),
                        "-q"], check=True)
        todo = list(range(args.shards))
    print(f"running shards: {','.join(map(str, todo)) or 'none'}", flush=True)

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)   # executors run this Python
    from pyspark.sql import SparkSession
    builder = SparkSession.builder.master(args.master).appName("imgconv-shards").config("spark.ui.enabled", "false")
    if args.master.startswith("local"):
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        if todo:
            run_shards(spark.sparkContext, todo, args.shards, args.format, plan, parts)
        missing = missing_shards(parts)
        if missing:
            print(f"rerunning missing shards: {','.join(map(str, missing))}", flush=True)
            run_shards(spark.sparkContext, missing, args.shards, args.format, plan, parts)
            missing = missing_shards(parts)
    finally:
        spark.stop()
    if missing:
        print(f"still missing: {','.join(map(str, missing))}; run again with --rerun-missing", file=sys.stderr)
        return 1
    out = work / OUTPUTS[args.format]
    subprocess.run([imgconv(), "merge", str(parts), str(out), "-q"], check=True)
    subprocess.run([imgconv(), "verify", str(out)], check=True)
    print(f"merged and verified: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
