// Scripted packet sequences for the conntrack comparison (conntrack-kernel
// test): a Python driver (python3 with socket/struct/ctypes only) that opens
// an AF_PACKET socket on each end of a lab (Sender and Receiver namespaces,
// entered with setns), sends hand-built frames one at a time from either
// side, and records whether each one arrived on the other side. Every frame
// carries a marker (IPv4 identification / IPv6 flow label) so that stray
// traffic can never count as an arrival. The ends' own stacks are silenced
// (no addresses, IPv6 off) by the caller, so nothing but the script's frames
// crosses the firewall and the firewall's conntrack sees only them.

export interface End {
  ns: string;
  dev: string;
  mac: string;
  /** Destination MAC of frames sent from this end (the peer, or the router). */
  nextHop: string;
  ip4: string;
  ip6: string;
}

export interface PacketSpec {
  from: 'a' | 'b';
  proto: 'tcp' | 'udp' | 'icmp';
  sport?: number;
  dport?: number;
  /** TCP flags as letters: S A F R P. */
  flags?: string;
  seq?: number;
  ack?: number;
  /** Payload bytes. */
  data?: number;
  /** ICMP/ICMPv6 type and code (family-specific numbers), and id for queries. */
  type?: number;
  code?: number;
  id?: number;
  /** For ICMP errors: the packet quoted (sent in its own direction). */
  quote?: PacketSpec;
}

export interface Step extends PacketSpec {
  what: string;
  /** The verdict iptables with conntrack gives (checked for both engines). */
  pass: boolean;
}

/** The sequence, in one family's ICMP numbering. */
export function script(v6: boolean): Step[] {
  const unreach = v6 ? { type: 1, code: 4 } : { type: 3, code: 3 }; // port unreachable
  const hostUnreach = v6 ? { type: 1, code: 3 } : { type: 3, code: 1 };
  const echoReq = v6 ? 128 : 8;
  const echoRep = v6 ? 129 : 0;
  const tcp = (from: 'a' | 'b', sport: number, dport: number, flags: string, seq: number, ack = 0, data = 0) =>
    ({ from, proto: 'tcp' as const, sport, dport, flags, seq, ack, data });
  const udp = (from: 'a' | 'b', sport: number, dport: number) => ({ from, proto: 'udp' as const, sport, dport, data: 4 });
  return [
    { what: 'handshake: SYN to :80 from inside (NEW, allowed)', ...tcp('a', 40001, 80, 'S', 1000), pass: true },
    { what: 'handshake: SYN/ACK (ESTABLISHED)', ...tcp('b', 80, 40001, 'SA', 5000, 1001), pass: true },
    { what: 'handshake: ACK', ...tcp('a', 40001, 80, 'A', 1001, 5001), pass: true },
    { what: 'data from inside', ...tcp('a', 40001, 80, 'PA', 1001, 5001, 10), pass: true },
    { what: 'data ACK from outside', ...tcp('b', 80, 40001, 'A', 5001, 1011), pass: true },
    { what: 'RST from outside (ESTABLISHED; closes)', ...tcp('b', 80, 40001, 'RA', 5001, 1011), pass: true },
    // nf_conntrack_tcp_loose=1, both sides' default: picked up as NEW.
    { what: 'mid-stream ACK, no connection (loose pickup: NEW, allowed)', ...tcp('a', 40002, 80, 'A', 1, 1), pass: true },
    { what: 'SYN/ACK without a SYN (INVALID)', ...tcp('b', 80, 40003, 'SA', 1, 1), pass: false },
    { what: 'FIN without a connection (INVALID)', ...tcp('a', 40006, 80, 'FA', 1, 1), pass: false },
    { what: 'NEW from outside to :80', ...tcp('b', 40004, 80, 'S', 1), pass: false },
    { what: 'NEW from inside to :81 (no rule)', ...tcp('a', 40005, 81, 'S', 1), pass: false },
    { what: 'close: SYN', ...tcp('a', 40020, 80, 'S', 100), pass: true },
    { what: 'close: SYN/ACK', ...tcp('b', 80, 40020, 'SA', 900, 101), pass: true },
    { what: 'close: ACK', ...tcp('a', 40020, 80, 'A', 101, 901), pass: true },
    { what: 'close: FIN from inside', ...tcp('a', 40020, 80, 'FA', 101, 901), pass: true },
    { what: 'close: ACK of the FIN', ...tcp('b', 80, 40020, 'A', 901, 102), pass: true },
    { what: 'close: FIN from outside', ...tcp('b', 80, 40020, 'FA', 901, 102), pass: true },
    { what: 'close: last ACK (TIME_WAIT)', ...tcp('a', 40020, 80, 'A', 102, 902), pass: true },
    { what: 'new SYN on the TIME_WAIT tuple (NEW again)', ...tcp('a', 40020, 80, 'S', 5000000), pass: true },
    { what: 'SYN to :80 (to be answered by an ICMP error)', ...tcp('a', 40010, 80, 'S', 7000), pass: true },
    { what: 'ICMP host unreachable quoting that SYN (RELATED)', from: 'b', proto: 'icmp', ...hostUnreach, quote: tcp('a', 40010, 80, 'S', 7000), pass: true },
    { what: 'UDP request to :53 (NEW, allowed)', ...udp('a', 5353, 53), pass: true },
    { what: 'UDP reply (ESTABLISHED)', ...udp('b', 53, 5353), pass: true },
    { what: 'UDP again from inside (ESTABLISHED)', ...udp('a', 5353, 53), pass: true },
    { what: 'UDP NEW from outside', ...udp('b', 6000, 53), pass: false },
    { what: 'ICMP port unreachable quoting the UDP flow (RELATED)', from: 'b', proto: 'icmp', ...unreach, quote: udp('a', 5353, 53), pass: true },
    { what: 'ICMP port unreachable quoting an unknown flow (INVALID)', from: 'b', proto: 'icmp', ...unreach, quote: udp('a', 5999, 53), pass: false },
    { what: 'echo request from inside (NEW, allowed)', from: 'a', proto: 'icmp', type: echoReq, code: 0, id: 77, pass: true },
    { what: 'echo reply (ESTABLISHED)', from: 'b', proto: 'icmp', type: echoRep, code: 0, id: 77, pass: true },
    { what: 'unsolicited echo reply (INVALID)', from: 'b', proto: 'icmp', type: echoRep, code: 0, id: 78, pass: false },
    { what: 'echo request from outside (NEW, no rule)', from: 'b', proto: 'icmp', type: echoReq, code: 0, id: 79, pass: false },
  ];
}

