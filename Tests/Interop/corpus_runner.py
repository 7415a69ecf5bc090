"""Shared by test_fidelity, test_truncation, test_bomb and test_animation: the image corpus and a CLI runner.

The release binary may be rebuilt while a long table runs ("Text file busy", or briefly missing):
`run_cli` retries the *start* of the process for a while in that case, never a run that started.
"""

from __future__ import annotations

import errno
import subprocess
import time
from pathlib import Path
from typing import Sequence

import interop_helpers as H

START_RETRY_SECONDS = 120


def run_cli(args: Sequence, timeout: float = 60, prefix: Sequence[str] = (), **kwargs) -> subprocess.CompletedProcess:
    """[*prefix, imgconv, *args] with captured text output; raises subprocess.TimeoutExpired."""
    cmd = [*prefix, str(H.binary_path()), *[str(a) for a in args]]
    deadline = time.monotonic() + START_RETRY_SECONDS
    while True:
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
            # behind a wrapper (/usr/bin/time) a failed exec is exit 126/127, not an OSError
            if prefix and res.returncode in (126, 127) and time.monotonic() < deadline:
                time.sleep(2)
                continue
            return res
        except OSError as e:
            if e.errno not in (errno.ETXTBSY, errno.ENOENT) or time.monotonic() > deadline:
                raise
            time.sleep(2)


CORPUS = ("pngsuite", "tiff", "jpeg", "webp", "gif", "generated", "bmp")
NOT_IMAGES_SUFFIXES = {".md", ".tsv", ".npy", ".py", ".txt", ".json"}


def corpus_files() -> list[Path]:
    """Every image file of Tests/Fixtures/{pngsuite,tiff,jpeg,webp,gif,generated,bmp} (READMEs, manifests,
    scripts and .npy arrays left out), in path order."""
    out = []
    for d in CORPUS:
        base = H.FIXTURES / d
        if base.is_dir():
            out += [p for p in base.rglob("*") if p.is_file() and p.suffix.lower() not in NOT_IMAGES_SUFFIXES
                    and p.name not in ("README", "LICENSE")]
    return sorted(out, key=rel_of)


def rel_of(p: Path) -> str:
    """Path relative to Tests/Fixtures, with '/'."""
    return p.relative_to(H.FIXTURES).as_posix()
