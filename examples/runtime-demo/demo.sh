#!/usr/bin/env bash
# The runtime on its own: serve examples/runtime-demo/handlers.py behind a Unix socket with
# `asya runtime`, send it one framed request, print the answer, stop it with SIGTERM.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="$ROOT/.venv/bin"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/asya-runtime-demo.XXXXXX")"
SOCKET="$WORK/app.sock"
RUNTIME_PID=""

cleanup() {
  local code=$?
  if [[ -n "$RUNTIME_PID" ]] && kill -0 "$RUNTIME_PID" 2>/dev/null; then
    kill -TERM "$RUNTIME_PID" 2>/dev/null || true
    wait "$RUNTIME_PID" 2>/dev/null || true
  fi
  [[ $code -ne 0 ]] && { echo "demo: failed; runtime log:" >&2; cat "$WORK/runtime.log" >&2 || true; }
  rm -rf "$WORK"
  exit $code
}
trap cleanup EXIT

echo "demo: \$ ASYA_HANDLER=handlers.TextStats.analyze ASYA_SOCKET_PATH=$SOCKET asya runtime"
(
  cd "$HERE"  # the runtime imports the handler module from its working directory
  ASYA_HANDLER=handlers.TextStats.analyze ASYA_SOCKET_PATH="$SOCKET" \
    exec "$BIN/asya" runtime
) >"$WORK/runtime.log" 2>&1 &
RUNTIME_PID=$!

for _ in $(seq 1 100); do  # the socket appears once the handler has loaded
  [[ -S "$SOCKET" ]] && break
  kill -0 "$RUNTIME_PID" 2>/dev/null || { echo "demo: the runtime exited early" >&2; exit 1; }
  sleep 0.1
done
[[ -S "$SOCKET" ]] || { echo "demo: no socket after 10 s" >&2; exit 1; }
sed 's/^/  runtime | /' "$WORK/runtime.log"

"$BIN/python" "$HERE/client.py" "$SOCKET" \
  "The runtime runs the handler. The sidecar routes what the handler returns."

echo "demo: stopping the runtime (SIGTERM)"
kill -TERM "$RUNTIME_PID"
status=0
wait "$RUNTIME_PID" || status=$?
RUNTIME_PID=""
sed 's/^/  runtime | /' "$WORK/runtime.log" | tail -n 3
[[ $status -eq 0 ]] || { echo "demo: the runtime exited with $status" >&2; exit 1; }
echo "demo: done (the runtime exited 0 and removed its socket: $([[ -e "$SOCKET" ]] && echo NO || echo yes))"
