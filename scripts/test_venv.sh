#!/usr/bin/env bash
# Creates (or reuses) the Python environment of scripts/test-requirements.txt: the tests run a
# stock Locust master and kubernetes-validate from it. Usage: scripts/test_venv.sh [DIR]
# (default target/test-venv). Recreated when the requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-target/test-venv}"
requirements=scripts/test-requirements.txt
if [[ -x "$dir/bin/locust" ]] && cmp -s "$requirements" "$dir/requirements.txt"; then
  exit 0
fi
rm -rf "$dir"
python3 -m venv "$dir"
"$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
cp "$requirements" "$dir/requirements.txt"
