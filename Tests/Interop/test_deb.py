"""The Debian package of scripts/package-deb.sh (issue 17, item 3).

The script builds imgconv with --static-swift-stdlib in .build/, as scripts/setup.sh does (so after
the set-up nothing is rebuilt but the man page tool, and it packs in well under a minute), and packs it. Here:
lintian reports no error and no warning (its info tags are printed); the package
installs with `apt-get install ./imgconv_*.deb`, its Depends pulling in nothing missing; the
installed /usr/bin/imgconv, run with an empty environment (`env -i`, no LD_LIBRARY_PATH), links no
library of the Swift toolchain, converts samples/ and one file of every other format it reads,
writes every container, and verifies them against their sources, with outputs byte-identical to
the repository's own release binary; the man page and the bash, zsh and fish completions are where
man and the shells look for them. The package is removed at the end, whatever happened.
Installing needs root and apt-get (CI runs as root); without them that test is skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import interop_helpers as H

SCRIPT = H.REPO_ROOT / "scripts" / "package-deb.sh"
INSTALLED = Path("/usr/bin/imgconv")
# One file of each format samples/ lacks, all decoded exactly as Pillow does (fidelity tables).
OTHER_FORMATS = {
    "avif": "avif/libavif/extended_pixi.avif",
    "heif": "heic/pillow-heif/heif/L_10__29x100.heif",
    "webp": "webp/libwebp-test-data/lossless_vec_1_4.webp",
    "gif": "gif/pillow/transparent_dispose.gif",
    "bmp": "bmp/bmpsuite/g/pal8.bmp",
}
# Where the Swift toolchain keeps its runtime libraries (the swift binary's ../lib/swift/linux).
SWIFT = shutil.which("swift")
TOOLCHAIN_LIB = Path(SWIFT).resolve().parent.parent / "lib" if SWIFT else None


def _sh(cmd, timeout=600, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    assert res.returncode == 0, (f"{' '.join(map(str, cmd))} exited {res.returncode}\n"
                                 f"--- stdout ---\n{res.stdout}\n--- stderr ---\n{res.stderr}")
    return res


def _need_ci_or_skip(reason: str):
    """CI installs everything these tests need (scripts/setup.sh --test): there a missing tool is
    a failure, elsewhere a skip with the reason."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    for tool in ("swift", "dpkg-deb", "dpkg-shlibdeps", "strip"):
        if shutil.which(tool) is None:
            _need_ci_or_skip(f"{tool} is not installed: the package cannot be built")
    out = tmp_path_factory.mktemp("deb")
    res = _sh(["bash", SCRIPT, out], timeout=1800)
    debs = sorted(out.glob("imgconv_*.deb"))
    assert len(debs) == 1, f"expected one imgconv_*.deb in the output folder, got {debs}\n{res.stderr}"
    assert res.stdout.strip() == str(debs[0]), res.stdout
    return debs[0]


def test_package_fields(deb):
    version = _sh([H.binary_path(), "--version"]).stdout.strip() if H.binary_path().is_file() else None
    arch = _sh(["dpkg", "--print-architecture"]).stdout.strip()
    field = lambda name: _sh(["dpkg-deb", "--field", deb, name]).stdout.strip()  # noqa: E731
    assert field("Package") == "imgconv"
    assert field("Architecture") == arch
    if version:
        assert field("Version") == f"{version}-1"
        assert deb.name == f"imgconv_{version}-1_{arch}.deb"
    depends = field("Depends")
    # Every library the binary links, by its Debian runtime package (dpkg-shlibdeps' computation).
    for package in ("libturbojpeg0", "libjpeg62-turbo", "libpng16-16", "libtiff6", "libwebp7",
                    "libwebpdemux2", "libgif7", "libavif15", "libheif1", "libhdf5-103-1",
                    "zlib1g", "libdeflate0", "libisal2", "libxxhash0", "libc6", "libstdc++6"):
        assert package in depends, f"{package} missing from Depends: {depends}"
    assert "swift" not in depends.lower()
    listing = _sh(["dpkg-deb", "--contents", deb]).stdout
    for path in ("./usr/bin/imgconv", "./usr/share/man/man1/imgconv.1.gz",
                 "./usr/share/bash-completion/completions/imgconv",
                 "./usr/share/zsh/vendor-completions/_imgconv",
                 "./usr/share/fish/vendor_completions.d/imgconv.fish",
                 "./usr/share/doc/imgconv/copyright", "./usr/share/doc/imgconv/changelog.Debian.gz"):
        assert f" {path}\n" in listing, f"{path} is not in the package:\n{listing}"
    # --root-owner-group: nothing owned by the builder.
    for line in listing.splitlines():
        assert line.split()[1] == "root/root", line


def test_lintian_reports_no_error(deb):
    if shutil.which("lintian") is None:
        _need_ci_or_skip("lintian is not installed (scripts/setup.sh --test installs it)")
    res = subprocess.run(["lintian", "--display-level", ">=info", str(deb)],
                         capture_output=True, text=True, timeout=600)
    tags = [line for line in res.stdout.splitlines() if line[:2] in ("E:", "W:")]
    print("lintian:", res.stdout.strip() or "nothing to report")
    errors = [line for line in tags if line.startswith("E:")]
    assert not errors, "lintian errors:\n" + "\n".join(errors)
    assert res.returncode == 0, f"lintian exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    assert not tags, "lintian warnings:\n" + "\n".join(tags)


