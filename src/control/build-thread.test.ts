// The build thread against the main-thread compile it replaces: for every
// generator family and every file of the real-world corpus, the packed
// tables are byte for byte the same, the counter identities the same, and
// the model read back from the recipe (src/rules/deferred.ts) the same
// rules with the same ids; its errors are the parser's own, with their
// positions; a PUT-style recipe merges with the kept tables as
// iptables-restore does.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { Firewall } from './firewall';
import { parseRuleCommand } from './ruleops';
import { ruleIdsByChain } from '../rules/positions';
import { IpsetStore, loadIpsetFiles } from '../sets/store';
import { useSetStore } from '../sets/registry';
import { join } from 'node:path';
import { buildOffThread, buildStreamOffThread, buildThreadsEnded, type StreamRequest } from './build-thread';
import { SharedBody } from './shared-body';
import { identities } from './counters';
import { compile, type CompiledRuleSet } from '../rules/compile';
import { isDeferred, materialize, recipeSourceSteps, type Recipe } from '../rules/deferred';
import { RuleError, RuleLimitError } from '../rules/errors';
import { parseTextsSteps } from '../rules/load';
import { drain } from '../rules/steps';
import { parseIptables } from '../rules/iptables/parse';
import { ruleSpec } from '../rules/iptables/print';
import { FAMILIES, generateLines } from '../rules/generate';
import { CORPUS, corpusFiles } from '../../test/corpus-files';

function onMain(recipe: Recipe): CompiledRuleSet {
  return compile(drain(recipeSourceSteps(recipe)).source);
}

/** What a listing shows of a rule set, by id. */
function listing(c: CompiledRuleSet): string[] {
  return c.rules.map((r) => `${r.id} ${r.family} ${r.table} ${r.chain} ${r.index} ${r.file}:${r.line} ${r.policy ?? ''}${r.internal ? 'internal' : ''} ${r.rule ? ruleSpec(r.rule, r.family) : ''}`);
}

async function same(recipe: Recipe): Promise<void> {
  const want = onMain(recipe);
  const got = await buildOffThread({ recipe, fileCounters: true });
  const later = await got.later;
  const c = got.compiled;
  assert.ok(isDeferred(c), 'no model until asked');
  assert.deepEqual(Buffer.from(c.buffer), Buffer.from(want.buffer), 'packed tables');
  assert.deepEqual(c.tables, want.tables);
  assert.deepEqual(c.stats, want.stats);
  assert.deepEqual(c.ifaces.toJSON(), want.ifaces.toJSON());
  assert.deepEqual(c.spans, want.spans);
  const ids = identities(want.rules);
  assert.deepEqual(later.identities.fps, ids.fps, 'fingerprints');
  assert.deepEqual(later.identities.keys, ids.keys, 'identity hashes');
  assert.deepEqual(later.identities.keys2, ids.keys2, 'second identity hashes');
  await materialize(c);
  assert.ok(!isDeferred(c));
  assert.deepEqual(listing(c), listing(want), 'the model read back');
}

