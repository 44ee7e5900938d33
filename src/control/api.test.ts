// The API server on its own (no firewall): Unix socket mode and stale
// socket handling, the TCP listener's token, routing errors, body limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, existsSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiError, ApiServer, Router } from './api';
import { apiCall } from '../cli/ctl';
import { RuleError, excerpt, overRuleLimit } from '../rules/errors';
import { AdmissionError } from './admission';
import { createConnection } from 'node:net';
import { parseIptables } from '../rules/iptables/parse';

const TOKEN = 'correct-horse-battery-staple';

function router(): Router {
  return new Router()
    .add('GET', '/health', () => ({ body: { status: 'ok' } }))
    .add('GET', '/ready', () => ({ body: { ready: true } }))
    .add('PUT', '/echo', async (req) => ({ body: { got: await req.text() } }), 16)
    .add('POST', '/json', async (req) => ({ body: await req.json() }))
    .add('GET', '/items/:id', (req) => ({ body: { id: req.params.id } }))
    .add('GET', '/rule-error', () => {
      throw new RuleError({ file: '<request>', line: 3, col: 7 }, 'bad thing', 'tok');
    })
    .add('GET', '/teapot', () => {
      throw new ApiError(418, 'teapot', 'short and stout');
    })
    .add('PUT', '/rules', async (req) => {
      parseIptables(await req.text(), { file: '<request>' });
      return { body: { ok: true } };
    }, 512 << 20)
    .add('GET', '/unserializable', () => {
      const loop: Record<string, unknown> = {};
      loop.self = loop;
      // Fails to serialize twice: as the answer, and as the error's details.
      return { body: { loop } };
    })
    .add('PUT', '/limited', () => {
      throw overRuleLimit({ file: '<request>', line: 7, col: 1 }, 5);
    })
    .add('PUT', '/admission', () => {
      throw new AdmissionError('not enough memory for the request body', { heapNeeded: 2, heapFree: 1 });
    })
    .add('GET', '/unserializable-error', () => {
      const loop: Record<string, unknown> = {};
      loop.self = loop;
      throw new ApiError(409, 'conflict', 'details cannot be written', { loop });
    });
}

function scratch(): string {
  return mkdtempSync(join(tmpdir(), 'flatwall-api-'));
}

test('Unix socket: mode 0600, answers, removed on close', async () => {
  const dir = scratch();
  const sock = join(dir, 'sub', 'api.sock');
  const s = new ApiServer(router(), { socket: sock });
  try {
    await s.start();
    assert.equal(statSync(sock).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'sub')).mode & 0o777, 0o700);
    const a = await apiCall({ socket: sock }, 'GET', '/health');
    assert.equal(a.status, 200);
    assert.deepEqual(a.json, { status: 'ok' });
    assert.deepEqual((await apiCall({ socket: sock }, 'GET', '/items/a%2Fb')).json, { id: 'a/b' });
  } finally {
    await s.close();
  }
  assert.equal(existsSync(sock), false);
  rmSync(dir, { recursive: true });
});

test('a stale socket is replaced; a live one or a non-socket file is refused', async () => {
  const dir = scratch();
  const sock = join(dir, 'api.sock');
  // Stale: the socket of a process that was killed (nobody listens on it).
  spawnSync(process.execPath, ['-e', "require('net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))", sock]);
  assert.ok(existsSync(sock), 'a dead socket file is left');
  const s = new ApiServer(router(), { socket: sock });
  await s.start();
  try {
    assert.equal((await apiCall({ socket: sock }, 'GET', '/health')).status, 200);
    // Live: a second server on the same path is refused.
    const t = new ApiServer(router(), { socket: sock });
    await assert.rejects(t.start(), /another process is serving the API/);
  } finally {
    await s.close();
  }
  writeFileSync(sock, 'not a socket');
  await assert.rejects(new ApiServer(router(), { socket: sock }).start(), /exists and is not a socket/);
  rmSync(dir, { recursive: true });
});

