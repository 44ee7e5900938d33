// Parser conformance with iptables' own canonical forms, every error class
// with its message and position, and parse -> print -> parse round trips.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseIptables } from './parse';
import { printTable, ruleSpec } from './print';
import { RuleError } from '../errors';

const HEAD = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:USER - [0:0]\n';

function canon(rule: string, family?: 4 | 6): string {
  const rs = parseIptables(`${HEAD}-A FORWARD ${rule}\nCOMMIT\n`, { file: 't.rules', family });
  return ruleSpec(rs.tables[0].chains.get('FORWARD')!.rules[0], rs.tables[0].family);
}

function err(rule: string): RuleError {
  try {
    parseIptables(`${HEAD}-A FORWARD ${rule}\nCOMMIT\n`, { file: 'e.rules' });
  } catch (e) {
    if (e instanceof RuleError) return e;
    throw e;
  }
  assert.fail(`no error for: ${rule}`);
}

test('canonical forms match iptables-save', () => {
  const cases: [string, string][] = [
    ['-s 10.11.12.13/8 -j ACCEPT', '-s 10.0.0.0/8 -j ACCEPT'],
    ['-s 10.11.12.13 -j ACCEPT', '-s 10.11.12.13/32 -j ACCEPT'],
    ['-d 192.168.7.9/255.255.255.0', '-d 192.168.7.0/24'],
    ['-s 0.0.0.0/0 -j DROP', '-j DROP'],
    ['-p tcp --sport 1024: -j ACCEPT', '-p tcp -m tcp --sport 1024:65535 -j ACCEPT'],
    ['-p tcp --sport :4', '-p tcp -m tcp --sport 0:4'],
    ['-p tcp --dport 4:4', '-p tcp -m tcp --dport 4'],
    ['-p tcp --dport 0:65535', '-p tcp -m tcp'],
    ['-p tcp --syn', '-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN'],
    ['-p tcp ! --syn', '-p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN'],
    ['-p tcp --tcp-flags ALL NONE', '-p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE'],
    ['-p TCP --dport ssh -j ACCEPT', '-p tcp -m tcp --dport 22 -j ACCEPT'],
    ['-p 17 --dport 53', '-p udp -m udp --dport 53'],
    ['-p all -j ACCEPT', '-j ACCEPT'],
    ['! -p tcp', '! -p tcp'],
    ['-p icmp --icmp-type echo-request', '-p icmp -m icmp --icmp-type 8'],
    ['-p icmp --icmp-type port-unreachable', '-p icmp -m icmp --icmp-type 3/3'],
    ['-p icmp -m icmp ! --icmp-type any', '-p icmp -m icmp ! --icmp-type any'],
    ['-i eth+ ! -o wan0', '-i eth+ ! -o wan0'],
    ['-p udp -m multiport --dports 53,67:68 -j ACCEPT', '-p udp -m multiport --dports 53,67:68 -j ACCEPT'],
    ['-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT', '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'],
    ['-m state --state NEW,INVALID', '-m state --state INVALID,NEW'],
    ['-m iprange ! --src-range 10.0.0.1-10.0.0.9', '-m iprange ! --src-range 10.0.0.1-10.0.0.9'],
    ['-m comment --comment "allow web" -j ACCEPT', '-m comment --comment "allow web" -j ACCEPT'],
    ['-m comment --comment web', '-m comment --comment web'],
    ['-j REJECT', '-j REJECT --reject-with icmp-port-unreachable'],
    ['-p tcp -j REJECT --reject-with tcp-rst', '-p tcp -j REJECT --reject-with tcp-reset'],
    ['-j LOG --log-prefix "fw: " --log-level warning', '-j LOG --log-prefix "fw: "'],
    ['-j LOG --log-level 6', '-j LOG --log-level 6'],
    ['-j USER', '-j USER'],
    ['-g USER', '-g USER'],
    ['-j DROP -p tcp --dport 22', '-p tcp -m tcp --dport 22 -j DROP'],
  ];
  for (const [input, want] of cases) assert.equal(canon(input), want, input);
});

