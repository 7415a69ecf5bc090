#!/usr/bin/env bash
# imgconv benchmark: imgconv against the tools users would pick instead, as ratios in one sitting.
#
# usage: bash bench/run.sh [SECTION ...]
#   SECTION: pastmem jpeg256 jpegvar draft112 png64 mnistlike compress mem10x shards loops cold
#            (default: all of them, in that order: pastmem first, because it needs about 32 GB of
#            disk for a while and the other sections' outputs stay in bench/out until the final checks)
#   e.g.     bash bench/run.sh jpeg256 png64
# environment:
#   RUNS=5          timed runs per tool (after 1 warm-up run each), alternating tool by tool
#   MEM_RUNS=3      timed runs of each side of the 10x memory check
#   IMGCONV=path    binary to measure (default: .build/release/imgconv, built if missing)
#   WRITE_RESULTS=1 write bench/RESULTS.md even for a subset of sections (by default only a full
#                   run overwrites it; the report of every run is also in bench/out/RESULTS.md)
#   NO_INSTALL=1    do not apt-get/pip install anything (fail if something is missing)
#   QUIET_WAIT=0    on a shared machine: before each run, wait up to this many seconds until the
#                   rest of the machine uses less than 0.15 cores (sampled over 2 s), and repeat a
#                   run that was disturbed (RETRIES=3 times at most)
#   NICE=0          priority of the benchmark (e.g. -15, as root, on a machine that another job
#                   keeps busy; every tool alike): the runner re-runs itself in its own session and
#                   sets that session's autogroup nice value (see bench/README.md)
#   PREWARM_MIB=2560  memory touched and freed just before every timed run (0: off); see bench/README.md
#   SHARDS=4        shards of the `shards` section (plan, shards at --jobs 1 and 2, merges)
#   SHARD_PAIRS=20  alternating pairs (one machine, then the shards, or the reverse) for the CPU-sum ratio
#   PASTMEM_COPIES=38  the `pastmem` section links jpeg256 this many times (38: 152,000 images, a 30 GB
#                   .npy folder, more than this machine's page cache holds); PASTMEM_RUNS=2 timed runs
#   IMGCONV_FLAG=path  the `loops` section's other binary: imgconv as it was with the whole core compiled
#                   with -march=x86-64-v2 (an unsafe flag, removed for issue 17); by default it is built
#                   from commit FLAG_COMMIT into out/flag-build (about 2 minutes, once)
#
# What it does: installs what is missing (apt: hyperfine, GNU time, libturbojpeg0-dev, libpng-dev,
# libspng-dev, libdeflate-dev, libisal-dev, zlib1g-dev, libhdf5-dev, pkg-config; pip into bench/.venv: bench/requirements.txt), builds the
# limit probes (bench/limit) and, only if missing, the release binary; generates the seeded
# datasets under bench/data (or reuses them); then per dataset runs imgconv and the peer scripts in
# rounds (A B C D, A B C D, ...) on a hot page cache, measuring each whole process with a wall clock
# and GNU time (peak RSS, CPU); in the jpeg256, png64 and mnistlike rounds also the job-floor probe
# (limit/job_floor: list, read, decode, write in order + sync, nothing else), in the shards rounds the
# HDF5 chunk-copy floor (limit/h5_copy_floor -w: the parts' raw chunks into one file, early writeback, fsync); runs the decode-only
# limit probe at 1 and 2 threads; compares `--compress` with numpy.savez_compressed; checks peak RSS
# on a folder holding png64 ten times; checks every output against Pillow's (the job floor's against
# imgconv's); and prints a Markdown report (bench/report.py).
set -euo pipefail
SELF=$(readlink -f "$0")
cd "$(dirname "$0")"
BENCH=$PWD
REPO=$(cd .. && pwd)
RUNS=${RUNS:-5}
MEM_RUNS=${MEM_RUNS:-3}
PREWARM_MIB=${PREWARM_MIB:-2560}
QUIET_WAIT=${QUIET_WAIT:-0}
NICE=${NICE:-0}
NICE_CMD=(); [ "$NICE" = 0 ] || NICE_CMD=(nice -n "$NICE")
# With the kernel's autogroup scheduling (sched_autogroup_enabled=1), a nice value only counts
# within the session's group: the runner re-runs itself in a session of its own and gives that
# whole group the nice value, so that the benchmark really has priority over the other job.
if [ "$NICE" != 0 ] && [ "$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null)" = 1 ]; then
  if [ -z "${BENCH_OWN_SESSION:-}" ]; then
    BENCH_OWN_SESSION=1 exec setsid --wait bash "$SELF" "$@"
  fi
  echo "$NICE" > /proc/$$/autogroup 2>/dev/null || echo "run.sh: could not set the autogroup nice value" >&2
fi
# Relative paths from bench/ keep every command word free of spaces (commands are word-split).
OUT=out
PY=.venv/bin/python
ALL_SECTIONS="pastmem jpeg256 jpegvar draft112 png64 mnistlike compress mem10x shards loops cold"
SECTIONS=${*:-$ALL_SECTIONS}
for s in $SECTIONS; do
  case " $ALL_SECTIONS " in *" $s "*) ;; *) echo "run.sh: unknown section '$s' (one of: $ALL_SECTIONS)" >&2; exit 64 ;; esac
