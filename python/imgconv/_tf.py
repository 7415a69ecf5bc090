"""to_tf(): a split as a tf.data.Dataset of (image, label), read through the moving window."""

from __future__ import annotations

import numpy as np

from ._convert import check_options, convert_image, image_shape


def to_tf(split, *, layout=None, float01=False, read_rows: int | None = None):
    """Elements (image, label) in tensor order: the image in the stored dtype and layout (float32
    in [0, 1] with float01=True, (C, H, W) with layout='nchw'), the label an int64 scalar whatever the
    stored dtype (one-hot: the row in its dtype). Batch, shuffle and prefetch as any tf.data.Dataset. Each iteration opens the output
    anew and reads `read_rows` images at a time (default: about 16 MiB), so memory stays flat on any size."""
    try:
        import tensorflow as tf
    except ImportError:
        raise ImportError("imgconv.to_tf needs TensorFlow (pip install tensorflow-cpu)") from None
    check_options(split, layout, float01)
    path, name = split.path, split.name
    scale = split.image_max() if float01 else 1.0
    xdt = "float32" if float01 else split._xs.dtype.newbyteorder("=").name
    ys_shape = tuple(split._ys.shape[1:]) if split.onehot else ()
    ydt = split._ys.dtype.newbyteorder("=").name if split.onehot else "int64"

    def gen():
        from ._reader import open_output
        with open_output(path) as ds:
            s = ds[name]
            for xb, yb in s.batches(read_rows or s.read_rows()):
                for x, y in zip(xb, yb):
                    yield convert_image(x, s, layout, float01, scale), y if s.onehot else np.int64(y)

    spec = (tf.TensorSpec(shape=image_shape(split, layout), dtype=tf.as_dtype(xdt)),
            tf.TensorSpec(shape=ys_shape, dtype=tf.as_dtype(ydt)))
    ds = tf.data.Dataset.from_generator(gen, output_signature=spec)
    return ds.apply(tf.data.experimental.assert_cardinality(len(split)))