test('IPv6 forms print like ip6tables-save', () => {
  assert.equal(canon('-s 2001:db8:0:0::1/48 -p ipv6-icmp --icmpv6-type echo-request -j ACCEPT'),
    '-s 2001:db8::/48 -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT');
  assert.equal(canon('-d ::ffff:1.2.3.4 -j REJECT', 6), '-d ::ffff:1.2.3.4/128 -j REJECT --reject-with icmp6-port-unreachable');
  assert.equal(canon('-s fe80::/10 -j DROP'), '-s fe80::/10 -j DROP');
});

test('-s with a list is one rule per address, as in iptables', () => {
  const rs = parseIptables(`${HEAD}-A FORWARD -s 1.1.1.1,2.2.2.0/24 -d 3.3.3.3,4.4.4.4 -j DROP\nCOMMIT\n`, { file: 't' });
  assert.deepEqual(rs.tables[0].chains.get('FORWARD')!.rules.map((r) => ruleSpec(r, 4)), [
    '-s 1.1.1.1/32 -d 3.3.3.3/32 -j DROP', '-s 1.1.1.1/32 -d 4.4.4.4/32 -j DROP',
    '-s 2.2.2.0/24 -d 3.3.3.3/32 -j DROP', '-s 2.2.2.0/24 -d 4.4.4.4/32 -j DROP',
  ]);
});

test('every error names the token, with file:line:column', () => {
  const cases: [string, RegExp, string][] = [
    // rule text, message, offending token (the error points at its last occurrence)
    ['-m tcp --dport 80 -j ACCEPT', /-m tcp requires -p tcp/, 'tcp'],
    ['-p udp -m tcp', /-m tcp requires -p tcp/, 'tcp'],
    ['-p tcp --sport 4:3', /invalid port range 4:3 \(min > max\)/, '4:3'],
    ['-p tcp --dport 65536', /port 65536 is out of range/, '65536'],
    ['-p tcp --dport nosuchservice', /unknown port or service/, 'nosuchservice'],
    ['-m foo --bar 1', /match "foo" is not supported/, 'foo'],
    ['-j MASQUERADE', /target MASQUERADE is not supported/, 'MASQUERADE'],
    ['-j NOCHAIN', /target NOCHAIN is not supported, and no chain/, 'NOCHAIN'],
    ['-g nochain', /chain nochain does not exist/, 'nochain'],
    ['-j FORWARD', /cannot jump to built-in chain FORWARD/, 'FORWARD'],
    ['--bogus 1', /unknown option --bogus/, '--bogus'],
    ['-f', /option -f is not supported/, '-f'],
    ['-s 10.0.0.300', /invalid IPv4 address/, '10.0.0.300'],
    ['-s 10.0.0.0/33', /invalid prefix length/, '10.0.0.0/33'],
    ['-s 10.0.0.0/255.0.255.0', /non-contiguous netmask/, '10.0.0.0/255.0.255.0'],
    ['-s example.com', /host names are not supported/, 'example.com'],
    ['-p foo', /unknown protocol "foo"/, 'foo'],
    // Names of Object.prototype are not names (the tables have no prototype: by-name.ts).
    ['-p constructor', /unknown protocol "constructor"/, 'constructor'],
    ['-p tcp --dport toString', /unknown port or service "toString"/, 'toString'],
    ['-p icmp --icmp-type hasOwnProperty', /unknown ICMP type "hasOwnProperty"/, 'hasOwnProperty'],
    ['-j REJECT --reject-with valueOf', /unknown reject type "valueOf"/, 'valueOf'],
    ['-j LOG --log-level __proto__', /invalid log level "__proto__"/, '__proto__'],
    ['-p tcp --tcp-flags SYN,BOGUS SYN', /unknown TCP flag "BOGUS"/, 'SYN,BOGUS'],
    ['-p icmp --icmp-type 300', /unknown ICMP type "300"/, '300'],
    ['-m conntrack --ctstate NEW,BOGUS', /unknown conntrack state "BOGUS"/, 'NEW,BOGUS'],
    ['-m state --state DNAT', /unknown conntrack state "DNAT"/, 'DNAT'],
    ['-m conntrack --ctorigsrc 1.2.3.4', /conntrack option --ctorigsrc is not supported/, '--ctorigsrc'],
    ['-p udp -j REJECT --reject-with tcp-reset', /tcp-reset requires -p tcp/, 'REJECT'],
    ['-j REJECT --reject-with bogus', /unknown reject type "bogus"/, 'bogus'],
    ['-j LOG --log-level 9', /invalid log level "9"/, '9'],
    ['-j LOG --log-uid --log-foo', /LOG option --log-foo is not supported/, '--log-foo'],
    ['-m limit --limit 0/sec', /bad rate "0\/sec"/, '0/sec'],
    ['-m limit --limit 3/fortnight', /unit must be second, minute, hour or day/, '3/fortnight'],
    ['-m recent --set --seconds 5', /go only with --rcheck or --update/, 'recent'],
    ['-m hashlimit --hashlimit-upto 5/sec', /requires --hashlimit-name/, 'hashlimit'],
    ['-m ttl --ttl-eq 300', /TTL "300" must be an integer 0-255/, '300'],
    ['-m addrtype --dst-type LOCALX', /unknown address type "LOCALX"/, 'LOCALX'],
    ['-p udp -j TCPMSS --set-mss 1400', /only valid for TCP SYN packets/, 'TCPMSS'],
    ['-j LOG --log-prefix 0123456789012345678901234567890', /log prefix longer than 29/, '0123456789012345678901234567890'],
    ['-p tcp --dport 80 --dport 81', /option --dport given more than once/, '--dport'],
    ['-s 1.2.3.4 -s 1.2.3.5', /option -s given more than once/, '-s'],
    ['! ! -s 1.2.3.4', /double negation/, '!'],
    ['-s 1.2.3.4 !', /"!" must be followed by an option/, '!'],
    ['! -m tcp', /"!" cannot be applied to -m/, '!'],
    ['-m comment ! --comment x', /option --comment cannot be negated/, '!'],
    ['-p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16', /too many ports/, '1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16'],
    ['-m multiport --dports 80', /-m multiport requires -p tcp/, 'multiport'],
    ['-m iprange', /-m iprange requires --src-range or --dst-range/, 'iprange'],
    ['-m iprange --src-range 10.0.0.9-10.0.0.1', /start > end/, '10.0.0.9-10.0.0.1'],
    ['-j ACCEPT -j DROP', /only one target/, '-j'],
    ['-i eth0eth0eth0eth0', /interface name "eth0eth0eth0eth0" must be 1-15 characters/, 'eth0eth0eth0eth0'],
    ['-s 10.0.0.1 -d 2001:db8::1', /IPv6 syntax in an IPv4 rule file/, '2001:db8::1'],
    ['-m comment --comment "unterminated', /unterminated quoted string/, '"unterminated'],
    ['stray', /unexpected argument "stray"/, 'stray'],
  ];
  for (const [rule, re, token] of cases) {
    const e = err(rule);
    const line = `-A FORWARD ${rule}`;
    const col = line.lastIndexOf(` ${token}`) + 2;
    assert.match(e.message, re, rule);
    assert.equal(e.file, 'e.rules', rule);
    assert.equal(e.line, 6, rule);
    assert.equal(e.col, col, `${rule}: ${e.message}`);
    assert.equal(e.token, token, rule);
    assert.ok(e.message.startsWith(`e.rules:6:${col}: `), e.message);
  }
});

