"""to_torch(): a split as a torch.utils.data.Dataset that DataLoader's worker processes can share."""

from __future__ import annotations

import os

import numpy as np

try:
    import torch
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover - the error names the missing package when used
    torch = None
    _TorchDataset = object

from ._convert import check_options, convert_image


class SplitDataset(_TorchDataset):
    """Images and labels of one split of an imgconv output, read on demand.

    Each process (the main one, every DataLoader worker, forked or spawned) opens the output
    itself on its first item: what is pickled to a worker is the path and the split's name, never
    a mapping or an HDF5 handle. Items are (image, label): the image a torch tensor in the stored
    dtype and layout (float32 in [0, 1] with float01=True, (C, H, W) with layout='nchw'), or
    transform(image as a numpy array) when a transform is given; the label a 0-d int64 tensor whatever
    the stored dtype (IDX: uint8, int16, int32), as cross_entropy takes it (one-hot labels: the row
    as a tensor of their dtype)."""

    def __init__(self, split, transform=None, layout=None, float01=False):
        if torch is None:
            raise ImportError("imgconv.to_torch needs PyTorch (pip install torch)")
        check_options(split, layout, float01)
        self.path, self.split_name = split.path, split.name
        self.transform, self.layout, self.float01 = transform, layout, float01
        self.scale = split.image_max() if float01 else 1.0
        self._n = len(split)
        self._split, self._pid = split, os.getpid()

    def _get_split(self):
        if self._split is None or self._pid != os.getpid():
            from ._reader import open_output
            self._split, self._pid = open_output(self.path)[self.split_name], os.getpid()
        return self._split

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_split"] = None
        return state

    def __len__(self):
        return self._n

    def __getitem__(self, i):
        split = self._get_split()
        x, y = split[i]
        x = convert_image(x, split, self.layout, self.float01, self.scale)
        x = self.transform(x) if self.transform is not None else torch.from_numpy(x)
        y = torch.from_numpy(np.asarray(y) if split.onehot else np.asarray(y, dtype=np.int64))
        return x, y


def to_torch(split, transform=None, *, layout=None, float01=False) -> SplitDataset:
    """split: a Split of imgconv.open(...). The README's snippet by hand (NCHW float in [0, 1]):
    to_torch(split, layout='nchw', float01=True)."""
    return SplitDataset(split, transform, layout, float01)
