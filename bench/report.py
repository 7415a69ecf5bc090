#!/usr/bin/env python3
"""Turn the raw figures of one run.sh sitting into the Markdown report (bench/RESULTS.md).

usage: report.py OUTDIR > RESULTS.md
Reads OUTDIR/{raw,limits,extra,tools,checks,machine,load}.tsv, written by run.sh and check_outputs.py.
"""
import csv
import os
import statistics as st
import sys
import zipfile

OUT = sys.argv[1]
DATASETS = ["jpeg256", "jpegvar", "png64", "mnistlike"]
# rows of the main table: the datasets, and draft112 (jpegvar with --jpeg-draft) after jpegvar
TABLE_SECTIONS = ["jpeg256", "jpegvar", "draft112", "png64", "mnistlike"]
DESC = {
    "jpeg256": "4,000 RGB JPEG 256x256 q90 -> (4000,256,256,3)",
    "jpegvar": "2,000 RGB JPEG ~500x375 -> resized (2000,224,224,3)",
    "draft112": "the jpegvar set -> DCT-scaled decode (1/2, 1/4 or 1/8, never below 112) and resized "
                "(2000,112,112,3); its reference for trainXs is Pillow with `Image.draft('RGB', (112, 112))`, "
                "which `--jpeg-draft` is meant to equal, so the Pillow script without draft (issue 6's peer "
                "for this target) differs",
    "png64": "10,000 RGB PNG 64x64 -> (10000,64,64,3)",
    "mnistlike": "20,000 gray PNG 28x28 -> (20000,28,28,1)",
}
TOOL = {
    "imgconv": "**imgconv** `to-npz`",
    "pillow": "Pillow, 1 process (`peer_pillow.py`)",
    "pillow_mp": "Pillow + `Pool(2)` (`peer_pillow_mp.py`)",
    "opencv": "OpenCV `imread` (`peer_cv2.py`)",
    "simplejpeg": "simplejpeg (`peer_simplejpeg.py`)",
    "pillow_draft": "Pillow + `Image.draft`, 1 process (`peer_pillow.py --draft`)",
    "pillow_mp_draft": "Pillow + `Image.draft` + `Pool(2)` (`peer_pillow_mp.py --draft`)",
}
TABLE_TOOLS = ["imgconv", "pillow", "pillow_draft", "pillow_mp", "pillow_mp_draft", "opencv", "simplejpeg", "floor", "floor_hash", "floor_direct"]
IMGCONV_OPTS = {"jpegvar": " `--size 224x224`", "draft112": " `--size 112x112 --jpeg-draft`"}
PEER_OPTS = {"jpegvar": " `--size 224`", "draft112": " `--size 112`", "mnistlike": " `--gray`"}


def tsv(name):
    p = os.path.join(OUT, name)
    if not os.path.exists(p):
        return []
    with open(p) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def plain(name):
    p = os.path.join(OUT, name)
    if not os.path.exists(p):
        return []
    return [l.rstrip("\n").split("\t") for l in open(p) if l.strip()]


raw = tsv("raw.tsv")
limits = tsv("limits.tsv")
extra = tsv("extra.tsv")
checks = {(r["section"], r["tool"]): r for r in tsv("checks.tsv")}
machine = dict(plain("machine.tsv"))
loads = plain("load.tsv")
tools = plain("tools.tsv")
nimg = {(s, t): int(n) for s, t, _, n in tools}
outfile = {(s, t): o for s, t, o, _ in tools}
RUNS = machine.get("runs", "?")


class Runs:
    def __init__(self, section, tool):
        rows = sorted((r for r in raw if r["section"] == section and r["tool"] == tool and r["round"] != "0"),
                      key=lambda r: int(r["round"]))
        self.by_round = {int(r["round"]): r for r in rows}
        self.wall = [float(r["wall_s"]) for r in rows]
        self.cpu = [float(r["user_s"]) + float(r["sys_s"]) for r in rows]
        self.sys = [float(r["sys_s"]) for r in rows]
        self.rss = [int(r["maxrss_kib"]) / 1024 for r in rows]
        self.other = [float(r["outside_cpu_s"]) / float(r["wall_s"]) for r in rows]
        self.n = nimg.get((section, tool), 0)

    def __bool__(self):
        return bool(self.wall)

    @property
    def med(self):
        return st.median(self.wall)

    @property
    def ips(self):
        return self.n / self.med

    def cpu_cell(self):
        return f"{st.median(self.cpu):.2f} ({st.median(self.sys):.2f})"

    def wall_cell(self):
        return f"{self.med:.2f} [{min(self.wall):.2f}-{max(self.wall):.2f}]"


def shared_members(a, b):
    """compressed bytes of the members that both .npz files hold"""
    with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
        ia = {i.filename: i.compress_size for i in za.infolist()}
        ib = {i.filename: i.compress_size for i in zb.infolist()}
    common = set(ia) & set(ib)
    return sum(ia[m] for m in common), sum(ib[m] for m in common)


def paired(a, b):
    """median over rounds of b.wall / a.wall (how many times faster a is than b), with min and max."""
    rs = [b.by_round[r]["wall_s"] for r in sorted(a.by_round) if r in b.by_round]
    qs = [float(x) / float(a.by_round[r]["wall_s"]) for r, x in zip(sorted(a.by_round), rs)]
    return st.median(qs), min(qs), max(qs)


def limit(dset, variant, threads):
    for r in limits:
        if r["set"] == dset and r["variant"] == variant and r["threads"] == str(threads):
            return float(r["img_per_s"]), float(r["pass_s"])
    return None


def fmt_ratio(q):
    return f"**{q[0]:.2f}x** [{q[1]:.2f}-{q[2]:.2f}]"


def floor_threads(section):
    v = [e["value"] for e in extra if e["section"] == section and e["tool"] == "floor" and e["key"] == "threads"]
    return v[0] if v and v[0] else "?"


def floor_label(section):
    n = floor_threads(section)
    return f"*job floor (list, read, decode, write + sync; {n} thread{'' if n == '1' else 's'})* (`limit/job_floor`)"


