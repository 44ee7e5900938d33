// Counter identity across generations: which rules keep their counters when
// the rule set is replaced or edited, and iptables-restore -c seeding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compile } from '../rules/compile';
import { parseIptables } from '../rules/iptables/parse';
import { CounterBank, fileCounters, identities, matchKeys, ruleKeys, type LiveCounters } from './counters';
import { applyRuleOp, cloneRuleSet, parseRuleCommand } from './ruleops';
import type { Rule } from '../rules/model';

const head = ':INPUT ACCEPT [0:0]\n:FORWARD DROP [9:900]\n:OUTPUT ACCEPT [0:0]\n';
const load = (body: string) => compile(parseIptables(`*filter\n${head}${body}COMMIT\n`, { file: 't.rules' }));

function live(n: number, values: Record<number, number>): LiveCounters {
  const packets = new BigUint64Array(n);
  const bytes = new BigUint64Array(n);
  for (const [id, v] of Object.entries(values)) {
    packets[Number(id)] = BigInt(v);
    bytes[Number(id)] = BigInt(v * 100);
  }
  return { packets, bytes };
}

const idOf = (c: ReturnType<typeof load>, chain: string, index: number) => c.rules.find((r) => r.chain === chain && r.index === index)!.id;

test('keys: same spelling, different spelling of the same rule, occurrences', () => {
  const c = load('-A FORWARD -p tcp --dport 22 -j DROP\n-A FORWARD -p tcp -m tcp --destination-port 22 -j DROP\n-A FORWARD -p udp -j ACCEPT\n');
  const k = ruleKeys(c.rules);
  const a = k[idOf(c, 'FORWARD', 1)];
  const b = k[idOf(c, 'FORWARD', 2)];
  assert.equal(a, b, 'same parsed rule, same key');
  assert.notEqual(a, k[idOf(c, 'FORWARD', 3)]);
  assert.equal(k[c.rules.length - 1], '', 'the internal id is never carried');
});

test('matchKeys: the k-th copy continues the k-th copy', () => {
  assert.deepEqual([...matchKeys(['a', 'b', 'a', '', 'c'], ['b', 'a', 'x', 'a', 'a', ''])], [1, 0, -1, 2, -1, -1]);
  assert.deepEqual([...matchKeys(['a'], ['a', 'a'])], [0, -1]);
});

test('replace: unchanged rules carry (even when moved), changed ones start at zero, policy carries', () => {
  const bank = new CounterBank();
  const g1 = load('-A FORWARD -p tcp --dport 22 -j DROP\n-A FORWARD -p udp --dport 53 -j ACCEPT\n-A FORWARD -p tcp --dport 80 -j ACCEPT\n');
  bank.swap(identities(g1.rules), undefined);
  const l1 = live(g1.rules.length, { [idOf(g1, 'FORWARD', 1)]: 5, [idOf(g1, 'FORWARD', 2)]: 7, [idOf(g1, 'FORWARD', 3)]: 11, [idOf(g1, 'FORWARD', 0)]: 3 });
  assert.deepEqual(bank.get(idOf(g1, 'FORWARD', 2), l1), [7n, 700n]);
  // Reordered, one changed (80 -> 8080), one new.
  const g2 = load('-A FORWARD -p udp --dport 53 -j ACCEPT\n-A FORWARD -p tcp --dport 22 -j DROP\n-A FORWARD -p tcp --dport 8080 -j ACCEPT\n-A FORWARD -p icmp -j ACCEPT\n');
  bank.swap(identities(g2.rules), l1);
  const l2 = live(g2.rules.length, { [idOf(g2, 'FORWARD', 1)]: 1 });
  assert.deepEqual(bank.get(idOf(g2, 'FORWARD', 1), l2), [8n, 800n], 'udp 53: 7 before + 1 now');
  assert.deepEqual(bank.get(idOf(g2, 'FORWARD', 2), l2), [5n, 500n], 'tcp 22 moved, kept');
  assert.deepEqual(bank.get(idOf(g2, 'FORWARD', 3), l2), [0n, 0n], 'changed rule starts at 0');
  assert.deepEqual(bank.get(idOf(g2, 'FORWARD', 4), l2), [0n, 0n]);
  assert.deepEqual(bank.get(idOf(g2, 'FORWARD', 0), l2), [3n, 300n], 'policy');
  assert.equal(bank.lastCarried, 3, 'udp 53, tcp 22 and the FORWARD policy (the only counted rules)');
});

