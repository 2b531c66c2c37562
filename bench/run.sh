#!/usr/bin/env bash
# The export-retry benchmarks, in one command:
#   bash bench/run.sh [--quick] [--only healthy,outage,recovery,spool,workers,alarm,depth,size,restart]
#                     [--no-logfire] [--no-workers]
# Sets up the toolchain, npm dependencies and pkg/ (scripts/setup.sh), creates
# bench/.venv with the Logfire SDK the comparisons drive (pip install logfire==5.4.0;
# reused when present), then runs bench/bench.js: it prints a table of medians and
# ratios and writes bench/results/<date>.json and bench/results/latest.json.
# About 2 minutes on 2 cores (--quick: about 40 s). Not part of `npm test`.
set -euo pipefail
bench="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$bench/.." && pwd)"

# shellcheck source=../scripts/setup.sh
. "$root/scripts/setup.sh"
cd "$root"

LOGFIRE_VERSION=5.4.0
venv="$bench/.venv"
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('logfire') != '$LOGFIRE_VERSION')" 2>/dev/null; then
  printf '\033[1m[bench]\033[0m %s\n' "creating bench/.venv with logfire $LOGFIRE_VERSION (once)"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "logfire==$LOGFIRE_VERSION"
fi

exec node bench/bench.js --python "$venv/bin/python" "$@"
