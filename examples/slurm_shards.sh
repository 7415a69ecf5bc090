#!/usr/bin/env bash
# imgconv past one machine, on Slurm: the plan, a job array with one task per shard, and a merge
# job that runs only once every task of the array succeeded (--dependency=afterok), then verifies.
#
#   examples/slurm_shards.sh submit ROOT WORK N FORMAT [conversion options...]
#   examples/slurm_shards.sh rerun WORK FORMAT
#
# FORMAT is npz, npy, hdf5 or idx. WORK must be on a filesystem every node sees: it gets
# plan.json, parts/ (one part per shard), logs/ (one log per task) and the output (out.npz,
# out.h5, or the folder out/ for npy and idx). The imgconv binary is $IMGCONV, else `imgconv` on
# PATH, at the same path on every node. `submit` writes the plan here and prints the job ids.
#
# A failed task leaves its shard without a part; the merge job is then cancelled
# (--kill-on-invalid-dep=yes) instead of waiting forever. `rerun` asks `imgconv merge --check`
# which shards are missing and submits an array of just those (--array=3,7) and a new merge job
# after it. Running a task twice is harmless: a shard whose part is committed is "done already".
set -euo pipefail

usage() { sed -n '5,6p' "$0" | sed 's/^# *//' >&2; exit 64; }
[ $# -ge 1 ] || usage
mode=$1; shift
case $mode in
  submit) [ $# -ge 4 ] || usage; root=$1 work=$2 shards=$3 format=$4; shift 4 ;;
  rerun)  [ $# -eq 2 ] || usage; work=$1 format=$2 ;;
  *) usage ;;
esac
case $format in
  npz) command=to-npz out=out.npz ;;
  npy) command=to-npy out=out ;;
  hdf5) command=to-hdf5 out=out.h5 ;;
  idx) command=to-idx out=out ;;
  *) usage ;;
esac
imgconv=$(command -v "${IMGCONV:-imgconv}") || { echo "imgconv not found (set IMGCONV)" >&2; exit 69; }
mkdir -p "$work/logs"
work=$(cd "$work" && pwd)

if [ "$mode" = submit ]; then
  "$imgconv" plan "$root" "$@" --shards "$shards" -o "$work/plan.json" -q
  array="0-$((shards - 1))"
else
  # N comes from the plan (SLURM_ARRAY_TASK_COUNT is the rerun's count, not the plan's).
  shards=$(grep -o '"shards":[0-9]*' "$work/plan.json" | head -n 1 | cut -d: -f2)
  set +e
  check=$("$imgconv" merge --check "$work/parts")
  rc=$?
  set -e
  case $rc in
    0) array="" ;;
    66) array=$(sed -n 's/^missing: //p' <<<"$check") ;;
    *) echo "imgconv merge --check exited $rc" >&2; exit "$rc" ;;
  esac
fi

dependency=()
if [ -n "$array" ]; then
  # One task per shard: its index is the shard.
  printf -v task '%q %q --plan %q --shard "$SLURM_ARRAY_TASK_ID/%s" %q -q' \
    "$imgconv" "$command" "$work/plan.json" "$shards" "$work/parts"
  job=$(sbatch --parsable --job-name=imgconv-shards --array="$array" \
    --output="$work/logs/shard-%A_%a.out" --wrap="$task")
  job=${job%%;*}
  echo "array job $job: shards $array of $shards"
  dependency=(--dependency="afterok:$job" --kill-on-invalid-dep=yes)
else
  echo "no shard is missing"
fi

# Merge and verify once every task above succeeded.
printf -v merge '%q merge %q %q -q && %q verify %q' \
  "$imgconv" "$work/parts" "$work/$out" "$imgconv" "$work/$out"
merge_job=$(sbatch --parsable --job-name=imgconv-merge "${dependency[@]}" \
  --output="$work/logs/merge-%j.out" --wrap="$merge")
merge_job=${merge_job%%;*}
echo "merge job $merge_job: writes $work/$out"