test('TCP: refused without a token at construction; requests need the right bearer token', async () => {
  assert.throws(() => new ApiServer(router(), { listen: '127.0.0.1:0' }), /without a token/);
  const s = new ApiServer(router(), { listen: '127.0.0.1:0', token: TOKEN });
  await s.start();
  try {
    const url = new URL(`http://127.0.0.1:${s.tcpAddress!.port}`);
    const none = await apiCall({ url }, 'GET', '/health');
    assert.equal(none.status, 401);
    assert.equal(none.json!.code, 'unauthorized');
    const wrong = await apiCall({ url, token: `${TOKEN}x` }, 'GET', '/health');
    assert.equal(wrong.status, 401);
    const short = await apiCall({ url, token: TOKEN.slice(0, 5) }, 'GET', '/health');
    assert.equal(short.status, 401);
    const ok = await apiCall({ url, token: TOKEN }, 'GET', '/health');
    assert.equal(ok.status, 200);
  } finally {
    await s.close();
  }
});

test('TCP --api-open-probes: GET/HEAD /health and /ready without the token, nothing else', async () => {
  for (const open of [false, true]) {
    const s = new ApiServer(router(), { listen: '127.0.0.1:0', token: TOKEN, openProbes: open });
    await s.start();
    try {
      const url = new URL(`http://127.0.0.1:${s.tcpAddress!.port}`);
      for (const p of ['/health', '/ready']) {
        assert.equal((await apiCall({ url }, 'GET', p)).status, open ? 200 : 401, `${p} open=${open}`);
        assert.equal((await apiCall({ url }, 'HEAD', p)).status, open ? 200 : 401, `HEAD ${p} open=${open}`);
      }
      // Everything else still needs the token, whatever the path looks like.
      for (const [m, p] of [['GET', '/items/x'], ['GET', '/health/'], ['GET', '/HEALTH'], ['GET', '/ready?x=/health'], ['PUT', '/echo'], ['GET', '/nope']]) {
        const r = await apiCall({ url }, m, p, m === 'PUT' ? 'x' : undefined);
        assert.equal(r.status, p.startsWith('/ready?') && open ? 200 : 401, `${m} ${p} open=${open}`);
      }
      assert.equal((await apiCall({ url, token: TOKEN }, 'GET', '/items/x')).status, 200);
    } finally {
      await s.close();
    }
  }
});

test('errors are JSON: 404, 405 with Allow, 413, bad JSON, rule errors with position, handler errors', async () => {
  const dir = scratch();
  const sock = join(dir, 'api.sock');
  const s = new ApiServer(router(), { socket: sock });
  await s.start();
  const call = (m: string, p: string, b?: string) => apiCall({ socket: sock }, m, p, b);
  try {
    const nf = await call('GET', '/nope');
    assert.deepEqual([nf.status, nf.json!.code], [404, 'not_found']);
    const na = await call('DELETE', '/health');
    assert.deepEqual([na.status, na.json!.code], [405, 'method_not_allowed']);
    assert.match(na.json!.error, /allowed: GET/);
    const big = await call('PUT', '/echo', 'x'.repeat(17));
    assert.deepEqual([big.status, big.json!.code], [413, 'body_too_large']);
    assert.deepEqual((await call('PUT', '/echo', 'x'.repeat(16))).json, { got: 'x'.repeat(16) });
    const bj = await call('POST', '/json', '{"a":');
    assert.deepEqual([bj.status, bj.json!.code], [400, 'bad_json']);
    const arr = await call('POST', '/json', '[1]');
    assert.equal(arr.status, 400);
    assert.deepEqual((await call('POST', '/json', '{"a":1}')).json, { a: 1 });
    const re = await call('GET', '/rule-error');
    assert.equal(re.status, 400);
    assert.deepEqual([re.json!.code, re.json!.file, re.json!.line, re.json!.column, re.json!.token], ['rule_error', '<request>', 3, 7, 'tok']);
    const tp = await call('GET', '/teapot');
    assert.deepEqual([tp.status, tp.json!.error], [418, 'short and stout']);
  } finally {
    await s.close();
    rmSync(dir, { recursive: true });
  }
});

