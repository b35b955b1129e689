#!/bin/bash
# Handshake flood against a gateway, ours against fastd in the same run.
#
# World (network namespaces, torn down on exit):
#   cli 198.51.100.2 ── 198.51.100.1 gw 192.0.2.254 ── fl 192.0.2.1-253, 203.0.113.1-47
#   tunnel cli 172.16.16.2 ⇄ gw 172.16.16.1 (the client is always Debian's fastd v22)
# The gateway is fastd-privsep or fastd. While `fl` sends handshake packet 1 with random
# sender keys from its 300 addresses (examples/handshake_flood.rs) for FLOOD_SECONDS, `cli`
# pings the gateway through the established tunnel. Prints: rate, daemon, ping loss, rtt.
#
# Needs root, /usr/bin/fastd, iproute2, ping. RATES (default "20000 0"; 0 = as fast as the
# flooder can send), FLOOD_SECONDS (default 5, at most 60), PROFILE (cargo profile, default ci).
set -euo pipefail
cd "$(dirname "$0")/.."

RATES=${RATES:-"20000 0"}
FLOOD_SECONDS=${FLOOD_SECONDS:-5}
PROFILE=${PROFILE:-ci}
[ "$FLOOD_SECONDS" -le 60 ] || FLOOD_SECONDS=60

cargo build -q --profile "$PROFILE" -p fastd-privsep --bin fastd-privsep
cargo build -q --profile "$PROFILE" -p worker --example handshake_flood
OURS=$PWD/target/$PROFILE/fastd-privsep
FLOOD=$PWD/target/$PROFILE/examples/handshake_flood

SUF=$$
GW=hfgw$SUF CLI=hfcli$SUF FL=hffl$SUF
DIR=$(mktemp -d /tmp/handshake-flood.XXXXXX)
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for ns in "$GW" "$CLI" "$FL"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT

# A fresh key pair as "SECRET PUBLIC".
keypair() { fastd --generate-key 2>/dev/null | sed -n 's/^\(Secret\|Public\): //p' | paste -sd' '; }

world() {
    for ns in "$GW" "$CLI" "$FL"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    ip -n "$GW" link add c0 type veth peer name eth0 netns "$CLI"
    ip -n "$GW" link add f0 type veth peer name eth0 netns "$FL"
    ip -n "$GW" addr add 198.51.100.1/24 dev c0
    ip -n "$GW" addr add 192.0.2.254/24 dev f0
    ip -n "$GW" link set c0 up
    ip -n "$GW" link set f0 up
    ip -n "$GW" route add 203.0.113.0/24 via 192.0.2.1
    ip -n "$CLI" addr add 198.51.100.2/24 dev eth0
    ip -n "$CLI" link set eth0 up
    {
        for i in $(seq 1 253); do echo "addr add 192.0.2.$i/24 dev eth0"; done
        for i in $(seq 1 47); do echo "addr add 203.0.113.$i/32 dev eth0"; done
    } | ip -n "$FL" -batch -
    ip -n "$FL" link set eth0 up
    ip -n "$FL" route add default via 192.0.2.254
}

SOURCES=$(
    for i in $(seq 1 253); do printf '192.0.2.%s ' "$i"; done
    for i in $(seq 1 47); do printf '203.0.113.%s ' "$i"; done
)

read -r GW_SECRET GW_PUBLIC <<<"$(keypair)"
read -r CLI_SECRET CLI_PUBLIC <<<"$(keypair)"

common() {
    cat <<EOF
log to stderr level info;
mode tun;
method "salsa2012+umac";
mtu 1400;
secure handshakes yes;
EOF
}

gw_conf() {
    common
    cat <<EOF
bind any:10000;
interface "hfgw";
secret "$GW_SECRET";
on up "ip addr add 172.16.16.1/24 dev \$INTERFACE; ip link set up dev \$INTERFACE";
peer "cli" { key "$CLI_PUBLIC"; }
EOF
}

cli_conf() {
    common
    cat <<EOF
bind 198.51.100.2:10001;
interface "hfcli";
secret "$CLI_SECRET";
on up "ip addr add 172.16.16.2/24 dev \$INTERFACE; ip link set up dev \$INTERFACE";
peer "gw" { key "$GW_PUBLIC"; remote 198.51.100.1:10000; }
EOF
}

# run RATE DAEMON-NAME: one measurement in a fresh world.
run() {
    local rate=$1 name=$2 daemon
    world
    gw_conf >"$DIR/gw.conf"
    cli_conf >"$DIR/cli.conf"
    case $name in
        ours) daemon=$OURS ;;
        fastd) daemon=/usr/bin/fastd ;;
    esac
    ip netns exec "$GW" "$daemon" -c "$DIR/gw.conf" >"$DIR/gw-$name-$rate.log" 2>&1 &
    PIDS+=($!)
    local gw_pid=$!
    ip netns exec "$CLI" fastd -c "$DIR/cli.conf" >"$DIR/cli.log" 2>&1 &
    PIDS+=($!)
    local cli_pid=$!
    local up=""
    for _ in $(seq 1 40); do
        if ip netns exec "$CLI" ping -c 1 -W 1 172.16.16.1 >/dev/null 2>&1; then
            up=1
            break
        fi
        sleep 0.25
    done
    if [ -z "$up" ]; then
        echo "tunnel with $name did not come up; gateway log:" >&2
        tail -20 "$DIR/gw-$name-$rate.log" >&2
        exit 1
    fi
    local count=$((FLOOD_SECONDS * 50))
    # shellcheck disable=SC2086
    ip netns exec "$FL" "$FLOOD" 192.0.2.254:10000 "$GW_PUBLIC" "$rate" "$FLOOD_SECONDS" $SOURCES \
        >"$DIR/flood.out" 2>&1 &
    local fl_pid=$!
    PIDS+=($fl_pid)
    sleep 0.2
    local out
    out=$(ip netns exec "$CLI" ping -q -i 0.02 -c "$count" -W 1 172.16.16.1 2>&1 || true)
    wait "$fl_pid" || true
    local loss rtt sent
    loss=$(echo "$out" | sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p')
    rtt=$(echo "$out" | sed -n 's|^rtt min/avg/max/mdev = [0-9.]*/\([0-9.]*\)/.*|\1|p')
    sent=$(sed -n 's/.*rate=\([0-9]*\)\/s.*/\1/p' "$DIR/flood.out")
    printf '%-10s %-8s %10s %10s %12s\n' "${rate/#0/line}" "$name" "${loss:-?}" "${rtt:--}" "${sent:-?}"
    kill "$gw_pid" "$cli_pid" 2>/dev/null || true
    wait "$gw_pid" "$cli_pid" 2>/dev/null || true
    for ns in "$GW" "$CLI" "$FL"; do ip netns del "$ns" 2>/dev/null || true; done
    sleep 0.3
}

printf '%-10s %-8s %10s %10s %12s\n' rate daemon "loss %" "avg ms" "flood pps"
for rate in $RATES; do
    for name in fastd ours; do
        run "$rate" "$name"
    done
done
