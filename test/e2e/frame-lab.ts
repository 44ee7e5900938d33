// Raw frames for the kernel differential tests: built byte for byte (L4
// checksums included), sent from a namespace through an AF_PACKET socket,
// and the kernel's per-rule packet counters read back.
import { Background, run, runSync } from '../../src/lab/proc';
import { Topology } from '../../src/lab/topology';

// ---- frames ---------------------------------------------------------------

export interface F {
  v6?: boolean;
  src: number; // last octet / last group of the sender subnet
  proto: 'tcp' | 'udp' | 'icmp' | 'esp' | 'ah';
  ttl?: number;
  tos?: number;
  flags?: number; // TCP
  dport?: number;
  spi?: number;
  pad?: number; // payload bytes
  ext?: Array<'hbh' | 'dst' | 'rt' | 'frag'>; // IPv6 extension headers, in order
  fragId?: number;
  icmpId?: number; // echo identifier (default 1)
  sport?: number;  // TCP/UDP source port (default 40000/50000 + src)
}

const mac = (s: string) => Buffer.from(s.split(':').map((h) => parseInt(h, 16)));
function sum16(b: Buffer, init = 0): number {
  let s = init;
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (i + 1 < b.length ? b[i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
const fold = (s: number) => ~s & 0xffff;

function ip4(a: string): Buffer {
  return Buffer.from(a.split('.').map(Number));
}
function ip6(a: string): Buffer {
  const [h, t] = a.split('::');
  const hs = h ? h.split(':') : [];
  const ts = t !== undefined && t !== '' ? t.split(':') : [];
  const groups = [...hs, ...Array(8 - hs.length - ts.length).fill('0'), ...ts];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), 2 * i));
  return b;
}

export interface Net { srcMac: string; dstMac: string; src4: (n: number) => string; dst4: string; src6: (n: number) => string; dst6: string }

export function build(f: F, net: Net): Buffer {
  const pay = Buffer.alloc(f.pad ?? 0, 0x61);
  let l4: Buffer;
  let num: number;
  if (f.proto === 'tcp') {
    const syn = (f.flags ?? 0x02) & 0x02;
    l4 = Buffer.alloc(syn ? 24 : 20);
    l4.writeUInt16BE(f.sport ?? 40000 + f.src, 0);
    l4.writeUInt16BE(f.dport ?? 80, 2);
    l4[12] = (syn ? 6 : 5) << 4;
    l4[13] = f.flags ?? 0x02;
    l4.writeUInt16BE(64240, 14);
    if (syn) l4.set([2, 4, 0x05, 0xb4], 20); // MSS 1460
    l4 = Buffer.concat([l4, pay]);
    num = 6;
  } else if (f.proto === 'udp') {
    l4 = Buffer.concat([Buffer.alloc(8), pay]);
    l4.writeUInt16BE(f.sport ?? 50000 + f.src, 0);
    l4.writeUInt16BE(f.dport ?? 53, 2);
    l4.writeUInt16BE(l4.length, 4);
    num = 17;
  } else if (f.proto === 'icmp') {
    const id = f.icmpId ?? 1;
    l4 = Buffer.concat([Buffer.from([f.v6 ? 128 : 8, 0, 0, 0, id >> 8, id & 255, 0, 1]), pay]);
    num = f.v6 ? 58 : 1;
  } else if (f.proto === 'esp') {
    l4 = Buffer.concat([Buffer.alloc(8), pay]);
    l4.writeUInt32BE(f.spi ?? 1, 0);
    num = 50;
  } else {
    l4 = Buffer.concat([Buffer.alloc(12), pay]);
    l4[0] = 59, l4[1] = 1; // next header none, length (1 + 2) * 4 = 12
    l4.writeUInt32BE(f.spi ?? 1, 4);
    num = 51;
  }
  const src = f.v6 ? ip6(net.src6(f.src)) : ip4(net.src4(f.src));
  const dst = f.v6 ? ip6(net.dst6) : ip4(net.dst4);
  if (num === 6 || num === 17 || num === 58 || (num === 1)) {
    const off = num === 6 ? 16 : num === 17 ? 6 : 2;
    let s: number;
    if (num === 1) s = sum16(l4);
    else {
      const ph = f.v6 ? Buffer.concat([src, dst, Buffer.from([0, 0, l4.length >> 8, l4.length & 255, 0, 0, 0, num])])
        : Buffer.concat([src, dst, Buffer.from([0, num, l4.length >> 8, l4.length & 255])]);
      s = sum16(l4, sum16(ph));
    }
    let c = fold(s);
    if (num === 17 && c === 0) c = 0xffff;
    l4.writeUInt16BE(c, off);
  }
  const eth = Buffer.concat([mac(net.dstMac), mac(net.srcMac), Buffer.from(f.v6 ? [0x86, 0xdd] : [0x08, 0x00])]);
  if (!f.v6) {
    const h = Buffer.alloc(20);
    h[0] = 0x45, h[1] = f.tos ?? 0;
    h.writeUInt16BE(20 + l4.length, 2);
    h.writeUInt16BE(f.src * 100 + (f.pad ?? 0), 4);
    h[8] = f.ttl ?? 64, h[9] = num;
    src.copy(h, 12), dst.copy(h, 16);
    h.writeUInt16BE(fold(sum16(h)), 10);
    return Buffer.concat([eth, h, l4]);
  }
  // IPv6: extension headers in order, the last one's next header = num.
  const exts = f.ext ?? [];
  const codes: Record<string, number> = { hbh: 0, dst: 60, rt: 43, frag: 44 };
  const parts: Buffer[] = [];
  for (let i = 0; i < exts.length; i++) {
    const next = i + 1 < exts.length ? codes[exts[i + 1]] : num;
    const e = exts[i];
    if (e === 'frag') {
      const b = Buffer.alloc(8);
      b[0] = next;
      b.writeUInt32BE(f.fragId ?? 7, 4); // offset 0, M 0: an atomic fragment
      parts.push(b);
    } else if (e === 'rt') {
      // Type 2 (mobility), segments left 0: routers pass it on.
      const b = Buffer.alloc(24);
      b[0] = next, b[1] = 2, b[2] = 2, b[3] = 0;
      ip6(net.dst6).copy(b, 8);
      parts.push(b);
    } else {
      const b = Buffer.alloc(e === 'dst' ? 16 : 8);
      b[0] = next, b[1] = b.length / 8 - 1, b[2] = 1, b[3] = b.length - 4; // one PadN
      parts.push(b);
    }
  }
  const body = Buffer.concat([...parts, l4]);
  const h = Buffer.alloc(40);
  h[0] = 0x60 | ((f.tos ?? 0) >> 4), h[1] = ((f.tos ?? 0) & 15) << 4;
  h.writeUInt16BE(body.length, 4);
  h[6] = exts.length ? codes[exts[0]] : num;
  h[7] = f.ttl ?? 64;
  src.copy(h, 8), dst.copy(h, 24);
  return Buffer.concat([eth, h, body]);
}

