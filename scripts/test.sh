#!/usr/bin/env bash
# Sets up everything, then runs every test: the Rust core natively (cargo test),
# the wasm layer in Node (wasm-pack test --node), a small crash soak, and the
# JavaScript integration tests against a real HTTP server on 127.0.0.1 (in Node,
# and in real workerd through wrangler dev).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

printf '\033[1m[test]\033[0m cargo test (native core)\n'
cargo test --quiet

printf '\033[1m[test]\033[0m wasm-pack test --node (wasm layer)\n'
wasm-pack test --node

printf '\033[1m[test]\033[0m crash soak, small (npm run soak runs the full one)\n'
node tests/soak/soak.js --kills 5 --workers 2

printf '\033[1m[test]\033[0m node --test (JavaScript integration, Node and workerd)\n'
node --test --test-timeout=120000 "tests/js/*.test.js"
