// The Firewall's conntrack surface without traffic (no ports are opened
// before start()): options reach the dataplane, counters have the
// node_exporter-style fields, list/count/flush/delete work on an idle
// dataplane, bad input is refused; and `flatwall run`'s conntrack flags.
// Traffic through it: test/e2e/conntrack-*.test.ts.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Firewall } from './firewall';
import { parseIptables } from '../rules/iptables/parse';
import { useSetStore } from '../sets/registry';

const ports = [{ name: 'ctx0', kind: 'afpacket' as const }, { name: 'ctx1', kind: 'afpacket' as const }];

test('conntrack options, counters and control on an idle dataplane', async () => {
  const fw = new Firewall({ ports, ruleFiles: [], workers: 2, conntrackMax: 1000, conntrackTimeouts: { udp: 5, tcp_established: 3600 } });
  assert.deepEqual(fw.conntrackCount(), { entries: 0, limit: 1000 });
  const c = fw.counters().conntrack;
  for (const k of ['entries', 'limit', 'found', 'invalid', 'ignore', 'insert', 'insert_failed', 'drop', 'early_drop', 'expired', 'memoryBytes'])
    assert.equal(typeof c[k], 'number', k);
  assert.equal(c.enabled, true);
  // 2 workers x next power of two >= 1.5 x 500 slots x 64 bytes, plus the
  // shared ICMP-error index: 2048 fingerprints of 8 bytes.
  assert.equal(c.memoryBytes, 2 * 1024 * 64 + 2048 * 8);
  assert.deepEqual(await fw.conntrackList({ proto: 'tcp', addr: '10.0.0.1' }, 10), []);
  assert.equal(await fw.conntrackFlush(), 0);
  assert.equal(await fw.conntrackDelete({ proto: 'udp', src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2 }), false);
  assert.equal(await fw.conntrackDelete({ proto: 'icmpv6', src: 'fd00::1', dst: 'fd00::2', id: 7 }), false);
});

test('conntrack off: nothing tracked, no table', async () => {
  const fw = new Firewall({ ports, ruleFiles: [], workers: 1, conntrack: false });
  const c = fw.counters().conntrack;
  assert.equal(c.enabled, false);
  assert.equal(c.memoryBytes, 0);
  assert.deepEqual(await fw.conntrackList(), []);
});

test('bad conntrack input is refused with a message', () => {
  assert.throws(() => new Firewall({ ports, ruleFiles: [], workers: 1, conntrackTimeouts: { tcp_bogus: 5 } }), /unknown conntrack timeout 'tcp_bogus'/);
  assert.throws(() => new Firewall({ ports, ruleFiles: [], workers: 1, conntrackTimeouts: { udp: 0 } }), /must be >= 1/);
  assert.throws(() => new Firewall({ ports, ruleFiles: [], workers: 1, conntrackMax: 0 }), /conntrackMax/);
  const fw = new Firewall({ ports, ruleFiles: [], workers: 1 });
  assert.throws(() => fw.conntrackList({ addr: '10.0.0.300' }), /bad address/);
  assert.throws(() => fw.conntrackList({ proto: 'bogus' }), /unknown proto/);
  assert.throws(() => fw.conntrackDelete({ proto: 'tcp', src: '10.0.0.1', dst: 'fd00::1' }), /different families/);
});

test('flatwall run: conntrack flags are checked before anything starts (exit 2)', () => {
  const cli = join(__dirname, '..', 'cli', 'main.js');
  const run = (...extra: string[]) => spawnSync(process.execPath, [cli, 'run', '--port', 'ctx0', '--port', 'ctx1', '-r', '/nonexistent', ...extra], { encoding: 'utf8' });
  for (const bad of [['--ct-timeout', 'bogus=5'], ['--ct-timeout', 'udp=x'], ['--ct-timeout', 'udp=0'], ['--conntrack-max', '0']]) {
    const r = run(...bad);
    assert.equal(r.status, 2, `${bad.join(' ')}: ${r.stderr}`);
  }
  assert.match(spawnSync(process.execPath, [cli, 'run', '--help'], { encoding: 'utf8' }).stdout, /--no-conntrack/);
});

test('flatwall run: dataplane tuning flags are checked (exit 2) and reach the dataplane', () => {
  const cli = join(__dirname, '..', 'cli', 'main.js');
  const run = (...extra: string[]) => spawnSync(process.execPath, [cli, 'run', '--port', 'ctx0', '--port', 'ctx1', '-r', '/nonexistent', ...extra], { encoding: 'utf8' });
  for (const bad of [['--tx-mode', 'mmap'], ['--busy-poll', '-1'], ['--busy-poll', '2000000'], ['--busy-poll', 'x']]) {
    const r = run(...bad);
    assert.equal(r.status, 2, `${bad.join(' ')}: ${r.stderr}`);
  }
  // Good values pass the usage checks and fail later, on the missing rule file (exit 1).
  const ok = run('--tx-mode', 'sendmmsg', '--busy-poll', '50');
  assert.equal(ok.status, 1, ok.stderr);
  assert.match(spawnSync(process.execPath, [cli, 'run', '--help'], { encoding: 'utf8' }).stdout, /--tx-mode MODE/);
  // The Firewall hands them to the addon, which validates them too.
  new Firewall({ ports, ruleFiles: [], workers: 1, txMode: 'sendmmsg', busyPollUs: 50 });
  assert.throws(() => new Firewall({ ports, ruleFiles: [], workers: 1, txMode: 'x' as 'ring' }), /txMode/);
});

