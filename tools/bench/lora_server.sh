#!/bin/bash
# What a LoRA costs a warm `easel serve` (issue 21): 512x512, 20-step euler, CFG 7 requests through
# /sdapi/v1/txt2img, alternating without and with a LoRA, on the random SD 1.5 checkpoint and the rank-32 LoRA
# that `easel_bench_e2e lora` makes beside it: base, LoRA, base, LoRA, the LoRA again at once (the worker keeps the
# set merged for it), base. Prints each request's wall time, the worker's own LoRA timings (its log) and whether the
# base images before and after, and the LoRA's images, are identical.
#
#   tools/bench/lora_server.sh [MODEL [LORA]]     (EASEL=path/to/easel, PORT=7871, PRECISION=fast, STEPS=20, SIZE=512)
#
# SIZE=64 STEPS=1 makes each request about a second, so that the wall times show the LoRA's cost above their noise.
set -euo pipefail
EASEL=${EASEL:-build/release/apps/easel}
MODEL=${1:-$HOME/.cache/easel-bench/sd15-random-fp16.safetensors}
LORA=${2:-$MODEL.lora-r32.safetensors}
PORT=${PORT:-7871}
D=$(mktemp -d)
mkdir "$D/Lora"
ln -s "$(realpath "$LORA")" "$D/Lora/bench.safetensors"
EASEL_LOG_LEVEL=info "$EASEL" serve -m "$MODEL" --lora-dir "$D/Lora" --port "$PORT" --data "$D/data" --precision "${PRECISION:-fast}" \
    >"$D/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$D"' EXIT
until curl -sf "http://127.0.0.1:$PORT/sdapi/v1/sd-models" >/dev/null; do
    kill -0 $PID 2>/dev/null || { cat "$D/log"; exit 1; }
    sleep 1
done
req() {  # name, prompt suffix
    local t
    t=$(curl -sf -o "$D/$1.json" -w "%{time_total}" -H 'Content-Type: application/json' \
        -d "{\"prompt\":\"a photograph of an astronaut riding a horse$2\",\"steps\":${STEPS:-20},\"width\":${SIZE:-512},\"height\":${SIZE:-512},\"seed\":42,\"sampler_name\":\"Euler\",\"cfg_scale\":7}" \
        "http://127.0.0.1:$PORT/sdapi/v1/txt2img")
    echo "$1 $t s"
}
req warm ""
for i in 1 2; do
    req "base$i" ""
    req "lora$i" " <lora:bench:1>"
done
req lora2b " <lora:bench:1>"  # the same set at once: kept merged by the worker
req base3 ""
same() { cmp -s <(sed 's/"info".*//' "$D/$1.json") <(sed 's/"info".*//' "$D/$2.json"); }
same warm base1 && same base1 base2 && same base2 base3 && echo "base images before and after the LoRA: identical" \
    || echo "base images before and after the LoRA: DIFFERENT"
same lora1 lora2 && same lora2 lora2b && echo "the LoRA's images: identical" || echo "the LoRA's images: DIFFERENT"
same lora1 base1 && echo "the LoRA's image equals the base's: the LoRA did nothing?" || true
grep "LoRAs" "$D/log" || true
