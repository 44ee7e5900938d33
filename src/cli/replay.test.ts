// The whole offline pipeline against the reference: random rule sets are
// compiled, random frames go through the native frame parser and classifier
// (replayFrames, what `flatwall replay` and the dataplane use), and every
// verdict and every per-rule hit count must equal the chain-walking
// reference's. Also the CLI itself, end to end, on a small capture, and
// stateful replay: the ct state of every frame of scripted TCP/UDP/ICMP
// sequences (test/ct-frames.ts), timeouts on the capture's clock, a full table.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseIptables } from '../rules/iptables/parse';
import { compile, ruleConds } from '../rules/compile';
import { native } from '../native';
import { readPcap, writePcap } from '../io/pcap';
import { evalIptables, type Pkt } from '../../test/reference';
import { randomPacket, randomRuleset, rng } from '../../test/random-rules';
import { frame } from '../../test/frames';
import { countingRuleset, ctScript, expectedCt, expectedPass, stepFrame, stepsPcap } from '../../test/ct-frames';
import { ruleset, type End } from '../../test/e2e/ct-driver';

const CT_UNTRACKED = 16; // what the stateless dataplane gives every packet

test('replayFrames agrees with the reference on random rule sets and frames', async () => {
  let frames = 0;
  for (let seed = 1; seed <= 60; seed++) {
    const r = rng(1000 + seed);
    const rs = parseIptables(randomRuleset(r, 1 + Math.floor(r() * 4), 5 + Math.floor(r() * 30)), { file: `r${seed}` });
    const c = compile(rs);
    const policyId = c.rules.find((x) => x.policy && x.chain === 'FORWARD')!.id;
    const iif = ['eth0', 'eth1', 'veth3', 'wan0', 'lo'][seed % 5];
    const oif = ['wan0', 'eth2', 'x', 'veth9', 'eth0'][seed % 5];
    const pkts: Pkt[] = [];
    const bufs: Buffer[] = [];
    for (let k = 0; k < 150; k++) {
      const p = randomPacket(r);
      // What a complete frame can carry: a real L4 header, no fragments.
      const proto = [6, 17, 1][k % 3];
      const pk: Pkt = { ...p, proto, iif, oif, hasL4: true, ct: CT_UNTRACKED, tcpFlags: proto === 6 ? p.tcpFlags : 0,
        sport: proto === 1 ? 0 : p.sport, dport: proto === 1 ? 0 : p.dport,
        icmpType: proto === 1 ? p.icmpType : 0, icmpCode: proto === 1 ? p.icmpCode : 0 };
      pkts.push(pk);
      bufs.push(frame({ family: 4, src: pk.src, dst: pk.dst, proto, sport: pk.sport, dport: pk.dport, tcpFlags: pk.tcpFlags, icmpType: pk.icmpType, icmpCode: pk.icmpCode }));
    }
    const offsets = new Uint32Array(bufs.length + 1);
    bufs.forEach((b, i) => (offsets[i + 1] = offsets[i] + b.length));
    const res = await native().replayFrames(c.buffer, Buffer.concat(bufs), offsets, {
      iif: c.ifaces.classOf(iif), oif: c.ifaces.classOf(oif), ruleCount: c.rules.length,
    });
    const hits = new Array<number>(c.rules.length).fill(0);
    pkts.forEach((p, i) => {
      const want = evalIptables(rs.tables[0], 'FORWARD', p, policyId);
      for (const id of want.counted) hits[id]++;
      const got = ['ACCEPT', 'DROP', 'REJECT'][res.verdict[i]];
      assert.equal(got, want.verdict, `seed ${seed} frame ${i}: ${JSON.stringify(p)}`);
      assert.equal(res.finalRule[i], want.counted.at(-1), `seed ${seed} frame ${i}: deciding rule`);
      frames++;
    });
    hits.forEach((h, id) => {
      if (!c.rules[id].internal) assert.equal(res.hits[id], h, `seed ${seed}: hits of rule ${id}`);
    });
  }
  assert.ok(frames >= 9000);
});

