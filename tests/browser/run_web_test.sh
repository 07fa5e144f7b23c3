#!/usr/bin/env bash
# The web page of `easel serve` in headless Chromium: starts the server on a free port with an empty data
# folder, runs web_test.mjs against it, stops the server. Usage: run_web_test.sh EASEL_BINARY
# Needs chromium (scripts/setup installs it) and Node 20.10 or later; without them it fails, it does not skip.
set -uo pipefail
bin=${1:?usage: run_web_test.sh EASEL_BINARY}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [[ -z $chromium || ! -x $chromium ]]; then
  echo "FAIL web page test: chromium is not installed (scripts/setup installs it; or set CHROMIUM=/path/to/it)"
  exit 1
fi
# The test talks to Chromium over Node's built-in WebSocket: Node 22 has it, Node 20.10 and later behind a flag
# (Debian 12's own nodejs is 18, which has none).
has_websocket='process.exit(typeof WebSocket === "function" ? 0 : 1)'
node_flags=()
if ! node -e "$has_websocket" 2>/dev/null; then node_flags=(--experimental-websocket); fi
if ! node "${node_flags[@]}" -e "$has_websocket" 2>/dev/null; then
  echo "FAIL web page test: needs Node 20.10 or later (built-in WebSocket), found '$(node --version 2>/dev/null || echo no node)'"
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
"$bin" serve --port 0 --data "$tmp/data" >"$tmp/server.out" 2>"$tmp/server.err" &
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

node "${node_flags[@]}" "$here/web_test.mjs" "http://127.0.0.1:$port/" "$chromium"
status=$?
if ((status != 0)); then
  echo "server log (last 40 lines):"
  tail -n 40 "$tmp/server.out" "$tmp/server.err" | sed 's/^/    /'
fi
exit $status
