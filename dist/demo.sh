#!/usr/bin/env bash
# The tutorial's world in network namespaces, with fastd-privsep on both sides:
#   anyremote (192.0.2.2) -- router -- (198.51.100.1) alpha (203.0.113.1) -- inet (203.0.113.10)
# anyremote sends all its traffic through the tunnel (172.16.16.0/24) to alpha, which masquerades it.
# Run as root. Everything is torn down on exit, also on failure.
# DEMO_MEASURE=1: before stopping, move 300 MB through the tunnel with TCP and print each
# daemon process's VmRSS (how the memory figures in the notes are taken).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
bash dist/deps.sh
if [ -z "${FASTD_PRIVSEP:-}" ]; then
  cargo build --release --bin fastd-privsep -q
  FASTD_PRIVSEP=$ROOT/target/release/fastd-privsep
fi
P=fpdemo$$
NS_AR=$P-anyremote NS_RT=$P-router NS_AL=$P-alpha NS_IN=$P-inet
WORK=$(mktemp -d /tmp/fastd-privsep-demo.XXXXXX)
pids=()

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
teardown() {
  set +e
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  for ns in "$NS_AR" "$NS_RT" "$NS_AL" "$NS_IN"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$WORK"
}
trap teardown EXIT
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
# For `bgx ... &`: the background subshell becomes the process, so $! is its pid.
bgx() { local ns=$1; shift; exec ip netns exec "$ns" "$@"; }

say "building the tutorial's world in network namespaces"
for ns in "$NS_AR" "$NS_RT" "$NS_AL" "$NS_IN"; do ip netns add "$ns"; nsx "$ns" ip link set lo up; done
ip link add ar0 netns "$NS_AR" type veth peer name rt-ar netns "$NS_RT"
ip link add al0 netns "$NS_AL" type veth peer name rt-al netns "$NS_RT"
ip link add uplink netns "$NS_AL" type veth peer name in0 netns "$NS_IN"
nsx "$NS_AR" ip addr add 192.0.2.2/24 dev ar0;        nsx "$NS_AR" ip link set ar0 up
nsx "$NS_RT" ip addr add 192.0.2.1/24 dev rt-ar;      nsx "$NS_RT" ip link set rt-ar up
nsx "$NS_RT" ip addr add 198.51.100.254/24 dev rt-al; nsx "$NS_RT" ip link set rt-al up
nsx "$NS_AL" ip addr add 198.51.100.1/24 dev al0;     nsx "$NS_AL" ip link set al0 up
nsx "$NS_AL" ip addr add 203.0.113.1/24 dev uplink;   nsx "$NS_AL" ip link set uplink up
nsx "$NS_IN" ip addr add 203.0.113.10/24 dev in0;     nsx "$NS_IN" ip link set in0 up
nsx "$NS_RT" sysctl -qw net.ipv4.ip_forward=1
nsx "$NS_AR" ip route add default via 192.0.2.1
nsx "$NS_AL" ip route add 192.0.2.0/24 via 198.51.100.254
# inet knows nothing of 172.16.16.0/24 or 192.0.2.0/24: replies only come back if alpha masquerades.

ALPHA_SECRET=5035de5b4ea448b74e9a373765207095057a9485fd9dca5fadb9c1b86347bd75
ALPHA_PUBLIC=8cb5e8d70d34f52716b6c4de518af2edfd6794e68ef1b3f0608cf05dd6a2ef42
AR_SECRET=c0a611e0d4f3075b45cf172d3221c8427008e2c6f541b5b6adda0368cb79f271
AR_PUBLIC=2598c5d7e72f171731658ce35734ff7599e1840367422e1a9c5943c327ab5ea9
mkdir -p "$WORK/alpha/peers" "$WORK/anyremote/peers"
cat > "$WORK/alpha/fastd.conf" <<CONF
log level info;
mode tun;
interface "vpngateway";
method "salsa2012+umac";
method "null";
bind 198.51.100.1:10000;
secret "$ALPHA_SECRET";
mtu 1448;
interface address 172.16.16.1/24;          # fastd-privsep extension
masquerade from 172.16.16.0/24 out "uplink"; # fastd-privsep extension
include peer "peers/anyremote";
CONF
printf 'key "%s";\n' "$AR_PUBLIC" > "$WORK/alpha/peers/anyremote"
cat > "$WORK/anyremote/fastd.conf" <<CONF
log level info;
mode tun;
interface "vpngateway";
method "salsa2012+umac";
method "null";
secret "$AR_SECRET";
mtu 1448;
interface address 172.16.16.2/24;          # fastd-privsep extension
redirect gateway via 172.16.16.1;          # fastd-privsep extension
include peer "peers/alpha";
CONF
printf 'key "%s";\nremote 198.51.100.1:10000;\n' "$ALPHA_PUBLIC" > "$WORK/anyremote/peers/alpha"