def floor_share(section, tool="floor"):
    """imgconv's share of the job floor (or of `floor_hash`, the floor with the hashes): the floor's
    wall over imgconv's in the same round (paired), median [min-max]; None when either is missing."""
    ic, fl = Runs(section, "imgconv"), Runs(section, tool)
    return paired(ic, fl) if ic and fl else None


def check_cell(section, tool):
    c = checks.get((section, tool))
    if not c:
        return ""
    v = c["verdict"]
    return v + (f" ({c['detail']})" if c.get("detail") else "")


lines = []
P = lines.append
targets = []  # (target, measured, ok)

P("# imgconv benchmark results")
P("")
P(f"Written by `bench/run.sh` on {machine.get('date', '?')} ({int(machine.get('elapsed_s', 0)) // 60} min). "
  "imgconv is measured against the tools users would pick instead, **in the same sitting**: for each dataset "
  f"every tool runs once as a warm-up, then {RUNS} rounds run every tool once in turn (A B C D, A B C D, ...). "
  "Every figure is a **whole process** (interpreter start-up, imports, listing, decoding, stacking, writing the "
  "`.npz`; for imgconv also its manifest with the tensors' checksums and the sources' SHA-256s), the input files are in the page cache (read before "
  "timing), the previous output is deleted and `sync`ed before each run, and the outputs are stored (not "
  "compressed) `.npz` files unless stated. Wall time is the median of the rounds with [min-max]; images/s = "
  "N / median wall; peak RSS is GNU time's `%M` (largest single process, so for `Pool(2)` the parent), the "
  "maximum over the rounds; CPU s is user+sys, median, with the sys part in brackets. **imgconv ÷ tool** is imgconv's throughput over the "
  "tool's, *paired*: the tool's wall divided by imgconv's wall in the same round, median [min-max] over the "
  "rounds. For the job floor row it is the same paired ratio, read as imgconv's share of the floor (0.85x = "
  "imgconv runs at 85% of the floor's speed): `limit/job_floor` is a whole process timed in the same rounds that "
  "does only the job's irreducible work (list the set, read each file, decode it on the default threads with "
  "the libraries imgconv uses, write the pixels in order into one file with early writeback, fdatasync, rename: "
  "no hashing, no manifest, no labels). For the decode-only limit rows it is imgconv's images/s over the probe's "
  "(so 0.80x = 80% of the limit). \"Other load\" is the CPU time the rest of the machine used during the run (from `/proc/stat`, minus "
  "the process's own), in cores, maximum over the rounds: above about 0.2 the run was disturbed, unless the timed runs had a higher priority (`NICE` below), "
  "in which case the other job mostly ran on the core a single-process tool left idle. "
  "The inputs are re-read before every run and memory is pre-touched (see `bench/README.md`: this VM "
  "drops idle page cache and hands freed memory back to its host).")
if RUNS != "5":
    P("")
    P(f"**{RUNS} rounds instead of the default 5** (`RUNS={RUNS}`): the medians of runs of a second or less "
      "move by more than the targets' margins over 5 rounds on this VM (see `bench/README.md`).")
P("")

# ------------------------------------------------------------------ machine
P("## Machine and versions")
P("")
P("| | |")
P("|---|---|")
rows = [
    ("CPU", f"{machine.get('cpu', '?')} ({machine.get('cpu_detail', '').strip().rstrip(';')})"),
    ("cores / RAM", f"{machine.get('cores', '?')} / {machine.get('ram', '?')}"),
    ("OS", machine.get("os", "?")),
    ("imgconv", f"{machine.get('imgconv', '?')}, built with {machine.get('swift', '?')}"),
    ("system libjpeg-turbo (imgconv, limit probe)", f"Debian libturbojpeg0 {machine.get('deb_libturbojpeg0', '?')}"),
    ("system libpng / libspng / libdeflate / zlib", f"{machine.get('deb_libpng16-16', '?')} / {machine.get('deb_libspng0', '?')} / {machine.get('deb_libdeflate0', '?')} / {machine.get('deb_zlib1g', '?')}"),
    ("system libhdf5 (imgconv, `h5_copy_floor`)", f"Debian libhdf5-103-1 {machine.get('deb_libhdf5-103-1', '?')}"),
    ("Python / numpy", f"{machine.get('python', '?')} / {machine.get('numpy', '?')}"),
    ("Pillow", machine.get("pillow", "?")),
    ("OpenCV (opencv-python-headless)", machine.get("opencv", "?")),
    ("simplejpeg", machine.get("simplejpeg", "?")),
    ("limit probes", f"gcc {machine.get('gcc', '?')} `-O2 -march=x86-64-v2`; `job_floor` with {machine.get('clang', '?')} and imgconv's XXH3 builds (`bench/limit/Makefile`)"),
    ("system libisal / libxxhash (imgconv's CRC-32 and XXH3; `job_floor -H`)", f"{machine.get('deb_libisal2', '?')} / {machine.get('deb_libxxhash0', '?')}"),
    ("memory", f"virtio-balloon free-page reporting: {machine.get('balloon_free_page_reporting', '?')}; "
               f"{machine.get('prewarm_mib', '?')} MiB touched before each timed run (`PREWARM_MIB`); "
               f"`QUIET_WAIT={machine.get('quiet_wait', '?')}`, timed runs at nice {machine.get('nice', '0')} (`NICE`)"),
    ("load average (1, 5, 15 min) at start / end", f"{machine.get('load_start', '?')} / {machine.get('load_end', '?')}"),
]
for k, v in rows:
    P(f"| {k} | {v} |")
P("")
trees = [(d, machine[f"tree_{d}"]) for d in DATASETS if f"tree_{d}" in machine]
if trees:
    P("Datasets (`make_dataset.py`, seed 1234; sha256 over each tree): "
      + ", ".join(f"{d} `{h[:12]}`" for d, h in trees) + ".")
    P("")

