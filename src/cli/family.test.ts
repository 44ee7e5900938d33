// The family of rule files on the command line: -4/-6 on every command that
// reads rule files (giving both is a usage error), detection otherwise, the
// notice for a file without evidence, a mixed file refused at its token;
// and the kernel-default flags of run and replay in --help.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const MAIN = join(__dirname, 'main.js');
const cli = (...args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 60_000 });
const body = (rules: string) => `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n${rules}COMMIT\n`;

test('-4 and -6 together are a usage error for every command that reads rule files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fw-family-'));
  try {
    const f = join(dir, 'r.rules');
    writeFileSync(f, body(''));
    for (const args of [
      ['check', '-4', '-6', f], ['print', '-4', '-6', f], ['compile', '-4', '-6', f, '-o', join(dir, 's.snap')],
      ['replay', '-4', '-6', '-r', f, '-p', join(dir, 'none.pcap')], ['run', '-4', '-6', '--port', 'a', '--port', 'b', '-r', f],
    ]) {
      const r = cli(...args);
      assert.equal(r.status, 2, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, /-4 and -6 are exclusive/, args[0]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('detection on the command line: notice without evidence, IPv6 by token or name, a mixed file refused at the token', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fw-family-'));
  try {
    const plain = join(dir, 'ports.rules');
    writeFileSync(plain, body('-A FORWARD -p tcp -m tcp --dport 22 -j ACCEPT\n'));
    let r = cli('check', '-q', '--json', plain);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).tables[0].family, 'ipv4');
    assert.equal(r.stderr, `${plain}: no family evidence, loaded as IPv4 (pass -6 for IPv6)\n`);
    r = cli('check', '-q', '--json', '-6', plain);
    assert.equal(JSON.parse(r.stdout).tables[0].family, 'ipv6');
    assert.equal(r.stderr, '');
    r = cli('print', plain);
    assert.equal(r.status, 0);
    assert.match(r.stderr, /no family evidence, loaded as IPv4/);

    const v6name = join(dir, 'rules.v6');
    writeFileSync(v6name, body('-A FORWARD -p tcp -m tcp --dport 22 -j ACCEPT\n'));
    const v6tok = join(dir, 'icmp6.rules');
    writeFileSync(v6tok, body('-A FORWARD -p ipv6-icmp -j ACCEPT\n'));
    for (const f of [v6name, v6tok]) {
      r = cli('check', '-q', '--json', f);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).tables[0].family, 'ipv6', f);
      assert.equal(r.stderr, '', f);
    }

    const mixed = join(dir, 'mixed.rules');
    writeFileSync(mixed, body('-A FORWARD -p ipv6-icmp -j ACCEPT\n-A FORWARD -s 10.0.0.1 -j DROP\n'));
    r = cli('check', '-q', mixed);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, `flatwall: ${mixed}:6:15: IPv4 syntax in an IPv6 rule file (use separate iptables-save and ip6tables-save files) (at '10.0.0.1')\n`);
    writeFileSync(v6name, body('-A FORWARD -p icmp -j ACCEPT\n'));
    r = cli('compile', '-q', v6name, '-o', join(dir, 'x.snap'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /rules\.v6:5:15: IPv4 syntax in an IPv6 rule file \(its name rules\.v6 says IPv6;.*\(at 'icmp'\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('run and replay --help document the kernel defaults and the stricter flags', () => {
  const run = cli('run', '--help').stdout;
  for (const flag of ['--drop-l4-truncated', '--ndp-bypass', '--ct-tcp-strict', '--ct-tcp-loose', '-4, -6']) assert.ok(run.includes(flag), flag);
  assert.match(run, /RFC 4861/);
  assert.match(run, /--ct-tcp-loose\s+deprecated, no effect/);
  const replay = cli('replay', '--help').stdout;
  for (const flag of ['--drop-l4-truncated', '--ndp-bypass', '-4, -6']) assert.ok(replay.includes(flag), flag);
  const r = cli('run', '--ct-tcp-loose', '--ct-tcp-strict', '--port', 'a', '--port', 'b', '-r', 'x');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /exclusive/);
});
