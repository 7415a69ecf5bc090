#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzz/ (Swift and the C shims under AddressSanitizer, the C shims
# also under UndefinedBehaviorSanitizer) and runs them one after another: each target first
# replays its saved crashers (Tests/Fixtures/crashers/<target>/), then fuzzes for the given time
# from its corpus (seeds: Fuzz/seeds/<target>/ and the fixtures, see Fuzz/fixture_seeds.py).
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]   fuzz each target SECONDS (default 60), all targets by default
#   bash scripts/fuzz.sh --replay [TARGET...]    only replay the saved crashers
#   bash scripts/fuzz.sh --build                 only build
#
# Prints per target: runs, exec/s, coverage (libFuzzer's cov/ft), corpus size and crashes. A
# crashing, hanging or memory-hungry input is saved under .build-fuzz/crashes/<target>/ and the
# script exits 1 at the end; Fuzz/README.md says how it becomes a regression fixture.
# The build and the growing corpora live in .build-fuzz/ (FUZZ_SCRATCH overrides the folder).
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(npy zip idx exif manifest csv png jpeg tiff bmp gif webp h5)
SCRATCH="${FUZZ_SCRATCH:-.build-fuzz}"
case $SCRATCH in /*) ;; *) SCRATCH="$PWD/$SCRATCH" ;; esac   # absolute: the build runs in Fuzz/
BIN="$SCRATCH/release"

mode=fuzz
seconds=60
case "${1:-}" in
  --replay) mode=replay; shift ;;
  --build) mode=build; shift ;;
  ''|-*) ;;
  *) if [[ "$1" =~ ^[0-9]+$ ]]; then seconds=$1; shift; fi ;;
esac
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "fuzz: unknown target '$t' (targets: ${ALL_TARGETS[*]})" >&2; exit 64; }
done

# Largest input per target: a header and some data (NPY headers stop at 10,000 bytes), small
# archives and images; manifests and CSV lists are text.
max_len() {
  case "$1" in
    npy) echo 20000 ;; manifest) echo 16384 ;; csv) echo 4096 ;; *) echo 65536 ;;
  esac
}

# Swift's crash handler would print its own backtrace and delay the exit: libFuzzer and the
# sanitizers report instead. halt_on_error makes any sanitizer report a crash libFuzzer saves.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

# Runs fuzz binary of target $1 with the rest of the arguments. libhdf5 (not instrumented) checks
# its own mallocs and fails the open cleanly when a header asks for exabytes, as it does in the
# release build, where glibc's malloc returns NULL: for h5 a failed allocation returns NULL too
# (a failed allocation in Swift still traps, so imgconv's own code stays covered), and the few
# bytes libhdf5 leaks on such an error path are not reported (imgconv's leaks are: the other
# targets and scripts/sanitize.sh check them). Tests/Fixtures/hdf5/README.md has the input.
run_target() {
  local t=$1
  shift
  if [ "$t" = h5 ]; then
    # libhdf5 also sizes single allocations from header fields (4 GiB from a superblock): what
    # counts is the memory the process really uses (-rss_limit_mb), not one request's size.
    ASAN_OPTIONS="$ASAN_OPTIONS:allocator_may_return_null=1:detect_leaks=0" "$BIN/fuzz-$t" -malloc_limit_mb=1048576 "$@"
  else
    "$BIN/fuzz-$t" "$@"
  fi
}

build() {
  echo "fuzz: building the fuzz targets in $SCRATCH (release, -sanitize=fuzzer,address; C: +undefined)" >&2
  local log="$SCRATCH/build.log"
  mkdir -p "$SCRATCH"
  # SwiftPM renames an executable's main and links it with --defsym, which gold cannot link
  # together with libFuzzer's runtime: lld (shipped with the Swift toolchain) can.
  if ! (cd Fuzz && swift build -c release --scratch-path "$SCRATCH" \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld \
        -Xcc -fsanitize=fuzzer-no-link,address,undefined -Xcc -fno-sanitize-recover=undefined) >"$log" 2>&1; then
    grep -E 'error|warning: unre' "$log" | head -20 >&2 || tail -20 "$log" >&2
    echo "fuzz: build failed (full log: $log)" >&2
    exit 1
  fi
  for t in "${ALL_TARGETS[@]}"; do test -x "$BIN/fuzz-$t"; done
}

# Replays every saved crasher of target $1 through its fuzz binary; 0 when none crashes.
replay() {
  local t=$1 dir="Tests/Fixtures/crashers/$1"
  local files=()
  if [ -d "$dir" ]; then
    while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$dir" -type f ! -name '*.md' -print0 | sort -z)
  fi
  [ ${#files[@]} -gt 0 ] || return 0
  local log="$SCRATCH/logs/$t-replay.log"
  if run_target "$t" -rss_limit_mb=2560 -timeout=60 "${files[@]}" >"$log" 2>&1; then
    printf '%-9s replayed %d crasher(s): no crash\n' "$t" "${#files[@]}"
    return 0
  fi
  printf '%-9s replay FAILED: %s\n' "$t" "$(grep -m1 -E '^SUMMARY|^==[0-9]+==ERROR|Running: ' "$log" | tail -1)"
  grep -E '^Running: ' "$log" | tail -1 | sed 's/^/          last input: /'
  echo "          log: $log"
  return 1
}

# Fuzzes target $1 for $seconds; prints one summary line; 0 when nothing crashed.
fuzz_one() {
  local t=$1
  local corpus="$SCRATCH/corpus/$t" crashes="$SCRATCH/crashes/$t" log="$SCRATCH/logs/$t.log"
  mkdir -p "$corpus" "$crashes"
  local before; before=$(find "$crashes" -type f | wc -l)
  local dirs=("$corpus") d
  for d in "Fuzz/seeds/$t" "$SCRATCH/seeds/$t"; do [ -d "$d" ] && dirs+=("$d"); done
  local rc=0
  run_target "$t" -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=30 -rss_limit_mb=2560 \
    -print_final_stats=1 -artifact_prefix="$crashes/" \
    "${dirs[@]}" >"$log" 2>&1 || rc=$?
  local runs eps cov ft corp found
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  corp=$(find "$corpus" -type f | wc -l)
  found=$(( $(find "$crashes" -type f | wc -l) - before ))
  [ "$rc" = 0 ] || [ "$found" -gt 0 ] || found=1
  printf '%-9s %5ss %12s %8s %6s %7s %7s %7s\n' "$t" "$seconds" "${runs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "$corp" "$found"
  if [ "$rc" != 0 ]; then
    grep -m1 -E '^SUMMARY' "$log" | sed 's/^/          /' || true
    grep -E "Test unit written to" "$log" | sed 's/^.*written to /          saved: /' || true
    echo "          log: $log"
    return 1
  fi
}

build
[ "$mode" = build ] && exit 0
mkdir -p "$SCRATCH/logs"

failed=0
if [ "$mode" = replay ]; then
  for t in "${targets[@]}"; do replay "$t" || failed=1; done
  exit $failed
fi

rm -rf "$SCRATCH/seeds"
python3 Fuzz/fixture_seeds.py "$SCRATCH/seeds" >&2

printf '%-9s %6s %12s %8s %6s %7s %7s %7s\n' target time runs exec/s cov ft corpus crashes
for t in "${targets[@]}"; do
  if ! replay "$t"; then failed=1; continue; fi
  fuzz_one "$t" || failed=1
done
if [ $failed != 0 ]; then
  echo "fuzz: crashes found: inputs in $SCRATCH/crashes/<target>/, logs in $SCRATCH/logs/ (Fuzz/README.md: turning one into a regression fixture)" >&2
fi
exit $failed
