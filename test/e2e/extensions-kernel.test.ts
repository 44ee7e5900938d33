// Match and target extensions against the real kernel: one rule set of
// counting rules (no verdicts, so every packet meets every rule in order)
// using every stateless match, and rate and history matches at rates slow
// enough that the kernel's jiffies cannot matter (1/hour, bursts of 1-3).
// The same frames are sent
//   - through a Linux router (iptables in a namespace), read back with
//     iptables-save -c;
//   - through flatwall's dataplane (the Firewall host bridging two veths),
//     read back as per-rule counters;
//   - through flatwall replay (the frames as the router received them).
// Every rule's packet count must agree across the three, IPv4 and IPv6.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { E2eLab, e2eUnavailable } from './harness';
import { run, runSync } from '../../src/lab/proc';
import { Topology, installTeardown } from '../../src/lab/topology';
import { parseIptables } from '../../src/rules/iptables/parse';
import { compile } from '../../src/rules/compile';
import { native } from '../../src/native';
import { writeFileSync } from 'node:fs';

const skip = e2eUnavailable(['python3', 'iptables-restore', 'ip6tables-restore', 'iptables-save', 'sysctl']);

// ---- frames ---------------------------------------------------------------

interface F {
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

interface Net { srcMac: string; dstMac: string; src4: (n: number) => string; dst4: string; src6: (n: number) => string; dst6: string }

function build(f: F, net: Net): Buffer {
  const pay = Buffer.alloc(f.pad ?? 0, 0x61);
  let l4: Buffer;
  let num: number;
  if (f.proto === 'tcp') {
    const syn = (f.flags ?? 0x02) & 0x02;
    l4 = Buffer.alloc(syn ? 24 : 20);
    l4.writeUInt16BE(40000 + f.src, 0);
    l4.writeUInt16BE(f.dport ?? 80, 2);
    l4[12] = (syn ? 6 : 5) << 4;
    l4[13] = f.flags ?? 0x02;
    l4.writeUInt16BE(64240, 14);
    if (syn) l4.set([2, 4, 0x05, 0xb4], 20); // MSS 1460
    l4 = Buffer.concat([l4, pay]);
    num = 6;
  } else if (f.proto === 'udp') {
    l4 = Buffer.concat([Buffer.alloc(8), pay]);
    l4.writeUInt16BE(50000 + f.src, 0);
    l4.writeUInt16BE(f.dport ?? 53, 2);
    l4.writeUInt16BE(l4.length, 4);
    num = 17;
  } else if (f.proto === 'icmp') {
    l4 = Buffer.concat([Buffer.from([f.v6 ? 128 : 8, 0, 0, 0, 0, 1, 0, 1]), pay]);
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

// The frames: TTLs, TOS bytes, sizes, protocols, several sources (rate and
// history matches key on them), IPv6 extension headers. No TTL below 2: a
// router drops those before FORWARD, flatwall (a bump in the wire) does not.
function frames4(): F[] {
  const out: F[] = [];
  const tos = [0, 0x10, 0x08, 0xb8, 0x01, 0x02, 0x28];
  let i = 0;
  for (const src of [1, 2, 3, 5]) {
    for (const proto of ['tcp', 'udp', 'icmp', 'udp', 'tcp'] as const) {
      out.push({ src, proto, ttl: [64, 2, 9, 200, 255][i % 5], tos: tos[i % tos.length], pad: [0, 50, 300][i % 3],
        flags: proto === 'tcp' ? [0x02, 0x10 | 0x40, 0x10 | 0x80, 0x02 | 0x40 | 0x80][i % 4] : undefined, dport: [53, 123, 80][i % 3] });
      i++;
    }
  }
  out.push({ src: 1, proto: 'esp', spi: 150 }, { src: 1, proto: 'esp', spi: 250 }, { src: 2, proto: 'ah', spi: 5 }, { src: 2, proto: 'ah', spi: 6 });
  return out;
}

function frames6(): F[] {
  const out: F[] = [];
  const exts: F['ext'][] = [[], ['hbh'], ['dst'], ['rt'], ['frag'], ['hbh', 'dst', 'rt'], ['hbh', 'frag'], ['dst', 'frag']];
  let i = 0;
  for (const src of [1, 2, 3, 5]) {
    for (const proto of ['tcp', 'udp', 'icmp', 'udp'] as const) {
      out.push({ v6: true, src, proto, ttl: [64, 2, 9, 200, 255][i % 5], tos: [0, 0xb8, 0x01][i % 3], pad: [0, 40, 200][i % 3],
        ext: exts[i % exts.length], fragId: 50 + i, dport: [53, 80][i % 2] });
      i++;
    }
  }
  out.push({ v6: true, src: 1, proto: 'esp', spi: 150 }, { v6: true, src: 2, proto: 'esp', spi: 300 });
  return out;
}

// ---- rules ----------------------------------------------------------------

function rules4(srcMac: string): string {
  return `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m ttl --ttl-eq 63
-A FORWARD -m ttl ! --ttl-eq 63
-A FORWARD -m ttl --ttl-lt 10
-A FORWARD -m ttl --ttl-gt 100
-A FORWARD -m length --length 0:100
-A FORWARD -m length ! --length 60:200
-A FORWARD -m tos --tos 0x10/0x3f
-A FORWARD -m tos --tos 0x08/0xff
-A FORWARD -m dscp --dscp 0x2e
-A FORWARD -m dscp ! --dscp 0x00
-A FORWARD -m ecn --ecn-ip-ect 1
-A FORWARD -p tcp -m ecn --ecn-tcp-ece
-A FORWARD -p tcp -m ecn ! --ecn-tcp-cwr
-A FORWARD -m pkttype --pkt-type unicast
-A FORWARD -m pkttype ! --pkt-type broadcast
-A FORWARD -m mac --mac-source ${srcMac}
-A FORWARD -m mac ! --mac-source 02:00:00:00:00:99
-A FORWARD -m addrtype --src-type UNICAST --dst-type UNICAST
-A FORWARD -m addrtype --dst-type LOCAL
-A FORWARD -m addrtype ! --src-type MULTICAST,BROADCAST
-A FORWARD -m helper --helper ftp
-A FORWARD -m helper ! --helper ftp
-A FORWARD -p esp -m esp --espspi 100:200
-A FORWARD -p ah -m ah --ahspi 5
-A FORWARD -m limit --limit 1/hour --limit-burst 3
-A FORWARD -p udp -m limit --limit 2/hour --limit-burst 2
-A FORWARD -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 2 --hashlimit-mode srcip --hashlimit-name hsrc
-A FORWARD -p udp -m hashlimit --hashlimit-above 1/hour --hashlimit-burst 1 --hashlimit-mode srcip,dstport --hashlimit-name hport
-A FORWARD -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 1 --hashlimit-mode srcip --hashlimit-srcmask 30 --hashlimit-name hmask
-A FORWARD -p tcp -m recent --set --name T --rsource
-A FORWARD -p udp -m recent --rcheck --name T --rsource
-A FORWARD -p udp -m recent --update --seconds 600 --hitcount 3 --name T --rsource
-A FORWARD -p icmp -m recent --remove --name T --rsource
-A FORWARD -m recent ! --rcheck --name T --mask 255.255.255.252 --rsource
-A FORWARD -m recent --rcheck --name T --rdest
-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1300
-A FORWARD -j NFLOG --nflog-group 3
COMMIT
`;
}

function rules6(): string {
  return `# Generated by ip6tables-save
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m hl --hl-eq 63
-A FORWARD -m hl ! --hl-eq 63
-A FORWARD -m hl --hl-lt 10
-A FORWARD -m hl --hl-gt 100
-A FORWARD -m length --length 0:100
-A FORWARD -m dscp --dscp 0x2e
-A FORWARD -m ecn --ecn-ip-ect 1
-A FORWARD -m ipv6header --header hop-by-hop --soft
-A FORWARD -m ipv6header --header hop-by-hop,ipv6-opts,ipv6-route
-A FORWARD -m ipv6header ! --header ipv6-frag --soft
-A FORWARD -m hbh
-A FORWARD -m hbh --hbh-len 8
-A FORWARD -m dst --dst-len 16
-A FORWARD -m rt --rt-type 2
-A FORWARD -m rt --rt-type 2 --rt-segsleft 0 --rt-len 24
-A FORWARD -m rt ! --rt-type 0
-A FORWARD -m frag
-A FORWARD -m frag --fragid 50:55
-A FORWARD -m frag --fragfirst
-A FORWARD -p esp -m esp --espspi 100:200
-A FORWARD -m addrtype --dst-type UNICAST
-A FORWARD -m limit --limit 1/hour --limit-burst 3
-A FORWARD -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 2 --hashlimit-mode srcip --hashlimit-srcmask 126 --hashlimit-name h6
-A FORWARD -p tcp -m recent --set --name T6 --rsource
-A FORWARD -p udp -m recent --update --seconds 600 --hitcount 2 --name T6 --rsource
COMMIT
`;
}

// ---- sending and counting -------------------------------------------------

const SEND_PY = String.raw`
import ctypes, json, os, socket, sys, time
cfg = json.load(sys.stdin)
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open('/var/run/netns/' + cfg['ns'], os.O_RDONLY)
if libc.setns(fd, 0x40000000) != 0:
    raise OSError(ctypes.get_errno(), 'setns')
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((cfg['dev'], 0))
for h in cfg['frames']:
    s.send(bytes.fromhex(h))
    time.sleep(0.002)
time.sleep(0.3)
print('sent', len(cfg['frames']))
`;

async function send(ns: string, dev: string, frames: Buffer[]): Promise<void> {
  await run('python3', ['-c', SEND_PY], { input: JSON.stringify({ ns, dev, frames: frames.map((f) => f.toString('hex')) }), timeoutMs: 60_000 });
}

/** Packet counts of the FORWARD rules, in order, from iptables-save -c. */
function kernelCounts(ns: string, v6: boolean): number[] {
  const out = runSync(v6 ? 'ip6tables-save' : 'iptables-save', ['-c', '-t', 'filter'], { ns, timeoutMs: 20_000 }).stdout;
  return out.split('\n').filter((l) => / -A FORWARD /.test(l)).map((l) => Number(/^\[(\d+):/.exec(l)![1]));
}

function silence(ns: string, dev: string): void {
  runSync('ip', ['-n', ns, 'addr', 'flush', 'dev', dev], { timeoutMs: 10_000 });
  runSync('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'], { ns, timeoutMs: 10_000 });
}

function table(rules: string, a: number[], b: number[], what: string): string {
  const lines = rules.split('\n').filter((l) => l.startsWith('-A FORWARD'));
  return lines.map((l, i) => `${a[i] === b[i] ? '  ' : '!!'} kernel=${a[i]} ${what}=${b[i]}  ${l}`).join('\n');
}

describe('match and target extensions: flatwall counts what the kernel counts', { skip, timeout: 300_000 }, () => {
  const kernel: Record<number, number[]> = {};
  const replay: Record<number, number[]> = {};
  const dataplane: Record<number, number[]> = {};
  const sent: Record<number, number> = {};
  let text4 = '';

  before(async () => {
    installTeardown(false);
    // The kernel: S -- F (router) -- R.
    const k = Topology.create('routed', 'fwxk');
    try {
      const F = k.firewall;
      const macs = { sa: k.mac(k.sender, 'sa'), fa: k.mac(F, 'fa'), ra: k.mac(k.receiver, 'ra') };
      text4 = rules4(macs.sa);
      runSync('iptables-restore', [], { ns: F, input: text4, timeoutMs: 20_000 });
      runSync('ip6tables-restore', [], { ns: F, input: rules6(), timeoutMs: 20_000 });
      runSync('sysctl', ['-q', '-w', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.fa.rp_filter=0'], { ns: F, timeoutMs: 10_000 });
      for (const [ip, m, dev] of [['10.0.2.1', macs.ra, 'fb'], ['fd00:2::1', macs.ra, 'fb']])
        runSync('ip', ['-n', F, 'neigh', 'replace', ip, 'lladdr', m, 'dev', dev, 'nud', 'permanent'], { timeoutMs: 10_000 });
      silence(k.sender, 'sa');
      silence(k.receiver, 'ra');
      const net: Net = { srcMac: macs.sa, dstMac: macs.fa, src4: (n) => `10.0.1.${n}`, dst4: '10.0.2.1', src6: (n) => `fd00:1::${n}`, dst6: 'fd00:2::1' };
      for (const fam of [4, 6] as const) {
        const fr = (fam === 4 ? frames4() : frames6()).map((f) => build(f, net));
        sent[fam] = fr.length;
        await send(k.sender, 'sa', fr);
        kernel[fam] = kernelCounts(F, fam === 6);
        // flatwall replay of exactly what the router received.
        const rs = parseIptables(fam === 4 ? text4 : rules6(), { file: `ext${fam}.rules` });
        const c = compile(rs);
        const ts = BigUint64Array.from(fr, (_, i) => 1_000_000_000_000n + BigInt(i) * 2_000_000n);
        const res = await native().replayFrames(c.buffer, Buffer.concat(fr), Uint32Array.from([0, ...fr.map((_, i) => fr.slice(0, i + 1).reduce((n, b) => n + b.length, 0))]), {
          ruleCount: c.rules.length, timestamps: ts,
        });
        replay[fam] = c.rules.filter((r) => r.chain === 'FORWARD' && r.rule).sort((a, b) => a.index - b.index).map((r) => res.hits[r.id]);
      }
    } finally {
      await k.destroy();
    }
    // flatwall's dataplane: S -- F (bump in the wire) -- R, the same frames
    // addressed for this topology. The MAC rule needs S's address, known
    // once the lab is up: the rules are rewritten and reloaded before the
    // first frame.
    const lab = await E2eLab.start({ rules: { 'v4.rules': rules4('02:00:00:00:00:01'), 'v6.rules': rules6() }, fwhost: true });
    try {
      const t = lab.topo;
      const macs = { sa: t.mac(t.sender, 'sa'), ra: t.mac(t.receiver, 'ra') };
      writeFileSync(lab.files['v4.rules'], rules4(macs.sa));
      const reloaded = JSON.parse(await lab.fw.ask('reload', (l) => l.startsWith('{"reloaded"'), 20_000, 'reload'));
      assert.equal(reloaded.reloaded, true, JSON.stringify(reloaded));
      silence(t.sender, 'sa');
      silence(t.receiver, 'ra');
      const net: Net = { srcMac: macs.sa, dstMac: macs.ra, src4: (n) => `10.0.0.${n}`, dst4: '10.0.0.200', src6: (n) => `fd00::${n}`, dst6: 'fd00::200' };
      const before = await lab.counters();
      for (const fam of [4, 6] as const) await send(t.sender, 'sa', (fam === 4 ? frames4() : frames6()).map((f) => build(f, net)));
      const after = await lab.counters();
      const file = (fam: 4 | 6) => lab.files[fam === 4 ? 'v4.rules' : 'v6.rules'];
      for (const fam of [4, 6] as const) {
        const lines = (fam === 4 ? rules4(macs.sa) : rules6()).split('\n');
        const fwd = lines.map((l, i) => (l.startsWith('-A FORWARD') ? i + 1 : 0)).filter(Boolean);
        dataplane[fam] = fwd.map((line) => {
          const a = after.rules.find((r) => r.file === file(fam) && r.line === line);
          const b = before.rules.find((r) => r.file === file(fam) && r.line === line);
          return (a?.packets ?? NaN) - (b?.packets ?? 0);
        });
      }
    } finally {
      await lab.close();
    }
  });

  for (const fam of [4, 6] as const) {
    test(`IPv${fam}: replay counts every rule as the kernel does`, (t) => {
      const k = kernel[fam];
      const r = replay[fam];
      assert.ok(k && r, 'both ran');
      const text = fam === 4 ? text4 : rules6();
      t.diagnostic(`${sent[fam]} frames\n${table(text, k, r, 'replay')}`);
      assert.equal(k.length, r.length);
      assert.deepEqual(r, k, `flatwall replay and the kernel disagree:\n${table(text, k, r, 'replay')}`);
      // Not trivially equal: the frames made most rules count something,
      // and some rules not everything.
      assert.ok(k.filter((n) => n > 0).length >= k.length * 0.6, `too few rules matched:\n${table(text, k, r, 'replay')}`);
      assert.ok(k.some((n) => n > 0 && n < sent[fam]), 'some rules matched only some frames');
    });
  }
  for (const fam of [4, 6] as const) {
    test(`IPv${fam}: flatwall's dataplane counts every rule as the kernel does`, () => {
      const k = kernel[fam];
      const d = dataplane[fam];
      assert.ok(k && d, 'both ran');
      const text = fam === 4 ? text4 : rules6();
      assert.deepEqual(d, k, `flatwall's dataplane and the kernel disagree:\n${table(text, k, d, 'dataplane')}`);
    });
  }
});
