"""Read imgconv's outputs without loading them.

    import imgconv
    ds = imgconv.open("out.npz")          # or an .npy folder, .h5, IDX folder or images file
    train = ds["train"]                   # Split: train.xs, train.ys (memory-mapped), len, [i]
    ds.class_names, ds.manifest
    loader = torch.utils.data.DataLoader(imgconv.to_torch(train, layout="nchw", float01=True),
                                         batch_size=64, shuffle=True, num_workers=2)
    tfds = imgconv.to_tf(train, float01=True).batch(64)
"""

from ._formats import FormatError
from ._reader import Dataset, MappedTensor, Split, open_output as open  # noqa: A004


def to_torch(split, transform=None, *, layout=None, float01=False):
    """A torch.utils.data.Dataset of (image, label) over `split`, safe with worker processes."""
    from ._torch import to_torch as _to_torch
    return _to_torch(split, transform, layout=layout, float01=float01)


def to_tf(split, *, layout=None, float01=False, read_rows=None):
    """A tf.data.Dataset of (image, label) over `split`."""
    from ._tf import to_tf as _to_tf
    return _to_tf(split, layout=layout, float01=float01, read_rows=read_rows)


__all__ = ["open", "to_torch", "to_tf", "Dataset", "Split", "MappedTensor", "FormatError"]
__version__ = "0.1.0"
