#!/usr/bin/env bash
# Paired A/B of two builds' big lane calls, server side in its own process (docs/LIMITS.md "Session 27: big calls
# on the lane"): alternating runs of lane-server-cpu.mjs (order flipped each pair), one JSON line per run prefixed
# with its side. A_ENV / B_ENV: environment of each side's runs (e.g. B_ENV=NEUROSHARD_LANE_READS=reused).
#   scripts/experiments/lane-server-ab.sh OLD_DIST NEW_DIST [PAIRS BYTES CALLS INFLIGHT]
set -u
a=$1 b=$2 pairs=${3:-5} bytes=${4:-16777216} calls=${5:-32} inflight=${6:-4}
here=$(dirname "$0")
for ((p = 0; p < pairs; p++)); do
  if ((p % 2)); then order="B A"; else order="A B"; fi
  for w in $order; do
    if [ "$w" = A ]; then d=$a e=${A_ENV:-}; else d=$b e=${B_ENV:-}; fi
    echo "$w $(env $e node "$here/lane-server-cpu.mjs" --dist "$d" --bytes "$bytes" --calls "$calls" --inflight "$inflight")"
  done
done
