"""Regression tests for every input a fuzz target ever crashed on (Tests/Fixtures/crashers/<target>/,
Fuzz/README.md): each goes through the CLI the ways a user could meet it (images converted, containers
inspected, verified and converted, a manifest beside a container verified, a CSV list converted) and
must end with a documented exit status: no signal, no internal error, no sanitizer report.

The same files are replayed through their fuzz targets by `scripts/fuzz.sh` (and `--replay`), and
through an AddressSanitizer build of the CLI by `scripts/sanitize.sh`.
"""

from __future__ import annotations

import pytest

from crasher_replay import TARGETS, crasher_files, replay

CASES = crasher_files()


def test_crasher_folders_are_fuzz_targets():
    unknown = sorted({t for t, _ in CASES} - set(TARGETS))
    assert not unknown, f"Tests/Fixtures/crashers/ folders that are not fuzz targets: {unknown}"


@pytest.mark.parametrize("target,path", CASES or [pytest.param(None, None, marks=pytest.mark.skip("no crashers saved"))],
                         ids=[f"{t}/{p.name}" for t, p in CASES] or None)
def test_crasher_survives(imgconv_bin, tmp_path, target, path):
    problems = replay(imgconv_bin, target, path, tmp_path)
    assert not problems, "\n".join(problems)