test('no request ends the server: 50 MB of control bytes, answers that cannot be serialized', async () => {
  const dir = scratch();
  const sock = join(dir, 'api.sock');
  const s = new ApiServer(router(), { socket: sock });
  await s.start();
  try {
    // The body that killed `flatwall run` (RangeError from JSON.stringify
    // copying the token into the answer): one 50 MB line of \x01 bytes.
    const bad = await apiCall({ socket: sock }, 'PUT', '/rules', Buffer.alloc(50 << 20, 1).toString('latin1'));
    assert.equal(bad.status, 400);
    assert.equal(bad.json!.code, 'rule_error');
    const token = String(bad.json!.token);
    assert.ok(token.length <= 64 * 4 + 1, `token excerpt of ${token.length} characters`);
    assert.ok(token.startsWith('\\x01\\x01') && token.endsWith('…'), token.slice(0, 40));
    assert.ok(bad.body.length < 2000, `answer of ${bad.body.length} bytes`);
    assert.ok(!/[\x00-\x08\x0b-\x1f]/.test(bad.body), 'no raw control bytes in the answer');
    assert.equal((await apiCall({ socket: sock }, 'GET', '/unserializable')).status, 500);
    const twice = await apiCall({ socket: sock }, 'GET', '/unserializable-error');
    assert.equal(twice.status, 500);
    assert.equal(twice.json!.code, 'internal');
    assert.equal((await apiCall({ socket: sock }, 'GET', '/health')).status, 200);
  } finally {
    await s.close();
  }
  rmSync(dir, { recursive: true });
});

test('excerpt: control, invisible and bidi characters escaped, long input cut', () => {
  assert.equal(excerpt('a\x01b\x1b[31m'), 'a\\x01b\\x1b[31m');
  assert.equal(excerpt('\ufeff-A'), '\\ufeff-A');
  assert.equal(excerpt('x\u202ey'), 'x\\u202ey');
  assert.equal(excerpt('é日本'), 'é日本');
  assert.equal(excerpt('z'.repeat(100), 10), `${'z'.repeat(10)}…`);
  const e = new RuleError({ file: 'f', line: 1, col: 2 }, `bad "${'\x07'.repeat(1000)}"`, '\x07'.repeat(1000));
  assert.ok(e.message.length < 3000 && !e.message.includes('\x07'), e.message.slice(0, 80));
});

/** One raw HTTP/1.1 exchange over the Unix socket (what apiCall cannot send). */
function raw(sock: string, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection(sock);
    let got = '';
    c.on('data', (d) => (got += d.toString('latin1')));
    c.on('end', () => resolve(got));
    c.on('error', reject);
    c.end(request);
  });
}

test('limits and odd requests are answers: 413 too_many_rules, 507 insufficient_memory, a target that is no URL, JSON errors escaped', async () => {
  const dir = scratch();
  const sock = join(dir, 'api.sock');
  const s = new ApiServer(router(), { socket: sock });
  await s.start();
  const call = (m: string, p: string, b?: string) => apiCall({ socket: sock }, m, p, b);
  try {
    const lim = await call('PUT', '/limited', 'x');
    assert.deepEqual([lim.status, lim.json!.code, lim.json!.line, lim.json!.limit], [413, 'too_many_rules', 7, 5]);
    assert.equal(lim.json!.error, '<request>:7:1: more than 5 rules: over the rule limit (--max-rules 5)');
    const mem = await call('PUT', '/admission', 'x');
    assert.deepEqual([mem.status, mem.json!.code, mem.json!.heapNeeded], [507, 'insufficient_memory', 2]);
    // "GET http://[" parses as HTTP but is no URL: it was thrown outside the
    // handler's try (the connection died without an answer).
    const bad = await raw(sock, 'GET http://[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(bad, /^HTTP\/1\.1 400 /);
    assert.match(bad, /"code":"bad_request"/);
    // JSON.parse's message quotes the bytes it met: escaped like any input.
    const bj = await call('POST', '/json', '\x1b[31m');
    assert.equal(bj.status, 400);
    assert.ok(!bj.body.includes('\x1b') && !bj.body.includes('\\u001b'), bj.body);
    assert.match(bj.json!.error, /\\x1b/);
    assert.equal((await call('GET', '/health')).status, 200);
  } finally {
    await s.close();
    rmSync(dir, { recursive: true });
  }
});
