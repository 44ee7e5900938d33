// The firewall's API routes (see api.ts for the server and docs/API.md for
// the endpoints). Each handler validates its input, calls one Firewall
// method and shapes the answer; rule edits go through src/control/ruleops.ts
// so the API accepts exactly iptables' syntax.
import { RuleError } from '../rules/errors';
import type { CompiledRuleSet } from '../rules/compile';
import { chainKey, tableOfKey, type Family, type RuleSet, type Table } from '../rules/model';
import { materialize, movableBytes, type Recipe } from '../rules/deferred';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { checkCount, decodeUtf8Sliced, mergeTables, ruleCount, stripBom } from '../rules/load';
import { fastPathEnabled } from '../rules/text-fast-path';
import { detectFileFamily } from '../rules/family';
import { parseNative } from '../rules/native-format';
import { chainOrder, printTable, ruleSpec } from '../rules/iptables/print';
import { listColumns } from '../rules/iptables/list';
import { ruleIdsByChain } from '../rules/positions';
import { textDemandOf, type Firewall } from './firewall';
import { log } from './log';
import { ApiError, Router, type ApiRequest } from './api';
import { parseRuleCommand, REQUEST_FILE } from './ruleops';
import { processMemory, renderMetrics, type RuleMetricsMode } from './metrics';
import { firewallHealth } from './health';
import { parseSnapshot, readSnapshot, SnapshotError, SNAPSHOT_CONTENT_TYPE, type LoadedSnapshot } from './snapshot';
import { ipsetRoutes } from './ipset-routes';

export const RULES_BODY_LIMIT = 512 * 1024 * 1024;
const DEFAULT_PAGE = 1000;
const MAX_PAGE = 100_000;

export interface RouteOptions {
  ruleMetrics: RuleMetricsMode;
  /** Bytes accepted for PUT /rules. */
  maxRulesBody?: number;
}