test('counters({ rules: false }) leaves out the per-rule arrays, and nothing else', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fw-counters-'));
  try {
    const file = join(dir, 'r.rules');
    writeFileSync(file, '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -p tcp -j ACCEPT\nCOMMIT\n');
    const fw = new Firewall({ ports, ruleFiles: [file], workers: 1 });
    await fw.load();
    const full = fw.counters();
    const lean = fw.counters({ rules: false });
    assert.ok(full.rules.packets.length >= 2, 'a loaded rule set has per-rule counters');
    assert.equal(lean.rules, undefined);
    const { rules: _rules, ...rest } = full;
    assert.deepEqual(lean, rest);
    assert.deepEqual(lean.ports.map((p: { name: string }) => p.name), ['ctx0', 'ctx1']);
    assert.throws(() => fw.counters({ rules: 'no' } as never), /rules must be a boolean/);
    await fw.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stateful matches keep their state across a reload of unchanged rules, and are listed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fw-states-'));
  try {
    const file = join(dir, 'r.rules');
    const text = (extra: string) => '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n' +
      '-A FORWARD -m limit --limit 3/min -j LOG\n' +
      '-A FORWARD -p tcp --dport 22 -m recent --set --name SSH --mask 255.255.255.0 --rsource\n' +
      '-A FORWARD -p udp -m hashlimit --hashlimit-upto 5/sec --hashlimit-mode srcip --hashlimit-name udp -j ACCEPT\n' +
      `${extra}COMMIT\n`;
    writeFileSync(file, text(''));
    const fw = new Firewall({ ports, ruleFiles: [file], workers: 1 });
    await fw.load();
    const before = fw.matchStates(true);
    assert.deepEqual(before.map((s) => s.kind).sort(), ['hashlimit', 'limit', 'recent']);
    const recent = before.find((s) => s.kind === 'recent')!;
    assert.equal(recent.key, 'recent:SSH');
    assert.equal(recent.capacity, 100);
    assert.equal(typeof recent.listing, 'string');
    assert.equal(before.find((s) => s.kind === 'hashlimit')!.key, 'hashlimit:4:udp');
    assert.match(before.find((s) => s.kind === 'limit')!.key, /^limit:4\/FORWARD\/-m limit --limit 3\/min -j LOG#1$/);
    // A reload that adds a rule keeps the three states (keys and
    // configurations unchanged; native/test/extensions_test.cc checks that a
    // second build gets the very same state objects).
    writeFileSync(file, text('-A FORWARD -m limit --limit 1/sec -j ACCEPT\n'));
    await fw.load();
    const after = fw.matchStates();
    assert.equal(after.length, 4);
    for (const s of before) assert.ok(after.some((a) => a.key === s.key), `${s.key} kept`);
    await fw.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a set that rules use cannot be destroyed or renamed; ipset list counts the rules', async () => {
  const fw = new Firewall({ ports: [{ name: 'fsr0', kind: 'afpacket' }, { name: 'fsr1', kind: 'afpacket' }], ruleFiles: [], workers: 1 });
  useSetStore(fw.sets);
  try {
    fw.sets.restore('create ban hash:ip family inet\nadd ban 192.0.2.1\ncreate spare hash:ip family inet\n', 'sets');
    const text = (rules: string) => `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${rules}COMMIT\n`;
    await fw.replace(parseIptables(text('-A FORWARD -m set --match-set ban src -j DROP\n-A FORWARD -m set --match-set ban dst -j DROP\n'), { file: 'r' }));
    assert.match(fw.sets.listText('ban', { terse: true }), /^References: 2$/m);
    assert.throws(() => fw.sets.restore('destroy ban\n', 'cmd'), /Set cannot be destroyed: it is in use by a kernel component/);
    assert.throws(() => fw.sets.restore('rename ban other\n', 'cmd'), /Set cannot be renamed: it is in use/);
    fw.sets.restore('destroy spare\n', 'cmd'); // unused: fine
    // Once no rule names it, it goes.
    await fw.replace(parseIptables(text('-A FORWARD -j ACCEPT\n'), { file: 'r' }));
    assert.match(fw.sets.listText('ban', { terse: true }), /^References: 0$/m);
    fw.sets.restore('destroy ban\n', 'cmd');
  } finally {
    useSetStore(undefined);
    await fw.stop();
  }
});
