"""bench/limit/job_floor, the job-floor probe of issue 18: its output is the bytes of imgconv's trainXs.

The probe is built here from bench/limit/job_floor.c (the Makefile's command, with the C compiler at
hand: the Swift toolchain's clang when there is no cc) and run on small sets against `imgconv to-npz`: the same
file order (classes and files in code-point order, nested folders, hidden entries and __MACOSX
left out), the same pixels (TurboJPEG, libpng, gray kept 1 channel), whatever the threads, the
window and the batch; a bad set fails with one line naming the file and leaves no file behind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import interop_helpers as H


@pytest.fixture(scope="module")
def floor_bin(tmp_path_factory) -> Path:
    # -H hashes with imgconv's own XXH3 builds (Sources/CXXH3; a compiler other than clang
    # builds only the library's) and ISA-L's CRC-32, as bench/limit/Makefile builds it.
    xxh3 = H.REPO_ROOT / "Sources" / "CXXH3"
    return H.build_limit_probe(tmp_path_factory.mktemp("floor_build"), "job_floor",
                               ["libturbojpeg", "libpng", "libcrypto", "libxxhash", "libisal"],
                               ["-lpthread"], sources=[f"-I{xxh3 / 'include'}", *map(str, sorted(xxh3.glob("*.c")))])


def run_floor(floor_bin, *args, expect_rc=0):
    return H.run_probe(floor_bin, *args, expect_rc=expect_rc)


def imgconv_xs(run, root: Path, out: Path) -> np.ndarray:
    run(["to-npz", root, out, "-q"])
    with np.load(out) as z:
        return z["trainXs"]


def assert_floor_equals(floor_bin, root, out, ref: np.ndarray, *opts):
    if out.exists():
        out.unlink()
    res = run_floor(floor_bin, *opts, root, out)
    assert f"{ref.shape[0]} images" in res.stdout
    x = np.load(out)
    assert x.shape == ref.shape and x.dtype == np.uint8, (opts, x.shape, ref.shape)
    assert x.tobytes() == ref.tobytes(), f"job_floor {' '.join(map(str, opts))}: pixels differ from imgconv's trainXs"
    leftovers = [p.name for p in out.parent.iterdir() if p.name.endswith(".tmp")]
    assert not leftovers, leftovers
    return res


def noise(rng, h, w, c):
    # smooth gradients plus noise: JPEG and PNG both have real work to do
    y, x = np.mgrid[0:h, 0:w]
    a = np.clip((x * 255 // max(1, w - 1) + y * 3)[..., None] + rng.integers(0, 60, (h, w, c)), 0, 255).astype(np.uint8)
    return a if c > 1 else a[..., 0]


@pytest.fixture
def jpeg_set(make_dataset):
    """RGB JPEGs 40x32 in classes and names whose orders differ (code points, digits, nesting)."""
    ds = make_dataset("jpegs")
    rng = np.random.default_rng(18)
    names = []
    for cls in ["b", "B", "a_", "\u00e9t\u00e9", "Z9", "Z10"]:
        for f in ["10.jpg", "9.jpg", "img_2.JPG", "img_10.jpeg", "sub/x.jpg", "sub/deeper/0.jpg", "sub2.jpg"]:
            names.append(f"{cls}/{f}")
    for rel in names:
        ds.add_image(rel, noise(rng, 32, 40, 3), "JPEG", quality=90)
    # left out by imgconv's scan, so by the floor's too
    ds.add_image("a_/.hidden.jpg", noise(rng, 32, 40, 3), "JPEG")
    ds.add_image("a_/__MACOSX/y.jpg", noise(rng, 32, 40, 3), "JPEG")
    ds.add_image("__MACOSX/z.jpg", noise(rng, 32, 40, 3), "JPEG")
    ds.add_image(".hiddenclass/w.jpg", noise(rng, 32, 40, 3), "JPEG")
    return ds.root


def test_jpeg_set_equals_imgconv_at_any_threads_and_window(run, floor_bin, jpeg_set, outdir):
    ref = imgconv_xs(run, jpeg_set, outdir / "ref.npz")
    assert ref.shape == (42, 32, 40, 3)
    out = outdir / "floor.npy"
    for opts in [(), ("-t", "1"), ("-t", "2"), ("-t", "3", "-w", "5", "-b", "2"), ("-t", "4", "-w", "1", "-b", "1"),
                 ("-t", "2", "-w", "7", "-b", "3"), ("-t", "2", "-w", "100", "-b", "100"),
                 ("-r", "4"), ("-t", "3", "-r", "64", "-w", "5", "-b", "2")]:
        assert_floor_equals(floor_bin, jpeg_set, out, ref, *opts)


def test_hashing_floor_hashes_the_sources_and_the_tensor(run, floor_bin, jpeg_set, outdir):
    """-H: the same output, with the hashes over the right bytes: the CRC-32 of the pixels (the .npz
    member's), and each source's SHA-256 (their first bytes summed, in the order imgconv lists them)."""
    import json
    import zlib
    ref = imgconv_xs(run, jpeg_set, outdir / "ref.npz")
    manifest = json.loads((outdir / "ref.npz.manifest.json").read_text())
    sha_sum = sum(int(f["sha256"][:2], 16) for f in manifest["files"])
    for opts in [("-H",), ("-H", "-t", "3", "-w", "5", "-b", "2")]:
        res = assert_floor_equals(floor_bin, jpeg_set, outdir / "floor.npy", ref, *opts)
        line = next(l for l in res.stdout.splitlines() if "hashed:" in l)
        assert f"CRC-32 {zlib.crc32(ref.tobytes()):08x}," in line, line
        assert line.endswith(f"first bytes sum {sha_sum}"), (line, sha_sum)
    res = assert_floor_equals(floor_bin, jpeg_set, outdir / "floor.npy", ref)
    assert "hashed:" not in res.stdout


def test_direct_io_floor_writes_the_same_pixels(run, floor_bin, jpeg_set, outdir):
    """-D: the header padded to 4096 bytes, the runs' whole blocks written with O_DIRECT (on a
    file system that takes it), their partial blocks through the page cache: the same pixels."""
    import re
    import subprocess
    ref = imgconv_xs(run, jpeg_set, outdir / "ref.npz")
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(outdir)], capture_output=True, text=True).stdout.strip()
    for opts in [("-D",), ("-D", "-t", "3", "-w", "5", "-b", "2"), ("-D", "-H", "-w", "100", "-b", "100")]:
        res = assert_floor_equals(floor_bin, jpeg_set, outdir / "floor.npy", ref, *opts)
        direct = int(re.search(r"\((\d+) bytes direct\)", res.stdout).group(1))
        assert direct % 4096 == 0 and direct < ref.nbytes, res.stdout
        if fs in ("ext2/ext3", "xfs", "btrfs"):
            assert direct > 0, (fs, res.stdout)
        head = (outdir / "floor.npy").read_bytes()[:10]
        assert int.from_bytes(head[8:10], "little") + 10 == 4096, "a 4096-byte header"


def test_gray_png_set_stays_one_channel(run, floor_bin, make_dataset, outdir):
    ds = make_dataset("gray")
    rng = np.random.default_rng(7)
    for c in range(10):
        for i in range(13):
            ds.add_image(f"{c}/{i:05d}.png", noise(rng, 28, 28, 1))
    ref = imgconv_xs(run, ds.root, outdir / "ref.npz")
    assert ref.shape == (130, 28, 28, 1)
    for opts in [(), ("-p", "simple"), ("-p", "low", "-t", "3", "-w", "9", "-b", "4")]:
        assert_floor_equals(floor_bin, ds.root, outdir / "floor.npy", ref, *opts)


def test_rgb_png_set_with_palette_files(run, floor_bin, make_dataset, outdir):
    from PIL import Image
    ds = make_dataset("rgbpng")
    rng = np.random.default_rng(64)
    for c in ("cat", "dog"):
        for i in range(20):
            a = noise(rng, 16, 24, 3)
            if i % 5 == 0:   # a palette PNG, expanded to RGB by both
                ds.add_image(f"{c}/{i}.png", Image.fromarray(a).quantize(64))
            else:
                ds.add_image(f"{c}/{i}.png", a, compress_level=i % 10)
    ref = imgconv_xs(run, ds.root, outdir / "ref.npz")
    assert ref.shape == (40, 16, 24, 3)
    for opts in [(), ("-t", "1"), ("-t", "2", "-w", "4", "-b", "1")]:
        assert_floor_equals(floor_bin, ds.root, outdir / "floor.npy", ref, *opts)


def test_output_differing_from_imgconv_is_caught(run, floor_bin, make_dataset, outdir):
    """The comparison can fail: a set converted after one image changed differs from the floor's."""
    ds = make_dataset("changed")
    rng = np.random.default_rng(3)
    for i in range(6):
        ds.add_image(f"a/{i}.png", noise(rng, 8, 8, 3))
    ref = imgconv_xs(run, ds.root, outdir / "ref.npz")
    ds.add_image("a/3.png", noise(rng, 8, 8, 3))
    with pytest.raises(AssertionError, match="pixels differ"):
        assert_floor_equals(floor_bin, ds.root, outdir / "floor.npy", ref)


