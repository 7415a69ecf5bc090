"""GIF and WebP beyond the fidelity table's first frames (issue 14, items 1, 2 and 5).

- `--frames all`: every frame of every animated fixture (Tests/Fixtures/gif, webp) equals Pillow's
  `ImageSequence` frame (`Image.open`, `ImageSequence.Iterator`, `exif_transpose`, `convert` to the
  first frame's mode as imgconv's channels: P to RGB or, with a transparent index, RGBA; L, or LA;
  WebP RGB or RGBA), in order, each recorded with its `page`; shuffled, split and on several threads
  too (the frames land where the manifest says, equal all the same);
- `--frames first` (the default) converts the first frame and counts the others in
  `summary.ignoredFrames`, with one warning; `--frames error` refuses an animated file in one line;
- GIFs built byte by byte (`gif_craft.py`) for what the corpus lacks: a first frame smaller than the
  logical screen (with and without a transparent index), one reaching past it, a 0x0 logical screen,
  interlaced frames of every small height, indices past the colour table, identity gray tables (mode
  L, and LA), every disposal method on frames with and without transparency, a canvas growing in
  the middle of an animation, stray bytes between blocks, no trailer, LZW code sizes 2 to 11: the
  first frame and every frame equal Pillow's;
- WebP EXIF orientation (the EXIF chunk, with and without an `Exif\\0\\0` prefix) and XMP orientation,
  as `exif_transpose` applies them, on still and animated files;
- a folder of WebP files only converts, `verify --against` passes, and `summary.formats` counts them.
"""

from __future__ import annotations

import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import gif_craft as G
import interop_helpers as H
from corpus_runner import rel_of

COLOR_FOR_CHANNELS = {1: "gray", 2: "rgba", 3: "rgb", 4: "rgba"}


def _target(im) -> str:
    trns = "transparency" in im.info
    return {"P": "RGBA" if trns else "RGB", "L": "LA" if trns else "L"}.get(im.mode, im.mode)


def pillow_frames(path: Path) -> list[np.ndarray]:
    """Pillow's ImageSequence frames, each (H, W, C), in the first frame's mode as our channels;
    LA comes out as RGBA (gray replicated), as `--color rgba` gives it."""
    from PIL import Image, ImageOps, ImageSequence
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(path) as im:
            mode = _target(im)
            for frame in ImageSequence.Iterator(im):
                f = ImageOps.exif_transpose(frame)
                a = np.asarray(f.convert(mode) if f.mode != mode else f)
                a = a[..., None] if a.ndim == 2 else a
                out.append(a[..., [0, 0, 0, 1]] if a.shape[-1] == 2 else a)
    return out


def channels_of(path: Path) -> int:
    from PIL import Image
    with Image.open(path) as im:
        return {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2}[_target(im)]


def convert_one(run, src: Path | bytes, tmp_path: Path, *flags, name: str = "a.gif", color: str | None = None,
                expect_rc=0):
    """A one-file dataset c/<name> converted with `flags`; returns (result, arrays, manifest)."""
    root = tmp_path / "root"
    shutil.rmtree(root, ignore_errors=True)
    (root / "c").mkdir(parents=True)
    data = src if isinstance(src, bytes) else Path(src).read_bytes()
    (root / "c" / name).write_bytes(data)
    if color is None:
        p = root / "c" / name
        color = COLOR_FOR_CHANNELS[channels_of(p)]
    out = tmp_path / "out.npz"
    for p in (out, H.npz_manifest_path(out)):
        p.unlink(missing_ok=True)
    res = run(["to-npz", root, out, "--color", color, "-q", *flags], expect_rc=expect_rc)
    if res.returncode != 0:
        return res, None, None
    arrays = H.load_npz(out)
    manifest = H.load_json(H.npz_manifest_path(out))
    H.check_manifest(manifest, arrays, root)
    return res, arrays, manifest


def assert_frames_equal(got: np.ndarray, expected: list[np.ndarray], pages: list[int], what: str) -> None:
    """Image i of `got` is Pillow's frame pages[i]."""
    assert len(got) == len(pages), f"{what}: {len(got)} images, the manifest lists {len(pages)}"
    for i, page in enumerate(pages):
        exp = expected[page]
        assert got[i].shape == exp.shape, f"{what} frame {page}: shape {got[i].shape}, Pillow {exp.shape}"
        if not np.array_equal(got[i], exp):
            diff = int((got[i] != exp).sum())
            raise AssertionError(f"{what} frame {page}: {diff} samples differ from Pillow's")


