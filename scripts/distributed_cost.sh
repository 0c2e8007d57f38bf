#!/usr/bin/env bash
# What a distributed run costs: the master's CPU time and memory (the tool's manager, or a
# Locust master with scripts/locust_master.py), the message traffic of each worker, and
# whether every worker stayed in the run. Everything runs on 127.0.0.1 against the reference
# server, for a bounded time; health checks only, so that the figures are the protocol's.
#
#   scripts/distributed_cost.sh manager|locust WORKERS USERS SECONDS
#
# Needs `cargo build --release`; a Locust master comes from scripts/test_venv.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if (($# != 4)); then
  echo "usage: $0 manager|locust WORKERS USERS SECONDS" >&2
  exit 2
fi
mode=$1 workers=$2 users=$3 seconds=$4
bin=target/release/lva-loadtest
venv=${LVA_TEST_VENV:-target/test-venv}
[[ -x $bin ]] || { echo "build first: cargo build --release" >&2; exit 2; }
out=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

"${bin%/*}/lva-target" --bind 127.0.0.1:0 --bcrypt-cost 4 >"$out/server.log" 2>&1 &
pids+=($!)
until grep -q "listening on" "$out/server.log"; do sleep 0.2; done
host=$(awk '/listening on/ {print $NF}' "$out/server.log")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

case $mode in
  manager)
    /usr/bin/time -v -o "$out/master.time" "$bin" --manager --expect-workers "$workers" \
      --manager-bind "127.0.0.1:$port" --worker-timeout 5m --scenario custom --users "$users" \
      --spawn-rate 100 --duration "${seconds}s" --tags health --host "$host" --no-probes \
      --output "$out/reports" >"$out/master.log" 2>&1 &
    ;;
  locust)
    scripts/test_venv.sh "$venv"
    # --lva-no-verdict: the master's own cost, without the merge it would run at the end.
    LVA_LOADTEST=$bin /usr/bin/time -v -o "$out/master.time" "$venv/bin/locust" \
      -f scripts/locust_master.py --master --master-bind-host 127.0.0.1 \
      --master-bind-port "$port" --headless --expect-workers "$workers" \
      --expect-workers-max-wait 300 -u "$users" -r 100 -t "${seconds}s" -T health \
      --host "$host" --lva-results "$out/results" --lva-no-verdict --csv "$out/locust" \
      >"$out/master.log" 2>&1 &
    ;;
  *)
    echo "the master is manager or locust, not $mode" >&2
    exit 2
    ;;
esac
master=$!
pids+=("$master")
for i in $(seq 1 "$workers"); do
  "$bin" --worker --master-port "$port" --worker-name "w$i" --worker-timeout 5m \
    >"$out/w$i.log" 2>&1 &
  pids+=($!)
done
status=0
wait "$master" || status=$?
sleep 2

cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u + s}' "$out/master.time")
rss=$(awk -F': ' '/Maximum resident/ {printf "%.0f", $2 / 1024}' "$out/master.time")
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$out/master.time")
requests=$(grep -ho 'measured [0-9]* requests' "$out"/w*.log | awk '{n += $2} END {print n + 0}')
delivered=$(grep -l 'measured [0-9]* requests' "$out"/w*.log | wc -l)
echo "master: $mode, $workers workers, $users users, ${seconds}s (exit $status)"
echo "master CPU: ${cpu} s over $wall; max resident memory ${rss} MiB"
echo "workers that measured their run: $delivered of $workers; requests: $requests"
grep -h 'Traffic with the master' "$out"/w*.log | awk '{s += $5; r += $8; n++}
  END {if (n) printf "per worker: %.0f bytes sent, %.0f bytes received (mean of %d)\n", s / n, r / n, n}'
grep -h 'Traffic with the workers' "$out/master.log" || true
if grep -q 'setting state to missing\|lost worker' "$out/master.log"; then
  echo "workers lost: $(grep -c 'setting state to missing\|lost worker' "$out/master.log")"
fi
echo "logs: $out"