describe('build thread', { timeout: 300_000 }, () => {
  for (const family of FAMILIES) {
    test(`generator family ${family}: same tables, identities and model as on the main thread`, async () => {
      const text = `${[...generateLines({ family, rules: 3000, seed: 11 })].join('\n')}\n`;
      await same({ texts: [{ file: `${family}.rules`, text }], opts: {} });
    });
  }

  test('the real-world corpus, each file alone and all of one family together', async () => {
    const files = corpusFiles();
    assert.ok(files.length > 10, `corpus files: ${files.length}`);
    for (const f of files) {
      // A tool that also wrote an `ipset save` dump (fail2ban) loads with it: the thread is handed the sets' descriptions.
      const ipset = join(CORPUS, f.replace(/\.v[46]$/, '.ipset'));
      const sets = new IpsetStore();
      useSetStore(sets);
      try {
        if (existsSync(ipset)) loadIpsetFiles(sets, [ipset]);
        await same({ texts: [{ file: f, text: readFileSync(join(CORPUS, f), 'utf8') }], opts: { family: f.endsWith('.v6') ? 6 : 4, skipOtherTables: true } });
      } finally {
        useSetStore(undefined);
      }
    }
  });

  test('a PUT recipe keeps the running tables it does not give (iptables-restore)', async () => {
    const v6 = parseIptables('*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -s 2001:db8::/32 -j ACCEPT\nCOMMIT\n', { file: 'six.rules', family: 6 });
    const text = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -p tcp --dport 22 -j ACCEPT\nCOMMIT\n';
    const recipe: Recipe = { texts: [{ file: '<request>', text }], opts: { family: 4 }, kept: v6.tables };
    let parsedTables = -1;
    const got = await buildOffThread({ recipe, fileCounters: false }, { onParsed: (n) => (parsedTables = n) });
    await got.later;
    assert.deepEqual(got.compiled.stats.families, [4, 6]);
    await materialize(got.compiled);
    assert.deepEqual(got.compiled.source.tables.map((t) => `${t.family}/${t.name}`), ['4/filter', '6/filter']);
    assert.equal(parsedTables, 1);
  });

  test('the text fast path takes a whole load and a PUT that keeps nothing; a PUT that keeps tables goes to the reference', async () => {
    const text = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -p tcp --dport 22 -j ACCEPT\nCOMMIT\n';
    const ran = async (recipe: Recipe) => {
      let taken: boolean | undefined;
      const got = await buildOffThread({ recipe, fileCounters: false }, { onFastPath: (r) => (taken = r.taken) });
      await got.later;
      return taken;
    };
    if (process.env.FLATWALL_TEXT_FAST_PATH === '0') {
      assert.equal(await ran({ texts: [{ file: 'a.rules', text }], opts: {} }), undefined, 'off: never tried');
      return;
    }
    assert.equal(await ran({ texts: [{ file: 'a.rules', text }], opts: {} }), true, 'a load');
    assert.equal(await ran({ texts: [{ file: '<request>', text }], opts: { family: 4, saveOnly: true }, kept: [] }), true, 'a PUT keeping no table');
    const v6 = parseIptables('*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n', { file: 'six.rules', family: 6 });
    assert.equal(await ran({ texts: [{ file: '<request>', text }], opts: { family: 4 }, kept: v6.tables }), undefined, 'a PUT keeping a table');
    assert.equal(await ran({ texts: [{ file: 'l.rules', text: text.replace('-j ACCEPT', '-j LOG') }], opts: {} }), false, 'LOG: the reference');
  });

  test('kept tables with every extension and a raw table cross to the thread intact (structured clone)', async () => {
    const fixtures = join(__dirname, '..', '..', '..', 'test', 'fixtures');
    const v4 = drain(parseTextsSteps([{ file: 'extensions.rules', text: readFileSync(join(fixtures, 'extensions.rules'), 'utf8') },
      { file: 'raw.rules', text: readFileSync(join(fixtures, 'raw.rules'), 'utf8') }], { family: 4 }));
    const text = readFileSync(join(fixtures, 'extensions6.rules'), 'utf8');
    // extensions.rules' filter table and raw.rules' raw table stay.
    const kept = v4.tables.slice(0, 2);
    assert.deepEqual(kept.map((t) => t.name), ['filter', 'raw']);
    const recipe: Recipe = { texts: [{ file: 'extensions6.rules', text }], opts: { family: 6 }, kept };
    const want = compile(drain(recipeSourceSteps(recipe)).source);
    const got = await buildOffThread({ recipe, fileCounters: false });
    await got.later;
    assert.deepEqual(Buffer.from(got.compiled.buffer), Buffer.from(want.buffer));
    await materialize(got.compiled);
    assert.deepEqual(listing(got.compiled), listing(want));
  });

  test('a parse error is a RuleError at its file:line:column, with the token', async () => {
    const text = '*filter\n:FORWARD DROP [0:0]\n-A FORWARD -s 10.0.0.300 -j ACCEPT\nCOMMIT\n';
    let want: RuleError | undefined;
    try { onMain({ texts: [{ file: 'bad.rules', text }], opts: {} }); } catch (err) { want = err as RuleError; }
    assert.ok(want instanceof RuleError);
    await assert.rejects(buildOffThread({ recipe: { texts: [{ file: 'bad.rules', text }], opts: {} }, fileCounters: false }), (err: unknown) => {
      assert.ok(err instanceof RuleError && !(err instanceof RuleLimitError));
      assert.equal(err.message, want!.message);
      assert.deepEqual([err.file, err.line, err.col, err.token], ['bad.rules', 3, 15, '10.0.0.300']);
      return true;
    });
  });

  test('the rule limit is a RuleLimitError with its limit; notices and progress come through', async () => {
    const text = `${[...generateLines({ family: 'acl', rules: 50, seed: 1 })].join('\n')}\n`;
    await assert.rejects(buildOffThread({ recipe: { texts: [{ file: 'many.rules', text }], opts: { maxRules: 10 } }, fileCounters: false }), (err: unknown) => {
      assert.ok(err instanceof RuleLimitError);
      assert.equal(err.limit, 10);
      return true;
    });
    const notices: string[] = [];
    const stages = new Set<string>();
    const noEvidence = '*filter\n:FORWARD DROP [0:0]\n-A FORWARD -p tcp --dport 22 -j ACCEPT\nCOMMIT\n';
    const got = await buildOffThread({ recipe: { texts: [{ file: 'plain.rules', text: noEvidence }], opts: {} }, fileCounters: false }, {
      onNotice: (m) => notices.push(m), onParseProgress: () => stages.add('parse'), onProgress: () => stages.add('compile'),
    });
    await got.later;
    assert.deepEqual([...stages].sort(), ['compile', 'parse']);
    assert.ok(notices.some((n) => n.startsWith('plain.rules:')), JSON.stringify(notices));
  });

  test('iptables-restore -c: the file counters by rule id', async () => {
    const text = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [7:700]\n:OUTPUT ACCEPT [0:0]\n[5:500] -A FORWARD -p udp -j ACCEPT\nCOMMIT\n';
    const got = await buildOffThread({ recipe: { texts: [{ file: 'c.rules', text }], opts: {} }, fileCounters: true });
    const { fileCounters } = await got.later;
    await materialize(got.compiled);
    const rule = got.compiled.rules.find((r) => r.rule)!;
    const policy = got.compiled.rules.find((r) => r.chain === 'FORWARD' && r.policy)!;
    assert.deepEqual(fileCounters!.get(rule.id), [5n, 500n]);
    assert.deepEqual(fileCounters!.get(policy.id), [7n, 700n]);
  });
});