# ------------------------------------------------------------------ main table
done = [d for d in TABLE_SECTIONS if Runs(d, "imgconv")]
if done:
    P("## imgconv against the peers")
    P("")
    P("| dataset | tool | wall s, median [min-max] | images/s | peak RSS MiB | CPU s (sys) | imgconv ÷ tool | other load | trainXs vs Pillow |")
    P("|---|---|---|---|---|---|---|---|---|")
for d in done:
    ic = Runs(d, "imgconv")
    first = True
    for t in TABLE_TOOLS:
        r = Runs(d, t)
        if not r:
            continue
        if t in ("floor", "floor_hash", "floor_direct"):
            name = floor_label(d) if t == "floor" else \
                "*job floor + the hashes the job must compute (sources' SHA-256, the tensor's XXH3-128 and CRC-32)* (`limit/job_floor -H`)" \
                if t == "floor_hash" else \
                "*job floor writing with direct I/O, as imgconv writes a tensor file of an eighth of the memory or more (not these), at its best: no staging copy (the header padded to 4096 bytes, O_DIRECT from the aligned ring)* (`limit/job_floor -D`)"
            q = paired(ic, r)
            ratio = f"**{q[0]:.2f}x ({100 * q[0]:.0f}%)** [{q[1]:.2f}-{q[2]:.2f}]"
        else:
            name = TOOL[t] + (IMGCONV_OPTS.get(d, "") if t == "imgconv" else PEER_OPTS.get(d, ""))
            ratio = "" if t == "imgconv" else fmt_ratio(paired(ic, r))
        P(f"| {d if first else ''} | {name} | {r.wall_cell()} | {r.ips:,.0f} | {max(r.rss):.0f} | "
          f"{r.cpu_cell()} | {ratio} | {max(r.other):.2f} | {check_cell(d, t)} |")
        first = False
    for variant, label in [("turbojpeg/libpng", "TurboJPEG full decode" if d.startswith("jpeg") else "libpng simplified API"),
                           ("scaled224", "TurboJPEG DCT-scaled decode (smallest M/8 >= 224)"),
                           ("scaled112", "TurboJPEG DCT-scaled decode (smallest M/8 >= 112)"),
                           ("draftscale112", "TurboJPEG DCT-scaled decode as `--jpeg-draft` (1/2, 1/4 or 1/8, >= 112)"),
                           ("libpng-low", "libpng low-level API"),
                           ("libspng", "libspng"),
                           ("libdeflate-mini", "minimal PNG reader + libdeflate")]:
        for th in (1, 2):
            lim = limit(d, variant, th)
            if not lim:
                continue
            P(f"| | *decode-only limit: {label}, {th} thread{'s' if th > 1 else ''}* | *{lim[1]:.3f}* | *{lim[0]:,.0f}* | | | "
              f"{ic.ips / lim[0]:.2f}x ({100 * ic.ips / lim[0]:.0f}%) | | |")
if done:
    P("")
    if any(Runs(d, "floor") for d in done):
        P("The job floor rows: `limit/job_floor DIR OUT.npy`, one process per round like the tools, whose output "
          "(the pixels alone, a `.npy`) is checked byte for byte against imgconv's trainXs; it sets the bar imgconv's "
          "own design is judged against (issue 18), not what any design could reach: it uses the same libraries and "
          "calls as imgconv, and leaves out the work the job needs besides the tensor (the manifest and its "
          "SHA-256s, the labels and class names, the `.npz` container). `job_floor -H` adds the hashes that work "
          "needs, computed as imgconv does (each source's SHA-256 on the thread that read it, libcrypto; the tensor's "
          "XXH3-128, libxxhash, and the `.npz` member's CRC-32, libdeflate, on the writer thread as each run of pixels "
          "is written): it shows how much of the gap to the plain floor those hashes are.")
        P("")
    P("Datasets: " + "; ".join(f"{d}: {DESC[d]}" for d in done) + ". The limit rows come from `limit/decode_bench` "
      "(files preloaded in RAM, decode only into a reused buffer: no listing, no resize, no stacking, no writing), "
      f"median of {RUNS} passes after a warm-up pass."
      + (" For draft112, `-S 112` takes the smallest of all M/8 scales with both sides >= 112 (3/8 for two "
         "thirds of these files, a scale without SIMD code); `-D 112` takes the scale `--jpeg-draft` and "
         "Pillow's `draft` take (1/2 for most files)." if "draft112" in done else ""))
    P("")

