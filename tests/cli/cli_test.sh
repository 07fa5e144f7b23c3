#!/usr/bin/env bash
# The CLI end to end: bad input gets one clear "error: ..." line and a non-zero exit (never a crash), and good
# runs write images carrying their parameters. Usage: cli_test.sh EASEL_BINARY GOLDEN_DIR
set -uo pipefail
bin=$1
golden=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
model=$golden/pipeline_sd1

# expect_error NAME PATTERN -- ARGS...: exit status 1..2, exactly one line on stderr matching "error: .*PATTERN".
expect_error() {
  local name=$1 pattern=$2
  shift 3
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local lines
  lines=$(grep -c . "$tmp/err" || true)
  if [[ $rc -eq 0 || $rc -gt 2 ]] || ! grep -q "^error: .*$pattern" "$tmp/err" || [[ $(grep -c '^error:' "$tmp/err") -ne 1 ]]; then
    echo "FAIL $name: exit $rc, stderr ($lines lines):"; sed 's/^/    /' "$tmp/err"
    failures=$((failures + 1))
  else
    echo "ok   $name: exit $rc: $(grep '^error:' "$tmp/err")"
  fi
}

# expect_ok NAME -- ARGS...: exit 0.
expect_ok() {
  local name=$1
  shift 2
  if ! "$bin" "$@" >"$tmp/out" 2>"$tmp/err"; then
    echo "FAIL $name: exit $?:"; sed 's/^/    /' "$tmp/err"
    failures=$((failures + 1))
  else
    echo "ok   $name"
  fi
}

head -c 4096 /dev/urandom >"$tmp/corrupt.safetensors"
printf 'not an image' >"$tmp/bad.png"
mkdir -p "$tmp/novocab"
cp -r "$model"/unet "$model"/vae "$model"/text_encoder "$model"/scheduler "$model"/model_index.json "$tmp/novocab/"

expect_error "missing model" "no such model" -- generate -m "$tmp/nope.safetensors" -p x -o "$tmp/a.png"
expect_error "corrupt model" "corrupt.safetensors" -- generate -m "$tmp/corrupt.safetensors" -p x -o "$tmp/a.png"
expect_error "unknown sampler" "sampler" -- generate -m "$model" -p x --sampler nonsense -o "$tmp/a.png"
expect_error "unknown diffusers scheduler" "sampler" -- generate -m "$model" -p x --schedule-from diffusers --sampler dpm2 -o "$tmp/a.png"
expect_error "size off the model's grid" "width: must be a multiple of 8 for this model" -- generate -m "$model" -p x -W 33 -H 32 -o "$tmp/a.png"
# A multiple of 8 that the UNet's levels cannot halve evenly (the embedded model: 16) used to abort in the UNet.
expect_error "40x40 on the embedded model" "must be a multiple of 16 for this model.*got 40; nearest: 32 or 48" -- generate -p x -W 40 -H 40 -o "$tmp/a.png"
expect_error "height off the grid" "height: must be a multiple of 16" -- generate -p x -W 32 -H 24 -o "$tmp/a.png"
expect_error "absurd size" "outside" -- generate -m "$model" -p x -W 100000 -H 32 -o "$tmp/a.png"
expect_error "unknown output format" "output" -- generate -m "$model" -p x -o "$tmp/a.gif"
expect_error "unreadable init image" "init-image" -- generate -m "$model" -p x -W 32 -H 32 --init-image "$tmp/bad.png" -o "$tmp/a.png"
expect_error "bad vae tile" "vae_tile: must be 0 (off) or a multiple of" -- generate -m "$model" -p x -W 32 -H 32 --vae-tile 7 -o "$tmp/a.png"
expect_error "mask without init image" "mask" -- generate -m "$model" -p x -W 32 -H 32 --mask "$tmp/bad.png" -o "$tmp/a.png"
expect_error "bad steps" "steps" -- generate -m "$model" -p x --steps 0 -o "$tmp/a.png"
# The PostgreSQL store's flags: checked before anything starts.
expect_error "worker without a store" "--store: is required" -- worker
expect_error "worker with a folder for a store" "--store: expected a postgresql://" -- worker --store "$tmp"
expect_error "serve with a folder for a store" "--store: expected a postgresql://" -- serve --store "$tmp" --port 0
expect_error "worker lease out of range" "--lease: must be between 2 and 3600" -- worker --store postgresql:///x --lease 1
expect_error "unreachable store" "cannot connect to PostgreSQL" -- worker --store "postgresql:///easel?host=$tmp/no-socket-here"
expect_error "a store URL's password is not shown" "postgresql://easel:\*\*\*@127.0.0.1:1/x" -- worker --store "postgresql://easel:hunter2@127.0.0.1:1/x"
expect_error "keys with a folder for a store" "--store: expected a postgresql://" -- keys list --store "$tmp"
expect_error "missing vocabulary" "vocab" -- generate -m "$tmp/novocab" -p x --vocab "$tmp/none.json" -o "$tmp/a.png"
# Without a tokenizer/ folder the model gets the built-in CLIP vocabulary, which this 591-token model cannot take.
expect_error "built-in vocabulary too large" "token embedding has 591 rows" -- generate -m "$tmp/novocab" -p x -W 32 -H 32 -o "$tmp/a.png"
expect_ok "info names the tokenizer" -- info "$tmp/novocab"
if ! grep -q "tokenizer: built-in CLIP vocabulary" "$tmp/out"; then echo "FAIL easel info does not say the built-in vocabulary is used"; failures=$((failures + 1)); fi
expect_ok "tokenize with the built-in vocabulary" -- tokenize -m "$tmp/novocab" -p "a photo of a cat"
if ! grep -q "^49406,320,1125,539,320,2368,49407$" "$tmp/out"; then echo "FAIL built-in tokenizer ids: $(cat "$tmp/out")"; failures=$((failures + 1)); fi
expect_error "unknown flag" "--frobnicate" -- generate -m "$model" -p x --frobnicate -o "$tmp/a.png"
expect_error "unknown weight layout" "--weights: expected auto, packed or stored" -- generate -m "$model" -p x --weights half -o "$tmp/a.png"
expect_error "skip layers that are not numbers" "--slg-layers: expected block numbers such as" -- generate -m "$model" -p x --slg-layers 7,x -o "$tmp/a.png"
expect_error "skip-layer settings without layers" "go with --slg-layers" -- generate -m "$model" -p x --slg-scale 3 -o "$tmp/a.png"
expect_error "skip layers on a UNet" "slg_layers: skip-layer guidance leaves out transformer blocks" -- generate -m "$model" -p x -W 32 -H 32 --slg-layers 1 -o "$tmp/a.png"
expect_error "skip layers beyond the transformer" "slg_layers: block 5 is not one of this transformer's blocks 0 to 2" -- generate -m "$golden/pipeline_sd3" -p x -W 32 -H 32 --slg-layers 5 -o "$tmp/a.png"
# f16 Linear weights kept as stored or packed at load: the same kernel on the same values, the same image.
expect_ok "weights stored" -- generate -m "$model" -p "a red circle" --seed 3 --steps 2 -W 32 -H 32 --weights stored -o "$tmp/ws.png"
expect_ok "weights packed" -- generate -m "$model" -p "a red circle" --seed 3 --steps 2 -W 32 -H 32 --weights packed -o "$tmp/wp.png"
if ! cmp -s "$tmp/ws.png" "$tmp/wp.png"; then echo "FAIL --weights stored and packed give different images"; failures=$((failures + 1)); fi
expect_ok "SD3 with skip-layer guidance" -- generate -m "$golden/pipeline_sd3" -p "a red circle" --seed 3 --steps 3 -W 32 -H 32 --cfg-scale 5 --slg-layers 1 --slg-start 0 --slg-stop 1 -o "$tmp/slg.png"
if ! grep -a -q "SLG layers: 1, SLG scale: 2.8, SLG start: 0.0, SLG stop: 1.0" "$tmp/slg.png"; then echo "FAIL the SLG run's PNG lacks its parameters"; failures=$((failures + 1)); fi