done
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- 1. set-up
sudo_cmd=(); [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
apt_pkgs=(hyperfine time libturbojpeg0-dev libpng-dev libspng-dev libdeflate-dev libisal-dev zlib1g-dev libhdf5-dev pkg-config python3-venv)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "${NO_INSTALL:-0}" = 1 ] && { echo "run.sh: missing Debian packages: ${missing[*]}" >&2; exit 1; }
  log "apt-get install ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! [ -x "$PY" ] || ! "$PY" -c 'import numpy, PIL, cv2, simplejpeg, skimage, sklearn' 2>/dev/null; then
  [ "${NO_INSTALL:-0}" = 1 ] && { echo "run.sh: bench/.venv is missing or incomplete" >&2; exit 1; }
  log "creating bench/.venv (pip install -r bench/requirements.txt)"
  [ -x "$PY" ] || python3 -m venv .venv
  "$PY" -m pip install -q --disable-pip-version-check -r requirements.txt
fi
make -s -C limit >/dev/null

if [ -n "${IMGCONV:-}" ]; then
  IMGCONV_SRC=$IMGCONV
else
  IMGCONV_SRC=$REPO/.build/release/imgconv
  if ! [ -x "$IMGCONV_SRC" ]; then
    log "building the release binary (scripts/build-release.sh, as scripts/setup.sh does)"
    bash "$REPO/scripts/build-release.sh" || true
  fi
fi
[ -x "$IMGCONV_SRC" ] || { echo "run.sh: no imgconv binary at $IMGCONV_SRC" >&2; exit 1; }
mkdir -p "$OUT/log"
# Measure a snapshot, so that a rebuild during the run cannot swap the binary half-way.
cp "$IMGCONV_SRC" "$OUT/imgconv"
IMG=$OUT/imgconv
IMG_INFO="$("$IMG" --version) (binary built $(date -u -r "$IMGCONV_SRC" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$IMG" | cut -c1-12); \
repo at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- Sources Package.swift 2>/dev/null || echo ' with uncommitted changes to Sources') when measured)"

# ---------------------------------------------------------------- 2. datasets
declare -A NFILES=([jpeg256]=4000 [jpegvar]=2000 [png64]=10000 [mnistlike]=20000)
count_files() { find "$1" -type f 2>/dev/null | wc -l; }
ensure_set() {
  local d=$1
  if [ "$(count_files "data/$d")" != "${NFILES[$d]}" ]; then
    log "generating data/$d (seed 1234)"
    rm -rf "data/$d"
    "$PY" make_dataset.py --out data --only "$d" --manifest | sed "s#$BENCH/##" >&2
  fi
}
need_sets=()
for s in $SECTIONS; do
  case $s in
    compress) need_sets+=(jpeg256) ;;
    mem10x) need_sets+=(png64) ;;
    shards) need_sets+=(jpeg256) ;;
    loops) need_sets+=(jpegvar jpeg256 mnistlike) ;;
    cold) need_sets+=(jpeg256 png64) ;;
    pastmem) need_sets+=(jpeg256) ;;
    draft112) need_sets+=(jpegvar) ;;
    *) need_sets+=("$s") ;;
  esac
done
for d in $(printf '%s\n' "${need_sets[@]}" | sort -u); do ensure_set "$d"; done

# ---------------------------------------------------------------- 3. measurement helpers
RAW=$OUT/raw.tsv        # section tool round wall_s user_s sys_s maxrss_kib outside_cpu_s
LIMITS=$OUT/limits.tsv  # set (the section: draft112 probes jpegvar) variant threads pass_s img_per_s cpu_s
EXTRA=$OUT/extra.tsv    # section tool round key value
printf 'section\ttool\tround\twall_s\tuser_s\tsys_s\tmaxrss_kib\toutside_cpu_s\n' > "$RAW"
printf 'set\tvariant\tthreads\tpass_s\timg_per_s\tcpu_s\n' > "$LIMITS"
printf 'section\ttool\tround\tkey\tvalue\n' > "$EXTRA"
: > "$OUT/tools.tsv"    # section tool output-file N (what to check and how many images)
: > "$OUT/discarded.tsv"

busy_ticks() {  # machine-wide busy CPU time (user+nice+system+irq+softirq+steal), in USER_HZ ticks
  local _c u n s _i _w q sq st _rest
  read -r _c u n s _i _w q sq st _rest < /proc/stat
  echo $((u + n + s + q + sq + st))
}
HZ=$(getconf CLK_TCK)

# wait_quiet: with QUIET_WAIT > 0, wait (at most that many seconds) until the machine is idle.
WAITED=0
wait_quiet() {
  WAITED=0
  [ "$QUIET_WAIT" -gt 0 ] || return 0
  local waited=0 b0 b1 other
  while :; do
    b0=$(busy_ticks); sleep 2; b1=$(busy_ticks)
    other=$(( (b1 - b0) * 100 / (2 * HZ) ))   # in hundredths of a core
    [ "$other" -lt 15 ] && break
    other="$((other / 100)).$(printf '%02d' $((other % 100)))"
    if [ "$waited" -ge "$QUIET_WAIT" ]; then log "  machine still busy ($other cores in use) after ${waited}s; going on"; break; fi
    if [ "$waited" = 0 ]; then log "  machine busy ($other cores in use); waiting up to ${QUIET_WAIT}s"; fi
    sleep 8; waited=$((waited + 10)); WAITED=$waited
  done
}

