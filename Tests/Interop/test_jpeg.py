"""JPEG fixtures (gray, YCbCr, progressive, restart markers, CMYK/YCCK) against Pillow, exactly:
both sides use libjpeg-turbo with its default accurate IDCT and fancy upsampling."""

from __future__ import annotations

import re

import numpy as np
import pytest

import interop_helpers as H

BASE = H.FIXTURES / "jpeg"
FILES = H.supported_jpeg_files()
MISSING = "Tests/Fixtures/jpeg is missing or holds no plain 8-bit JPEG"


def _components(p):
    return H.jpeg_sof(p)["components"]


def _convert_one(run, make_dataset, tmp_path, src, *flags):
    ds = make_dataset()
    ds.add(f"j/{src.name}", src)
    out = tmp_path / "j.npz"
    run(["to-npz", ds.root, out, *flags])
    arrays = H.load_npz(out)
    H.check_manifest(H.load_json(H.npz_manifest_path(out)), arrays, ds.root)
    return arrays["trainXs"][0]


@pytest.mark.parametrize("src", H.params_or_skip(FILES, MISSING, lambda p: H.fixture_id(p, H.FIXTURES)))
def test_jpeg_matches_pillow(run, make_dataset, tmp_path, src):
    if _components(src) == 1:
        got = _convert_one(run, make_dataset, tmp_path, src, "--color", "gray")
        assert got.dtype == np.uint8
        H.assert_equal_pixels(got, H.pil_array(src, "L"), f"{src.name} --color gray")
        got = _convert_one(run, make_dataset, tmp_path, src)  # auto: gray stays 1 channel
        H.assert_equal_pixels(got, H.pil_array(src, "L"), f"{src.name} --color auto")
    else:
        got = _convert_one(run, make_dataset, tmp_path, src, "--color", "rgb")
        assert got.dtype == np.uint8
        H.assert_equal_pixels(got, H.pil_array(src, "RGB"), f"{src.name} --color rgb")


@pytest.mark.parametrize("kind", ["gray", "progressive", "restarts", "cmyk", "ycck", "420", "444"])
def test_jpeg_selection_covers(kind):
    """The compared set must hold each JPEG flavour the contract names."""
    if not FILES:
        pytest.skip(MISSING)
    found = []
    for p in FILES:
        data = p.read_bytes()
        sof = H.jpeg_sof(p)
        m = re.search(rb"\xff\xee..Adobe", data, re.S)  # APP14: transform 0 CMYK, 1 YCbCr, 2 YCCK
        transform = data[m.start() + 4 + 11] if m else None
        ok = {
            "gray": sof["components"] == 1,
            "progressive": sof["sof"] == 2,
            "restarts": b"\xff\xdd" in data,
            "cmyk": sof["components"] == 4 and transform == 0,
            "ycck": sof["components"] == 4 and transform == 2,
            "420": sof["components"] == 3 and _sampling(data) == (2, 2),
            "444": sof["components"] == 3 and _sampling(data) == (1, 1),
        }[kind]
        if ok:
            found.append(p.name)
    assert found, f"no {kind} JPEG among the compared fixtures"


def _sampling(data: bytes):
    """(h, v) sampling factors of the first component of the first SOF."""
    i = 2
    while i + 4 <= len(data):
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        seglen = int.from_bytes(data[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            hv = data[i + 11]
            return (hv >> 4, hv & 15)
        i += 2 + seglen
    return None


def test_jpeg_color_to_gray_matches_pillow(run, make_dataset, tmp_path):
    """A colour JPEG with --color gray: Pillow decodes to RGB then applies the L formula."""
    rng = np.random.default_rng(11)
    ds = make_dataset()
    img = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    src = ds.add_image("c/noise.jpg", img, quality=90)
    out = tmp_path / "g.npz"
    run(["to-npz", ds.root, out, "--color", "gray"])
    got = H.load_npz(out)["trainXs"][0]
    H.assert_equal_pixels(got, H.pil_array(src, "L"), "noise.jpg --color gray")
    H.assert_equal_pixels(got[..., 0], H.pil_l_from_rgb(H.pil_array(src, "RGB")), "L formula")


# --- "N extraneous bytes before marker": accepted by default, as Pillow, OpenCV and TensorFlow do --

def _segments_end(data: bytes, marker: int) -> int:
    """The offset of the first segment with `marker` (0xDB, 0xC0...) in a baseline JPEG."""
    i = 2
    while i < len(data):
        assert data[i] == 0xFF
        if data[i + 1] == marker:
            return i
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    raise AssertionError(f"no marker {marker:#x}")


def _jpeg_with_stray_bytes(tmp_path, before: int, truncate: bool = False):
    from PIL import Image
    rng = np.random.default_rng(21)
    src = tmp_path / "clean.jpg"
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(src, quality=90)
    data = src.read_bytes()
    at = _segments_end(data, before)
    damaged = data[:at] + b"\x00\x11\x22" + data[at:]
    if truncate:
        damaged = damaged[: len(damaged) * 2 // 3]
    out = tmp_path / "stray.jpg"
    out.write_bytes(damaged)
    return out


@pytest.mark.parametrize("before", [0xDB, 0xC0, 0xDA], ids=["before-DQT", "before-SOF", "before-SOS"])
def test_extraneous_bytes_before_a_marker_decode_as_pillow_with_a_warning(run, make_dataset, tmp_path, before):
    src = _jpeg_with_stray_bytes(tmp_path, before)
    ds = make_dataset()
    ds.add("j/stray.jpg", src)
    out = tmp_path / "j.npz"
    res = run(["to-npz", ds.root, out])
    H.assert_equal_pixels(H.load_npz(out)["trainXs"][0], H.pil_array(src, "RGB"), "stray bytes")
    manifest = H.load_json(H.npz_manifest_path(out))
    assert "3 extraneous bytes before marker" in manifest["files"][0]["warning"], manifest["files"][0]
    assert "extraneous" in res.stderr   # said once, as every decoder warning
    run(["verify", out, "--against", ds.root])


def test_extraneous_bytes_do_not_excuse_missing_data(run, make_dataset, tmp_path):
    src = _jpeg_with_stray_bytes(tmp_path, 0xDB, truncate=True)
    ds = make_dataset()
    ds.add("j/stray.jpg", src)
    res = run(["to-npz", ds.root, tmp_path / "j.npz"], expect_rc=H.EX_DATAERR)
    H.assert_one_line_error(res, "stray.jpg", "--allow-truncated-jpeg accepts it")
    run(["to-npz", ds.root, tmp_path / "j.npz", "--allow-truncated-jpeg"])