def animated_fixtures() -> list[Path]:
    from PIL import Image
    out = []
    for folder in ("gif", "webp"):
        for p in sorted((H.FIXTURES / folder).rglob("*")):
            if p.suffix.lower() in (".gif", ".webp"):
                with Image.open(p) as im:
                    if getattr(im, "n_frames", 1) > 1:
                        out.append(p)
    return out


# --------------------------------------------------------------------------------------------------
# The corpus: every frame
# --------------------------------------------------------------------------------------------------

def test_every_frame_of_every_animated_fixture_equals_pillow(run, tmp_path):
    files = animated_fixtures()
    if not files:
        pytest.skip("Tests/Fixtures/gif and webp hold no animation")
    frames_total = 0
    for src in files:
        expected = pillow_frames(src)
        _, arrays, manifest = convert_one(run, src, tmp_path, "--frames", "all", name=src.name)
        pages = [f["page"] for f in manifest["files"]]
        assert pages == list(range(len(expected))), f"{rel_of(src)}: pages {pages[:8]}..., Pillow has {len(expected)} frames"
        assert manifest["options"]["frames"] == "all" and manifest["summary"]["ignoredFrames"] == 0
        assert manifest["summary"]["formats"] == {src.suffix[1:].lower(): len(expected)}
        assert_frames_equal(arrays["trainXs"], expected, pages, rel_of(src))
        frames_total += len(expected)
    print(f"\n{len(files)} animated fixtures, {frames_total} frames: every one equal to Pillow's ImageSequence frame")


@pytest.mark.parametrize("flags", [("--shuffle", "--seed", "7", "--jobs", "3"),
                                   ("--split", "train=0.5,test=0.5", "--jobs", "2"),
                                   ("--jobs", "1")])
def test_frames_in_any_order_are_still_pillows(run, tmp_path, flags):
    """A shuffled or split animation (frames decoded out of order, on several threads) gives every
    frame where the manifest says, each equal to Pillow's."""
    src = H.FIXTURES / "gif" / "image-gif" / "samples" / "gifplayer-muybridge.gif"
    if not src.is_file():
        pytest.skip("the muybridge fixture is missing")
    expected = pillow_frames(src)
    root = tmp_path / "root"
    (root / "c").mkdir(parents=True)
    shutil.copy(src, root / "c" / src.name)
    out = tmp_path / "o.npz"
    run(["to-npz", root, out, "--frames", "all", "--color", "rgba", "-q", *flags])
    arrays = dict(np.load(out))
    manifest = H.load_json(H.npz_manifest_path(out))
    names = [k[:-2] for k in arrays if k.endswith("Xs")]
    seen = []
    for split in names:
        files = [f for f in manifest["files"] if f.get("split", "train") == split]
        pages = [f["page"] for f in files]
        assert_frames_equal(arrays[f"{split}Xs"], expected, pages, f"{split} {' '.join(flags)}")
        seen += pages
    assert sorted(seen) == list(range(len(expected)))
    if "--split" in flags:
        # a split divides files: every frame of the animation is in one split
        assert len({f["split"] for f in manifest["files"]}) == 1
    res = run(["verify", out, "--against", root])
    assert "verified" in res.stdout


def test_frames_first_counts_the_others(run, tmp_path):
    files = animated_fixtures()
    if not files:
        pytest.skip("Tests/Fixtures/gif and webp hold no animation")
    root = tmp_path / "root"
    (root / "c").mkdir(parents=True)
    for src in files:
        shutil.copy(src, root / "c" / src.name)
    out = tmp_path / "o.npz"
    res = run(["to-npz", root, out, "--size", "16x16", "--color", "rgb"])
    manifest = H.load_json(H.npz_manifest_path(out))
    H.check_manifest(manifest, H.load_npz(out), root)
    frames = sum(len(pillow_frames(src)) for src in files)
    ignored = frames - len(files)
    assert manifest["options"]["frames"] == "first"
    assert manifest["summary"]["ignoredFrames"] == ignored
    assert manifest["summary"]["images"] == len(files)
    assert all("page" not in f for f in manifest["files"])
    warning = [ln for ln in H.stderr_lines(res) if "frames ignored" in ln]
    assert warning == [f"imgconv: warning: {ignored} further GIF/WebP animation frames ignored (--frames all converts them)"]