# ------------------------------------------------------------------ compress
cs, cc, ss, sc = (Runs("compress", t) for t in ["imgconv_stored", "imgconv_compress", "savez_stored", "savez_compressed"])
raw_bytes = None
if cc and sc:
    def size(tool):
        p = outfile.get(("compress", tool))
        return os.path.getsize(p) if p and os.path.exists(p) else None

    def save_s(tool):
        v = [float(e["value"]) for e in extra if e["section"] == "compress" and e["tool"] == tool
             and e["key"] == "save_s" and e["round"] != "0"]
        return st.median(v) if v else None

    raw_bytes = 4000 * 256 * 256 * 3 + 4000 * 8
    P("## `--compress` against `numpy.savez_compressed` (jpeg256)")
    P("")
    P("`savez_cmp.py` loads the stored jpeg256 tensor (an `.npz` written by imgconv) and writes it again with "
      "`np.savez` or `np.savez_compressed`: it does no decoding at all, so the whole-process ratio is conservative "
      "for imgconv, which decodes the 4,000 JPEGs in the same time.")
    P("")
    P("| tool | wall s, median [min-max] | peak RSS MiB | CPU s (sys) | save step s (in-process) | output MB (% of raw) | other load | trainXs |")
    P("|---|---|---|---|---|---|---|---|")
    for t, r, label in [("imgconv_stored", cs, "imgconv `to-npz` (stored)"), ("imgconv_compress", cc, "imgconv `to-npz --compress`"),
                        ("savez_stored", ss, "`savez_cmp.py ... stored` (np.load + np.savez)"),
                        ("savez_compressed", sc, "`savez_cmp.py ... compressed` (np.load + np.savez_compressed)")]:
        if not r:
            continue
        sz = size(t)
        sv = save_s(t)
        P(f"| {label} | {r.wall_cell()} | {max(r.rss):.0f} | {r.cpu_cell()} | {f'{sv:.2f}' if sv else ''} | "
          f"{sz / 1e6:.1f} ({100 * sz / raw_bytes:.1f}%) | {max(r.other):.2f} | {check_cell('compress', t)} |")
    P("")
    whole = paired(cc, sc)
    P(f"- Whole process: `savez_cmp.py compressed` ÷ `imgconv --compress` = {fmt_ratio(whole)} (paired).")
    added_ic = st.median(float(cc.by_round[r]["wall_s"]) - float(cs.by_round[r]["wall_s"]) for r in cc.by_round if r in cs.by_round) if cs else None
    sv_c, sv_s = save_s("savez_compressed"), save_s("savez_stored")
    if added_ic is not None and sv_c and sv_s:
        P(f"- Time that compression adds: imgconv {added_ic:.2f} s (wall with `--compress` minus without, paired median); "
          f"numpy {sv_c - sv_s:.2f} s (`savez_compressed` save step minus `savez` save step): "
          f"numpy's is **{(sv_c - sv_s) / added_ic:.2f}x** imgconv's." if added_ic > 0 else
          f"- Time that compression adds: imgconv {added_ic:.2f} s (none measurable); numpy {sv_c - sv_s:.2f} s.")
    szi, szn = size("imgconv_compress"), size("savez_compressed")
    mi, mn = shared_members(outfile[("compress", "imgconv_compress")], outfile[("compress", "savez_compressed")])
    P(f"- Output size: files {szi:,} B (imgconv) and {szn:,} B (numpy); the members both hold (trainXs.npy, "
      f"trainYs.npy) take {mi:,} B and {mn:,} B compressed: imgconv's are {100 * mi / mn:.4f}% of numpy's "
      f"(imgconv's file also holds classNames.npy).")
    P("")
    targets.append(("`--compress` >= 3.5x faster than savez_compressed (whole process, paired)", f"{whole[0]:.2f}x", whole[0] >= 3.5))
    targets.append(("`--compress` output no larger than savez_compressed's (same members)", f"{mi:,} B vs {mn:,} B", mi <= mn))

# ------------------------------------------------------------------ 10x memory
m1, m10 = Runs("mem10x", "png64_x1"), Runs("mem10x", "png64_x10")
if m1 and m10:
    P("## Peak RSS with 10x the images (png64)")
    P("")
    P("`data/png64x10` holds the png64 set ten times (hard links, `CLASS/r0..r9/*.png`), so the output has "
      f"100,000 images (1.2 GB tensor). {machine.get('mem_runs', '?')} alternating runs of each after a warm-up.")
    P("")
    P("| folder | images | wall s, median [min-max] | images/s | peak RSS MiB, max [min] | CPU s (sys) | other load |")
    P("|---|---|---|---|---|---|---|")
    for r, label, n in [(m1, "png64", 10000), (m10, "png64x10", 100000)]:
        P(f"| {label} | {n:,} | {r.wall_cell()} | {n / r.med:,.0f} | {max(r.rss):.1f} [{min(r.rss):.1f}] | {r.cpu_cell()} | {max(r.other):.2f} |")
    grow = max(m10.rss) / max(m1.rss)
    P("")
    P(f"Peak RSS at 10x is **{100 * (grow - 1):+.1f}%** against 1x.")
    P("")

