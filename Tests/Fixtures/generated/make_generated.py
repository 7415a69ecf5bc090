#!/usr/bin/env python3
"""Regenerate the project-made fixtures in Tests/Fixtures/generated/.

    python3 Tests/Fixtures/generated/make_generated.py

The two JPEGs stand in for jpeg-decoder's reftest ycck.jpg / rgb.jpg, which
were not copied (their upstream picture's licence is not stated; see
README.md); the TIFF fills a gap in the copied TIFF selection (8-bit RGB tiles
that do not divide the image, so the right and bottom tiles are partial).
Source pictures: skimage.data.chelsea() and skimage.data.coffee() (both CC0).
Needs scikit-image, Pillow, NumPy, tifffile and imagecodecs (its libjpeg-turbo
encoder can write YCCK and RGB-coded JPEGs, which Pillow cannot; tifffile uses
it for LZW). Writes next to itself.
"""
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile
from PIL import Image
from skimage import data

OUT = Path(__file__).resolve().parent


def main():
    # 64x64 cat face: the crop and scaling of samples/cat/cat_01.jpg
    rgb8 = np.asarray(Image.fromarray(data.chelsea()).crop((80, 0, 380, 300))
                      .resize((64, 64), Image.Resampling.LANCZOS))
    rgb = rgb8.astype(np.float64) / 255.0

    # naive RGB -> CMYK with full black generation (K = 1 - max(R, G, B)), so K is a real channel
    k = 1.0 - rgb.max(axis=2)
    den = np.where(k < 1.0, 1.0 - k, 1.0)
    cmy = (1.0 - rgb - k[..., None]) / den[..., None]
    cmyk = np.round(np.concatenate([cmy, k[..., None]], axis=2) * 255.0).astype(np.uint8)
    np.save(OUT / "cmyk-source.npy", cmyk)

    # cmyk-ycck.jpg: Adobe YCCK (APP14 transform 2). Adobe/Photoshop CMYK JPEGs store inverted
    # samples (0 = full ink), so the inverted CMYK is encoded; readers that follow that convention
    # (libjpeg via Pillow, Photoshop, browsers) give back `cmyk` (up to JPEG loss).
    ycck = imagecodecs.jpeg8_encode(255 - cmyk, level=90, colorspace="CMYK", outcolorspace="YCCK")
    (OUT / "cmyk-ycck.jpg").write_bytes(ycck)

    # rgb-adobe0.jpg: 3 components stored as R, G, B (component ids 'R','G','B', APP14 transform 0),
    # no YCbCr conversion; a decoder must not apply the YCbCr->RGB matrix
    rgbjpg = imagecodecs.jpeg8_encode(rgb8, level=90, colorspace="RGB", outcolorspace="RGB")
    (OUT / "rgb-adobe0.jpg").write_bytes(rgbjpg)

    np.save(OUT / "rgb-source.npy", rgb8)

    # tiled-partial-rgb.tif: 75x53 RGB 8-bit, 16x16 tiles (5 x 4 tiles, the last column and row
    # partial), LZW with horizontal predictor; lossless, so a reader must return exactly the .npy
    coffee = np.asarray(Image.fromarray(data.coffee()).crop((150, 0, 450, 212))
                        .resize((75, 53), Image.Resampling.LANCZOS))
    tifffile.imwrite(OUT / "tiled-partial-rgb.tif", coffee, photometric="rgb", tile=(16, 16),
                     compression="lzw", predictor=True, metadata=None, software=False)
    np.save(OUT / "tiled-partial-rgb.npy", coffee)

    for name in ("cmyk-ycck.jpg", "rgb-adobe0.jpg", "cmyk-source.npy", "rgb-source.npy",
                 "tiled-partial-rgb.tif", "tiled-partial-rgb.npy"):
        print(f"{name}\t{(OUT / name).stat().st_size}")


if __name__ == "__main__":
    main()
