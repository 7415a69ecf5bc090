#!/usr/bin/env bash
# Builds the release binary, .build/release/imgconv, the one way the set-up, the Debian package
# and the benchmark all build it: with --static-swift-stdlib, so the Swift runtime and FoundationEssentials
# are linked in, as the .deb ships it (a run starts in half the time: no 30 shared libraries to
# load and relocate). One set of flags, so no script compiles the package a second time for its
# own. Progress lines are left out, and so is the linker's warning that the toolchain's static
# Foundation uses mktemp (that library's own code). The exit status is swift build's.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --static-swift-stdlib --product imgconv 2>&1 |
  { grep -Ev '^\[[0-9]+/[0-9]+\]|swift_static/.*warning: the use of .mktemp. is dangerous' || true; }