# ------------------------------------------------------------------ shards (issue 15)
shinfo = plain("shards.tsv")
NSH = int(next((r[2] for r in shinfo if r[:2] == ["shards", "shards"]), 0))
one2, one1, plan_r = Runs("shards", "one_j2"), Runs("shards", "one_j1"), Runs("shards", "plan")
shard_targets = []
if one2 and plan_r and NSH:
    counts = {int(r[2]): int(r[3]) for r in shinfo if r[:2] == ["shards", "count"]}
    sizes = {r[2]: int(r[3]) for r in shinfo if r[:2] == ["shards", "size"]}
    ident = {}
    for r in shinfo:
        if r[:2] == ["shards", "identical"] and r[2] != "0":
            ident.setdefault(r[3], []).append(r[4])
    n_all = sum(counts.values())

    def shard_runs(kind):
        return [Runs("shards", f"{kind}_{k}") for k in range(NSH)]

    def per_round_sum(runs, field):
        rounds = sorted(set.intersection(*(set(r.by_round) for r in runs)))
        return {rd: sum(float(r.by_round[rd][f]) for r in runs for f in field) for rd in rounds}

    def cpu(run, rd):
        return float(run.by_round[rd]["user_s"]) + float(run.by_round[rd]["sys_s"])

    j1, j2, h5 = shard_runs("shard_j1"), shard_runs("shard_j2"), shard_runs("shard_h5")
    m_npz, m_virt, m_mat, dd, one_h5, h5fl = (Runs("shards", t) for t in ["merge_npz", "merge_h5_virtual", "merge_h5_materialize", "disk_write", "one_h5", "h5_copy_floor"])
    P(f"## Sharded conversion (issue 15): plan, {NSH} shards, merge (jpeg256)")
    P("")
    P(f"The jpeg256 set ({n_all:,} images) converted on one machine (`to-npz`, `--jobs` 2 and 1) and as `plan --shards {NSH}`, "
      f"then each shard `to-npz --plan --shard K/{NSH}` run one after another (once at `--jobs 1`, once at the default "
      "2 threads), then `merge`; the same for HDF5 (`to-hdf5`, shards, `merge` with virtual datasets and with "
      "`--materialize`), and `limit/h5_copy_floor`, libhdf5's floor for that materializing copy (the same parts' "
      "raw chunks read with `H5Dread_chunk` and written whole with `H5Dwrite_chunk` into a file created as imgconv's "
      "writer creates it, its disk write started every 8 MiB as imgconv's writers do (`-w`), fsynced; no hashing, "
      "labels or manifest). `dd` writes and syncs as many bytes as the merged "
      "`.npz` (the disk's sequential write). "
      f"Warm page cache; every figure is a whole process, median over {RUNS} rounds of the whole flow. "
      "The one-machine `to-npz` runs come before the shards in even rounds and after them in odd ones, and "
      "each round's earlier parts are deleted 2 s before its shards start (the file system discards freed "
      "blocks), so that neither side of the CPU-sum ratio pays for the other's deletes.")
    P("")
    P("| step | wall s, median [min-max] | images/s | peak RSS MiB | CPU s (sys) | other load |")
    P("|---|---|---|---|---|---|")
    rowsdef = [("one machine `to-npz` (2 threads)", one2, n_all), ("one machine `to-npz --jobs 1`", one1, n_all),
               (f"`plan --shards {NSH}`", plan_r, n_all)]
    rowsdef += [(f"shard {k}/{NSH} `--jobs 1`", j1[k], counts.get(k, 0)) for k in range(NSH)]
    rowsdef += [(f"shard {k}/{NSH} (2 threads)", j2[k], counts.get(k, 0)) for k in range(NSH)]
    rowsdef += [("`merge` npz (stored)", m_npz, n_all), ("one machine `to-hdf5` (2 threads)", one_h5, n_all)]
    rowsdef += [(f"shard {k}/{NSH} `to-hdf5`", h5[k], counts.get(k, 0)) for k in range(NSH)]
    rowsdef += [("`merge` h5, virtual (default)", m_virt, n_all), ("`merge --materialize` h5", m_mat, n_all),
                ("*libhdf5 chunk-copy floor* (`limit/h5_copy_floor -w`, no hashing)", h5fl, n_all),
                ("`dd bs=1M conv=fdatasync`, merged npz's size", dd, 0)]
    for label, r, n in rowsdef:
        if r:
            P(f"| {label} | {r.wall_cell()} | {f'{n / r.med:,.0f}' if n else ''} | {max(r.rss):.0f} | {r.cpu_cell()} | {max(r.other):.2f} |")
    P("")

    def med(values):
        return st.median(values) if values else float("nan")

    # per-round ratios, then their median
    cpu_one = {rd: cpu(one2, rd) for rd in one2.by_round}
    cpu_sum_j2 = {rd: sum(cpu(r, rd) for r in j2) for rd in one2.by_round if all(rd in r.by_round for r in j2)}
    cpu_sum_j1 = {rd: sum(cpu(r, rd) for r in j1) for rd in one1.by_round if all(rd in r.by_round for r in j1)}
    cpu_one1 = {rd: cpu(one1, rd) for rd in one1.by_round}
    q_cpu2 = med([cpu_sum_j2[rd] / cpu_one[rd] for rd in cpu_sum_j2 if rd in cpu_one])
    q_cpu1 = med([cpu_sum_j1[rd] / cpu_one1[rd] for rd in cpu_sum_j1 if rd in cpu_one1])
    wall_one = {rd: float(one2.by_round[rd]["wall_s"]) for rd in one2.by_round}
    q_plan = med([float(plan_r.by_round[rd]["wall_s"]) / wall_one[rd] for rd in plan_r.by_round if rd in wall_one])
    q_merge = med([float(m_npz.by_round[rd]["wall_s"]) / wall_one[rd] for rd in m_npz.by_round if rd in wall_one])
    ips1 = [counts[k] / j1[k].med for k in range(NSH)]
    ips2 = [counts[k] / j2[k].med for k in range(NSH)]
    sh_walls = [r.med for r in j2]
    slow = max(sh_walls) / st.median(sh_walls)
    npz_mb = sizes.get("sh_merged/x.npz", 0) / 1e6
    h5_mb = sizes.get("sh_merged/x.h5", 0) / 1e6
    dd_mbs = npz_mb / dd.med if dd else float("nan")
    mat_mbs = h5_mb / m_mat.med if m_mat else float("nan")
    npz_mbs = npz_mb / m_npz.med if m_npz else float("nan")
    P(f"- Per-shard images/s: {', '.join(f'{x:,.0f}' for x in ips1)} at `--jobs 1`; "
      f"{', '.join(f'{x:,.0f}' for x in ips2)} at 2 threads (one machine: {n_all / one1.med:,.0f} and {n_all / one2.med:,.0f}).")
    P(f"- Sum of the shards' CPU time over the one-machine run's: **{q_cpu2:.3f}** at 2 threads, {q_cpu1:.3f} at `--jobs 1` "
      "(paired by round, median).")
    pair_one, pair_sh = Runs("shards", "pair_one"), shard_runs("pair_shard")
    pair_q = None
    if pair_one and all(pair_sh):
        ratios = sorted(sum(cpu(r, p) for r in pair_sh) / cpu(pair_one, p)
                        for p in pair_one.by_round if all(p in r.by_round for r in pair_sh))
        if ratios:
            pair_q = (med(ratios), ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4], len(ratios))
            P(f"- The same ratio over {len(ratios)} alternating pairs (the one-machine `to-npz`, then the {NSH} shards, or the "
              f"shards first; 2 threads): **{pair_q[0]:.3f}** median, quartiles {pair_q[1]:.3f}-{pair_q[2]:.3f}, "
              f"range {ratios[0]:.3f}-{ratios[-1]:.3f}. Single runs' CPU time on this VM moves by 10-15%, so the pairs, not the "
              f"{RUNS} rounds of the flow, decide the target.")
    P(f"- Plan time over the one-machine run's wall time: **{100 * q_plan:.1f}%**; npz merge: {100 * q_merge:.1f}% "
      f"({npz_mbs:,.0f} MB/s for {npz_mb:,.0f} MB).")
    P(f"- HDF5 merge: virtual {m_virt.med:.3f} s; materializing {m_mat.med:.2f} s = {mat_mbs:,.0f} MB/s "
      f"against `dd`'s {dd_mbs:,.0f} MB/s (**{100 * mat_mbs / dd_mbs:.0f}%**); npz merge {100 * npz_mbs / dd_mbs:.0f}% of `dd`.")
    if h5fl:
        # the floor's MB/s from its own file's size; imgconv's share of it paired by round (floor wall / merge wall)
        fl_mbs = sizes.get("sh_floor.h5", 0) / 1e6 / h5fl.med
        share = paired(m_mat, h5fl) if m_mat else (float("nan"),) * 3
        P(f"  - libhdf5 chunk-copy floor (no hashing): {h5fl.med:.2f} s = {fl_mbs:,.0f} MB/s = {100 * fl_mbs / dd_mbs:.0f}% of dd; "
          f"imgconv's materializing merge is **{100 * share[0]:.0f}%** of that floor (the floor's wall over the merge's, paired by "
          f"round, median [{100 * share[1]:.0f}-{100 * share[2]:.0f}%]).")
    P(f"- Slowest shard over the median shard (2 threads): {slow:.3f}.")
    idl = "; ".join(f"{k.replace('_', ' ')}: {'all rounds' if all(v == 'yes' for v in vs) else ', '.join(vs)}" for k, vs in ident.items())
    P(f"- Byte identity of the merged outputs with the one-machine outputs, every round: {idl}.")
    P("")
    # projection: W machines like this one, W shards; the plan and the merge run on one machine and
    # scale with the dataset like the one-machine run does, so their fractions of it stay.
    frac_sh = (pair_q[0] if pair_q else q_cpu2) * slow  # the shard phase over one machine's wall, before dividing by W
    frac_virt = (m_virt.med / one2.med) if m_virt else 0
    P("Projected speed-up on W machines like this one (W shards, one per machine; the plan and the merge run "
      "on one machine, their share of the one-machine time measured above and assumed to stay as the dataset "
      "grows; the shard phase takes (one-machine time) x (shard CPU sum ratio) x (slowest/median) / W; reading "
      "the inputs from shared storage is not modelled):")
    P("")
    P("| W | with the npz merge | with the virtual HDF5 merge |")
    P("|---|---|---|")
    for w in (8, 64, 512):
        a = 1 / (q_plan + frac_sh / w + q_merge)
        b = 1 / (q_plan + frac_sh / w + frac_virt)
        P(f"| {w} | {a:.1f}x | {b:.1f}x |")
    P("")
    P(f"At scale the plan ({100 * q_plan:.1f}%) and a materializing merge ({100 * q_merge:.1f}%) bound the speed-up "
      f"(at most {1 / (q_plan + q_merge):.0f}x with the npz merge, {1 / (q_plan + frac_virt):.0f}x with the virtual one); the plan reads only headers.")
    P("")
    shard_targets += [
        (f"shards: CPU sum within 5% of the one-machine run ({pair_q[3]} alternating pairs, median; the flow's rounds: {q_cpu2:.3f}x)",
         f"{pair_q[0]:.3f}x", abs(pair_q[0] - 1) <= 0.05) if pair_q else
        ("shards: CPU sum within 5% of the one-machine run", f"{q_cpu2:.3f}x", abs(q_cpu2 - 1) <= 0.05),
        ("shards: plan under 10% of the one-machine run", f"{100 * q_plan:.1f}%", q_plan < 0.10),
        ("shards: virtual HDF5 merge under 1 s", f"{m_virt.med:.3f} s", m_virt.med < 1),
        ("shards: materializing merge >= 80% of the disk's sequential write", f"{100 * mat_mbs / dd_mbs:.0f}%", mat_mbs >= 0.8 * dd_mbs),
    ]

