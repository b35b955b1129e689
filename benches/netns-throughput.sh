#!/bin/sh
# Throughput through the tunnel in network namespaces: ours<->ours and fastd<->fastd (Debian's
# fastd v22), for salsa2012+umac and null, with iperf3, in the same run. Needs root, iperf3 and
# /usr/bin/fastd. BENCH_SECONDS sets the iperf3 duration (default 5).
set -eu
cd "$(dirname "$0")/.."
exec cargo test --release -p worker --test interop_throughput -- --ignored --nocapture --test-threads=1 2>&1 |
    grep -oE 'RESULT.*|test result.*|panicked.*'
