#!/usr/bin/env bash
# The system calls a paced run makes per request, in its steady state: 20 users with the
# suite's 1-3 s waits doing health checks against the reference server on 127.0.0.1, every
# thread of the generator traced with `strace -c` over a 30 s window that starts 8 s after
# launch (so start-up, such as loading the system's CA certificates, is left out), and the
# requests of that window counted by the server (/metrics).
#
#   scripts/syscalls.sh [BINARY] [pin]   # default target/release/lva-loadtest; `pin` runs
#                                        # it on core 0, as scripts/bench.sh does
#
# Needs `cargo build --release`, strace and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/lva-loadtest}"
pin=()
[[ "${2:-}" == pin ]] && pin=(taskset -c 0)
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

target/release/lva-target --bind 127.0.0.1:0 --no-rate-limit --bcrypt-cost 4 >"$work/target.out" 2>&1 &
pids+=($!)
host=""
for _ in $(seq 100); do
  host="$(awk '/listening/ {print $NF; exit}' "$work/target.out")"
  [[ -n "$host" ]] && break
  sleep 0.1
done
[[ -n "$host" ]] || { echo "error: the reference server did not start" >&2; exit 1; }
answers() { curl -fsS "$host/metrics" | awk '/^lva_http_requests_total/ {s += $NF} END {print s + 0}'; }

"${pin[@]}" "$bin" --host "$host" --scenario custom --users 20 --spawn-rate 20 --duration 45s \
  --tags health --no-probes --no-reports >"$work/tool.out" 2>&1 &
tool=$!
pids+=("$tool")
sleep 8
first="$(answers)"
threads=()
for t in /proc/"$tool"/task/*; do threads+=(-p "${t##*/}"); done
timeout -s INT 30 strace -c -o "$work/strace" "${threads[@]}" 2>/dev/null || true
second="$(answers)"
wait "$tool" || true
# The first count's own /metrics request is in the second.
n=$((second - first - 1))
echo "requests in the window: $n (${#threads[@]} threads traced)"
awk -v n="$n" 'NR > 2 && $4 ~ /^[0-9]+$/ && $NF != "total" {printf "%-16s %8d %8.2f per request\n", $NF, $4, $4 / n}' \
  "$work/strace" | sort -k2 -nr