def test_frames_error_refuses_an_animation(run, tmp_path, fixture_file):
    anim = fixture_file("gif/pillow/dispose_bgnd.gif")
    still = fixture_file("gif/pillow/hopper.gif")
    root = tmp_path / "root"
    (root / "c").mkdir(parents=True)
    shutil.copy(anim, root / "c" / "anim.gif")
    shutil.copy(still, root / "c" / "still.gif")
    out = tmp_path / "o.npz"
    res = run(["to-npz", root, out, "--frames", "error", "--size", "8x8"], expect_rc=H.EX_DATAERR)
    line = H.assert_one_line_error(res, "c/anim.gif")
    assert "5 frames" in line and "--frames" in line
    assert not out.exists()
    run(["to-npz", root, out, "--frames", "error", "--size", "8x8", "--skip-bad"])
    manifest = H.load_json(H.npz_manifest_path(out))
    assert [f["path"] for f in manifest["files"]] == ["c/still.gif"]
    assert H.skipped_paths(manifest) == ["c/anim.gif"]
    assert manifest["options"]["frames"] == "error"


# --------------------------------------------------------------------------------------------------
# GIFs built byte by byte
# --------------------------------------------------------------------------------------------------

def _crafted() -> dict[str, bytes]:
    pal = G.palette(16)
    p4 = G.pattern(4, 5, 16, seed=1)
    cases: dict[str, bytes] = {}
    cases["small-frame"] = G.Gif(9, 7, [G.Frame(p4, left=2, top=1)], palette=pal, background=3).build()
    cases["small-frame-transparent"] = G.Gif(9, 7, [G.Frame(p4, left=2, top=1, transparency=5)], palette=pal).build()
    cases["small-frame-transparent-0"] = G.Gif(9, 7, [G.Frame(p4, left=3, top=2, transparency=0)], palette=pal).build()
    cases["frame-past-screen"] = G.Gif(4, 3, [G.Frame(G.pattern(5, 6, 16, 2), left=2, top=1)], palette=pal).build()
    cases["screen-0x0"] = G.Gif(0, 0, [G.Frame(G.pattern(3, 4, 16, 3))], palette=pal).build()
    for h in (1, 2, 3, 4, 5, 7, 8, 9, 13):
        cases[f"interlaced-h{h}"] = G.Gif(5, h, [G.Frame(G.pattern(h, 5, 16, h), interlace=True)], palette=pal).build()
    cases["index-past-table"] = G.Gif(6, 2, [G.Frame(np.array([[0, 1, 2, 3, 200, 255]] * 2), min_size=8)],
                                      palette=[(10, 20, 30), (40, 50, 60)]).build()
    cases["identity-gray"] = G.Gif(6, 4, [G.Frame(G.pattern(4, 6, 256, 4), min_size=8)],
                                   palette=G.gray_identity(256)).build()
    cases["no-table"] = G.Gif(6, 4, [G.Frame(G.pattern(4, 6, 200, 5), min_size=8)]).build()
    cases["gray-transparent"] = G.Gif(6, 4, [G.Frame(G.pattern(4, 6, 4, 6), transparency=2)],
                                      palette=G.gray_identity(4)).build()
    cases["local-gray-over-global"] = G.Gif(6, 4, [G.Frame(G.pattern(4, 6, 4, 7), local=G.gray_identity(4))],
                                            palette=pal).build()
    cases["local-table"] = G.Gif(6, 4, [G.Frame(G.pattern(4, 6, 8, 8), local=G.palette(8, 9))], palette=pal).build()
    cases["background-past-table"] = G.Gif(6, 4, [G.Frame(p4[:2, :3], disposal=2), G.Frame(p4[:2, :3], left=1)],
                                           palette=pal[:4], background=200).build()
    for size in (2, 3, 5, 8, 9, 10, 11):
        cases[f"lzw-{size}"] = G.Gif(7, 5, [G.Frame(G.pattern(5, 7, min(16, 1 << size), size), min_size=size)],
                                     palette=pal).build()
    cases["stray-bytes"] = G.Gif(5, 4, [G.Frame(G.pattern(4, 5, 16, 10)),
                                        G.Frame(G.pattern(2, 2, 16, 11), left=1, top=1, before=b"\x00\x07")],
                                 palette=pal).build()
    cases["no-trailer"] = G.Gif(5, 4, [G.Frame(G.pattern(4, 5, 16, 12)), G.Frame(G.pattern(2, 3, 16, 13))],
                                palette=pal, trailer=False).build()
    # Animations: every disposal method after frames with and without transparency; a disposal
    # that a later frame without one keeps (Pillow's sticky disposal_method); a canvas growing.
    anim = []
    for i, (disposal, trns) in enumerate([(1, None), (2, 3), (3, None), (0, 4), (2, None), (3, 6), (0, None), (1, 2)]):
        anim.append(G.Frame(G.pattern(3 + i % 3, 4 + i % 2, 16, 20 + i), left=i % 4, top=i % 3,
                            disposal=disposal, transparency=trns))
    cases["anim-disposals"] = G.Gif(9, 7, anim, palette=pal, background=5, loop=True).build()
    cases["anim-disposals-first-transparent"] = G.Gif(
        9, 7, [G.Frame(G.pattern(7, 9, 16, 30), transparency=1, disposal=2)] + anim, palette=pal).build()
    cases["anim-local-tables"] = G.Gif(
        8, 6, [G.Frame(G.pattern(6, 8, 4, 40), local=G.palette(4, 41)),
               G.Frame(G.pattern(3, 3, 4, 42), left=2, top=2, local=G.palette(4, 43), transparency=0, disposal=3),
               G.Frame(G.pattern(2, 5, 4, 44), left=1, top=3, disposal=2),
               G.Frame(G.pattern(4, 4, 4, 45), left=4, top=1, local=G.palette(4, 46))]).build()
    cases["anim-gray"] = G.Gif(
        6, 5, [G.Frame(G.pattern(5, 6, 8, 50)), G.Frame(G.pattern(2, 3, 8, 51), left=1, top=1, transparency=3, disposal=2),
               G.Frame(G.pattern(3, 2, 8, 52), left=3, top=2)], palette=G.gray_identity(8)).build()
    cases["anim-gray-transparent"] = G.Gif(
        6, 5, [G.Frame(G.pattern(5, 6, 8, 53), transparency=7), G.Frame(G.pattern(2, 3, 8, 54), left=1, top=1, disposal=3),
               G.Frame(G.pattern(3, 2, 8, 55), left=3, top=2, transparency=1)], palette=G.gray_identity(8)).build()
    cases["anim-grows"] = G.Gif(
        5, 4, [G.Frame(G.pattern(4, 5, 16, 60)), G.Frame(G.pattern(3, 3, 16, 61), left=4, top=3, transparency=2)],
        palette=pal).build()
    cases["anim-grows-opaque"] = G.Gif(
        5, 4, [G.Frame(G.pattern(4, 5, 16, 62), transparency=9), G.Frame(G.pattern(3, 3, 16, 63), left=4, top=3)],
        palette=pal).build()
    return cases