# Good runs: txt2img in both modes, img2img, inpainting in both modes (mask of another size must be refused).
expect_ok "txt2img k-diffusion" -- generate -m "$model" -p "a red circle" --seed 1 --steps 4 -W 32 -H 32 -o "$tmp/k.png"
expect_ok "txt2img diffusers mode" -- generate -m "$model" -p "a red circle" --seed 1 --steps 4 -W 32 -H 32 --schedule-from diffusers --sampler dpm++2m -o "$tmp/d.png"
if ! grep -a -q "Schedule from: diffusers" "$tmp/d.png"; then echo "FAIL diffusers-mode PNG lacks its parameters"; failures=$((failures + 1)); fi
# Provenance: every format carries the IPTC label, the generator, the model, its hash and licence in XMP, as an
# independent reader (exiftool, scripts/setup) sees it; the infotext carries A1111's "Model hash".
expect_ok "embedded model as JPEG" -- generate -p "a red circle" --seed 1 --steps 2 -W 32 -H 32 -o "$tmp/e.jpg"
expect_ok "embedded model as WebP" -- generate -p "a red circle" --seed 1 --steps 2 -W 32 -H 32 -o "$tmp/e.webp"
expect_ok "a stated licence" -- generate -m "$model" -p "a red circle" --seed 1 --steps 2 -W 32 -H 32 --license "my-licence-1.0" -o "$tmp/lic.png"
expect_ok "a single file" -- generate -m "$golden/pipeline_sd1_single/tiny-sd1.safetensors" --vocab "$model/tokenizer" -p "a red circle" --seed 1 --steps 2 -W 32 -H 32 -o "$tmp/single.jpg"
single_hash=$(sha256sum "$golden/pipeline_sd1_single/tiny-sd1.safetensors" | cut -c1-10)
check_xmp() {  # FILE TAG EXPECTED
  local got
  got=$(exiftool -s -s -s "-$2" "$1" 2>&1)
  if [[ "$got" != "$3" ]]; then echo "FAIL $1: exiftool $2 is '$got', expected '$3'"; failures=$((failures + 1)); else echo "ok   $(basename "$1"): $2 = $got"; fi
}
if ! command -v exiftool >/dev/null; then
  echo "FAIL exiftool is not installed (scripts/setup installs libimage-exiftool-perl)"; failures=$((failures + 1))
else
  for f in "$tmp/k.png" "$tmp/e.jpg" "$tmp/e.webp"; do
    check_xmp "$f" XMP-iptcExt:DigitalSourceType "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    check_xmp "$f" XMP-xmp:CreatorTool "easel 0.1.0"
  done
  check_xmp "$tmp/e.jpg" XMP-easel:ModelLicense "easel"
  check_xmp "$tmp/e.webp" XMP-easel:Model "tiny"
  check_xmp "$tmp/lic.png" XMP-easel:ModelLicense "my-licence-1.0"
  check_xmp "$tmp/k.png" XMP-easel:ModelLicense "unknown"
  check_xmp "$tmp/single.jpg" XMP-easel:ModelHash "$single_hash"
  check_xmp "$tmp/e.jpg" XMP-easel:ModelHash ""  # a folder has none, as in AUTOMATIC1111
  if ! exiftool -s -s -s -Comment "$tmp/single.jpg" | grep -q "Model hash: $single_hash, Model: tiny-sd1"; then
    echo "FAIL the infotext lacks 'Model hash: $single_hash, Model: tiny-sd1':"; exiftool -s -s -s -Comment "$tmp/single.jpg"; failures=$((failures + 1))
  fi
fi
# The invisible watermark at 256x256 and up (Stable Diffusion's in U, easel's in V), and `easel verify`.
expect_ok "a watermarked image" -- generate -p "a red circle" --seed 1 --steps 2 -W 256 -H 256 -o "$tmp/w.png"
expect_ok "an unmarked image" -- generate -p "a red circle" --seed 1 --steps 2 -W 256 -H 256 --no-watermark -o "$tmp/nw.png"
# (The embedded model draws flat, saturated colours, where the colour conversion clips the marks away, so what a
# decoder reads back is tested on photo-like images in tests/unit/watermark_test.cpp; here, what is recorded.)
"$bin" verify "$tmp/w.png" >"$tmp/verify" 2>&1
if [[ $? -ne 0 ]] || ! grep -q "label: AI-generated" "$tmp/verify" || ! grep -q "easel:Watermark: StableDiffusionV1 (U), easel (V)" "$tmp/verify" \
   || ! grep -q "watermark easel (V): [0-9]*/40 bits" "$tmp/verify"; then
  echo "FAIL easel verify on a watermarked image:"; sed 's/^/    /' "$tmp/verify"; failures=$((failures + 1))
