#!/usr/bin/env python3
"""imgconv past one machine, on Dask: plan, one task per shard, merge --check, rerun the missing
shards, merge, verify.

    python examples/dask_shards.py ROOT WORK --shards 5 --format npz -- --skip-bad --shuffle --seed 7
    python examples/dask_shards.py ROOT WORK --shards 5 --format npz --rerun-missing

WORK gets plan.json, parts/ (one part per shard) and the merged output (out.npz, out.h5, or the
folder out/ for npy and idx). Everything after `--` is passed to `imgconv plan` (the conversion
options). Without --scheduler a LocalCluster of --workers processes runs on this machine; with
--scheduler tcp://HOST:8786 the shards run on that cluster, whose workers must see ROOT and WORK at
the same paths. The imgconv binary is $IMGCONV, else `imgconv` on PATH.

Each shard is one task (`client.map` over the shard indices, `pure=False`, `retries`): a shard
whose command fails is retried by Dask. A shard that is run twice (a retry, or Dask re-running a
finished task whose worker died) is harmless: a committed part is "done already". When the
retries are spent, `imgconv merge --check` names the shards without a part and only those are
submitted again, once; `--rerun-missing` does just that for an earlier run (plan.json kept).
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


def run_shard(k: int, n: int, fmt: str, plan: str, parts: str, prefix: tuple = ()) -> int:
    """Converts shard k of n (runs on a worker). Raises when the command fails, so that Dask
    retries it. `prefix` is put before the command (a wrapper such as `nice`, or a test's)."""
    cmd = [*prefix, imgconv(), COMMANDS[fmt], "--plan", plan, "--shard", f"{k}/{n}", parts, "-q"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"shard {k}/{n} exited {res.returncode}: {res.stderr.strip()}")
    return k


def run_shards(client, shards: list, n: int, fmt: str, plan: Path, parts: Path, retries: int = 2,
               prefixes: dict | None = None) -> dict:
    """Submits one task per shard and waits for all; returns {shard: error} for the failed ones."""
    prefixes = prefixes or {}
    futures = client.map(run_shard, shards, [n] * len(shards), [fmt] * len(shards),
                         [str(plan)] * len(shards), [str(parts)] * len(shards),
                         [tuple(prefixes.get(k, ())) for k in shards], pure=False, retries=retries)
    from distributed import wait
    wait(futures)
    failed = {}
    for k, fut in zip(shards, futures):
        if fut.status != "finished":
            failed[k] = fut.exception()
    return failed


def missing_shards(parts: Path) -> list:
    """The shards `imgconv merge --check` lists as missing (none when it exits 0)."""
    res = subprocess.run([imgconv(), "merge", "--check", str(parts)], capture_output=True, text=True)
    if res.returncode == 0:
        return []
    if res.returncode != 66:
        raise RuntimeError(f"merge --check exited {res.returncode}: {res.stderr.strip()}")
    line = next(l for l in res.stdout.splitlines() if l.startswith("missing: "))
    return [int(k) for k in line[len("missing: "):].split(",")]


def make_plan(root: Path, work: Path, n: int, options: list) -> Path:
    plan = work / "plan.json"
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run([imgconv(), "plan", str(root), *options, "--shards", str(n), "-o", str(plan), "-q"],
                   check=True)
    return plan


def merge_and_verify(work: Path, fmt: str) -> Path:
    out = work / OUTPUTS[fmt]
    subprocess.run([imgconv(), "merge", str(work / "parts"), str(out), "-q"], check=True)
    subprocess.run([imgconv(), "verify", str(out)], check=True)
    return out


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
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--scheduler", help="address of a running Dask scheduler (default: a LocalCluster)")
    ap.add_argument("--rerun-missing", action="store_true",
                    help="keep WORK/plan.json and the parts; run only the shards merge --check lists")
    args = ap.parse_args(argv)

    from distributed import Client, LocalCluster
    if args.scheduler:
        cluster, client = None, Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        parts = args.work / "parts"
        plan = args.work / "plan.json"
        if args.rerun_missing:
            todo = missing_shards(parts)
        else:
            plan = make_plan(args.root, args.work, args.shards, options)
            todo = list(range(args.shards))
        print(f"running shards: {','.join(map(str, todo)) or 'none'}", flush=True)
        failed = run_shards(client, todo, args.shards, args.format, plan, parts, args.retries)
        for k, err in sorted(failed.items()):
            print(f"shard {k} failed: {err}", file=sys.stderr)
        missing = missing_shards(parts)
        if missing:
            print(f"rerunning missing shards: {','.join(map(str, missing))}", flush=True)
            run_shards(client, missing, args.shards, args.format, plan, parts, args.retries)
            missing = missing_shards(parts)
        if missing:
            print(f"still missing: {','.join(map(str, missing))}; run again with --rerun-missing",
                  file=sys.stderr)
            return 1
        out = merge_and_verify(args.work, args.format)
        print(f"merged and verified: {out}")
        return 0
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    sys.exit(main())