CRAFTED = _crafted()


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_gif_first_frame_equals_pillow(run, tmp_path, name):
    data = CRAFTED[name]
    src = tmp_path / f"{name}.gif"
    src.write_bytes(data)
    expected = pillow_frames(src)
    res, arrays, manifest = convert_one(run, data, tmp_path, name=f"{name}.gif")
    got = arrays["trainXs"]
    assert got.shape[0] == 1
    assert_frames_equal(got, expected[:1], [0], name)
    assert manifest["summary"]["ignoredFrames"] == len(expected) - 1


@pytest.mark.parametrize("name", sorted(n for n in CRAFTED if n.startswith(("anim-", "stray", "no-trailer"))))
def test_crafted_gif_every_frame_equals_pillow(run, tmp_path, name):
    data = CRAFTED[name]
    src = tmp_path / f"{name}.gif"
    src.write_bytes(data)
    expected = pillow_frames(src)
    sizes = {e.shape for e in expected}
    flags = ("--frames", "all")
    if len(sizes) > 1:
        # The canvas grew (Pillow enlarges the image to hold a frame reaching past it): frames of
        # two sizes are refused without --size, in one line naming the file and both sizes, which
        # are Pillow's.
        res, _, _ = convert_one(run, data, tmp_path, *flags, name=f"{name}.gif", expect_rc=H.EX_DATAERR)
        line = H.assert_one_line_error(res, f"c/{name}.gif")
        first, grown = expected[0].shape, expected[-1].shape
        assert f"{grown[0]}x{grown[1]}" in line and f"{first[0]}x{first[1]}" in line, line
        return
    _, arrays, manifest = convert_one(run, data, tmp_path, *flags, name=f"{name}.gif")
    pages = [f.get("page", 0) for f in manifest["files"]]
    assert sorted(pages) == list(range(len(expected))), f"{name}: pages {pages}, Pillow has {len(expected)} frames"
    assert_frames_equal(arrays["trainXs"], expected, pages, name)