# ------------------------------------------------------------------ loops (issue 17)
LOOPS = [("resize_rgb", "jpegvar", "--size 224x224", 2000), ("resize_gray", "jpegvar", "--size 224x224 --color gray", 2000),
         ("gray_from_rgb", "jpeg256", "--color gray", 4000), ("rgb_from_gray", "mnistlike", "--color rgb", 20000)]
loop_rows = [(n, d, o, c, Runs(f"loops_{n}", "imgconv"), Runs(f"loops_{n}", "imgconv_flag")) for n, d, o, c in LOOPS]
loop_rows = [x for x in loop_rows if x[4] and x[5]]
if loop_rows:
    flaginfo = next((r[2] for r in shinfo if r[:2] == ["loops", "flag_binary"]), "?")
    same = {r[2]: r[4] for r in shinfo if r[:2] == ["loops", "identical"]}
    P("## Resize and colour loops without the unsafe flag (issue 17)")
    P("")
    P("Today's build (no unsafe flags: the 8-bit resampling passes are C in `CPixels`, compiled for the baseline "
      "x86-64-v2 and x86-64-v3 with `target_clones`; the gray conversion too) against the build that compiled the whole core with "
      f"`-march=x86-64-v2` ({flaginfo}), alternating, {RUNS} rounds after a warm-up.")
    P("")
    P("| run | today: wall s [min-max] | CPU s (sys) | flag build: wall s [min-max] | CPU s (sys) | flag build wall ÷ today's (paired) | user CPU, today ÷ flag build | outputs |")
    P("|---|---|---|---|---|---|---|---|")
    for n, d, o, c, new, old in loop_rows:
        q = paired(new, old)
        ucpu = st.median(float(r["user_s"]) for r in new.by_round.values()) / st.median(float(r["user_s"]) for r in old.by_round.values())
        P(f"| {d} `{o}` | {new.wall_cell()} | {new.cpu_cell()} | {old.wall_cell()} | {old.cpu_cell()} | {fmt_ratio(q)} | {ucpu:.3f} | "
          f"{'byte-identical' if same.get(n) == 'yes' else '**differ**'} |")
        shard_targets.append((f"loops: {d} `{o}` at least as fast as the flag build (paired wall ratio >= 0.98)", f"{q[0]:.3f}x", q[0] >= 0.98))
    P("")

# ------------------------------------------------------------------ cold (issue 18)
cold_rows = [(d, Runs(f"cold_{d}", "imgconv_cold"), Runs(f"cold_{d}", "imgconv"), Runs(f"cold_{d}", "pillow_cold"),
              Runs(f"cold_{d}", "start_cold")) for d in ("jpeg256", "png64")]