test('edit: inserting a rule keeps every other counter; zero resets to the live count', () => {
  const bank = new CounterBank();
  const g1 = load('-A FORWARD -p tcp --dport 22 -j DROP\n-A FORWARD -p udp --dport 53 -j ACCEPT\n');
  bank.swap(identities(g1.rules), undefined);
  const l1 = live(g1.rules.length, { [idOf(g1, 'FORWARD', 1)]: 4, [idOf(g1, 'FORWARD', 2)]: 6 });
  const next = cloneRuleSet(g1.source);
  applyRuleOp(next, parseRuleCommand('-I FORWARD 1 -p tcp --dport 22 -j DROP', g1.source));
  const g2 = compile(next);
  bank.swap(identities(g2.rules), l1);
  const l2 = live(g2.rules.length, {});
  // The new copy of "tcp 22" is now occurrence #0 (first in the chain) and takes the old counters.
  assert.deepEqual(bank.get(idOf(g2, 'FORWARD', 1), l2), [4n, 400n]);
  assert.deepEqual(bank.get(idOf(g2, 'FORWARD', 2), l2), [0n, 0n]);
  assert.deepEqual(bank.get(idOf(g2, 'FORWARD', 3), l2), [6n, 600n]);
  const l3 = live(g2.rules.length, { [idOf(g2, 'FORWARD', 3)]: 2 });
  bank.zero(l3);
  assert.deepEqual(bank.get(idOf(g2, 'FORWARD', 3), l3), [0n, 0n]);
  assert.deepEqual(bank.get(idOf(g2, 'FORWARD', 3), live(g2.rules.length, { [idOf(g2, 'FORWARD', 3)]: 5 })), [3n, 300n]);
});

test('restore (-c): file counters seed rules and policies', () => {
  const bank = new CounterBank();
  const g = load('[12:3456] -A FORWARD -p tcp --dport 22 -j DROP\n-A FORWARD -p udp -j ACCEPT\n');
  bank.swap(identities(g.rules), undefined, fileCounters(g));
  const l = live(g.rules.length, {});
  assert.deepEqual(bank.get(idOf(g, 'FORWARD', 1), l), [12n, 3456n]);
  assert.deepEqual(bank.get(idOf(g, 'FORWARD', 2), l), [0n, 0n]);
  assert.deepEqual(bank.get(idOf(g, 'FORWARD', 0), l), [9n, 900n]);
  const plain = new CounterBank();
  plain.swap(identities(g.rules), undefined);
  assert.deepEqual(plain.get(idOf(g, 'FORWARD', 1), l), [0n, 0n], 'without -c the file counters are ignored');
});

test('rule commands: positions of errors, ranges, delete by spec, policy of a user chain', () => {
  const rs = parseIptables(`*filter\n${head}:web - [0:0]\n-A FORWARD -p tcp -j web\n-A web -p tcp --dport 80 -j ACCEPT\nCOMMIT\n`, { file: 't' });
  assert.throws(() => parseRuleCommand('-I FORWARD 5 -j DROP', rs), /rule number 5 is out of range 1-2/);
  assert.throws(() => parseRuleCommand('-A nope -j DROP', rs), /chain nope does not exist/);
  assert.throws(() => parseRuleCommand('-A FORWARD -j nochain', rs), (e: Error & { col?: number }) => e.col === 15);
  assert.throws(() => parseRuleCommand('-P web DROP', rs), /only built-in chains have a policy/);
  assert.throws(() => parseRuleCommand('-D web -p tcp --dport 81 -j ACCEPT', rs), /no rule in chain web matches/);
  const del = parseRuleCommand('-D web -p tcp -m tcp --dport 80 -j ACCEPT', rs);
  assert.deepEqual({ ...del }, { op: 'delete', family: 4, chain: 'web', index: 1 });
  const six = parseRuleCommand('-A FORWARD -s fd00::1 -j DROP', { tables: [...rs.tables, { ...rs.tables[0], family: 6 }] });
  assert.equal(six.family, 6, 'an IPv6 address selects the IPv6 table');
});

