#!/usr/bin/env python3
"""Compare the .npz outputs of one benchmark sitting (written by run.sh).

usage: check_outputs.py TOOLS.tsv > checks.tsv
TOOLS.tsv rows: section, tool, output .npz, expected number of images.
For every section the reference is Pillow's output (`pillow`); in the `compress` section it is
imgconv's stored output (`imgconv_stored`), and in `draft112` Pillow's output with `Image.draft`
(`pillow_draft`, which `--jpeg-draft` is meant to equal; the Pillow script without draft then
differs). Each output is checked for N, trainYs equal to the reference's, and trainXs byte-equal to
the reference's (else mean and max absolute difference). The job-floor probe's output (`floor`, a
.npy of the pixels alone) is checked against imgconv's trainXs in the same section: the same shape
and the same bytes.
Prints TSV: section, tool, shape, dtype, verdict, detail.
"""
import sys
import zipfile

import numpy as np

REF = {"compress": "imgconv_stored", "draft112": "pillow_draft", "cold_jpeg256": "pillow_cold", "cold_png64": "pillow_cold"}


def shape_of(path, member="trainXs.npy"):
    with zipfile.ZipFile(path) as z, z.open(member) as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    return shape, dtype


def compare(x, y):
    """mean and max absolute difference, in chunks (arrays can be ~1 GB)."""
    total, mx, n = 0.0, 0, 0
    step = max(1, (64 << 20) // max(1, x[0].nbytes))
    for i in range(0, len(x), step):
        d = np.abs(x[i:i + step].astype(np.int32) - y[i:i + step].astype(np.int32))
        total += float(d.sum()); mx = max(mx, int(d.max())); n += d.size
    return total / n, mx


def check_floor(sec, tool, out, n, imgconv_out):
    """the job floor's .npy against imgconv's trainXs: shape, dtype and bytes (in chunks)."""
    x = np.load(out, mmap_mode="r")
    head = f"{sec}\t{tool}\t{x.shape}\t{x.dtype}\t"
    if x.shape[0] != n:
        return head + f"WRONG N\tN={x.shape[0]}"
    if not imgconv_out:
        return head + "unchecked\tno imgconv output in this section"
    with np.load(imgconv_out) as z:
        ref = z["trainXs"]
    if x.shape != ref.shape or x.dtype != ref.dtype:
        return head + f"SHAPE DIFFERS\timgconv's {ref.shape} {ref.dtype}"
    step = max(1, (64 << 20) // max(1, ref[0].nbytes))
    for i in range(0, len(ref), step):
        if np.asarray(x[i:i + step]).tobytes() != ref[i:i + step].tobytes():
            mean, mx = compare(np.asarray(x), ref)
            return head + f"DIFFERS from imgconv's\tmean abs diff {mean:.3f}, max {mx}"
    return head + "identical to imgconv's\t"


def main():
    rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
    sections = {}
    for sec, tool, out, n in rows:
        sections.setdefault(sec, []).append((tool, out, int(n)))
    print("section\ttool\tshape\tdtype\tverdict\tdetail")
    for sec, tools in sections.items():
        if sec == "mem10x":  # shapes only: these are large and hold the same images
            for tool, out, n in tools:
                shape, dtype = shape_of(out)
                want = n * (10 if tool.endswith("x10") else 1)
                ok = shape[0] == want
                print(f"{sec}\t{tool}\t{shape}\t{dtype}\t{'ok' if ok else 'WRONG N'}\tN={shape[0]}")
            continue
        ref_name = REF.get(sec, "pillow")
        ref = dict((t, o) for t, o, _ in tools).get(ref_name)
        rx = ry = None
        if ref:
            with np.load(ref) as z:
                rx, ry = z["trainXs"], z["trainYs"]
        for tool, out, n in tools:
            if tool in ("floor", "floor_hash", "floor_direct", "floor_cold"):
                print(check_floor(sec, tool, out, n, dict((t, o) for t, o, _ in tools).get("imgconv")), flush=True)
                continue
            with np.load(out) as z:
                x, y = z["trainXs"], z["trainYs"]
            detail = []
            verdict = "ok"
            if x.shape[0] != n or y.shape != (n,):
                verdict = "WRONG N"
            if tool == ref_name:
                verdict = "reference" if verdict == "ok" else verdict
            elif rx is not None:
                if y.dtype != np.int64 or not np.array_equal(y, ry):
                    verdict = "LABELS DIFFER"
                elif x.shape != rx.shape or x.dtype != rx.dtype:
                    verdict = "SHAPE DIFFERS"
                    detail.append(f"ref {rx.shape} {rx.dtype}")
                elif np.array_equal(x, rx):
                    verdict = "identical"
                else:
                    mean, mx = compare(x, rx)
                    verdict = "differs"
                    detail.append(f"mean abs diff {mean:.3f}, max {mx}")
            print(f"{sec}\t{tool}\t{x.shape}\t{x.dtype}\t{verdict}\t{'; '.join(detail)}", flush=True)
            del x, y


if __name__ == "__main__":
    main()