// ---- sending and counting -------------------------------------------------

const SEND_PY = String.raw`
import ctypes, json, os, socket, sys, time
cfg = json.load(sys.stdin)
libc = ctypes.CDLL(None, use_errno=True)
socks = {}
for ns, dev in cfg['ends']:
    fd = os.open('/var/run/netns/' + ns, os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:
        raise OSError(ctypes.get_errno(), 'setns')
    os.close(fd)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((dev, 0))
    socks[ns + '/' + dev] = s
for end, h in cfg['frames']:
    socks[end].send(bytes.fromhex(h))
    time.sleep(0.002)
time.sleep(0.3)
print('sent', len(cfg['frames']))
`;

/** Sends `frames` in order from namespace `ns`'s `dev`. */
export async function send(ns: string, dev: string, frames: Buffer[]): Promise<void> {
  await sendFrom(frames.map((f) => ({ ns, dev, frame: f })));
}

/** Sends each frame from its own end, in order, through one process. */
export async function sendFrom(frames: Array<{ ns: string; dev: string; frame: Buffer }>): Promise<void> {
  const ends = [...new Set(frames.map((f) => `${f.ns}/${f.dev}`))].map((e) => e.split('/'));
  const input = JSON.stringify({ ends, frames: frames.map((f) => [`${f.ns}/${f.dev}`, f.frame.toString('hex')]) });
  await run('python3', ['-c', SEND_PY], { input, timeoutMs: 120_000 });
}

