"""The Kubernetes recipe (examples/k8s-*.yaml), without a cluster: no Kubernetes runs here.

The three Jobs are read as YAML and their fields checked (an Indexed Job whose completions are the
plan's shard count, restartPolicy Never with backoffLimitPerIndex, one shared volume at the same
path in every pod); then every container's own command is run by sh with the env the Job gives
it (ROOT, WORK and IMGCONV pointed at this test's folders and binary) and, for the Indexed Job,
JOB_COMPLETION_INDEX = 0..N-1 as Kubernetes sets it. A lost pod (shard 3 never run) makes the
merge Job's command fail naming it; applying the Indexed Job again runs every index, the done
ones exit at once, and the merge Job's command then merges and verifies an .npz equal to a
one-machine run with the plan's options.
"""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest

import interop_helpers as H

EXAMPLES = H.REPO_ROOT / "examples"
FAILING = 3


def load(name: str) -> dict:
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load((EXAMPLES / name).read_text())
    assert doc["apiVersion"] == "batch/v1" and doc["kind"] == "Job"
    pod = doc["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "imgconv-data"}}]
    (container,) = pod["containers"]
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert container["command"][:2] == ["sh", "-c"] and len(container["command"]) == 3
    return doc


def container_env(doc: dict) -> dict:
    return {e["name"]: e["value"] for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]}


def run_container(doc: dict, overrides: dict, index: int | None = None) -> subprocess.CompletedProcess:
    """Runs the container's command as its pod would: sh -c, the Job's env (paths replaced)."""
    env = dict(os.environ, **container_env(doc))
    for name, value in overrides.items():
        if name in env:
            env[name] = str(value)
    if index is not None:
        env["JOB_COMPLETION_INDEX"] = str(index)
    return subprocess.run(doc["spec"]["template"]["spec"]["containers"][0]["command"], capture_output=True,
                          text=True, env=env, timeout=120)


def test_k8s_jobs_fields_and_commands(run, imgconv_bin, tmp_path):
    plan_job, shards_job, merge_job = (load(f"k8s-{n}-job.yaml") for n in ("plan", "indexed", "merge"))
    spec = shards_job["spec"]
    shards = int(container_env(shards_job)["SHARDS"])
    assert spec["completionMode"] == "Indexed" and spec["completions"] == shards
    assert 1 <= spec["parallelism"] <= shards
    assert spec["backoffLimitPerIndex"] >= 1
    assert int(container_env(plan_job)["SHARDS"]) == shards
    assert "$JOB_COMPLETION_INDEX/$SHARDS" in spec["template"]["spec"]["containers"][0]["command"][2]
    for doc in (plan_job, shards_job, merge_job):
        assert container_env(doc)["WORK"].startswith("/data/")
    assert container_env(plan_job)["ROOT"].startswith("/data/")

    root, work = tmp_path / "images", tmp_path / "work"
    converted = H.build_engine_dataset(root, n_regular=60)
    where = {"ROOT": root, "WORK": work, "IMGCONV": imgconv_bin}
    res = run_container(plan_job, where)
    assert res.returncode == 0, res.stderr
    assert H.load_json(work / "plan.json")["shards"] == shards

    # Every pod but index 3 (lost): the merge Job fails, naming it.
    for k in range(shards):
        if k != FAILING:
            res = run_container(shards_job, where, index=k)
            assert res.returncode == 0, res.stderr
    res = run_container(merge_job, where)
    assert res.returncode == 66 and f"missing: {FAILING}" in res.stdout.splitlines(), res.stdout + res.stderr
    assert not (work / "out.npz").exists()

    # The Indexed Job applied again: the done shards exit at once, shard 3 converts.
    for k in range(shards):
        res = run_container(shards_job, where, index=k)
        assert res.returncode == 0, res.stderr
        assert ("done already" in res.stdout) == (k != FAILING), (k, res.stdout)
    res = run_container(merge_job, where)
    assert res.returncode == 0, res.stdout + res.stderr

    # The same as one machine with the plan's options (those between "$ROOT" and --shards).
    words = shlex.split(plan_job["spec"]["template"]["spec"]["containers"][0]["command"][2])
    options = words[words.index("$ROOT") + 1:words.index("--shards")]
    (tmp_path / "single").mkdir()
    run(["to-npz", root, tmp_path / "single" / "out.npz", "-q", *options])
    H.cmp_output(work / "out.npz", tmp_path / "single" / "out.npz")
    assert sum(H.load_json(work / "out.npz.manifest.json")["summary"]["splits"].values()) == converted
