#!/usr/bin/env bash
# The web page of `easel serve` in headless Chromium: starts the server on a free port with an empty data
# folder (and the golden LoRAs, embeddings, ControlNets and IP-Adapter), and a second one that needs an API key (one
# key with a daily quota and a rate limit, for the page's usage line), runs web_test.mjs (Playwright) against them,
# stops the servers. Usage: run_web_test.sh EASEL_BINARY
# Needs chromium, Node 20 or later, and playwright-core and @axe-core/playwright in tests/browser/node_modules
# (scripts/setup installs them all); without them it fails, it does not skip. Screenshots and the downloaded image go
# to $EASEL_WEB_ARTIFACTS (default: browser-artifacts in the working directory); EASEL_WEB_SCREENSHOT=FILE.png also
# keeps a screenshot of the page after a generation; CHROMIUM=/path/to/chromium picks the browser.
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
for package in playwright-core @axe-core/playwright; do
  if [[ ! -f $here/node_modules/$package/package.json ]]; then
    echo "FAIL web page test: $package is not installed in $here/node_modules (run scripts/setup, or npm ci in $here)"
    exit 1
  fi
done

tmp=$(mktemp -d)
server_pid=""
keyed_pid=""
stop_server() {
  local pid=$1
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    # SIGTERM lets the server finish its database writes; one that hangs is killed after 10 s.
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
}
cleanup() {
  stop_server "$server_pid"
  stop_server "$keyed_pid"
  rm -rf "$tmp"
}
trap cleanup EXIT

# Waits for the server with process id $1, whose stdout is the file $2, to print its port, and prints the port.
# The server prints "easel serve: listening on http://127.0.0.1:PORT" once it accepts connections.
wait_for_port() {
  local pid=$1 out=$2 err=$3 port=""
  for _ in $(seq 300); do
    port=$(sed -n 's|^easel serve: listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$out" | head -n 1)
    [[ -n $port ]] && break
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "FAIL web page test: the server exited before listening:" >&2
      sed 's/^/    /' "$out" "$err" >&2
      return 1
    fi
    sleep 0.1
  done
  if [[ -z $port ]]; then
    echo "FAIL web page test: the server did not print its port within 30 s:" >&2
    sed 's/^/    /' "$out" "$err" >&2
    return 1
  fi
  echo "$port"
}

mkdir "$tmp/data"
# The LoRAs and embeddings of the golden data, for the page's "Add to prompt" list (they are not generated with).
golden=$here/../golden/data
# Four models: the embedded tiny one (the default, which the page's form starts with), the golden SD 1.5
# pipeline, which the golden ControlNets and IP-Adapter fit, and the golden tiny SD3 and Flux (dev-like) pipelines,
# for the form's settings of diffusion transformers (flow shift, skip-layer guidance, distilled guidance). The ControlNet folder holds the golden ControlNets
# (tests/golden/data/controlnet) and one IP-Adapter (ip_adapter/sd1_plus, its image encoder from
# --image-encoder-dir), as links.
mkdir "$tmp/controlnet"
ln -s "$golden"/controlnet/* "$golden/ip_adapter/sd1_plus.safetensors" "$tmp/controlnet/"
# A C2PA signing key and test certificates: the server signs every image, and trusts its own test root.
"$bin" keys signer --out "$tmp/signer" --org "easel web test" >/dev/null || { echo "FAIL web page test: easel keys signer failed"; exit 1; }
"$bin" serve --port 0 --data "$tmp/data" --sign-key "$tmp/signer.key" --sign-cert "$tmp/signer.pem" \
  --trust-anchor "$tmp/signer-root.pem" --lora-dir "$golden/lora" --embeddings-dir "$golden/embeddings" \
  -m "$here/../../models/tiny" -m "$golden/pipeline_sd1" -m "$golden/pipeline_sd3" -m "$golden/pipeline_flux" \
  --controlnet-dir "$tmp/controlnet" --image-encoder-dir "$golden/ip_adapter" >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!

port=$(wait_for_port "$server_pid" "$tmp/server.out" "$tmp/server.err") || exit 1

# The second server: the embedded model only, and one API key (so every request needs it), whose quota and rate
# limit the page's usage line shows.
mkdir "$tmp/keyed"
# `easel keys create` prints the key alone on stdout, and what it made on stderr.
key=$("$bin" keys create --name "web test" --quota 100 --rate 60 --data "$tmp/keyed" 2>"$tmp/keys.err")
if [[ ! $key =~ ^easel_[0-9a-f]+$ ]]; then
  echo "FAIL web page test: easel keys create printed '$key', not a key:"
  sed 's/^/    /' "$tmp/keys.err"
  exit 1
fi
"$bin" serve --port 0 --data "$tmp/keyed" -m "$here/../../models/tiny" >"$tmp/keyed.out" 2>"$tmp/keyed.err" &
keyed_pid=$!
keyed_port=$(wait_for_port "$keyed_pid" "$tmp/keyed.out" "$tmp/keyed.err") || exit 1

EASEL_WEB_KEYED_URL="http://127.0.0.1:$keyed_port/" EASEL_WEB_KEY=$key node "$here/web_test.mjs" "http://127.0.0.1:$port/" "$chromium"
status=$?
if ((status != 0)); then
  if ! kill -0 "$server_pid" 2>/dev/null; then
    wait "$server_pid"
    echo "the server is gone: it exited with status $? during the test"
    server_pid=""
  fi
  echo "server log (last 40 lines):"
  tail -n 40 "$tmp/server.out" "$tmp/server.err" | sed 's/^/    /'
  echo "the keyed server's log (last 10 lines):"
  tail -n 10 "$tmp/keyed.out" "$tmp/keyed.err" | sed 's/^/    /'
fi
exit $status