cold_rows = [x for x in cold_rows if x[1] and x[2]]
cold_floor = {d: (Runs(f"cold_{d}", "floor_cold"), Runs(f"cold_{d}", "floor")) for d, *_ in cold_rows}
if cold_rows:
    P("## Cold page cache (first runs over files on disk)")
    P("")
    P("Before each `*_cold` run the page cache is dropped (`echo 3 > /proc/sys/vm/drop_caches`, after `sync`): the "
      "inputs, the binaries and Python's libraries all come from disk. imgconv's warm run (inputs re-read first, as "
      f"everywhere else) runs in the same rounds. {RUNS} rounds after a warm-up.")
    P("")
    P("| dataset | run | wall s, median [min-max] | images/s | CPU s (sys) | other load |")
    P("|---|---|---|---|---|---|")
    for d, cold, warm, pil, start in cold_rows:
        for label, r in (("imgconv, cold", cold), ("imgconv, warm", warm), ("Pillow script, cold", pil),
                         ("`imgconv --version`, cold (process start only)", start)):
            if r:
                rate = f"{r.n / r.med:,.0f}" if label.startswith(("imgconv,", "Pillow")) else ""
                P(f"| {d} | {label} | {r.wall_cell()} | {rate} | {r.cpu_cell()} | {max(r.other):.2f} |")
        fc, fw = cold_floor[d]
        for label, r in (("*job floor, cold* (`limit/job_floor -r 64`: reads 64 files ahead, as imgconv)", fc),
                         ("*job floor, warm* (`limit/job_floor`)", fw)):
            if r:
                P(f"| {d} | {label} | {r.wall_cell()} | {r.n / r.med:,.0f} | {r.cpu_cell()} | {max(r.other):.2f} |")
    P("")
    for d, cold, warm, pil, start in cold_rows:
        if start:
            extra = {rd: float(cold.by_round[rd]["wall_s"]) - float(warm.by_round[rd]["wall_s"])
                     for rd in cold.by_round if rd in warm.by_round}
            startup = st.median(float(v["wall_s"]) for v in start.by_round.values())
            P(f"- {d}: a cold run takes {st.median(extra.values()):.2f} s more than a warm one (paired median); the cold "
              f"process start alone (`imgconv --version`: the binary and its shared libraries from disk) takes "
              f"{startup:.2f} s, so the floor of cold/warm for this run is {(warm.med + startup) / warm.med:.2f}x "
              "before any input is read.")
        fc, fw = cold_floor[d]
        if fc and fw:
            fq = paired(fw, fc)
            P(f"- {d}: the job floor itself runs {fq[0]:.2f}x [{fq[1]:.2f}-{fq[2]:.2f}] slower cold than warm (paired), reading "
              "64 files ahead as imgconv does: reading the files from this disk costs it that much (the kernel's CPU "
              "for the reads comes on top of the decoding, which already keeps both cores busy).")
    P("")
    for d, cold, warm, pil, start in cold_rows:
        q = paired(warm, cold)  # cold wall / warm wall
        floors = []
        if start:
            startup = st.median(float(v["wall_s"]) for v in start.by_round.values())
            floors.append(f"cold process start alone: {(warm.med + startup) / warm.med:.2f}x")
        fc, fw = cold_floor[d]
        if fc and fw:
            floors.append(f"the job floor's own cold/warm: {paired(fw, fc)[0]:.2f}x")
        floor = f" ({'; '.join(floors)})" if floors else ""
        shard_targets.append((f"cold {d}: imgconv within 1.2x of its own warm time (paired)", f"{q[0]:.2f}x{floor}", q[0] <= 1.2))
        if pil:
            qp = paired(cold, pil)
            shard_targets.append((f"cold {d}: >= 3x the Pillow script run cold (paired)", f"{qp[0]:.2f}x", qp[0] >= 3))

# ------------------------------------------------------------------ past memory (issue 18)
pm1, pmb = Runs("pastmem", "imgconv_1x"), Runs("pastmem", "imgconv_big")
pminfo = {r[1]: r[2] for r in shinfo if r and r[0] == "pastmem"}
if "skipped" in pminfo:
    P("## Past the page cache")
    P("")
    P(f"Not run: {pminfo['skipped']} under `bench/out`.")
    P("")
elif pm1 and pmb:
    copies = int(pminfo.get("copies", 0))
    nbig = copies * 4000
    gb = int(pminfo.get("bytes", 0)) / 1e9
    ram = int(pminfo.get("ram_kib", 0)) / 1048576
    P("## Past the page cache")
    P("")
    P(f"`data/jpeg256x{copies}` links the jpeg256 set {copies} times ({nbig:,} images; hard links, so the inputs take 82 MB "
      f"of page cache) and `to-npy` writes a {gb:.1f} GB `.npy` folder on a machine with {ram:.1f} GiB of RAM, against "
      f"`to-npy` of jpeg256 alone, alternating, {len(pmb.wall)} rounds after a warm-up.")
    P("")
    P("| run | images | wall s, median [min-max] | images/s | peak RSS MiB | CPU s (sys) | other load |")
    P("|---|---|---|---|---|---|---|")
    pf1, pfb = Runs("pastmem", "floor_1x"), Runs("pastmem", "floor_big")
    rows = [("jpeg256 `to-npy`", pm1, 4000), (f"jpeg256 x{copies} `to-npy`", pmb, nbig)]
    if pf1 and pfb:
        rows += [("*job floor, jpeg256* (`limit/job_floor`)", pf1, 4000), (f"*job floor, jpeg256 x{copies}*", pfb, nbig)]
    for label, r, n in rows:
        P(f"| {label} | {n:,} | {r.wall_cell()} | {n / r.med:,.0f} | {max(r.rss):.0f} | {r.cpu_cell()} | {max(r.other):.2f} |")
    P("")
    rate = (nbig / pmb.med) / (4000 / pm1.med)
    P(f"The big run's images/s over the small one's: **{rate:.3f}**; its last image read back with "
      f"`np.load(..., mmap_mode='r')` against Pillow's decode of the file its manifest lists last: {pminfo.get('last_image', '?')}.")
    floor_rate = None
    if pf1 and pfb:
        floor_rate = (nbig / pfb.med) / (4000 / pf1.med)
        P(f"The job floor in the same rounds (its output one `.npy` file of the same size): its big run's images/s over its "
          f"small one's **{floor_rate:.3f}**, what the disk and the kernel's page cache leave the job's irreducible work "
          f"once the output outgrows memory; imgconv's big run is **{pfb.med / pmb.med:.0%}** of the floor's big run (median "
          f"walls).")
    P("")
    shard_targets += [
        (f"past memory: {gb:.0f} GB output at the jpeg256 rate within 10%",
         f"{rate:.3f}x" + (f" (the job floor's own: {floor_rate:.3f}x)" if floor_rate else ""), rate >= 0.9),
        ("past memory: peak RSS under 150 MiB", f"{max(pmb.rss):.0f} MiB", max(pmb.rss) < 150),
        ("past memory: the last image exact through mmap", pminfo.get("last_image", "?"), pminfo.get("last_image") == "equal"),
    ]

