// `flatwall lab`: the nft translation it uses for the kernel engines, runs of
// the command itself, and teardown (normal end and Ctrl-C) leaving nothing
// behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { generateLines } from '../../src/rules/generate';
import { translateToNft, NftTranslationError } from '../../src/lab/nft';
import { parseGenSpec } from '../../src/lab/rules';
import { FLATWALL_CLI } from '../../src/lab/engines';
import { e2eUnavailable } from './harness';

const chainText = (n: number) => `${[...generateLines({ family: 'chain', rules: n })].join('\n')}\n`;

test('nft translation: one rule per line, in order', () => {
  const s = translateToNft(chainText(4), 'rules');
  assert.equal(s.rules, 4);
  const lines = s.script.split('\n').map((l) => l.trim());
  assert.ok(lines.includes('type filter hook forward priority 0; policy accept;'));
  const rules = lines.filter((l) => l.startsWith('ip saddr') || l === 'accept');
  assert.equal(rules.length, 4);
  assert.match(rules[0], /^ip saddr 10\.2\d\d\.\d+\.\d+ tcp dport \d+ drop$/);
  assert.equal(rules[3], 'accept');
});

test('nft translation: the set form folds one shape and one verdict', () => {
  const s = translateToNft(chainText(1000), 'set');
  assert.equal(s.setElements, 999);
  assert.equal(s.interval, false);
  assert.match(s.script, /type ipv4_addr \. inet_service;/);
  assert.match(s.script, /ip saddr \. tcp dport @fold drop\n\s+accept\n/);
  // Prefixes and ranges need an interval set.
  const t = translateToNft('*filter\n-A FORWARD -s 10.1.0.0/16 -p udp -m udp --dport 1:9 -j DROP\n-A FORWARD -s 10.2.0.1/32 -p udp -m udp --dport 7 -j DROP\nCOMMIT\n', 'set');
  assert.equal(t.interval, true);
  assert.match(t.script, /10\.1\.0\.0\/16 \. 1-9/);
});

test('nft translation refuses what it cannot express, with the line', () => {
  const bad: Array<[string, RegExp]> = [
    ['-A FORWARD -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset', /line 2: target "REJECT"/],
    ['-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT', /line 2: match "-m conntrack"/],
    ['-A INPUT -j ACCEPT', /line 2: only "-A FORWARD"/],
    ['-A FORWARD ! -s 10.0.0.1/32 -j DROP', /line 2: "!"/],
    ['-A FORWARD -s fd00::1/128 -j DROP', /line 2: "fd00::1\/128" is not an IPv4/],
  ];
  for (const [rule, re] of bad) {
    assert.throws(() => translateToNft(`*filter\n${rule}\nCOMMIT\n`, 'rules'), (e: Error) => e instanceof NftTranslationError && re.test(e.message), rule);
  }
  assert.throws(() => translateToNft('*filter\n-A FORWARD -s 10.0.0.1 -j DROP\n-A FORWARD -d 10.0.0.2 -j DROP\nCOMMIT\n', 'set'), /another shape/);
  assert.throws(() => translateToNft('*nat\nCOMMIT\n', 'rules'), /table "nat"/);
});

test('--generate specs', () => {
  assert.deepEqual(parseGenSpec('chain:1000000'), { family: 'chain', rules: 1_000_000 });
  assert.deepEqual(parseGenSpec('acl:10k'), { family: 'acl', rules: 10_000 });
  assert.deepEqual(parseGenSpec('chain:1M'), { family: 'chain', rules: 1_000_000 });
  assert.match(parseGenSpec('nope:1') as string, /unknown rule family/);
  assert.match(parseGenSpec('chain') as string, /FAMILY:N/);
});

const leftovers = (pid: number) => spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(`-${pid}-`));

function lab(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string; pid: number }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [FLATWALL_CLI, 'lab', '-q', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (b) => (stdout += b));
    c.stderr.on('data', (b) => (stderr += b));
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr, pid: c.pid! });
    });
  });
}

for (const engine of ['flatwall', 'iptables-legacy', 'nft'] as const) {
  const tools = engine === 'flatwall' ? [] : engine === 'nft' ? ['nft'] : ['iptables-legacy-restore'];
  test(`flatwall lab --engine ${engine}: traffic passes, result printed, everything torn down`, { skip: e2eUnavailable(tools), timeout: 60_000 }, async () => {
    const r = await lab(['--engine', engine, '--generate', 'chain:2000', '--duration', '1', '--json'], 50_000);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.passed, true);
    assert.equal(j.load.rules, 2000);
    assert.ok(j.load.loadSeconds > 0);
    assert.ok(j.traffic.tcp.bps > 1e6 && j.traffic.udp.bps > 1e5 && j.traffic.ping.avgMs > 0, JSON.stringify(j.traffic));
    assert.deepEqual(leftovers(r.pid), []);
  });
}

test('flatwall lab: Ctrl-C tears down, and a bad rule file is an error', { skip: e2eUnavailable(), timeout: 60_000 }, async () => {
  const c = spawn(process.execPath, [FLATWALL_CLI, 'lab', '--generate', 'chain:1000', '--duration', '10'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  c.stderr.on('data', (b) => (err += b));
  const code = await new Promise<number | null>((resolve) => {
    const t = setTimeout(() => c.kill('SIGKILL'), 40_000);
    const poll = setInterval(() => {
      if (err.includes('iperf3 TCP')) {
        clearInterval(poll);
        c.kill('SIGINT');
      }
    }, 50);
    c.on('close', (code) => {
      clearTimeout(t);
      clearInterval(poll);
      resolve(code);
    });
  });
  assert.equal(code, 130, err);
  assert.deepEqual(leftovers(c.pid!), []);
  // Leftover processes in the namespaces would keep them alive: none of ours may survive.
  const ps = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).stdout;
  assert.ok(!ps.includes(`flatwall-lab-${c.pid}-`), 'no process with the run\'s files left');

  const bad = await lab(['--rules', '/nonexistent/rules', '--duration', '1'], 30_000);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /cannot read rule file|ENOENT/);
  assert.deepEqual(leftovers(bad.pid), []);
});