/** The stateful rule set, for iptables-restore and flatwall alike; `inside` is the inside port. */
export function ruleset(v6: boolean, inside: string): string {
  const icmp = v6 ? '-p ipv6-icmp -m icmp6 --icmpv6-type 128' : '-p icmp -m icmp --icmp-type 8';
  return `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -i ${inside} -p tcp -m tcp --dport 80 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -i ${inside} -p udp -m udp --dport 53 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -i ${inside} ${icmp} -m conntrack --ctstate NEW -j ACCEPT
COMMIT
`;
}

/**
 * The driver: reads {a, b, family, steps, waitMs} as JSON on stdin, prints
 * [arrived, ...]. With `pcap` (a path) it also writes every frame it sent
 * there (nanosecond pcap, the time of sending), and with `probe` (an argv)
 * it runs that command once before the first frame and once after each
 * frame's wait; it then prints {arrived: [...], probes: [stdout, ...]}.
 */
export const DRIVER_PY = String.raw`
import ctypes, json, os, select, socket, struct, subprocess, sys, time

cfg = json.load(sys.stdin)
libc = ctypes.CDLL(None, use_errno=True)

def open_end(end):
    fd = os.open('/var/run/netns/' + end['ns'], os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:
        raise OSError(ctypes.get_errno(), 'setns')
    os.close(fd)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((end['dev'], 0))
    s.setblocking(False)
    return s

ends = {k: cfg[k] for k in ('a', 'b')}
socks = {k: open_end(ends[k]) for k in ('a', 'b')}
v6 = cfg['family'] == 6

def csum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def addr(ip):
    return socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, ip)

def l4(p, src, dst):
    proto = p['proto']
    data = b'x' * p.get('data', 0)
    if proto == 'tcp':
        fl = 0
        for c in p.get('flags', ''):
            fl |= {'F': 1, 'S': 2, 'R': 4, 'P': 8, 'A': 16}[c]
        h = struct.pack('!HHIIBBHHH', p['sport'], p['dport'], p.get('seq', 0) & 0xffffffff,
                        p.get('ack', 0) & 0xffffffff, 5 << 4, fl, 64240, 0, 0) + data
        num = 6
    elif proto == 'udp':
        h = struct.pack('!HHHH', p['sport'], p['dport'], 8 + len(data), 0) + data
        num = 17
    else:
        rest = struct.pack('!HH', p.get('id', 0), 1) if 'quote' not in p else b'\0\0\0\0'
        body = ip_packet(p['quote'], 0) if 'quote' in p else data
        h = struct.pack('!BBH', p['type'], p.get('code', 0), 0) + rest + body
        num = 58 if v6 else 1
    if num == 1:
        c = csum(h)
    elif v6:
        c = csum(src + dst + struct.pack('!IxxxB', len(h), num) + h)
    else:
        c = csum(src + dst + struct.pack('!xBH', num, len(h)) + h)
    off = {6: 16, 17: 6, 1: 2, 58: 2}[num]
    if num == 17 and c == 0:
        c = 0xffff
    return num, h[:off] + struct.pack('!H', c) + h[off + 2:]

def ip_packet(p, marker):
    me, peer = ends[p['from']], ends['b' if p['from'] == 'a' else 'a']
    src = addr(me['ip6'] if v6 else me['ip4'])
    dst = addr(peer['ip6'] if v6 else peer['ip4'])
    num, seg = l4(p, src, dst)
    if v6:
        return struct.pack('!IHBB', (6 << 28) | marker, len(seg), num, 64) + src + dst + seg
    hdr = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(seg), marker, 0, 64, num, 0, src, dst)
    hdr = hdr[:10] + struct.pack('!H', csum(hdr)) + hdr[12:]
    return hdr + seg

def mac(s):
    return bytes(int(x, 16) for x in s.split(':'))

def marker_of(frame):
    if len(frame) < 14 + 20:
        return None
    et = struct.unpack('!H', frame[12:14])[0]
    if et == 0x0800 and not v6:
        return struct.unpack('!H', frame[18:20])[0]
    if et == 0x86dd and v6 and len(frame) >= 14 + 40:
        return struct.unpack('!I', frame[14:18])[0] & 0xfffff
    return None

def drain():
    for s in socks.values():
        while True:
            try:
                s.recv(65536)
            except BlockingIOError:
                break

results = []
wait = cfg.get('waitMs', 300) / 1000.0
sent = []
probes = []
def probe():
    if cfg.get('probe'):
        probes.append(subprocess.run(cfg['probe'], capture_output=True, text=True, timeout=20, check=True).stdout)
probe()
for i, p in enumerate(cfg['steps']):
    marker = 0x4000 + i
    me = ends[p['from']]
    other = 'b' if p['from'] == 'a' else 'a'
    frame = mac(me['nextHop']) + mac(me['mac']) + struct.pack('!H', 0x86dd if v6 else 0x0800) + ip_packet(p, marker)
    drain()
    sent.append((time.time_ns(), frame))
    socks[p['from']].send(frame)
    seen = False
    deadline = time.time() + wait
    while time.time() < deadline:
        r, _, _ = select.select([socks[other]], [], [], max(0.0, deadline - time.time()))
        if not r:
            continue
        try:
            data, sa = socks[other].recvfrom(65536)
        except BlockingIOError:
            continue
        if sa[2] != socket.PACKET_OUTGOING and marker_of(data) == marker:
            seen = True
            break
    results.append(seen)
    probe()
if cfg.get('pcap'):
    with open(cfg['pcap'], 'wb') as f:
        f.write(struct.pack('<IHHiIII', 0xa1b23c4d, 2, 4, 0, 0, 262144, 1))
        for ts, fr in sent:
            f.write(struct.pack('<IIII', ts // 1000000000, ts % 1000000000, len(fr), len(fr)) + fr)
if cfg.get('pcap') or cfg.get('probe'):
    print(json.dumps({'arrived': results, 'probes': probes}))
else:
    print(json.dumps(results))
`;