/**
 * `text` written into a SharedBody in pieces of 1 to `most` bytes (cut
 * anywhere: inside lines, inside a CRLF) with turns of the event loop
 * between, while the build thread reads it; `stopAt` aborts there.
 */
async function streamIn(text: string, most: number, seed: number, stopAt?: number): Promise<{ body: SharedBody; done: Promise<Buffer | undefined> }> {
  const bytes = Buffer.from(text, 'utf8');
  const body = new SharedBody(bytes.length);
  let x = seed;
  const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) % most) + 1;
  const done = (async () => {
    for (let at = 0; at < bytes.length;) {
      if (stopAt !== undefined && at >= stopAt) {
        body.abort();
        return undefined;
      }
      const n = Math.min(bytes.length - at, rnd());
      assert.ok(body.write(bytes.subarray(at, at + n)));
      at += n;
      if (x % 4 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    return body.end();
  })();
  return { body, done };
}

function streamReq(body: SharedBody, running: StreamRequest['stream']['running'] = [], opts: StreamRequest['stream']['opts'] = { saveOnly: true }): StreamRequest {
  return { stream: { inputs: [{ buffer: body.buffer, progress: body.progress, file: '<request>' }], running, opts }, fileCounters: true };
}

describe('a request body compiled while it arrives', { timeout: 300_000, skip: process.env.FLATWALL_TEXT_FAST_PATH === '0' && 'the text fast path is off' }, () => {
  for (const family of ['acl', 'chain', 'acl6'] as const) {
    test(`${family}: the tables, identities and model of the whole text, whatever the pieces`, async () => {
      const text = `${[...generateLines({ family, rules: 20_000, seed: 5 })].join('\n')}\n`;
      const want = onMain({ texts: [{ file: '<request>', text }], opts: { saveOnly: true } });
      for (const [most, seed] of [[70_000, 1], [977, 2]]) {
        const { body, done } = await streamIn(text, most, seed);
        let taken: boolean | undefined;
        const got = await buildStreamOffThread(streamReq(body), [new Uint8Array(body.buffer)], { onFastPath: (r) => (taken = r.taken) });
        assert.ok(await done);
        assert.ok(!('declined' in got), 'the addon compiled it');
        assert.equal(taken, true);
        const c = got.compiled;
        const later = await got.later;
        assert.deepEqual(Buffer.from(c.buffer), Buffer.from(want.buffer), 'packed tables');
        assert.deepEqual(c.stats, want.stats);
        assert.deepEqual(c.spans, want.spans);
        assert.deepEqual(c.ifaces.toJSON(), want.ifaces.toJSON());
        const ids = identities(want.rules);
        assert.deepEqual([later.identities.fps, later.identities.keys, later.identities.keys2], [ids.fps, ids.keys, ids.keys2]);
        // The model is read from the body's bytes (never decoded on this thread before).
        assert.ok(isDeferred(c));
        await materialize(c);
        assert.deepEqual(listing(c), listing(want), 'the model read back');
      }
    });
  }

  test('a BOM, CRLF line ends and no newline at the end', async () => {
    const text = '\ufeff*filter\r\n:INPUT ACCEPT [0:0]\r\n:FORWARD DROP [0:0]\r\n:OUTPUT ACCEPT [0:0]\r\n-A FORWARD -s 10.0.0.1/32 -p tcp --dport 22 -j ACCEPT\r\nCOMMIT';
    const want = onMain({ texts: [{ file: '<request>', text }], opts: { saveOnly: true } });
    const notices: string[] = [];
    const { body, done } = await streamIn(text, 7, 3);
    const got = await buildStreamOffThread(streamReq(body), [new Uint8Array(body.buffer)], { onNotice: (m) => notices.push(m) });
    await done;
    assert.ok(!('declined' in got));
    assert.deepEqual(Buffer.from(got.compiled.buffer), Buffer.from(want.buffer));
    assert.ok(notices.some((n) => /BOM|byte order mark/i.test(n)), JSON.stringify(notices));
  });

  test('declined once the whole body is here: outside the subset, a running table that would stay, no filter table', async () => {
    const text = (rule: string, family: 4 | 6 = 4) => `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -s ${family === 4 ? '10.0.0.1/32' : '2001:db8::1/128'} -j ACCEPT\n${rule}COMMIT\n`;
    const cases: Array<[string, string, StreamRequest['stream']['running'], RegExp]> = [
      ['LOG', text('-A FORWARD -j LOG\n'), [], /LOG|target/],
      ['a running IPv6 table', text(''), [{ family: 6, name: 'filter' }], /IPv6 stays/],
      ['a running raw table', text(''), [{ family: 4, name: 'filter' }, { family: 4, name: 'raw' }], /raw table of IPv4 stays/],
      ['only an IPv6 body beside a running IPv4 one', text('', 6), [{ family: 4, name: 'filter' }], /IPv4 stays/],
      ['no table', '# nothing\n', [], /no tables|filter table/],
    ];
    for (const [what, body0, running, reason] of cases) {
      const { body, done } = await streamIn(body0, 13, 4);
      let said = '';
      const got = await buildStreamOffThread(streamReq(body, running), [new Uint8Array(body.buffer)], { onFastPath: (r) => (said = r.taken ? 'taken' : r.reason) });
      assert.ok(await done, what);
      assert.ok('declined' in got, `${what}: declined`);
      assert.match(got.declined, reason, what);
      assert.equal(said, got.declined, `${what}: the reason was given`);
    }
    // The same running IPv4 filter table and an IPv4 body: taken.
    const { body, done } = await streamIn(text(''), 13, 5);
    const got = await buildStreamOffThread(streamReq(body, [{ family: 4, name: 'filter' }]), [new Uint8Array(body.buffer)]);
    await done;
    assert.ok(!('declined' in got));
  });

  test('stopped while the addon waits for the rest of a body: the build rejects and its thread leaves the addon and ends', async () => {
    const text = `${[...generateLines({ family: 'acl', rules: 20_000, seed: 6 })].join('\n')}\n`;
    const bytes = Buffer.from(text);
    const body = new SharedBody(bytes.length);
    body.write(bytes.subarray(0, bytes.length * 0.7));
    const stop = new AbortController();
    const built = buildStreamOffThread(streamReq(body), [new Uint8Array(body.buffer)], { signal: stop.signal });
    await new Promise((r) => setTimeout(r, 300)); // the thread is in the addon, in pull()
    stop.abort();
    await assert.rejects(built, /the firewall is stopping/);
    // Told to stop (not terminated inside the addon, which aborts the process): it ends by itself.
    assert.equal(await buildThreadsEnded(20_000), true, 'the thread ended');
    // What arrives after is dropped, not an error of the writer's.
    assert.equal(body.write(bytes.subarray(bytes.length * 0.7)), true);
    assert.equal(body.end(), undefined);
  });

  test('abandoned builds: the reference stops at its next step; a build asked for once stopping starts no thread', async () => {
    const text = `${[...generateLines({ family: 'acl', rules: 100_000, seed: 7 })].join('\n')}\n`;
    const stop = new AbortController();
    let parsing = 0;
    let stoppedAtAStep = false;
    const built = buildOffThread({ recipe: { texts: [{ file: 'a.rules', text }], opts: {} }, fileCounters: false, fastPath: false },
      { signal: stop.signal, onParseProgress: () => parsing++, onStopped: () => (stoppedAtAStep = true) });
    while (parsing === 0) await new Promise((r) => setTimeout(r, 5));
    stop.abort();
    await assert.rejects(built, /the firewall is stopping/);
    assert.equal(await buildThreadsEnded(20_000), true, 'the reference\'s thread ended');
    assert.ok(stoppedAtAStep, 'it stopped at a step, not at its end');
    const late = buildOffThread({ recipe: { texts: [{ file: 'a.rules', text }], opts: {} }, fileCounters: false }, { signal: stop.signal });
    await assert.rejects(late, /the firewall is stopping/);
    assert.equal(await buildThreadsEnded(0), true, 'no thread was started');
  });

  test('a body that stops before its end fails the build', async () => {
    const text = `${[...generateLines({ family: 'acl', rules: 5000, seed: 6 })].join('\n')}\n`;
    const { body } = await streamIn(text, 4000, 7, 100_000);
    await assert.rejects(buildStreamOffThread(streamReq(body), [new Uint8Array(body.buffer)]), /ended before its Content-Length/);
  });
});

/** The log lines `fn` writes (src/control/log.ts: JSON on stdout), parsed. */
async function logsOf(fn: () => Promise<unknown>): Promise<Array<Record<string, unknown>>> {
  const lines: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const t = String(chunk);
    if (t.startsWith('{"ts"')) lines.push(t);
    else return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
    return true;
  }) as typeof process.stdout.write;
  try {
    await fn();
  } finally {
    process.stdout.write = write;
  }
  return lines.flatMap((l) => l.split('\n')).filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('Firewall reloads through the build thread', { timeout: 120_000 }, () => {
  test('large rule files are compiled while they are read: the tables and model of the reference, --skip-tables noted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fw-bt-'));
    const v4 = join(dir, 'acl.rules');
    const v6 = join(dir, 'acl6.rules');
    const nat = '*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n';
    writeFileSync(v4, `${nat}${[...generateLines({ family: 'acl', rules: 20_000, seed: 8 })].join('\n')}\n`);
    writeFileSync(v6, `${[...generateLines({ family: 'acl6', rules: 5000, seed: 9 })].join('\n')}\n`);
    const want = onMain({ texts: [v4, v6].map((file) => ({ file, text: readFileSync(file, 'utf8') })), opts: { skipOtherTables: true } });
    // IPv6 first: the model's tables and ids follow the files' order, as the addon's do.
    const want6 = onMain({ texts: [v6, v4].map((file) => ({ file, text: readFileSync(file, 'utf8') })), opts: { skipOtherTables: true } });
    const fw6 = new Firewall({ ports: [{ name: 'bts2', kind: 'afpacket' }, { name: 'bts3', kind: 'afpacket' }], ruleFiles: [v6, v4], workers: 1, buildThreadMinBytes: 0, skipOtherTables: true });
    try {
      await logsOf(() => fw6.load());
      assert.deepEqual(Buffer.from(fw6.ruleset!.buffer), Buffer.from(want6.buffer));
      await materialize(fw6.ruleset!);
      assert.deepEqual(listing(fw6.ruleset!), listing(want6), 'v6 then v4: the same ids for the same rules');
      assert.ok(fw6.ruleset!.source.skipped?.some((t) => t.table === 'nat'), 'the model keeps what was skipped');
    } finally {
      await fw6.stop();
    }
    const fw = new Firewall({ ports: [{ name: 'bts0', kind: 'afpacket' }, { name: 'bts1', kind: 'afpacket' }], ruleFiles: [v4, v6], workers: 1, buildThreadMinBytes: 0, skipOtherTables: true });
    try {
      const logs = await logsOf(() => fw.load());
      if (process.env.FLATWALL_TEXT_FAST_PATH !== '0') {
        assert.ok(logs.some((l) => l.msg === 'rule text compiled by the addon' && l.streamed === true), JSON.stringify(logs.map((l) => l.msg)));
      }
      assert.ok(logs.some((l) => l.msg === 'table skipped (--skip-tables)' && l.table === 'nat' && l.file === v4), 'the nat table was noted');
      const c = fw.ruleset!;
      assert.deepEqual(Buffer.from(c.buffer), Buffer.from(want.buffer), 'packed tables');
      assert.deepEqual(c.stats, want.stats);
      assert.ok(isDeferred(c), 'no model until asked');
      await materialize(c);
      assert.deepEqual(listing(c), listing(want), 'the model read back from the files\' bytes');
      // Declined (a LOG rule): built by the reference from the bytes already read, the addon not asked twice.
      writeFileSync(v6, `${readFileSync(v6, 'utf8').replace('COMMIT', '-A FORWARD -j LOG\nCOMMIT')}`);
      const again = await logsOf(() => fw.load());
      assert.equal(fw.ruleset!.stats.sourceRules, want.stats.sourceRules + 1);
      if (process.env.FLATWALL_TEXT_FAST_PATH !== '0') {
        assert.deepEqual(again.filter((l) => String(l.msg).startsWith('rule text compiled by')).map((l) => [l.msg, l.streamed]), [['rule text compiled by the reference parser', true]]);
      }
      // A missing file: the error names it, the rules stay.
      rmSync(v6);
      await assert.rejects(fw.load(), /acl6\.rules.*No such file/);
      assert.equal(fw.ruleset!.stats.sourceRules, want.stats.sourceRules + 1);
    } finally {
      await fw.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const text = (extra: string) => `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [3:300]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -p tcp -m tcp --dport 22 -j ACCEPT\n${extra}-A FORWARD -j LOG --log-prefix "fw "\nCOMMIT\n`;

  test('a load forwards without reading the model; listing, counters reset and edits read it then', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fw-bt-'));
    const file = join(dir, 'a.rules');
    writeFileSync(file, text('-A FORWARD -s 10.1.0.0/16 -j DROP\n'));
    const fw = new Firewall({ ports: [{ name: 'btx0', kind: 'afpacket' }, { name: 'btx1', kind: 'afpacket' }], ruleFiles: [file], workers: 1, buildThreadMinBytes: 0, restoreCounters: true });
    try {
      const a = await fw.load();
      assert.equal(a.rules, 3);
      assert.ok(isDeferred(fw.ruleset!), 'the load did not read the model on this thread');
      // LOG lines can name their rule without it.
      assert.deepEqual([...fw.ruleset!.logRules!.values()].map((l) => [l.file, l.line, l.chain, l.spec, l.target?.kind === 'LOG' ? l.target.prefix : undefined]),
        [[file, 7, 'FORWARD', '-j LOG --log-prefix "fw "', 'fw ']]);
      // -c: the file's policy counters seeded the bank from the thread's list.
      const { ruleset, get } = await fw.ruleCounters();
      assert.ok(!isDeferred(ruleset!), 'a listing reads it');
      const policy = ruleset!.rules.find((r) => r.chain === 'FORWARD' && r.policy)!;
      assert.deepEqual(get(policy.id), [3n, 300n]);
      assert.deepEqual(ruleIdsByChain(ruleset!).get('4/FORWARD')!.slice(1).map((id) => ruleSpec(ruleset!.rules[id].rule!, 4)),
        ['-p tcp -m tcp --dport 22 -j ACCEPT', '-s 10.1.0.0/16 -j DROP', '-j LOG --log-prefix "fw "']);
      // A second load: deferred again; an edit reads it and takes the overlay on the thread's spans.
      writeFileSync(file, text('-A FORWARD -s 10.2.0.0/16 -j DROP\n'));
      await fw.load();
      assert.ok(isDeferred(fw.ruleset!));
      const e = await fw.edit((rs) => parseRuleCommand('-I FORWARD 1 -p udp -j DROP', rs));
      assert.equal(e.method, 'overlay');
      const rs = fw.ruleset!;
      assert.deepEqual(ruleIdsByChain(rs).get('4/FORWARD')!.slice(1).map((id) => ruleSpec(rs.rules[id].rule!, 4)),
        ['-p udp -j DROP', '-p tcp -m tcp --dport 22 -j ACCEPT', '-s 10.2.0.0/16 -j DROP', '-j LOG --log-prefix "fw "']);
      // A file with an error: the running rules stay, whole.
      writeFileSync(file, text('-A FORWARD -s 10.3.0.300 -j DROP\n'));
      await assert.rejects(fw.load(), (err: unknown) => err instanceof RuleError && err.line === 6 && err.token === '10.3.0.300');
      assert.equal(fw.ruleset, rs);
      assert.equal(fw.status.lastOk, false);
    } finally {
      await fw.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a text replace of one family keeps the other (iptables-restore), read from the running model', async () => {
    const fw = new Firewall({ ports: [{ name: 'bty0', kind: 'afpacket' }, { name: 'bty1', kind: 'afpacket' }], ruleFiles: [], workers: 1, buildThreadMinBytes: 0 });
    try {
      await fw.replace(parseIptables('*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -s 2001:db8::/32 -j ACCEPT\nCOMMIT\n', { file: 'six.rules', family: 6 }));
      const recipe = (running: CompiledRuleSet | undefined): Promise<Recipe> => Promise.resolve({
        texts: [{ file: '<request>', text: text('') }], opts: { family: 4 }, kept: running!.source.tables.filter((t) => t.family === 6),
      });
      const a = await fw.replaceText(recipe, false, (n) => assert.equal(n, 1));
      assert.equal(a.rules, 3);
      assert.ok(isDeferred(fw.ruleset!));
      assert.deepEqual(fw.ruleset!.stats.families, [4, 6]);
      const src = await fw.runningSource();
      assert.deepEqual(src!.tables.map((t) => `${t.family}/${t.name}`), ['4/filter', '6/filter']);
      // The check refuses what the caller refuses: nothing is activated.
      const gen = fw.status.generation;
      await assert.rejects(fw.replaceText(recipe, false, () => { throw new Error('no tables'); }), /no tables/);
      assert.equal(fw.status.generation, gen);
    } finally {
      await fw.stop();
    }
  });
});

