// The raw table: what parses (NOTRACK, CT, its chains), what the kernel
// refuses and so do we (with file:line:col), save and list forms as
// iptables prints them, and flatwall replay through raw PREROUTING / OUTPUT
// before conntrack (the kernel differential is test/e2e/raw-kernel.test.ts).
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseIptables } from './parse';
import { printTable } from './print';
import { listColumns } from './list';
import { compile } from '../compile';
import { ruleKeys } from '../../control/counters';
import { writePcap } from '../../io/pcap';
import { frame } from '../../../test/frames';
import { parseIPv4 } from '../address';

const CLI = join(__dirname, '..', '..', 'cli', 'main.js');
const RAW = '*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n';
const FILTER = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n';

const parse = (text: string) => parseIptables(text, { file: 'r.rules' });

test('a raw table parses beside the filter table, and prints back as iptables-save does', () => {
  const text = `${RAW}:NT - [0:0]
-A PREROUTING -p udp -m udp --dport 53 -j NOTRACK
-A PREROUTING -p tcp -m tcp --dport 80 -j CT --notrack
-A PREROUTING -i eth0 -j NT
-A PREROUTING -s 10.9.9.9/32 -j DROP
-A OUTPUT -o eth1 -j CT
-A NT -m conntrack --ctstate INVALID -j LOG --log-prefix "raw "
-A NT -j RETURN
COMMIT
${FILTER}-A FORWARD -m conntrack --ctstate UNTRACKED -j ACCEPT
COMMIT
`;
  const rs = parse(text);
  assert.deepEqual(rs.tables.map((t) => t.name), ['raw', 'filter']);
  assert.deepEqual([...rs.tables[0].chains.keys()], ['PREROUTING', 'OUTPUT', 'NT']);
  const printed = rs.tables.map((t) => [...printTable(t)].join('\n')).join('\n') + '\n';
  assert.equal(printed, text);
  // The per-hook tables: raw's two beside filter's three.
  const c = compile(rs);
  assert.deepEqual(c.tables.map((t) => t.hook), ['raw/PREROUTING', 'raw/OUTPUT', 'INPUT', 'FORWARD', 'OUTPUT']);
  assert.equal(c.stats.rulesPerHook['ipv4/raw/PREROUTING'], 6);
});

test('iptables -L columns: NOTRACK and CT list as target CT, as iptables does', () => {
  const rs = parse(`${RAW}-A PREROUTING -p udp -j NOTRACK\n-A PREROUTING -j CT --notrack\n-A OUTPUT -j CT\nCOMMIT\n`);
  const cols = [...rs.tables[0].chains.values()].flatMap((c) => c.rules).map((r) => listColumns(r, 4));
  assert.deepEqual(cols.map((c) => [c.target, c.extra]), [['CT', ' NOTRACK'], ['CT', ' CT notrack'], ['CT', ' CT']]);
});

