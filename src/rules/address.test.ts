// The hand-written address parsers and formatters against ip-num, an
// independent implementation, on random and edge-case addresses.
import test from 'node:test';
import assert from 'node:assert/strict';
import { IPv4, IPv6, Validator } from 'ip-num';
import { formatIPv4, formatIPv6, maskLength4, parseIPv4, parseIPv6, prefixRange4, prefixRange6 } from './address';

function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

test('IPv4 parse/format agree with ip-num', () => {
  const r = rng(4);
  for (let i = 0; i < 20000; i++) {
    const v = r();
    const text = formatIPv4(v);
    assert.equal(BigInt(parseIPv4(text)!), IPv4.fromDecimalDottedString(text).getValue());
    assert.equal(text, IPv4.fromNumber(BigInt(v)).toString());
  }
  for (const bad of ['1.2.3', '1.2.3.4.5', '256.1.1.1', '1..2.3', '', '1.2.3.4 ', 'a.b.c.d', '1.2.3.0004']) {
    assert.equal(parseIPv4(bad), undefined, bad);
  }
});

test('IPv6 parse agrees with ip-num; format is inet_ntop', () => {
  const r = rng(6);
  for (let i = 0; i < 5000; i++) {
    // Runs of zero groups exercise '::' compression.
    const groups = Array.from({ length: 8 }, () => (r() % 3 === 0 ? 0 : r() & 0xffff));
    let v = 0n;
    for (const g of groups) v = (v << 16n) | BigInt(g);
    const text = formatIPv6(v);
    assert.equal(parseIPv6(text), v, text);
    assert.equal(IPv6.fromString(text).getValue(), v, text);
    assert.equal(parseIPv6(groups.map((g) => g.toString(16)).join(':')), v);
  }
  const cases: [string, string][] = [
    ['::', '::'], ['::1', '::1'], ['2001:db8::1', '2001:db8::1'], ['2001:0db8:0000:0000:0001:0000:0000:0001', '2001:db8::1:0:0:1'],
    ['::ffff:10.1.2.3', '::ffff:10.1.2.3'], ['fe80::', 'fe80::'], ['1:0:0:1:0:0:0:1', '1:0:0:1::1'], ['0:0:1::', '0:0:1::'],
  ];
  for (const [input, want] of cases) assert.equal(formatIPv6(parseIPv6(input)!), want, input);
  for (const bad of ['1:2:3:4:5:6:7:8:9', '1::2::3', ':::', '12345::', 'g::1', '1:2:3:4:5:6:7', '::1.2.3']) {
    assert.equal(parseIPv6(bad), undefined, bad);
    assert.equal(Validator.isValidIPv6String(bad)[0], false, `ip-num also rejects ${bad}`);
  }
});

test('prefixes clear host bits; masks must be contiguous', () => {
  assert.deepEqual(prefixRange4(parseIPv4('10.11.12.13')!, 8), [0x0a000000, 0x0affffff]);
  assert.deepEqual(prefixRange4(0xffffffff, 0), [0, 0xffffffff]);
  assert.deepEqual(prefixRange4(0x01020304, 32), [0x01020304, 0x01020304]);
  assert.deepEqual(prefixRange6(parseIPv6('2001:db8::1')!, 32), [parseIPv6('2001:db8::')!, parseIPv6('2001:db8:ffff:ffff:ffff:ffff:ffff:ffff')!]);
  assert.equal(maskLength4(parseIPv4('255.255.254.0')!), 23);
  assert.equal(maskLength4(parseIPv4('255.0.255.0')!), undefined);
});
