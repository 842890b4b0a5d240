#!/usr/bin/env bash
# scripts/gpu-check.sh: what kvc achieves on this machine's Vulkan device, in a few minutes.
#   scripts/gpu-check.sh [vulkan:N]      (default vulkan:0; KVC_CHECK_DIR holds the synthetic models)
# Prints: kvc devices --probe; the op tests against the CPU reference (on that device, under validation
# when KVC_VALIDATION=1); kvc bench decode on synthetic 125M and 1.1B models at batch 1, 8 and 32 with the
# device traffic per step; and the weight bytes per second each decode step achieves as a fraction of the
# device's probed copy bandwidth. Smaller runs (e.g. on lavapipe, which is far too slow for the defaults):
# KVC_CHECK_PRESETS="tp" KVC_CHECK_BATCHES="1 8" KVC_CHECK_PROMPT=16 KVC_CHECK_STEPS=4.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=${1:-vulkan:0}
idx=${dev#vulkan:}
dir=${KVC_CHECK_DIR:-${TMPDIR:-/tmp}/kvc-gpu-check}
mkdir -p "$dir"
[ -x bin/kvc ] || ./build.sh >&2

echo "== kvc devices --probe"
probe=$(bin/kvc devices --probe)
echo "$probe"
# The copy bandwidth of the chosen device: the "probe:" line of its section.
copy=$(echo "$probe" | awk -v d="$dev" '$1 == d {on=1; next} /^[^ ]/ {on=0} on && /probe: copy/ {
  for (i = 1; i <= NF; i++) if ($i == "copy") { print $(i+1); exit } }')
echo

echo "== op tests against the CPU reference on $dev"
KVC_TEST_DEVICE=$idx KVC_REQUIRE_VULKAN=1 go test ./engine/gpu -count=1 \
  -run 'MatchesCPU|EveryDType|TestRMSNorm|TestSwiGLUAdd|TestSoftmax|TestRoPE|TestArgmaxTopK|TestRopeKVWrite|TestKVAttention|TestKVWindowMetric|TestKVWriteAndCopyMoves'
echo

presets=${KVC_CHECK_PRESETS:-125m 1b}
batches=${KVC_CHECK_BATCHES:-1 8 32}
plen=${KVC_CHECK_PROMPT:-128}
steps=${KVC_CHECK_STEPS:-16}
echo "== kvc bench decode on $dev (prompt $plen random tokens, $steps steps, greedy on the device)"
for preset in $presets; do
  m="$dir/synth-$preset.gguf"
  [ -f "$m" ] || bin/kvc synth -preset "$preset" -out "$m" >&2
  for b in $batches; do
    line=$(bin/kvc bench decode --device "$dev" --model "$m" --batch "$b" --prompt-len "$plen" -n "$steps" --max-rows 256 --json 2>/dev/null)
    echo "$line" | awk -v p="$preset" -v b="$b" -v copy="${copy:-0}" '
      function field(k,   r) { r = $0; if (!match(r, "\"" k "\":[-0-9.e+]+")) return ""; r = substr(r, RSTART, RLENGTH); sub(/.*:/, "", r); return r }
      { gbs = field("weight_gb_s")
        frac = (copy > 0) ? sprintf("%.2f of copy %.1f GB/s", gbs / copy, copy) : "copy bandwidth not probed"
        printf "%-5s batch %-2d  prompt %8.1f tok/s  decode %8.1f tok/s  step %8.2f ms  weights %6.2f GB/s (%s)  per step: %s submits, %s dispatches, %s B up, %s B back\n",
          p, b, field("prompt_tok_s"), field("decode_tok_s"), field("decode_step_median_ms"), gbs, frac,
          field("submits_per_step"), field("dispatches_per_step"), field("upload_bytes_per_step"), field("readback_bytes_per_step") }'
  done
done
echo

# The tiled prompt matmul (matmul_tiled.comp) against matmul.comp: batch-1 prompt speed with it on (the default
# from 64 rows on GPUs) and off. On a CPU device both runs take the same kernels.
echo "== prompt speed on $dev, tiled matmul on / off (batch 1, prompt $plen)"
for preset in $presets; do
  m="$dir/synth-$preset.gguf"
  for tiled in 0 -1; do
    tok=$(KVC_TILED_MIN_ROWS=$tiled bin/kvc bench decode --device "$dev" --model "$m" --prompt-len "$plen" -n 1 --max-rows 256 --json 2>/dev/null |
      grep -o '"prompt_tok_s":[0-9.e+]*' | sed 's/.*://')
    echo "$preset KVC_TILED_MIN_ROWS=$tiled  prompt $tok tok/s"
  done
done
