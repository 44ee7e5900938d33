// Single-rule edits as overlays (edits.ts, native Ruleset::Derive) against
// the truth: after every edit of a random sequence, the edited rule set
// must walk every key exactly as a full compile of the same rules does --
// the same terminal rule and the same matched rules on the way (LOG,
// counters), named by chain and position since the two number rules
// differently. Then the Firewall surface: which edits take the overlay,
// which rebuild and why, and what listing and counters see.
import test from 'node:test';
import assert from 'node:assert/strict';
import { native } from '../native';
import { compile, type CompiledRuleSet } from '../rules/compile';
import { parseIptables } from '../rules/iptables/parse';
import { Prng } from '../rules/generate/prng';
import { ruleIdsByChain, rulePositions } from '../rules/positions';
import { ruleSpec } from '../rules/iptables/print';
import { initialEditState, planBatch, planEdit, type EditState } from './edits';
import { isRuleOp, parseBatch } from './batch';
import { applyRuleOp, cloneRuleSet, parseRuleCommand, type RuleOp } from './ruleops';
import { Firewall } from './firewall';
import { buildImage, readSnapshot, writeSnapshot } from './snapshot';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const pick = <T>(rng: Prng, a: readonly T[]): T => a[rng.int(a.length)];

/** What differs between the families: rule addresses, ICMP, packet addresses. */
interface Fam {
  family: 4 | 6;
  addrs: string[];
  icmp: string;
  hosts: bigint[];
}
const V4: Fam = {
  family: 4, icmp: 'icmp',
  addrs: ['10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24', '10.1.2.3', '10.2.0.0/16', '192.168.0.0/16', '10.1.3.0/24'],
  hosts: [0x0a010203n, 0x0a010205n, 0x0a010301n, 0x0a020001n, 0xc0a80101n, 0x0a050505n, 0x08080808n],
};
const V6: Fam = {
  family: 6, icmp: 'ipv6-icmp',
  addrs: ['fd00::/8', 'fd00:1::/32', 'fd00:1:2::/48', 'fd00:1:2::3', 'fd00:2::/32', '2001:db8::/32', 'fd00:1:3::/48'],
  hosts: [0xfd000001000200000000000000000003n, 0xfd000001000200000000000000000005n, 0xfd000001000300000000000000000001n,
    0xfd000002000000000000000000000001n, 0x20010db8000000000000000000000001n, 0xfd050000000000000000000000000005n, 0x20014860000000000000000000008888n],
};
const PORTS = ['22', '53', '80', '443', '1000:2000', '1500:1600'];

function randomMatch(rng: Prng, f: Fam): string {
  const parts: string[] = [];
  if (rng.int(2)) parts.push(`${rng.int(4) ? '' : '! '}-s ${pick(rng, f.addrs)}`);
  if (rng.int(2)) parts.push(`-d ${pick(rng, f.addrs)}`);
  if (rng.int(4) === 0) parts.push(`-i ${pick(rng, ['eth0', 'eth1', 'eth+'])}`);
  const proto = rng.int(4);
  if (proto === 1 || proto === 2) {
    const p = proto === 1 ? 'tcp' : 'udp';
    parts.push(`-p ${p}`);
    if (rng.int(3)) parts.push(`-m ${p} ${rng.int(5) ? '' : '! '}--dport ${pick(rng, PORTS)}`);
  } else if (proto === 3) {
    parts.push(`-p ${f.icmp}`);
  }
  if (rng.int(6) === 0) parts.push(`-m conntrack --ctstate ${pick(rng, ['NEW', 'ESTABLISHED,RELATED', 'INVALID'])}`);
  return parts.join(' ');
}

function randomTarget(rng: Prng, userChains: string[], inUser: boolean): string {
  const r = rng.int(12);
  if (r < 3) return '-j ACCEPT';
  if (r < 5) return '-j DROP';
  if (r < 6) return '-j REJECT';
  if (r < 7) return '-j LOG';
  if (r < 8) return '';
  if (r < 9) return '-j RETURN';
  if (!inUser && userChains.length) return `${r < 11 ? '-j' : '-g'} ${pick(rng, userChains)}`;
  return '-j ACCEPT';
}

