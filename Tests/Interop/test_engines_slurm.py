"""Sharded conversion on a real Slurm (examples/slurm_shards.sh).

The test starts its own one-node cluster from Debian's slurm-wlm: munged (as the munge user, with
a key made for the test), slurmctld -D and slurmd -D on a slurm.conf and cgroup.conf it writes in
a temporary folder, on free ports, and stops them at the end whatever happens. It needs root
(slurmd runs jobs as their owner) and skips, saying why, without it or without the packages
(scripts/setup.sh --test installs them).

The mixed dataset (corrupt files, a non-image, EXIF-rotated and gray images) is planned with
--skip-bad --split --stratify --shuffle as 5 shards and submitted as `sbatch --array=0-4` plus a
merge job `--dependency=afterok`. Task 3 fails for real: a folder stands where its part goes, so
its imgconv refuses to replace it (74); the merge job is cancelled, `merge --check` names shard 3,
`slurm_shards.sh rerun` submits `--array=3` alone and a new merge job, which merges and verifies;
the other parts are untouched and the merged .npz equals a one-machine run byte for byte.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import interop_helpers as H

SCRIPT = H.REPO_ROOT / "examples" / "slurm_shards.sh"
SHARDS = 5
FAILING = 3
OPTIONS = ["--skip-bad", "--split", "train=0.8,val=0.2", "--stratify", "--shuffle", "--seed", "8",
           "--size", "16x16", "--jobs", "1"]
PROGRAMS = ("munged", "mungekey", "setpriv", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol")


def free_ports(n: int) -> list:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Slurm:
    """A one-node Slurm of its own: munged, slurmctld, slurmd in the foreground, in folder d."""

    def __init__(self, d: Path):
        self.d = d
        self.procs = []
        self.env = dict(os.environ, SLURM_CONF=str(d / "slurm.conf"))

    def start(self) -> None:
        d = self.d
        munge = d / "munge"
        munge.mkdir()
        shutil.chown(munge, "munge", "munge")
        munge.chmod(0o755)   # munged refuses a socket folder that not everyone can enter
        as_munge = ["setpriv", "--reuid=munge", "--regid=munge", "--init-groups"]
        subprocess.run([*as_munge, "mungekey", "-c", "-k", str(munge / "munge.key")], check=True,
                       capture_output=True, timeout=30)
        self.spawn("munged", [*as_munge, "munged", "-F", f"--socket={munge}/sock", f"--key-file={munge}/munge.key",
                              f"--pid-file={munge}/pid", f"--log-file={munge}/log", f"--seed-file={munge}/seed"])
        host = socket.gethostname().split(".")[0]
        ctld_port, d_port = free_ports(2)
        (d / "state").mkdir()
        (d / "spool").mkdir()
        (d / "slurm.conf").write_text("\n".join([
            "ClusterName=imgconvtest",
            f"SlurmctldHost={host}(127.0.0.1)",   # no name lookup needed
            "SlurmUser=root",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={d_port}",
            "AuthType=auth/munge",
            f"AuthInfo=socket={munge}/sock",
            f"StateSaveLocation={d}/state",
            f"SlurmdSpoolDir={d}/spool",
            f"SlurmctldPidFile={d}/slurmctld.pid",
            f"SlurmdPidFile={d}/slurmd.pid",
            f"SlurmctldLogFile={d}/slurmctld.log",
            f"SlurmdLogFile={d}/slurmd.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "ReturnToService=2",
            "MpiDefault=none",
            # Array tasks start within a second instead of in waves 3 s apart.
            "SchedulerParameters=bf_interval=1,batch_sched_delay=0",
            f"NodeName={host} NodeAddr=127.0.0.1 CPUs=2 RealMemory=500 State=UNKNOWN",
            f"PartitionName=p Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        ]) + "\n")
        # slurmd reads cgroup.conf beside slurm.conf; no job is put in a cgroup here
        # (proctrack/linuxproc, task/none), so the default plugin choice is all it needs.
        (d / "cgroup.conf").write_text("CgroupPlugin=autodetect\n")
        self.spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(d / "slurm.conf")])
        self.spawn("slurmd", ["slurmd", "-D", "-f", str(d / "slurm.conf")])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for name, p in self.procs:
                assert p.poll() is None, f"{name} exited {p.returncode}:\n{self.logs()}"
            res = self.cmd(["sinfo", "-h", "-o", "%T"], check=False)
            if res.returncode == 0 and res.stdout.strip() == "idle":
                return
            time.sleep(0.1)
        raise AssertionError(f"the node never became idle:\n{self.logs()}")

    def spawn(self, name: str, argv: list) -> None:
        log = open(self.d / f"{name}.out", "wb")
        self.procs.append((name, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                                  stdin=subprocess.DEVNULL)))
        log.close()

    def cmd(self, argv: list, check: bool = True, timeout: float = 10) -> subprocess.CompletedProcess:
        # A client that cannot reach munge or slurmctld retries for minutes: bounded here.
        res = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=timeout)
        if check:
            assert res.returncode == 0, f"{argv} exited {res.returncode}: {res.stderr}"
        return res

    def wait_gone(self, *jobs: str, timeout: float = 120) -> None:
        """Waits until squeue no longer lists the jobs (finished, failed or cancelled)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.cmd(["squeue", "-h", "-j", ",".join(jobs)], check=False).stdout.strip():
                return
            time.sleep(0.2)
        raise AssertionError(f"jobs {jobs} still queued:\n{self.cmd(['squeue'], check=False).stdout}\n{self.logs()}")

    def states(self, job: str) -> dict:
        """{array task id or None: (state, exit code)} from scontrol (no accounting needed)."""
        out = self.cmd(["scontrol", "-o", "show", "job", job]).stdout
        found = {}
        for line in out.splitlines():
            task = re.search(r"\bArrayTaskId=(\d+)\b", line)
            state = re.search(r"\bJobState=(\S+)", line).group(1)
            code = re.search(r"\bExitCode=(\S+)", line).group(1)
            found[int(task.group(1)) if task else None] = (state, code)
        return found

    def logs(self) -> str:
        text = []
        for name in ("slurmctld.log", "slurmd.log", "munge/log", "slurmctld.out", "slurmd.out", "munged.out"):
            p = self.d / name
            if p.is_file():
                text.append(f"--- {name} ---\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(text)

    def stop(self) -> None:
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)


