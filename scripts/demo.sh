#!/usr/bin/env bash
# Sets up everything, then runs the demonstration: exports through an outage of
# a local endpoint, spooled to files, drained after recovery.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec node demo/demo.js "$@"