function randomRuleSet(rng: Prng, f: Fam): string {
  const users = ['U1', 'U2'];
  const lines = ['*filter', `:INPUT ACCEPT [0:0]`, `:FORWARD ${pick(rng, ['ACCEPT', 'DROP'])} [0:0]`, ':OUTPUT ACCEPT [0:0]', ':U1 - [0:0]', ':U2 - [0:0]'];
  for (const u of users) {
    for (let i = rng.int(4); i > 0; i--) lines.push(`-A ${u} ${randomMatch(rng, f)} ${randomTarget(rng, [], true)}`);
  }
  for (let i = 4 + rng.int(20); i > 0; i--) lines.push(`-A FORWARD ${randomMatch(rng, f)} ${randomTarget(rng, users, false)}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

function randomOp(rng: Prng, compiled: CompiledRuleSet, f: Fam): RuleOp {
  const fwd = compiled.source.tables[0].chains.get('FORWARD')!;
  const n = fwd.rules.length;
  const chain = rng.int(10) === 0 ? 'U1' : 'FORWARD'; // user chains rebuild
  const len = compiled.source.tables[0].chains.get(chain)!.rules.length;
  const r = rng.int(10);
  let cmd: string;
  if (r < 4) cmd = `-I ${chain} ${1 + rng.int(len + 1)} ${randomMatch(rng, f)} ${randomTarget(rng, chain === 'FORWARD' ? ['U1', 'U2'] : [], chain !== 'FORWARD')}`;
  else if (r < 6) cmd = `-A ${chain} ${randomMatch(rng, f)} ${randomTarget(rng, [], true)}`;
  else if (r < 9 && len > 0) cmd = `-D ${chain} ${1 + rng.int(len)}`;
  else if (n > 0 && r === 9) cmd = `-P FORWARD ${pick(rng, ['ACCEPT', 'DROP'])}`;
  else cmd = `-A FORWARD ${randomMatch(rng, f)} -j LOG`;
  if (rng.int(15) === 0) cmd = `-I FORWARD 1 -i wan${rng.int(3)} -j DROP`; // a new interface: rebuild
  return parseRuleCommand(cmd, compiled.source, f.family);
}

const IFACES = ['eth0', 'eth1', 'eth9', 'wan0', 'wan1', 'lo'];

/**
 * Random IPv4 keys packed as native PacketKey4, drawn near the rules' own
 * values; interfaces by name, as the rule set `c` numbers them.
 */
function randomKeys(rng: Prng, n: number, ifaces: CompiledRuleSet[], f: Fam): Uint8Array[] {
  const L = (f.family === 4 ? native().layout.key4 : native().layout.key6)!;
  const o = (f: string) => (L[f] as { offset: number }).offset;
  const buf = new Uint8Array(n * L.size);
  const v = new DataView(buf.buffer);
  const names: [string, string][] = [];
  const addr = (at: number, a: bigint) => {
    if (f.family === 4) v.setUint32(at, Number(a), true);
    else for (let w = 0; w < 4; w++) v.setUint32(at + 4 * w, Number((a >> BigInt(96 - 32 * w)) & 0xffffffffn), true);
  };
  const icmpProto = f.family === 4 ? 1 : 58;
  for (let i = 0; i < n; i++) {
    const b = i * L.size;
    const proto = pick(rng, [6, 17, icmpProto, 6, 17, 47]);
    addr(b + o('src'), pick(rng, f.hosts));
    addr(b + o('dst'), pick(rng, f.hosts));
    v.setUint16(b + o('sport'), proto === icmpProto || proto === 47 ? 0 : pick(rng, [22, 53, 80, 443, 1000, 1550, 2000, 40000]), true);
    v.setUint16(b + o('dport'), proto === icmpProto || proto === 47 ? 0 : pick(rng, [22, 53, 80, 443, 999, 1000, 1550, 2000, 2001]), true);
    v.setUint16(b + o('icmp'), proto === icmpProto ? (f.family === 4 ? 0x0800 : 0x8000) : 0, true);
    names.push([pick(rng, IFACES), pick(rng, IFACES)]);
    v.setUint8(b + o('proto'), proto);
    v.setUint8(b + o('tcp_flags'), proto === 6 ? pick(rng, [2, 16, 18]) : 0);
    v.setUint8(b + o('ct_state'), 1 << rng.int(5));
    v.setUint8(b + o('flags'), rng.int(10) ? 1 : 0);
  }
  return ifaces.map((c) => {
    const copy = buf.slice();
    const w = new DataView(copy.buffer);
    names.forEach(([i, out], k) => {
      w.setUint16(k * L.size + o('iif'), c.ifaces.classOf(i), true);
      w.setUint16(k * L.size + o('oif'), c.ifaces.classOf(out), true);
    });
    return copy;
  });
}

/**
 * Each key's walk through `buffer` with `edits` applied, rule ids replaced
 * by chain:position in `names` (the same in both numberings).
 */
function walks(buffer: ArrayBuffer, ruleCount: number, edits: unknown[], names: CompiledRuleSet, keys: Uint8Array, family: 4 | 6): string[] {
  const r = native().evaluateRuleset({ buffer, ruleCount, edits, family, keys });
  const pos = rulePositions(names);
  const name = (id: number) => {
    if (id === 0xffffffff) return 'none';
    const sr = names.rules[id];
    if (!sr) return `?${id}`;
    return sr.internal ? 'internal' : sr.rule ? `${sr.chain}:${pos[id]}` : `${sr.chain}:policy`;
  };
  return Array.from(r.rules as Uint32Array, (id, i) => `${(r.paths as number[][])[i].map(name).join(' ')} => ${name(id)} ${r.actions[i]}`);
}

test('random edit sequences: the overlay walks every key as a full rebuild does', () => {
  let overlays = 0;
  let rebuilds = 0;
  const overlaysV6 = { n: 0 };
  for (const [f, seeds] of [[V4, 40], [V6, 15]] as const) for (let seed = 1; seed <= seeds; seed++) {
    const rng = new Prng(seed);
    let running = compile(parseIptables(randomRuleSet(rng, f), { file: 'r.rules', family: f.family }));
    let state: EditState = initialEditState(running, 1)!;
    let edits: unknown[] = [];
    for (let step = 0; step < 25; step++) {
      const op = randomOp(rng, running, f);
      const next = cloneRuleSet(running.source);
      applyRuleOp(next, op);
      const full = compile(next);
      const plan = planEdit(running, state, op);
      if (typeof plan === 'string') {
        rebuilds++;
        running = full;
        state = initialEditState(full, 1)!;
        edits = [];
      } else {
        overlays++;
        if (f.family === 6) overlaysV6.n++;
        plan.commit();
        running = plan.compiled;
        state = plan.state;
        edits = [...edits, plan.native];
      }
      const [k1, k2] = randomKeys(rng, 300, [running, full], f);
      const got = walks(state.base.buffer, state.baseRuleCount, edits, running, k1, f.family);
      const want = walks(full.buffer, full.rules.length, [], full, k2, f.family);
      for (let i = 0; i < want.length; i++) {
        if (got[i] !== want[i]) assert.fail(`IPv${f.family} seed ${seed} step ${step} (${JSON.stringify(op, (_k, v) => (typeof v === 'bigint' ? String(v) : v)).slice(0, 200)}) key ${i}: overlay ${got[i]}, rebuild ${want[i]}`);
      }
    }
  }
  assert.ok(overlays > 700, `overlay edits: ${overlays}`);
  assert.ok(overlaysV6.n > 200, `IPv6 overlay edits: ${overlaysV6.n}`);
  assert.ok(rebuilds > 20, `rebuilds: ${rebuilds}`);
});


test('Firewall.edit: FORWARD edits take the overlay, the rest rebuild; listing and counters follow', async () => {
  const fw = new Firewall({ ports: [{ name: 'edx0', kind: 'afpacket' }, { name: 'edx1', kind: 'afpacket' }], ruleFiles: [], workers: 2 });
  const text = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]', ':U1 - [0:0]',
    '-A U1 -p udp -j RETURN', '-A FORWARD -i eth0 -j U1', '-A FORWARD -p tcp -m tcp --dport 22 -j ACCEPT', '-A FORWARD -j LOG', 'COMMIT', ''].join('\n');
  const first = await fw.replace(parseIptables(text, { file: 'base.rules' }));
  assert.equal(first.method, 'rebuild');
  const spec = () => {
    const rs = fw.ruleset!;
    const ids = ruleIdsByChain(rs).get('4/FORWARD')!;
    return ids.slice(1).map((id) => ruleSpec(rs.rules[id].rule!, 4));
  };
  const edit = (cmd: string) => fw.edit((rs) => parseRuleCommand(cmd, rs));

  const a = await edit('-I FORWARD 2 -s 10.9.9.9/32 -j DROP');
  assert.equal(a.method, 'overlay');
  assert.equal(a.generation, first.generation + 1);
  assert.deepEqual(spec(), ['-i eth0 -j U1', '-s 10.9.9.9/32 -j DROP', '-p tcp -m tcp --dport 22 -j ACCEPT', '-j LOG']);
  assert.equal((await edit('-A FORWARD -p udp -j ACCEPT')).method, 'overlay');
  assert.equal((await edit('-D FORWARD 3')).method, 'overlay');
  assert.equal((await edit('-P FORWARD ACCEPT')).method, 'overlay');
  assert.deepEqual(spec(), ['-i eth0 -j U1', '-s 10.9.9.9/32 -j DROP', '-j LOG', '-p udp -j ACCEPT']);
  assert.equal(fw.ruleset!.source.tables[0].chains.get('FORWARD')!.policy, 'ACCEPT');
  assert.equal(fw.ruleset!.stats.rulesPerHook['ipv4/FORWARD'], 5, 'flatwall_rules follows the edits (the rule in U1 is reachable too)');
  assert.equal(fw.ruleset!.stats.sourceRules, 5, 'four in FORWARD, one in U1');
  // The inserted rules have counters (zero: no traffic), and the dataplane counts their ids.
  const { ruleset, get } = await fw.ruleCounters();
  const inserted = ruleIdsByChain(ruleset!).get('4/FORWARD')![2];
  assert.ok(inserted >= first.rules + 4, `an id past the base's: ${inserted}`);
  assert.deepEqual(get(inserted), [0n, 0n]);
  assert.ok(fw.counters().rules.packets.length >= ruleset!.rules.length);
  // Rebuilds, each saying why.
  const u = await edit('-A U1 -j ACCEPT');
  assert.equal(u.method, 'rebuild');
  assert.match(u.fallback!, /U1/);
  const j = await edit('-I FORWARD 1 -j U1');
  assert.equal(j.method, 'rebuild');
  assert.match(j.fallback!, /-j U1/);
  const w = await edit('-I FORWARD 1 -o wan0 -j DROP');
  assert.match(w.fallback!, /wan0.*new/);
  // Rules with extension matches or targets carry match programs: a rebuild.
  const l = await edit('-I FORWARD 1 -m limit --limit 5/sec -j LOG');
  assert.equal(l.method, 'rebuild');
  assert.match(l.fallback!, /-m limit/);
  const t = await edit('-A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1200');
  assert.match(t.fallback!, /-j TCPMSS/);
  assert.equal((await edit('-D FORWARD 1')).method, 'overlay', 'deleting one is a dead range as any other');
  await edit('-D FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1200');
  // After a rebuild, edits take the overlay again; listing equals the sequence applied by hand.
  assert.equal((await edit('-I FORWARD 3 -p icmp -j REJECT')).method, 'overlay');
  assert.deepEqual(spec(), ['-o wan0 -j DROP', '-j U1', '-p icmp -j REJECT --reject-with icmp-port-unreachable', '-i eth0 -j U1', '-s 10.9.9.9/32 -j DROP', '-j LOG', '-p udp -j ACCEPT']);
  // A bad edit changes nothing.
  const gen = fw.status.generation;
  await assert.rejects(edit('-D FORWARD 99'), /rule number 99 does not exist/);
  assert.equal(fw.status.generation, gen);
  assert.equal(spec().length, 7);
  await fw.stop();
});