# measure SECTION TOOL ROUND OUTFILE cmd...: one whole-process run. Removes OUTFILE first and syncs,
# so that no earlier output is truncated or written back during the timed run.
measure() {
  local section=$1 tool=$2 round=$3 outfile=$4; shift 4
  local logf=$OUT/log/${section}_${tool}_${round}.txt tf=$OUT/log/time.txt
  rm -rf "$outfile" "$outfile.manifest.json"   # folder outputs (to-npy) too; always under out/
  # CLEAR_FIRST: other outputs deleted before every run (large ones the disk cannot hold together)
  # shellcheck disable=SC2086
  [ -z "${CLEAR_FIRST:-}" ] || rm -rf $CLEAR_FIRST
  sync
  # This VM also runs DAMON with a `pageout` scheme: page-cache pages left unread for about a
  # minute are dropped. Re-reading the inputs (HOT) before every run keeps the page cache hot.
  # A tool named *_cold runs with the page cache dropped instead (a first run over files on disk).
  if [[ $tool == *_cold ]]; then
    echo 3 | "${sudo_cmd[@]}" tee /proc/sys/vm/drop_caches > /dev/null
  else
    hot_cache "${HOT[@]}"
  fi
  # On VMs with free-page reporting (virtio-balloon), memory freed a few seconds ago has gone back
  # to the host and costs about 2 ms/MB to touch again. Touching it here, untimed, gives every tool
  # the warm memory it would have on bare metal (this favours the peers, which touch more memory).
  if [ "$PREWARM_MIB" -gt 0 ]; then limit/memcpy_bench $((PREWARM_MIB / 2)) 1 > /dev/null; fi
  local b0 b1 t0 t1 rc=0
  b0=$(busy_ticks); t0=$EPOCHREALTIME
  /usr/bin/time -o "$tf" -f '%M %U %S' "${NICE_CMD[@]}" "$@" > "$logf" 2>&1 || rc=$?
  t1=$EPOCHREALTIME; b1=$(busy_ticks)
  if [ $rc != 0 ]; then
    echo "run.sh: '$tool' failed on $section (exit $rc): $*" >&2; tail -n 20 "$logf" >&2; exit 1
  fi
  local m u s; read -r m u s < <(tail -n 1 "$tf")
  awk -v sec="$section" -v tool="$tool" -v r="$round" -v t0="$t0" -v t1="$t1" -v m="$m" -v u="$u" -v s="$s" \
      -v b="$((b1 - b0))" -v hz="$HZ" 'BEGIN {
        w = t1 - t0; o = b / hz - u - s; if (o < 0) o = 0
        printf "%s\t%s\t%s\t%.4f\t%.2f\t%.2f\t%d\t%.2f\n", sec, tool, r, w, u, s, m, o }' >> "$RAW"
  # savez_cmp.py prints the in-process seconds of the save step and the file size
  { grep -o 'save_s=[0-9.]*\|bytes=[0-9]*' "$logf" 2>/dev/null || true; } | tr '=' '\t' |
    while IFS=$'\t' read -r k v; do printf '%s\t%s\t%s\t%s\t%s\n' "$section" "$tool" "$round" "$k" "$v" >> "$EXTRA"; done
  [ "$round" = 0 ] || log "  $section $tool round $round: $(tail -n 1 "$RAW" | cut -f4) s"
  return 0
}

# rounds SECTION N: runs the tools registered in the arrays T_NAME/T_OUT/T_CMD in rounds:
# warm-up round 0, then rounds 1..RUNS, each round running every tool once, in order.
# With QUIET_WAIT > 0 (a shared machine), each run waits for an idle machine first (after a wait the
# tool's warm-up run is repeated), and a run during which the rest of the machine used more than
# 0.25 cores is set aside in out/discarded.tsv and repeated, up to RETRIES times (the last one stays).
RETRIES=${RETRIES:-3}
run_tool() {  # SECTION ROUND INDEX
  local section=$1 r=$2 i=$3 attempt=0 noisy
  while :; do
    wait_quiet
    if [ "$r" -gt 0 ] && [ "$WAITED" -gt 0 ]; then
      # shellcheck disable=SC2086
      measure "$section" "${T_NAME[$i]}" 0 "${T_OUT[$i]}" ${T_CMD[$i]}
    fi
    # shellcheck disable=SC2086
    measure "$section" "${T_NAME[$i]}" "$r" "${T_OUT[$i]}" ${T_CMD[$i]}
    [ "$QUIET_WAIT" -gt 0 ] && [ "$r" -gt 0 ] || return 0
    noisy=$(tail -n 1 "$RAW" | awk -F'\t' '{print ($8 > 0.25 * $4) ? 1 : 0}')
    [ "$noisy" = 1 ] && [ "$attempt" -lt "$RETRIES" ] || return 0
    tail -n 1 "$RAW" >> "$OUT/discarded.tsv"
    sed -i '$d' "$RAW"
    attempt=$((attempt + 1))
    log "  (disturbed by other load: repeating, try $attempt of $RETRIES)"
  done
}

rounds() {
  local section=$1 n=$2 r i
  # NO_CHECK=1: outputs that have no Pillow reference (compared with each other instead)
  [ "${NO_CHECK:-0}" = 1 ] ||
    for i in "${!T_NAME[@]}"; do
      # start_*: a process start only (`--version`), no output to check
      [[ ${T_NAME[$i]} == start_* ]] || printf '%s\t%s\t%s\t%s\n' "$section" "${T_NAME[$i]}" "${T_OUT[$i]}" "$n" >> "$OUT/tools.tsv"
    done
  log "$section: load average $(cut -d' ' -f1-3 /proc/loadavg); warm-up, then $RUNS rounds of: ${T_NAME[*]}"
  printf '%s\tload_before\t%s\n' "$section" "$(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/load.tsv"
  for r in $(seq 0 "$RUNS"); do
    for i in "${!T_NAME[@]}"; do run_tool "$section" "$r" "$i"; done
  done
  printf '%s\tload_after\t%s\n' "$section" "$(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/load.tsv"
}