@pytest.fixture
def slurm():
    if os.geteuid() != 0:
        pytest.skip("the Slurm test starts slurmd, which needs root")
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if missing:
        pytest.skip(f"Slurm or munge is not installed (scripts/setup.sh --test installs them): no {', '.join(missing)}")
    try:
        pwd.getpwnam("munge")
    except KeyError:
        pytest.skip("no munge user (Debian's munge package creates it)")
    # Not under pytest's tmp_path: munged needs every folder above its socket open to everyone.
    d = Path(tempfile.mkdtemp(prefix="imgconv-slurm-"))
    d.chmod(0o755)
    cluster = Slurm(d)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(d, ignore_errors=True)


def job_ids(stdout: str) -> tuple:
    array = re.search(r"^array job (\d+)", stdout, re.M)
    merge = re.search(r"^merge job (\d+)", stdout, re.M)
    return (array.group(1) if array else None), merge.group(1)


def test_slurm_array_failed_task_rerun_merge(run, imgconv_bin, slurm, tmp_path):
    root = tmp_path / "root"
    converted = H.build_engine_dataset(root, n_regular=400)
    single = tmp_path / "single"
    single.mkdir()
    run(["to-npz", root, single / "out.npz", "-q", *OPTIONS])

    work = slurm.d / "work"   # where the jobs (run as root by slurmd) write
    parts = work / "parts"
    # A folder where shard 3's part goes: its imgconv refuses to replace it and exits 74.
    (parts / f"part-{FAILING:05d}-of-{SHARDS:05d}.npz").mkdir(parents=True)
    env = dict(slurm.env, IMGCONV=str(imgconv_bin))
    res = subprocess.run(["bash", SCRIPT, "submit", root, work, str(SHARDS), "npz", *OPTIONS],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    array, merge = job_ids(res.stdout)
    assert f"array job {array}: shards 0-4 of 5" in res.stdout
    slurm.wait_gone(array, merge)
    states = slurm.states(array)
    assert sorted(states) == list(range(SHARDS))
    for k, (state, code) in states.items():
        assert (state, code) == (("FAILED", "74:0") if k == FAILING else ("COMPLETED", "0:0")), (k, state, code)
    # The merge job never ran: afterok cannot be satisfied, so it was cancelled.
    assert slurm.states(merge)[None][0] == "CANCELLED"
    assert not (work / "out.npz").exists()
    log = (work / "logs" / f"shard-{array}_{FAILING}.out").read_text()
    assert "is a folder, not a regular file" in log

    (parts / f"part-{FAILING:05d}-of-{SHARDS:05d}.npz").rmdir()
    res = run(["merge", "--check", parts], expect_rc=66)
    assert f"missing: {FAILING}" in res.stdout.splitlines()
    kept = {k: os.stat(parts / f"part-{k:05d}-of-{SHARDS:05d}.npz").st_mtime_ns for k in range(SHARDS) if k != FAILING}

    res = subprocess.run(["bash", SCRIPT, "rerun", work, "npz"], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    rerun, merge = job_ids(res.stdout)
    assert f"array job {rerun}: shards {FAILING} of {SHARDS}" in res.stdout
    slurm.wait_gone(rerun, merge)
    assert slurm.states(rerun) == {FAILING: ("COMPLETED", "0:0")}   # that index alone
    assert slurm.states(merge)[None] == ("COMPLETED", "0:0"), (work / "logs" / f"merge-{merge}.out").read_text()
    for k, t in kept.items():
        assert os.stat(parts / f"part-{k:05d}-of-{SHARDS:05d}.npz").st_mtime_ns == t
    assert "ok" in (work / "logs" / f"merge-{merge}.out").read_text()   # the merge job's verify
    H.cmp_output(work / "out.npz", single / "out.npz")
    run(["verify", work / "out.npz"])
    m = H.load_json(work / "out.npz.manifest.json")
    assert sum(m["summary"]["splits"].values()) == converted

    # Nothing missing any more: rerun submits the merge job alone.
    res = subprocess.run(["bash", SCRIPT, "rerun", work, "npz"], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0 and "no shard is missing" in res.stdout, res.stdout + res.stderr
    none, merge = job_ids(res.stdout)
    assert none is None
    slurm.wait_gone(merge)
    assert slurm.states(merge)[None] == ("COMPLETED", "0:0")
    H.cmp_output(work / "out.npz", single / "out.npz")
