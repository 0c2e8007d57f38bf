#!/usr/bin/env bash
# What the load generator costs, against the physical limit (wrk), on this machine.
#
#   scripts/bench.sh            # the full table: 3 runs of 10 s per row, 60 s at 1000 users
#   scripts/bench.sh --quick    # a few seconds per row, to check the script still works
#
# The reference server and the generator are pinned to their own cores where the machine
# has two or more. Every run targets 127.0.0.1 only and stops by itself.
set -euo pipefail

runs=3 secs=10 scale_users=1000 scale_secs=60
while (($#)); do
  case "$1" in
    --quick) runs=1 secs=3 scale_users=200 scale_secs=8 ;;
    --runs) runs="$2"; shift ;;
    --seconds) secs="$2"; shift ;;
    *) echo "usage: $0 [--quick] [--runs N] [--seconds S]" >&2; exit 2 ;;
  esac
  shift
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
[[ -x /usr/bin/time ]] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
cargo build --release --quiet --bins

bin="$root/target/release/lva-loadtest"
target_bin="$root/target/release/lva-target"
work="$(mktemp -d)"
trap 'kill "$target_pid" 2>/dev/null; rm -rf "$work"' EXIT

if (($(nproc) >= 2)); then gen=(taskset -c 0) tgt=(taskset -c 1); else gen=() tgt=(); fi

"${tgt[@]}" "$target_bin" --bind 127.0.0.1:0 --no-rate-limit --bcrypt-cost 4 >"$work/target.out" 2>&1 &
target_pid=$!
for _ in $(seq 100); do grep -q listening "$work/target.out" 2>/dev/null && break; sleep 0.1; done
host="$(awk '/listening/ {print $NF; exit}' "$work/target.out")"
[[ -n "$host" ]] || { echo "the reference server did not start" >&2; exit 1; }

# measure NAME CMD...: runs CMD under /usr/bin/time; leaves wall, cpu (user+sys) and peak
# RSS in $work/NAME.time, the command's output in $work/NAME.out.
measure() {
  local name="$1"; shift
  /usr/bin/time -f "%e %U %S %M" -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err" || true
}
wall() { awk '{print $1}' "$work/$1.time"; }
cpu() { awk '{print $2 + $3}' "$work/$1.time"; }
rss_mib() { awk '{printf "%.1f", $4 / 1024}' "$work/$1.time"; }
tool_requests() { awk -F: '/^Total Requests:/ {gsub(/ /, "", $2); print $2; exit}' "$work/$1.out"; }

# median/min/max of the numbers on stdin, one per line.
stats() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) {print "n/a"; exit}; printf "%.1f [%.1f-%.1f]", a[int((NR + 1) / 2)], a[1], a[NR]}'; }

declare -A rps cpu_us
run_tool_row() {  # row-name, extra tool args...
  local row="$1"; shift
  for i in $(seq "$runs"); do
    measure "$row-$i" "${gen[@]}" "$bin" --host "$host" --output "$work/reports" "$@"
    local n; n="$(tool_requests "$row-$i")"
    [[ -n "$n" && "$n" != 0 ]] || { echo "row $row produced no requests:" >&2; tail -5 "$work/$row-$i.err" >&2; continue; }
    echo "$n $(wall "$row-$i")" | awk '{print $1 / $2}' >>"$work/$row.rps"
    echo "$n $(cpu "$row-$i")" | awk '{print $2 * 1e6 / $1}' >>"$work/$row.cpu"
  done
  rps[$row]="$(stats <"$work/$row.rps")"
  cpu_us[$row]="$(stats <"$work/$row.cpu")"
}

# 1. The physical limit: wrk on /health.
for i in $(seq "$runs"); do
  measure "wrk-$i" "${gen[@]}" wrk -t1 -c50 -d"${secs}s" "$host/health"
  n="$(awk '/requests in/ {print $1; exit}' "$work/wrk-$i.out")"
  awk '/Requests\/sec/ {print $2}' "$work/wrk-$i.out" >>"$work/wrk.rps"
  echo "$n $(cpu "wrk-$i")" | awk '{print $2 * 1e6 / $1}' >>"$work/wrk.cpu"
done
rps[wrk]="$(stats <"$work/wrk.rps")"
cpu_us[wrk]="$(stats <"$work/wrk.cpu")"

# 2. The generator, simplest work: health checks with no wait, outputs off.
simple=(--scenario custom --users 50 --spawn-rate 50 --duration "${secs}s" --tags health --no-wait)
run_tool_row simple "${simple[@]}" --no-reports
# 5. The same with every output on.
run_tool_row outputs "${simple[@]}"
# 3. The real mix: the smoke scenario's user classes, no waits.
run_tool_row mix --scenario custom --users 20 --spawn-rate 20 --duration "${secs}s" --no-wait --no-reports

# 4. Scale: many users with the suite's 1-3 s waits, each with its own connection.
measure scale "${gen[@]}" "$bin" --host "$host" --output "$work/scale" --scenario custom \
  --users "$scale_users" --spawn-rate "$scale_users" --duration "${scale_secs}s" --tags health
metrics="$(ls "$work"/scale/*_metrics.json 2>/dev/null | head -1)"
ramp="n/a"
if [[ -n "$metrics" ]]; then
  ramp="$(python3 -c "
import json, sys
m = json.load(open(sys.argv[1]))['measured']['users_over_time']
first = next((s['t_secs'] for s in m if s['users'] >= int(sys.argv[2])), None)
print('n/a' if first is None else f'{first:.1f}')" "$metrics" "$scale_users")"
fi
scale_share="$(echo "$(cpu scale) $(wall scale)" | awk '{printf "%.1f", 100 * $1 / $2}')"

ratio() { awk -v a="${1%% *}" -v b="${2%% *}" 'BEGIN {printf "%.2f", a / b}'; }
echo
echo "lva-loadtest benchmark on $(nproc) cores, $runs run(s) of ${secs}s per row; median [min-max]"
printf '%-44s %-26s %-26s %s\n' "row" "requests/s" "CPU µs per request" "ratio"
printf '%-44s %-26s %-26s %s\n' "1. wrk, /health (physical limit)" "${rps[wrk]}" "${cpu_us[wrk]}" "1.00 (reference)"
printf '%-44s %-26s %-26s %s\n' "2. generator, /health, no wait" "${rps[simple]}" "${cpu_us[simple]}" "$(ratio "${cpu_us[simple]}" "${cpu_us[wrk]}") x wrk"
printf '%-44s %-26s %-26s %s\n' "3. generator, smoke mix, no wait" "${rps[mix]}" "${cpu_us[mix]}" "$(ratio "${cpu_us[mix]}" "${cpu_us[simple]}") x row 2"
printf '%-44s %-26s %-26s %s\n' "5. as 2 with every output written" "${rps[outputs]}" "${cpu_us[outputs]}" "$(ratio "${cpu_us[outputs]}" "${cpu_us[simple]}") x row 2"
echo
echo "4. scale: $scale_users users, 1-3 s waits, ${scale_secs}s: peak memory $(rss_mib scale) MiB," \
  "all users running after ${ramp}s, generator CPU $scale_share% of one core over the run"
