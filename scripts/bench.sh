#!/usr/bin/env bash
# What the load generator costs, against the physical limit (wrk), on this machine.
#
#   scripts/bench.sh                       # the full table: 3 runs per row, 10 s (60 s for row 4)
#   scripts/bench.sh --quick               # a few seconds per row, to check the script still works
#   scripts/bench.sh --scale-seconds 300   # the scale row over a 5-minute hold
#   scripts/bench.sh --scale-tags health   # the scale row with health checks only
#   scripts/bench.sh --scale-only ...      # row 4 alone
#   scripts/bench.sh --live-metrics-only   # rows 2 and 2' alone: what --metrics-bind costs
#   scripts/bench.sh --paced-seconds 120   # rows 6 and 7 measured over 2 minutes each
#   scripts/bench.sh --open-model-only     # rows 8 and 9 alone: the open model's start lag, the capacity search
#
# The reference server and the generator are pinned to their own cores where the machine
# has two or more. Every run targets 127.0.0.1 only and stops by itself. The script exits 1
# when a row measured nothing (so CI notices when it rots); it never judges the figures.
# Its last line sums the ratios up for machines:
#   bench: paced_over_flat=... locust_http_ratio=... locust_fast_ratio=... mem_1000_mib=... wrk_ratio=... live_metrics_ratio=... live_scrape_share=... open_lag_p99_ms=... capacity_found=...
set -euo pipefail

# Rows 6 and 7 compare with this Locust, installed from PyPI into a virtual environment of
# the benchmark's own (kept in target/, so later runs reuse it).
locust_version=2.47.0
runs=3 secs=10 paced_secs=40 warmup=5 scale_users=1000 scale_secs=60 scale_tags=authenticated scale_only=0 live_only=0 open_only=0
open_rates="100 1000 3000"
usage() {
  echo "usage: $0 [--quick] [--runs N] [--seconds S] [--paced-seconds S] [--scale-only] [--scale-users N] [--scale-seconds S] [--scale-tags T] [--live-metrics-only] [--open-model-only]" >&2
  exit 2
}
while (($#)); do
  case "$1" in
    --quick) runs=1 secs=3 paced_secs=6 warmup=3 scale_users=200 scale_secs=5 open_rates="200 1000" ;;
    --runs) runs="${2:?}"; shift ;;
    --seconds) secs="${2:?}"; shift ;;
    --paced-seconds) paced_secs="${2:?}"; shift ;;
    --scale-users) scale_users="${2:?}"; shift ;;
    --scale-seconds) scale_secs="${2:?}"; shift ;;
    --scale-tags) scale_tags="${2:?}"; shift ;;
    --scale-only) scale_only=1 ;;
    --live-metrics-only) live_only=1 ;;
    --open-model-only) open_only=1 ;;
    *) usage ;;
  esac
  shift