// A cut-short L4 header (native/dataplane/hotdrop.h) against the kernel's
// chain walk (the reference throws at the first L4 match it reaches). With
// every conntrack and iprange match written before the L4 matches the walk
// must be exact: drop where the kernel drops, count what came before, judge
// the rest like a header-less packet. As generated (those matches after the
// L4 ones), flatwall may drop more (the hot-drop test then skips the rule's
// ct mask / addresses), never less. Rules that can never match compile to
// no record and cannot hot-drop (a documented deviation): the reference
// walks the chains without them.
async function truncatedRun(seed: number, l4Last: boolean) {
  const r = rng(5000 + seed);
  let text = randomRuleset(r, 1 + Math.floor(r() * 4), 5 + Math.floor(r() * 30));
  if (l4Last) {
    text = text.split('\n').map((l) => {
      const head = /^-A \S+/.exec(l);
      if (!head) return l;
      const moved: string[] = [];
      const rest = l.slice(head[0].length).replace(/ -m (conntrack|iprange) (! )?--(ctstate|src-range) \S+/g, (m) => (moved.push(m), ''));
      return head[0] + moved.join('') + rest;
    }).join('\n');
  }
  const rs = parseIptables(text, { file: `t${seed}` });
  const c = compile(rs);
  const table = { ...rs.tables[0], chains: new Map([...rs.tables[0].chains].map(([k, ch]) => [k, { ...ch, rules: ch.rules.filter((x) => ruleConds(x, 4, c.ifaces).length > 0) }])) };
  const policyId = c.rules.find((x) => x.policy && x.chain === 'FORWARD')!.id;
  const iif = ['eth0', 'eth1', 'veth3', 'wan0', 'lo'][seed % 5];
  const oif = ['wan0', 'eth2', 'x', 'veth9', 'eth0'][seed % 5];
  const pkts: Pkt[] = [];
  const bufs: Buffer[] = [];
  for (let k = 0; k < 150; k++) {
    const p = randomPacket(r);
    const proto = [6, 17, 1, 47][k % 4];
    // 3 bytes of L4 header: short for TCP, UDP and ICMP; GRE has none to miss.
    pkts.push({ ...p, proto, iif, oif, hasL4: proto === 47, truncated: proto !== 47, ct: CT_UNTRACKED, sport: 0, dport: 0, icmpType: 0, icmpCode: 0, tcpFlags: 0 });
    bufs.push(frame({ family: 4, src: p.src, dst: p.dst, proto, truncateL4: proto === 47 ? undefined : 3 }));
  }
  const offsets = new Uint32Array(bufs.length + 1);
  bufs.forEach((b, i) => (offsets[i + 1] = offsets[i] + b.length));
  const opts = { iif: c.ifaces.classOf(iif), oif: c.ifaces.classOf(oif), ruleCount: c.rules.length };
  const frames = Buffer.concat(bufs);
  return {
    c, pkts, want: pkts.map((p) => evalIptables(table, 'FORWARD', p, policyId)),
    res: await native().replayFrames(c.buffer, frames, offsets, { ...opts, hotdropBudget: 0xffffffff }),
    bounded: await native().replayFrames(c.buffer, frames, offsets, opts),
    strict: await native().replayFrames(c.buffer, frames, offsets, { ...opts, dropL4Truncated: true }),
  };
}

test('replayFrames: a truncated L4 header hot-drops exactly where the kernel chain walk does', async () => {
  let hot = 0, judged = 0, bound = 0;
  for (let seed = 1; seed <= 50; seed++) {
    const { c, pkts, want, res, bounded, strict } = await truncatedRun(seed, true);
    const hits = new Array<number>(c.rules.length).fill(0);
    pkts.forEach((p, i) => {
      const w = want[i];
      for (const id of w.counted) hits[id]++;
      const where = `seed ${seed} frame ${i}: ${JSON.stringify(p)}`;
      assert.equal(['ACCEPT', 'DROP', 'REJECT'][res.verdict[i]], w.verdict, where);
      assert.equal(res.hot[i], w.hotdrop ? 1 : 0, where);
      if (w.hotdrop) {
        assert.equal(res.finalRule[i], 0xffffffff, where);
        assert.equal(res.reasonNames[res.reason[i]], 'l4_truncated', where);
        hot++;
      } else {
        assert.equal(res.finalRule[i], w.counted.at(-1), `${where}: deciding rule`);
        if (p.truncated) judged++;
      }
      // The default bound only ever fails closed.
      if (bounded.hot[i] === 2) bound++, assert.equal(bounded.verdict[i], 1, where);
      else assert.equal(bounded.verdict[i], res.verdict[i], where);
      // --drop-l4-truncated: every truncated frame dropped before the rules.
      if (p.truncated) assert.equal(strict.verdict[i], 0xff, where);
    });
    hits.forEach((h, id) => {
      if (!c.rules[id].internal) assert.equal(res.hits[id], h, `seed ${seed}: hits of rule ${id}`);
    });
  }
  assert.ok(hot > 300 && judged > 300, `${hot} hot-dropped, ${judged} truncated and judged (${bound} by the bound)`);
});

