// The ipset save/restore parser and the element syntax: expansions the
// kernel does (CIDRs and ranges into stored elements), ipset's messages,
// and every error at its file:line:column with the token.
import test from 'node:test';
import assert from 'node:assert/strict';
import { RuleError } from '../rules/errors';
import { parseElement, rangeToCidrs, ipsetNumber, formatElement } from './entry';
import { argsToLine, parseIpsetText, tokenize } from './parse';

function err(text: string): RuleError {
  try {
    parseIpsetText(text, 'e.ipset');
  } catch (e) {
    if (e instanceof RuleError) return e;
    throw e;
  }
  assert.fail(`no error for: ${text}`);
}

test('tokens: whitespace separates, double quotes group', () => {
  assert.deepEqual(tokenize('add  s 1.2.3.4 comment "a b  c"', 'f', 1).map((t) => [t.text, t.col]), [
    ['add', 1], ['s', 6], ['1.2.3.4', 8], ['comment', 16], ['a b  c', 24],
  ]);
  assert.throws(() => tokenize('add s x comment "open', 'f', 3), (e: RuleError) => e.line === 3 && e.col === 17 && /missing close quote/.test(e.message));
  assert.equal(argsToLine(['add', 's', '1.1.1.1', 'comment', 'two words']), 'add s 1.1.1.1 comment "two words"');
});

test('numbers as ipset reads them (strtoull base 0, range checked)', () => {
  assert.equal(ipsetNumber('010', 0, 100), 8);
  assert.equal(ipsetNumber('0x10', 0, 100), 16);
  assert.throws(() => ipsetNumber('x', 0, 9), /Syntax error: 'x' is invalid as number/);
  assert.throws(() => ipsetNumber('2147484', 0, 2147483), /Syntax error: '2147484' is out of range 0-2147483/);
  assert.throws(() => ipsetNumber('-1', 0, 10), /out of range 0-10/);
});

test('create lines: options, defaults, aliases', () => {
  const p = parseIpsetText(`# a comment line

create a hash:ip family inet hashsize 64 maxelem 1000 timeout 300 counters comment bucketsize 12 initval 0x5212ffb2
create b bitmap:port range 1-1024 timeout 5
create c nethash -6
n d hash:ip,port
-N e hash:net,port family inet6
`, 'f');
  assert.equal(p.lines, 5);
  assert.deepEqual(p.commands.map((c) => c.op === 'create' && c.options), [
    { type: 'hash:ip', family: 'inet', hashsize: 64, maxelem: 1000, timeout: 300, counters: true, comment: true, bucketsize: 12, initval: 0x5212ffb2 },
    { type: 'bitmap:port', range: [1, 1024], timeout: 5 },
    { type: 'hash:net', family: 'inet6' },
    { type: 'hash:ip,port', family: 'inet' },
    { type: 'hash:net,port', family: 'inet6' },
  ]);
  assert.deepEqual(p.where.map((w) => [w.line, w.col, w.token]), [[3, 8, 'a'], [4, 8, 'b'], [5, 8, 'c'], [6, 3, 'd'], [7, 4, 'e']]);
});

