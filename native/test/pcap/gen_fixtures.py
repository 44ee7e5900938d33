#!/usr/bin/env python3
"""Generates the parser fixtures in this directory (Snabb-style selftests:
small pcap files, one expectation line per frame).

    python3 native/test/pcap/gen_fixtures.py

writes, next to this script:
    parse_wellformed.pcap / .expect   frames the parser must classify
    parse_malformed.pcap  / .expect   frames it must drop, by reason
    parse_truncated.pcap  / .expect   frames whose L4 header is cut short: IP
                                      with a key like a later fragment's (no
                                      L4) and trunc=1, judged by the rules

Each .expect line is the expectation for the frame of the same index:
`class key=value ...`. `class` is ipv4 | ipv6 | arp | ndp | other |
malformed; the keys the test compares are listed in parse_fixtures_test.cc
(reason, proto, sport, dport, icmp, l4, trunc, frag, later, vlan, src,
dst). The
frames are hand-built with struct (no scapy on the build machines), and the
.pcap files are committed: this script only documents how they were made.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

SRC_MAC = bytes.fromhex("020000000001")
DST_MAC = bytes.fromhex("020000000002")


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def eth(ethertype, payload, tags=()):
    out = DST_MAC + SRC_MAC
    for tpid, vid in tags:
        out += struct.pack("!HH", tpid, vid)
    return out + struct.pack("!H", ethertype) + payload


def ip4addr(s):
    return bytes(int(x) for x in s.split("."))


def ip4(proto, payload, src="10.0.0.1", dst="10.0.0.2", options=b"", frag=0, mf=False,
        tot=None, bad_csum=False, version=4, ihl=None):
    if ihl is None:
        ihl = (20 + len(options)) // 4
    total = 20 + len(options) + len(payload) if tot is None else tot
    flags_frag = (0x2000 if mf else 0) | frag
    hdr = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, total, 1, flags_frag, 64, proto, 0,
                      ip4addr(src), ip4addr(dst)) + options
    c = csum(hdr[: ihl * 4] if ihl * 4 <= len(hdr) else hdr)
    if bad_csum:
        c ^= 0x1234
    hdr = hdr[:10] + struct.pack("!H", c) + hdr[12:]
    return hdr + payload


def ip6addr(s):
    import ipaddress
    return ipaddress.IPv6Address(s).packed


def ip6(nh, payload, src="2001:db8::1", dst="2001:db8::2", plen=None, version=6):
    length = len(payload) if plen is None else plen
    return struct.pack("!IHBB16s16s", version << 28, length, nh, 64, ip6addr(src),
                       ip6addr(dst)) + payload


def tcp(sport=1234, dport=80, flags=0x02, doff=5, data=b""):
    opts = b"\x01" * (max(doff, 5) * 4 - 20)
    return struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, doff << 4, flags, 65535, 0, 0) + opts + data


def udp(sport=5353, dport=53, data=b"abcd"):
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def sctp(sport=2905, dport=2906):
    return struct.pack("!HHII", sport, dport, 0, 0)


def icmp(t=8, c=0, data=b"ping"):
    return struct.pack("!BBHHH", t, c, 0, 1, 1) + data


def ext(nh, body_len8=0):
    """Generic 8*(n+1)-byte extension header (hop-by-hop/routing/dstopts)."""
    return struct.pack("!BB", nh, body_len8) + b"\x01\x04\0\0\0\0" + b"\0" * (8 * body_len8)


def frag6(nh, offset=0, more=False):
    return struct.pack("!BBHI", nh, 0, (offset << 3) | (1 if more else 0), 0xABCD)


def ah(nh):
    # payload len 4 -> (4 + 2) * 4 = 24 bytes
    return struct.pack("!BBHII", nh, 4, 0, 0x100, 1) + b"\0" * 12


WELL = []  # (frame, expect)
BAD = []
TRUNC = []


def w(frame, expect):
    WELL.append((frame, expect))


def b(frame, reason):
    BAD.append((frame, "malformed reason=" + reason))


def t(frame, expect):
    TRUNC.append((frame, expect + " sport=0 dport=0 icmp=0 tcpflags=0 l4=0 trunc=1 reason=none"))


# ---- well-formed -----------------------------------------------------------
w(eth(0x0800, ip4(6, tcp(1234, 80, 0x02))),
  "ipv4 proto=6 sport=1234 dport=80 tcpflags=2 l4=1 frag=0 src=10.0.0.1 dst=10.0.0.2 vlan=0")
w(eth(0x0800, ip4(17, udp(5353, 53))), "ipv4 proto=17 sport=5353 dport=53 l4=1")
w(eth(0x0800, ip4(132, sctp(2905, 2906))), "ipv4 proto=132 sport=2905 dport=2906 l4=1")
w(eth(0x0800, ip4(1, icmp(8, 0))), "ipv4 proto=1 icmp=2048 sport=0 dport=0 l4=1")
w(eth(0x0800, ip4(47, b"\0\0\x08\0")), "ipv4 proto=47 sport=0 dport=0 l4=1")
# Ethernet padding after a short IP packet is ignored.
w(eth(0x0800, ip4(17, udp(1, 2, b""))) + b"\0" * 18, "ipv4 proto=17 sport=1 dport=2 l4=1 l3len=28")
# options: NOP NOP + record-route (len 7, ptr 4) + EOL
w(eth(0x0800, ip4(6, tcp(1, 2), options=b"\x01\x01\x07\x07\x04\0\0\0\0\0\0\0")),
  "ipv4 proto=6 sport=1 dport=2 l4=1")
# first fragment (MF, offset 0): ports present
w(eth(0x0800, ip4(17, udp(7, 9), mf=True)), "ipv4 proto=17 sport=7 dport=9 l4=1 frag=1 later=0")
# later fragment: protocol only, no L4
w(eth(0x0800, ip4(17, b"x" * 16, frag=185)), "ipv4 proto=17 sport=0 dport=0 l4=0 frag=1 later=1")
w(eth(0x0800, ip4(6, b"x" * 16, frag=2, mf=True)), "ipv4 proto=6 sport=0 dport=0 l4=0 frag=1 later=1")
# VLAN and QinQ
w(eth(0x0800, ip4(6, tcp(22, 2222)), tags=[(0x8100, 10)]), "ipv4 proto=6 sport=22 dport=2222 vlan=1")
w(eth(0x0800, ip4(6, tcp(22, 2222)), tags=[(0x88A8, 100), (0x8100, 10)]),
  "ipv4 proto=6 sport=22 dport=2222 vlan=2")
w(eth(0x86DD, ip6(6, tcp(443, 5555, 0x12)), tags=[(0x9100, 5), (0x8100, 6)]),
  "ipv6 proto=6 sport=443 dport=5555 tcpflags=18 vlan=2")
w(eth(0x0806, b"\0\x01\x08\0\x06\x04\0\x01" + SRC_MAC + ip4addr("10.0.0.1") + b"\0" * 6 +
      ip4addr("10.0.0.2")), "arp")
w(eth(0x88CC, b"\x02\x07\x04" + SRC_MAC + b"\0" * 20), "other")  # LLDP
w(eth(0x0026, b"\x42\x42\x03" + b"\0" * 35), "other")  # 802.3 length + LLC (STP)
# IPv6
w(eth(0x86DD, ip6(17, udp(1000, 2000))), "ipv6 proto=17 sport=1000 dport=2000 l4=1 src=2001:db8::1 dst=2001:db8::2")
w(eth(0x86DD, ip6(58, icmp(128, 0))), "ipv6 proto=58 icmp=32768 l4=1")
w(eth(0x86DD, ip6(58, icmp(135, 0, b"\0" * 20), src="fe80::1", dst="ff02::1:ff00:2")),
  "ndp proto=58 icmp=34560")
w(eth(0x86DD, ip6(58, icmp(136, 0, b"\0" * 20))), "ndp proto=58 icmp=34816")
w(eth(0x86DD, ip6(0, ext(43, 0) + ext(60, 1) + ext(6, 0) + tcp(1, 2))), "ipv6 proto=6 sport=1 dport=2 l4=1")
w(eth(0x86DD, ip6(44, frag6(17, 0, True) + udp(3, 4))), "ipv6 proto=17 sport=3 dport=4 l4=1 frag=1 later=0")
w(eth(0x86DD, ip6(44, frag6(17, 0, False) + udp(3, 4))), "ipv6 proto=17 sport=3 dport=4 l4=1 frag=0")
w(eth(0x86DD, ip6(60, ext(44, 0) + frag6(6, 100, True) + b"y" * 24)),
  "ipv6 proto=6 sport=0 dport=0 l4=0 frag=1 later=1")
w(eth(0x86DD, ip6(51, ah(6) + tcp(8, 9))), "ipv6 proto=6 sport=8 dport=9 l4=1")
w(eth(0x86DD, ip6(50, b"\0" * 16)), "ipv6 proto=50 sport=0 dport=0 l4=1")
w(eth(0x86DD, ip6(0, ext(59, 0))), "ipv6 proto=59 l4=1")

# ---- malformed -------------------------------------------------------------
b(DST_MAC + SRC_MAC + b"\x08", "eth_truncated")
b(eth(0x0800, b"", tags=[(0x8100, 1)])[:16], "vlan_truncated")
b(eth(0x0800, ip4(6, tcp()), tags=[(0x8100, 1), (0x8100, 2), (0x8100, 3)]), "vlan_too_deep")
b(eth(0x0800, ip4(6, tcp())[:19]), "ip4_truncated")
b(eth(0x0800, ip4(6, tcp(), version=5)), "ip4_bad_version")
b(eth(0x0800, ip4(6, tcp(), ihl=4)), "ip4_bad_ihl")
b(eth(0x0800, ip4(6, tcp(), ihl=15)), "ip4_truncated")
b(eth(0x0800, ip4(6, tcp(), tot=200)), "ip4_bad_total_len")
b(eth(0x0800, ip4(6, tcp(), tot=12)), "ip4_bad_total_len")
b(eth(0x0800, ip4(6, tcp(), bad_csum=True)), "ip4_bad_checksum")
b(eth(0x0800, ip4(6, tcp(), options=b"\x07\x09\x04\0")), "ip4_bad_options")
b(eth(0x0800, ip4(6, tcp(), options=b"\x01\x01\x01\x44")), "ip4_bad_options")
b(eth(0x0800, ip4(6, b"z" * 20, frag=1)), "ip4_tiny_fragment")
b(eth(0x0800, ip4(6, tcp(doff=3))), "tcp_bad_doff")
b(eth(0x0800, ip4(6, tcp()[:12] + bytes([15 << 4]) + tcp()[13:])), "tcp_bad_doff")
b(eth(0x0800, ip4(17, udp(), mf=True)[:20 + 4]), "ip4_bad_total_len")
b(eth(0x86DD, ip6(6, tcp())[:39]), "ip6_truncated")
b(eth(0x86DD, ip6(6, tcp(), version=4)), "ip6_bad_version")
b(eth(0x86DD, ip6(6, tcp(), plen=400)), "ip6_bad_payload_len")
b(eth(0x86DD, ip6(43, ext(6, 2)[:10])), "ip6_ext_truncated")
b(eth(0x86DD, ip6(44, frag6(6)[:5])), "ip6_ext_truncated")
b(eth(0x86DD, ip6(51, ah(6)[:20])), "ip6_ext_truncated")
b(eth(0x86DD, ip6(60, ext(0, 0) + tcp())), "ip6_hbh_not_first")
b(eth(0x86DD, ip6(60, b"".join(ext(60, 0) for _ in range(8)) + ext(6, 0) + tcp())), "ip6_ext_chain_too_long")

# ---- L4 header cut short (not malformed: see parse.h) ------------------------
t(eth(0x0800, ip4(6, tcp()[:12])), "ipv4 proto=6 frag=0")
t(eth(0x0800, ip4(6, tcp(), tot=20 + 12) + b"\0" * 8), "ipv4 proto=6 l3len=32")  # header beyond tot_len
t(eth(0x0800, ip4(17, udp()[:6])), "ipv4 proto=17")
t(eth(0x0800, ip4(1, icmp()[:3])), "ipv4 proto=1")
t(eth(0x0800, ip4(132, sctp()[:10])), "ipv4 proto=132")
t(eth(0x86DD, ip6(6, tcp()[:19])), "ipv6 proto=6")
t(eth(0x86DD, ip6(58, icmp()[:7])), "ipv6 proto=58")
t(eth(0x86DD, ip6(44, frag6(6, 0, True) + tcp()[:10])), "ipv6 proto=6 frag=1 later=0")


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000 + i, 0, len(fr), len(fr)))
            f.write(fr)


for name, items in (("parse_wellformed", WELL), ("parse_malformed", BAD), ("parse_truncated", TRUNC)):
    write_pcap(os.path.join(HERE, name + ".pcap"), [fr for fr, _ in items])
    with open(os.path.join(HERE, name + ".expect"), "w") as f:
        for _, e in items:
            f.write(e + "\n")
print("wrote %d well-formed, %d malformed and %d truncated frames" % (len(WELL), len(BAD), len(TRUNC)))
