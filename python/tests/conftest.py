"""Fixtures of the Python reader's tests: the interop suite's (the binary, `run`, `make_dataset`),
and the package imported from this tree (python/), whether or not it is installed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(REPO / "Tests" / "Interop"))

_spec = importlib.util.spec_from_file_location("interop_conftest", REPO / "Tests" / "Interop" / "conftest.py")
_interop = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_interop)

imgconv_bin = _interop.imgconv_bin
run = _interop.run
make_dataset = _interop.make_dataset
outdir = _interop.outdir
