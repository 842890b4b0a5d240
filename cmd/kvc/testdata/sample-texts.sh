#!/usr/bin/env bash
# Samples evaluation texts from a model, as stories-t1.txt was: pure temperature-1 sampling (no top-k, top-p
# or min-p), one story per seed, stories appended until a text has about 500 tokens (>= 4500 characters for
# stories260K). The texts are regenerated, never committed:
#   cmd/kvc/testdata/sample-texts.sh OUTDIR [FIRST_SEED] [COUNT]     (default seeds 101..108)
# Needs bin/kvc (./build.sh) and KVC_MODELS pointing at the models (e.g. ../shared/models).
set -euo pipefail
out=${1:?usage: sample-texts.sh OUTDIR [FIRST_SEED] [COUNT]}
first=${2:-101}
count=${3:-8}
model=${MODEL:-stories260K}
kvc=${KVC:-bin/kvc}
mkdir -p "$out"
for ((t = 0; t < count; t++)); do
  f="$out/stories-s$((first + t)).txt"
  : >"$f"
  k=0
  while [ "$(wc -c <"$f")" -lt 4500 ]; do
    seed=$(((first + t) * 1000 + k))
    "$kvc" run --model "$model" --device cpu --kv-type f32 --quiet --prompt "" -n 480 --temp 1 --top-k 0 --top-p 1 --min-p 0 \
      --seed "$seed" >>"$f"
    echo >>"$f"
    k=$((k + 1))
  done
done
ls -l "$out" >&2