function intParam(req: ApiRequest, name: string, def: number, min: number, max: number): number {
  const v = req.query.get(name);
  if (v === null || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new ApiError(400, 'bad_parameter', `${name} must be an integer in ${min}..${max}, got "${v}"`);
  return n;
}

function familyParam(v: unknown, def: Family | undefined): Family | undefined {
  if (v === undefined || v === null || v === '') return def;
  if (v === 4 || v === '4' || v === 'ipv4') return 4;
  if (v === 6 || v === '6' || v === 'ipv6') return 6;
  throw new ApiError(400, 'bad_parameter', `family must be 4 or 6, got ${JSON.stringify(v)}`);
}

const truthy = (v: string | null) => v === '1' || v === 'true' || v === 'yes';

function requireRules(fw: Firewall): CompiledRuleSet {
  const rs = fw.ruleset;
  if (!rs) {
    throw fw.loadingMetadata
      ? new ApiError(503, 'loading', 'the rules are active (from a snapshot); their listing is still loading', {}, { 'Retry-After': '2' })
      : new ApiError(503, 'not_ready', 'no rule set is active yet');
  }
  return rs;
}

/** Jumps and gotos to each user chain (computed once per table). */
const refCache = new WeakMap<Table, Map<string, number>>();
function references(t: Table, name: string): number {
  let m = refCache.get(t);
  if (!m) {
    m = new Map();
    for (const c of t.chains.values()) {
      for (const r of c.rules) if (r.target.kind === 'jump' || r.target.kind === 'goto') m.set(r.target.chain, (m.get(r.target.chain) ?? 0) + 1);
    }
    refCache.set(t, m);
  }
  return m.get(name) ?? 0;
}

type BodyFormat = 'save' | 'native';

/** The format of a PUT /rules body, by Content-Type (415 before anything is read). */
function bodyFormat(contentType: string): BodyFormat {
  const ct = contentType.split(';')[0].trim().toLowerCase();
  if (['application/json', 'application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml'].includes(ct)) return 'native';
  if (ct === '' || ct === 'text/plain' || ct === 'application/x-iptables-save' || ct === 'application/octet-stream') return 'save';
  throw new ApiError(415, 'unsupported_media_type',
    `Content-Type ${ct} is not supported: use text/plain (iptables-save), application/json / application/yaml (native format) or ${SNAPSHOT_CONTENT_TYPE} (flatwall compile -o)`);
}

/**
 * The rule set a native-format PUT /rules body makes of the running one,
 * within the rule limit and the memory admission check.
 */
function nativeReplacement(fw: Firewall, input: string, running: RuleSet | undefined): RuleSet {
  const text = stripBom(input, REQUEST_FILE, (m) => log('warn', m));
  const max = fw.maxRules;
  fw.admit(textDemandOf('the request body', REQUEST_FILE, text, max));
  const next = nonEmpty(parseNative(text, REQUEST_FILE));
  return checkCount(mergeTables(running, next), REQUEST_FILE, max);
}

/** The `*TABLE` names of an iptables-save text (a scan for header lines, not a parse). */
function tableHeaders(text: string): Set<string> {
  const names = new Set<string>();
  for (let i = text[0] === '*' ? 0 : text.indexOf('\n*'); i >= 0; i = text.indexOf('\n*', i + 1)) {
    const at = text[i] === '*' ? i + 1 : i + 2;
    let end = at;
    while (end < text.length && text[end] !== '\n' && text[end] !== ' ' && text[end] !== '\t' && text[end] !== '\r') end++;
    names.add(text.slice(at, end));
  }
  return names;
}

/**
 * The recipe of an iptables-save PUT /rules body (src/rules/deferred.ts):
 * the tables it gives replace the running ones of the same family and name,
 * the others stay (iptables-restore), and those of the other family count
 * against the rule limit. The running model is read only when a table of
 * it stays; the rule lines are counted for the admission check first.
 */
async function textReplacement(fw: Firewall, input: string, family: Family | undefined, running: CompiledRuleSet | undefined, bytes?: ArrayBuffer): Promise<Recipe> {
  // Each scan of a large body is tens of ms: the probes get a turn between them.
  const text = stripBom(input, REQUEST_FILE, (m) => log('warn', m));
  const max = fw.maxRules;
  const fam = family ?? detectFileFamily(text, REQUEST_FILE).family;
  await nextTurn();
  const given = new Set([...tableHeaders(text)].map((name) => `${fam}/${name}`));
  await nextTurn();
  // Admitted before the running model is read for the tables that stay
  // (which takes memory), then again with those tables' rules counted.
  fw.admit(textDemandOf('the request body', REQUEST_FILE, text, max));
  let kept: Table[] | undefined;
  let keptRules = 0;
  if (running && running.tables.some((t) => !given.has(`${t.family}/${tableOfKey(t.hook)}`))) {
    await materialize(running);
    kept = running.source.tables.filter((t) => !given.has(`${t.family}/${t.name}`));
    keptRules = ruleCount({ tables: kept.filter((t) => t.family !== fam) });
    if (keptRules > 0) fw.admit(textDemandOf('the request body', REQUEST_FILE, text, max, keptRules));
  }
  await nextTurn();
  // The bytes are the text's only when no BOM was cut off it.
  return {
    texts: [{ file: REQUEST_FILE, text }], opts: { family: fam, maxRules: max, rulesBefore: keptRules, saveOnly: true }, kept: kept ?? [],
    bytes: text === input ? [bytes] : undefined,
  };
}

function nonEmpty(rs: RuleSet): RuleSet {
  if (rs.tables.length === 0) throw new ApiError(400, 'empty_ruleset', 'the body holds no *filter or *raw table');
  return rs;
}

/** Body field "rule" (JSON) or the whole text/plain body. */
async function ruleText(req: ApiRequest): Promise<{ rule: string; family?: Family }> {
  const ct = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (ct === 'text/plain') return { rule: (await req.text()).trim(), family: familyParam(req.query.get('family'), undefined) };
  const b = await req.json();
  if (typeof b.rule !== 'string') throw new ApiError(400, 'bad_request', 'body must be {"rule": "-A CHAIN ..."} (optionally "family": 4 or 6)');
  return { rule: b.rule, family: familyParam(b.family ?? req.query.get('family') ?? undefined, undefined) };
}

/** Re-point a RuleError from a prefixed command back into what the client sent. */
function shifted(err: unknown, by: number): unknown {
  if (err instanceof RuleError && err.file === REQUEST_FILE) {
    return new RuleError({ file: err.file, line: err.line, col: Math.max(1, err.col - by) }, err.reason, err.token);
  }
  return err;
}

export function firewallRoutes(fw: Firewall, opts: RouteOptions, router = new Router()): Router {
  // The probe contract (src/control/health.ts, docs/API.md Probes): /health
  // is 503 only when a part failed in a way a restart mends; /ready is 200
  // only with the rules active, every port up and every worker going round.
  router.add('GET', '/health', () => {
    const h = firewallHealth(fw);
    const { ready: _r, notReady: _n, ...body } = h;
    return { status: h.status === 'failed' ? 503 : 200, body };
  });

  router.add('GET', '/ready', () => {
    const h = firewallHealth(fw);
    return h.ready
      ? { body: { ready: true, generation: fw.status.generation } }
      : { status: 503, body: { ready: false, reason: h.notReady.join('; '), reasons: h.notReady } };
  });

  router.add('GET', '/metrics', async () => ({
    body: await renderMetrics(fw, opts.ruleMetrics), contentType: 'text/plain; version=0.0.4; charset=utf-8',
  }));

  router.add('GET', '/stats', () => {
    const c = fw.counters({ rules: false });
    return { body: { ready: firewallHealth(fw).ready, io: fw.dataplaneStarted ? fw.io : undefined, workersRunning: c.workersRunning, reload: fw.status, verdicts: c.verdicts, ports: c.ports, dropsByReason: c.dropsByReason, logs: c.logs, batches: c.batches, conntrack: c.conntrack, flowCache: c.flowCache, l4Truncated: c.l4Truncated, ndp: c.ndp, hooks: c.hooks, process: processMemory() } };
  });

  router.add('GET', '/rules', async (req) => {
    requireRules(fw);
    const { ruleset, get } = await fw.ruleCounters();
    const rs = ruleset!;
    const family = familyParam(req.query.get('family'), undefined);
    const chainName = req.query.get('chain') ?? undefined;
    // ?table= as iptables -t: filter unless named; format=save without it
    // prints every table of the family, as iptables-save does.
    const tableName = req.query.get('table') ?? undefined;
    if (tableName !== undefined && tableName !== 'filter' && tableName !== 'raw') {
      throw new ApiError(400, 'bad_parameter', 'table must be filter or raw');
    }
    const ofFamily = rs.source.tables.filter((t) => family === undefined || t.family === family);
    if (req.query.get('format') === 'save') {
      if (new Set(ofFamily.map((t) => t.family)).size > 1) throw new ApiError(400, 'bad_parameter', 'format=save prints one family: add family=4 or family=6');
      const chosen = ofFamily.filter((t) => tableName === undefined || t.name === tableName);
      if (!chosen.length) throw new ApiError(404, 'no_such_table', `the rule set has no ${tableName ?? ''} table${family ? ` for IPv${family}` : ''}`);
      const counts = truthy(req.query.get('counters')) ? get : undefined;
      return { body: chosen.map((t) => saveText(rs, t, counts)).join(''), contentType: 'text/plain; charset=utf-8' };
    }
    const tables = ofFamily.filter((t) => t.name === (tableName ?? 'filter'));
    if (chainName && !tables.some((t) => t.chains.has(chainName))) throw new ApiError(404, 'no_such_chain', `chain ${chainName} does not exist`);
    const offset = intParam(req, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam(req, 'limit', DEFAULT_PAGE, 1, MAX_PAGE);
    const ids = ruleIdsByChain(rs);
    const chains = [];
    const rules = [];
    let total = 0;
    for (const t of tables) {
      for (const c of chainOrder(t)) {
        if (chainName && c.name !== chainName) continue;
        const cid = ids.get(`${t.family}/${chainKey(t.name, c.name)}`) ?? [-1];
        const pol = c.builtin && cid[0] >= 0 ? get(cid[0]) : undefined;
        chains.push({
          family: t.family, table: t.name, chain: c.name, builtin: c.builtin, policy: c.builtin ? c.policy : undefined,
          packets: pol?.[0], bytes: pol?.[1], references: c.builtin ? undefined : references(t, c.name), rules: c.rules.length,
        });
        // Only the page's rules are formatted and counted.
        const from = Math.max(0, offset - total);
        const to = Math.min(c.rules.length, offset + limit - total);
        for (let i = from; i < to; i++) {
          const r = c.rules[i];
          const [packets, bytes] = get(cid[i + 1]);
          rules.push({
            family: t.family, table: t.name, chain: c.name, num: i + 1, spec: ruleSpec(r, t.family), packets, bytes,
            file: r.pos.file, line: r.pos.line, list: listColumns(r, t.family),
          });
        }
        total += c.rules.length;
      }
    }
    return { body: { generation: fw.status.generation, total, offset, limit, next: offset + limit < total ? offset + limit : null, chains, rules } };
  });

  // Where a reload is (ctl reload's progress bar): served during the reload,
  // whose parse and compile give the event loop turns (src/rules/steps.ts).
  router.add('GET', '/reload/progress', () => {
    const p = fw.progress;
    return { body: p ? { active: true, ...p } : { active: false } };
  });

  router.add('POST', '/reload', async (req) => {
    const b = await req.json();
    if (b.snapshot !== undefined) {
      // A snapshot file the firewall reads itself: no upload of hundreds of
      // MB. Only on the Unix socket: a TCP client must not name server files.
      if (!req.local) throw new ApiError(403, 'forbidden', 'a snapshot path is accepted on the Unix socket only; over TCP, PUT the snapshot as the body');
      if (typeof b.snapshot !== 'string' || !b.snapshot.startsWith('/')) throw new ApiError(400, 'bad_request', '"snapshot" must be an absolute path');
      return { body: { reloaded: true, ...(await replaceBySnapshot(() => readSnapshot(b.snapshot as string))) } };
    }
    if (!fw.hasRuleFiles) throw new ApiError(409, 'no_rule_files', 'started from a snapshot without --rules: nothing to reload (PUT /rules replaces the rules)');
    return { body: { reloaded: true, ...(await fw.load()) } };
  });

  /** Read and verify a snapshot (SnapshotError: 400), then activate it. */
  const replaceBySnapshot = async (read: () => LoadedSnapshot) => {
    const t0 = performance.now();
    let snap;
    try {
      snap = read();
    } catch (err) {
      if (err instanceof SnapshotError) throw new ApiError(400, 'bad_snapshot', err.message);
      throw err;
    }
    const verifySeconds = (performance.now() - t0) / 1000;
    // The answer goes out now; `metadata` (a promise) settles later.
    return { ...(await fw.replaceWithSnapshot(snap)), verifySeconds, metadata: 'loading' };
  };

  router.add('PUT', '/rules', async (req) => {
    // A partial (one-family) replace merges with the running tables, which must be known.
    if (String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase() === SNAPSHOT_CONTENT_TYPE) {
      // A compiled snapshot (flatwall compile -o): replaces every table,
      // active without parsing or building; listing and counters follow.
      const t0 = performance.now();
      const body = await req.bytes();
      const receiveSeconds = (performance.now() - t0) / 1000;
      return { body: { replaced: true, receiveSeconds, ...(await replaceBySnapshot(() => parseSnapshot(REQUEST_FILE, body))) } };
    }
    if (fw.loadingMetadata) requireRules(fw);
    const format = bodyFormat(String(req.headers['content-type'] ?? ''));
    const family = familyParam(req.query.get('family'), undefined);
    const restoreCounters = truthy(req.query.get('counters'));
    const emptyCheck = (parsed: number) => {
      if (parsed === 0) throw new ApiError(400, 'empty_ruleset', 'the body holds no *filter or *raw table');
    };
    // A large iptables-save body is compiled while it arrives (Firewall.replaceTextStreamed).
    const shared = format === 'save' && fastPathEnabled() && fw.idle ? req.sharedBody?.(fw.buildThreadMinBytes) : undefined;
    if (shared) {
      const r = await fw.replaceTextStreamed(shared.body, shared.complete, { file: REQUEST_FILE, family }, restoreCounters, emptyCheck,
        async (bytes) => {
          const text = await decodeUtf8Sliced(bytes);
          return (running) => textReplacement(fw, text, family, running);
        });
      return { body: { replaced: true, ...r } };
    }
    const text = await req.text();
    // The body's bytes go to the build thread, moved, once decoded here.
    const bytes = movableBytes(await req.bytes());
    const r = format === 'native'
      ? await fw.replace((running) => nativeReplacement(fw, text, running), restoreCounters)
      : await fw.replaceText((running) => textReplacement(fw, text, family, running, bytes), restoreCounters, emptyCheck);
    return { body: { replaced: true, ...r } };
  }, opts.maxRulesBody ?? RULES_BODY_LIMIT);

  router.add('POST', '/rules', async (req) => {
    requireRules(fw);
    const { rule, family } = await ruleText(req);
    if (!/^\s*(-A|--append|-I|--insert)\s/.test(rule)) {
      throw new ApiError(400, 'bad_request', 'POST /rules takes "-A CHAIN spec" or "-I CHAIN [n] spec" (delete: DELETE /rules/CHAIN/N, policy: PUT /chains/CHAIN/policy)');
    }
    const r = await fw.edit((running) => parseRuleCommand(rule, running, family));
    const op = r.op as { chain: string; index: number; family: Family; op: string };
    return { status: 201, body: { ...r, op: op.op, family: op.family, chain: op.chain, num: op.index } };
  });

  // A file of edits as one batch (src/control/batch.ts): an
  // iptables-restore --noflush style text body.
  router.add('POST', '/rules/apply', async (req) => {
    requireRules(fw);
    const text = stripBom(await req.text(), REQUEST_FILE, (m) => log('warn', m));
    const family = familyParam(req.query.get('family'), 4)!;
    const r = await fw.applyBatch(text, REQUEST_FILE, family);
    return { body: r };
  }, 64 << 20);

  router.add('DELETE', '/rules/:chain/:num', async (req) => {
    requireRules(fw);
    const { chain, num } = req.params;
    if (!/^\d+$/.test(num)) throw new ApiError(400, 'bad_parameter', `rule number must be a positive integer, got "${num}"`);
    const family = familyParam(req.query.get('family'), 4);
    const r = await fw.edit((running) => parseRuleCommand(`-D ${chain} ${num}`, running, family));
    return { body: { deleted: true, ...r, op: undefined, family: r.op.family, chain, num: Number(num) } };
  });

  router.add('DELETE', '/rules/:chain', async (req) => {
    requireRules(fw);
    const { rule, family } = await ruleText(req);
    const prefix = `-D ${req.params.chain} `;
    let num = 0;
    try {
      const r = await fw.edit((running) => {
        const op = parseRuleCommand(prefix + rule, running, family ?? 4);
        num = (op as { index: number }).index;
        return op;
      });
      return { body: { deleted: true, ...r, op: undefined, family: r.op.family, chain: req.params.chain, num } };
    } catch (err) {
      throw shifted(err, prefix.length);
    }
  });

  const policy = async (req: ApiRequest) => {
    requireRules(fw);
    const b = await req.json();
    if (typeof b.policy !== 'string') throw new ApiError(400, 'bad_request', 'body must be {"policy": "ACCEPT" | "DROP"} (optionally "family": 4 or 6)');
    const family = familyParam(b.family ?? req.query.get('family') ?? undefined, 4);
    const r = await fw.edit((running) => parseRuleCommand(`-P ${req.params.chain} ${b.policy}`, running, family));
    return { body: { ...r, op: undefined, family: r.op.family, chain: req.params.chain, policy: b.policy } };
  };
  router.add('PUT', '/chains/:chain/policy', policy);
  router.add('POST', '/chains/:chain/policy', policy);

  router.add('POST', '/counters/reset', async (req) => {
    const rs = requireRules(fw);
    await materialize(rs);
    const b = await req.json();
    const family = familyParam(b.family ?? req.query.get('family') ?? undefined, undefined);
    const chain = (b.chain ?? req.query.get('chain') ?? undefined) as string | undefined;
    if (chain !== undefined && typeof chain !== 'string') throw new ApiError(400, 'bad_request', '"chain" must be a string');
    // A chain is the filter table's unless "table" says raw (iptables -t raw -Z CHAIN).
    const table = (b.table ?? req.query.get('table') ?? (chain === undefined ? undefined : 'filter')) as string | undefined;
    if (table !== undefined && table !== 'filter' && table !== 'raw') throw new ApiError(400, 'bad_parameter', 'table must be filter or raw');
    if (chain && !rs.source.tables.some((t) => (family === undefined || t.family === family) && t.name === table && t.chains.has(chain))) {
      throw new ApiError(404, 'no_such_chain', `chain ${chain} does not exist`);
    }
    const n = await fw.zero(family === undefined && chain === undefined && table === undefined ? undefined
      : (running) => running.rules.filter((r) => !r.internal && (family === undefined || r.family === family) && (table === undefined || r.table === table) &&
        (chain === undefined || r.chain === chain)).map((r) => r.id));
    return { body: { zeroed: n } };
  });

  // ---- stateful matches: /proc/net/xt_recent and /proc/net/ipt_hashlimit ----
  router.add('GET', '/matches/state', (req) => {
    const kind = req.query.get('kind');
    const name = req.query.get('name');
    if (kind !== null && !['limit', 'hashlimit', 'recent'].includes(kind)) throw new ApiError(400, 'bad_parameter', 'kind must be limit, hashlimit or recent');
    let states = fw.matchStates(req.query.get('list') === '1' || name !== null);
    if (kind !== null) states = states.filter((s) => s.kind === kind);
    if (name !== null) {
      states = states.filter((s) => s.key === `recent:${name}` || s.key.endsWith(`:${name}`));
      if (!states.length) throw new ApiError(404, 'no_such_table', `no ${kind ?? 'recent or hashlimit'} table is named ${name}`);
    }
    return { body: { states } };
  });

  // ---- connection tracking (conntrack -L / -C / -F / -D) ----
  router.add('GET', '/conntrack', async (req) => {
    const limit = intParam(req, 'limit', 10_000, 1, 1_000_000);
    const filter = conntrackFilter(req);
    const entries = await nativeCall(() => fw.conntrackList(filter, limit));
    const { entries: tracked, limit: max } = fw.conntrackCount();
    return { body: { entries, count: entries.length, truncated: entries.length === limit, tracked, max } };
  });
  router.add('GET', '/conntrack/count', () => ({ body: fw.conntrackCount() }));
  router.add('DELETE', '/conntrack', async (req) => {
    const filter = conntrackFilter(req);
    return { body: { flushed: await nativeCall(() => fw.conntrackFlush(filter)) } };
  });
  router.add('DELETE', '/conntrack/entry', async (req) => {
    const q = req.query;
    for (const k of ['proto', 'src', 'dst']) if (!q.get(k)) throw new ApiError(400, 'bad_parameter', `${k} is required to delete one connection`);
    const num = (k: string) => (q.get(k) === null ? undefined : intParam(req, k, 0, 0, 65535));
    const tuple = { proto: q.get('proto')!, src: q.get('src')!, dst: q.get('dst')!, sport: num('sport'), dport: num('dport'), id: num('id'), zone: num('zone') };
    const deleted = await nativeCall(() => fw.conntrackDelete(tuple));
    if (!deleted) throw new ApiError(404, 'no_such_connection', 'no tracked connection has that tuple');
    return { body: { deleted } };
  });

  // ---- IP sets (ipset list / save / test / restore; src/control/ipset-routes.ts) ----
  ipsetRoutes(fw, router);

  return router;
}

/** conntrack filters from the query: family, proto, addr (either end), port (either end), zone. */
function conntrackFilter(req: ApiRequest): Record<string, number | string> {
  const f: Record<string, number | string> = {};
  const fam = familyParam(req.query.get('family'), undefined);
  if (fam) f.family = fam;
  const proto = req.query.get('proto');
  if (proto) f.proto = /^\d+$/.test(proto) ? Number(proto) : proto;
  const addr = req.query.get('addr');
  if (addr) f.addr = addr;
  if (req.query.get('port') !== null) f.port = intParam(req, 'port', 0, 0, 65535);
  if (req.query.get('zone') !== null) f.zone = intParam(req, 'zone', 0, 0, 255);
  return f;
}

/** The addon throws TypeError/RangeError for input it refuses (a bad address or protocol): that is the client's error. */
async function nativeCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError) throw new ApiError(400, 'bad_parameter', (err as Error).message);
    throw err;
  }
}

function saveText(rs: CompiledRuleSet, t: Table, get: ((id: number) => [bigint, bigint]) | undefined): string {
  let table = t;
  if (get) {
    const ids = ruleIdsByChain(rs);
    const chains = new Map();
    for (const [name, c] of t.chains) {
      const cid = ids.get(`${t.family}/${chainKey(t.name, name)}`) ?? [-1];
      chains.set(name, {
        ...c,
        counters: c.builtin && cid[0] >= 0 ? get(cid[0]) : [0n, 0n],
        rules: c.rules.map((r, i) => ({ ...r, counters: get(cid[i + 1]) })),
      });
    }
    table = { ...t, chains };
  }
  const head = `Generated by flatwall save (IPv${t.family}) on ${new Date().toUTCString()}`;
  return `${[...printTable(table, { counters: !!get, header: head })].join('\n')}\n# Completed on ${new Date().toUTCString()}\n`;
}
