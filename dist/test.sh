#!/usr/bin/env bash
# The test command: installs dependencies, then runs every test of the workspace.
# As root (and always when CI=true) the tests that need root, TUN and network namespaces run too;
# with CI=true they fail instead of skipping when something they need is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash dist/deps.sh
cargo build --profile ci --bins
cargo test --profile ci --workspace --all-targets --no-fail-fast