/** Packet counts of the FORWARD rules, in order, from iptables-save -c. */
export function kernelCounts(ns: string, v6: boolean): number[] {
  const out = runSync(v6 ? 'ip6tables-save' : 'iptables-save', ['-c', '-t', 'filter'], { ns, timeoutMs: 20_000 }).stdout;
  return out.split('\n').filter((l) => / -A FORWARD /.test(l)).map((l) => Number(/^\[(\d+):/.exec(l)![1]));
}

/**
 * The kernel side of the differential tests: S -- F (a Linux router) -- R,
 * the MACs, and the addresses frames from S to R use there.
 */
export function kernelRouter(tag: string): { k: Topology; F: string; macs: { sa: string; fa: string; ra: string }; net: Net } {
  const k = Topology.create('routed', tag);
  const F = k.firewall;
  const macs = { sa: k.mac(k.sender, 'sa'), fa: k.mac(F, 'fa'), ra: k.mac(k.receiver, 'ra') };
  const net: Net = { srcMac: macs.sa, dstMac: macs.fa, src4: (n) => `10.0.1.${n}`, dst4: '10.0.2.1', src6: (n) => `fd00:1::${n}`, dst6: 'fd00:2::1' };
  return { k, F, macs, net };
}

/**
 * The router ready for hand-made frames once its rules are loaded: sources
 * from anywhere on S's side (no reverse-path filter), R's neighbour entries
 * fixed (R is silenced and answers no neighbour solicitation), both end
 * hosts silenced.
 */
export function routeFrames(r: ReturnType<typeof kernelRouter>): void {
  runSync('sysctl', ['-q', '-w', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.fa.rp_filter=0'], { ns: r.F, timeoutMs: 10_000 });
  for (const ip of ['10.0.2.1', 'fd00:2::1']) {
    runSync('ip', ['-n', r.F, 'neigh', 'replace', ip, 'lladdr', r.macs.ra, 'dev', 'fb', 'nud', 'permanent'], { timeoutMs: 10_000 });
  }
  silence(r.k.sender, 'sa');
  silence(r.k.receiver, 'ra');
}

/** replayFrames' offsets of `frames` laid end to end: [0, end of frame 1, ...]. */
export function frameOffsets(frames: Buffer[]): Uint32Array {
  const offsets = new Uint32Array(frames.length + 1);
  frames.forEach((f, i) => (offsets[i + 1] = offsets[i] + f.length));
  return offsets;
}

/**
 * The bump-in-the-wire lab's end hosts silenced (so that their own chatter
 * does not reach the counted rules) and `bnet` with their MACs: the
 * addresses hand-made frames through flatwall use.
 */
export async function silencedBridge(t: Topology, bnet: Net): Promise<Net> {
  const net: Net = { ...bnet, srcMac: t.mac(t.sender, 'sa'), dstMac: t.mac(t.receiver, 'ra') };
  silence(t.sender, 'sa');
  silence(t.receiver, 'ra');
  await new Promise((r) => setTimeout(r, 200));
  return net;
}

export function silence(ns: string, dev: string): void {
  runSync('ip', ['-n', ns, 'addr', 'flush', 'dev', dev], { timeoutMs: 10_000 });
  runSync('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'], { ns, timeoutMs: 10_000 });
}


/** Per chain, the packet counts of its rules in order, and of each built-in policy, from iptables-save -c (-t table). */
export function kernelChainCounts(ns: string, v6: boolean, table = 'filter'): { rules: Map<string, number[]>; policies: Map<string, number> } {
  const out = runSync(v6 ? 'ip6tables-save' : 'iptables-save', ['-c', '-t', table], { ns, timeoutMs: 20_000 }).stdout;
  const rules = new Map<string, number[]>();
  const policies = new Map<string, number>();
  for (const l of out.split('\n')) {
    const p = /^:(\S+) (ACCEPT|DROP) \[(\d+):/.exec(l);
    if (p) policies.set(p[1], Number(p[3]));
    const r = /^\[(\d+):\d+\] -A (\S+) /.exec(l);
    if (r) {
      if (!rules.has(r[2])) rules.set(r[2], []);
      rules.get(r[2])!.push(Number(r[1]));
    }
  }
  return { rules, policies };
}

const SNIFF_PY = String.raw`
import select, signal, socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((sys.argv[1], 0))
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
print('ready', flush=True)
while True:
    r, _, _ = select.select([s], [], [], 0.5)
    if r:
        f, addr = s.recvfrom(65535)
        if addr[2] != socket.PACKET_OUTGOING:
            print(f.hex(), flush=True)
`;

/** Captures every frame arriving on `dev` in `ns` until stop(). */
export async function sniff(ns: string, dev: string): Promise<{ stop(): Promise<Buffer[]> }> {
  const p = new Background('sniff', 'python3', ['-c', SNIFF_PY, dev], { ns, maxLifetimeMs: 300_000 });
  await p.waitFor((l) => l === 'ready', 10_000, 'sniffer ready');
  return {
    async stop() {
      await new Promise((r) => setTimeout(r, 200));
      await p.stop('SIGTERM', 5000);
      return p.lines.filter((l) => /^[0-9a-f]+$/.test(l)).map((l) => Buffer.from(l, 'hex'));
    },
  };
}

/** The MSS option of each IPv4 TCP SYN among `frames`, and whether its TCP checksum is right. */
export function synMss(frames: Buffer[]): Array<{ mss: number; checksumOk: boolean }> {
  const out: Array<{ mss: number; checksumOk: boolean }> = [];
  for (const f of frames) {
    if (f.length < 54 || f.readUInt16BE(12) !== 0x0800 || f[23] !== 6) continue;
    const ihl = (f[14] & 15) * 4;
    const t = 14 + ihl;
    if (!(f[t + 13] & 0x02)) continue;
    const doff = (f[t + 12] >> 4) * 4;
    let mss = -1;
    for (let i = 20; i + 4 <= doff; i += f[t + i] <= 1 ? 1 : f[t + i + 1] || 1) if (f[t + i] === 2 && f[t + i + 1] === 4) mss = f.readUInt16BE(t + i + 2);
    const len = f.readUInt16BE(16) - ihl;
    const ph = Buffer.concat([f.subarray(26, 34), Buffer.from([0, 6, len >> 8, len & 255])]);
    let s = 0;
    for (const b of [ph, f.subarray(t, t + len)]) for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (i + 1 < b.length ? b[i + 1] : 0);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    out.push({ mss, checksumOk: s === 0xffff });
  }
  return out;
}
