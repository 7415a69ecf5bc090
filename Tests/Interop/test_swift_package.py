"""imgconv as a versioned Swift dependency (issue 17, item 1): a local clone of this repository,
tagged, is what a consumer package names by URL and version (`.package(url:, from:)`, which
SwiftPM refuses when a target uses unsafe flags); the consumer imports `ImgConv` only, converts
samples/, verifies the output against its sources and reads it back through the read model. The
tensor it writes equals the CLI's for the same options, byte for byte. One debug build of the
consumer and its dependencies, a few minutes; skipped without swift or git."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import interop_helpers as H

REPO = Path(__file__).resolve().parents[2]

CONSUMER_MANIFEST = """// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "consumer",
    dependencies: [
        .package(url: "{url}", from: "1.0.0"),
    ],
    targets: [
        .executableTarget(name: "consumer", dependencies: [.product(name: "ImgConv", package: "imgconv")]),
    ]
)
"""

# Convert, verify, read back: what the README's "Use from Swift" shows.
CONSUMER_MAIN = """import ImgConv

let root = CommandLine.arguments[1], output = CommandLine.arguments[2]
var options = ConversionOptions()
options.shaping.size = (height: 32, width: 32)
let writer = ContainerFormat.npz.makeWriter(path: output, settings: WriterSettings())
let summary = try Converter(options: options).convert(source: .folders(root), writer: writer,
                                                      outputName: "out.npz", formatName: "npz")
let report = try Verifier(jobs: 2).verify(path: output, against: root)
let dataset = try LabeledDataset(path: output)
let labels = try dataset.labels(dataset.splits[0])
print("images \\(summary.images) checks \\(report.checks.count) classes \\(dataset.classNames.joined(separator: ",")) labels \\(labels.count)")
"""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def test_a_consumer_package_depends_on_a_tagged_clone(samples_root, tmp_path):
    swift, git = _tool("swift"), _tool("git")
    if not (REPO / ".git").exists():
        pytest.skip("the repository has no .git (not a clone)")
    clone = tmp_path / "imgconv"
    subprocess.run([git, "clone", "-q", "--no-hardlinks", str(REPO), str(clone)], check=True)
    # The working tree as it is (tests run before a commit too), committed and tagged in the clone.
    shutil.copytree(REPO, clone, dirs_exist_ok=True, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", ".build*", ".venv", "__pycache__", "*.egg-info", "bench"))
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    subprocess.run([git, "-C", str(clone), "add", "-A"], check=True, env=env)
    subprocess.run([git, "-C", str(clone), "commit", "-q", "--allow-empty", "-m", "as tested"], check=True, env=env)
    subprocess.run([git, "-C", str(clone), "tag", "1.0.0"], check=True, env=env)

    consumer = tmp_path / "consumer"
    (consumer / "Sources" / "consumer").mkdir(parents=True)
    (consumer / "Package.swift").write_text(CONSUMER_MANIFEST.format(url=clone.as_uri()))
    (consumer / "Sources" / "consumer" / "main.swift").write_text(CONSUMER_MAIN)
    build = subprocess.run([swift, "build", "--package-path", str(consumer)], capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    assert "unsafe" not in build.stderr

    out = tmp_path / "swift.npz"
    binary = consumer / ".build" / "debug" / "consumer"
    res = subprocess.run([str(binary), str(samples_root), str(out)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    classes = ",".join(H.expected_classes(samples_root))
    n = len(H.expected_files(samples_root))
    assert f"images {n} " in res.stdout and f"classes {classes} labels {n}" in res.stdout, res.stdout
    cli = tmp_path / "cli.npz"
    H.run_imgconv(["to-npz", samples_root, cli, "--size", "32x32", "-q"])
    a, b = np.load(out), np.load(cli)
    assert a["trainXs"].tobytes() == b["trainXs"].tobytes() and a["trainYs"].tobytes() == b["trainYs"].tobytes()
