"""The host's memory and descriptors (issue #13, item 3): a run that does not fit the process's
limits stops with exit 71 (EX_OSERR) and one stderr line with the figures; it never traps (a
failed Swift allocation is a fatal error, a thread that cannot start used to hang the pipeline,
libdispatch aborted without descriptors), never reports a valid image as corrupt, never lets
--skip-bad drop valid images, leaves an earlier output byte-identical and no temporary file.

The limits are relative to what the binary needs, not to the machine: `address_space_floor`
finds (once per session, by bisection) the smallest `ulimit -v` under which a tiny conversion
succeeds, and the tests set limits a little below or above that, with images sized so that the
limit bites.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

import interop_helpers as H

EX_OSERR = 71
MIB = 1 << 20
TEMP_RE = re.compile(r"^\..+\.imgconv-\d+-\d+\.tmp$")
# scripts/sanitize.sh runs the interop tests on its AddressSanitizer build too: ASan reserves
# terabytes of address space, so address-space limits mean nothing there.
SANITIZED = bool(os.environ.get("IMGCONV_SANITIZED"))
pytestmark = pytest.mark.skipif(SANITIZED, reason="ASan reserves terabytes of address space")


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------

def limits(address_space: int | None = None, files: int | None = None):
    def apply():
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        if files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
    return apply


def run(args, address_space=None, files=None, timeout=60) -> subprocess.CompletedProcess:
    res = subprocess.run([str(H.binary_path()), *[str(a) for a in args]], capture_output=True,
                         timeout=timeout, preexec_fn=limits(address_space, files))
    res.stdout = res.stdout.decode("utf-8", "replace")
    res.stderr = res.stderr.decode("utf-8", "replace")
    return res


def no_trap(res) -> None:
    assert res.returncode >= 0, f"killed by signal {-res.returncode}\n{res.stderr[-3000:]}"
    assert res.returncode not in (128 + signal.SIGILL, 128 + signal.SIGABRT, 128 + signal.SIGSEGV,
                                  128 + signal.SIGTRAP), f"exit {res.returncode}\n{res.stderr[-3000:]}"
    for marker in ("Fatal error", "Backtracing", "Program crashed", "Illegal instruction", "Segmentation"):
        assert marker not in res.stderr, f"{marker!r} on stderr:\n{res.stderr[-3000:]}"


def out_of_resources(res, *needles: str) -> str:
    """Exit 71 and one line naming the reason (warnings before it are allowed)."""
    no_trap(res)
    assert res.returncode == EX_OSERR, f"exit {res.returncode}, want 71\n{res.stderr[-3000:]}"
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("imgconv: warning:")]
    assert len(lines) == 1, f"expected one error line:\n{res.stderr[-3000:]}"
    line = lines[0]
    assert line.startswith("imgconv: out of resources: "), line
    assert "corrupt" not in line, line
    for n in needles:
        assert n in line, f"{n!r} not in {line!r}"
    return line


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder, hidden ones included, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*") if TEMP_RE.match(p.name) or "imgconv" in p.name)


OUTPUTS = {"to-npz": "o.npz", "to-h5": "o.h5", "to-idx": "o"}


def earlier_output(sub: str, folder: Path, small_root: Path) -> Path:
    """An earlier output of `sub` at folder/<name>, made from a small dataset without limits."""
    folder.mkdir(exist_ok=True)
    out = folder / OUTPUTS[sub]
    res = run([sub, small_root, out, "-q"])
    assert res.returncode == 0, res.stderr
    return out


def gradient(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth RGB image: a few KiB as PNG, h*w*3 bytes decoded."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x + seed) % 256, (y * 3) % 256, (x ^ y) % 256], -1).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    from PIL import Image
    base = tmp_path_factory.mktemp("memory")
    rng = np.random.default_rng(13)
    small = base / "small"
    for k in range(4):
        (small / "ab"[k % 2]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(small / "ab"[k % 2] / f"{k}.png")
    many = base / "many"   # 48 noise images of 64x64: several compressed chunks, a few threads' work
    for k in range(48):
        (many / "ab"[k % 2]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(many / "ab"[k % 2] / f"{k:03d}.png")
    big = base / "big"     # 4 images of 3000x3000 RGB: 27 MB each decoded, a few KiB each on disk
    for k in range(4):
        (big / "ab"[k % 2]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(gradient(3000, 3000, k)).save(big / "ab"[k % 2] / f"{k}.png")
    return {"small": small, "many": many, "big": big, "base": base}


@pytest.fixture(scope="module")
def address_space_floor(imgconv_bin, datasets, tmp_path_factory) -> int:
    """The smallest RLIMIT_AS (to 2 MiB) under which a tiny conversion succeeds: what the binary
    maps at start plus the least any run asks for."""
    out = tmp_path_factory.mktemp("floor") / "o.npz"
    lo, hi = 16 * MIB, 4096 * MIB
    if run(["to-npz", datasets["small"], out, "-q"], address_space=hi).returncode != 0:
        pytest.skip("the binary does not run under a 4 GiB address-space limit")
    while hi - lo > 2 * MIB:
        mid = (lo + hi) // 2
        res = run(["to-npz", datasets["small"], out, "-q"], address_space=mid)
        no_trap(res)
        assert res.returncode in (0, EX_OSERR, 127), f"ulimit -v {mid >> 10}: exit {res.returncode}\n{res.stderr}"
        if res.returncode == 0:
            hi = mid
        else:
            lo = mid
    print(f"\naddress-space floor: {hi / MIB:.0f} MiB")
    return hi


# --------------------------------------------------------------------------------------------------
# Out of memory
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sub", ["to-npz", "to-h5", "to-idx"])
def test_a_limit_below_what_any_run_needs_is_71_before_any_work(datasets, address_space_floor, tmp_path, sub):
    """Just under the floor the run is refused up front with the figures (it used to hang waiting
    for worker threads that could not start, or abort on a failed allocation)."""
    out = earlier_output(sub, tmp_path / "out", datasets["small"])
    before = snapshot(out.parent)
    res = run([sub, datasets["many"], out, "-q"], address_space=address_space_floor - 16 * MIB, timeout=30)
    line = out_of_resources(res, "out of memory", "ulimit -v", "MiB")
    print(f"\n{sub}: {line}")
    assert snapshot(out.parent) == before
    assert not temporaries(out.parent)


@pytest.mark.parametrize("extra", [[], ["--skip-bad"], ["--jobs", "1"], ["--jobs", "2"], ["--skip-bad", "--shuffle", "--seed", "1"],
                                   ["--size", "2500x2500", "--jobs", "2"]],
                         ids=["plain", "skip-bad", "jobs1", "jobs2", "two-pass", "size"])
@pytest.mark.parametrize("sub", ["to-npz", "to-h5", "to-idx"])
def test_images_too_large_for_the_limit_are_71_and_never_skipped(datasets, address_space_floor, tmp_path, sub, extra):
    """Images of 27 MB each under a limit that leaves about 40 MiB: out of resources (71) naming
    the figures, whatever --skip-bad says (before: 'corrupt input: libpng: out of memory', or a
    fatal error, and --skip-bad exited 0 with images missing)."""
    out = earlier_output(sub, tmp_path / "out", datasets["small"])
    before = snapshot(out.parent)
    res = run([sub, datasets["big"], out, "-q", *extra], address_space=address_space_floor + 40 * MIB)
    line = out_of_resources(res, "need", "MiB")
    assert "ulimit -v" in line or "address-space" in line, line
    assert snapshot(out.parent) == before
    assert not temporaries(out.parent)


@pytest.mark.parametrize("sub", ["to-npz", "to-h5"])
def test_compress_under_a_memory_limit_fails_cleanly_every_time(datasets, address_space_floor, tmp_path, sub):
    """--compress aborted or crashed in half the runs under a memory limit, leaving its temporary
    file: six runs, each 71 with one line, the earlier output intact, nothing left."""
    out = earlier_output(sub, tmp_path / "out", datasets["small"])
    before = snapshot(out.parent)
    for attempt in range(6):
        res = run([sub, datasets["big"], out, "-q", "--compress", "--jobs", "2"],
                  address_space=address_space_floor + 40 * MIB)
        out_of_resources(res, "MiB")
        assert snapshot(out.parent) == before, f"run {attempt}"
        assert not temporaries(out.parent), f"run {attempt}"


@pytest.mark.parametrize("sub,extra", [("to-npz", []), ("to-npz", ["--compress"]), ("to-h5", ["--compress"]),
                                       ("to-idx", [])])
def test_a_limit_that_fits_gives_the_same_output_as_none(datasets, address_space_floor, tmp_path, sub, extra):
    """Under a limit with room for one image at a time the run goes on with fewer jobs and images
    in flight: the output (and manifest) are byte-identical to a run without any limit."""
    free, limited = tmp_path / "free", tmp_path / "limited"
    free.mkdir()
    limited.mkdir()
    args = lambda folder: [sub, datasets["big"], folder / OUTPUTS[sub], "-q", "--jobs", "2", *extra]
    ref = run(args(free), timeout=120)
    assert ref.returncode == 0, ref.stderr
    res = run(args(limited), address_space=address_space_floor + 400 * MIB, timeout=120)
    no_trap(res)
    assert res.returncode == 0, res.stderr
    assert snapshot(limited) == snapshot(free)


def test_a_sweep_of_limits_never_traps_hangs_or_leaves_a_temporary(datasets, address_space_floor, tmp_path):
    """Limits from well below to above the floor, with threads and compression: every run ends in
    time with 0 (and the full output) or 71 (and the earlier output), nothing else."""
    out = earlier_output("to-npz", tmp_path / "out", datasets["small"])
    before = snapshot(out.parent)
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    args = ["-q", "--compress", "--jobs", "4"]
    assert run(["to-npz", datasets["many"], ref_dir / "o.npz", *args]).returncode == 0
    ref = snapshot(ref_dir)
    seen = set()
    for delta in range(-48, 49, 8):
        res = run(["to-npz", datasets["many"], out, *args], address_space=address_space_floor + delta * MIB, timeout=30)
        no_trap(res)
        assert res.returncode in (0, EX_OSERR), f"ulimit -v floor{delta:+d} MiB: exit {res.returncode}\n{res.stderr}"
        seen.add(res.returncode)
        if res.returncode == 0:
            assert snapshot(out.parent) == ref
            before = ref
        else:
            out_of_resources(res, "MiB")
            assert snapshot(out.parent) == before
        assert not temporaries(out.parent)
    assert seen == {0, EX_OSERR}, f"the sweep should cross the floor: {seen}"


# --------------------------------------------------------------------------------------------------
# Out of descriptors
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sub,extra", [("to-npz", ["--skip-bad"]), ("to-npz", ["--compress"]),
                                       ("to-h5", ["--compress"]), ("to-h5", ["--skip-bad"]), ("to-idx", [])])
@pytest.mark.parametrize("files", [4, 5, 6, 7, 8])
def test_few_descriptors_are_71_or_the_full_output_never_a_trap(datasets, tmp_path, sub, extra, files):
    """With 4 to 8 descriptors a run either finishes with every image or stops with 71 ('Too many
    open files'); --skip-bad never drops images for it. Before, to-h5 --compress died of SIGILL in
    libdispatch (its thread-pool monitor could not open /proc) and left its temporary file."""
    out = earlier_output(sub, tmp_path / "out", datasets["small"])
    before = snapshot(out.parent)
    res = run([sub, datasets["many"], out, "-q", "--jobs", "2", *extra], files=files, timeout=30)
    no_trap(res)
    assert res.returncode in (0, EX_OSERR), f"exit {res.returncode}\n{res.stderr}"
    if res.returncode == EX_OSERR:
        out_of_resources(res, "Too many open files")
        assert snapshot(out.parent) == before
    else:
        manifest = H.load_json(out / "manifest.json" if sub == "to-idx" else Path(f"{out}.manifest.json"))
        assert manifest["summary"]["images"] == 48 and manifest["summary"]["skipped"] == 0
    assert not temporaries(out.parent)
