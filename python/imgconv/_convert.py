"""What the README's snippets build by hand, one image at a time: channels first, floats in [0, 1]."""

from __future__ import annotations

import numpy as np

LAYOUTS = (None, "nhwc", "nchw")


def check_options(split, layout, float01):
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be None (as stored), 'nhwc' or 'nchw', not {layout!r}")
    if float01:
        split.image_max()  # refuses signed integer images by name


def image_shape(split, layout):
    """The shape of one converted image."""
    s = tuple(split._xs.shape[1:])
    if layout is None:
        return s
    if split.layout == "nhw":
        s = s + (1,)
        stored = "nhwc"
    else:
        stored = split.layout
    if stored == layout:
        return s
    return (s[2], s[0], s[1]) if layout == "nchw" else (s[1], s[2], s[0])


def convert_image(x: np.ndarray, split, layout, float01, scale):
    """x: one image as stored. layout None keeps it; 'nchw' gives (C, H, W), 'nhwc' (H, W, C), an
    (H, W) image gaining a channel axis of 1. float01: float32 divided by `scale` (255 for uint8,
    65535 for uint16, 1 for float images)."""
    if layout is not None:
        if x.ndim == 2:
            x = x[:, :, None]
            stored = "nhwc"
        else:
            stored = split.layout
        if stored != layout:
            x = x.transpose(2, 0, 1) if layout == "nchw" else x.transpose(1, 2, 0)
        x = np.ascontiguousarray(x)
    if float01:
        x = x.astype(np.float32)
        if scale != 1.0:
            x /= np.float32(scale)
    return x