else
  echo "ok   easel verify reads the label, the recorded watermark and the marks"
fi
"$bin" verify "$tmp/nw.png" >"$tmp/verify2" 2>&1
if ! grep -q "easel:Watermark: none: turned off" "$tmp/verify2"; then
  echo "FAIL easel verify on an unmarked image:"; sed 's/^/    /' "$tmp/verify2"; failures=$((failures + 1))
else
  echo "ok   an unmarked image says so"
fi
expect_error "verify a missing file" "no such image file" -- verify "$tmp/none.png"
expect_error "verify a folder" "no such image file" -- verify "$tmp"
expect_error "a folder as the signing key" "cannot open the signing key" -- generate -p x -W 32 -H 32 --sign-key "$tmp" --sign-cert "$tmp" -o "$tmp/x.png"
# C2PA content credentials: a test signer from `easel keys signer`, signed PNG and JPEG outputs read by exiftool
# (the JUMBF boxes) and checked by the independent Python verifier (tools/reference/c2pa_verify.py, on Debian's
# python3-cbor2 and python3-cryptography); one changed byte fails in both verifiers; `easel verify` tells a signed,
# a tampered, an unmarked and an unreadable image apart by its exit status.
expect_ok "a C2PA test signer" -- keys signer --out "$tmp/signer" --org "easel cli test" --days 2
if [[ $(stat -c %a "$tmp/signer.key") != 600 ]]; then echo "FAIL the signing key is not mode 600"; failures=$((failures + 1)); fi
sign=(--sign-key "$tmp/signer.key" --sign-cert "$tmp/signer.pem")
expect_ok "a signed PNG" -- generate -p "a red circle" --seed 1 --steps 2 -W 32 -H 32 "${sign[@]}" -o "$tmp/c.png"
expect_ok "a signed JPEG" -- generate -p "a red circle" --seed 1 --steps 2 -W 32 -H 32 "${sign[@]}" -o "$tmp/c.jpg"
expect_error "a signed WebP" "PNG and JPEG" -- generate -p x -W 32 -H 32 "${sign[@]}" -o "$tmp/c.webp"
expect_error "a key without its certificate" "sign-cert" -- generate -p x -W 32 -H 32 --sign-key "$tmp/signer.key" -o "$tmp/x.png"
expect_error "a certificate of another key" "not the signing key's" -- generate -p x -W 32 -H 32 --sign-key "$tmp/signer.key" --sign-cert "$tmp/signer-root.pem" -o "$tmp/x.png"
expect_error "a certificate file that is not one" "no PEM certificate" -- generate -p x -W 32 -H 32 --sign-key "$tmp/signer.key" --sign-cert "$tmp/signer.key" -o "$tmp/x.png"
python3_debian=/usr/bin/python3
for f in "$tmp/c.png" "$tmp/c.jpg"; do
  boxes=$(exiftool -a -s -s -s -JUMBF:JUMDLabel "$f" 2>&1 | tr '\n' ' ')
  if [[ $boxes != *"c2pa.claim.v2"* || $boxes != *"c2pa.signature"* || $boxes != *"c2pa.hash.data"* || $boxes != *"c2pa.actions.v2"* ]]; then
    echo "FAIL exiftool lists the JUMBF boxes of $(basename "$f") as: $boxes"; failures=$((failures + 1))
  else
    echo "ok   exiftool lists $(basename "$f")'s C2PA boxes: $boxes"
  fi
  if ! "$python3_debian" "$here/../../tools/reference/c2pa_verify.py" --trust-anchor "$tmp/signer-root.pem" "$f" >"$tmp/pyverify" 2>&1; then
    echo "FAIL the independent verifier refuses $(basename "$f"):"; sed 's/^/    /' "$tmp/pyverify"; failures=$((failures + 1))
  else
    echo "ok   the independent verifier: $(grep '^RESULT' "$tmp/pyverify")"
  fi
  # One byte of the image data, 20 bytes from the end (PNG: in the last IDAT chunk; JPEG: the entropy-coded data).
  changed="$tmp/changed_$(basename "$f")"
  cp "$f" "$changed"
  size=$(stat -c %s "$changed")
  printf '\x55' | dd of="$changed" bs=1 seek=$((size - 20)) conv=notrunc status=none
  "$python3_debian" "$here/../../tools/reference/c2pa_verify.py" "$changed" >"$tmp/pyverify" 2>&1
  py=$?
  "$bin" verify "$changed" >"$tmp/verify3" 2>&1
  ev=$?
  if [[ $py -ne 1 || $ev -ne 3 ]] || ! grep -q "verdict: tampered" "$tmp/verify3"; then
    echo "FAIL a changed byte in $(basename "$f"): the independent verifier exits $py (want 1), easel verify $ev (want 3):"
    sed 's/^/    /' "$tmp/pyverify" "$tmp/verify3"; failures=$((failures + 1))
  else
    echo "ok   a changed byte in $(basename "$f") fails both verifiers: $(grep -m1 'hard binding' "$tmp/pyverify" | sed 's/^ *//'); easel: $(grep 'verdict' "$tmp/verify3" | sed 's/^ *//')"
  fi
done
"$bin" verify --trust-anchor "$tmp/signer-root.pem" "$tmp/c.png" >"$tmp/verify4" 2>&1
rc=$?
if [[ $rc -ne 0 ]] || ! grep -q "verdict: signed: .*easel cli test content signer (test).*(trusted)" "$tmp/verify4" || ! grep -q "hard binding: the image's bytes match" "$tmp/verify4"; then
  echo "FAIL easel verify on a signed image (exit $rc):"; sed 's/^/    /' "$tmp/verify4"; failures=$((failures + 1))
else
  echo "ok   easel verify: $(grep verdict "$tmp/verify4" | sed 's/^ *//')"
fi
"$bin" verify --json "$tmp/c.jpg" >"$tmp/verify5" 2>&1
if ! grep -q '"verdict":"signed"' "$tmp/verify5" || ! grep -q '"trusted":false' "$tmp/verify5"; then
  echo "FAIL easel verify --json on a signed JPEG without an anchor:"; sed 's/^/    /' "$tmp/verify5"; failures=$((failures + 1))