describe('text replaces that are refused change nothing, on either path', { timeout: 60_000 }, () => {
  for (const min of [0, Infinity]) {
    test(`no tables, or a native-format body sent as iptables-save text (${min === 0 ? 'build thread' : 'main thread'})`, async () => {
      const fw = new Firewall({ ports: [{ name: 'btr0', kind: 'afpacket' }, { name: 'btr1', kind: 'afpacket' }], ruleFiles: [], workers: 1, buildThreadMinBytes: min });
      try {
        await fw.replace(parseIptables('*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -p udp -j ACCEPT\nCOMMIT\n', { file: 'a.rules' }));
        const gen = fw.status.generation;
        const put = (text: string) => fw.replaceText(async (running) => ({ texts: [{ file: '<request>', text }], opts: { family: 4, saveOnly: true }, kept: running!.source.tables.filter((t) => t.family === 6) }),
          false, (n) => { if (n === 0) throw new Error('empty_ruleset'); });
        await assert.rejects(put('# nothing\n'), /empty_ruleset/);
        await assert.rejects(put('{"tables": []}\n'), (err: unknown) => err instanceof RuleError && err.line === 1);
        assert.equal(fw.status.generation, gen, 'nothing activated');
      } finally {
        await fw.stop();
      }
    });
  }
});

describe('--rule-model', { timeout: 60_000 }, () => {
  test('background: the model is read right after activation, without a listing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fw-bt-'));
    const file = join(dir, 'a.rules');
    writeFileSync(file, `${[...generateLines({ family: 'acl', rules: 2000, seed: 9 })].join('\n')}\n`);
    const fw = new Firewall({ ports: [{ name: 'btz0', kind: 'afpacket' }, { name: 'btz1', kind: 'afpacket' }], ruleFiles: [file], workers: 1, buildThreadMinBytes: 0, ruleModel: 'background' });
    try {
      await fw.load();
      for (let i = 0; i < 500 && isDeferred(fw.ruleset!); i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(!isDeferred(fw.ruleset!), 'read within 10 s');
      assert.equal(fw.ruleset!.rules.filter((r) => r.rule).length, 2000);
    } finally {
      await fw.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('flatwall run refuses another value (exit 2)', () => {
    const cli = join(__dirname, '..', 'cli', 'main.js');
    const r = spawnSync(process.execPath, [cli, 'run', '--port', 'btq0', '--port', 'btq1', '-r', '/nonexistent', '--rule-model', 'eager'], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--rule-model must be lazy or background/);
  });
});