say "anyremote's routes before the tunnel"
nsx "$NS_AR" ip route | tee "$WORK/routes-before"

say "starting fastd-privsep on alpha and anyremote"
# alpha first, and anyremote only once alpha is ready (its pid file appears when its socket is
# bound and its packet loop runs): a first handshake that arrives before alpha listens is lost,
# and fastd's retry comes only 17.5-22.5 s later.
bgx "$NS_AL" "$FASTD_PRIVSEP" -c "$WORK/alpha/fastd.conf" --pid-file "$WORK/alpha.pid" \
  > "$WORK/alpha.log" 2>&1 & pids+=($!)
for _ in $(seq 200); do
  [ -s "$WORK/alpha.pid" ] && break
  kill -0 "${pids[0]}" 2>/dev/null || break
  sleep 0.1
done
if [ ! -s "$WORK/alpha.pid" ]; then
  sed 's/^/  alpha: /' "$WORK/alpha.log"
  echo "alpha did not become ready" >&2; exit 1
fi
bgx "$NS_AR" "$FASTD_PRIVSEP" -c "$WORK/anyremote/fastd.conf" > "$WORK/anyremote.log" 2>&1 & pids+=($!)
bgx "$NS_IN" socat -T 5 TCP-LISTEN:7007,fork,reuseaddr SYSTEM:'echo "inet sees you as $SOCAT_PEERADDR"' & pids+=($!)

up=0
for _ in $(seq 100); do
  if nsx "$NS_AR" ping -c 1 -W 1 172.16.16.1 >/dev/null 2>&1; then up=1; break; fi
  sleep 0.2
done
cat "$WORK/alpha.log" | sed 's/^/  alpha: /'
cat "$WORK/anyremote.log" | sed 's/^/  anyremote: /'
[ "$up" = 1 ] || { echo "the tunnel did not come up" >&2; exit 1; }

say "interfaces"
nsx "$NS_AL" ip -brief addr show vpngateway | sed 's/^/  alpha: /'
nsx "$NS_AR" ip -brief addr show vpngateway | sed 's/^/  anyremote: /'

say "ping through the tunnel"
nsx "$NS_AR" ping -c 3 172.16.16.1

say "anyremote's routes with the tunnel up"
nsx "$NS_AR" ip route

say "traffic to the outside host 203.0.113.10, through alpha"
nsx "$NS_AR" ping -c 2 203.0.113.10
reply=$(nsx "$NS_AR" socat -T 5 - TCP:203.0.113.10:7007 </dev/null)
echo "  $reply"
case "$reply" in *203.0.113.1*) echo "  masqueraded: the source is alpha's uplink address";;
  *) echo "masquerade check failed" >&2; exit 1;; esac

say "alpha's masquerade (its own nftables table) and forwarding"
nsx "$NS_AL" nft list ruleset | sed 's/^/  /'
nsx "$NS_AL" sysctl net.ipv4.ip_forward | sed 's/^/  /'

if [ "${DEMO_MEASURE:-0}" = 1 ]; then
  say "300 MB through the tunnel, then each daemon process's VmRSS"
  bgx "$NS_AL" timeout 60 socat -u TCP-LISTEN:7100,bind=172.16.16.1 /dev/null & sink=$!
  sleep 0.5
  head -c 300M /dev/zero | nsx "$NS_AR" timeout 60 socat -u - TCP:172.16.16.1:7100
  wait "$sink"
  for pid in "${pids[@]:0:2}"; do
    for p in "$pid" $(pgrep -P "$pid"); do
      printf '  %-10s %s\n' "$(grep -m1 VmRSS "/proc/$p/status" | tr -s ' \t' ' ')" "$(tr '\0' ' ' < "/proc/$p/cmdline" | cut -c1-90)"
    done
  done
fi

say "stopping both daemons"
for pid in "${pids[@]:0:2}"; do kill -TERM "$pid"; done
for pid in "${pids[@]:0:2}"; do wait "$pid" || true; done
pids=("${pids[@]:2}")
say "anyremote's routes after the tunnel"
nsx "$NS_AR" ip route | tee "$WORK/routes-after"
if diff -u "$WORK/routes-before" "$WORK/routes-after"; then echo "  identical to before"; else exit 1; fi
say "done"