test('file-level errors', () => {
  const cases: [string, RegExp, number, number][] = [
    ['*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n', /table nat is not supported/, 1, 1],
    ['*filter\n-A FORWARD -j ACCEPT\n', /table filter is missing its COMMIT/, 1, 1],
    ['-A FORWARD -j ACCEPT\n', /rule outside a table/, 1, 1],
    ['*filter\n:FORWARD MAYBE [0:0]\nCOMMIT\n', /policy of built-in chain FORWARD must be ACCEPT or DROP/, 2, 10],
    ['*filter\n:mine ACCEPT [0:0]\nCOMMIT\n', /mine is not a built-in chain; its policy must be "-"/, 2, 7],
    ['*filter\n:A - [0:0]\n:A - [0:0]\nCOMMIT\n', /chain A declared twice/, 3, 2],
    ['*filter\n-N A\n-N A\nCOMMIT\n', /chain A already exists/, 3, 4],
    ['*filter\n-A NOPE -j ACCEPT\nCOMMIT\n', /chain NOPE does not exist/, 2, 4],
    ['*filter\n-P USER DROP\nCOMMIT\n', /chain USER does not exist/, 2, 4],
    ['*filter\n-N A\n-P A DROP\nCOMMIT\n', /only built-in chains have a policy/, 3, 4],
    ['*filter\n-N A\n-A A -j ACCEPT\n-X A\nCOMMIT\n', /chain A is not empty/, 4, 4],
    ['*filter\n-N A\n-A FORWARD -j A\n-X A\nCOMMIT\n', /chain A is still referenced/, 4, 4],
    ['*filter\n-X FORWARD\nCOMMIT\n', /cannot delete built-in chain FORWARD/, 2, 4],
    ['*filter\n-I FORWARD 3 -j ACCEPT\nCOMMIT\n', /rule number 3 is out of range 1-1/, 2, 12],
    ['*filter\n-D FORWARD 1\nCOMMIT\n', /command -D is not supported/, 2, 1],
    ['*filter\n[1:x] -A FORWARD -j ACCEPT\nCOMMIT\n', /invalid counters/, 2, 1],
    ['*filter\nCOMMIT\n*filter\nCOMMIT\n', /table filter appears twice/, 3, 1],
  ];
  for (const [text, re, line, col] of cases) {
    try {
      parseIptables(text, { file: 'f.rules' });
      assert.fail(`no error for ${JSON.stringify(text)}`);
    } catch (e) {
      assert.ok(e instanceof RuleError, String(e));
      assert.match(e.message, re);
      assert.equal(e.line, line, e.message);
      assert.equal(e.col, col, e.message);
    }
  }
});

