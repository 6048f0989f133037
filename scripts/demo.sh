#!/usr/bin/env bash
# `make demo`: the quickstart pipeline end to end on one machine, with nothing to install but
# the .venv (queues and jobs in SQLite). Starts `asya up` in the background, calls the
# test_pipeline tool (10 → doubled → +5 = 25) with live progress, checks the result, stops the
# mesh. Runs in a temporary copy of examples/quickstart so the checkout stays clean.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.venv/bin"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/asya-demo.XXXXXX")"
LOG="$WORK/asya-up.log"
UP_PID=""

cleanup() {
  local code=$?
  if [[ -n "$UP_PID" ]] && kill -0 "$UP_PID" 2>/dev/null; then
    kill -TERM "$UP_PID" 2>/dev/null || true
    wait "$UP_PID" 2>/dev/null || true
  fi
  if [[ $code -ne 0 ]]; then
    echo "demo: failed; the last lines of the mesh's log ($LOG):" >&2
    tail -n 40 "$LOG" >&2 || true
  else
    rm -rf "$WORK"
  fi
  exit $code
}
trap cleanup EXIT

cp -R "$ROOT/examples/quickstart/." "$WORK/"
rm -rf "$WORK/.asya"
PORT="$("$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
GATEWAY="http://127.0.0.1:$PORT"

echo "demo: starting the quickstart mesh with 'asya up' (log: $LOG)"
"$BIN/asya" up -f "$WORK/asya.yaml" --port "$PORT" >"$LOG" 2>&1 &
UP_PID=$!

ready() {
  "$BIN/python" - "$WORK/.asya/up.json" <<'PY'
import json, sys
try:
    sys.exit(0 if json.load(open(sys.argv[1])).get("ready") else 1)
except (OSError, ValueError):
    sys.exit(1)
PY
}
for _ in $(seq 1 360); do
  ready && break
  kill -0 "$UP_PID" 2>/dev/null || { echo "demo: asya up exited early" >&2; exit 1; }
  sleep 0.25
done
ready || { echo "demo: the mesh was not ready within 90 s" >&2; exit 1; }
sed -n '/mesh ready/,/Press Ctrl-C/p' "$LOG"

echo
echo "demo: \$ asya call test_pipeline value=10"
"$BIN/asya" call test_pipeline value=10 --gateway "$GATEWAY"

# Check what the gateway recorded: the newest job succeeded with 25.
"$BIN/asya" jobs list --limit 1 --json --gateway "$GATEWAY" | "$BIN/python" -c '
import json, sys
job = json.load(sys.stdin)[0]
assert job["status"] == "Succeeded" and job["result"] == {"value": 25}, job
print("demo: job", job["id"], job["status"], "with result", json.dumps(job["result"]))
'

echo
echo "demo: \$ asya status"
"$BIN/asya" status --gateway "$GATEWAY"
echo
echo "demo: web console: $GATEWAY/ui  (open it while a mesh runs: 'asya up' in examples/quickstart)"
echo "demo: stopping the mesh"
kill -TERM "$UP_PID"
wait "$UP_PID"
UP_PID=""
echo "demo: done"
