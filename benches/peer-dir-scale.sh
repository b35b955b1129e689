#!/bin/sh
# Peer directories at gateway scale: start-up time (until the status socket lists
# every peer), reload time (SIGHUP with 100 files added and 100 removed) and resident memory
# per configured peer ((VmRSS with N peer files - VmRSS with none) / N; ours: helper + worker)
# and CPU while idle, for fastd-privsep and Debian's fastd v22 on the same directory, in a network namespace.
# Needs root, socat and /usr/bin/fastd. BENCH_PEERS sets N (default 10000); BENCH_ONLY=fastd-privsep
# or BENCH_ONLY="fastd v22" measures one of them. Idle CPU: over 5 s with no traffic.
set -eu
cd "$(dirname "$0")/.."
exec cargo test --profile ci --test peer_dirs_e2e bench_peer_dir_scale -- --ignored --nocapture --test-threads=1 2>&1 |
    grep -oE 'RESULT.*|test result.*|panicked.*'