done
for n in "$runs" "$secs" "$paced_secs" "$scale_users" "$scale_secs"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "error: '$n' is not a positive whole number" >&2; usage; }
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
[[ -x /usr/bin/time ]] || need+=(time)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v curl >/dev/null 2>&1 || need+=(curl)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if ((${#need[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --quiet --bins
venv="$root/target/bench-venv"
if ((!scale_only && !live_only && !open_only)) && ! "$venv/bin/python" -c "import locust, sys; sys.exit(locust.__version__ != '$locust_version')" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "locust==$locust_version"
fi

bin="$root/target/release/lva-loadtest"
target_bin="$root/target/release/lva-target"
work="$(mktemp -d)"
target_pids=()
cleanup() {
  for pid in "${target_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

if (($(nproc) >= 2)); then gen=(taskset -c 0) tgt=(taskset -c 1); else gen=() tgt=(); fi
failed=()

# start_target NAME [server options...]: a reference server (in-memory database, cheap
# hashing, no rate limits) on its own core; leaves its URL in $host.
start_target() {
  local name="$1"; shift
  "${tgt[@]}" "$target_bin" --bind 127.0.0.1:0 --no-rate-limit --bcrypt-cost 4 "$@" \
    >"$work/target-$name.out" 2>&1 &
  target_pids+=($!)
  host=""
  for _ in $(seq 100); do
    host="$(awk '/listening/ {print $NF; exit}' "$work/target-$name.out" 2>/dev/null)"
    [[ -n "$host" ]] && return 0
    sleep 0.1
  done
  echo "error: the reference server did not start:" >&2
  cat "$work/target-$name.out" >&2
  exit 1
}
stop_target() {
  local pid="${target_pids[-1]}"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset 'target_pids[-1]'
}

# measure NAME CMD...: runs CMD under /usr/bin/time; leaves wall, cpu (user+sys) and peak
# RSS in $work/NAME.time, the command's output in $work/NAME.out and .err.
measure() {
  local name="$1"; shift
  /usr/bin/time -f "%e %U %S %M" -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err" || true
}
wall() { awk '{print $1}' "$work/$1.time"; }
cpu() { awk '{print $2 + $3}' "$work/$1.time"; }
tool_requests() { awk -F: '/^Total Requests:/ {gsub(/ /, "", $2); print $2; exit}' "$work/$1.out"; }

# median/min/max of the numbers on stdin, one per line.
stats() {
  sort -g | awk '{a[NR] = $1} END {if (NR == 0) {print "n/a"; exit}
    printf "%.1f [%.1f-%.1f]", a[int((NR + 1) / 2)], a[1], a[NR]}'
}
median() { awk '{print $1}' <<<"$1"; }

declare -A rps cpu_us
# run_tool_row ROW [--fresh-target [server options...] --] TOOL ARGS...: $runs runs of the
# tool; with --fresh-target each run gets a new server (so a growing database does not make
# later runs slower than earlier ones).
run_tool_row() {
  local row="$1"; shift
  local fresh=0 server=()
  if [[ "${1:-}" == --fresh-target ]]; then
    fresh=1; shift
    while [[ "$1" != -- ]]; do server+=("$1"); shift; done
    shift
  fi
  : >"$work/$row.rps"; : >"$work/$row.cpu"
  for i in $(seq "$runs"); do
    ((!fresh)) || start_target "$row-$i" "${server[@]}"
    measure "$row-$i" "${gen[@]}" "$bin" --host "$host" --output "$work/reports" "$@"
    ((!fresh)) || { stop_target; host="$shared_host"; }
    local n; n="$(tool_requests "$row-$i")"
    if [[ -z "$n" || "$n" == 0 ]]; then
      echo "row $row run $i measured no requests:" >&2
      tail -5 "$work/$row-$i.err" >&2
      continue
    fi
    echo "$n $(wall "$row-$i")" | awk '{print $1 / $2}' >>"$work/$row.rps"
    echo "$n $(cpu "$row-$i")" | awk '{print $2 * 1e6 / $1}' >>"$work/$row.cpu"
  done
  [[ -s "$work/$row.cpu" ]] || failed+=("$row")
  rps[$row]="$(stats <"$work/$row.rps")"
  cpu_us[$row]="$(stats <"$work/$row.cpu")"
}

# 2'. Row 2 serving its live metrics (--metrics-bind), scraped every second as Prometheus
# would (the scraper on the server's core, so only the generator's own work is counted).
# 2''. The same scraped ten times a second: ten times the scrapes' cost, so that it stands
# out of the machine's noise; a tenth of its excess over row 2 is one scrape a second's.
live_row() {
  local row="$1" every="$2" port scraper
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  "${tgt[@]}" bash -c "while :; do curl -s -o /dev/null --max-time 1 http://127.0.0.1:$port/metrics; sleep $every; done" &
  scraper=$!
  run_tool_row "$row" "${simple[@]}" --no-reports --metrics-bind "127.0.0.1:$port" --metrics-linger 2s
  kill "$scraper" 2>/dev/null || true
  wait "$scraper" 2>/dev/null || true
}
# The share of the generator's CPU one scrape a second costs, from rows 2 and 2''.
scrape_share() {
  awk -v f="${cpu_us[live_fast]%% *}" -v b="${cpu_us[simple]%% *}" \
    'BEGIN {if (f == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2f%%", (f / b - 1) * 10}'
}

# 8. The open model's own lag: arrivals of health checks at fixed rates (the server's core
# holds far more), each start's lag from its intended time read from the run's metrics JSON.
# 9. The capacity search against a server whose knee is known: two slots of 50 ms serve 40
# conversation requests a second; the search must find it within its 10% tolerance.
open_rows() {
  local r i json line planned started dropped late p50 p99 max
  # open_lag_worst: the highest of the rates' median start-lag P99s (the summary's open_lag_p99_ms).
  open_lines=() open_lag_worst="n/a"
  for r in $open_rates; do
    # $runs runs at each rate: the P99s' median and range, the counts added up.
    : >"$work/open-$r.p99"
    local all_planned=0 all_started=0 all_dropped=0 all_late=0 p50s="" maxes=""
    for i in $(seq "$runs"); do
      rm -rf "$work/open-$r-$i"
      measure "open-$r-$i" "${gen[@]}" "$bin" --host "$host" --output "$work/open-$r-$i" --scenario custom \
        --tags health --rate "$r" --duration "${secs}s" --max-users 200 --pre-started-users 100
      json="$(ls "$work/open-$r-$i"/*_metrics.json 2>/dev/null | head -1)"
      if [[ -z "$json" ]]; then
        echo "row 8 at $r/s (run $i) wrote no metrics:" >&2; tail -5 "$work/open-$r-$i.err" >&2
        continue
      fi
      line="$(python3 - "$json" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))["open_model"]
print(f'{o["planned_arrivals"]} {o["started_arrivals"]} {o["dropped_arrivals"]} {o["late_starts"]} '
      f'{o["start_lag_p50_ms"]:.3f} {o["start_lag_p99_ms"]:.3f} {o["start_lag_max_ms"]:.3f}')
PY
)"
      read -r planned started dropped late p50 p99 max <<<"$line"
      all_planned=$((all_planned + planned)) all_started=$((all_started + started))
      all_dropped=$((all_dropped + dropped)) all_late=$((all_late + late))
      echo "$p99" >>"$work/open-$r.p99"
      p50s+="$p50 " maxes+="$max "
    done
    if [[ ! -s "$work/open-$r.p99" ]]; then failed+=("open-$r"); continue; fi
    local p99s
    p99s="$(sort -g "$work/open-$r.p99" | awk '{a[NR] = $1} END {printf "%.3f [%.3f-%.3f]", a[int((NR + 1) / 2)], a[1], a[NR]}')"
    open_lines+=("$(printf '%-46s %s' "8. open model, /health at $r/s ($runs runs)" \
      "$all_started of $all_planned started, $all_dropped dropped, $all_late late; start lag P99 $p99s ms (P50s ${p50s% }; max ${maxes% } ms)")")
    open_lag_worst="$(awk -v a="$open_lag_worst" -v b="${p99s%% *}" 'BEGIN {print (a == "n/a" || b > a) ? b : a}')"
  done
  start_target knee --fault-slots 2 --fault-slot-ms 50
  local level=5s warm=2s
  ((runs > 1)) || level=3s
  rm -rf "$work/capacity"
  measure capacity "${gen[@]}" "$bin" capacity --host "$host" --output "$work/capacity" --scenario custom \
    --tags conversation --start-rate 10 --max-rate 80 --tolerance 10% --level-duration "$level" --warmup "$warm"
  stop_target; host="$shared_host"
  json="$(ls "$work/capacity"/*_capacity.json 2>/dev/null | head -1)"
  if [[ -z "$json" ]]; then
    echo "row 9 wrote no capacity result:" >&2; tail -5 "$work/capacity.err" >&2
    failed+=(capacity); capacity_found="n/a"
  else
    capacity_found="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["capacity_rate"])' "$json")"
  fi
  capacity_line="$(printf '%-46s %s' "9. capacity search, knee known at 40/s" \
    "found $capacity_found/s ($(awk -v c="$capacity_found" 'BEGIN {print (c >= 36 && c <= 40.5) ? "within" : "NOT within"}') the 10% tolerance), $(wall capacity) s")"
}
print_open_rows() {
  echo
  echo "Open model and capacity (a fresh server for row 9)"
  for l in "${open_lines[@]}"; do echo "$l"; done
  echo "$capacity_line"
}

if ((open_only)); then
  start_target shared
  shared_host="$host"
  open_rows
  print_open_rows
  echo "bench: open_lag_p99_ms=$open_lag_worst capacity_found=$capacity_found"
  ((${#failed[@]} == 0)) || { echo "error: no figures for: ${failed[*]}" >&2; exit 1; }
  exit 0
fi

if ((live_only)); then
  start_target shared
  shared_host="$host"
  simple=(--scenario custom --users 50 --spawn-rate 50 --duration "${secs}s" --tags health --no-wait)
  run_tool_row simple "${simple[@]}" --no-reports
  live_row live 1
  live_row live_fast 0.1
  echo "2. generator, /health, no wait, 50 users: ${rps[simple]} requests/s, ${cpu_us[simple]} CPU µs per request"
  echo "2'. as 2 with --metrics-bind, scraped each 1 s: ${rps[live]} requests/s, ${cpu_us[live]} CPU µs per request"
  echo "2''. as 2 with --metrics-bind, scraped each 0.1 s: ${rps[live_fast]} requests/s, ${cpu_us[live_fast]} CPU µs per request"
  live="$(awk -v a="${cpu_us[live]%% *}" -v b="${cpu_us[simple]%% *}" 'BEGIN {if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.3f", a / b}')"
  echo "one scrape a second costs $(scrape_share) of the generator's CPU (a tenth of row 2''s excess over row 2)"
  echo "bench: live_metrics_ratio=$live live_scrape_share=$(scrape_share)"
  ((${#failed[@]} == 0)) || { echo "error: no figures for: ${failed[*]}" >&2; exit 1; }
  exit 0
fi

if ((!scale_only)); then
  start_target shared
  shared_host="$host"

  # 1. The physical limit: wrk on /health.
  : >"$work/wrk.rps"; : >"$work/wrk.cpu"
  for i in $(seq "$runs"); do
    measure "wrk-$i" "${gen[@]}" wrk -t1 -c50 -d"${secs}s" "$host/health"
    n="$(awk '/requests in/ {print $1; exit}' "$work/wrk-$i.out")"
    [[ -n "$n" ]] || { echo "wrk run $i measured nothing:" >&2; cat "$work/wrk-$i.err" >&2; continue; }
    awk '/Requests\/sec/ {print $2}' "$work/wrk-$i.out" >>"$work/wrk.rps"
    echo "$n $(cpu "wrk-$i")" | awk '{print $2 * 1e6 / $1}' >>"$work/wrk.cpu"
  done
  [[ -s "$work/wrk.cpu" ]] || failed+=(wrk)
  rps[wrk]="$(stats <"$work/wrk.rps")"
  cpu_us[wrk]="$(stats <"$work/wrk.cpu")"

  # 2. The generator, simplest work: health checks with no wait, outputs off.
  simple=(--scenario custom --users 50 --spawn-rate 50 --duration "${secs}s" --tags health --no-wait)
  run_tool_row simple "${simple[@]}" --no-reports
  live_row live 1
  live_row live_fast 0.1
  # 5. The same with every output on.
  run_tool_row outputs "${simple[@]}"
  open_rows

  # 3. The real mix: every user class of the smoke scenario, no waits, a fresh server each run.
  mix_users=20
  run_tool_row mix --fresh-target -- --scenario custom --users "$mix_users" \
    --spawn-rate "$mix_users" --duration "${secs}s" --no-wait --no-reports

  # 3'. The simplest work at the mix's request rate. The reference server (one core, SQLite,
  # bcrypt) holds the mix to a few thousand requests/s, so the generator idles between answers
  # and pays a wake-up per request; row 2 runs flat out and shares wake-ups between answers.
  # Health checks from as many users, against a server that answers them after a delay chosen
  # to give the mix's rate, compare like with like.
  mix_rate="$(median "${rps[mix]}")"
  if [[ "$mix_rate" != n/a ]]; then
    paced=(--scenario custom --users "$mix_users" --spawn-rate "$mix_users" --tags health --no-wait --no-reports)
    # A user's cycle is the delay plus some overhead: measure the overhead in a run as long as
    # the measured ones (so the ramp weighs the same), then choose the delay that gives the
    # mix's rate.
    delay_ms="$(awk -v u="$mix_users" -v r="$mix_rate" 'BEGIN {d = int(u * 1000 / r + 0.5); print (d < 1 ? 1 : d)}')"
    start_target calibrate --fault-latency-ms "$delay_ms"
    measure calibrate "${gen[@]}" "$bin" --host "$host" "${paced[@]}" --duration "${secs}s"
    stop_target; host="$shared_host"
    n="$(tool_requests calibrate)"
    if [[ -n "$n" && "$n" != 0 ]]; then
      delay_ms="$(awk -v u="$mix_users" -v r="$mix_rate" -v d="$delay_ms" -v n="$n" -v w="$(wall calibrate)" \
        'BEGIN {over = u * 1000 / (n / w) - d; d = int(u * 1000 / r - over + 0.5); print (d < 1 ? 1 : d)}')"
    fi
    run_tool_row paced --fresh-target --fault-latency-ms "$delay_ms" -- "${paced[@]}" --duration "${secs}s"
  else
    delay_ms="n/a" rps[paced]="n/a" cpu_us[paced]="n/a"
    failed+=(paced)
  fi

  # 6 and 7. Where users really run, side by side with Locust: the same work (every user
  # registers and logs in, then health and stats checks with the suite's weights, 10:3, each
  # body checked) by lva-loadtest, Locust's HttpUser and its FastHttpUser, once with the
  # suite's 1-3 s waits (6) and once without (7), interleaved run by run against the shared
  # server. Each is measured in its steady state: from $warmup s after its launch (start-up,
  # imports and logins done) over a window, its CPU time from /proc and its requests from
  # the server's own count (/metrics), so neither's start-up or shutdown weighs in.
  cmp_users=50
  # reading PID: "cpu_seconds answers_so_far", nothing once PID has ended. The CPU time is
  # the sum of the threads' scheduler run times (nanoseconds): /proc/PID/stat counts in
  # 10 ms ticks, too coarse for a paced window (a few thousand requests at tens of µs each).
  reading() {
    local cpu answers
    cpu="$(cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {if (NR) printf "%.9f", s / 1e9}')"
    [[ -n "$cpu" ]] || return 0
    answers="$(curl -fsS "$host/metrics" | awk '/^lva_http_requests_total/ {s += $NF} END {print s + 0}')" || return 0
    echo "$cpu $answers"
  }
  # window_run ROW I WINDOW CMD...: one run of a generator; appends requests/s and CPU µs
  # per request over its window to $work/ROW.rps and .cpu.
  window_run() {
    local row="$1" i="$2" window="$3"; shift 3
    "${gen[@]}" "$@" >"$work/$row-$i.out" 2>"$work/$row-$i.err" &
    local pid=$! first second
    sleep "$warmup"
    first="$(reading "$pid")"
    sleep "$window"
    second="$(reading "$pid")"
    wait "$pid" || true
    if [[ -z "$first" || -z "$second" ]]; then
      echo "row $row run $i ended before its window:" >&2
      tail -5 "$work/$row-$i.err" >&2
      return 0
    fi
    # The first reading's own /metrics request is in the count.
    awk -v a="$first" -v b="$second" -v w="$window" -v rps="$work/$row.rps" -v cpu="$work/$row.cpu" 'BEGIN {
      split(a, x, " "); split(b, y, " "); n = y[2] - x[2] - 1
      if (n > 0) { print n / w >> rps; print (y[1] - x[1]) * 1e6 / n >> cpu }
    }'
  }
  tool_cmp=("$bin" --host "$host" --scenario custom --users "$cmp_users" --spawn-rate "$cmp_users"
    --tags health,stats --no-probes --no-reports)
  locust_cmp=("$venv/bin/locust" -f "$root/scripts/bench_locustfile.py" --headless --only-summary
    --loglevel WARNING -u "$cmp_users" -r "$cmp_users" --stop-timeout 5 --host "$host")
  cmp_rows=(tool_paced http_paced fast_paced tool_flat http_flat fast_flat)
  for r in "${cmp_rows[@]}"; do : >"$work/$r.rps"; : >"$work/$r.cpu"; done
  for i in $(seq "$runs"); do
    for pace in paced flat; do
      if [[ "$pace" == paced ]]; then window="$paced_secs" no_wait=(); else window="$secs" no_wait=(--no-wait); fi
      duration=$((warmup + window + 2))
      window_run "tool_$pace" "$i" "$window" "${tool_cmp[@]}" --duration "${duration}s" "${no_wait[@]}"
      window_run "http_$pace" "$i" "$window" env BENCH_WAIT="$pace" "${locust_cmp[@]}" -t "${duration}s" BenchHttpUser
      window_run "fast_$pace" "$i" "$window" env BENCH_WAIT="$pace" "${locust_cmp[@]}" -t "${duration}s" BenchFastHttpUser
    done
  done
  for r in "${cmp_rows[@]}"; do
    [[ -s "$work/$r.cpu" ]] || failed+=("$r")
    rps[$r]="$(stats <"$work/$r.rps")"
    cpu_us[$r]="$(stats <"$work/$r.cpu")"
  done
fi

# 4. Scale: the AuthenticatedUser class (the suite's main user, 1-3 s waits; --scale-tags
# narrows its tasks) with many users, each with its own keep-alive connection. A sampler reads
# the generator's CPU time and memory every second, so the hold is judged apart from the start.
# scale_run I: one run; appends "peak_MiB end_MiB first_user_s all_users_s hold_cpu_%" (n/a
# where a figure is missing) to $work/scale.results.
scale_run() {
  local i="$1" samples="$work/scale-$1.samples"
  start_target "scale-$i"
  local launched; launched="$(date +%s.%N)"
  "${gen[@]}" "$bin" --host "$host" --output "$work/scale-$i" --scenario custom --users "$scale_users" \
    --spawn-rate "$scale_users" --duration "${scale_secs}s" --tags "$scale_tags" \
    >"$work/scale-$i.out" 2>"$work/scale-$i.err" &
  local pid=$! ticks; ticks="$(getconf CLK_TCK)"
  while kill -0 "$pid" 2>/dev/null; do
    local now stat rss
    now="$(date +%s.%N)"
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || break
    rss="$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null)" || break
    # utime and stime are fields 14 and 15, counted after the command name's closing ')'.
    awk -v t="$now" -v l="$launched" -v r="$rss" -v hz="$ticks" \
      '{sub(/.*\) /, ""); print t - l, ($12 + $13) / hz, r}' <<<"$stat" >>"$samples"
    sleep 1
  done
  wait "$pid" || true
  stop_target
  local metrics; metrics="$(ls "$work/scale-$i"/*_metrics.json 2>/dev/null | head -1)"
  if [[ -z "$metrics" || ! -s "$samples" ]]; then
    echo "scale run $i measured nothing:" >&2
    tail -5 "$work/scale-$i.err" >&2
    return
  fi
  python3 - "$metrics" "$samples" "$launched" "$scale_users" >>"$work/scale.results" <<'EOF' || true
import json, sys
from datetime import datetime
measured = json.load(open(sys.argv[1]))["measured"]
samples = [tuple(map(float, line.split())) for line in open(sys.argv[2]) if line.strip()]
launched, users = float(sys.argv[3]), int(sys.argv[4])
start = datetime.fromisoformat(measured["started_at"].replace("Z", "+00:00")).timestamp()
first, last = measured.get("first_user_secs"), measured.get("last_user_secs")
init = f"{start + first - launched:.2f}" if first is not None else "n/a"
ramp = f"{start + last - launched:.2f}" if last is not None and measured["max_users"] >= users else "n/a"
peak = max(s[2] for s in samples) / 1024
# The hold: from one second after the last user started to the end of the samples.
hold_from = (start + last - launched + 1) if last is not None else samples[0][0]
hold = [s for s in samples if s[0] >= hold_from]
share = "n/a"
if len(hold) >= 2 and hold[-1][0] > hold[0][0]:
    share = f"{100 * (hold[-1][1] - hold[0][1]) / (hold[-1][0] - hold[0][0]):.1f}"
end_rss = hold[-1][2] / 1024 if hold else samples[-1][2] / 1024
print(f"{peak:.1f} {end_rss:.1f} {init} {ramp} {share}")
EOF
}
: >"$work/scale.results"
for i in $(seq "$runs"); do scale_run "$i"; done
# scale_stat N: column N of the scale results as median [min-max], leaving out runs without it.
scale_stat() { awk -v c="$1" '$c != "n/a" {print $c}' "$work/scale.results" | stats; }
scale_line="n/a"
if [[ -s "$work/scale.results" ]]; then
  scale_line="peak memory $(scale_stat 1) MiB (at the end $(scale_stat 2) MiB), first user $(scale_stat 3) s"
  scale_line+=" and all $scale_users running $(scale_stat 4) s after launch, generator CPU $(scale_stat 5)%"
  scale_line+=" of one core during the hold"
else
  failed+=(scale)
fi

if ((!scale_only)); then
  ratio() {
    awk -v a="${1%% *}" -v b="${2%% *}" 'BEGIN {if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2f", a / b}'
  }
  row() { printf '%-46s %-26s %-26s %s\n' "$@"; }
  echo
  echo "lva-loadtest benchmark on $(nproc) cores, $runs run(s) of ${secs}s per row; median [min-max]"
  row "row" "requests/s" "CPU µs per request" "ratio"
  row "1. wrk, /health (physical limit)" "${rps[wrk]}" "${cpu_us[wrk]}" "1.00 (reference)"
  row "2. generator, /health, no wait, 50 users" "${rps[simple]}" "${cpu_us[simple]}" "$(ratio "${cpu_us[simple]}" "${cpu_us[wrk]}") x wrk"
  row "3. generator, smoke mix, no wait, $mix_users users" "${rps[mix]}" "${cpu_us[mix]}" \
    "$(ratio "${cpu_us[mix]}" "${cpu_us[paced]}") x row 3' ($(ratio "${cpu_us[mix]}" "${cpu_us[simple]}") x row 2)"
  row "3'. as 2 at row 3's rate ($mix_users users, ${delay_ms} ms)" "${rps[paced]}" "${cpu_us[paced]}" "$(ratio "${cpu_us[paced]}" "${cpu_us[simple]}") x row 2"
  row "2'. as 2 with --metrics-bind, scraped each 1 s" "${rps[live]}" "${cpu_us[live]}" "$(ratio "${cpu_us[live]}" "${cpu_us[simple]}") x row 2"
  row "2''. as 2, scraped each 0.1 s" "${rps[live_fast]}" "${cpu_us[live_fast]}" "$(ratio "${cpu_us[live_fast]}" "${cpu_us[simple]}") x row 2: one scrape a second costs $(scrape_share)"
  row "5. as 2 with every output written" "${rps[outputs]}" "${cpu_us[outputs]}" "$(ratio "${cpu_us[outputs]}" "${cpu_us[simple]}") x row 2"
  echo
  echo "Health and stats checks (10:3), $cmp_users users; steady state: ${paced_secs}s (6) and ${secs}s (7) windows from ${warmup}s after launch"
  row "row" "requests/s" "CPU µs per request" "ratio"
  for pace in paced flat; do
    if [[ "$pace" == paced ]]; then n=6 how="1-3 s waits"; else n=7 how="no wait"; fi
    tool="${cpu_us[tool_$pace]}"
    row "$n. lva-loadtest, $how" "${rps[tool_$pace]}" "$tool" "1.00 (reference)"
    row "   Locust $locust_version HttpUser, $how" "${rps[http_$pace]}" "${cpu_us[http_$pace]}" "$(ratio "${cpu_us[http_$pace]}" "$tool") x lva-loadtest"
    row "   Locust $locust_version FastHttpUser, $how" "${rps[fast_$pace]}" "${cpu_us[fast_$pace]}" "$(ratio "${cpu_us[fast_$pace]}" "$tool") x lva-loadtest"
  done
  echo "lva-loadtest paced over flat out: $(ratio "${cpu_us[tool_paced]}" "${cpu_us[tool_flat]}") x"
  print_open_rows
fi
echo
echo "4. scale: $scale_users AuthenticatedUsers (tags: $scale_tags), 1-3 s waits, ${scale_secs}s, $runs run(s);"
echo "   median [min-max]: $scale_line"

# The summary for machines. The Locust ratios are the lower of the paced and the flat-out
# one (the budget holds for both).
lowest() {
  local a b; a="$(ratio "$1" "$2")" b="$(ratio "$3" "$4")"
  awk -v a="$a" -v b="$b" 'BEGIN {if (a == "n/a" || b == "n/a") print "n/a"; else print (a < b ? a : b)}'
}
if ((scale_only)); then
  summary="paced_over_flat=n/a locust_http_ratio=n/a locust_fast_ratio=n/a"
else
  summary="paced_over_flat=$(ratio "${cpu_us[tool_paced]}" "${cpu_us[tool_flat]}")"
  summary+=" locust_http_ratio=$(lowest "${cpu_us[http_paced]}" "${cpu_us[tool_paced]}" "${cpu_us[http_flat]}" "${cpu_us[tool_flat]}")"
  summary+=" locust_fast_ratio=$(lowest "${cpu_us[fast_paced]}" "${cpu_us[tool_paced]}" "${cpu_us[fast_flat]}" "${cpu_us[tool_flat]}")"
fi
mem="$(scale_stat 1 2>/dev/null)"
summary+=" mem_1000_mib=${mem%% *}"
if ((scale_only)); then
  summary+=" wrk_ratio=n/a live_metrics_ratio=n/a live_scrape_share=n/a"
else
  summary+=" wrk_ratio=$(ratio "${cpu_us[simple]}" "${cpu_us[wrk]}") live_metrics_ratio=$(ratio "${cpu_us[live]}" "${cpu_us[simple]}") live_scrape_share=$(scrape_share)"
  summary+=" open_lag_p99_ms=$open_lag_worst capacity_found=$capacity_found"
fi
if ((${#failed[@]})); then
  echo "error: no figures for: ${failed[*]}" >&2
  echo "bench: $summary"
  exit 1
fi
echo "bench: $summary"
