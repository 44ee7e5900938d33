// Host mode (flatwall run/replay --host, native/dataplane/host.h): the
// --host values, iptables' refusal of -o in INPUT and -i in OUTPUT, and a
// real ufw rule set (test/corpus/ufw) run unchanged through `flatwall
// replay --host`: SSH to the host accepted by ufw-user-input (and rate
// limited by its recent rules), other ports to the host dropped by the
// INPUT policy, the host's own connections through OUTPUT, forwarded
// traffic judged by FORWARD, broadcasts by addrtype's BROADCAST of the
// host's prefix. And the TTL an INPUT/OUTPUT rule sees: not decremented.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseIptables } from '../rules/iptables/parse';
import { parseNative } from '../rules/native-format';
import { parseIPv4, parseIPv6 } from '../rules/address';
import { parseRuleCommand } from '../control/ruleops';
import { writePcap } from '../io/pcap';
import { frame, type FrameSpec } from '../../test/frames';
import { hostAddrs } from './host-options';
import { UsageError } from './args';

const CLI = join(__dirname, 'main.js');
const CORPUS = join(__dirname, '..', '..', '..', 'test', 'corpus', 'ufw');

test('--host: ADDR/PLEN lists, repeatable, canonical; bad values are usage errors', () => {
  assert.deepEqual(hostAddrs({}), []);
  assert.deepEqual(hostAddrs({ host: ['10.0.0.2/24,fd00::2/64', '192.0.2.7', '2001:DB8:0::1'] }),
    ['10.0.0.2/24', 'fd00::2/64', '192.0.2.7/32', '2001:db8::1/128']);
  assert.deepEqual(hostAddrs({ host: ['10.0.0.2/24', '10.0.0.2/24'] }), ['10.0.0.2/24']);
  for (const bad of ['10.0.0.2/33', 'fd00::2/129', 'eth0', '10.0.0.2/', '10.0.0.2/24/1', '', '10.0.0.2,,']) {
    assert.throws(() => hostAddrs({ host: [bad] }), UsageError, bad);
  }
});

