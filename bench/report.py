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
TABLE_TOOLS = ["imgconv", "pillow", "pillow_draft", "pillow_mp", "pillow_mp_draft", "opencv", "simplejpeg"]
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
  "`.npz`; for imgconv also its manifest with SHA-256s), the input files are in the page cache (read before "
  "timing), the previous output is deleted and `sync`ed before each run, and the outputs are stored (not "
  "compressed) `.npz` files unless stated. Wall time is the median of the rounds with [min-max]; images/s = "
  "N / median wall; peak RSS is GNU time's `%M` (largest single process, so for `Pool(2)` the parent), the "
  "maximum over the rounds; CPU s is user+sys, median, with the sys part in brackets. **imgconv ÷ tool** is imgconv's throughput over the "
  "tool's, *paired*: the tool's wall divided by imgconv's wall in the same round, median [min-max] over the "
  "rounds. For the decode-only limit rows it is imgconv's images/s over the probe's (so 0.80x = 80% of the "
  "limit). \"Other load\" is the CPU time the rest of the machine used during the run (from `/proc/stat`, minus "
  "the process's own), in cores, maximum over the rounds: above about 0.2 the run was disturbed, unless the timed runs had a higher priority (`NICE` below), "
  "in which case the other job mostly ran on the core a single-process tool left idle. "
  "The inputs are re-read before every run and memory is pre-touched (see `bench/README.md`: this VM "
  "drops idle page cache and hands freed memory back to its host).")
if RUNS != "5":
    P("")
    P(f"**{RUNS} rounds instead of the default 5**: on this shared machine (another engineer's compiler and "
      "tests running) the full sitting with 5 rounds would have taken well over 40 minutes.")
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
    ("system libpng / libdeflate / zlib", f"{machine.get('deb_libpng16-16', '?')} / {machine.get('deb_libdeflate0', '?')} / {machine.get('deb_zlib1g', '?')}"),
    ("Python / numpy", f"{machine.get('python', '?')} / {machine.get('numpy', '?')}"),
    ("Pillow", machine.get("pillow", "?")),
    ("OpenCV (opencv-python-headless)", machine.get("opencv", "?")),
    ("simplejpeg", machine.get("simplejpeg", "?")),
    ("limit probe", f"gcc {machine.get('gcc', '?')} `-O2 -march=x86-64-v2` (`bench/limit/Makefile`)"),
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
        name = TOOL[t] + (IMGCONV_OPTS.get(d, "") if t == "imgconv" else PEER_OPTS.get(d, ""))
        ratio = "" if t == "imgconv" else fmt_ratio(paired(ic, r))
        P(f"| {d if first else ''} | {name} | {r.wall_cell()} | {r.ips:,.0f} | {max(r.rss):.0f} | "
          f"{r.cpu_cell()} | {ratio} | {max(r.other):.2f} | {check_cell(d, t)} |")
        first = False
    for variant, label in [("turbojpeg/libpng", "TurboJPEG full decode" if d.startswith("jpeg") else "libpng simplified API"),
                           ("scaled224", "TurboJPEG DCT-scaled decode (smallest M/8 >= 224)"),
                           ("scaled112", "TurboJPEG DCT-scaled decode (smallest M/8 >= 112)"),
                           ("draftscale112", "TurboJPEG DCT-scaled decode as `--jpeg-draft` (1/2, 1/4 or 1/8, >= 112)"),
                           ("libdeflate-mini", "minimal PNG reader + libdeflate")]:
        for th in (1, 2):
            lim = limit(d, variant, th)
            if not lim:
                continue
            P(f"| | *decode-only limit: {label}, {th} thread{'s' if th > 1 else ''}* | *{lim[1]:.3f}* | *{lim[0]:,.0f}* | | | "
              f"{ic.ips / lim[0]:.2f}x ({100 * ic.ips / lim[0]:.0f}%) | | |")
if done:
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
    targets.append(("`--compress` >= 3x faster than savez_compressed (whole process, paired)", f"{whole[0]:.2f}x", whole[0] >= 3))
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

# ------------------------------------------------------------------ targets
def add_ratio_target(d, peer, want, label):
    ic, r = Runs(d, "imgconv"), Runs(d, peer)
    if ic and r:
        q = paired(ic, r)[0]
        targets.append((f"{d}: >= {want}x {label} (paired)", f"{q:.2f}x", q >= want))


def add_limit_target(d, want_pct, variant="turbojpeg/libpng"):
    ic = Runs(d, "imgconv")
    lim = limit(d, variant, 2)
    if ic and lim:
        pct = 100 * ic.ips / lim[0]
        targets.append((f"{d}: >= {want_pct}% of the 2-thread decode-only limit", f"{pct:.0f}%", pct >= want_pct))


compress_targets = targets[:]
targets = []
add_ratio_target("jpeg256", "pillow", 3.5, "Pillow")
add_ratio_target("jpeg256", "opencv", 1.3, "OpenCV")
add_limit_target("jpeg256", 80)
add_ratio_target("png64", "pillow", 2.5, "Pillow")
add_limit_target("png64", 80)
add_ratio_target("mnistlike", "pillow", 4, "Pillow")
add_ratio_target("mnistlike", "opencv", 1.3, "OpenCV")
add_ratio_target("jpegvar", "pillow", 2.5, "Pillow")
add_ratio_target("draft112", "pillow", 5, "the Pillow script resizing to 112x112 (no draft), with `--jpeg-draft`")
targets += compress_targets
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
if machine.get("sections", "").split() != ["jpeg256", "jpegvar", "draft112", "png64", "mnistlike", "compress", "mem10x"]:
    cmd.append(machine.get("sections", ""))
P(f"This report: `{' '.join(cmd)}`.")
P("")
P("```sh")
P("bash bench/run.sh                    # everything (installs what is missing, generates bench/data)")
P("bash bench/run.sh jpeg256 png64      # some sections: jpeg256 jpegvar draft112 png64 mnistlike compress mem10x")
P("RUNS=3 bash bench/run.sh             # fewer rounds")
P("```")
print("\n".join(lines))