test('swap carries exactly what matching every rule by identity would (fingerprints only narrow the search)', () => {
  const lines = ['-p tcp --dport 22 -j DROP', '-p tcp -m tcp --destination-port 22 -j DROP', '-p udp -j ACCEPT', '-s 10.0.0.0/8 -j ACCEPT',
    '-s 10.0.0.0/8 -j DROP', '-d 10.0.0.1 -p tcp -m multiport --dports 80,443 -j ACCEPT', '-j LOG', '-p icmp -j ACCEPT', '-s fd00::/8 -j DROP'];
  let seed = 7;
  const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n;
  const body = () => Array.from({ length: 3 + rnd(12) }, () => `-A FORWARD ${lines[rnd(8)]}\n`).join('');
  for (let round = 0; round < 200; round++) {
    const g1 = load(body());
    const g2 = load(body());
    const counts: Record<number, number> = {};
    for (const r of g1.rules) if (!r.internal && rnd(3) === 0) counts[r.id] = 1 + rnd(50);
    const l1 = live(g1.rules.length, counts);
    const bank = new CounterBank();
    bank.swap(identities(g1.rules), undefined);
    bank.swap(identities(g2.rules), l1);
    const from = matchKeys(ruleKeys(g1.rules), ruleKeys(g2.rules));
    const l2 = live(g2.rules.length, {});
    let carried = 0;
    for (let i = 0; i < g2.rules.length; i++) {
      const want = from[i] >= 0 && !g2.rules[i].internal ? BigInt(counts[from[i]] ?? 0) : 0n;
      if (want) carried++;
      assert.deepEqual(bank.get(i, l2), [want, want * 100n], `round ${round} rule ${i}`);
    }
    assert.equal(bank.lastCarried, carried);
  }
});

test('edits: inserted rules keep their counters into the next full build; deleted ones never pass theirs on', () => {
  const bank = new CounterBank();
  const g1 = load('-A FORWARD -p tcp --dport 22 -j DROP\n-A FORWARD -p udp --dport 53 -j ACCEPT\n');
  bank.swap(identities(g1.rules), undefined);
  // -I FORWARD 1 "-p icmp -j ACCEPT" as an overlay (new id at the end), -D the udp 53 rule.
  const ins = parseRuleCommand('-I FORWARD 1 -p icmp -j ACCEPT', g1.source);
  const id = g1.rules.length;
  const added = [{ id, family: 4 as const, table: 'filter' as const, chain: 'FORWARD', index: 1, file: '<request>', line: 1, rule: (ins as { rules: Rule[] }).rules[0] }];
  g1.rules.push(...added);
  const udp = idOf(g1, 'FORWARD', 2);
  bank.edit(added, [udp]);
  const l1 = live(g1.rules.length, { [id]: 9, [udp]: 4, [idOf(g1, 'FORWARD', 1)]: 2 });
  assert.deepEqual(bank.get(id, l1), [9n, 900n]);
  // The full build of the edited rules, with the deleted rule written back in at its old place.
  const g2 = load('-A FORWARD -p icmp -j ACCEPT\n-A FORWARD -p tcp --dport 22 -j DROP\n-A FORWARD -p udp --dport 53 -j ACCEPT\n');
  bank.swap(identities(g2.rules), l1);
  const l2 = live(g2.rules.length, {});
  assert.deepEqual(bank.get(idOf(g2, 'FORWARD', 1), l2), [9n, 900n], 'the inserted rule carried');
  assert.deepEqual(bank.get(idOf(g2, 'FORWARD', 2), l2), [2n, 200n]);
  assert.deepEqual(bank.get(idOf(g2, 'FORWARD', 3), l2), [0n, 0n], 'a deleted rule passes nothing on');
});

test('rules that share a fingerprint (differing only in ports, interfaces, comments) carry only to their own identity', () => {
  // One fingerprint for all of them: the same addresses, protocol, target and first match.
  const rule = (i: number) => `-A FORWARD -i eth${i % 7} -p tcp -m tcp --dport ${1000 + (i % 60000)} -m comment --comment host-${i} -j ACCEPT\n`;
  let a = '';
  for (let i = 0; i < 20000; i++) a += rule(i);
  const g1 = load(a);
  const ids1 = identities(g1.rules);
  assert.ok(new Set(Array.from(ids1.fps.subarray(1, 20001))).size <= 7, 'a handful of fingerprints for 20,000 rules');
  const bank = new CounterBank();
  bank.swap(ids1, undefined);
  const counted: Record<number, number> = {};
  for (let i = 0; i < 20000; i++) counted[idOf(g1, 'FORWARD', i + 1)] = i + 1;
  const l1 = live(g1.rules.length, counted);
  // The new set: every other old rule, and as many rules not in the old one.
  let b = '';
  for (let i = 0; i < 20000; i += 2) b += rule(i) + rule(20001 + i);
  const g2 = load(b);
  bank.swap(identities(g2.rules), l1);
  const l2 = live(g2.rules.length, {});
  for (let k = 0; k < 10000; k++) {
    assert.deepEqual(bank.get(idOf(g2, 'FORWARD', 2 * k + 1), l2), [BigInt(2 * k + 1), BigInt((2 * k + 1) * 100)], `old rule ${2 * k} kept its counters`);
    assert.deepEqual(bank.get(idOf(g2, 'FORWARD', 2 * k + 2), l2), [0n, 0n], `new rule ${20001 + 2 * k} starts at zero`);
  }
  assert.equal(bank.lastCarried, 10000);
});