test('commands -I, -N, -P, -F, -X and counters behave like iptables-restore', () => {
  const rs = parseIptables(`*filter
:INPUT ACCEPT [1:2]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-N A
-N B
-A A -j ACCEPT
-F A
-X B
-P FORWARD DROP
[5:60] -A FORWARD -p tcp -j ACCEPT
-I FORWARD -p udp -j DROP
-I FORWARD 2 -p icmp -j ACCEPT
COMMIT
`, { file: 'c' });
  const t = rs.tables[0];
  assert.deepEqual([...t.chains.keys()], ['INPUT', 'FORWARD', 'OUTPUT', 'A']);
  assert.equal(t.chains.get('FORWARD')!.policy, 'DROP');
  assert.equal(t.chains.get('A')!.rules.length, 0);
  assert.deepEqual([...printTable(t, { counters: true })], [
    '*filter', ':INPUT ACCEPT [1:2]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]', ':A - [0:0]',
    '[0:0] -A FORWARD -p udp -j DROP', '[0:0] -A FORWARD -p icmp -j ACCEPT', '[5:60] -A FORWARD -p tcp -j ACCEPT', 'COMMIT',
  ]);
});

test('other tables are skipped with skipOtherTables', () => {
  const rs = parseIptables('*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j DNAT --to 1.2.3.4\nCOMMIT\n*filter\n-A FORWARD -j DROP\nCOMMIT\n', { file: 'n', skipOtherTables: true });
  assert.equal(rs.tables.length, 1);
  assert.equal(rs.tables[0].chains.get('FORWARD')!.rules.length, 1);
});

test('round trip: parse, print, parse gives the same rules (examples and canonical cases)', () => {
  const dir = join(__dirname, '..', '..', '..', '..', 'rules', 'examples');
  const files = readdirSync(dir).filter((f) => f.endsWith('.rules'));
  assert.ok(files.length >= 3, 'rules/examples has the hand-written sets');
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8');
    const a = parseIptables(text, { file: f });
    const printed = a.tables.map((t) => [...printTable(t, { counters: true })].join('\n')).join('\n');
    const b = parseIptables(`${printed}\n`, { file: `${f}.printed`, family: a.tables[0].family });
    const again = b.tables.map((t) => [...printTable(t, { counters: true })].join('\n')).join('\n');
    assert.equal(again, printed, f);
    // Compare rules as data: key order and source positions do not matter.
    const sorted = (v: unknown): unknown => (typeof v === 'bigint' ? v.toString()
      : Array.isArray(v) ? v.map(sorted)
        : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).filter(([k]) => !['pos', 'targetPos', 'counters'].includes(k)).sort(([x], [y]) => (x < y ? -1 : 1)).map(([k, x]) => [k, sorted(x)]))
          : v);
    const strip = (rs: typeof a) => JSON.stringify(rs.tables.map((t) => [...t.chains.values()]
      .sort((x, y) => (x.name < y.name ? -1 : 1)).map(sorted)));
    assert.equal(strip(b), strip(a), f);
  }
});