limit_probe() {  # SECTION: decode-only limit (files preloaded in RAM), 1 and 2 threads
  local s=$1 d=$1 g="" t v args line
  [ "$s" = draft112 ] && d=jpegvar
  [ "$d" = mnistlike ] && g="-g"
  for t in 1 2; do
    for v in turbojpeg/libpng libpng-low libspng libdeflate-mini scaled224 scaled112 draftscale112; do
      case $v in
        turbojpeg/libpng) [ "$s" != draft112 ] || continue; args="" ;;
        libpng-low) case $d in png64|mnistlike) args="-p low" ;; *) continue ;; esac ;;
        libspng) case $d in png64|mnistlike) args="-p spng" ;; *) continue ;; esac ;;
        libdeflate-mini) case $d in png64|mnistlike) args="-p deflate" ;; *) continue ;; esac ;;
        scaled224) [ "$s" = jpegvar ] || continue; args="-S 224" ;;
        # -S: smallest of all M/8 scales (mostly 3/8 here); -D: the scale --jpeg-draft takes (1/2, 1/4, 1/8)
        scaled112) [ "$s" = draft112 ] || continue; args="-S 112" ;;
        draftscale112) [ "$s" = draft112 ] || continue; args="-D 112" ;;
      esac
      # shellcheck disable=SC2086
      line=$("${NICE_CMD[@]}" limit/decode_bench -t $t -r "$RUNS" $g $args "data/$d" | grep '^RESULT')
      echo "$line" | sed -E 's/.*pass_s=([0-9.]+) img_per_s=([0-9]+).*cpu_s=([0-9.]+).*/\1 \2 \3/' |
        { read -r p i c; printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$v" "$t" "$p" "$i" "$c" >> "$LIMITS"; }
      log "  $s limit $v threads=$t: $line"
    done
  done
}

