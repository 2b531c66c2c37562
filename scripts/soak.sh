#!/usr/bin/env bash
# Sets up everything, then runs the crash soak: 20 SIGKILLs of a Node exporter and
# 20 kills of workerd during a flapping outage (a few minutes). Arguments pass
# through, e.g. `npm run soak -- --kills 50 --workers 0 --seed 3`.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec node tests/soak/soak.js --kills 20 --workers 20 "$@"