def _run_installed(args, cwd: Path) -> subprocess.CompletedProcess:
    """The installed imgconv with nothing from this environment: no LD_LIBRARY_PATH, no toolchain
    on PATH."""
    return _sh(["env", "-i", "PATH=/usr/bin:/bin", "imgconv", *args], cwd=cwd, timeout=300)


def test_install_and_run_without_toolchain(deb, tmp_path, samples_root):
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not available: the package cannot be installed here")
    if os.geteuid() != 0:
        pytest.skip("installing the package needs root (CI runs as root)")
    if H.binary_path() == INSTALLED or INSTALLED.exists():
        pytest.skip(f"{INSTALLED} already exists: this test would replace an imgconv it did not install")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # apt-get wants a path with a slash (./imgconv_*.deb), and its _apt user reading the file.
    os.chmod(deb.parent, 0o755)
    _sh(["apt-get", "install", "-y", "-q", "--no-install-recommends", f"./{deb.name}"],
        cwd=deb.parent, env=env, timeout=900)
    try:
        assert INSTALLED.is_file()
        # No library from the Swift toolchain's folder, nor any libswift/Foundation at all.
        ldd = _sh(["env", "-i", "PATH=/usr/bin:/bin", "ldd", INSTALLED]).stdout
        assert "not found" not in ldd, ldd
        if TOOLCHAIN_LIB is not None:
            assert str(TOOLCHAIN_LIB) not in ldd, ldd
        for name in ("libswift", "libFoundation", "lib_Foundation", "libdispatch", "libBlocksRuntime"):
            assert name not in ldd, ldd

        work = tmp_path / "work"
        work.mkdir()
        version = _run_installed(["--version"], work).stdout.strip()
        assert version == _sh(["dpkg-query", "-W", "-f", "${Version}", "imgconv"]).stdout.split("-")[0]

        # samples/: JPEG, PNG, TIFF.
        _run_installed(["to-npz", samples_root, "samples.npz", "--quiet"], work)
        _run_installed(["verify", "samples.npz", "--against", samples_root], work)
        arrays = H.load_npz(work / "samples.npz")
        assert arrays["trainXs"].shape[0] == len(H.expected_files(samples_root))

        # Every other format it reads, into every container (libhdf5, libdeflate, zlib).
        other = tmp_path / "other"
        for cls, rel in OTHER_FORMATS.items():
            src = H.FIXTURES / rel
            if not src.is_file():
                pytest.skip(f"fixture Tests/Fixtures/{rel} is missing")
            (other / cls).mkdir(parents=True)
            shutil.copyfile(src, other / cls / src.name)
        shaping = ["--size", "16x16", "--color", "rgb", "--dtype", "uint8", "--quiet"]
        outputs = {
            "o.npz": ["to-npz", other, "o.npz", "--compress", *shaping],
            "o.h5": ["to-hdf5", other, "o.h5", "--compress", *shaping],
            "idx": ["to-idx", other, "idx", "--gzip", *shaping],
        }
        for out, args in outputs.items():
            _run_installed(args, work)
            _run_installed(["verify", out, "--against", other], work)
        assert H.load_npz(work / "o.npz")["trainXs"].shape == (len(OTHER_FORMATS), 16, 16, 3)

        # The same bytes as the repository's own (dynamically linked) release binary writes.
        repo_bin = H.binary_path()
        if repo_bin.is_file():
            ref = tmp_path / "ref"
            ref.mkdir()
            _sh([repo_bin, "to-npz", samples_root, "samples.npz", "--quiet"], cwd=ref)
            _sh([repo_bin, *outputs["o.npz"]], cwd=ref)
            for name in ("samples.npz", "o.npz"):
                assert (work / name).read_bytes() == (ref / name).read_bytes(), name

        # The man page, as man finds it, and the completions where the shells look.
        page = _sh(["env", "-i", "PATH=/usr/bin:/bin", "MANWIDTH=100", "man", "-P", "cat", "imgconv"]).stdout
        for word in ("to-npz", "to-hdf5", "verify", "--size"):
            assert word in page, f"{word} not in the man page"
        assert "imgconv" in _sh(["man", "-w", "imgconv"]).stdout
        bash_completion = Path("/usr/share/bash-completion/completions/imgconv")
        _sh(["bash", "-n", bash_completion])
        assert "complete -" in bash_completion.read_text()
        assert Path("/usr/share/zsh/vendor-completions/_imgconv").read_text().startswith("#compdef imgconv")
        assert "complete -c 'imgconv'" in Path("/usr/share/fish/vendor_completions.d/imgconv.fish").read_text()
    finally:
        subprocess.run(["apt-get", "remove", "-y", "-q", "imgconv"], env=env, capture_output=True,
                       text=True, timeout=600)
    assert not INSTALLED.exists(), "apt-get remove left /usr/bin/imgconv"
    status = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Status}", "imgconv"],
                            capture_output=True, text=True).stdout
    assert status in ("", "not-installed", "config-files"), f"imgconv is still {status}"
