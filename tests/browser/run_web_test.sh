#!/usr/bin/env bash
# The web page of `easel serve` in headless Chromium: starts the server on a free port with an empty data
# folder (and the golden LoRAs, embeddings, ControlNets and IP-Adapter), runs web_test.mjs (Playwright) against it,
# stops the server. Usage: run_web_test.sh EASEL_BINARY
# Needs chromium, Node 20 or later and playwright-core in tests/browser/node_modules (scripts/setup installs all
# three); without them it fails, it does not skip. EASEL_WEB_SCREENSHOT=FILE.png keeps a screenshot of the page
# after a generation; CHROMIUM=/path/to/chromium picks the browser.
set -uo pipefail
bin=${1:?usage: run_web_test.sh EASEL_BINARY}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [[ -z $chromium || ! -x $chromium ]]; then
  echo "FAIL web page test: chromium is not installed (run scripts/setup, or set CHROMIUM=/path/to/it)"
  exit 1
fi
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; then
  echo "FAIL web page test: needs Node 20 or later, found '$(node --version 2>/dev/null || echo no node)' (run scripts/setup)"
  exit 1
fi
if [[ ! -f $here/node_modules/playwright-core/package.json ]]; then
  echo "FAIL web page test: playwright-core is not installed in $here/node_modules (run scripts/setup)"
  exit 1
fi

tmp=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid"
    # SIGTERM lets the server finish its database writes; one that hangs is killed after 10 s.
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

mkdir "$tmp/data"
# The LoRAs and embeddings of the golden data, for the page's "Add to prompt" list (they are not generated with).
golden=$here/../golden/data
# Two models: the embedded tiny one (the default, which the page's form starts with) and the golden SD 1.5
# pipeline, which the golden ControlNets and IP-Adapter fit. The ControlNet folder holds the golden ControlNets
# (tests/golden/data/controlnet) and one IP-Adapter (ip_adapter/sd1_plus, its image encoder from
# --image-encoder-dir), as links.
mkdir "$tmp/controlnet"
ln -s "$golden"/controlnet/* "$golden/ip_adapter/sd1_plus.safetensors" "$tmp/controlnet/"
# A C2PA signing key and test certificates: the server signs every image, and trusts its own test root.
"$bin" keys signer --out "$tmp/signer" --org "easel web test" >/dev/null || { echo "FAIL web page test: easel keys signer failed"; exit 1; }
"$bin" serve --port 0 --data "$tmp/data" --sign-key "$tmp/signer.key" --sign-cert "$tmp/signer.pem" \
  --trust-anchor "$tmp/signer-root.pem" --lora-dir "$golden/lora" --embeddings-dir "$golden/embeddings" \
  -m "$here/../../models/tiny" -m "$golden/pipeline_sd1" --controlnet-dir "$tmp/controlnet" \
  --image-encoder-dir "$golden/ip_adapter" >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!

# The server prints "easel serve: listening on http://127.0.0.1:PORT" once it accepts connections.
port=""
for _ in $(seq 300); do
  port=$(sed -n 's|^easel serve: listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$tmp/server.out" | head -n 1)
  [[ -n $port ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "FAIL web page test: the server exited before listening:"
    sed 's/^/    /' "$tmp/server.out" "$tmp/server.err"
    exit 1
  fi
  sleep 0.1
done
if [[ -z $port ]]; then
  echo "FAIL web page test: the server did not print its port within 30 s:"
  sed 's/^/    /' "$tmp/server.out" "$tmp/server.err"
  exit 1
fi

node "$here/web_test.mjs" "http://127.0.0.1:$port/" "$chromium"
status=$?
if ((status != 0)); then
  if ! kill -0 "$server_pid" 2>/dev/null; then
    wait "$server_pid"
    echo "the server is gone: it exited with status $? during the test"
    server_pid=""
  fi
  echo "server log (last 40 lines):"
  tail -n 40 "$tmp/server.out" "$tmp/server.err" | sed 's/^/    /'
fi
exit $status
