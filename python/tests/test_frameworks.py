"""to_torch and to_tf give what the README's snippets build by hand from np.load: a DataLoader
with 2 worker processes and a batched tf.data pipeline read the same bytes. Skipped, with the
reason printed (pytest -rs), when torch or tensorflow cannot be imported."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import imgconv
from reader_helpers import build_split_root, reference

try:
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:
    _TorchDataset = object


def need(module: str, package: str):
    """The framework, or a skip that prints why (scripts/test.sh runs pytest with -rs)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        pytest.skip(f"{module} cannot be imported ({e}); scripts/setup.sh --test installs {package} when pip can")

FORMATS = {
    "npz": ("to-npz", "out.npz", []),
    "npz-nchw-onehot": ("to-npz", "out.npz", ["--layout", "nchw", "--labels", "onehot"]),
    "h5": ("to-hdf5", "out.h5", []),
    "idx-gray": ("to-idx", "idxdir", []),
}


def make(run, make_dataset, tmp_path, case, **kw):
    cmd, name, extra = FORMATS[case]
    if case == "idx-gray":
        kw.setdefault("channels", 1)
    root = build_split_root(make_dataset, per_class=(7, 2, 3), **kw)
    out = tmp_path / name
    run([cmd, root, out, "-q", *extra])
    return out, {"to-npz": "npz", "to-hdf5": "h5", "to-idx": "idx"}[cmd]


def by_hand(xs: np.ndarray, layout: str, nchw: bool, float01: bool) -> np.ndarray:
    """The README's snippet: permute to NCHW, .float() / 255 (65535 for uint16)."""
    x = xs
    if x.ndim == 3 and nchw:
        x = x[..., None]
        layout = "nhwc"
    if nchw and layout == "nhwc":
        x = x.transpose(0, 3, 1, 2)
    if float01:
        x = x.astype(np.float32) / np.float32(np.iinfo(xs.dtype).max)
    return x


@pytest.mark.parametrize("case", list(FORMATS))
def test_torch_dataloader_two_workers(run, make_dataset, tmp_path, case):
    torch = need("torch", "a CPU-only torch")
    out, fmt = make(run, make_dataset, tmp_path, case)
    ref = reference(out, fmt)
    ds = imgconv.open(out)
    layout = ds.manifest["options"]["layout"]
    for name, (rx, ry) in ref["splits"].items():
        for float01 in (False, True):
            tds = imgconv.to_torch(ds[name], layout="nchw" if float01 else None, float01=float01)
            assert len(tds) == len(rx)
            loader = torch.utils.data.DataLoader(tds, batch_size=3, shuffle=False, num_workers=2)
            xb, yb = zip(*loader)
            x, y = torch.cat(xb).numpy(), torch.cat(yb).numpy()
            expected = by_hand(rx, layout, nchw=float01, float01=float01)
            assert x.shape == expected.shape and x.dtype == expected.dtype
            assert np.array_equal(x, expected), f"{name}: pixels differ (float01={float01})"
            ey = ry if ry.ndim == 2 else ry.astype(np.int64)  # index labels as int64, as the snippet's trainYs
            assert y.dtype == ey.dtype and np.array_equal(y, ey), f"{name}: labels differ"
    ds.close()


def test_torch_spawned_workers_shuffle_and_transform(run, make_dataset, tmp_path):
    torch = need("torch", "a CPU-only torch")
    out, fmt = make(run, make_dataset, tmp_path, "h5")
    rx, ry = reference(out, fmt)["splits"]["train"]
    split = imgconv.open(out)["train"]
    # the transform gets the stored (H, W, C) numpy image; what it returns is the item
    tds = imgconv.to_torch(split, transform=_double)
    seen = {}
    g = torch.Generator().manual_seed(5)
    loader = torch.utils.data.DataLoader(_Indexed(tds), batch_size=4, shuffle=True, generator=g,
                                         num_workers=2, multiprocessing_context="spawn")
    for idx, x, y in loader:
        for i, xi, yi in zip(idx.tolist(), x.numpy(), y.numpy()):
            seen[i] = (xi, yi)
    assert sorted(seen) == list(range(len(rx)))
    for i, (xi, yi) in seen.items():
        assert np.array_equal(xi, rx[i].astype(np.int32) * 2) and yi == ry[i]


def _double(a: np.ndarray):
    import torch
    return torch.from_numpy(a.astype(np.int32) * 2)


class _Indexed(_TorchDataset):
    """Items with their index, to check a shuffled load."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        x, y = self.inner[i]
        return i, x, y


@pytest.mark.parametrize("case", list(FORMATS))
def test_tf_data_batched(run, make_dataset, tmp_path, case):
    tf = need("tensorflow", "tensorflow-cpu")
    out, fmt = make(run, make_dataset, tmp_path, case, bits=16 if case == "npz" else 8)
    ref = reference(out, fmt)
    ds = imgconv.open(out)
    layout = ds.manifest["options"]["layout"]
    for name, (rx, ry) in ref["splits"].items():
        for float01 in (False, True):
            tds = imgconv.to_tf(ds[name], layout="nchw" if float01 else None, float01=float01, read_rows=4)
            assert int(tds.cardinality()) == len(rx)
            xs, ys = [], []
            for xb, yb in tds.batch(5):
                xs.append(xb.numpy())
                ys.append(yb.numpy())
            x, y = np.concatenate(xs), np.concatenate(ys)
            expected = by_hand(rx, layout, nchw=float01, float01=float01)
            assert x.shape == expected.shape and x.dtype == expected.dtype
            assert np.array_equal(x, expected), f"{name}: pixels differ (float01={float01})"
            ey = ry if ry.ndim == 2 else ry.astype(np.int64)  # index labels as int64, as the snippet's trainYs
            assert y.dtype == ey.dtype and np.array_equal(y, ey), f"{name}: labels differ"
    ds.close()