test('malformed edits are refused by the dataplane, naming what is wrong', () => {
  const c = compile(parseIptables(`*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -p tcp -j ACCEPT\n-A FORWARD -p udp -j LOG\nCOMMIT\n`, { file: 'm.rules' }));
  const state = initialEditState(c, 1)!;
  const plan = planEdit(c, state, parseRuleCommand('-I FORWARD 2 -s 10.0.0.1 -j LOG', c.source));
  assert.ok(typeof plan !== 'string');
  const good = plan.native.v4!;
  const keys = new Uint8Array(native().layout.key4!.size);
  const run = (v4: object, ruleCount = plan.native.ruleCount) =>
    native().evaluateRuleset({ buffer: c.buffer, ruleCount: c.rules.length, family: 4, keys, edits: [{ baseGeneration: 1, ruleCount, v4 }] });
  run(good); // the plan itself is fine
  const policy = c.tables.find((t) => t.hook === 'FORWARD' && t.family === 4)!.records - 1;
  const bad: [object, RegExp, number?][] = [
    [{ ...good, anchors: new Uint32Array([policy + 1]) }, /anchor past the policy/],
    [{ ...good, anchors: new Uint32Array(0) }, /one anchor per overlay record/],
    [{ ...good, dead: new Uint32Array([0, policy + 1]) }, /dead range outside the rules/],
    [{ ...good, dead: new Uint32Array([0, 1, 0, 1]) }, /dead ranges overlap/],
    [{ ...good, dead: new Uint32Array([1]) }, /pairs/],
    [{ ...good, policy: 2 }, /policy must be ACCEPT or DROP/],
    [{ ...good, records: good.records.slice(0, 10) }, /whole number of records/],
    [{ ...good }, /ruleCount .* outside/, c.rules.length + 70000],
    [{ ...good }, /rule_id past ruleCount/, c.rules.length],
  ];
  // An overlay LOG continuing past the overlay's end + 1.
  const far = good.records.slice(0);
  new DataView(far).setUint32((native().layout.record4 as Record<string, { offset: number }>).arg.offset, 5, true);
  bad.push([{ ...good, records: far }, /continuation index \(arg\) is past the end of the overlay/]);
  for (const [v4, re, rc] of bad) assert.throws(() => run(v4, rc), re);
});