# --------------------------------------------------------------------------------------------------
# WebP
# --------------------------------------------------------------------------------------------------

def _rgba(h=6, w=9, seed=0) -> np.ndarray:
    a = np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)
    a[..., 3] = np.where(a[..., 3] > 128, 255, a[..., 3])
    return a


def _exif(orientation: int, prefix: bool = False) -> bytes:
    from PIL import Image
    e = Image.Exif()
    e[0x0112] = orientation
    return (b"Exif\x00\x00" if prefix else b"") + e.tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("how", ["exif", "exif-prefixed", "xmp", "animated"])
def test_webp_orientation_as_exif_transpose(run, tmp_path, orientation, how):
    from PIL import Image
    im = Image.fromarray(_rgba(seed=orientation))
    buf = io.BytesIO()
    if how == "xmp":
        xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
               b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="%d"/>'
               b'</rdf:RDF></x:xmpmeta>' % orientation)
        im.save(buf, "WEBP", lossless=True, xmp=xmp)
    elif how == "animated":
        frames = [Image.fromarray(_rgba(seed=orientation * 10 + k)) for k in range(3)]
        frames[0].save(buf, "WEBP", lossless=True, save_all=True, append_images=frames[1:], duration=50,
                       exif=_exif(orientation))
    else:
        im.save(buf, "WEBP", lossless=True, exif=_exif(orientation, prefix=how == "exif-prefixed"))
    data = buf.getvalue()
    src = tmp_path / "o.webp"
    src.write_bytes(data)
    expected = pillow_frames(src)
    flags = ("--frames", "all") if how == "animated" else ()
    _, arrays, manifest = convert_one(run, data, tmp_path, *flags, name="o.webp", color="rgba")
    pages = [f.get("page", 0) for f in manifest["files"]]
    assert sorted(pages) == list(range(len(expected)))
    assert_frames_equal(arrays["trainXs"], expected, pages, f"{how} orientation {orientation}")
    recorded = {f.get("orientation", 1) for f in manifest["files"]}
    assert recorded == {orientation}, f"manifest orientation {recorded}"
    assert manifest["summary"]["rotated"] == (len(pages) if orientation > 1 else 0)


def test_a_folder_of_webp_only_converts_and_verifies(run, tmp_path):
    files = sorted((H.FIXTURES / "webp").rglob("*.webp"))
    if not files:
        pytest.skip("Tests/Fixtures/webp holds no WebP")
    root = tmp_path / "webp-only"
    for src in files:
        cls = "lossless" if "lossless" in src.name or src.name.endswith("_ll.webp") else "other"
        dst = root / cls / rel_of(src).replace("/", "__")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    out = tmp_path / "webp.npz"
    run(["to-npz", root, out, "--size", "24x24", "--color", "rgba", "-q"])
    manifest = H.load_json(H.npz_manifest_path(out))
    arrays = H.load_npz(out)
    H.check_manifest(manifest, arrays, root)
    assert manifest["summary"]["formats"] == {"webp": len(files)}
    assert manifest["summary"]["images"] == len(files) and not manifest["skipped"]
    assert {f["format"] for f in manifest["files"]} == {"webp"}
    res = run(["verify", out, "--against", root])
    assert "every image equals a fresh decode" in res.stdout
    # and every frame of the animations too
    out2 = tmp_path / "webp-all.npz"
    run(["to-npz", root, out2, "--size", "24x24", "--color", "rgba", "-q", "--frames", "all", "--shuffle"])
    m2 = H.load_json(H.npz_manifest_path(out2))
    assert m2["summary"]["images"] == len(files) + sum(len(pillow_frames(f)) - 1 for f in files)
    run(["verify", out2, "--against", root])