test('replayFrames: with conntrack/iprange after the L4 match, a truncated header is never let through where the kernel drops it', async () => {
  let over = 0, hot = 0;
  for (let seed = 1; seed <= 50; seed++) {
    const { pkts, want, res } = await truncatedRun(seed, false);
    pkts.forEach((p, i) => {
      const w = want[i];
      const where = `seed ${seed} frame ${i}: ${JSON.stringify(p)}`;
      if (w.hotdrop) {
        assert.equal(res.hot[i], 1, where);
        hot++;
      } else if (res.hot[i]) {
        over++; // dropped where the kernel would go on: sound, and documented
      } else {
        assert.equal(['ACCEPT', 'DROP', 'REJECT'][res.verdict[i]], w.verdict, where);
        assert.equal(res.finalRule[i], w.counted.at(-1), where);
      }
    });
  }
  assert.ok(hot > 300, `${hot} hot-dropped, ${over} more than the kernel`);
});

test('replayFrames refuses misuse with clear errors', async () => {
  const c = compile(parseIptables('*filter\n-A FORWARD -j DROP\nCOMMIT\n', { file: 'x' }));
  assert.throws(() => native().replayFrames(c.buffer, Buffer.alloc(4), new Uint32Array([0, 8]), { ruleCount: 1 }), /offsets run past the end/);
  assert.throws(() => native().replayFrames(c.buffer, Buffer.alloc(4), [0, 4], {}), /offsets must be a Uint32Array/);
  await assert.rejects(native().replayFrames(new ArrayBuffer(64), Buffer.alloc(0), new Uint32Array([0]), {}), /magic|header|size/i);
});