test('after a snapshot replace, edits take the overlay once its metadata (with the rule spans) is loaded', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fw-edits-'));
  const fw = new Firewall({ ports: [{ name: 'edy0', kind: 'afpacket' }, { name: 'edy1', kind: 'afpacket' }], ruleFiles: [], workers: 1 });
  try {
    const text = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]',
      '-A FORWARD -p tcp -m tcp --dport 22 -j ACCEPT', '-A FORWARD -j LOG', 'COMMIT', ''].join('\n');
    await fw.replace(parseIptables(text, { file: 'a.rules' }));
    const c = compile(parseIptables(text.replace('--dport 22', '--dport 2222'), { file: 'b.rules' }));
    writeSnapshot(join(dir, 'b.snap'), c, ['b.rules'], await buildImage(c));
    const r = await fw.replaceWithSnapshot(readSnapshot(join(dir, 'b.snap')));
    assert.equal(fw.loadingMetadata, true);
    assert.equal(await r.metadata, true);
    const e = await fw.edit((rs) => parseRuleCommand('-I FORWARD 2 -p udp -j DROP', rs));
    assert.equal(e.method, 'overlay', e.fallback);
    const rs = fw.ruleset!;
    assert.deepEqual(ruleIdsByChain(rs).get('4/FORWARD')!.slice(1).map((id) => ruleSpec(rs.rules[id].rule!, 4)),
      ['-p tcp -m tcp --dport 2222 -j ACCEPT', '-p udp -j DROP', '-j LOG']);
  } finally {
    await fw.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A random edit line against `chain`'s current length (ctl apply files). */
function randomBatchLine(rng: Prng, rs: CompiledRuleSet['source'], f: Fam): string {
  const len = rs.tables[0].chains.get('FORWARD')!.rules.length;
  const spec = () => `${randomMatch(rng, f)} ${pick(rng, ['-j ACCEPT', '-j DROP', '-j REJECT', '-j LOG', ''])}`.trim();
  const r = rng.int(10);
  if (r < 3) return `-I FORWARD ${1 + rng.int(len + 1)} ${spec()}`;
  if (r < 5) return `-A FORWARD ${spec()}`;
  if (r < 7 && len > 0) return `-D FORWARD ${1 + rng.int(len)}`;
  if (r < 9 && len > 0) return `-R FORWARD ${1 + rng.int(len)} ${spec().replace(/-[sd] \S+,\S+/g, '')}`;
  return `-P FORWARD ${pick(rng, ['ACCEPT', 'DROP'])}`;
}

test('ctl apply batches: one overlay delta walks every key as a full compile of the edited file does', () => {
  let overlays = 0;
  for (const [f, seeds] of [[V4, 30], [V6, 10]] as const) for (let seed = 1; seed <= seeds; seed++) {
    const rng = new Prng(500 + seed);
    const running = compile(parseIptables(randomRuleSet(rng, f), { file: 'r.rules', family: f.family }));
    const state = initialEditState(running, 1)!;
    // Lines drawn one at a time against the rule set the lines before leave.
    const lines: string[] = [];
    let sim = cloneRuleSet(running.source);
    for (let k = 1 + rng.int(8); k > 0; k--) {
      const line = randomBatchLine(rng, sim, f);
      lines.push(line);
      sim = parseBatch(`${lines.join('\n')}\n`, 'b.rules', running.source, f.family).next;
    }
    const batch = parseBatch(`*filter\n${lines.join('\n')}\nCOMMIT\n`, 'b.rules', running.source, f.family);
    const full = compile(batch.next);
    const plan = planBatch(running, state, batch.ops.filter(isRuleOp));
    if (typeof plan === 'string') continue;
    overlays++;
    const [k1, k2] = randomKeys(rng, 300, [plan.compiled, full], f);
    const got = walks(state.base.buffer, state.baseRuleCount, [plan.native], plan.compiled, k1, f.family);
    const want = walks(full.buffer, full.rules.length, [], full, k2, f.family);
    for (let i = 0; i < want.length; i++) {
      if (got[i] !== want[i]) assert.fail(`IPv${f.family} seed ${seed} (${lines.join(' | ')}) key ${i}: batch ${got[i]}, rebuild ${want[i]}`);
    }
    // The running rule set is untouched until the plan is adopted.
    assert.equal(running.source.tables[0].chains.get('FORWARD')!.rules.length, parseIptables(randomRuleSet(new Prng(500 + seed), f), { file: 'r', family: f.family }).tables[0].chains.get('FORWARD')!.rules.length);
  }
  assert.ok(overlays >= 20, `overlay batches: ${overlays}`); // the rest name an interface the base build did not know: a rebuild
});

test('Firewall.applyBatch: one generation for the whole file, errors at FILE:LINE:COL apply nothing, chains rebuild', async () => {
  const fw = new Firewall({ ports: [{ name: 'edb0', kind: 'afpacket' }, { name: 'edb1', kind: 'afpacket' }], ruleFiles: [], workers: 1 });
  const text = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]',
    '-A FORWARD -p tcp -m tcp --dport 22 -j ACCEPT', '-A FORWARD -p tcp -m tcp --dport 80 -j ACCEPT', '-A FORWARD -j LOG', 'COMMIT', ''].join('\n');
  const first = await fw.replace(parseIptables(text, { file: 'base.rules' }));
  const spec = () => {
    const rs = fw.ruleset!;
    return ruleIdsByChain(rs).get('4/FORWARD')!.slice(1).map((id) => ruleSpec(rs.rules[id].rule!, 4));
  };
  const file = ['# edits for tonight', '*filter', '-I FORWARD 1 -s 10.9.9.9/32 -j DROP', '-R FORWARD 3 -p tcp -m tcp --dport 443 -j ACCEPT',
    '-D FORWARD -j LOG', '-A FORWARD -p udp -m udp --dport 53 -j ACCEPT', '-P FORWARD ACCEPT', 'COMMIT', ''].join('\n');
  const a = await fw.applyBatch(file, 'tonight.rules', 4);
  assert.equal(a.method, 'overlay', a.fallback);
  assert.equal(a.generation, first.generation + 1, 'one generation for five edits');
  assert.equal(a.edits, 5);
  assert.deepEqual(spec(), ['-s 10.9.9.9/32 -j DROP', '-p tcp -m tcp --dport 22 -j ACCEPT', '-p tcp -m tcp --dport 443 -j ACCEPT', '-p udp -m udp --dport 53 -j ACCEPT']);
  assert.equal(fw.ruleset!.source.tables[0].chains.get('FORWARD')!.policy, 'ACCEPT');
  // The new rules name their file and line.
  const rs = fw.ruleset!;
  const firstRule = rs.rules[ruleIdsByChain(rs).get('4/FORWARD')![1]];
  assert.deepEqual([firstRule.rule!.pos.file, firstRule.rule!.pos.line], ['tonight.rules', 3]);
  // An error anywhere: nothing applied, the position is the file's.
  const gen = fw.status.generation;
  const before = spec();
  await assert.rejects(fw.applyBatch('-A FORWARD -j ACCEPT\n-I FORWARD 1 -p tcp --dport 99999 -j DROP\n', 'bad.rules', 4), /^RuleError: bad\.rules:2:29: port 99999 is out of range/);
  await assert.rejects(fw.applyBatch('-D FORWARD 1\n-R FORWARD 9 -j DROP\n', 'bad.rules', 4), /bad\.rules:2:12: rule number 9 does not exist \(chain FORWARD has 3\)/);
  await assert.rejects(fw.applyBatch('*raw\n-A PREROUTING -j NOTRACK\n', 'bad.rules', 4), /bad\.rules:1:1: apply edits the filter table/);
  await assert.rejects(fw.applyBatch(':FORWARD DROP [0:0]\n', 'bad.rules', 4), /bad\.rules:1:1: a chain line resets the chain/);
  await assert.rejects(fw.applyBatch('# nothing\n', 'bad.rules', 4), /no edits in the file/);
  assert.equal(fw.status.generation, gen);
  assert.deepEqual(spec(), before);
  // Chains: a rebuild, still one generation, and later lines may use the new chain.
  const c = await fw.applyBatch('-N SSH\n-A SSH -s 192.0.2.0/24 -j ACCEPT\n-I FORWARD 1 -p tcp -m tcp --dport 22 -j SSH\n', 'chains.rules', 4);
  assert.equal(c.method, 'rebuild');
  assert.match(c.fallback!, /creates or deletes chains/);
  assert.equal(c.generation, gen + 1);
  assert.equal(spec()[0], '-p tcp -m tcp --dport 22 -j SSH');
  await assert.rejects(fw.applyBatch('-X SSH\n', 'x.rules', 4), /x\.rules:1:4: chain SSH is not empty/);
  await fw.stop();
});
