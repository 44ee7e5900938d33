// Chain inlining against the iptables semantics: random rule sets with user
// chains, jumps, gotos, RETURNs, LOGs, negations and every match module,
// random packets, and the compiled table (scanned linearly) must agree with
// the chain-walking reference on the verdict and on every counted rule.
import test from 'node:test';
import assert from 'node:assert/strict';
import { parseIptables } from './iptables/parse';
import { compile } from './compile';
import { decodeTables } from './pack';
import { evalIptables, evalRecords, toRecPkt, type Pkt } from '../../test/reference';
import { printTable } from './iptables/print';

function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ADDRS = ['10.0.0.0/8', '10.1.0.0/16', '10.1.2.3/32', '192.168.0.0/24', '0.0.0.0/1', '172.16.0.0/12'];
const IFACES = ['eth0', 'eth1', 'eth+', 'wan0', 'veth+', 'lo'];
const PKT_IFACES = ['eth0', 'eth1', 'eth2', 'wan0', 'veth12', 'lo', 'x'];
const PORTS = ['80', '443', '1024:65535', ':1023', '22', '53', '8000:8080'];
const STATES = ['NEW', 'ESTABLISHED', 'RELATED', 'INVALID', 'UNTRACKED', 'ESTABLISHED,RELATED', 'NEW,INVALID'];
const FLAGS = ['SYN,ACK SYN', 'ALL NONE', 'FIN,SYN,RST,ACK SYN', 'ACK ACK', 'SYN SYN,ACK'];

function randomRuleset(r: () => number, nChains: number, nRules: number): string {
  const pick = <T>(a: T[]) => a[Math.floor(r() * a.length)];
  const bang = () => (r() < 0.25 ? '! ' : '');
  const chains = Array.from({ length: nChains }, (_, i) => `C${i}`);
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', `:FORWARD ${r() < 0.5 ? 'DROP' : 'ACCEPT'} [0:0]`, ':OUTPUT ACCEPT [0:0]'];
  for (const c of chains) lines.push(`:${c} - [0:0]`);
  const emit = (chain: string, idx: number) => {
    const parts: string[] = [];
    if (r() < 0.4) parts.push(`${bang()}-s ${pick(ADDRS)}`);
    if (r() < 0.3) parts.push(`${bang()}-d ${pick(ADDRS)}`);
    if (r() < 0.3) parts.push(`${bang()}-i ${pick(IFACES)}`);
    if (r() < 0.2) parts.push(`${bang()}-o ${pick(IFACES)}`);
    const pr = r();
    if (pr < 0.35) {
      parts.push('-p tcp');
      if (r() < 0.5) parts.push(`${bang()}--dport ${pick(PORTS)}`);
      if (r() < 0.3) parts.push(`${bang()}--sport ${pick(PORTS)}`);
      if (r() < 0.3) parts.push(`${bang()}--tcp-flags ${pick(FLAGS)}`);
      if (r() < 0.15) parts.push(`-m multiport ${bang()}--${pick(['sports', 'dports', 'ports'])} 22,80,1000:2000`);
    } else if (pr < 0.55) {
      parts.push('-p udp');
      if (r() < 0.5) parts.push(`${bang()}--dport ${pick(PORTS)}`);
    } else if (pr < 0.65) {
      parts.push('-p icmp');
      if (r() < 0.7) parts.push(`${bang()}--icmp-type ${pick(['8', '0', '3/3', 'destination-unreachable', 'any'])}`);
    } else if (pr < 0.7) {
      parts.push(`! -p tcp`);
    }
    if (r() < 0.2) parts.push(`-m conntrack ${bang()}--ctstate ${pick(STATES)}`);
    if (r() < 0.1) parts.push(`-m iprange ${bang()}--src-range 10.1.0.0-10.1.255.7`);
    // Targets: jumps only forward (to higher-numbered chains) so there are no loops.
    const later = chains.filter((c) => chain.startsWith('C') ? Number(c.slice(1)) > Number(chain.slice(1)) : true);
    const t = r();
    if (t < 0.15 && later.length) parts.push(`-j ${pick(later)}`);
    else if (t < 0.22 && later.length) parts.push(`-g ${pick(later)}`);
    else if (t < 0.32) parts.push('-j RETURN');
    else if (t < 0.42) parts.push('-j LOG --log-prefix "x "');
    else if (t < 0.47) parts.push('');
    else parts.push(`-j ${pick(['ACCEPT', 'DROP', 'DROP', 'ACCEPT'])}`);
    void idx;
    lines.push(`-A ${chain} ${parts.join(' ')}`.trimEnd());
  };
  for (let i = 0; i < nRules; i++) emit(pick(['FORWARD', 'FORWARD', 'INPUT', ...chains]), i);
  lines.push('COMMIT');
  return lines.join('\n');
}

function randomPacket(r: () => number): Pkt {
  const pick = <T>(a: T[]) => a[Math.floor(r() * a.length)];
  const addrs = [0x0a000001, 0x0a010000, 0x0a010203, 0x0a010204, 0xc0a80005, 0xc0a80100, 0x0affffff, 0xac100001, 0x80000000, 0x7fffffff, 0x0a0101ff, 0x0a010107, 0x0a010108];
  const proto = pick([6, 6, 17, 1, 47]);
  const ports = [0, 22, 53, 79, 80, 81, 443, 1023, 1024, 1500, 2000, 2001, 8000, 8080, 8081, 65535];
  return {
    src: pick(addrs), dst: pick(addrs), proto, sport: pick(ports), dport: pick(ports),
    iif: pick(PKT_IFACES), oif: pick(PKT_IFACES), icmpType: pick([0, 3, 8, 11]), icmpCode: pick([0, 1, 3]),
    tcpFlags: pick([0x02, 0x12, 0x10, 0x00, 0x3f, 0x11, 0x04]), ct: pick([1, 2, 4, 8, 16]), hasL4: r() < 0.9,
  };
}

