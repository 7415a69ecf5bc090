"""ZIP64: an .npz whose trainXs member is over 4 GiB, written by the streaming writer through the
real CLI, reads back in numpy (its last image exact), and the writer's peak RSS stays < 512 MiB."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import zipfile

import numpy as np
import pytest
from PIL import Image


SIDE = 1024               # 1024 x 1024 RGBA = 4 MiB per image
COUNT = 1100              # 4.3 GiB of pixels: over the 4 GiB (0xFFFFFFFF) ZIP limit


def test_member_over_4gib(tmp_path, imgconv_bin):
    free = shutil.disk_usage(tmp_path).free
    if free < 10 * 1024**3:
        print(f"NOTICE: ZIP64 test skipped: only {free / 1024**3:.1f} GB free under {tmp_path}, 10 GB needed")
        pytest.skip("under 10 GB of free disk")
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    rng = np.random.default_rng(7)
    plain = np.zeros((SIDE, SIDE, 4), np.uint8)
    plain[..., 3] = 255
    Image.fromarray(plain, "RGBA").save(root / "a" / "base.png")
    # The same small file many times over (hard links), then one distinct image that sorts last.
    for i in range(COUNT - 1):
        os.link(root / "a" / "base.png", root / "a" / f"img{i:05d}.png")
    os.unlink(root / "a" / "base.png")
    last = rng.integers(0, 256, (SIDE, SIDE, 4), dtype=np.uint8)
    Image.fromarray(last, "RGBA").save(root / "a" / "zzz-last.png")

    out = tmp_path / "big.npz"
    # The peak of this one process: /usr/bin/time's, since RUSAGE_CHILDREN keeps the largest
    # child this test session has ever waited for (a tracer, a generator) and cannot be reset.
    report = tmp_path / "time.txt"
    timer = ["/usr/bin/time", "-f", "%M", "-o", str(report)] if os.path.exists("/usr/bin/time") else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(timer + [str(imgconv_bin), "to-npz", str(root), str(out), "--color", "rgba"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    if timer:
        peak_kib = int(report.read_text().split()[-1])
    else:
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        assert peak_kib >= before
    print(f"imgconv peak RSS {peak_kib / 1024:.0f} MiB for a {out.stat().st_size / 1024**3:.2f} GiB npz")
    assert peak_kib < 512 * 1024, f"peak RSS {peak_kib} KiB"

    with zipfile.ZipFile(out) as z:
        info = z.getinfo("trainXs.npy")
        assert info.file_size > 0xFFFFFFFF
    data = np.load(out)
    X = data["trainXs"]
    assert X.shape == (COUNT, SIDE, SIDE, 4)
    assert np.array_equal(X[-1], last)
    assert np.array_equal(X[0], plain)
    del X
    assert list(data["trainYs"][-3:]) == [0, 0, 0]