@pytest.mark.parametrize("case", ["size", "channels", "corrupt", "not_an_image"])
def test_bad_set_fails_with_one_line_naming_the_file(floor_bin, make_dataset, outdir, case):
    ds = make_dataset(case)
    rng = np.random.default_rng(5)
    for i in range(30):
        ds.add_image(f"c/{i:02d}.jpg", noise(rng, 32, 32, 3), "JPEG")
    bad = "c/17.jpg"
    if case == "size":
        ds.add_image(bad, noise(rng, 32, 31, 3), "JPEG")
        needle = "31x32"
    elif case == "channels":
        ds.add_image(bad, noise(rng, 32, 32, 1), "JPEG")
        needle = "1 channel"
    elif case == "corrupt":
        data = (ds.root / bad).read_bytes()
        ds.add_bytes(bad, data[: len(data) // 2])
        needle = "TurboJPEG"
    else:
        ds.add_bytes(bad, b"not an image at all\n")
        needle = "neither JPEG nor PNG"
    out = outdir / "floor.npy"
    res = run_floor(floor_bin, "-t", "2", "-w", "4", "-b", "1", ds.root, out, expect_rc=1)
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("job_floor: ") and bad in lines[0] and needle in lines[0], lines[0]
    assert list(outdir.iterdir()) == [], "a failed run left a file behind"


def test_usage_errors(floor_bin, make_dataset, outdir):
    res = run_floor(floor_bin, outdir / "missing", outdir / "x.npy", expect_rc=1)
    assert "dataset root does not exist" in res.stderr
    empty = make_dataset("empty")
    (empty.root / "cls").mkdir()
    res = run_floor(floor_bin, empty.root, outdir / "x.npy", expect_rc=1)
    assert "no files" in res.stderr
    res = run_floor(floor_bin, "-p", "fast", empty.root, outdir / "x.npy", expect_rc=1)
    assert "-p takes low or simple" in res.stderr
    assert list(outdir.iterdir()) == []
