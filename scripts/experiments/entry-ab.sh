#!/bin/sh
# A/B of the entry's commitments (session 25): the serving bench's chain section, NEUROSHARD_ENTRY_COMMITS=inline (old)
# against the default (queued on the commitment worker), alternating, both orders. Usage (build first):
#   sh scripts/experiments/entry-ab.sh [pairs=3] > log
# Prints one line per run: mode, load before, chain_ratio_4 and the figures beside it.
pairs=${1:-3}
i=0
while [ "$i" -lt "$pairs" ]; do
  if [ $((i % 2)) -eq 0 ]; then order="inline queued"; else order="queued inline"; fi
  for m in $order; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    out=$(NEUROSHARD_ENTRY_COMMITS=$m nice -n 5 node scripts/bench/run-section.mjs dist/src/node/serving-bench/bench.js serving-chain | tail -1)
    echo "$m load=$load $(echo "$out" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s).result??{};console.log(["chain_ratio_4","chain_ratio_4_pooled","chain_decode_tok_s_1","chain_decode_tok_s_4","chain_compute_ms_1","chain_compute_ms_4","chain_hop_overhead_ms_4","chain_cpu_ms_1","chain_cpu_ms_4","chain_load"].map(k=>k.replace("chain_","")+"="+r[k]).join(" "))})')"
  done
  i=$((i + 1))
done
