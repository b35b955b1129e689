#!/bin/sh
# Throughput through the tunnel in network namespaces, fastd (Debian's v22) and ours in every
# pairing (fastd<->fastd, ours<->ours, ours->fastd, fastd->ours), TCP with iperf3, each node's
# daemon and iperf3 pinned to one CPU; prints one table with the ratio ours<->ours /
# fastd<->fastd and both daemons' CPU seconds per GB moved (from /proc). Needs root, iperf3,
# taskset and /usr/bin/fastd.
#   BENCH_SECONDS  iperf3 duration per run (default 8)
#   BENCH_RUNS     alternating runs per pairing; the table shows the median (default 3)
#   BENCH_METHODS  space-separated methods (default: salsa2012+umac null salsa2012+poly1305 aes128-gcm)
#   BENCH_PAIRS    only these pairings, e.g. 'ours<->ours' (default: all four)
#   BENCH_PROFILE  cargo profile (default ci: optimised like release, without the LTO build)
set -eu
cd "$(dirname "$0")/.."
cargo test --profile "${BENCH_PROFILE:-ci}" -p worker --test interop_throughput --no-run 2>&1 | tail -n 1
exec cargo test --profile "${BENCH_PROFILE:-ci}" -p worker --test interop_throughput -- --ignored --nocapture --test-threads=1 2>&1 |
    sed -u -n -e 's/^.*BENCH //p' -e '/panicked/p' -e '/^test result/p'
