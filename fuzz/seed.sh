#!/bin/sh
# Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/ from the vectors
# recorded against the real fastd v22 (the repository's testdata/), plus a few hand-encoded
# helper/worker messages. The committed corpus is these seeds merged with what fuzzing runs
# found, minimized (see README.md).
# Input formats: see the comment at the top of each fuzz_targets/<target>.rs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
vectors=${VECTORS:-$here/../testdata}
exec python3 - "$here/corpus" "$vectors" <<'EOF'
import os, struct, sys

corpus, vectors = sys.argv[1], sys.argv[2]
confs = os.path.join(vectors, "configs")
hs_dir = os.path.join(vectors, "handshake")

METHODS = ["null", "null@l2tp", "aes128-gcm", "salsa20+gmac", "salsa2012+gmac",
           "aes128-ctr+umac", "salsa20+umac", "salsa2012+umac", "aes128-ctr+poly1305",
           "salsa20+poly1305", "salsa2012+poly1305", "null+aes128-gmac", "null+salsa20+gmac",
           "null+salsa2012+gmac", "null+aes128-ctr+umac", "null+salsa20+umac",
           "null+salsa2012+umac"]

def out(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def read(*p):
    with open(os.path.join(*p), "rb") as f:
        return f.read()

# config_parse: `main [NUL other]`; `other` is inc.conf, peer.conf and peers/p1.
for n in sorted(os.listdir(confs)):
    if n.endswith(".conf"):
        out("config_parse", n, read(confs, n))
for n in sorted(os.listdir(os.path.join(confs, "inc"))):
    out("config_parse", "include-" + n,
        b'peer group "g" {\n  include "inc.conf";\n}\n\0' + read(confs, "inc", n))
out("config_parse", "include-peer",
    b'method "salsa2012+umac";\ninclude peer "peer.conf" as "alpha";\n\0'
    + read(confs, "peers", "alpha"))
for n in sorted(os.listdir(os.path.join(confs, "peerdir"))):
    out("config_parse", "peerdir-" + n,
        b'include peers from "peers";\n\0' + read(confs, "peerdir", n))

def load(path):
    v = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#") or " =" not in line:
                continue
            k, _, val = line.partition(" =")
            v[k.strip()] = val.strip()
    return v

def step(sel, payload=b""):
    return bytes([sel]) + struct.pack(">H", len(payload)) + payload

# handshake_packet: `flags` then steps `sel len_hi len_lo bytes`; sel 0 = handle_handshake
# from fastd's address, 0x10 = run due timers (we send packet 1 as initiator).
method_seeds = 0
for n in sorted(os.listdir(hs_dir)):
    if not n.endswith(".txt"):
        continue
    v = load(os.path.join(hs_dir, n))
    h = bytes.fromhex
    if v["role_of_reference_peer"] == "initiator":
        pre_v22 = v["compat"] == "1" and not v["pkt1_init_sent_by_ref"].startswith("c8")
        seed = bytes([2 if pre_v22 else 0]) + step(0x10) + step(0, h(v["pkt2_response_sent_by_fastd"]))
    else:
        seed = bytes([0]) + step(0, h(v["pkt1_init_sent_by_fastd"])) \
            + step(0, h(v["pkt3_finish_sent_by_fastd"]))
    out("handshake_packet", n[:-4], seed)
    # method_decrypt: every recorded data packet as a raw datagram (op 0).
    m = METHODS.index(v["method"])
    seed = bytes([m, 1 if v["compat"] == "1" else 0])
    for k in sorted(v):
        if k.startswith("data_from_") and not k.endswith("_plain"):
            seed += b"\0" + struct.pack(">H", len(h(v[k]))) + h(v[k])
    out("method_decrypt", "vector-" + n[:-4], seed)

# An unknown sender's packet 1 with `on verify` (flags bit 0), from 198.51.100.7 (sel 4).
v = load(os.path.join(hs_dir, "resp-null.txt"))
out("handshake_packet", "verify-unknown",
    bytes([1]) + step(4, bytes.fromhex(v["pkt1_init_sent_by_fastd"])) + step(5 << 3 | 0x80))

# method_decrypt, structured: send, send altered, replay, wait, replay.
for i, name in enumerate(METHODS):
    payload = bytes(range(40))
    seed = bytes([i, 0])
    seed += b"\x01" + bytes([len(payload)]) + payload + b"\0\0\0"
    seed += b"\x01" + bytes([len(payload)]) + payload + b"\0\x1e\x01"
    seed += b"\x02\x00" + b"\x03\xc8" + b"\x02\x01"
    out("method_decrypt", "structured-" + name, seed)

# policy_decode: byte 0 even = Request, odd = FromHelper, then the bincode message (fixint,
# little endian): enum variant u32, String/Vec u64 length + items, Option u8 tag,
# SocketAddr = variant u32 + address bytes + u16 port.
def u32(n): return struct.pack("<I", n)
def string(s): return struct.pack("<Q", len(s)) + s.encode()
def none(): return b"\0"
def some(b): return b"\1" + b
def v4(a, port): return u32(0) + bytes(a) + struct.pack("<H", port)
def v6(a, port): return u32(1) + bytes(a) + struct.pack("<H", port)
conf = string("/etc/fastd/fastd.conf")
requests = {
    "read-file": u32(0) + conf,
    "read-dir": u32(1) + string("/etc/fastd/peers"),
    "resolve-dir": u32(2) + string("/etc/fastd/peers"),
    "close-tun": u32(5) + string("tun0"),
    "bind-udp-v4": u32(6) + v4([192, 0, 2, 1], 10000) + none() + some(u32(42)) + none(),
    "bind-udp-v6": u32(6) + v6([0x20, 1, 0xd, 0xb8] + [0] * 11 + [1], 10000)
        + some(string("eth0")) + none() + none(),
    "status-socket": u32(7),
    "open-syslog": u32(9),
    "ready": u32(10),
}
# FromHelper: variant 0 = Reply(Response), 1 = Notice(Notice).
def reply(m): return u32(0) + m
def notice(m): return u32(1) + m
responses = {
    "start": notice(u32(0) + struct.pack("<Q", 2) + string("--config") + conf + string("/")),
    "file": reply(u32(0) + struct.pack("<Q", 5) + b"peer;"),
    "dir": reply(u32(1) + struct.pack("<Q", 2) + string("p1") + u32(0) + string("sub") + u32(1)),
    "path": reply(u32(2) + string("/etc/fastd/peers")),
    "sealed": reply(u32(3)),
    "tun": reply(u32(4) + string("tun0")),
    "udp": reply(u32(5) + v4([192, 0, 2, 1], 10000)),
    "hook-done": reply(u32(9) + some(struct.pack("<i", 0))),
    "verdict": reply(u32(10) + b"\1"),
    "refused": reply(u32(14) + string("not in the sealed policy")),
    "failed": reply(u32(15) + string("open") + some(struct.pack("<i", 13))),
    "stop": notice(u32(3)),
}
for n, m in requests.items():
    out("policy_decode", "request-" + n, b"\0" + m)
for n, m in responses.items():
    out("policy_decode", "response-" + n, b"\1" + m)
EOF