test('compiled tables agree with the chain-walking reference on random rule sets', () => {
  let packets = 0;
  for (let seed = 1; seed <= 150; seed++) {
    const r = rng(seed);
    const text = randomRuleset(r, 1 + Math.floor(r() * 5), 5 + Math.floor(r() * 40));
    const rs = parseIptables(text, { file: `random-${seed}.rules` });
    const compiled = compile(rs);
    const internal = compiled.rules.find((x) => x.internal)!.id;
    const tables = decodeTables(compiled.buffer);
    const table = rs.tables[0];
    for (const hook of ['INPUT', 'FORWARD'] as const) {
      const records = tables.find((t) => t.hook === hook)!.records;
      const policyId = compiled.rules.find((x) => x.policy && x.chain === hook)!.id;
      for (let k = 0; k < 200; k++) {
        const p = randomPacket(r);
        const want = evalIptables(table, hook, p, policyId);
        const got = evalRecords(records, toRecPkt(p, (n) => compiled.ifaces.classOf(n), 4), internal);
        packets++;
        if (JSON.stringify(want) !== JSON.stringify(got)) {
          assert.fail(`seed ${seed} ${hook}: packet ${JSON.stringify(p)}\nexpected ${JSON.stringify(want)}\ngot      ${JSON.stringify(got)}\nrules:\n${[...printTable(table)].join('\n')}`);
        }
      }
    }
  }
  assert.ok(packets >= 60000);
});

test('RETURN from a jumped chain continues in the caller; from a goto it leaves the caller too', () => {
  const text = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
-A FORWARD -p tcp -j A
-A FORWARD -p tcp --dport 22 -j ACCEPT
-A A -s 10.0.0.0/8 -g B
-A A -p tcp --dport 80 -j ACCEPT
-A B -d 10.0.0.1/32 -j RETURN
-A B -j DROP
COMMIT`;
  const rs = parseIptables(text, { file: 't' });
  const c = compile(rs);
  const fwd = decodeTables(c.buffer).find((t) => t.hook === 'FORWARD')!.records;
  const internal = c.rules.find((x) => x.internal)!.id;
  const classOf = (n: string) => c.ifaces.classOf(n);
  const base: Pkt = { src: 0x0b000001, dst: 0x0a000001, proto: 6, sport: 1000, dport: 22, iif: 'a', oif: 'b', icmpType: 0, icmpCode: 0, tcpFlags: 2, ct: 2, hasL4: true };
  // Not from 10/8: A's second rule misses, back in FORWARD, port 22 accepted.
  assert.equal(evalRecords(fwd, toRecPkt(base, classOf, 4), internal).verdict, 'ACCEPT');
  // From 10/8 to 10.0.0.1: goto B, RETURN leaves A as well, so port 22 ACCEPT in FORWARD.
  assert.equal(evalRecords(fwd, toRecPkt({ ...base, src: 0x0a000002 }, classOf, 4), internal).verdict, 'ACCEPT');
  // From 10/8 to port 80 elsewhere: B drops before A's ACCEPT is reached.
  assert.equal(evalRecords(fwd, toRecPkt({ ...base, src: 0x0a000002, dst: 0x0b000000, dport: 80 }, classOf, 4), internal).verdict, 'DROP');
});

test('a chain loop is an error at the jump that closes it', () => {
  const text = `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n-A FORWARD -j A\n-A A -j B\n-A B -p tcp -j A\nCOMMIT\n`;
  assert.throws(() => compile(parseIptables(text, { file: 'loop.rules' })), /loop\.rules:9:16: chain loop: FORWARD -> A -> B -> A/);
});

test('expansion past --max-records is an error naming the bound', () => {
  // Each level doubles the inlined copies of the leaf chain.
  let text = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n';
  for (let i = 0; i < 12; i++) text += `:L${i} - [0:0]\n`;
  text += '-A FORWARD -j L0\n';
  for (let i = 0; i < 11; i++) text += `-A L${i} -s 10.0.0.0/8 -j L${i + 1}\n-A L${i} -d 10.0.0.0/8 -j L${i + 1}\n`;
  text += '-A L11 -j ACCEPT\nCOMMIT\n';
  const rs = parseIptables(text, { file: 'deep.rules' });
  assert.throws(() => compile(rs, { maxRecords: 1000 }), /rule expansion exceeds 1000 records in the IPv4 FORWARD table/);
  assert.ok(compile(rs, { maxRecords: 100000 }).stats.records > 1000);
});

test('negations become complements, disjoint and covering', () => {
  const rs = parseIptables('*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD ! -s 10.0.0.0/8 -p tcp ! --dport 80 -j DROP\nCOMMIT\n', { file: 'n' });
  const fwd = decodeTables(compile(rs).buffer).find((t) => t.hook === 'FORWARD')!.records;
  // 2 source ranges x 2 port ranges, then the policy.
  assert.equal(fwd.length, 5);
  assert.deepEqual(fwd.slice(0, 4).map((x) => [x.srcLo, x.srcHi, x.dportLo, x.dportHi]), [
    [0, 0x09ffffff, 0, 79], [0, 0x09ffffff, 81, 65535], [0x0b000000, 0xffffffff, 0, 79], [0x0b000000, 0xffffffff, 81, 65535],
  ]);
});
