// A big text reload does not stop the API (issue 13): `flatwall run` parses
// and compiles in slices (src/rules/steps.ts), so while a 400k-rule PUT
// /rules is in flight, GET /health, /metrics and /rules (ctl list: the
// running rules until the swap) are answered and GET /reload/progress
// reports the parse, the compile and the classifier build as they happen;
// each stage is logged with its counts; `flatwall ctl reload FILE` shows the
// stages on stderr (plain lines: not a terminal). Asserts that the answers
// arrive during the reload, not how fast.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { E2eLab, V4_HEADER, e2eUnavailable, parseJson } from './harness';
import { apiCall } from '../../src/cli/ctl';
import { run } from '../../src/lab/proc';
import { FLATWALL_CLI } from '../../src/lab/engines';
import { generateLines } from '../../src/rules/generate';

const skip = e2eUnavailable();
const RULES = 400_000;

describe('the API during a big text reload', { skip, timeout: 300_000 }, () => {
  let lab: E2eLab;
  let big = '';
  let fast = '';
  const api = (method: string, path: string, body?: string, ct?: string) => apiCall({ socket: lab.apiSocket }, method, path, body, ct);

  before(async () => {
    lab = await E2eLab.start({ rules: { 'small.rules': `${V4_HEADER}-A FORWARD -p icmp -j ACCEPT\nCOMMIT\n` } });
    // A LOG rule first: the addon's text fast path declines the set at
    // once (src/rules/text-fast-path.ts), so the reference parser and
    // compiler run and report their progress as they go; the fast path's
    // own reload is the next test.
    const lines = [...generateLines({ family: 'acl', rules: RULES - 1, seed: 3 })];
    lines.splice(lines.findIndex((l) => l.startsWith('-A ')), 0, '-A FORWARD -p tcp --dport 9 -j LOG --log-prefix "nine "');
    big = `${lines.join('\n')}\n`;
    fast = `${[...generateLines({ family: 'acl', rules: RULES, seed: 4 })].join('\n')}\n`;
  });
  after(async () => {
    await lab?.close();
  });

  /**
   * PUT /rules of `body` while a client asks /health, /rules (ctl list),
   * /metrics and /reload/progress in turn, 20 ms apart: what was answered
   * while the PUT was in flight.
   */
  async function putWhileProbing(body: string) {
    let inFlight = true;
    const seen: Array<{ stage: string; done: number; total: number }> = [];
    let health = 0;
    let listed = 0;
    let metrics = 0;
    let failed = 0;
    const poll = (async () => {
      while (inFlight) {
        try {
          const h = await api('GET', '/health');
          if (h.status === 200 && inFlight) health++;
          // ctl list and a Prometheus scrape: the running rules' listing stays valid until the swap.
          const l = await api('GET', '/rules?limit=1');
          if (l.status === 200 && inFlight) listed++;
          const m = await api('GET', '/metrics');
          if (m.status === 200 && inFlight) metrics++;
          const p = await api('GET', '/reload/progress');
          if (inFlight && p.json?.active) seen.push({ stage: p.json.stage, done: p.json.done, total: p.json.total });
        } catch {
          failed++;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const put = await api('PUT', '/rules', body, 'text/plain');
    inFlight = false;
    await poll;
    return { put, seen, health, listed, metrics, failed };
  }

  test('/health and /reload/progress answer while a 400k-rule PUT /rules parses and compiles', async () => {
    const { put, seen, health, listed, metrics, failed } = await putWhileProbing(big);
    assert.equal(put.status, 200, put.body.slice(0, 300));
    assert.equal(put.json!.rules, RULES);
    assert.equal(failed, 0, 'every probe was answered');
    const stages = [...new Set(seen.map((s) => s.stage))];
    assert.ok(stages.includes('parse'), `the parse was seen from outside: ${JSON.stringify(stages)}`);
    assert.ok(stages.includes('compile'), `the compile was seen from outside: ${JSON.stringify(stages)}`);
    assert.ok(health >= 3, `/health answered ${health} times during the reload`);
    assert.ok(listed >= 3, `GET /rules answered ${listed} times during the reload`);
    assert.ok(metrics >= 3, `/metrics answered ${metrics} times during the reload`);
    const parse = seen.filter((s) => s.stage === 'parse' && s.total > 0); // total 0: before the first count
    assert.ok(parse.every((s) => s.total >= RULES && s.done <= s.total), JSON.stringify(parse.slice(0, 3)));
    assert.ok(parse.length >= 2 && parse[parse.length - 1].done > parse[0].done, 'the parse advanced between answers');
    assert.deepEqual((await api('GET', '/reload/progress')).json, { active: false });
    // One log line per stage, with its counts.
    const logged = lab.fw.lines.map(parseJson).filter((j) => j?.msg === 'reload stage done');
    for (const stage of ['parse', 'compile', 'build']) assert.ok(logged.some((j) => j!.stage === stage && j!.total > 0), `${stage} logged: ${JSON.stringify(logged)}`);
    // The addon saw the LOG rule as the body came in and said so once; the reference built it without asking it again.
    if (process.env.FLATWALL_TEXT_FAST_PATH !== '0') {
      const declined = lab.fw.lines.map(parseJson).filter((j) => j?.msg === 'rule text compiled by the reference parser');
      assert.equal(declined.length, 1, JSON.stringify(declined));
      assert.equal(declined[0]!.streamed, true);
    }
  });

  test('the text fast path: the API answers during its reload and its stages are logged', async () => {
    const before = lab.fw.lines.length;
    const { put, seen, health, failed } = await putWhileProbing(fast);
    const stages = new Set(seen.map((x) => x.stage));
    assert.equal(put.status, 200, put.body.slice(0, 300));
    assert.equal(put.json!.rules, RULES);
    assert.equal(failed, 0, 'every probe was answered');
    assert.ok(health >= 3, `/health answered ${health} times during the reload`);
    assert.ok(stages.size >= 1, 'a stage was seen from outside');
    const logged = lab.fw.lines.slice(before).map(parseJson);
    // Compiled while the body arrived (Firewall.replaceTextStreamed).
    if (process.env.FLATWALL_TEXT_FAST_PATH !== '0') assert.ok(logged.some((j) => j?.msg === 'rule text compiled by the addon' && j.streamed === true), 'the fast path compiled it as it came');
    for (const stage of ['parse', 'compile', 'build']) {
      assert.ok(logged.some((j) => j?.msg === 'reload stage done' && j.stage === stage && j.total > 0), `${stage} logged`);
    }
  });

  test('a second replace during the first is queued: both answer, one generation each, never interleaved', async () => {
    const gen = (await api('GET', '/stats')).json!.reload.generation;
    const a = `${[...generateLines({ family: 'acl', rules: 60_000, seed: 4 })].join('\n')}\n`;
    const b = `${[...generateLines({ family: 'acl', rules: 30_000, seed: 5 })].join('\n')}\n`;
    const [ra, rb] = await Promise.all([api('PUT', '/rules', a, 'text/plain'), api('PUT', '/rules', b, 'text/plain')]);
    assert.equal(ra.status, 200, ra.body.slice(0, 200));
    assert.equal(rb.status, 200, rb.body.slice(0, 200));
    // Queued in the order their bodies arrived (the smaller may overtake).
    assert.deepEqual([ra.json!.generation, rb.json!.generation].sort(), [gen + 1, gen + 2]);
    assert.deepEqual([ra.json!.rules, rb.json!.rules], [60_000, 30_000]);
    const last = ra.json!.generation > rb.json!.generation ? ra.json! : rb.json!;
    assert.equal((await api('GET', '/rules?limit=1')).json!.total, last.rules, 'the later generation is what runs, whole');
  });

  test('flatwall ctl reload FILE shows the stages on stderr when it is not a terminal', async () => {
    const file = join(lab.dir, 'big.rules');
    writeFileSync(file, big.replace(/^-A FORWARD /m, '-A FORWARD -p icmp -j ACCEPT\n-A FORWARD '));
    const r = await run(process.execPath, [FLATWALL_CLI, 'ctl', '--socket', lab.apiSocket, 'reload', file], { timeoutMs: 120_000, allowFail: true });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`big\\.rules: generation \\d+, ${RULES + 1} rules`));
    assert.match(r.stderr, /^reload: (parse|compile|build): \d+% \(\d+\/\d+ (lines|rules|records)\)$/m);
  });
});