# ------------------------------------------------------------------ targets
def add_ratio_target(d, peer, want, label):
    ic, r = Runs(d, "imgconv"), Runs(d, peer)
    if ic and r:
        q = paired(ic, r)[0]
        targets.append((f"{d}: >= {want}x {label} (paired)", f"{q:.2f}x", q >= want))


def add_floor_target(d, want_pct):
    q = floor_share(d)
    if q:
        qh = floor_share(d, "floor_hash")
        qd = floor_share(d, "floor_direct")
        hashed = f" (of the floor with the hashes: {100 * qh[0]:.1f}%" if qh else ""
        if qd:
            hashed += ("; " if hashed else " (") + f"of the floor writing with direct I/O: {100 * qd[0]:.1f}%"
        hashed += ")" if hashed else ""
        targets.append((f"{d}: >= {want_pct}% of the job floor (paired, whole process)", f"{100 * q[0]:.1f}%{hashed}", 100 * q[0] >= want_pct))


def add_limit_target(d, want_pct, variant="turbojpeg/libpng"):
    ic = Runs(d, "imgconv")
    lim = limit(d, variant, 2)
    if ic and lim:
        pct = 100 * ic.ips / lim[0]
        targets.append((f"{d}: >= {want_pct}% of the 2-thread decode-only limit", f"{pct:.0f}%", pct >= want_pct))


compress_targets = targets[:]
targets = []
# Issue 18's targets (speed, round two), and the first speed issue's that still stand.
add_ratio_target("jpeg256", "pillow", 3.5, "Pillow")
add_ratio_target("jpeg256", "opencv", 1.3, "OpenCV")
add_limit_target("jpeg256", 80)
add_floor_target("jpeg256", 85)
add_ratio_target("png64", "pillow", 3, "Pillow")
add_limit_target("png64", 80)
add_floor_target("png64", 85)
add_ratio_target("mnistlike", "pillow", 4.5, "Pillow")
add_ratio_target("mnistlike", "opencv", 1.3, "OpenCV")
add_floor_target("mnistlike", 80)
add_ratio_target("jpegvar", "pillow", 4, "Pillow")
add_ratio_target("draft112", "pillow", 5, "the Pillow script resizing to 112x112 (no draft), with `--jpeg-draft`")
targets += compress_targets
targets += shard_targets
rss_rows = [(s, t, max(Runs(s, t).rss)) for s, t in nimg if (t.startswith("imgconv") or s == "mem10x") and Runs(s, t)]
if rss_rows:
    worst = max(rss_rows, key=lambda x: x[2])
    targets.append(("imgconv peak RSS <= 150 MiB everywhere", f"max {worst[2]:.0f} MiB ({worst[0]} {worst[1]})", worst[2] <= 150))
if m1 and m10:
    grow = max(m10.rss) / max(m1.rss)
    targets.append(("peak RSS at 10x the images within 10% of 1x", f"{100 * (grow - 1):+.1f}%", grow <= 1.10))
if targets:
    P("## Against the project's targets")
    P("")
    P("| target | measured | met |")
    P("|---|---|---|")
    for t, m, ok in targets:
        P(f"| {t} | {m} | {'yes' if ok else '**no**'} |")
    P("")

# ------------------------------------------------------------------ load
discarded = plain("discarded.tsv")
if loads or discarded:
    P("## Machine load during the sitting")
    P("")
    if discarded:
        per = {}
        for row in discarded:
            per[row[0]] = per.get(row[0], 0) + 1
        P(f"{len(discarded)} runs were disturbed by other load (more than 0.25 cores) and repeated "
          "(`QUIET_WAIT`): " + ", ".join(f"{k} {v}" for k, v in per.items()) + ". The table keeps the repeats.")
        P("")
    P("Load average (1, 5, 15 min) before and after each section: " + "; ".join(f"{s} {k.replace('load_', '')} {v}" for s, k, v in loads) + ".")
    P("")

envs = []
if RUNS != "5":
    envs.append(f"RUNS={RUNS}")
if machine.get("nice", "0").split()[0] != "0":
    envs.append(f"NICE={machine['nice'].split()[0]}")
if machine.get("quiet_wait", "0") != "0":
    envs.append(f"QUIET_WAIT={machine['quiet_wait']}")
P("## Re-run")
P("")
cmd = envs + ["bash bench/run.sh"]
if machine.get("sections", "").split() != ["pastmem", "jpeg256", "jpegvar", "draft112", "png64", "mnistlike", "compress", "mem10x", "shards", "loops", "cold"]:
    cmd.append(machine.get("sections", ""))
P(f"This report: `{' '.join(cmd)}`.")
P("")
P("```sh")
P("bash bench/run.sh                    # everything (installs what is missing, generates bench/data)")
P("bash bench/run.sh jpeg256 png64      # some sections: pastmem jpeg256 jpegvar draft112 png64 mnistlike compress mem10x shards loops cold")
P("RUNS=3 bash bench/run.sh             # fewer rounds")
P("```")
print("\n".join(lines))