test('what the kernel refuses in the raw table is refused with its position', () => {
  const bad: [string, RegExp][] = [
    [`${RAW}-A PREROUTING -j REJECT\nCOMMIT\n`, /^r\.rules:4:18: REJECT target is only valid in the filter table, not raw/],
    [`${FILTER}-A FORWARD -j NOTRACK\nCOMMIT\n`, /^r\.rules:5:15: NOTRACK target is only valid in the raw table, not filter/],
    [`${FILTER}-A FORWARD -j CT --notrack\nCOMMIT\n`, /^r\.rules:5:15: CT target is only valid in the raw table/],
    [`${RAW}-A PREROUTING -j CT --zone 3\nCOMMIT\n`, /^r\.rules:4:21: CT --zone: conntrack zones are not implemented/],
    [`${RAW}-A PREROUTING -j CT --timeout t1\nCOMMIT\n`, /^r\.rules:4:21: CT --timeout: timeout policies are not implemented/],
    [`${RAW}-A PREROUTING -o eth0 -j NOTRACK\nCOMMIT\n`, /^r\.rules:4:15: can't use -o with PREROUTING: a packet is not routed yet/],
    [`${RAW}-A OUTPUT -i eth0 -j NOTRACK\nCOMMIT\n`, /can't use -i with OUTPUT/],
    [`${RAW}:X - [0:0]\n-A X -j PREROUTING\nCOMMIT\n`, /^r\.rules:5:9: cannot jump to built-in chain PREROUTING/],
    [`${RAW}-A FORWARD -j NOTRACK\nCOMMIT\n`, /chain FORWARD does not exist/],
    [`${RAW}COMMIT\n${RAW}COMMIT\n`, /table raw appears twice/],
    ['*mangle\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n', /^r\.rules:1:1: table mangle is not supported \(flatwall runs filter and raw; pass --skip-tables to ignore it\)/],
  ];
  for (const [text, re] of bad) assert.throws(() => parse(text), (e: Error) => re.test(e.message), text);
});

test('CT --helper loads as a template without the helper, and says so once per file', () => {
  const notices: string[] = [];
  const text = `${RAW}-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
-A PREROUTING -p udp -m udp --dport 69 -j CT --helper tftp
-A PREROUTING -p udp -m udp --dport 70 -j CT --notrack --helper tftp
COMMIT
`;
  const rs = parseIptables(text, { file: 'h.rules', onNotice: (m) => notices.push(m) });
  assert.equal(notices.length, 1, notices.join('\n'));
  assert.match(notices[0], /^h\.rules:4:43: CT --helper: flatwall has no conntrack helpers; these connections are tracked without one/);
  assert.equal([...printTable(rs.tables[0])].join('\n') + '\n', text);
  const rules = rs.tables[0].chains.get('PREROUTING')!.rules;
  assert.deepEqual(rules.map((r) => listColumns(r, 4).extra), [' tcp dpt:21 CT helper ftp', ' udp dpt:69 CT helper tftp', ' udp dpt:70 CT notrack helper tftp']);
});

test('counter and state keys tell raw OUTPUT from filter OUTPUT', () => {
  const rs = parse(`${RAW}-A OUTPUT -p udp -j CT\nCOMMIT\n${FILTER}-A OUTPUT -p udp -j ACCEPT\nCOMMIT\n`);
  const c = compile(rs);
  const keys = ruleKeys(c.rules).filter((k) => k.includes('OUTPUT'));
  assert.equal(new Set(keys).size, keys.length, keys.join('\n'));
});

test('flatwall replay walks raw PREROUTING before conntrack, raw OUTPUT for the host\'s own frames', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fw-raw-'));
  try {
    const rules = join(dir, 'raw.rules');
    writeFileSync(rules, `${RAW}-A PREROUTING -p udp -m udp --dport 53 -j NOTRACK
-A PREROUTING -s 198.51.100.66/32 -j DROP
-A OUTPUT -p udp -m udp --sport 53 -j NOTRACK
COMMIT
${FILTER}-A INPUT -m conntrack --ctstate UNTRACKED -j ACCEPT
-A INPUT -p udp -j DROP
-A OUTPUT -m conntrack --ctstate UNTRACKED -j ACCEPT
-A OUTPUT -p udp -j DROP
-A FORWARD -m conntrack --ctstate UNTRACKED -j ACCEPT
-A FORWARD -p udp -j DROP
COMMIT
`);
    const host = parseIPv4('203.0.113.2')!;
    const peer = parseIPv4('198.51.100.9')!;
    const udp = (src: number, dst: number, sport: number, dport: number) => frame({ family: 4, src, dst, proto: 17, sport, dport });
    const frames = [
      udp(peer, host, 5353, 53), // to the host, notracked in raw PREROUTING: INPUT accepts
      udp(host, peer, 53, 5353), // from the host, notracked in raw OUTPUT: OUTPUT accepts
      udp(host, peer, 54, 5353), // from the host, tracked: OUTPUT drops
      udp(parseIPv4('198.51.100.66')!, host, 1, 53), // dropped in raw PREROUTING
      udp(peer, parseIPv4('10.1.2.3')!, 5353, 53), // forwarded, notracked
    ];
    const pcap = join(dir, 'in.pcap');
    writeFileSync(pcap, writePcap(frames.map((data, i) => ({ tsSec: 1_700_000_000, tsFrac: i * 1000, origLen: data.length, data }))));
    const out = JSON.parse(execFileSync(process.execPath, [CLI, 'replay', '--json', '-r', rules, '-p', pcap, '--host', '203.0.113.2/24'], { encoding: 'utf8' }));
    const got = out.frames.map((f: Record<string, unknown>) => [f.verdict, f.ctstate, f.hook, f.chain]);
    assert.deepEqual(got, [
      ['ACCEPT', 'UNTRACKED', 'INPUT', 'INPUT'],
      ['ACCEPT', 'UNTRACKED', 'OUTPUT', 'OUTPUT'],
      ['DROP', 'NEW', 'OUTPUT', 'OUTPUT'],
      ['DROP', 'INVALID', 'raw/PREROUTING', 'raw/PREROUTING'],
      ['ACCEPT', 'UNTRACKED', 'FORWARD', 'FORWARD'],
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
