"""`imgconv card`: the HTML card is loaded in headless Debian chromium (driven by playwright, no
network: every request but the card's own file fails the test); the DOM must show what numpy reads
from the output (classes, thumbnails per class, shapes and dtypes), a clicked thumbnail its tensor
row and label, and the planted duplicates and leaks of a folder's dry run."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from interop_helpers import load_json, npz_manifest_path, run_imgconv
from test_check import planted_dataset

CHROMIUM = shutil.which("chromium")
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - reported as a skip
    sync_playwright = None


def _browser_or_skip():
    if CHROMIUM is None:
        print("SKIP reason: Debian's chromium is not installed")
        pytest.skip("chromium is not installed")
    if sync_playwright is None:
        print("SKIP reason: the playwright package is not installed")
        pytest.skip("playwright is not installed")


def open_card(card: Path, shot: Path | None = None):
    """Loads the card offline; returns (facts read from the DOM, console errors, foreign requests, load seconds)."""
    _browser_or_skip()
    errors, foreign = [], []
    url = card.resolve().as_uri()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            def route(r):
                if r.request.url == url:
                    r.continue_()
                else:
                    foreign.append(r.request.url)
                    r.abort()
            page.route("**/*", route)
            start = time.monotonic()
            page.goto(url, wait_until="load")
            loaded = time.monotonic() - start
            facts = page.evaluate("""() => ({
                classes: [...document.querySelectorAll('#classes tr.class')].map(tr => ({
                    index: +tr.dataset.index, name: tr.querySelector('.class-name').textContent,
                    counts: [...tr.querySelectorAll('.count')].map(td => +td.textContent),
                    thumbs: [...tr.querySelectorAll('img.thumb')].map(i => ({split: i.dataset.split, row: +i.dataset.row,
                        w: i.naturalWidth, loaded: i.complete && i.naturalWidth > 0}))})),
                tensors: [...document.querySelectorAll('#tensors .tensor')].map(t => Object.fromEntries(
                    [...t.querySelectorAll('dd')].map(dd => [dd.className, dd.textContent]).concat([['split', t.dataset.split]]))),
                dups: [...document.querySelectorAll('#check .dup')].map(d => ({leak: d.classList.contains('leak'),
                    files: [...d.querySelectorAll('.dup-file')].map(f => f.textContent.trim())})),
                skipped: [...document.querySelectorAll('#skipped li')].map(li => li.textContent),
                summary: document.getElementById('summary').textContent,
            })""")
            clicks = []
            for split in sorted({t["split"] for c in facts["classes"] for t in c["thumbs"]}):
                thumbs = page.locator(f'img.thumb[data-split="{split}"]')
                for k in sorted({0, thumbs.count() - 1}):
                    thumbs.nth(k).click()
                    page.locator("#zoom").hover(position={"x": 3, "y": 3})
                    clicks.append({key: page.locator(f"#detail-{key}").text_content()
                                   for key in ("split", "row", "label", "onehot", "path", "sha")}
                                  | {"hover": page.locator("#hover").text_content(),
                                     "selected_row": int(thumbs.nth(k).get_attribute("data-row"))})
            if shot is not None:
                page.screenshot(path=str(shot), full_page=False)
        finally:
            browser.close()
    return facts, clicks, errors, foreign, loaded


def check_against_npz(npz: Path, facts, clicks, samples: int):
    manifest = load_json(npz_manifest_path(npz))
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    names = [c["name"] for c in manifest["classes"]]
    assert [c["name"] for c in facts["classes"]] == names
    splits = [t["split"] for t in facts["tensors"]]
    for t in facts["tensors"]:
        xs, ys = arrays[t["name"]], arrays[t["labels-name"]]
        assert t["shape"] == "(" + ", ".join(map(str, xs.shape)) + ")"
        assert t["dtype"] == str(xs.dtype)
        assert t["labels-shape"] == "(" + ", ".join(map(str, ys.shape)) + ")" and t["labels-dtype"] == str(ys.dtype)
        assert t["labels-form"] == ("onehot" if ys.ndim == 2 else "index")
        mean = [float(v) for v in t["mean"].split(", ")]
        assert np.allclose(mean, xs.reshape(-1, xs.shape[-1]).astype(np.float64).mean(axis=0), rtol=1e-4)
    for c in facts["classes"]:
        for si, split in enumerate(splits):
            ys = arrays[facts["tensors"][si]["labels-name"]]
            labels = ys.argmax(axis=1) if ys.ndim == 2 else ys
            rows = np.flatnonzero(labels == c["index"])
            assert c["counts"][si] == len(rows)
            shown = [t["row"] for t in c["thumbs"] if t["split"] == split]
            assert shown == list(rows[:samples]), (c["name"], split)
        assert all(t["loaded"] for t in c["thumbs"])
    for click in clicks:
        si = splits.index(click["split"])
        xs_name = facts["tensors"][si]["name"]
        ys = arrays[facts["tensors"][si]["labels-name"]]
        row = click["selected_row"]
        assert click["row"] == f"{xs_name}[{row}]"
        label = int(ys[row].argmax()) if ys.ndim == 2 else int(ys[row])
        assert click["label"] == f"{label} ({names[label]})"
        if ys.ndim == 2:
            assert click["onehot"] == "[" + ", ".join(str(int(v)) for v in ys[row]) + "]"
        # The stored values of the top-left pixel, on hover.
        first = arrays[xs_name][row][0, 0].reshape(-1)
        prefix, shown = click["hover"].split(": ")
        assert prefix == "sample (0, 0)"
        if first.dtype.kind in "ui":
            assert shown == ", ".join(str(int(v)) for v in first)
        else:   # shown with 6 significant digits
            assert np.allclose([float(v) for v in shown.split(", ")], first.astype(np.float64), rtol=1e-5, atol=1e-7)
    return manifest


def test_card_of_samples_output(samples_root, tmp_path):
    out = tmp_path / "samples.npz"
    run_imgconv(["to-npz", samples_root, out, "--size", "32x32", "--labels", "onehot", "-q"])
    card = tmp_path / "card.html"
    run_imgconv(["card", out, "-o", card, "--samples", "3", "-q"])
    again = tmp_path / "again.html"
    run_imgconv(["card", out, "-o", again, "--samples", "3", "-q"])
    assert card.read_bytes() == again.read_bytes()   # deterministic
    facts, clicks, errors, foreign, loaded = open_card(card, tmp_path / "card.png")
    print(f"samples card: {card.stat().st_size / 1024:.1f} KB, loaded in {loaded:.2f} s")
    assert errors == [] and foreign == []
    assert len(clicks) >= 2
    manifest = check_against_npz(out, facts, clicks, samples=3)
    by_path = {f["path"]: f for f in manifest["files"]}
    for click in clicks:
        assert click["sha"] == by_path[click["path"]]["sha256"]
    assert facts["dups"] == []
    assert facts["summary"].startswith("npz, 4 classes")


def test_card_of_a_folder_dry_run_shows_duplicates_and_leaks(tmp_path):
    root = tmp_path / "data"
    planted_dataset(root)
    card = tmp_path / "card.html"
    before = sorted(p.name for p in tmp_path.iterdir())
    run_imgconv(["card", root, "-o", card, "--size", "64x64", "--skip-bad", "--samples", "4", "-q"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before + ["card.html"])   # no tensor left
    # The same options through a real conversion: the card's facts equal that output's.
    out = tmp_path / "out.npz"
    run_imgconv(["to-npz", root, out, "--size", "64x64", "--skip-bad", "-q"])
    facts, clicks, errors, foreign, loaded = open_card(card)
    assert errors == [] and foreign == []
    check_against_npz(out, facts, clicks, samples=4)
    leaks = [d for d in facts["dups"] if d["leak"]]
    assert len(leaks) == 3 and len(facts["dups"]) == 3
    assert any("train/1/cat.jpg" in f for d in leaks for f in d["files"])
    assert any("test/1/cat_copy.jpg" in f for d in leaks for f in d["files"])
    assert any(s.startswith("train/1/truncated.jpg") for s in facts["skipped"])
    assert facts["summary"].startswith("folder (dry run of the conversion), 3 classes")


def test_card_bad_invocations(tmp_path):
    run_imgconv(["card", tmp_path / "missing.npz", "-o", tmp_path / "c.html"], expect_rc=None)
    assert not (tmp_path / "c.html").exists()
    res = run_imgconv(["card", tmp_path, "--samples", "0", "-o", tmp_path / "c.html"], expect_rc=64)
    assert "--samples" in res.stderr


def test_card_of_a_folder_as_float32(samples_root, tmp_path):
    """A float32 dry run: the card's shapes, dtypes, means and hovered values equal a real conversion's."""
    opts = ["--size", "24x24", "--dtype", "float32", "--scale", "unit", "--labels", "onehot", "-q"]
    card = tmp_path / "card.html"
    run_imgconv(["card", samples_root, "-o", card, "--samples", "2", "--no-check", *opts])
    out = tmp_path / "out.npz"
    run_imgconv(["to-npz", samples_root, out, *opts])
    facts, clicks, errors, foreign, loaded = open_card(card)
    assert errors == [] and foreign == []
    assert [t["dtype"] for t in facts["tensors"]] == ["float32"]
    check_against_npz(out, facts, clicks, samples=2)
    assert "not run" in open_card_text(card)


def open_card_text(card: Path) -> str:
    """The check section's text as written (the page fills it from the embedded data)."""
    html = card.read_text()
    data = json.loads(html.split('id="card-data">', 1)[1].split("</script>", 1)[0])
    return "not run" if "check" not in data else "ran"