balloon_reporting() {  # virtio-balloon feature bit 5 = VIRTIO_BALLOON_F_REPORTING
  local f
  for f in /sys/bus/virtio/devices/*; do
    [ "$(cat "$f/device" 2>/dev/null)" = 0x0005 ] || continue
    [ "$(cut -c6 "$f/features" 2>/dev/null)" = 1 ] && { echo yes; return; }
  done
  echo no
}

hot_cache() { find "$@" -type f -print0 | xargs -0 cat > /dev/null; }
HOT=()

# shards_section: issue 15's benchmark (see bench/README.md, "shards").
SHARDS=${SHARDS:-4}
SHARD_PAIRS=${SHARD_PAIRS:-20}
one_machine_runs() {  # ROUND DATASET FOLDER: the one-machine runs the shards are compared with
  measure shards one_j2 "$1" "$3/x.npz" "$IMG" to-npz "$2" "$3/x.npz" -q
  measure shards one_j1 "$1" "$3/x.npz" "$IMG" to-npz "$2" "$3/x.npz" -q --jobs 1
}
shards_section() {
  local d=data/jpeg256 r k plan=$OUT/sh_plan.json bytes one=$OUT/sh_one merged=$OUT/sh_merged
  HOT=("$d")
  log "shards: load average $(cut -d' ' -f1-3 /proc/loadavg); warm-up, then $RUNS rounds of the flow ($SHARDS shards)"
  printf 'shards\tload_before\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/load.tsv"
  printf 'shards\tshards\t%s\n' "$SHARDS" >> "$OUT/shards.tsv"
  # one-machine and merged outputs carry the same names (the manifest records the output's name)
  mkdir -p "$one" "$merged"
  for r in $(seq 0 "$RUNS"); do
    # The CPU-sum ratio compares runs made a minute apart, and this VM's CPU time drifts (host
    # memory, the discards of deleted outputs): the one-machine runs come before the shards in
    # even rounds and after them in odd ones, so a drift weighs on both sides alike.
    [ $((r % 2)) = 1 ] || one_machine_runs "$r" "$d" "$one"
    # The last round's parts go first, with time for the disk to settle (the file system discards
    # freed blocks), so that no shard pays for deleting them.
    rm -rf "$OUT/sh_parts_j1" "$OUT/sh_parts"; sync; sleep 2
    measure shards plan "$r" "$plan" "$IMG" plan "$d" --shards "$SHARDS" -o "$plan" -q
    for k in $(seq 0 $((SHARDS - 1))); do
      measure shards "shard_j1_$k" "$r" "$OUT/sh_none" "$IMG" to-npz --plan "$plan" --shard "$k/$SHARDS" "$OUT/sh_parts_j1" -q --jobs 1
    done
    for k in $(seq 0 $((SHARDS - 1))); do
      measure shards "shard_j2_$k" "$r" "$OUT/sh_none" "$IMG" to-npz --plan "$plan" --shard "$k/$SHARDS" "$OUT/sh_parts" -q
    done
    [ $((r % 2)) = 0 ] || one_machine_runs "$r" "$d" "$one"
    measure shards merge_npz "$r" "$merged/x.npz" "$IMG" merge "$OUT/sh_parts" "$merged/x.npz" -q
    measure shards one_h5 "$r" "$one/x.h5" "$IMG" to-hdf5 "$d" "$one/x.h5" -q
    rm -rf "$OUT/sh_h5parts"; sync; sleep 2
    for k in $(seq 0 $((SHARDS - 1))); do
      measure shards "shard_h5_$k" "$r" "$OUT/sh_none" "$IMG" to-hdf5 --plan "$plan" --shard "$k/$SHARDS" "$OUT/sh_h5parts" -q
    done
    measure shards merge_h5_virtual "$r" "$OUT/x.h5" "$IMG" merge "$OUT/sh_h5parts" "$OUT/x.h5" -q
    measure shards merge_h5_materialize "$r" "$merged/x.h5" "$IMG" merge --materialize "$OUT/sh_h5parts" "$merged/x.h5" -q
    # libhdf5's floor for that copy: the same parts' raw chunks into a new file, no hashing or labels
    measure shards h5_copy_floor "$r" "$OUT/sh_floor.h5" limit/h5_copy_floor -w "$OUT/sh_floor.h5" "$OUT"/sh_h5parts/part-*.h5
    # the disk's sequential write speed: as many bytes as the merged .npz, written and synced by dd
    bytes=$(stat -c %s "$merged/x.npz")
    measure shards disk_write "$r" "$OUT/sh_dd.bin" dd if=/dev/zero of="$OUT/sh_dd.bin" bs=1M count=$(( (bytes + 1048575) / 1048576 )) conv=fdatasync status=none
    rm -f "$OUT/sh_dd.bin"
    for f in sh_merged/x.npz sh_merged/x.h5 x.h5 sh_floor.h5; do
      printf 'shards\tsize\t%s\t%s\n' "$f" "$(stat -c %s "$OUT/$f")" >> "$OUT/shards.tsv"
    done
    for f in x.npz x.npz.manifest.json x.h5; do
      printf 'shards\tidentical\t%s\t%s\t%s\n' "$r" "$f" "$(cmp -s "$one/$f" "$merged/$f" && echo yes || echo no)" >> "$OUT/shards.tsv"
    done
    # the virtual .h5: its tensors' hashes as `verify` recomputes them, against the one-machine file's
    printf 'shards\tidentical\t%s\tvirtual x.h5 verified\t%s\n' "$r" "$("$IMG" verify "$OUT/x.h5" > /dev/null 2>&1 && echo yes || echo no)" >> "$OUT/shards.tsv"
    printf 'shards\tidentical\t%s\tvirtual x.h5 tensor hashes\t%s\n' "$r" "$("$PY" -c 'import json, sys
h = [{t["name"]: t.get("xxh3", t.get("sha256")) for t in json.load(open(p))["tensors"]} for p in sys.argv[1:]]
print("yes" if h[0] == h[1] else "no")' "$one/x.h5.manifest.json" "$OUT/x.h5.manifest.json")" >> "$OUT/shards.tsv"
    [ "$r" = 0 ] || log "  shards round $r: one machine $(awk -F'\t' -v r="$r" '$1 == "shards" && $2 == "one_j2" && $3 == r {print $4}' "$RAW") s"
  done
  # The CPU-sum ratio in more pairs than the flow has rounds: this VM's CPU time moves by 10-15%
  # from one run to the next, more than the 5% the target allows, so a median of 5 rounds cannot
  # tell. SHARD_PAIRS alternations of the one-machine `to-npz` and its shards (2 threads), the
  # one-machine run first in odd pairs and last in even ones.
  log "shards: $SHARD_PAIRS alternating pairs for the CPU-sum ratio"
  for r in $(seq 1 "$SHARD_PAIRS"); do
    [ $((r % 2)) = 0 ] || measure shards pair_one "$r" "$one/x.npz" "$IMG" to-npz "$d" "$one/x.npz" -q
    rm -rf "$OUT/sh_parts"; sync; sleep 2
    for k in $(seq 0 $((SHARDS - 1))); do
      measure shards "pair_shard_$k" "$r" "$OUT/sh_none" "$IMG" to-npz --plan "$plan" --shard "$k/$SHARDS" "$OUT/sh_parts" -q
    done
    [ $((r % 2)) = 1 ] || measure shards pair_one "$r" "$one/x.npz" "$IMG" to-npz "$d" "$one/x.npz" -q
  done
  for k in $(seq 0 $((SHARDS - 1))); do
    printf 'shards\tcount\t%s\t%s\n' "$k" "$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["shard"]["ranges"]["train"][1] - json.load(open(sys.argv[1]))["shard"]["ranges"]["train"][0])' "$(printf '%s/sh_parts/part-%05d-of-%05d.npz.manifest.json' "$OUT" "$k" "$SHARDS")")" >> "$OUT/shards.tsv"
  done
  printf 'shards\tload_after\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/load.tsv"
}

# loops_section: issue 17's benchmark. Needs the old flag build (IMGCONV_FLAG or built here).
FLAG_COMMIT=3e42688
loops_section() {
  local flag=${IMGCONV_FLAG:-} c d opts name
  if [ -z "$flag" ]; then
    flag=$OUT/flag-build/.build/release/imgconv
    if ! [ -x "$flag" ]; then
      log "loops: building imgconv at $FLAG_COMMIT (the whole core with -march=x86-64-v2) in $OUT/flag-build"
      rm -rf "$OUT/flag-build"; mkdir -p "$OUT/flag-build"
      git -C "$REPO" archive "$FLAG_COMMIT" | tar -x -C "$OUT/flag-build"
      (cd "$OUT/flag-build" && swift build -c release --product imgconv 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' || true)
    fi
  fi
  [ -x "$flag" ] || { echo "run.sh: no flag build at $flag" >&2; exit 1; }
  cp "$flag" "$OUT/imgconv_flag"
  printf 'loops\tflag_binary\t%s\n' "$("$OUT/imgconv_flag" --version), sha256 $(sha256sum "$OUT/imgconv_flag" | cut -c1-12), commit $FLAG_COMMIT" >> "$OUT/shards.tsv"
  for c in "resize_rgb:jpegvar:--size 224x224" "resize_gray:jpegvar:--size 224x224 --color gray" \
           "gray_from_rgb:jpeg256:--color gray" "rgb_from_gray:mnistlike:--color rgb"; do
    IFS=: read -r name d opts <<< "$c"
    T_NAME=(); T_OUT=(); T_CMD=()
    HOT=("data/$d")
    add imgconv      "$OUT/loops_new_$name.npz"  "$IMG to-npz data/$d $OUT/loops_new_$name.npz -q $opts"
    add imgconv_flag "$OUT/loops_flag_$name.npz" "$OUT/imgconv_flag to-npz data/$d $OUT/loops_flag_$name.npz -q $opts"
    NO_CHECK=1 rounds "loops_$name" "${NFILES[$d]}"
    printf 'loops\tidentical\t%s\t%s\t%s\n' "$name" "$d $opts" "$(cmp -s "$OUT/loops_new_$name.npz" "$OUT/loops_flag_$name.npz" && echo yes || echo no)" >> "$OUT/shards.tsv"
  done
}

# ---------------------------------------------------------------- 4. the runs
: > "$OUT/load.tsv"
: > "$OUT/shards.tsv"   # shards and loops sections: sizes, counts, byte-identity checks
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
START_TIME=$(date +%s)
for s in $SECTIONS; do
  T_NAME=(); T_OUT=(); T_CMD=()
  add() { T_NAME+=("$1"); T_OUT+=("$2"); T_CMD+=("$3"); }
  case $s in
    jpeg256|jpegvar|png64|mnistlike)
      d=$s; iopt=""; popt=""
      [ "$d" = jpegvar ] && { iopt="--size 224x224"; popt="--size 224"; }
      [ "$d" = mnistlike ] && popt="--gray"
      HOT=("data/$d")
      add imgconv          "$OUT/imgconv_$d.npz"   "$IMG to-npz data/$d $OUT/imgconv_$d.npz -q $iopt"
      # the job floor (issue 18): list, read, decode on the default threads, write in order + sync
      # and the same with the hashes the job must compute (sources' SHA-256, the tensor's XXH3-128 and CRC-32)
      case $d in jpeg256|png64|mnistlike)
        add floor      "$OUT/floor_$d.npy"  "limit/job_floor data/$d $OUT/floor_$d.npy"
        add floor_hash "$OUT/floorh_$d.npy" "limit/job_floor -H data/$d $OUT/floorh_$d.npy"
        # and the floor writing as imgconv now does, with direct I/O (its best case: no copy)
        add floor_direct "$OUT/floord_$d.npy" "limit/job_floor -D data/$d $OUT/floord_$d.npy" ;;
      esac
      add pillow           "$OUT/pillow_$d.npz"    "$PY peer_pillow.py data/$d $OUT/pillow_$d.npz $popt"
      add pillow_mp        "$OUT/pillow_mp_$d.npz" "$PY peer_pillow_mp.py data/$d $OUT/pillow_mp_$d.npz $popt"
      add opencv           "$OUT/opencv_$d.npz"    "$PY peer_cv2.py data/$d $OUT/opencv_$d.npz $popt"
      case $d in jpeg*) add simplejpeg "$OUT/simplejpeg_$d.npz" "$PY peer_simplejpeg.py data/$d $OUT/simplejpeg_$d.npz $popt" ;; esac
      rounds "$d" "${NFILES[$d]}"
      # the job floor's thread count, from its summary line ("...; 2 threads, ...")
      if [ -f "$OUT/log/${d}_floor_1.txt" ]; then
        printf '%s\tfloor\t1\tthreads\t%s\n' "$d" "$(grep -o '[0-9]* threads' "$OUT/log/${d}_floor_1.txt" | cut -d' ' -f1)" >> "$EXTRA"
      fi
      log "$d: decode-only limit probe"
      limit_probe "$d"
      ;;
    draft112)
      # jpegvar to 112x112 with --jpeg-draft (DCT-scaled decode, then the resize); the Pillow script
      # without draft (issue 6's peer) and with Image.draft (what --jpeg-draft is meant to equal).
      d=jpegvar
      HOT=("data/$d")
      add imgconv          "$OUT/imgconv_draft112.npz"      "$IMG to-npz data/$d $OUT/imgconv_draft112.npz -q --size 112x112 --jpeg-draft"
      add pillow           "$OUT/pillow_draft112.npz"       "$PY peer_pillow.py data/$d $OUT/pillow_draft112.npz --size 112"
      add pillow_draft     "$OUT/pillow_draft_draft112.npz" "$PY peer_pillow.py data/$d $OUT/pillow_draft_draft112.npz --size 112 --draft"
      add pillow_mp_draft  "$OUT/pillow_mp_draft_draft112.npz" "$PY peer_pillow_mp.py data/$d $OUT/pillow_mp_draft_draft112.npz --size 112 --draft"
      rounds draft112 "${NFILES[$d]}"
      log "draft112: decode-only limit probe"
      limit_probe draft112
      ;;
    compress)
      HOT=(data/jpeg256)
      log "compress: writing the stored jpeg256 tensor that savez_cmp.py loads"
      "$IMG" to-npz data/jpeg256 "$OUT/compress_src.npz" -q
      HOT=(data/jpeg256 "$OUT/compress_src.npz")
      add imgconv_stored     "$OUT/imgconv_stored_c.npz" "$IMG to-npz data/jpeg256 $OUT/imgconv_stored_c.npz -q"
      add imgconv_compress   "$OUT/imgconv_compress.npz" "$IMG to-npz data/jpeg256 $OUT/imgconv_compress.npz -q --compress"
      add savez_stored       "$OUT/savez_stored.npz"     "$PY savez_cmp.py $OUT/compress_src.npz $OUT/savez_stored.npz stored"
      add savez_compressed   "$OUT/savez_compressed.npz" "$PY savez_cmp.py $OUT/compress_src.npz $OUT/savez_compressed.npz compressed"
      rounds compress 4000
      ;;
    mem10x)
      if [ "$(count_files data/png64x10)" != 100000 ]; then
        log "mem10x: linking data/png64 ten times into data/png64x10 (hard links)"
        rm -rf data/png64x10
        for c in data/png64/*/; do
          c=$(basename "$c")
          for k in 0 1 2 3 4 5 6 7 8 9; do mkdir -p "data/png64x10/$c"; cp -al "data/png64/$c" "data/png64x10/$c/r$k"; done
        done
      fi
      HOT=(data/png64)
      saved_runs=$RUNS; RUNS=$MEM_RUNS
      add png64_x1  "$OUT/mem_x1.npz"  "$IMG to-npz data/png64 $OUT/mem_x1.npz -q"
      add png64_x10 "$OUT/mem_x10.npz" "$IMG to-npz data/png64x10 $OUT/mem_x10.npz -q"
      rounds mem10x 10000
      RUNS=$saved_runs
      ;;
    shards)
      # Issue 15: one machine against plan + SHARDS shards + merge, on jpeg256. Each round runs the
      # whole flow in order (a shard needs the plan, a merge needs every shard); round 0 is the warm-up.
      shards_section
      ;;
    cold)
      # Issue 18: first runs over files that are not in the page cache (dropped before each *_cold
      # run, as root), against imgconv's own warm run in the same rounds and the Pillow script cold.
      for d in jpeg256 png64; do
        T_NAME=(); T_OUT=(); T_CMD=()
        HOT=("data/$d")
        add imgconv_cold "$OUT/cold_imgconv_$d.npz" "$IMG to-npz data/$d $OUT/cold_imgconv_$d.npz -q"
        add imgconv      "$OUT/warm_imgconv_$d.npz" "$IMG to-npz data/$d $OUT/warm_imgconv_$d.npz -q"
        add pillow_cold  "$OUT/cold_pillow_$d.npz"  "$PY peer_pillow.py data/$d $OUT/cold_pillow_$d.npz"
        # The process start alone, cold: the binary and its shared libraries read from disk.
        add start_cold   "$OUT/cold_start_$d.txt"   "$IMG --version"
        # The job floor cold (reading ahead as imgconv does once it finds cold files: 64 files) and
        # warm: what the job's irreducible work loses to a cold disk on this machine.
        add floor_cold   "$OUT/cold_floor_$d.npy"   "limit/job_floor -q -r 64 data/$d $OUT/cold_floor_$d.npy"
        add floor        "$OUT/warm_floor_$d.npy"   "limit/job_floor -q data/$d $OUT/warm_floor_$d.npy"
        rounds "cold_$d" "${NFILES[$d]}"
      done
      ;;
    pastmem)
      # Issue 18: an output larger than the page cache can hold: jpeg256 linked PASTMEM_COPIES times
      # (hard links: the inputs stay 82 MB in the page cache) into one .npy folder, against the
      # jpeg256 set alone, alternating; then the big output's last image read back with mmap.
      copies=${PASTMEM_COPIES:-38}
      big=data/jpeg256x$copies
      if [ "$(count_files "$big")" != $((copies * 4000)) ]; then
        log "pastmem: linking data/jpeg256 $copies times into $big (hard links)"
        rm -rf "$big"
        for c in data/jpeg256/*/; do
          c=$(basename "$c")
          for k in $(seq 1 "$copies"); do mkdir -p "$big/$c"; cp -al "data/jpeg256/$c" "$big/$c/r$(printf '%02d' "$k")"; done
        done
      fi
      need_kib=$(( copies * 4000 * 196608 / 1024 * 11 / 10 ))
      free_kib=$(df -Pk "$OUT" | awk 'NR == 2 {print $4}')
      if [ "$free_kib" -lt "$need_kib" ]; then
        log "pastmem: skipped: $((free_kib / 1048576)) GiB free under bench/out, $((need_kib / 1048576)) GiB needed"
        printf 'pastmem	skipped	%s GiB free, %s GiB needed
' "$((free_kib / 1048576))" "$((need_kib / 1048576))" >> "$OUT/shards.tsv"
      else
        T_NAME=(); T_OUT=(); T_CMD=()
        HOT=(data/jpeg256)
        # The job floor on both sets in the same rounds: what the disk and the kernel's page cache
        # give the job's irreducible work past memory. One big output at a time (the disk holds
        # one): every run first deletes both; imgconv's big run is the last of a round, so its
        # output is there for the checks below.
        add floor_1x    "$OUT/pastmem_floor_1x.npy"  "limit/job_floor -q data/jpeg256 $OUT/pastmem_floor_1x.npy"
        add floor_big   "$OUT/pastmem_floor_big.npy" "limit/job_floor -q $big $OUT/pastmem_floor_big.npy"
        add imgconv_1x  "$OUT/pastmem_1x"  "$IMG to-npy data/jpeg256 $OUT/pastmem_1x -q"
        add imgconv_big "$OUT/pastmem_big" "$IMG to-npy $big $OUT/pastmem_big -q"
        saved_runs=$RUNS; RUNS=${PASTMEM_RUNS:-2}
        CLEAR_FIRST="$OUT/pastmem_big $OUT/pastmem_floor_big.npy" NO_CHECK=1 rounds pastmem 4000
        RUNS=$saved_runs
        printf 'pastmem	copies	%s
' "$copies" >> "$OUT/shards.tsv"
        printf 'pastmem	bytes	%s
' "$(du -sb "$OUT/pastmem_big" | cut -f1)" >> "$OUT/shards.tsv"
        printf 'pastmem	ram_kib	%s
' "$(awk '/MemTotal/ {print $2}' /proc/meminfo)" >> "$OUT/shards.tsv"
        # The last image, through numpy's memory map, against Pillow's decode of the file the
        # manifest lists last.
        printf 'pastmem	last_image	%s
' "$("$PY" - "$OUT/pastmem_big" "$big" <<'PYEOF'
import json, sys
import numpy as np
from PIL import Image
out, root = sys.argv[1], sys.argv[2]
xs = np.load(out + "/trainXs.npy", mmap_mode="r")
last = json.load(open(out + "/manifest.json"))["files"][-1]["path"]
ref = np.asarray(Image.open(root + "/" + last).convert("RGB"))
print("equal" if xs.shape[0] == int(sys.argv[2].rsplit("x", 1)[1]) * 4000 and np.array_equal(xs[-1], ref) else f"differs ({last}, shape {xs.shape})")
PYEOF
)" >> "$OUT/shards.tsv"
        rm -rf "$OUT/pastmem_big" "$OUT/pastmem_1x" "$OUT/pastmem_floor_1x.npy"
      fi
      ;;
    loops)
      # Issue 17: the 8-bit resize and colour loops without the unsafe -march flag (today's build:
      # C target_clones) against the build that compiled the whole core with -march=x86-64-v2.
      loops_section
      ;;
  esac
done
END_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(( $(date +%s) - START_TIME ))

# ---------------------------------------------------------------- 5. checks, machine, report
log "checking outputs against Pillow's"
"$PY" check_outputs.py "$OUT/tools.tsv" > "$OUT/checks.tsv"

{
  printf 'cpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  printf 'cpu_detail\t%s\n' "$(lscpu 2>/dev/null | awk -F: '/Vendor ID|CPU family|^Model:|Hypervisor vendor/ {gsub(/^ +/, "", $2); printf "%s %s; ", $1, $2}')"
  printf 'cores\t%s\n' "$(nproc)"
  printf 'ram\t%s GiB\n' "$(awk '/MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)"
  printf 'os\t%s, kernel %s\n' "$(. /etc/os-release && echo "$PRETTY_NAME")" "$(uname -r)"
  printf 'imgconv\t%s\n' "$IMG_INFO"
  printf 'swift\t%s\n' "$(swift --version 2>/dev/null | head -n 1 || echo '?')"
  for p in libturbojpeg0 libpng16-16 libspng0 libdeflate0 zlib1g libhdf5-103-1 libisal2 libxxhash0; do
    printf 'deb_%s\t%s\n' "$p" "$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo '?')"
  done
  "$PY" - <<'EOF'
import platform, re
import numpy, PIL, PIL.features, cv2, simplejpeg
print(f"python\t{platform.python_version()}")
print(f"numpy\t{numpy.__version__}")
print(f"pillow\t{PIL.__version__} (bundled libjpeg-turbo {PIL.features.version('libjpeg_turbo')}, zlib {PIL.features.version('zlib')})")
bi = cv2.getBuildInformation()
jpeg = re.search(r"JPEG:\s+(.*)", bi); png = re.search(r"PNG:\s+(.*)", bi)
strip = lambda m: re.sub(r"\S*/", "", m.group(1)) if m else "?"
print(f"opencv\t{cv2.__version__} (JPEG: {strip(jpeg)}; PNG: {strip(png)})")
print(f"simplejpeg\t{simplejpeg.__version__}")
EOF
  printf 'gcc\t%s\n' "$(gcc -dumpfullversion 2>/dev/null || echo '?')"
  printf 'clang\t%s\n' "$(clang --version 2>/dev/null | head -n 1 | sed 's/ (.*//' || echo '?')"
  printf 'hyperfine\t%s\n' "$(hyperfine --version 2>/dev/null | awk '{print $2}')"
  printf 'runs\t%s\n' "$RUNS"
  printf 'mem_runs\t%s\n' "$MEM_RUNS"
  printf 'prewarm_mib\t%s\n' "$PREWARM_MIB"
  printf 'quiet_wait\t%s\n' "$QUIET_WAIT"
  printf 'nice\t%s\n' "$NICE$(grep -o 'nice.*' /proc/$$/autogroup 2>/dev/null | sed 's/^nice / (session autogroup nice /;s/$/)/')"
  printf 'balloon_free_page_reporting\t%s\n' "$(balloon_reporting)"
  printf 'sections\t%s\n' "$SECTIONS"
  printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'elapsed_s\t%s\n' "$ELAPSED"
  printf 'load_start\t%s\n' "$START_LOAD"
  printf 'load_end\t%s\n' "$END_LOAD"
  for d in jpeg256 jpegvar png64 mnistlike; do
    [ -d "data/$d" ] && printf 'tree_%s\t%s\n' "$d" "$("$PY" -c 'import sys, make_dataset as m; print(m.tree_sha256(sys.argv[1]))' "data/$d")"
  done
} > "$OUT/machine.tsv"

"$PY" report.py "$OUT" > "$OUT/RESULTS.md"
if [ "$SECTIONS" = "$ALL_SECTIONS" ] || [ "${WRITE_RESULTS:-0}" = 1 ]; then
  cp "$OUT/RESULTS.md" RESULTS.md
  log "wrote bench/RESULTS.md"
else
  log "wrote bench/out/RESULTS.md (a subset was run; WRITE_RESULTS=1 also overwrites bench/RESULTS.md)"
fi
cat "$OUT/RESULTS.md"
