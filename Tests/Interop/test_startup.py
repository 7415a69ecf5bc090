"""imgconv opens libhdf5, libavif and libheif when a run first needs them, not when it starts.

With what they bring (libcurl, GnuTLS and Kerberos for libhdf5; dav1d, aom, rav1e, SVT-AV1 and
abseil for libavif; x265 and libde265 for libheif) they were about 60 of the 92 libraries every
run loaded, half of its start-up CPU time, before the first image. The dynamic loader's own log
(LD_DEBUG=files) says which libraries a run opened.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess

import interop_helpers as H
import pytest

# A library of each lazily opened group, and one of their dependencies.
HDF5 = ("libhdf5", "libcurl")
AVIF = ("libavif", "libdav1d")
HEIF = ("libheif", "libde265")


def opened_libraries(args, tmp_path, limit=None) -> set[str]:
    """The base names (up to '.so') of the shared libraries the run opened."""
    log = tmp_path / "ld"
    env = dict(os.environ, LD_DEBUG="files", LD_DEBUG_OUTPUT=str(log))
    preexec = None
    if limit:
        preexec = lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # noqa: E731
    res = subprocess.run([str(H.binary_path())] + [str(a) for a in args], capture_output=True, text=True,
                         env=env, timeout=120, preexec_fn=preexec)
    assert res.returncode == 0, res.stderr
    names = set()
    for f in tmp_path.glob("ld.*"):
        for m in re.finditer(r"\bfile=(?:\S*/)?([^/\s\[]+?)\.so", f.read_text(errors="replace")):
            names.add(m.group(1))
        f.unlink()
    assert "libc" in names, "the loader's log lists no library"
    return names


def assert_opened(names: set[str], groups, opened: bool):
    for group in groups:
        for lib in group:  # libhdf5 is libhdf5_serial on Debian
            found = any(n == lib or n.startswith(lib + "_") for n in names)
            assert found == opened, f"{lib} {'not ' if opened else ''}opened: {sorted(names)}"


@pytest.mark.skipif(H.SANITIZED, reason="the sanitizer build's runtime loads its own libraries")
def test_only_the_libraries_a_run_needs_are_opened(tmp_path):
    assert_opened(opened_libraries(["--version"], tmp_path), (HDF5, AVIF, HEIF), False)

    out = tmp_path / "s.npz"
    names = opened_libraries(["to-npz", H.SAMPLES, out, "-q"], tmp_path)
    assert {"libturbojpeg", "libpng16"} <= names
    assert_opened(names, (HDF5, AVIF, HEIF), False)

    h5 = tmp_path / "s.h5"
    names = opened_libraries(["convert", out, h5, "-q"], tmp_path)
    assert_opened(names, (HDF5,), True)
    assert_opened(names, (AVIF, HEIF), False)
    subprocess.run(["h5dump", "-H", str(h5)], check=True, capture_output=True)

    root = tmp_path / "avif"
    (root / "a").mkdir(parents=True)
    shutil.copy(H.FIXTURES / "avif" / "libavif" / "kodim03_yuv420_8bpc.avif", root / "a")
    names = opened_libraries(["to-npz", root, tmp_path / "a.npz", "-q"], tmp_path)
    assert_opened(names, (AVIF,), True)
    assert_opened(names, (HDF5, HEIF), False)
    assert H.load_npz(tmp_path / "a.npz")["trainXs"].shape == (1, 512, 768, 3)


@pytest.mark.skipif(H.SANITIZED, reason="the sanitizer build's runtime loads its own libraries")
def test_under_an_address_space_limit_they_are_opened_first(tmp_path):
    """The memory ceiling is measured at start (limit less what is mapped): the libraries are
    mapped before that, so that the ceiling counts them."""
    names = opened_libraries(["to-npz", H.SAMPLES, tmp_path / "s.npz", "-q"], tmp_path, limit=2 << 30)
    assert_opened(names, (HDF5, AVIF, HEIF), True)