test('flatwall replay: verdicts, rule hits, --pass/--drop captures, --json', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fw-replay-'));
  try {
    const rules = join(dir, 'r.rules');
    writeFileSync(rules, '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n' +
      '-A FORWARD -p tcp -m tcp --dport 80 -j ACCEPT\n-A FORWARD -p udp -j REJECT\nCOMMIT\n');
    const f = [
      frame({ family: 4, src: 0x0a000001, dst: 0x0a000002, proto: 6, sport: 1234, dport: 80 }),
      frame({ family: 4, src: 0x0a000001, dst: 0x0a000002, proto: 6, sport: 1234, dport: 22 }),
      frame({ family: 4, src: 0x0a000001, dst: 0x0a000002, proto: 17, sport: 5, dport: 53 }),
      Buffer.from('0200000000020200000000010806', 'hex'), // ARP, cut short: still ARP by ethertype
    ];
    const broken = Buffer.from(f[0]);
    broken[24] ^= 0xff; // IPv4 header checksum
    f.push(broken);
    const pcap = join(dir, 'in.pcap');
    writeFileSync(pcap, writePcap(f.map((data, i) => ({ tsSec: i, tsFrac: 0, origLen: data.length, data }))));
    const cli = join(__dirname, 'main.js');
    const out = JSON.parse(execFileSync(process.execPath, [cli, 'replay', '--json', '-r', rules, '-p', pcap,
      '--pass', join(dir, 'pass.pcap'), '--drop', join(dir, 'drop.pcap')], { encoding: 'utf8' }));
    assert.deepEqual(out.frames.map((x: { verdict: string }) => x.verdict), ['ACCEPT', 'DROP', 'REJECT', 'PASS', 'MALFORMED']);
    assert.equal(out.frames[4].reason, 'ip4_bad_checksum');
    assert.deepEqual(out.summary, { frames: 5, accepted: 1, dropped: 1, rejected: 1, malformed: 1, notIp: 1,
      ctstates: { INVALID: 0, NEW: 3, ESTABLISHED: 0, RELATED: 0, UNTRACKED: 0 } });
    assert.deepEqual(out.frames.map((x: { ctstate?: string }) => x.ctstate), ['NEW', 'NEW', 'NEW', undefined, undefined]);
    assert.deepEqual(out.rules.map((h: { line?: number; policy?: string; packets: number }) => [h.line ?? h.policy, h.packets]), [['DROP', 1], [5, 1], [6, 1]]);
    assert.deepEqual(readPcap(readFileSync(join(dir, 'pass.pcap'))).records.map((r) => r.tsSec), [0, 3]);
    assert.deepEqual(readPcap(readFileSync(join(dir, 'drop.pcap'))).records.map((r) => r.tsSec), [1, 2, 4]);
    const text = execFileSync(process.execPath, [cli, 'replay', '-r', rules, '-p', pcap], { encoding: 'utf8' });
    assert.match(text, /5 frames: 1 accepted, 1 dropped, 1 rejected, 1 malformed, 1 not IP/);
    assert.match(text, /^ {6}1 {2}ACCEPT {4}NEW {9}.*r\.rules:5 FORWARD#1$/m);
    assert.match(text, /^ {6}4 {2}PASS {6}- {11}arp \(not filtered\)$/m);
    assert.match(text, /ctstate: 0 INVALID, 3 NEW, 0 ESTABLISHED, 0 RELATED, 0 UNTRACKED\n/);
    // Errors: a truncated capture, a pcapng file, a bad rule file.
    writeFileSync(join(dir, 'cut.pcap'), readFileSync(pcap).subarray(0, 60));
    const cut = spawnSync(process.execPath, [cli, 'replay', '-r', rules, '-p', join(dir, 'cut.pcap')], { encoding: 'utf8' });
    assert.equal(cut.status, 1);
    assert.match(cut.stderr, /record 1 data is cut short/);
    writeFileSync(join(dir, 'ng.pcap'), Buffer.from('0a0d0d0a000000000000000000000000000000000000000000000000', 'hex'));
    assert.match(spawnSync(process.execPath, [cli, 'replay', '-r', rules, '-p', join(dir, 'ng.pcap')], { encoding: 'utf8' }).stderr, /pcapng is not supported/);
    writeFileSync(join(dir, 'bad.rules'), '*filter\n-A FORWARD -p tcp --dport 99999 -j ACCEPT\nCOMMIT\n');
    const bad = spawnSync(process.execPath, [cli, 'replay', '-r', join(dir, 'bad.rules'), '-p', pcap], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /bad\.rules:2:27: port 99999 is out of range/);
    assert.equal(spawnSync(process.execPath, [cli, 'replay', '-p', pcap]).status, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- stateful replay ---------------------------------------------------------

const A: End = { ns: '', dev: 'sa', mac: '02:00:00:00:0a:01', nextHop: '02:00:00:00:0f:0a', ip4: '10.0.1.1', ip6: 'fd00:1::1' };
const B: End = { ns: '', dev: 'ra', mac: '02:00:00:00:0b:01', nextHop: '02:00:00:00:0f:0b', ip4: '10.0.2.1', ip6: 'fd00:2::1' };

interface FrameOut { frame: number; verdict: string; ctstate?: string; in?: string; reason?: string; line?: number }

function replayJson(dir: string, args: string[]): { summary: Record<string, any>; frames: FrameOut[]; conntrack?: Record<string, number> } {
  const cli = join(__dirname, 'main.js');
  return JSON.parse(execFileSync(process.execPath, [cli, 'replay', '--json', ...args], { encoding: 'utf8', cwd: dir }));
}

for (const loose of [false, true]) {
  test(`flatwall replay tracks connections like netfilter (ctstate per frame, IPv4 and IPv6${loose ? '' : ', --ct-tcp-strict'})`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'fw-replay-ct-'));
    try {
      writeFileSync(join(dir, 'v4.rules'), countingRuleset(ruleset(false, 'fa')));
      writeFileSync(join(dir, 'v6.rules'), `# Generated by ip6tables-save\n${countingRuleset(ruleset(true, 'fa'))}`);
      for (const v6 of [false, true]) {
        const steps = ctScript(v6);
        writeFileSync(join(dir, 'in.pcap'), stepsPcap(steps, v6, { a: A, b: B }));
        const out = replayJson(dir, ['-r', 'v4.rules', '-r', 'v6.rules', '-p', 'in.pcap', '-i', 'fa', '-o', 'fb', '--out-mac', B.mac,
          ...(loose ? [] : ['--ct-tcp-strict'])]);
        const got = out.frames.map((f) => f.ctstate);
        const want = steps.map((s) => expectedCt(s, loose));
        const table = steps.map((s, i) => `${got[i] === want[i] ? '  ' : '!!'} ${String(got[i]).padEnd(11)} want ${want[i].padEnd(11)} ${s.what}`).join('\n');
        assert.deepEqual(got, want, `IPv${v6 ? 6 : 4}:\n${table}`);
        assert.deepEqual(out.frames.map((f) => f.verdict === 'ACCEPT'), steps.map((s) => expectedPass(s, loose)), `IPv${v6 ? 6 : 4} verdicts:\n${table}`);
        assert.deepEqual(out.frames.map((f) => f.in), steps.map((s) => (s.from === 'b' ? 'fb' : undefined)));
        const count = (st: string) => want.filter((w) => w === st).length;
        assert.deepEqual(out.summary.ctstates, { INVALID: count('INVALID'), NEW: count('NEW'), ESTABLISHED: count('ESTABLISHED'), RELATED: count('RELATED'), UNTRACKED: 0 });
        assert.equal(out.conntrack?.insert, steps.filter((s) => expectedCt(s, loose) === 'NEW' && expectedPass(s, loose)).length);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('flatwall replay: direction from --out-mac, --no-conntrack, timeouts on the capture clock, a full table', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fw-replay-ct-'));
  try {
    writeFileSync(join(dir, 'v4.rules'), ruleset(false, 'fa'));
    const steps = ctScript(false);
    writeFileSync(join(dir, 'in.pcap'), stepsPcap(steps, false, { a: A, b: B }));
    const base = ['-r', 'v4.rules', '-p', 'in.pcap', '-i', 'fa', '-o', 'fb'];
    // Without --out-mac every frame comes in on fa: the SYN from outside is
    // NEW and now accepted by the inside rule (the state itself is the same).
    const oneSide = replayJson(dir, base);
    const k = steps.findIndex((s) => s.what.startsWith('SYN from outside'));
    assert.deepEqual([oneSide.frames[k].ctstate, oneSide.frames[k].verdict, oneSide.frames[k].in], ['NEW', 'ACCEPT', undefined]);
    // Stateless: every IP frame UNTRACKED, the stateful rules drop them all.
    const off = replayJson(dir, [...base, '--no-conntrack']);
    assert.ok(off.frames.every((f) => f.ctstate === 'UNTRACKED' && f.verdict === 'DROP'));
    assert.equal(off.conntrack, undefined);
    assert.equal(off.summary.ctstates.UNTRACKED, steps.length);

    // UDP request at t=0, reply at t=+2 s, again at +2.5 s. udp=1: the
    // request's entry expired before the reply, which is a NEW flow from
    // outside (dropped); default 30 s: ESTABLISHED.
    const q = { from: 'a' as const, proto: 'udp' as const, sport: 5353, dport: 53, data: 4 };
    const r = { ...q, from: 'b' as const, sport: 53, dport: 5353 };
    const recs = [q, r, q].map((p, i) => {
      const data = stepFrame(p, i, false, { a: A, b: B });
      return { tsSec: 1000 + [0, 2, 2][i], tsFrac: [0, 0, 500_000][i], origLen: data.length, data };
    });
    writeFileSync(join(dir, 'udp.pcap'), writePcap(recs));
    const udp = ['-r', 'v4.rules', '-p', 'udp.pcap', '-i', 'fa', '-o', 'fb', '--out-mac', B.mac];
    assert.deepEqual(replayJson(dir, udp).frames.map((f) => f.ctstate), ['NEW', 'ESTABLISHED', 'ESTABLISHED']);
    const short = replayJson(dir, [...udp, '--ct-timeout', 'udp=1']);
    assert.deepEqual(short.frames.map((f) => `${f.ctstate} ${f.verdict}`), ['NEW ACCEPT', 'NEW DROP', 'NEW ACCEPT']);
    assert.equal(short.conntrack?.insert, 2);
    // The clock never runs backwards: the same capture with the last two
    // frames stamped before the first is tracked as if at t=0.
    writeFileSync(join(dir, 'back.pcap'), writePcap(recs.map((x, i) => ({ ...x, tsSec: i === 0 ? 1000 : 990 }))));
    assert.deepEqual(replayJson(dir, ['-r', 'v4.rules', '-p', 'back.pcap', '-i', 'fa', '-o', 'fb', '--out-mac', B.mac, '--ct-timeout', 'udp=1'])
      .frames.map((f) => f.ctstate), ['NEW', 'ESTABLISHED', 'ESTABLISHED']);

    // --conntrack-max 1: an assured flow fills the table, nothing can be
    // evicted, so the next accepted NEW flow is dropped (conntrack_full).
    const q2 = { ...q, sport: 5354 };
    const full = [q, r, q2].map((p, i) => {
      const data = stepFrame(p, i, false, { a: A, b: B });
      return { tsSec: 1000, tsFrac: i, origLen: data.length, data };
    });
    writeFileSync(join(dir, 'full.pcap'), writePcap(full));
    const f = replayJson(dir, ['-r', 'v4.rules', '-p', 'full.pcap', '-i', 'fa', '-o', 'fb', '--out-mac', B.mac, '--conntrack-max', '1']);
    assert.deepEqual(f.frames.map((x) => `${x.ctstate} ${x.verdict}`), ['NEW ACCEPT', 'ESTABLISHED ACCEPT', 'NEW DROP']);
    assert.equal(f.frames[2].reason, 'conntrack_full');
    assert.equal(f.frames[2].line, 8, 'the rule that accepted it is still named');
    assert.equal(f.conntrack?.insertFailed, 1);
    const cli = join(__dirname, 'main.js');
    const text = execFileSync(process.execPath, [cli, 'replay', '-r', 'v4.rules', '-p', 'full.pcap', '-i', 'fa', '-o', 'fb', '--out-mac', B.mac, '--conntrack-max', '1'], { encoding: 'utf8', cwd: dir });
    assert.match(text, /^ {6}3 {2}DROP {6}NEW {9}conntrack table full \(accepted by v4\.rules:8 FORWARD#4\)$/m);
    assert.match(text, /conntrack: 1 entries at the end \(limit 1\), 1 inserted, 0 expired, 0 early drops, 1 inserts failed/);

    // Usage errors: the same flag checks as flatwall run.
    for (const bad of [['--ct-timeout', 'bogus=5'], ['--ct-timeout', 'udp=0'], ['--conntrack-max', '0'], ['--out-mac', '02:00:00:00:00']]) {
      const res = spawnSync(process.execPath, [cli, 'replay', '-r', 'v4.rules', '-p', 'in.pcap', ...bad], { encoding: 'utf8', cwd: dir });
      assert.equal(res.status, 2, `${bad.join(' ')}: ${res.stderr}`);
    }
    assert.match(spawnSync(process.execPath, [cli, 'replay', '--help'], { encoding: 'utf8' }).stdout, /--ct-tcp-loose[\s\S]*--no-conntrack|--no-conntrack[\s\S]*--ct-tcp-loose/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('replayFrames: conntrack options are checked', async () => {
  const c = compile(parseIptables('*filter\n-A FORWARD -j DROP\nCOMMIT\n', { file: 'x' }));
  const one = { ruleCount: 1, conntrack: true };
  const f = new Uint32Array([0, 0]);
  assert.throws(() => native().replayFrames(c.buffer, Buffer.alloc(0), f, { ...one, timestamps: new BigUint64Array(2) }), /timestamps needs one element per frame/);
  assert.throws(() => native().replayFrames(c.buffer, Buffer.alloc(0), f, { ...one, timestamps: [0] }), /timestamps must be a BigUint64Array/);
  assert.throws(() => native().replayFrames(c.buffer, Buffer.alloc(0), f, { ...one, reverse: new Uint8Array(3) }), /reverse needs one element/);
  assert.throws(() => native().replayFrames(c.buffer, Buffer.alloc(0), f, { ...one, conntrackMax: 0 }), /conntrackMax must be in 1\.\.268435456/);
  assert.throws(() => native().replayFrames(c.buffer, Buffer.alloc(0), f, { ...one, conntrackTimeouts: { nope: 3 } }), /replayFrames: unknown conntrack timeout 'nope'/);
  const res = await native().replayFrames(c.buffer, Buffer.alloc(0), f, { ruleCount: 1 });
  assert.equal(res.conntrack, undefined, 'stateless unless asked');
});