test('create errors name the token and its position', () => {
  const cases: [string, number, string, RegExp][] = [
    ['create a hash:foo', 10, 'hash:foo', /typename 'hash:foo' is unknown/],
    ['create a hash:mac', 10, 'hash:mac', /set type hash:mac is not supported by flatwall/],
    ['create a hash:ip bogus 1', 18, 'bogus', /Unknown argument: `bogus'/],
    ['create a hash:ip netmask 24', 18, 'netmask', /create option netmask is not supported by flatwall/],
    ['create a hash:ip timeout 2147484', 26, '2147484', /'2147484' is out of range 0-2147483/],
    ['create a hash:ip family inet6 family inet', 31, 'family', /family already specified/],
    ['create a hash:ip family ipx', 25, 'ipx', /unknown inet family ipx/],
    ['create a bitmap:port', 10, 'bitmap:port', /Mandatory option `range' is missing/],
    ['create a bitmap:port range 1-2 hashsize 5', 32, 'hashsize', /Unknown argument: `hashsize'/],
    ['create a hash:ip range 1-2', 18, 'range', /Unknown argument: `range'/],
    ['create a', 1, 'create', /Missing second mandatory argument/],
    ['create longnamelongnamelongnamelongname1 hash:ip', 8, 'longnamelongnamelongnamelongname1', /longer than 31 characters/],
    ['list a', 1, 'list', /not allowed in a restore/],
    ['frob a', 1, 'frob', /Unknown command `frob'/],
  ];
  for (const [line, col, token, msg] of cases) {
    const e = err(`\n${line}\n`);
    assert.equal(e.file, 'e.ipset', line);
    assert.equal(e.line, 2, line);
    assert.equal(e.col, col, line);
    assert.equal(e.token, token, line);
    assert.match(e.reason, msg, line);
  }
});

test('add lines: elements expand like the kernel, extensions attach to each', () => {
  const p = parseIpsetText(`create a hash:ip timeout 10 comment counters
add a 10.0.0.0/30 timeout 5 comment "x y"
add a 10.0.1.3-10.0.1.1
add a 0.0.0.0-0.0.0.2 packets 3 bytes 400 -exist
create n hash:net
add n 10.0.0.5-10.0.0.9 nomatch
add n 10.1.2.3/8
create p hash:ip,port
add p 1.2.3.4,udp:1-3
add p 1.2.3.0/31,http
create b bitmap:port range 0-100
add b 5-3
add b udp:7
`, 'f');
  const adds = p.commands.filter((c) => c.op === 'add').map((c) => c.op === 'add' && { n: c.name, ...c.entry, exist: c.exist || undefined });
  assert.deepEqual(adds, [
    ...['10.0.0.0', '10.0.0.1', '10.0.0.2', '10.0.0.3'].map((addr) => ({ n: 'a', addr, timeout: 5, comment: 'x y', exist: undefined })),
    ...['10.0.1.1', '10.0.1.2', '10.0.1.3'].map((addr) => ({ n: 'a', addr, exist: undefined })),
    // 0.0.0.0 is skipped inside a range (hash_ip4_uadt).
    ...['0.0.0.1', '0.0.0.2'].map((addr) => ({ n: 'a', addr, packets: 3n, bytes: 400n, exist: true })),
    { n: 'n', addr: '10.0.0.5', cidr: 32, nomatch: true, exist: undefined },
    { n: 'n', addr: '10.0.0.6', cidr: 31, nomatch: true, exist: undefined },
    { n: 'n', addr: '10.0.0.8', cidr: 31, nomatch: true, exist: undefined },
    { n: 'n', addr: '10.1.2.3', cidr: 8, exist: undefined },
    ...[1, 2, 3].map((port) => ({ n: 'p', addr: '1.2.3.4', proto: 17, port, exist: undefined })),
    ...['1.2.3.0', '1.2.3.1'].map((addr) => ({ n: 'p', addr, proto: 6, port: 80, exist: undefined })),
    ...[3, 4, 5].map((port) => ({ n: 'b', port, exist: undefined })),
    { n: 'b', port: 7, exist: undefined },
  ]);
  // Every element of one line points at that line's element token.
  const w = p.where[p.commands.findIndex((c) => c.op === 'add' && c.name === 'n')];
  assert.deepEqual([w.line, w.col, w.token], [6, 7, '10.0.0.5-10.0.0.9']);
});

test('element syntax per type and family, printed back as ipset prints', () => {
  const el = (type: Parameters<typeof parseElement>[0]['type'], family: 'inet' | 'inet6' | undefined, s: string) => parseElement({ type, family }, s);
  assert.deepEqual(el('hash:ip,port', 'inet', '1.2.3.4,icmp:8/0').entries, [{ addr: '1.2.3.4', proto: 1, port: 0x800 }]);
  assert.deepEqual(el('hash:ip,port', 'inet', '1.2.3.4,icmp:echo').entries, [{ addr: '1.2.3.4', proto: 1, port: 0 }]); // prefix: echo-reply
  assert.deepEqual(el('hash:ip,port', 'inet', '1.2.3.4,gre:0').entries, [{ addr: '1.2.3.4', proto: 47, port: 0 }]);
  assert.deepEqual(el('hash:ip,port', 'inet6', '2001:db8::1,icmpv6:echo-request').entries, [{ addr: '2001:db8::1', proto: 58, port: 128 << 8 }]);
  assert.deepEqual(el('hash:ip,port', 'inet6', '2001:DB8::1/128,sctp:9').entries, [{ addr: '2001:db8::1', proto: 132, port: 9 }]);
  assert.equal(el('hash:ip,port', 'inet', '1.2.3.4,80').shown, '1.2.3.4,tcp:80');
  assert.equal(el('hash:ip,port', 'inet', '1.2.3.4,icmp:ping').shown, '1.2.3.4,icmp:echo-request');
  assert.equal(el('hash:net', 'inet', '10.0.0.1/8').shown, '10.0.0.1/8');
  assert.equal(el('bitmap:port', undefined, 'tcp:81').shown, '81');
  const bad: [Parameters<typeof parseElement>[0]['type'], 'inet' | 'inet6' | undefined, string, RegExp][] = [
    ['hash:ip', 'inet', 'foo', /Syntax error: cannot parse foo: resolving to IPv4 address failed/],
    ['hash:ip', 'inet', '1.2.3.4/33', /'33' is out of range 0-32/],
    ['hash:ip', 'inet', '1.2.3.4/0', /The value of the CIDR parameter of the IP address is invalid/],
    ['hash:ip', 'inet6', '2001:db8::/120', /plain IP address must be supplied: 2001:db8::\/120/],
    ['hash:ip', 'inet6', '1.2.3.4', /resolving to IPv6 address failed/],
    ['hash:net', 'inet', '0.0.0.0-255.255.255.255', /Invalid range, covers the whole address space/],
    ['hash:net', 'inet6', '2001:db8::1-2001:db8::5', /IP address or IP\/cidr must be specified/],
    ['hash:net', 'inet', '1.2.3.4/x', /'x' is invalid as number/],
    ['hash:ip,port', 'inet', '1.2.3.4', /Second element is missing from 1.2.3.4\./],
    ['hash:ip,port', 'inet', '1.2.3.4,', /Second element is missing from 1.2.3.4,\./],
    ['hash:ip,port', 'inet', '1.2.3.4,foo', /'foo' is invalid as number/],
    ['hash:ip,port', 'inet', '1.2.3.4,70000', /'70000' is out of range 0-65535/],
    ['hash:ip,port', 'inet', '1.2.3.4,icmp:3/300', /'300' is out of range 0-255/],
    ['hash:ip,port', 'inet', '1.2.3.4,icmp:1-3', /Cannot parse 1-3 as an ICMP type\/code\./],
    ['hash:ip,port', 'inet', '1.2.3.4,foo:1', /cannot parse 'foo' as a protocol/],
    ['hash:ip,port', 'inet', '1.2.3.4,gre:1', /Protocol gre can be used with pseudo port value 0 only\./],
    ['hash:ip,port', 'inet', '1.2.3.4,ipv6-icmp:1', /Protocol ICMPv6 can be used with family inet6 only/],
    ['hash:ip,port', 'inet6', '::1,icmp:8/0', /Protocol ICMP can be used with family inet only/],
    ['bitmap:port', undefined, 'sctp:5', /Only protocols TCP and UDP are valid/],
  ];
  for (const [type, family, s, msg] of bad) assert.throws(() => el(type, family, s), msg, `${type} ${s}`);
  assert.equal(formatElement({ type: 'hash:net', family: 'inet' }, { addr: '10.0.0.0', cidr: 32 }), '10.0.0.0');
  assert.equal(formatElement({ type: 'hash:ip,port', family: 'inet' }, { addr: '1.2.3.4', proto: 1, port: (200 << 8) | 7 }), '1.2.3.4,icmp:200/7');
  assert.equal(formatElement({ type: 'hash:ip,port', family: 'inet6' }, { addr: '::1', proto: 58, port: 1 << 8 | 3 }), '::1,ipv6-icmp:address-unreachable');
});

test('add errors: position of the element (and inside it), options', () => {
  const head = 'create a hash:ip\ncreate n hash:net\n';
  const cases: [string, number, string, RegExp][] = [
    ['add a 1.2.3.4/33', 15, '1.2.3.4/33', /'33' is out of range 0-32/],
    ['add a 1.2.3.4 nomatch', 15, 'nomatch', /Unknown argument: `nomatch'/],
    ['add nope 1.2.3.4', 5, 'nope', /The set with the given name does not exist/],
    // A quote cannot be inside a quoted token: the text stops there.
    ['add n 10.0.0.0/8 comment "a\\"b"', 26, '"a\\"b"', /missing close quote/],
    // An error quotes a long token as a 64-character excerpt (errors.ts).
    [`add n 10.0.0.0/8 comment ${'x'.repeat(256)}`, 26, `${'x'.repeat(64)}…`, /Comment is longer than the maximum allowed 255 characters/],
    ['add n 10.0.0.0/8 timeout x', 26, 'x', /'x' is invalid as number/],
    ['add n 10.0.0.0/8 skbmark 1', 18, 'skbmark', /not supported by flatwall/],
    ['del n 10.0.0.0/8 timeout 5', 18, 'timeout', /Unknown argument: `timeout'/],
    ['add a', 1, 'add', /Missing second mandatory argument/],
  ];
  for (const [line, col, token, msg] of cases) {
    const e = err(`${head}${line}\n`);
    assert.deepEqual([e.line, e.col, e.token], [3, col, token], line);
    assert.match(e.reason, msg, line);
  }
  // A set is known from where it is created: destroyed or renamed, it is gone.
  assert.match(err('create a hash:ip\ndestroy a\nadd a 1.1.1.1\n').reason, /does not exist/);
  assert.match(err('create a hash:ip\nrename a b\nadd a 1.1.1.1\n').reason, /does not exist/);
  assert.equal(parseIpsetText('create a hash:ip\nrename a b\nadd b 1.1.1.1\n', 'f').commands.length, 3);
  assert.equal(parseIpsetText('add x 10.0.0.0/8', 'f', { lookup: (n) => (n === 'x' ? { type: 'hash:net', family: 'inet' } : undefined) }).commands.length, 1);
});

test('rangeToCidrs is the minimal cover', () => {
  assert.deepEqual(rangeToCidrs(5, 9), [[5, 32], [6, 31], [8, 31]]);
  assert.deepEqual(rangeToCidrs(0, 255), [[0, 24]]);
  for (let n = 0; n < 200; n++) {
    const lo = Math.floor(Math.random() * 2 ** 32);
    const hi = Math.min(2 ** 32 - 1, lo + Math.floor(Math.random() * 100000));
    let at = lo;
    for (const [ip, len] of rangeToCidrs(lo, hi)) {
      assert.equal(ip, at);
      assert.equal(ip % 2 ** (32 - len), 0);
      at = ip + 2 ** (32 - len);
    }
    assert.equal(at, hi + 1);
  }
});
