#!/usr/bin/env bash
# A newcomer's first contact, timed: a fresh clone of this repository's committed HEAD and a
# CARGO_HOME of its own whose crate sources are already downloaded (downloads are not the
# point), then the README's two commands:
#   1. `cargo build --release && target/release/lva-loadtest --scenario smoke`: the build,
#      then the 1-minute smoke run against the built-in reference server;
#   2. `cargo test --release`, timed until its first test runs (its compile alone, with
#      `--no-run`), since the tests themselves take minutes of their own.
#
#   scripts/first_run.sh              # the figures, in seconds, and the machine's cores and load
#   scripts/first_run.sh --keep DIR   # keep the clone (and its target/) in DIR
#
# Run it on a quiet machine: a build shares the cores with everything else.
set -euo pipefail
keep=""
while (($#)); do
  case "$1" in
    --keep) keep="${2:?--keep needs a folder}"; shift ;;
    *) echo "usage: $0 [--keep DIR]" >&2; exit 2 ;;
  esac
  shift
done
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${keep:-$(mktemp -d /tmp/lva-first-run.XXXXXX)}"
[[ -n "$keep" ]] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
rm -rf "$work/clone" "$work/cargo-home"
git clone -q "$root" "$work/clone"
export CARGO_HOME="$work/cargo-home"
cd "$work/clone"
cargo fetch --locked -q
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }
echo "first_run: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), commit $(git rev-parse --short HEAD)"
t0=$(now)
cargo build --release --locked -q
t1=$(now)
target/release/lva-loadtest --scenario smoke --output "$work/reports" >"$work/smoke.log" 2>&1 || {
  echo "first_run: the smoke run failed (exit $?); its output:" >&2
  tail -20 "$work/smoke.log" >&2
  exit 1
}
t2=$(now)
cargo test --release --locked --no-run -q 2>/dev/null
t3=$(now)
echo "first_run: command 1: build $(secs "$t0" "$t1") s + smoke run $(secs "$t1" "$t2") s = $(secs "$t0" "$t2") s"
echo "first_run: command 2: $(secs "$t2" "$t3") s of compiling before the first test"