test('-o in INPUT and -i in OUTPUT are refused as iptables-restore refuses them; user chains may have them', () => {
  const hdr = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:X - [0:0]\n';
  const parse = (body: string) => parseIptables(`${hdr}${body}\nCOMMIT\n`, { file: 'h.rules' });
  assert.throws(() => parse('-A INPUT -o eth0 -j ACCEPT'), /h\.rules:6:10: can't use -o with INPUT/);
  assert.throws(() => parse('-A INPUT ! --out-interface eth+ -j ACCEPT'), /can't use -o with INPUT/);
  assert.throws(() => parse('-I INPUT 1 -p tcp -o + -j DROP'), /can't use -o with INPUT/);
  assert.throws(() => parse('-A OUTPUT -i eth0 -j ACCEPT'), /h\.rules:6:11: can't use -i with OUTPUT/);
  // Allowed: -i in INPUT, -o in OUTPUT, both in FORWARD and in user chains.
  const rs = parse('-A INPUT -i eth0 -j X\n-A OUTPUT -o eth1 -j X\n-A FORWARD -i eth0 -o eth1 -j ACCEPT\n-A X -i eth0 -o eth1 -j DROP');
  assert.equal(rs.tables[0].chains.get('X')!.rules.length, 1);
  // The native format goes through the same check, and so does ctl insert.
  assert.throws(() => parseNative(JSON.stringify({ chains: { INPUT: { rules: [{ out: 'eth0', action: 'DROP' }] } } }), 'h.json'),
    /can't use -o with INPUT/);
  parseNative(JSON.stringify({ chains: { INPUT: { rules: [{ in: 'eth0', action: 'DROP' }] } } }), 'h.json');
  assert.throws(() => parseRuleCommand('-I OUTPUT 1 -i eth0 -j DROP', rs), /can't use -i with OUTPUT/);
  assert.equal(parseRuleCommand('-I OUTPUT 1 -o eth0 -j DROP', rs).op, 'insert');
});

// The ufw rule set of test/corpus/ufw/user-rules.{v4,v6} (ufw enable;
// allow 22/tcp; limit ssh; allow from 192.0.2.0/24 to any port 80; deny 23;
// allow from 2001:db8::/32 to any port 443), on a host with 203.0.113.2/24
// and 2001:db8:1::2/64.
const HOST4 = '203.0.113.2';
const HOST6 = '2001:db8:1::2';
const ip4 = (s: string) => parseIPv4(s)!;
const ip6 = (s: string) => parseIPv6(s)!;

interface Out { frame: number; verdict: string; hook?: string; chain?: string; policy?: string; line?: number; ctstate?: string }

function replay(dir: string, frames: Buffer[], extra: string[]): { summary: Record<string, any>; frames: Out[] } {
  const pcap = join(dir, 'in.pcap');
  writeFileSync(pcap, writePcap(frames.map((data, i) => ({ tsSec: 1_700_000_000, tsFrac: i * 1000, origLen: data.length, data }))));
  const args = [CLI, 'replay', '--json', '-r', join(CORPUS, 'user-rules.v4'), '-r', join(CORPUS, 'user-rules.v6'), '-p', pcap, ...extra];
  return JSON.parse(execFileSync(process.execPath, args, { encoding: 'utf8' }));
}

test('a real ufw rule set runs unchanged in host mode (flatwall replay --host)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fw-host-'));
  try {
    const peer = ip4('198.51.100.9');
    const tcp = (src: number, dst: number, sport: number, dport: number, tcpFlags = 0x02): FrameSpec =>
      ({ family: 4, src, dst, proto: 6, sport, dport, tcpFlags });
    const cases: Array<[FrameSpec, Partial<Out>]> = [
      // 1: SSH to the host: ufw-user-input -> ufw-user-limit-accept.
      [tcp(peer, ip4(HOST4), 40000, 22), { verdict: 'ACCEPT', hook: 'INPUT', chain: 'ufw-user-limit-accept', ctstate: 'NEW' }],
      // 2: its SYN-ACK, from the host: OUTPUT, ESTABLISHED.
      [tcp(ip4(HOST4), peer, 22, 40000, 0x12), { verdict: 'ACCEPT', hook: 'OUTPUT', chain: 'ufw-before-output', ctstate: 'ESTABLISHED' }],
      // 3: another port of the host: nothing allows it, the INPUT policy drops.
      [tcp(peer, ip4(HOST4), 40001, 8080), { verdict: 'DROP', hook: 'INPUT', policy: 'DROP', chain: 'INPUT' }],
      // 4: deny 23 (udp).
      [{ family: 4, src: peer, dst: ip4(HOST4), proto: 17, sport: 5000, dport: 23 }, { verdict: 'DROP', hook: 'INPUT', chain: 'ufw-user-input', line: 105 }],
      // 5: port 80 only from 192.0.2.0/24.
      [tcp(ip4('192.0.2.5'), ip4(HOST4), 40002, 80), { verdict: 'ACCEPT', hook: 'INPUT', chain: 'ufw-user-input', line: 103 }],
      [tcp(peer, ip4(HOST4), 40003, 80), { verdict: 'DROP', hook: 'INPUT', policy: 'DROP' }],
      // 7: the host's own connection out: ufw-track-output accepts NEW tcp.
      [tcp(ip4(HOST4), peer, 50000, 443), { verdict: 'ACCEPT', hook: 'OUTPUT', chain: 'ufw-track-output' }],
      // 8, 9: forwarded: FORWARD's policy drops a SYN, ufw-before-forward accepts an echo request.
      [tcp(peer, ip4('10.1.2.3'), 40004, 22), { verdict: 'DROP', hook: 'FORWARD', policy: 'DROP', chain: 'FORWARD' }],
      [{ family: 4, src: peer, dst: ip4('10.1.2.3'), proto: 1, icmpType: 8 }, { verdict: 'ACCEPT', hook: 'FORWARD', chain: 'ufw-before-forward' }],
      // 10: the broadcast of the host's /24: INPUT, and addrtype BROADCAST in ufw-after-input.
      [{ family: 4, src: ip4('203.0.113.9'), dst: ip4('203.0.113.255'), proto: 17, sport: 5000, dport: 9999 },
        { verdict: 'DROP', hook: 'INPUT', chain: 'ufw-skip-to-policy-input' }],
      // 11: IPv6 SSH to the host.
      [{ family: 6, src: ip6('2001:db8:2::9'), dst: ip6(HOST6), proto: 6, sport: 40000, dport: 22, tcpFlags: 0x02 },
        { verdict: 'ACCEPT', hook: 'INPUT', chain: 'ufw6-user-limit-accept' }],
      // 12: IPv6 443 only from 2001:db8::/32: from elsewhere the INPUT policy drops.
      [{ family: 6, src: ip6('2a00::9'), dst: ip6(HOST6), proto: 6, sport: 40001, dport: 443, tcpFlags: 0x02 }, { verdict: 'DROP', hook: 'INPUT', policy: 'DROP' }],
    ];
    const frames = cases.map(([f]) => frame(f));
    const out = replay(dir, frames, ['--host', `${HOST4}/24,${HOST6}/64`]);
    cases.forEach(([, want], i) => {
      const got = out.frames[i];
      for (const [k, v] of Object.entries(want)) assert.equal((got as unknown as Record<string, unknown>)[k], v, `frame ${i + 1} ${k}: ${JSON.stringify(got)}`);
    });
    assert.deepEqual(out.summary.hooks, { INPUT: 8, FORWARD: 2, OUTPUT: 2 });

    // Without --host the same rules are a bridge's: everything is FORWARD's, SSH to the host dropped.
    const bridge = replay(dir, frames, []);
    assert.equal(bridge.frames[0].verdict, 'DROP');
    assert.equal(bridge.frames[0].chain, 'FORWARD');
    assert.equal(bridge.frames[0].hook, undefined);
    assert.equal(bridge.summary.hooks, undefined);

    // ufw's "limit ssh": the 6th new connection from one address within 30 s is rejected.
    const syns = Array.from({ length: 8 }, (_, k) => frame(tcp(ip4('198.51.100.20'), ip4(HOST4), 41000 + k, 22)));
    const lim = replay(dir, syns, ['--host', `${HOST4}/24`]);
    assert.deepEqual(lim.frames.map((f) => f.verdict), ['ACCEPT', 'ACCEPT', 'ACCEPT', 'ACCEPT', 'ACCEPT', 'REJECT', 'REJECT', 'REJECT']);
    assert.equal(lim.frames[5].chain, 'ufw-user-limit');

    // The text output names the hook of every frame, and the totals.
    const pcap = join(dir, 'in.pcap');
    const text = execFileSync(process.execPath, [CLI, 'replay', '-r', join(CORPUS, 'user-rules.v4'), '-p', pcap, '--host', HOST4], { encoding: 'utf8' });
    assert.match(text, /^ {6}1 {2}ACCEPT {4}NEW {9}INPUT {4}.*user-rules\.v4:\d+ ufw-user-limit-accept#1$/m);
    assert.match(text, /hooks: 8 INPUT, 0 FORWARD, 0 OUTPUT \(host 203\.0\.113\.2\/32\)/);
    const bad = spawnSync(process.execPath, [CLI, 'replay', '-r', join(CORPUS, 'user-rules.v4'), '-p', pcap, '--host', '203.0.113.2/40'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /prefix length must be 0\.\.32/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('host mode: the TTL and hop limit INPUT and OUTPUT rules see are not decremented (FORWARD\'s are)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fw-host-ttl-'));
  try {
    const rules = join(dir, 'ttl.rules');
    const head = '*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n';
    writeFileSync(rules, `${head}-A INPUT -m ttl --ttl-eq 64 -j ACCEPT\n-A FORWARD -m ttl --ttl-eq 63 -j ACCEPT\n-A OUTPUT -m ttl --ttl-eq 64 -j ACCEPT\nCOMMIT\n`);
    writeFileSync(join(dir, 'ttl6.rules'), `${head}-A INPUT -m hl --hl-eq 64 -j ACCEPT\n-A FORWARD -m hl --hl-eq 63 -j ACCEPT\nCOMMIT\n`);
    const f = [
      frame({ family: 4, src: ip4('10.0.0.1'), dst: ip4('10.0.0.2'), proto: 17, sport: 1, dport: 2 }),
      frame({ family: 4, src: ip4('10.0.0.2'), dst: ip4('10.0.0.1'), proto: 17, sport: 2, dport: 1 }),
      frame({ family: 4, src: ip4('10.0.0.1'), dst: ip4('10.0.0.3'), proto: 17, sport: 1, dport: 2 }),
      frame({ family: 6, src: ip6('fd00::1'), dst: ip6('fd00::2'), proto: 17, sport: 1, dport: 2 }),
      frame({ family: 6, src: ip6('fd00::1'), dst: ip6('fd00::3'), proto: 17, sport: 1, dport: 2 }),
    ];
    const pcap = join(dir, 'in.pcap');
    writeFileSync(pcap, writePcap(f.map((data, i) => ({ tsSec: i, tsFrac: 0, origLen: data.length, data }))));
    const out = JSON.parse(execFileSync(process.execPath, [CLI, 'replay', '--json', '-r', rules, '-r', join(dir, 'ttl6.rules'), '-p', pcap,
      '--host', '10.0.0.2/24', '--host', 'fd00::2/64'], { encoding: 'utf8' }));
    assert.deepEqual(out.frames.map((x: Out) => [x.hook, x.verdict]),
      [['INPUT', 'ACCEPT'], ['OUTPUT', 'ACCEPT'], ['FORWARD', 'ACCEPT'], ['INPUT', 'ACCEPT'], ['FORWARD', 'ACCEPT']]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('host mode: a cut-short L4 header is hot-dropped at the first L4 rule of the hook\'s own chain', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fw-host-hot-'));
  try {
    const rules = join(dir, 'hot.rules');
    // INPUT's first L4 rule hot-drops; FORWARD has none, so its policy decides.
    writeFileSync(rules, '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n' +
      '-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A FORWARD -s 192.0.2.0/24 -j DROP\nCOMMIT\n');
    const cut = (dst: string) => frame({ family: 4, src: ip4('10.0.0.1'), dst: ip4(dst), proto: 6, sport: 1, dport: 22, truncateL4: 3 });
    const pcap = join(dir, 'in.pcap');
    const f = [cut('10.0.0.2'), cut('10.0.0.3')];
    writeFileSync(pcap, writePcap(f.map((data, i) => ({ tsSec: i, tsFrac: 0, origLen: data.length, data }))));
    const out = JSON.parse(execFileSync(process.execPath, [CLI, 'replay', '--json', '-r', rules, '-p', pcap, '--host', '10.0.0.2/24'], { encoding: 'utf8' }));
    assert.deepEqual(out.frames.map((x: Out) => [x.hook, x.verdict]), [['INPUT', 'DROP'], ['FORWARD', 'ACCEPT']]);
    assert.equal(out.summary.hotDropped, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