else
  echo "ok   easel verify --json: signed, not trusted without an anchor"
fi
"$bin" verify "$golden/controlnet/control_a.png" >"$tmp/verify6" 2>&1
rc=$?
if [[ $rc -ne 1 ]] || ! grep -q "verdict: none" "$tmp/verify6"; then
  echo "FAIL easel verify on another tool's image: exit $rc (want 1):"; sed 's/^/    /' "$tmp/verify6"; failures=$((failures + 1))
else
  echo "ok   another tool's image: exit 1, $(grep verdict "$tmp/verify6" | sed 's/^ *//')"
fi
head -c 100 "$tmp/c.png" >"$tmp/cut.png"
"$bin" verify "$tmp/cut.png" >"$tmp/verify7" 2>&1
rc=$?
if [[ $rc -ne 2 ]]; then echo "FAIL easel verify on a cut-off file: exit $rc (want 2)"; failures=$((failures + 1)); else echo "ok   a cut-off file: exit 2"; fi
expect_ok "img2img" -- generate -m "$model" -p "a blue square" --seed 2 --steps 4 -W 32 -H 32 --init-image "$tmp/k.png" --strength 0.5 -o "$tmp/i.png"
expect_ok "inpainting" -- generate -m "$model" -p "a blue square" --seed 2 --steps 4 -W 32 -H 32 --init-image "$tmp/k.png" --mask "$tmp/d.png" -o "$tmp/m.png"
if ! grep -a -q "Mask blur: 4" "$tmp/m.png"; then echo "FAIL inpainting PNG lacks 'Mask blur'"; failures=$((failures + 1)); fi
expect_ok "inpainting model txt2img" -- generate -m "$golden/pipeline_sd1_inpaint" -p "a green triangle" --seed 3 --steps 4 -W 32 -H 32 -o "$tmp/n.png"
expect_ok "inpainting diffusers mode, 9-channel model" -- generate -m "$golden/pipeline_sd1_inpaint" -p "a green triangle" --seed 3 --steps 4 -W 32 -H 32 --init-image "$tmp/k.png" --mask "$tmp/d.png" --strength 0.75 --schedule-from diffusers --sampler euler_a -o "$tmp/q.png"
expect_ok "inpainting diffusers mode, blending" -- generate -m "$model" -p "a blue square" --seed 2 --steps 4 -W 32 -H 32 --init-image "$tmp/k.png" --mask "$tmp/d.png" --strength 1 --schedule-from diffusers --sampler ddim -o "$tmp/r.png"
if grep -a -q "Mask blur" "$tmp/r.png"; then echo "FAIL diffusers-mode inpainting PNG claims a mask blur (diffusers does not blur)"; failures=$((failures + 1)); fi
expect_error "diffusers-mode inpainting with heun" "heun" -- generate -m "$model" -p x -W 32 -H 32 --init-image "$tmp/k.png" --mask "$tmp/d.png" --schedule-from diffusers --sampler heun -o "$tmp/a.png"
# A1111's other inpainting options: masked content, and "Only masked" (the 48x32 picture's masked box inpainted at
# 32x32, the output 48x32).
expect_ok "make a 48x32 picture" -- generate -m "$model" -p "a red circle" --seed 4 --steps 2 -W 48 -H 32 -o "$tmp/wide.png"
expect_ok "inpainting, only masked, fill" -- generate -m "$model" -p "a blue square" --seed 2 --steps 4 -W 32 -H 32 --init-image "$tmp/wide.png" --mask "$tmp/wide.png" --inpaint-area masked --inpaint-padding 8 --masked-content fill -o "$tmp/om.png"
if ! grep -a -q "Inpaint area: Only masked" "$tmp/om.png" || ! grep -a -q "Masked content: fill" "$tmp/om.png"; then
  echo "FAIL only-masked PNG lacks 'Inpaint area' or 'Masked content'"; failures=$((failures + 1))
fi
if ! python3 -c 'import struct, sys; d = open(sys.argv[1], "rb").read(); sys.exit(struct.unpack(">II", d[16:24]) != (48, 32))' "$tmp/om.png"; then
  echo "FAIL only-masked output is not the init image's 48x32"; failures=$((failures + 1))
fi
for content in latent-noise latent-nothing original; do
  expect_ok "inpainting, masked content $content" -- generate -m "$model" -p "a blue square" --seed 2 --steps 4 -W 32 -H 32 --init-image "$tmp/k.png" --mask "$tmp/d.png" --masked-content $content -o "$tmp/mc.png"
done
expect_error "unknown masked content" "latent-noise" -- generate -m "$model" -p x -W 32 -H 32 --init-image "$tmp/k.png" --mask "$tmp/d.png" --masked-content noise -o "$tmp/a.png"
expect_error "unknown inpaint area" "whole or masked" -- generate -m "$model" -p x -W 32 -H 32 --init-image "$tmp/k.png" --mask "$tmp/d.png" --inpaint-area all -o "$tmp/a.png"
expect_error "masked content without a mask" "needs --mask" -- generate -m "$model" -p x -W 32 -H 32 --masked-content fill -o "$tmp/a.png"
expect_error "only masked with a padding out of range" "between 0 and 256" -- generate -m "$model" -p x -W 32 -H 32 --init-image "$tmp/wide.png" --mask "$tmp/wide.png" --inpaint-area masked --inpaint-padding 300 -o "$tmp/a.png"
expect_error "masked content in diffusers mode" "k-diffusion mode" -- generate -m "$model" -p x -W 32 -H 32 --init-image "$tmp/k.png" --mask "$tmp/d.png" --masked-content fill --schedule-from diffusers -o "$tmp/a.png"
# Live previews: the tiny autoencoder's picture (8x the latent) or the linear approximation (the latent's size).
expect_ok "previews with a tiny autoencoder" -- generate -m "$model" -p "a red circle" --seed 1 --steps 4 -W 32 -H 32 --preview "$tmp/prev.png" --preview-every 2 --taesd "$golden/taesd/tiny4_decoder.safetensors" -o "$tmp/a.png"
if ! grep -q "^previews: 2 (tiny autoencoder 128x128)" "$tmp/err"; then echo "FAIL previews: $(grep previews "$tmp/err")"; failures=$((failures + 1)); fi
if ! python3 -c 'import struct, sys; d = open(sys.argv[1], "rb").read(); sys.exit(struct.unpack(">II", d[16:24]) != (128, 128))' "$tmp/prev.png"; then
  echo "FAIL the tiny autoencoder's preview is not 128x128 (8x the 16x16 latent)"; failures=$((failures + 1))
