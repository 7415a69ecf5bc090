"""Every PngSuite file, one image per dataset, against Pillow (8 bits or less) or pypng (16 bits).
Files whose name starts with 'x' are corrupt on purpose and must be rejected."""

from __future__ import annotations

import numpy as np
import pytest

import interop_helpers as H

BASE = H.FIXTURES / "pngsuite"
ALL = H.pngsuite_files()
GOOD = [p for p in ALL if not p.name.startswith("x")]
CORRUPT = [p for p in ALL if p.name.startswith("x")]
GOOD_8 = [p for p in GOOD if H.png_info(p)["bit_depth"] <= 8]
GOOD_16 = [p for p in GOOD if H.png_info(p)["bit_depth"] == 16]
COLOUR_8 = [p for p in GOOD_8 if H.png_info(p)["color_type"] in (2, 3, 6)]

MISSING = "Tests/Fixtures/pngsuite is missing"


def _ids(p):
    return H.fixture_id(p, BASE)


def _convert_one(run, make_dataset, tmp_path, src, *flags):
    ds = make_dataset()
    ds.add(f"c/{src.name}", src)
    out = tmp_path / f"{src.stem}.npz"
    run(["to-npz", ds.root, out, *flags])
    arrays = H.load_npz(out)
    H.check_manifest(H.load_json(H.npz_manifest_path(out)), arrays, ds.root)
    assert arrays["trainXs"].shape[0] == 1
    assert arrays["classNames"].tolist() == ["c"] and arrays["trainYs"].tolist() == [0]
    return arrays["trainXs"][0]


@pytest.mark.parametrize("src", H.params_or_skip(GOOD_8, MISSING, _ids))
def test_png_8bit_matches_pillow(run, make_dataset, tmp_path, src):
    info = H.png_info(src)
    if info["color_type"] in (0, 4):
        # gray / gray+alpha: --color gray vs Pillow convert('L') (mode '1' expands to 0/255 like libpng)
        got = _convert_one(run, make_dataset, tmp_path, src, "--color", "gray")
        assert got.dtype == np.uint8
        H.assert_equal_pixels(got, H.pil_array(src, "L"), f"{src.name} --color gray")
    else:
        # RGB / palette / RGBA: alpha from the alpha channel, palette tRNS or the tRNS colour
        got = _convert_one(run, make_dataset, tmp_path, src, "--color", "rgba")
        assert got.dtype == np.uint8
        H.assert_equal_pixels(got, H.pil_array(src, "RGBA"), f"{src.name} --color rgba")


@pytest.mark.parametrize("src", H.params_or_skip(COLOUR_8, MISSING, _ids))
def test_png_8bit_colour_rgb_matches_pillow(run, make_dataset, tmp_path, src):
    got = _convert_one(run, make_dataset, tmp_path, src, "--color", "rgb")
    assert got.dtype == np.uint8
    H.assert_equal_pixels(got, H.pil_array(src, "RGB"), f"{src.name} --color rgb")


@pytest.mark.parametrize("name", ["basn2c08.png", "basn3p08.png", "basn6a08.png", "tbrn2c08.png", "basi3p02.png"])
def test_png_colour_to_gray_uses_pillow_formula(run, make_dataset, tmp_path, name):
    src = BASE / name
    if not src.is_file():
        pytest.skip(f"{MISSING} ({name})")
    got = _convert_one(run, make_dataset, tmp_path, src, "--color", "gray")
    H.assert_equal_pixels(got, H.pil_array(src, "L"), f"{name} --color gray")


@pytest.mark.parametrize("src", H.params_or_skip(GOOD_16, MISSING, _ids))
def test_png_16bit_matches_pypng(run, make_dataset, tmp_path, src):
    info = H.png_info(src)
    ref = H.pypng_array(src)  # stored 16-bit samples; tRNS colour -> alpha plane
    assert ref.dtype == np.uint16
    if info["color_type"] in (0, 4):
        got = _convert_one(run, make_dataset, tmp_path, src, "--color", "gray")
        assert got.dtype == np.uint16, f"16-bit input must stay 16-bit, got {got.dtype}"
        H.assert_equal_pixels(got, ref[..., :1], f"{src.name} --color gray")
    else:
        got = _convert_one(run, make_dataset, tmp_path, src, "--color", "rgba")
        assert got.dtype == np.uint16, f"16-bit input must stay 16-bit, got {got.dtype}"
        if ref.shape[-1] == 3:
            ref = np.concatenate([ref, np.full(ref.shape[:2] + (1,), 65535, np.uint16)], axis=-1)
        H.assert_equal_pixels(got, ref, f"{src.name} --color rgba")
        got_rgb = _convert_one(run, make_dataset, tmp_path, src, "--color", "rgb")
        H.assert_equal_pixels(got_rgb, ref[..., :3], f"{src.name} --color rgb")


@pytest.mark.parametrize("src", H.params_or_skip(CORRUPT, MISSING, _ids))
def test_png_corrupt_is_rejected(run, make_dataset, tmp_path, src):
    ds = make_dataset()
    rel = f"c/{src.name}"
    ds.add(rel, src)
    out = tmp_path / "x.npz"
    if src.read_bytes()[:8] != H.PNG_SIG:
        # The signature itself is damaged (xs*, xcr*, xlf*): a magic-byte sniffer may see a non-image
        # and skip it, or call it a corrupt PNG. Either is within the contract; decoding it is not.
        good = BASE / "basn2c08.png"
        if not good.is_file():
            pytest.skip(f"{MISSING} (basn2c08.png)")
        ds.add("c/aaa_good.png", good)
        res = run(["to-npz", ds.root, out], expect_rc=(0, H.EX_DATAERR))
        if res.returncode == 0:
            manifest = H.load_json(H.npz_manifest_path(out))
            assert rel in H.skipped_paths(manifest), f"{rel} neither rejected nor listed as skipped"
            assert [f["path"] for f in manifest["files"]] == ["c/aaa_good.png"]
        else:
            H.assert_one_line_error(res, rel)
            assert not out.exists()
        return
    res = run(["to-npz", ds.root, out], expect_rc=H.EX_DATAERR, timeout=30)
    H.assert_one_line_error(res, rel)
    assert not out.exists() and not H.npz_manifest_path(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == []
