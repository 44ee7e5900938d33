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
import { rng, randomRuleset, randomPacket } from '../../test/random-rules';

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
