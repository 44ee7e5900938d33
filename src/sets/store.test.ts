// IpsetStore over the native store: restores are all or nothing with the
// failing line's position, multi-file loads, ipset test, the registry the
// rule compiler asks, references refusing destroy/rename, listing format
// details, and the packet side through the binding (dataplane's store too).
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { RuleError } from '../rules/errors';
import { native } from '../native';
import { IpsetStore, loadIpsetFiles } from './store';
import { setDims, setReferenceCounter, useSetStore } from './registry';
import { bystrcmp, headerText, listText, saveText } from './format';

function ruleErr(fn: () => unknown): RuleError {
  try {
    fn();
  } catch (e) {
    if (e instanceof RuleError) return e;
    throw e;
  }
  assert.fail('no RuleError');
}

test('a restore with an error applies nothing and names the line', () => {
  const s = new IpsetStore();
  s.restore('create keep hash:ip\nadd keep 1.1.1.1\n', 'a.ipset');
  const e = ruleErr(() => s.restore('create new hash:ip\nadd new 2.2.2.2\nadd keep 3.3.3.3\nadd keep 1.1.1.1\n', 'b.ipset'));
  assert.deepEqual([e.file, e.line, e.col, e.token], ['b.ipset', 4, 10, '1.1.1.1']);
  assert.equal(e.reason, "Element cannot be added to the set: it's already added");
  assert.deepEqual(s.names(), ['keep']);
  assert.equal(s.test('keep', '3.3.3.3').present, false);
  // Native refusals point at the element too.
  const full = ruleErr(() => s.restore('create f hash:ip maxelem 2\nadd f 10.0.0.0/30\n', 'c.ipset'));
  assert.deepEqual([full.line, full.col, full.reason], [2, 7, 'Hash is full, cannot add more elements']);
  const tmo = ruleErr(() => s.restore('add keep 4.4.4.4 timeout 5\n', 'd.ipset'));
  assert.equal(tmo.reason, 'Timeout cannot be used: set was created without timeout support');
  const exists = ruleErr(() => s.restore('create keep hash:ip\n', 'e.ipset'));
  assert.deepEqual([exists.col, exists.reason], [8, 'Set cannot be created: set with the same name already exists']);
  s.restore('create keep hash:ip -exist\nadd keep 1.1.1.1 -exist\n', 'f.ipset');
  s.restore('add keep 1.1.1.1\n', 'g.ipset', { exist: true });
  const swap = ruleErr(() => s.restore('create n hash:net\nswap keep n\n', 'h.ipset'));
  assert.deepEqual([swap.line, swap.reason], [2, 'The sets cannot be swapped: their type does not match']);
});

