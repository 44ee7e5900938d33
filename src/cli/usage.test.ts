// Usage errors in the house style (issue 12): "flatwall CMD: message", the
// --help hint, exit 2, never Node's parseArgs text; and `ctl COMMAND --help`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { autoWorkers } from './run';

const MAIN = join(__dirname, 'main.js');
const cli = (...args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 30_000 });

test('unknown options, missing values, stray arguments: one line, the hint, exit 2', () => {
  const cases: [string[], string][] = [
    [['check', '--bogus'], "flatwall check: unknown option '--bogus'\nTry 'flatwall check --help'.\n"],
    [['check', '-z'], "flatwall check: unknown option '-z'\nTry 'flatwall check --help'.\n"],
    [['run', '--port'], "flatwall run: option '--port' requires an argument\nTry 'flatwall run --help'.\n"],
    [['run', '--cpu-pin=1'], "flatwall run: option '--cpu-pin' does not take an argument\nTry 'flatwall run --help'.\n"],
    [['run', 'stray'], "flatwall run: unexpected argument 'stray'\nTry 'flatwall run --help'.\n"],
    [['--bogus'], "flatwall: unknown option '--bogus'\nTry 'flatwall --help'.\n"],
    [['ctl', 'list', '--bogus'], "flatwall ctl: unknown option '--bogus'\nTry 'flatwall ctl --help'.\n"],
    [['ctl', '--bogus', 'stats'], "flatwall ctl: unknown option '--bogus'\nTry 'flatwall ctl --help'.\n"],
    // What the terminal gets of an option with an escape sequence in it.
    [['check', '--\x1b[31mred'], "flatwall check: unknown option '--\\x1b[31mred'\nTry 'flatwall check --help'.\n"],
  ];
  for (const [args, stderr] of cases) {
    const r = cli(...args);
    assert.equal(r.stderr, stderr, args.join(' '));
    assert.equal(r.status, 2, args.join(' '));
  }
});

test('ctl COMMAND --help: that command\'s lines and the options, exit 0', () => {
  const r = cli('ctl', 'reload', '--help');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Usage: flatwall ctl \[OPTIONS\] reload \.\.\.\n\n {2}reload \[FILE\.\.\.\]/);
  assert.match(r.stdout, /-s, --socket PATH/);
  assert.doesNotMatch(r.stdout, /list \[CHAIN\]/);
  for (const cmd of ['list', 'insert', 'delete', 'policy', 'stats', 'zero', 'save', 'conntrack', 'connlimit']) {
    const h = cli('ctl', cmd, '-h');
    assert.equal(h.status, 0, `${cmd}: ${h.stderr}`);
    assert.ok(h.stdout.includes(`\n  ${cmd} `) || h.stdout.includes(`\n  ${cmd}\n`), `${cmd}:\n${h.stdout}`);
  }
  // A rule's tokens before the --help do not matter.
  assert.equal(cli('ctl', 'insert', 'FORWARD', '-p', 'tcp', '--help').status, 0);
  const u = cli('ctl', 'nosuch', '--help');
  assert.deepEqual([u.status, u.stderr], [2, "flatwall ctl: unknown ctl command 'nosuch'\nTry 'flatwall ctl --help'.\n"]);
});

test('run --io and --xdp-mode take only their values; --workers auto follows the CPUs, one worker for AF_XDP with conntrack', () => {
  for (const [flag, value, want] of [['--io', 'xdp', /--io must be afpacket, afxdp or auto/], ['--xdp-mode', 'skb', /--xdp-mode must be native or generic/]] as const) {
    const r = cli('run', '--port', 'a', '--port', 'b', '-r', '/dev/null', flag, value);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, want);
  }
  const cpus = Math.min(64, availableParallelism());
  assert.equal(autoWorkers('afpacket', false), cpus);
  assert.equal(autoWorkers('auto', false), cpus);
  assert.equal(autoWorkers('afxdp', false), 1);
  assert.equal(autoWorkers('afxdp', true), cpus);
});

test('run: the hot standby flags are checked before anything starts', () => {
  const cases: [string[], RegExp][] = [
    [['run', '--port', 'a', '--port', 'b', '--standby-of', 'nope'], /^flatwall run: --standby-of must be ADDR:PORT or \[ADDR\]:PORT, got "nope"\n/],
    [['run', '--port', 'a', '--port', 'b', '-r', 'x', '--replication-listen', '1.2.3.4'], /^flatwall run: --replication-listen must be ADDR:PORT/],
    [['run', '--port', 'a', '--port', 'b', '-r', 'x', '--active-unless-peer'], /^flatwall run: --active-unless-peer needs --standby-of ADDR:PORT and --rules FILE/],
    [['run', '--port', 'a', '--port', 'b', '--standby-of', '127.0.0.1:1', '--standby-timeout', '0'], /^flatwall run: --standby-timeout must be an integer >= 1/],
    [['run', '--port', 'a', '--port', 'b', '--standby-of', '127.0.0.1:1', '--ipset', 'f'], /^flatwall run: --standby-of takes the IP sets from the active/],
    [['run', '--port', 'a', '--port', 'b', '--standby-of', '127.0.0.1:1', '--replication-token-file', '/nonexistent/t'], /^flatwall run: --replication-token-file: /],
    [['run', '--port', 'a', '--port', 'b'], /--standby-of ADDR:PORT/],
  ];
  for (const [args, stderr] of cases) {
    const r = cli(...args);
    assert.match(r.stderr, stderr, args.join(' '));
    assert.equal(r.status, 2, args.join(' '));
  }
});
