#!/usr/bin/env python3
"""Regenerate the imgconv sample dataset (samples/<class>/<file>).

Every file is a 64x64 crop/rescale of a public-domain or CC0 photograph that
ships inside scikit-image (skimage.data); see samples/README.md for sources and
licences.  Run from anywhere:

    python3 samples/make_samples.py

Needs: scikit-image (for the source pictures), Pillow, NumPy, tifffile.
Output is deterministic for fixed library versions (see README.md for the
versions used); other versions of libjpeg/zlib may produce different bytes
but the same kind of file.
"""
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image
from skimage import data

OUT = Path(__file__).resolve().parent
SIZE = (64, 64)


def source(name):
    """Source picture from skimage.data as an 8-bit RGB Pillow image."""
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def tile(name, box):
    """Crop box=(left, top, right, bottom) out of a source picture, scale to 64x64."""
    left, top, right, bottom = box
    assert right - left == bottom - top, "crop boxes are square, so nothing is stretched"
    return source(name).crop(box).resize(SIZE, Image.Resampling.LANCZOS)


def jpeg(img, path):
    # baseline (SOF0, not progressive), quality 90, no EXIF; colour: 4:2:0 chroma subsampling;
    # gray: one component with sampling factors 1x1 (Pillow's "4:4:4"), as cjpeg -grayscale writes it
    subsampling = "4:4:4" if img.mode == "L" else "4:2:0"
    img.save(path, "JPEG", quality=90, subsampling=subsampling, progressive=False, optimize=False)


def png(img, path):
    img.save(path, "PNG")


def palette_png(img, path, colors=256):
    # 8-bit palette PNG (colour type 3); median-cut palette, Floyd-Steinberg dither
    img.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(path, "PNG")


def tiff_pillow(img, path, compression, predictor=1):
    # single-strip RGB TIFF written by Pillow/libtiff; compression: tiff_lzw, tiff_adobe_deflate;
    # predictor 2 = horizontal differencing (TIFF tag 317)
    img.save(path, "TIFF", compression=compression, tiffinfo={317: predictor})


def tiff_tifffile(img, path, **kw):
    # RGB TIFF written by tifffile: no ImageDescription/shape metadata, no Software tag
    tifffile.imwrite(path, np.asarray(img), photometric="rgb", metadata=None, software=False, **kw)


# (class, file name, source picture, crop box (left, top, right, bottom), writer)
PLAN = [
    ("astronaut", "astronaut_01.jpg", "astronaut", (140, 10, 310, 180), jpeg),          # face
    ("astronaut", "astronaut_02.png", "astronaut", (0, 0, 512, 512), png),              # whole picture
    ("astronaut", "astronaut_03.tif", "astronaut", (100, 130, 380, 410),
     lambda im, p: tiff_tifffile(im, p, rowsperstrip=16)),                              # uncompressed, 4 strips
    ("astronaut", "astronaut_04.png", "astronaut", (330, 0, 490, 160), palette_png),    # shuttle model
    ("cat", "cat_01.jpg", "chelsea", (80, 0, 380, 300), jpeg),                          # face
    ("cat", "cat_02.png", "chelsea", (120, 60, 240, 180),
     lambda im, p: png(im.convert("L"), p)),                                            # left eye, 8-bit gray
    ("cat", "cat_03.tif", "chelsea", (180, 150, 330, 300),
     lambda im, p: tiff_pillow(im, p, "tiff_lzw", predictor=2)),                        # nose, LZW + predictor
    ("cat", "cat_04.jpg", "chelsea", (270, 80, 370, 180), jpeg),                        # right eye
    ("coffee", "coffee_01.jpg", "coffee", (150, 0, 450, 300), jpeg),                    # cup
    ("coffee", "coffee_02.png", "coffee", (300, 190, 430, 320), png),                   # spoon
    ("coffee", "coffee_03.tif", "coffee", (100, 0, 500, 400),
     lambda im, p: tiff_tifffile(im, p, tile=(16, 16), compression="zlib")),            # tiled 16x16, Deflate
    ("coffee", "coffee_04.jpg", "coffee", (60, 120, 260, 320), jpeg),                   # saucer and handle
    ("rocket", "rocket_01.jpg", "rocket", (250, 110, 390, 250), jpeg),                  # rocket nose
    ("rocket", "rocket_02.tif", "rocket", (107, 0, 534, 427),
     lambda im, p: tiff_pillow(im, p, "tiff_adobe_deflate")),                           # launch pad, Deflate
    ("rocket", "rocket_03.png", "rocket", (420, 100, 520, 200), palette_png),           # tower top
    ("rocket", "rocket_04.jpg", "rocket", (240, 287, 380, 427),
     lambda im, p: jpeg(im.convert("L"), p)),                                           # pad lights, gray JPEG
]


def main():
    for cls, name, src, box, write in PLAN:
        d = OUT / cls
        d.mkdir(exist_ok=True)
        write(tile(src, box), d / name)
    for cls, name, *_ in PLAN:
        p = OUT / cls / name
        with Image.open(p) as im:
            print(f"{cls}/{name}\t{im.format}\t{im.mode}\t{im.size[0]}x{im.size[1]}\t{p.stat().st_size}")


if __name__ == "__main__":
    main()