test('ipset files load as one step; a set from an earlier file is known to a later one', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flatwall-ipset-'));
  try {
    writeFileSync(join(dir, 'a.ipset'), 'create blocked hash:net timeout 600\nadd blocked 10.0.0.0/8 timeout 0\n');
    writeFileSync(join(dir, 'b.ipset'), 'add blocked 192.0.2.0/24\ncreate web hash:ip,port\nadd web 192.0.2.1,tcp:443\n');
    writeFileSync(join(dir, 'bad.ipset'), 'create other hash:ip\nadd other 1.2.3.4,80\n');
    const s = new IpsetStore();
    const r = loadIpsetFiles(s, [join(dir, 'a.ipset'), join(dir, 'b.ipset')]);
    assert.equal(r.sets, 2);
    assert.equal(r.commands, 5);
    assert.equal(s.test('blocked', '192.0.2.77').present, true);
    const e = ruleErr(() => loadIpsetFiles(s, [join(dir, 'bad.ipset')]));
    assert.equal(e.file, join(dir, 'bad.ipset'));
    assert.equal(e.line, 2);
    assert.match(e.reason, /resolving to IPv4 address failed/);
    assert.deepEqual(s.names(), ['blocked', 'web'], 'nothing of the bad file');
    const missing = ruleErr(() => loadIpsetFiles(s, [join(dir, 'nope.ipset')]));
    assert.match(missing.message, /nope\.ipset: cannot read the ipset file: No such file or directory$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ipset test names the element as ipset does', () => {
  const s = new IpsetStore();
  s.restore('create p hash:ip,port\nadd p 1.2.3.4,80\ncreate n hash:net\nadd n 10.0.0.0/8\nadd n 10.1.0.0/16 nomatch\n', 'f');
  assert.deepEqual(s.test('p', '1.2.3.4,http'), { present: true, element: '1.2.3.4,tcp:80' });
  assert.deepEqual(s.test('p', '1.2.3.4,udp:80'), { present: false, element: '1.2.3.4,udp:80' });
  assert.deepEqual(s.test('n', '10.2.0.1'), { present: true, element: '10.2.0.1' });
  assert.deepEqual(s.test('n', '10.1.0.1'), { present: false, element: '10.1.0.1' });
  assert.deepEqual(s.test('n', '10.0.0.1/8'), { present: true, element: '10.0.0.1/8' });
  assert.throws(() => s.test('n', '10.0.0.1-10.0.0.3'), /range of elements is not allowed in command test/);
  assert.throws(() => s.test('nope', '1.1.1.1'), /The set with the given name does not exist/);
});

test('the registry tells the rule compiler type, family, dimensions and id', () => {
  const s = new IpsetStore();
  s.restore('create a hash:ip family inet6\ncreate b hash:net,port\ncreate c bitmap:port range 1-10\n', 'f');
  useSetStore(s);
  try {
    assert.deepEqual(setDims('a'), { type: 'hash:ip', family: 'inet6', dims: 1, id: s.native.find('a') });
    assert.deepEqual(setDims('b'), { type: 'hash:net,port', family: 'inet', dims: 2, id: s.native.find('b') });
    assert.deepEqual(setDims('c'), { type: 'bitmap:port', family: undefined, dims: 1, id: s.native.find('c') });
    assert.equal(setDims('nope'), undefined);
    // Referenced sets cannot be destroyed or renamed (the kernel's -EBUSY), only swapped.
    setReferenceCounter((n) => (n === 'a' ? 2 : 0));
    assert.match(ruleErr(() => s.restore('destroy a\n', 'f')).reason, /Set cannot be destroyed: it is in use by a kernel component/);
    assert.match(ruleErr(() => s.restore('destroy\n', 'f')).reason, /in use/);
    assert.match(ruleErr(() => s.restore('rename a z\n', 'f')).reason, /Set cannot be renamed: it is in use by another system/);
    assert.match(s.listText('a', { terse: true }), /^References: 2$/m);
    s.restore('destroy b\n', 'f');
  } finally {
    setReferenceCounter(undefined);
    useSetStore(undefined);
  }
});

test('list and save text: terse, names, headers, extensions', () => {
  const s = new IpsetStore();
  s.restore(`create t hash:net timeout 100 counters comment initval 0x1 bucketsize 3
add t 10.0.0.0/16 timeout 0 packets 5 bytes 700
add t 10.0.0.0/8 timeout 0 nomatch comment "c d"
create b bitmap:port range 0-65535 timeout 5
create e hash:ip hashsize 5
`, 'f');
  const [t, b, e] = s.list();
  assert.equal(headerText(t), 'family inet hashsize 1024 maxelem 65536 timeout 100 counters comment bucketsize 4 initval 0x00000001');
  assert.equal(headerText(b), 'range 0-65535 timeout 5');
  assert.match(headerText(e), /^family inet hashsize 64 maxelem 65536 bucketsize 12 initval 0x[0-9a-f]{8}$/);
  assert.equal(saveText([t]), `create t hash:net family inet hashsize 1024 maxelem 65536 timeout 100 counters comment bucketsize 4 initval 0x00000001
add t 10.0.0.0/16 timeout 0 packets 5 bytes 700
add t 10.0.0.0/8 timeout 0 nomatch packets 0 bytes 0 comment "c d"
`);
  const list = listText([t, e], { terse: true });
  assert.match(list, /^Name: t\nType: hash:net\nRevision: 7\nHeader: .*\nSize in memory: \d+\nReferences: 0\nNumber of entries: 2\n\nName: e\n/);
  assert.ok(!list.includes('Members:'));
  assert.equal(s.listText(undefined, { names: true }), 't\nb\ne\n');
  assert.match(s.listText('e'), /Number of entries: 0\nMembers:\n$/);
  // The save form reads back to the same save form.
  const again = new IpsetStore();
  again.restore(s.saveText(), 'saved');
  assert.equal(again.saveText(), s.saveText());
});

test('ipset -s order (bystrcmp)', () => {
  const sorted = (xs: string[]) => [...xs].sort((a, b) => bystrcmp(`${a}\n`, `${b}\n`));
  // Observed from ipset 7.17 -s on Linux 6.x (see the kernel comparison test).
  assert.deepEqual(sorted(['10.0.0.0/8', '10.0.0.0/16', '10.0.0.5', '10.0.0.6/31', '192.168.0.0/24 nomatch', '10.9.9.9', '10.1.2.3']),
    ['10.0.0.0/16', '10.0.0.0/8', '10.0.0.5', '10.0.0.6/31', '10.1.2.3', '10.9.9.9', '192.168.0.0/24 nomatch']);
  assert.deepEqual(sorted(['1.2.3.4,tcp:80', '1.2.3.4,esp:0', '1.2.3.4,udp:53', '1.2.3.4,255:0', '1.2.3.4,gre:0', '1.2.3.4,tcp:53', '1.2.3.4,sctp:1']),
    ['1.2.3.4,esp:0', '1.2.3.4,255:0', '1.2.3.4,gre:0', '1.2.3.4,tcp:53', '1.2.3.4,tcp:80', '1.2.3.4,udp:53', '1.2.3.4,sctp:1']);
  assert.deepEqual(sorted(['2001:db8::1', '::1', '2001:db8:1::', '::ffff:1.2.3.4']), ['::1', '::ffff:1.2.3.4', '2001:db8::1', '2001:db8:1::']);
});

test('the packet side through the binding, and the dataplane owns a store', () => {
  const s = new IpsetStore();
  s.restore('create p hash:ip,port\nadd p 192.0.2.1,udp:53\ncreate n hash:net family inet6\nadd n 2001:db8::/32\nadd n 2001:db8:1::/48 nomatch\n', 'f');
  const p = s.native.find('p');
  const n = s.native.find('n');
  assert.equal(s.native.lookup(p, [2, 2], { src: '198.51.100.1', dst: '192.0.2.1', proto: 17, sport: 999, dport: 53 }), 'match');
  assert.equal(s.native.lookup(p, [2, 2], { src: '198.51.100.1', dst: '192.0.2.1', proto: 6, sport: 999, dport: 53 }), 'absent');
  assert.equal(s.native.lookup(p, [2, 2], { src: '198.51.100.1', dst: '192.0.2.1', proto: 17, l4: false }), 'absent');
  assert.equal(s.native.lookup(p, [2], { src: '198.51.100.1', dst: '192.0.2.1', proto: 17, dport: 53 }), 'absent');
  assert.equal(s.native.lookup(n, [1], { src: '2001:db8:2::1', dst: '::1' }), 'match');
  assert.equal(s.native.lookup(n, [1], { src: '2001:db8:1::1', dst: '::1' }), 'nomatch');
  assert.equal(s.native.lookup(n, [1], { src: '10.0.0.1', dst: '10.0.0.2' }), 'absent');
  // Timeouts against a given clock (CLOCK_MONOTONIC ns).
  s.restore('create t hash:ip timeout 10\nadd t 10.0.0.1\n', 'f');
  const t = s.native.find('t');
  assert.equal(s.native.lookup(t, [1], { src: '10.0.0.1', dst: '10.0.0.2' }), 'match');
  assert.equal(s.native.lookup(t, [1], { src: '10.0.0.1', dst: '10.0.0.2' }, 2n ** 62n), 'absent', 'expired far in the future');
  // The dataplane's store is one object, shared with the workers.
  const dp = new (native().Dataplane)({ ports: [{ name: 'fwx0' }, { name: 'fwx1' }] });
  const ds = new IpsetStore(dp.sets());
  assert.equal(dp.sets(), dp.sets());
  ds.restore('create d hash:ip\nadd d 1.1.1.1\n', 'f');
  assert.equal(new IpsetStore(dp.sets()).test('d', '1.1.1.1').present, true);
  // A replay job takes a copy (same ids).
  const copy = ds.native.clone();
  ds.restore('add d 2.2.2.2\n', 'f');
  assert.equal(copy.find('d'), ds.native.find('d'));
  assert.equal(copy.test('d', { addr: '2.2.2.2' }), false);
});

test('ipset names: 31 characters, bitmap members in port order, -exist semantics', () => {
  const s = new IpsetStore();
  s.restore(`create ${'n'.repeat(31)} bitmap:port range 10-20\nadd ${'n'.repeat(31)} 15\nadd ${'n'.repeat(31)} 11-12\n`, 'f');
  assert.match(s.listText(), /Members:\n11\n12\n15\n$/);
  s.restore(`del ${'n'.repeat(31)} 19 -exist\n`, 'f');
  assert.match(ruleErr(() => s.restore(`del ${'n'.repeat(31)} 19\n`, 'f')).reason, /Element cannot be deleted from the set: it's not added/);
  assert.match(ruleErr(() => s.restore(`add ${'n'.repeat(31)} 30\n`, 'f')).reason, /Element is out of the range of the set/);
});

test('flatwall check --ipset: loads and validates the sets, errors at file:line:column', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flatwall-check-ipset-'));
  const cli = join(__dirname, '..', 'cli', 'main.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'check', '-q', ...args], { encoding: 'utf8' });
  try {
    writeFileSync(join(dir, 'good.ipset'), 'create blocked hash:net\nadd blocked 10.0.0.0/8\n');
    writeFileSync(join(dir, 'bad.ipset'), 'create blocked hash:net\nadd blocked 10.0.0.0/40\n');
    writeFileSync(join(dir, 'v4.rules'), '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -j ACCEPT\nCOMMIT\n');
    let r = run('--ipset', join(dir, 'good.ipset'), join(dir, 'v4.rules'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /ip sets: {3}blocked \(hash:net, 1 entries\)/);
    r = run('--ipset', join(dir, 'good.ipset'));
    assert.equal(r.status, 0, r.stderr);
    r = run('--json', '--ipset', join(dir, 'good.ipset'), join(dir, 'v4.rules'));
    assert.deepEqual(JSON.parse(r.stdout).ipsets, [{ name: 'blocked', type: 'hash:net', family: 'inet', entries: 1 }]);
    r = run('--ipset', join(dir, 'bad.ipset'), join(dir, 'v4.rules'));
    assert.equal(r.status, 1);
    assert.equal(r.stderr, `flatwall: ${join(dir, 'bad.ipset')}:2:22: Syntax error: '40' is out of range 0-32 (at '10.0.0.0/40')\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
