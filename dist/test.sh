#!/usr/bin/env bash
# The test command: installs dependencies, then runs every test of the workspace.
# As root (and always when CI=true) the tests that need root, TUN and network namespaces run too;
# with CI=true they fail instead of skipping when something they need is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash dist/deps.sh
# Supply chain: licenses, duplicate versions (warnings), sources; offline, from Cargo.lock. The
# advisories need the RustSec database from the network: `cargo deny check advisories` (README).
cargo fetch --locked
target/tools/bin/cargo-deny --offline check bans licenses sources
cargo build --profile ci --bins
cargo test --profile ci --workspace --all-targets --no-fail-fast