fi
expect_ok "previews without one" -- generate -m "$model" -p "a red circle" --seed 1 --steps 3 -W 32 -H 32 --preview "$tmp/prev2.png" -o "$tmp/a.png"
if ! grep -q "^previews: 1 (linear approximation 16x16)" "$tmp/err"; then echo "FAIL previews without TAESD: $(grep previews "$tmp/err")"; failures=$((failures + 1)); fi
expect_error "--taesd without --preview" "needs --preview" -- generate -m "$model" -p x -W 32 -H 32 --taesd "$golden/taesd/tiny4" -o "$tmp/a.png"
expect_error "--taesd naming a checkpoint" "not a tiny autoencoder" -- generate -m "$model" -p x -W 32 -H 32 --preview "$tmp/p.png" --taesd "$golden/pipeline_sdxl_single/tiny-sdxl.safetensors" -o "$tmp/a.png"
expect_error "--preview not a PNG" "should be a .png" -- generate -m "$model" -p x -W 32 -H 32 --preview "$tmp/p.jpg" -o "$tmp/a.png"
expect_error "--preview-every 0" "between 1 and 1000" -- generate -m "$model" -p x -W 32 -H 32 --preview "$tmp/p.png" --preview-every 0 -o "$tmp/a.png"
expect_error "serve --taesd with an unknown family" "unknown family" -- serve --port 0 --data "$tmp/srv" -m "$model" --taesd "sd4=$golden/taesd/tiny4"
expect_ok "make a 16x32 mask" -- generate -m "$model" -p x --seed 1 --steps 1 -W 16 -H 32 -o "$tmp/small.png"
expect_error "mask size mismatch" "16x32" -- generate -m "$model" -p x -W 32 -H 32 --init-image "$tmp/k.png" --mask "$tmp/small.png" -o "$tmp/a.png"

# SDXL (a diffusers folder with two text encoders): txt2img with its own flags, img2img, and bad flag values.
sdxl=$golden/pipeline_sdxl
expect_ok "SDXL txt2img" -- generate -m "$sdxl" -p "a red circle" --prompt-2 "a blue square" --original-size 128x128 --crop 8x16 --seed 1 --steps 3 -W 64 -H 96 -o "$tmp/xl.png"
expect_ok "SDXL img2img, diffusers mode" -- generate -m "$sdxl" -p "a red circle" --seed 1 --steps 3 -W 64 -H 96 --init-image "$tmp/xl.png" --strength 0.5 --schedule-from diffusers --sampler euler -o "$tmp/xl2.png"
expect_ok "SDXL info" -- info "$sdxl"
if ! grep -q "family: sdxl" "$tmp/out" || ! grep -q "text encoder 2:" "$tmp/out"; then echo "FAIL easel info on SDXL: $(cat "$tmp/out")"; failures=$((failures + 1)); fi
expect_error "SDXL crop without two numbers" "--crop: expected two numbers" -- generate -m "$sdxl" -p x --crop 8 -W 64 -H 64 -o "$tmp/a.png"
expect_error "SDXL size off its grid" "width: must be a multiple of 8" -- generate -m "$sdxl" -p x -W 60 -H 64 -o "$tmp/a.png"
expect_ok "SDXL base + refiner hand-off" -- generate -m "$sdxl" --refiner "$golden/pipeline_sdxl_refiner" --schedule-from diffusers --sampler euler -p "a red circle" --seed 3 --steps 10 -W 64 -H 64 -o "$tmp/xr.png"
if ! grep -a -q "Model: pipeline_sdxl, .*Refiner: pipeline_sdxl_refiner, Refiner switch at: 0.8" "$tmp/xr.png"; then echo "FAIL refined PNG lacks its base model and refiner fields"; failures=$((failures + 1)); fi
expect_error "an SD 1.5 model as the refiner" "not an SDXL refiner" -- generate -m "$sdxl" --refiner "$model" --schedule-from diffusers -p x -W 64 -H 64 -o "$tmp/a.png"
expect_error "a refiner for an SD 1.5 base" "not an SDXL base" -- generate -m "$model" --refiner "$golden/pipeline_sdxl_refiner" --schedule-from diffusers -p x -W 64 -H 64 -o "$tmp/a.png"
expect_ok "SDXL base + refiner, A1111's switch" -- generate -m "$sdxl" --refiner "$golden/pipeline_sdxl_refiner" --refiner-switch 0.6 --sampler dpm++2m -p "a red circle" --seed 3 --steps 10 -W 64 -H 64 -o "$tmp/xk.png"
if ! grep -a -q "Model: pipeline_sdxl, .*Refiner: pipeline_sdxl_refiner, Refiner switch at: 0.6" "$tmp/xk.png"; then echo "FAIL A1111-refined PNG lacks its refiner fields"; failures=$((failures + 1)); fi
# An SDXL LoRA passed as the model: a one-tensor safetensors file in kohya-ss's names.
hdr='{"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}'
{ printf "\\x$(printf %02x ${#hdr})\\x00\\x00\\x00\\x00\\x00\\x00\\x00"; printf '%s' "$hdr"; printf '\x00\x00'; } > "$tmp/lora.safetensors"
expect_error "an SDXL LoRA passed as the model" "this is an SDXL LoRA file, an add-on for a model" -- generate -m "$tmp/lora.safetensors" -p x -o "$tmp/a.png"
expect_error "refiner switch out of range" "--refiner-switch" -- generate -m "$sdxl" --refiner "$golden/pipeline_sdxl_refiner" --schedule-from diffusers --refiner-switch 1 -p x -W 64 -H 64 -o "$tmp/a.png"

