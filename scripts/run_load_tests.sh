#!/usr/bin/env bash
# The old runner's interface over lva-loadtest: same flags, same exit codes
# (0 targets met, 1 a target missed, 2 configuration error).
# Without -h/--host the built-in reference server is tested.
set -uo pipefail

usage() {
  cat <<'USAGE'
Usage: run_load_tests.sh [options] [-- lva-loadtest options]

  -h, --host URL          server under test (default: the built-in reference server)
  -u, --users N           number of users
  -r, --spawn-rate N      users started per second
  -d, --duration D        run time: 60s, 5m, 1h
  -s, --scenario NAME     smoke, load, stress, spike, endurance, auth-only, gdpr-only,
                          rate-limit or custom (default: smoke)
  -t, --tags A,B          only tasks with these tags
  -w, --web               run with the web dashboard
  -o, --output DIR        report directory (default: reports/load_tests)
      --help              this help

Anything after -- goes to lva-loadtest as it is.
USAGE
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
args=()
while (($#)); do
  case "$1" in
    -h|--host|-u|--users|-r|--spawn-rate|-d|--duration|-s|--scenario|-t|--tags|-o|--output)
      if (($# < 2)); then
        echo "error: $1 needs a value (see --help)" >&2
        exit 2
      fi
      case "$1" in
        -h|--host) args+=(--host "$2") ;;
        -u|--users) args+=(--users "$2") ;;
        -r|--spawn-rate) args+=(--spawn-rate "$2") ;;
        -d|--duration) args+=(--duration "$2") ;;
        -s|--scenario) args+=(--scenario "$2") ;;
        -t|--tags) args+=(--tags "$2") ;;
        -o|--output) args+=(--output "$2") ;;
      esac
      shift 2 ;;
    -w|--web) args+=(--web); shift ;;
    --help) usage; exit 0 ;;
    --) shift; args+=("$@"); break ;;
    *) echo "error: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

bin="${LVA_LOADTEST_BIN:-$root/target/release/lva-loadtest}"
if [[ -z "${LVA_LOADTEST_BIN:-}" ]]; then
  # Build (or bring up to date) the release binary; quick when nothing changed.
  if ! (cd "$root" && cargo build --release --quiet); then
    echo "error: building lva-loadtest failed" >&2
    exit 2
  fi
fi
exec "$bin" "${args[@]}"