# LoRAs (tests/golden/data/lora, tools/reference/make_lora_goldens.py): the prompt tag and --lora give the same
# image, unlike none; the infotext keeps the tag and records A1111's "Lora hashes"; bad names and files are errors.
loras=$golden/lora
expect_ok "no LoRA" -- generate -m "$model" -p "a red circle" --seed 4 --steps 3 -W 32 -H 32 -o "$tmp/l0.png"
expect_ok "LoRA by prompt tag" -- generate -m "$model" -p "a red circle <lora:sd1_kohya:0.8>" --lora-dir "$loras" --seed 4 --steps 3 -W 32 -H 32 -o "$tmp/l1.png"
expect_ok "LoRA by --lora" -- generate -m "$model" -p "a red circle" --lora sd1_kohya:0.8 --lora-dir "$loras" --seed 4 --steps 3 -W 32 -H 32 -o "$tmp/l2.png"
"$bin" generate -m "$model" -p "a red circle" --lora "$loras/sd1_kohya.safetensors" --seed 4 --steps 3 -W 32 -H 32 -o "$tmp/l3.png" 2>/dev/null >/dev/null
# A1111's LoRA hash: SHA-256 of the safetensors data after the header.
lora_hash=$(python3 -c "import sys,hashlib,struct
d=open(sys.argv[1],'rb').read();print(hashlib.sha256(d[8+struct.unpack('<Q',d[:8])[0]:]).hexdigest()[:12])" "$loras/sd1_kohya.safetensors")
if ! grep -a -q 'a red circle <lora:sd1_kohya:0.8>' "$tmp/l1.png" || ! grep -a -q "Lora hashes: \"sd1_kohya: $lora_hash\"" "$tmp/l1.png"; then
  echo "FAIL the LoRA image's infotext lacks its tag or its Lora hashes:"; grep -a -o 'a red circle.*' "$tmp/l1.png" | head -3; failures=$((failures + 1))
fi
pixels() { python3 -c "import sys,zlib,struct
d=open(sys.argv[1],'rb').read();i=8;out=b''
while i<len(d):
    n=struct.unpack('>I',d[i:i+4])[0];t=d[i+4:i+8]
    if t==b'IDAT': out+=d[i+8:i+8+n]
    i+=12+n
print(zlib.decompress(out).hex())" "$1"; }
if [[ "$(pixels "$tmp/l1.png")" != "$(pixels "$tmp/l2.png")" ]]; then echo "FAIL <lora:sd1_kohya:0.8> and --lora sd1_kohya:0.8 differ"; failures=$((failures + 1)); fi
if [[ "$(pixels "$tmp/l0.png")" == "$(pixels "$tmp/l1.png")" ]]; then echo "FAIL the LoRA did not change the image"; failures=$((failures + 1)); fi
if [[ "$(pixels "$tmp/l2.png")" == "$(pixels "$tmp/l3.png")" ]]; then echo "FAIL multiplier 0.8 and 1 gave the same image"; failures=$((failures + 1)); fi
expect_error "unknown LoRA name" "no LoRA named 'nope'" -- generate -m "$model" -p "x <lora:nope:1>" --lora-dir "$loras" -W 32 -H 32 -o "$tmp/a.png"
expect_error "bad LoRA multiplier" "'high' in <lora:sd1_kohya:high> is not a multiplier" -- generate -m "$model" -p "x <lora:sd1_kohya:high>" --lora-dir "$loras" -W 32 -H 32 -o "$tmp/a.png"
expect_error "LoRA of the wrong shape" "does not fit" -- generate -m "$model" -p "x <lora:bad_shape>" --lora-dir "$loras" -W 32 -H 32 -o "$tmp/a.png"
expect_error "SDXL LoRA on SD 1.5" "text_encoder_2, which this model (sd1) does not have" -- generate -m "$model" -p "x" --lora "$loras/sdxl_kohya.safetensors" -W 32 -H 32 -o "$tmp/a.png"

# ControlNets (tests/golden/data/controlnet, tools/reference/make_controlnet_goldens.py): the diffusers folder and the
# original single-file layout of the same weights give the same image, unlike none; the infotext records the unit;
# flags that do not add up, and a ControlNet of another family, are errors before any work.
cn=$golden/controlnet
expect_ok "ControlNet folder" -- generate -m "$model" -p "a red circle" --controlnet "$cn/sd1_a" --control-image "$cn/control_a.png" --seed 4 --steps 3 -W 32 -H 32 -o "$tmp/c1.png"
expect_ok "ControlNet single file" -- generate -m "$model" -p "a red circle" --controlnet "$cn/sd1_a_ldm.safetensors" --control-image "$cn/control_a.png" --seed 4 --steps 3 -W 32 -H 32 -o "$tmp/c2.png"
expect_ok "two ControlNets" -- generate -m "$model" -p "a red circle" --controlnet "$cn/sd1_a" --controlnet "$cn/sd1_b_ldm.safetensors" --control-image "$cn/control_a.png" --control-image "$cn/control_c.png" --control-scale 0.8 --control-scale 0.5 --guess-mode --seed 4 --steps 3 -W 32 -H 32 -o "$tmp/c3.png"
if [[ "$(pixels "$tmp/c1.png")" != "$(pixels "$tmp/c2.png")" ]]; then echo "FAIL the ControlNet folder and its single file differ"; failures=$((failures + 1)); fi
if [[ "$(pixels "$tmp/l0.png")" == "$(pixels "$tmp/c1.png")" ]]; then echo "FAIL the ControlNet did not change the image"; failures=$((failures + 1)); fi
if ! grep -a -q 'ControlNet 1: "Module: none, Model: sd1_b_ldm, Weight: 0.5, Guidance Start: 0, Guidance End: 1, Control Mode: ControlNet is more important"' "$tmp/c3.png"; then
  echo "FAIL the infotext lacks the second ControlNet unit:"; grep -a -o 'Steps:.*' "$tmp/c3.png" | head -2; failures=$((failures + 1))
fi
expect_error "control image without a ControlNet" "needs --controlnet" -- generate -m "$model" -p x --control-image "$cn/control_a.png" -W 32 -H 32 -o "$tmp/a.png"
expect_error "ControlNet without an image" "needs --control-image" -- generate -m "$model" -p x --controlnet "$cn/sd1_a" -W 32 -H 32 -o "$tmp/a.png"
expect_error "ControlNet scale count" "given 3 times for 2 --controlnet" -- generate -m "$model" -p x --controlnet "$cn/sd1_a" --controlnet "$cn/sd1_a" --control-image "$cn/control_a.png" --control-scale 1 --control-scale 1 --control-scale 1 -W 32 -H 32 -o "$tmp/a.png"
expect_error "ControlNet scale not a number" "expected a number, got '1,2'" -- generate -m "$model" -p x --controlnet "$cn/sd1_a" --control-image "$cn/control_a.png" --control-scale 1,2 -W 32 -H 32 -o "$tmp/a.png"
expect_error "ControlNet window" "expected 0 <= start < end <= 1" -- generate -m "$model" -p x --controlnet "$cn/sd1_a" --control-image "$cn/control_a.png" --control-start 0.5 --control-end 0.5 -W 32 -H 32 -o "$tmp/a.png"
expect_error "SDXL ControlNet on SD 1.5" "does not fit the model" -- generate -m "$model" -p x --controlnet "$cn/sdxl_a" --control-image "$cn/control_a.png" -W 32 -H 32 -o "$tmp/a.png"
expect_error "a ControlNet as the model" "this is a ControlNet (give it with --controlnet), an add-on for a model" -- generate -m "$cn/sd1_b_ldm.safetensors" -p x -W 32 -H 32 -o "$tmp/a.png"
expect_error "a model as the ControlNet" "not a ControlNet" -- generate -m "$model" -p x --controlnet "$model/unet/diffusion_pytorch_model.safetensors" --control-image "$cn/control_a.png" -W 32 -H 32 -o "$tmp/a.png"
expect_ok "ControlNet with the canny preprocessor" -- generate -m "$model" -p "a red circle" --controlnet "$cn/sd1_a" --control-image "$golden/preprocessors/shapes_150x113.png" --control-preprocessor canny:50:150 --seed 4 --steps 3 -W 32 -H 32 -o "$tmp/c4.png"
if ! grep -a -q 'ControlNet 0: "Module: canny, Model: sd1_a, Weight: 1, Threshold A: 50, Threshold B: 150' "$tmp/c4.png"; then
  echo "FAIL the infotext lacks the canny unit:"; grep -a -o 'Steps:.*' "$tmp/c4.png" | head -2; failures=$((failures + 1))
fi
expect_ok "canny at the extension's resolution" -- generate -m "$model" -p "a red circle" --controlnet "$cn/sd1_a" --control-image "$golden/preprocessors/shapes_150x113.png" --control-preprocessor canny:50:150 --control-resolution 512 --seed 4 --steps 3 -W 32 -H 32 -o "$tmp/c5.png"
if ! grep -a -q 'ControlNet 0: "Module: canny, Model: sd1_a, Weight: 1, Processor Res: 512, Threshold A: 50, Threshold B: 150' "$tmp/c5.png"; then
  echo "FAIL the infotext lacks the preprocessor's resolution"; failures=$((failures + 1))
fi
expect_error "preprocessor resolution" "expected a whole number of pixels from 0 to 2048" -- generate -m "$model" -p x --controlnet "$cn/sd1_a" --control-image "$cn/control_a.png" --control-resolution 51.5 -W 32 -H 32 -o "$tmp/a.png"
expect_error "unknown preprocessor" "preprocessor 'depth' is not available" -- generate -m "$model" -p x --controlnet "$cn/sd1_a" --control-image "$cn/control_a.png" --control-preprocessor depth -W 32 -H 32 -o "$tmp/a.png"
expect_error "canny threshold" "between 1 and 255" -- generate -m "$model" -p x --controlnet "$cn/sd1_a" --control-image "$cn/control_a.png" --control-preprocessor canny:0:300 -W 32 -H 32 -o "$tmp/a.png"

# IP-Adapters (tests/golden/data/ip_adapter, tools/reference/make_ip_adapter_goldens.py): the image encoder found
# beside the adapter (ip_adapter/image_encoder), several images of one adapter, two adapters; flags that do not add
# up, an adapter of another family, add-ons given as the model, are errors before any work.
ipa=$golden/ip_adapter
expect_ok "IP-Adapter" -- generate -m "$model" -p "a red circle" --ip-adapter "$ipa/sd1_plain.safetensors" --ip-adapter-image "$ipa/ip_ref_a.png" --seed 4 --steps 3 -W 32 -H 32 -o "$tmp/i1.png"
expect_ok "IP-Adapter Plus, two images, and a plain one" -- generate -m "$model" -p "a red circle" --ip-adapter "$ipa/sd1_plus.bin" --ip-adapter "$ipa/sd1_plain.safetensors" --ip-adapter-image "$ipa/ip_ref_a.png,$ipa/ip_ref_b.png" --ip-adapter-image "$ipa/ip_ref_c.png" --ip-adapter-scale 0.8 --ip-adapter-scale 0.5 --image-encoder "$ipa/image_encoder" --seed 4 --steps 3 -W 32 -H 32 -o "$tmp/i2.png"
if [[ "$(pixels "$tmp/l0.png")" == "$(pixels "$tmp/i1.png")" ]]; then echo "FAIL the IP-Adapter did not change the image"; failures=$((failures + 1)); fi
if ! grep -a -q 'ControlNet 1: "Module: ip-adapter_clip (image_encoder), Model: sd1_plain, Weight: 0.5, Guidance Start: 0, Guidance End: 1"' "$tmp/i2.png"; then
  echo "FAIL the infotext lacks the second IP-Adapter unit:"; grep -a -o 'Steps:.*' "$tmp/i2.png" | head -2; failures=$((failures + 1))
fi
expect_ok "IP-Adapter with a guidance window" -- generate -m "$model" -p "a red circle" --ip-adapter "$ipa/sd1_plain.safetensors" --ip-image "$ipa/ip_ref_a.png" --ip-start 0.25 --ip-end 0.75 --seed 4 --steps 3 -W 32 -H 32 -o "$tmp/i3.png"
if ! grep -a -q 'ControlNet 0: "Module: ip-adapter_clip (image_encoder), Model: sd1_plain, Weight: 1, Guidance Start: 0.25, Guidance End: 0.75"' "$tmp/i3.png"; then
  echo "FAIL the infotext lacks the IP-Adapter's guidance window"; failures=$((failures + 1))
fi
expect_error "IP-Adapter window" "expected 0 <= start < end <= 1" -- generate -m "$model" -p x --ip-adapter "$ipa/sd1_plain.safetensors" --ip-adapter-image "$ipa/ip_ref_a.png" --ip-adapter-start 0.6 --ip-adapter-end 0.4 -W 32 -H 32 -o "$tmp/a.png"
expect_error "IP-Adapter window without an adapter" "needs --ip-adapter" -- generate -m "$model" -p x --ip-adapter-end 0.5 -W 32 -H 32 -o "$tmp/a.png"
expect_error "IP-Adapter image without an adapter" "needs --ip-adapter" -- generate -m "$model" -p x --ip-adapter-image "$ipa/ip_ref_a.png" -W 32 -H 32 -o "$tmp/a.png"
expect_error "IP-Adapter without an image" "needs --ip-adapter-image" -- generate -m "$model" -p x --ip-adapter "$ipa/sd1_plain.safetensors" -W 32 -H 32 -o "$tmp/a.png"
expect_error "IP-Adapter image count" "given 2 times for 1 --ip-adapter" -- generate -m "$model" -p x --ip-adapter "$ipa/sd1_plain.safetensors" --ip-adapter-image "$ipa/ip_ref_a.png" --ip-adapter-image "$ipa/ip_ref_b.png" -W 32 -H 32 -o "$tmp/a.png"
expect_error "IP-Adapter image missing" "nothere.png" -- generate -m "$model" -p x --ip-adapter "$ipa/sd1_plain.safetensors" --ip-adapter-image "$ipa/ip_ref_a.png,$ipa/nothere.png" -W 32 -H 32 -o "$tmp/a.png"
expect_error "SDXL IP-Adapter on SD 1.5" "does not fit the model" -- generate -m "$model" -p x --ip-adapter "$ipa/sdxl_plain.safetensors" --ip-adapter-image "$ipa/ip_ref_a.png" -W 32 -H 32 -o "$tmp/a.png"
expect_error "an IP-Adapter as the model" "this is an IP-Adapter (give it with --ip-adapter)" -- generate -m "$ipa/sd1_plain.safetensors" -p x -W 32 -H 32 -o "$tmp/a.png"
expect_error "an image encoder as the model" "a CLIP image encoder" -- generate -m "$ipa/image_encoder/model.safetensors" -p x -W 32 -H 32 -o "$tmp/a.png"
expect_error "an adapter as the image encoder" "not its image encoder" -- generate -m "$model" -p x --ip-adapter "$ipa/sd1_plain.safetensors" --ip-adapter-image "$ipa/ip_ref_a.png" --image-encoder "$ipa/sd1_plus.safetensors" -W 32 -H 32 -o "$tmp/a.png"

# --timestep-spacing (diffusers mode): recorded in the infotext; refused in k-diffusion mode.
expect_ok "trailing timestep spacing" -- generate -m "$model" -p "a red circle" --schedule-from diffusers --sampler euler --timestep-spacing trailing --seed 4 --steps 3 -W 32 -H 32 -o "$tmp/ts.png"
if ! grep -a -q "Timestep spacing: trailing" "$tmp/ts.png"; then echo "FAIL the infotext lacks 'Timestep spacing: trailing'"; failures=$((failures + 1)); fi
expect_error "timestep spacing in k-diffusion mode" "timestep-spacing: applies to --schedule-from diffusers" -- generate -m "$model" -p x --timestep-spacing trailing -W 32 -H 32 -o "$tmp/a.png"
expect_error "unknown timestep spacing" "expected leading, linspace or trailing" -- generate -m "$model" -p x --schedule-from diffusers --timestep-spacing sideways -W 32 -H 32 -o "$tmp/a.png"

# Textual-inversion embeddings (tests/golden/data/embeddings, tools/reference/make_ti_goldens.py): a prompt naming one
# records A1111's "TI hashes"; the LoRA kept among them is skipped with a warning, and an error only when named.
emb=$golden/embeddings
expect_ok "embedding in the prompt" -- generate -m "$model" -p "a red circle, sd1_style" -n "sd1_neg" --embeddings-dir "$emb" --seed 4 --steps 3 -W 32 -H 32 -o "$tmp/t1.png"
if ! grep -a -q 'TI hashes: "sd1_style: [0-9a-f]\{12\}, sd1_neg: [0-9a-f]\{12\}"' "$tmp/t1.png"; then echo "FAIL the embedding image lacks TI hashes:"; grep -a -o 'Steps: .*' "$tmp/t1.png" | head -2; failures=$((failures + 1)); fi
if ! grep -q "warning: embeddings: skipped .*not_an_embedding.safetensors" "$tmp/err"; then echo "FAIL no warning for the LoRA among the embeddings"; failures=$((failures + 1)); fi
expect_error "a skipped file named in the prompt" "names the embedding 'not_an_embedding', which cannot be used" -- generate -m "$model" -p "x, not_an_embedding" --embeddings-dir "$emb" -W 32 -H 32 -o "$tmp/a.png"
expect_error "missing embeddings folder" "embeddings-dir" -- generate -m "$model" -p x --embeddings-dir "$tmp/none" -W 32 -H 32 -o "$tmp/a.png"

# A model's recommended guidance (easel_defaults.json): used when --cfg-scale is absent, overridden by it, and a bad
# file is refused naming it.
mkdir -p "$tmp/rec"
cp -r "$model"/* "$tmp/rec/"
printf '{"cfg_scale": 2.5, "_comment": "test"}' >"$tmp/rec/easel_defaults.json"
expect_ok "recommended CFG scale" -- generate -m "$tmp/rec" -p "a red circle" --seed 1 --steps 2 -W 32 -H 32 -o "$tmp/rec1.png"
if ! grep -a -q "CFG scale: 2.5," "$tmp/rec1.png"; then echo "FAIL the model's recommended CFG scale 2.5 was not used"; failures=$((failures + 1)); fi
expect_ok "--cfg-scale over the recommended one" -- generate -m "$tmp/rec" -p "a red circle" --seed 1 --steps 2 -W 32 -H 32 --cfg-scale 6 -o "$tmp/rec2.png"
if ! grep -a -q "CFG scale: 6.0," "$tmp/rec2.png"; then echo "FAIL --cfg-scale 6 did not override the recommended scale"; failures=$((failures + 1)); fi
if ! grep -a -q "CFG scale: 7.0," "$tmp/k.png"; then echo "FAIL a model without easel_defaults.json did not get CFG 7"; failures=$((failures + 1)); fi
printf '{"cfg_scale": "high"}' >"$tmp/rec/easel_defaults.json"
expect_error "bad easel_defaults.json" "easel_defaults.json" -- generate -m "$tmp/rec" -p x -W 32 -H 32 -o "$tmp/a.png"

if [[ $failures -ne 0 ]]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "all CLI checks passed"
