// flatwall ctl: the management API from the command line, and `flatwall
// save`. `list` prints what `iptables -L -v -n` prints for the same rules
// (same columns, widths and K/M/G numbers, xtables' print_num), so scripts
// and eyes used to iptables read it as is.
import { request } from 'node:http';
import { request as requestTls } from 'node:https';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { DEFAULT_SOCKET } from '../control/api';
import { isSnapshot, SNAPSHOT_CONTENT_TYPE } from '../control/snapshot';
import { REQUEST_FILE } from '../control/ruleops';
import { excerpt } from '../rules/errors';
import { errnoText } from '../rules/load';
import type { ListColumns } from '../rules/iptables/list';
import { EXIT_ERRORS, EXIT_OK, Progress, UsageError } from './args';
import { runCtlIpset } from './ctl-ipset';

// One block per command: the overview lists them all, `ctl COMMAND --help` shows one.
const CTL_COMMANDS: Array<[name: string, text: string]> = [
  ['reload', `  reload [FILE...]          reload the rule files the firewall was started with,
                            or replace the rules by FILE (iptables-save, JSON, YAML,
                            or a snapshot from 'flatwall compile -o': active
                            without parsing; listing and counters follow)
`],
  ['list', `  list [CHAIN]              list rules with counters, like iptables -L -v -n
        -t raw              the raw table's chains (default: filter)
        -x                  exact numbers (no K/M/G)
        --line-numbers      number the rules
`],
  ['apply', `  apply FILE                apply a file of edits as one batch (iptables-restore --noflush
                            style: -A, -I, -D, -R, -P, -N, -X lines, optional *filter/COMMIT);
                            an error anywhere applies nothing
`],
  ['insert', `  insert CHAIN [N] RULE...  insert a rule (at N, default 1): insert FORWARD 3 -p tcp --dport 22 -j DROP
`],
  ['append', `  append CHAIN RULE...      append a rule
`],
  ['delete', `  delete CHAIN N            delete rule N of CHAIN
  delete CHAIN RULE...      delete the first rule that is RULE
`],
  ['policy', `  policy CHAIN ACCEPT|DROP  set a built-in chain's policy
`],
  ['stats', `  stats                     dataplane counters and reload status
`],
  ['zero', `  zero [-t raw] [CHAIN]     zero the rule counters (of CHAIN, or of the table)
`],
  ['save', `  save [-c] [-t TABLE]      print the rules in iptables-save form (-c: with counters;
                            -t: only the filter or raw table)
`],
  ['recent', `  recent [NAME]             recent tables (all, or NAME as /proc/net/xt_recent/NAME)
`],
  ['hashlimit', `  hashlimit [NAME]          hashlimit tables (or NAME as /proc/net/ipt_hashlimit/NAME)
`],
  ['limits', `  limits                    limit rules' buckets
`],
  ['connlimit', `  connlimit                 connlimit rules' counts (address/mask count=N)
`],
  ['conntrack', `  conntrack [-L|-C|-F|-D] [FILTER]
                            tracked connections, like conntrack(8):
        -L                  list (default), one line per connection
        -C                  count (and the table's limit)
        -F                  flush the connections FILTER selects (all without one)
        -D -p P -s A -d B [--sport N --dport N | --icmp-id N] [--zone N]
                            delete one connection (either direction's tuple)
        FILTER: -f ipv4|ipv6, -p PROTO, --addr A (either end), --port N
                (either end), --zone N (port pair), --limit N (list, default 10000)
`],
  ['ipset', `  ipset COMMAND [ARGS]      IP sets, like ipset(8): create, add, del, test, list,
                            save, restore, flush, destroy, swap, rename
                            ('flatwall ctl ipset --help')
`],
];

const CTL_OPTIONS = `Options:
  -s, --socket PATH         API Unix socket (default ${DEFAULT_SOCKET})
  -u, --url URL             API over TCP instead (http://host:port)
  -t, --token-file FILE     bearer token for --url
  -4, -6                    the IPv4 (default) or IPv6 table
      --json                print the API's JSON answer as is
  -h, --help                show this help

Exit status: 0 ok, 1 the API refused or failed (message on stderr), 2 usage.
`;

export const CTL_HELP = `Usage: flatwall ctl [OPTIONS] COMMAND [ARGS]

Talk to a running 'flatwall run' over its management API.

Commands:
${CTL_COMMANDS.map(([, t]) => t).join('')}
${CTL_OPTIONS}`;

/** `flatwall ctl COMMAND --help`: that command's lines and the options; undefined for an unknown command. */
export function ctlCommandHelp(cmd: string): string | undefined {
  const block = CTL_COMMANDS.find(([name]) => name === cmd)?.[1];
  return block && `Usage: flatwall ctl [OPTIONS] ${cmd} ...\n\n${block}\n${CTL_OPTIONS}`;
}

export const SAVE_HELP = `Usage: flatwall save [-c] [-4|-6] [--socket PATH | --url URL --token-file F]

Print the running firewall's rules in iptables-save form; -c adds the
[packets:bytes] counters (iptables-save -c). Same options as 'flatwall ctl'.
`;

interface Conn {
  socket?: string;
  url?: URL;
  token?: string;
}
export type ApiConn = Conn;

interface Answer {
  status: number;
  body: string;
  json?: Record<string, any>;
}

export function apiCall(c: Conn, method: string, path: string, body?: string | Buffer, contentType = 'application/json'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = {};
    if (body !== undefined) {
      headers['Content-Type'] = contentType;
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    if (c.token) headers.Authorization = `Bearer ${c.token}`;
    const opts = c.url
      ? { method, headers, host: c.url.hostname.replace(/^\[|\]$/g, ''), port: c.url.port, path: c.url.pathname.replace(/\/$/, '') + path }
      : { method, headers, socketPath: c.socket, path };
    const req = (c.url?.protocol === 'https:' ? requestTls : request)(opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, any> | undefined;
        if ((res.headers['content-type'] ?? '').startsWith('application/json')) {
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
        }
        resolve({ status: res.statusCode ?? 0, body: text, json });
      });
      res.on('error', reject);
    });
    req.setTimeout(600_000, () => req.destroy(new Error('no answer from the API within 600 s')));
    req.on('error', reject);
    req.end(body);
  });
}

class ApiFailure extends Error {}

/** `source`: the file the body came from, named in rule errors in place of `<request>`. */
async function call(c: Conn, method: string, path: string, body?: string | Buffer, ct?: string, source?: string): Promise<Answer> {
  let a: Answer;
  try {
    a = await apiCall(c, method, path, body, ct);
  } catch (err) {
    const where = c.url ? c.url.href : c.socket;
    throw new ApiFailure(`cannot reach the API at ${where}: ${errnoText(err as NodeJS.ErrnoException)}`);
  }
  if (a.status >= 400) {
    let msg = a.json?.error ? `${a.json.error}` : `HTTP ${a.status}: ${a.body.trim()}`;
    if (source !== undefined && a.json?.file === REQUEST_FILE && msg.startsWith(REQUEST_FILE)) msg = excerpt(source, 4096) + msg.slice(REQUEST_FILE.length);
    // Whatever the server sent, it goes to a terminal.
    throw new ApiFailure(excerpt(msg, 4096));
  }
  return a;
}

// ---- iptables -L layout (iptables/xshared.c, libxtables xtables_print_num) ----

/** xtables_print_num: a column, or (notable) just the number and a space. */
export function printNum(n: bigint, exact: boolean, notable = false): string {
  const pad = (s: string, w: number) => (notable ? s : s.padStart(w));
  if (exact) return `${pad(n.toString(), 8)} `;
  if (n <= 99999n) return `${pad(n.toString(), 5)} `;
  for (const unit of ['K', 'M', 'G']) {
    n = (n + 500n) / 1000n;
    if (n <= 9999n) return `${pad(n.toString(), 4)}${unit} `;
  }
  n = (n + 500n) / 1000n;
  return `${pad(n.toString(), 4)}T `;
}

export interface ListChain {
  chain: string;
  builtin: boolean;
  policy?: string;
  packets?: number | string;
  bytes?: number | string;
  references?: number;
}

export interface ListRule {
  num: number;
  packets: number | string;
  bytes: number | string;
  list: ListColumns;
}

export interface ListOptions {
  exact: boolean;
  lineNumbers: boolean;
}

export function chainHeader(c: ListChain, o: ListOptions): string {
  const head = c.builtin
    ? `Chain ${c.chain} (policy ${c.policy} ${printNum(BigInt(c.packets ?? 0), o.exact, true)}packets, ${printNum(BigInt(c.bytes ?? 0), o.exact, true)}bytes)`
    : `Chain ${c.chain} (${c.references ?? 0} references)`;
  let cols = o.lineNumbers ? 'num  ' : '';
  cols += o.exact ? `${'pkts'.padStart(8)} ${'bytes'.padStart(10)} ` : `${'pkts'.padStart(5)} ${'bytes'.padStart(5)} `;
  cols += `${'target'.padEnd(9)} `;
  cols += ' prot opt';
  cols += ` ${'in'.padEnd(6)} ${'out'.padEnd(6)} `;
  cols += ` ${'source'.padEnd(19)} `;
  cols += ` ${'destination'.padEnd(19)} `;
  return `${head}\n${cols}`;
}

const bang = (s: string): [string, string] => (s.startsWith('!') ? ['!', s.slice(1)] : [' ', s]);

export function ruleLine(r: ListRule, o: ListOptions): string {
  const l = r.list;
  let s = o.lineNumbers ? `${String(r.num).padEnd(4)} ` : '';
  s += printNum(BigInt(r.packets), o.exact) + printNum(BigInt(r.bytes), o.exact);
  s += `${l.target.padEnd(9)} `;
  const [pn, prot] = bang(l.prot);
  s += pn + prot.padEnd(5);
  s += `${l.opt} `;
  s += ` ${l.in.padEnd(6)} ${l.out.padEnd(6)} `;
  const [sn, src] = bang(l.source);
  const [dn, dst] = bang(l.destination);
  s += `${sn}${src.padEnd(19)} ${dn}${dst.padEnd(19)} `;
  return s + l.extra;
}

async function listChains(c: Conn, family: 4 | 6, chain: string | undefined, o: ListOptions, table?: 'filter' | 'raw'): Promise<string> {
  const out: string[] = [];
  const rulesOf = new Map<string, ListRule[]>();
  let chains: ListChain[] = [];
  for (let offset: number | null = 0; offset !== null;) {
    const q = new URLSearchParams({ family: String(family), offset: String(offset), limit: '100000' });
    if (chain) q.set('chain', chain);
    if (table) q.set('table', table);
    const a = await call(c, 'GET', `/rules?${q}`);
    chains = a.json!.chains;
    for (const r of a.json!.rules) {
      if (!rulesOf.has(r.chain)) rulesOf.set(r.chain, []);
      rulesOf.get(r.chain)!.push(r);
    }
    offset = a.json!.next;
  }
  chains.forEach((ch, i) => {
    if (i > 0) out.push('');
    out.push(chainHeader(ch, o));
    for (const r of rulesOf.get(ch.chain) ?? []) out.push(ruleLine(r, o));
  });
  return `${out.join('\n')}\n`;
}

// ---- command line ----

interface Global extends Conn {
  family: 4 | 6;
  json: boolean;
}

function globals(argv: string[]): { g: Global; rest: string[] } {
  const g: Global = { family: 4, json: false };
  let tokenFile: string | undefined;
  let i = 0;
  const val = (opt: string) => {
    const v = argv[++i];
    if (v === undefined) throw new UsageError(`option ${opt} requires a value`);
    return v;
  };
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-s' || a === '--socket') g.socket = val(a);
    else if (a.startsWith('--socket=')) g.socket = a.slice(9);
    else if (a === '-u' || a === '--url') g.url = parseUrl(val(a));
    else if (a.startsWith('--url=')) g.url = parseUrl(a.slice(6));
    else if (a === '-t' || a === '--token-file') tokenFile = val(a);
    else if (a.startsWith('--token-file=')) tokenFile = a.slice(13);
    else if (a === '-4') g.family = 4;
    else if (a === '-6') g.family = 6;
    else if (a === '--json') g.json = true;
    else if (a === '-h' || a === '--help') return { g, rest: ['--help'] };
    else if (a.startsWith('-')) throw new UsageError(`unknown option '${excerpt(a)}'`);
    else break;
  }
  if (g.url && g.socket) throw new UsageError('--socket and --url exclude each other');
  if (tokenFile) {
    try {
      g.token = readFileSync(tokenFile, 'utf8').split('\n')[0].trim();
    } catch (err) {
      throw new UsageError(`cannot read --token-file ${tokenFile}: ${errnoText(err as NodeJS.ErrnoException)}`);
    }
  }
  if (g.url && !g.token) throw new UsageError('--url needs --token-file (the TCP API requires a bearer token)');
  if (!g.url) g.socket ??= DEFAULT_SOCKET;
  return { g, rest: argv.slice(i) };
}

function parseUrl(s: string): URL {
  try {
    const u = new URL(s);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
    return u;
  } catch {
    throw new UsageError(`--url must be http://HOST:PORT, got "${s}"`);
  }
}

/** Rule tokens back into one command line (quoting what the shell unquoted). */
function joinRule(toks: string[]): string {
  return toks.map((t) => (/^[^\s"']+$/.test(t) ? t : `"${t.replace(/(["\\])/g, '\\$1')}"`)).join(' ');
}

function flags(args: string[], known: string[]): { set: Set<string>; rest: string[] } {
  const set = new Set<string>();
  const rest: string[] = [];
  for (const a of args) {
    if (known.includes(a)) set.add(a);
    else if (a === '-4' || a === '-6') continue;
    else if (a.startsWith('-')) throw new UsageError(`unknown option '${excerpt(a)}'`);
    else rest.push(a);
  }
  return { set, rest };
}

/** `-t TABLE` / `--table TABLE` (iptables -t): filter or raw; the rest of args. */
function tableOption(args: string[]): { table?: 'filter' | 'raw'; args: string[] } {
  const rest: string[] = [];
  let table: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '-t' || a === '--table') {
      if (i + 1 >= args.length) throw new UsageError(`option '${a}' requires an argument`);
      table = args[++i];
    } else if (a.startsWith('--table=')) table = a.slice(8);
    else rest.push(a);
  }
  if (table !== undefined && table !== 'filter' && table !== 'raw') throw new UsageError(`table '${excerpt(table)}' is not supported (filter or raw)`);
  return { table: table as 'filter' | 'raw' | undefined, args: rest };
}

const STAGE_UNITS: Record<string, string> = { parse: 'lines', compile: 'rules', build: 'records', counters: 'rules' };

/**
 * `work` (a reload request) with its progress on stderr: GET /reload/progress
 * every 250 ms while it runs (the firewall answers during a reload), drawn
 * as a bar on a terminal and as a line per quarter of each stage otherwise;
 * nothing for a reload that ends within a second.
 */
async function withProgress<T>(c: Conn, work: Promise<T>): Promise<T> {
  const start = performance.now();
  let done = false;
  let bar: Progress | undefined;
  let stage = '';
  const poll = (async () => {
    while (!done) {
      await new Promise((r) => setTimeout(r, 250));
      if (done) break;
      try {
        const p = (await apiCall(c, 'GET', '/reload/progress')).json;
        if (done || !p?.active) continue;
        const key = `${p.stage} ${p.file ?? ''}`;
        if (key !== stage) {
          bar?.done();
          stage = key;
          bar = new Progress(`reload: ${p.stage}${p.file && p.file !== REQUEST_FILE ? ` ${p.file}` : ''}`, false, start);
        }
        bar!.update(p.done, p.total, STAGE_UNITS[p.stage] ?? '');
      } catch {
        // No progress to show: the request's own answer says what happened.
      }
    }
  })();
  try {
    return await work;
  } finally {
    done = true;
    await poll;
    bar?.done();
  }
}

const contentTypeOf = (file: string) => (/\.json$/i.test(file) ? 'application/json' : /\.ya?ml$/i.test(file) ? 'application/yaml' : 'text/plain');

/** How an edit was applied: "generation 7, 2.1 ms, overlay" or "..., rebuild: why". */
function applied(a: Answer): string {
  const j = a.json!;
  return `generation ${j.generation}, ${(j.seconds * 1000).toFixed(1)} ms, ${j.method}${j.fallback ? `: ${j.fallback}` : ''}`;
}

async function command(g: Global, cmd: string, args: string[]): Promise<string> {
  const fam = `family=${g.family}`;
  const show = (a: Answer, text: () => string) => (g.json ? a.body.endsWith('\n') ? a.body : `${a.body}\n` : text());
  switch (cmd) {
    case 'reload': {
      const { rest } = flags(args, []);
      if (rest.length === 0) {
        const a = await withProgress(g, call(g, 'POST', '/reload', '{}'));
        return show(a, () => `reloaded: generation ${a.json!.generation}, ${a.json!.rules} rules in ${a.json!.seconds.toFixed(3)} s\n`);
      }
      let out = '';
      for (const f of rest) {
        let bytes: Buffer;
        try {
          bytes = readFileSync(f);
        } catch (err) {
          throw new ApiFailure(`cannot read ${f}: ${errnoText(err as NodeJS.ErrnoException)}`);
        }
        // A snapshot over the Unix socket: the firewall reads the file itself.
        const a = await withProgress(g, isSnapshot(bytes) && !g.url
          ? call(g, 'POST', '/reload', JSON.stringify({ snapshot: resolve(f) }))
          : call(g, 'PUT', `/rules?${g.family === 6 ? fam : ''}`, bytes, isSnapshot(bytes) ? SNAPSHOT_CONTENT_TYPE : contentTypeOf(f), f));
        out += show(a, () => a.json!.metadata === 'loading'
          ? `${f}: generation ${a.json!.generation}, active in ${a.json!.seconds.toFixed(3)} s (snapshot; rule listing and counter carry-over loading)\n`
          : `${f}: generation ${a.json!.generation}, ${a.json!.rules} rules, ${a.json!.carried} counters carried over, ${a.json!.seconds.toFixed(3)} s\n`);
      }
      return out;
    }
    case 'list': {
      const t = tableOption(args);
      const { set, rest } = flags(t.args, ['-x', '--line-numbers', '-n', '-v', '-L']);
      if (rest.length > 1) throw new UsageError('list takes at most one chain');
      return listChains(g, g.family, rest[0], { exact: set.has('-x'), lineNumbers: set.has('--line-numbers') }, t.table);
    }
    case 'apply': {
      const { rest } = flags(args, []);
      if (rest.length !== 1) throw new UsageError('apply takes one FILE (- for standard input)');
      const f = rest[0];
      let text: string;
      try {
        text = readFileSync(f === '-' ? 0 : f, 'utf8');
      } catch (err) {
        throw new ApiFailure(`cannot read ${f}: ${errnoText(err as NodeJS.ErrnoException)}`);
      }
      const a = await call(g, 'POST', `/rules/apply?${fam}`, text, 'text/plain', f === '-' ? '<stdin>' : f);
      return show(a, () => `${f}: ${a.json!.edits} edits, generation ${a.json!.generation}, ${(a.json!.seconds * 1000).toFixed(1)} ms, ${a.json!.method === 'overlay' ? 'overlay' : `rebuild: ${a.json!.fallback}`}\n`);
    }
    case 'insert': case 'append': {
      if (args.length < 2) throw new UsageError(`${cmd} needs CHAIN and a rule`);
      const [chain, ...rule] = args;
      const at = cmd === 'insert' && /^\d+$/.test(rule[0] ?? '') ? ` ${rule.shift()}` : '';
      const line = `${cmd === 'insert' ? '-I' : '-A'} ${chain}${at} ${joinRule(rule)}`;
      const a = await call(g, 'POST', '/rules', JSON.stringify({ rule: line, family: g.family }));
      return show(a, () => `${cmd === 'insert' ? 'inserted' : 'appended'} ${chain} ${a.json!.num} (${applied(a)})\n`);
    }
    case 'delete': {
      if (args.length < 2) throw new UsageError('delete needs CHAIN and N or a rule');
      const [chain, ...rule] = args;
      const a = rule.length === 1 && /^\d+$/.test(rule[0])
        ? await call(g, 'DELETE', `/rules/${encodeURIComponent(chain)}/${rule[0]}?${fam}`)
        : await call(g, 'DELETE', `/rules/${encodeURIComponent(chain)}`, JSON.stringify({ rule: joinRule(rule), family: g.family }));
      return show(a, () => `deleted ${chain} ${a.json!.num} (${applied(a)})\n`);
    }
    case 'policy': {
      if (args.length !== 2) throw new UsageError('policy needs CHAIN and ACCEPT or DROP');
      const a = await call(g, 'PUT', `/chains/${encodeURIComponent(args[0])}/policy`, JSON.stringify({ policy: args[1], family: g.family }));
      return show(a, () => `policy ${args[0]} ${args[1]} (${applied(a)})\n`);
    }
    case 'zero': {
      const t = tableOption(args);
      if (t.args.length > 1) throw new UsageError('zero takes at most one chain');
      const body = t.args[0] ? { chain: t.args[0], family: g.family, table: t.table ?? 'filter' } : t.table ? { table: t.table } : {};
      const a = await call(g, 'POST', '/counters/reset', JSON.stringify(body));
      return show(a, () => `zeroed ${a.json!.zeroed} counters\n`);
    }
    case 'stats': {
      flags(args, []);
      const a = await call(g, 'GET', '/stats');
      return show(a, () => formatStats(a.json!));
    }
    case 'recent': case 'hashlimit': case 'limits': case 'connlimit': {
      const perRule = cmd === 'limits' || cmd === 'connlimit';
      if (args.length > (perRule ? 0 : 1)) throw new UsageError(`${cmd} takes ${perRule ? 'no arguments' : 'at most one table name'}`);
      const kind = cmd === 'limits' ? 'limit' : cmd;
      const q = new URLSearchParams({ kind, list: '1' });
      if (args[0]) q.set('name', args[0]);
      const a = await call(g, 'GET', `/matches/state?${q}`);
      return show(a, () => (a.json!.states as Array<Record<string, any>>).map((s) => (args[0] ? s.listing : `${s.key} entries=${s.entries}/${s.capacity} evictions=${s.evictions} refused=${s.refused}\n${s.listing}`)).join(''));
    }
    case 'conntrack':
      return conntrack(g, args, show);
    case 'save': {
      const t = tableOption(args);
      const { set } = flags(t.args, ['-c']);
      const a = await call(g, 'GET', `/rules?format=save&${fam}${set.has('-c') ? '&counters=1' : ''}${t.table ? `&table=${t.table}` : ''}`);
      return a.body;
    }
    default:
      throw new UsageError(`unknown ctl command '${excerpt(cmd)}'`);
  }
}

const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 132: 'sctp', 33: 'dccp', 136: 'udplite', 47: 'gre' };

/** One connection the way conntrack -L prints it: original tuple, then the reply tuple. */
export function conntrackLine(e: Record<string, any>): string {
  const name = PROTO_NAMES[e.proto] ?? 'unknown';
  const parts = [`${name.padEnd(8)} ${e.proto} ${e.timeout}`];
  if (e.state) parts.push(e.state);
  const tuple = (src: string, dst: string, sport?: number, dport?: number) => {
    let t = `src=${src} dst=${dst}`;
    if (e.id !== undefined) t += ` type=${e.proto === 1 ? 8 : 128} code=0 id=${e.id}`;
    else if (sport !== undefined) t += ` sport=${sport} dport=${dport}`;
    return t;
  };
  parts.push(tuple(e.src, e.dst, e.sport, e.dport));
  parts.push(`packets=${e.packets}`);
  if (e.unreplied) parts.push('[UNREPLIED]');
  parts.push(tuple(e.dst, e.src, e.dport, e.sport));
  if (e.assured) parts.push('[ASSURED]');
  parts.push(`zone=${e.zone}`);
  return parts.join(' ');
}

async function conntrack(g: Global, args: string[], show: (a: Answer, text: () => string) => string): Promise<string> {
  let mode: 'L' | 'C' | 'F' | 'D' = 'L';
  const q = new URLSearchParams();
  const del: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const val = () => {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`conntrack: ${a} needs a value`);
      return v;
    };
    const num = (v: string, max: number) => {
      if (!/^\d+$/.test(v) || Number(v) > max) throw new UsageError(`conntrack: ${a} must be an integer 0..${max}, got "${v}"`);
      return v;
    };
    switch (a) {
      case '-L': case '--dump': mode = 'L'; break;
      case '-C': case '--count': mode = 'C'; break;
      case '-F': case '--flush': mode = 'F'; break;
      case '-D': case '--delete': mode = 'D'; break;
      case '-f': case '--family': {
        const v = val();
        if (!['ipv4', 'ipv6', '4', '6'].includes(v)) throw new UsageError(`conntrack: -f must be ipv4 or ipv6, got "${v}"`);
        q.set('family', v.replace('ipv', ''));
        break;
      }
      case '-p': case '--proto': q.set('proto', (del.proto = val())); break;
      case '--addr': q.set('addr', val()); break;
      case '--port': q.set('port', num(val(), 65535)); break;
      case '--zone': q.set('zone', (del.zone = num(val(), 255))); break;
      case '--limit': q.set('limit', num(val(), 1_000_000)); break;
      case '-s': case '--src': case '--orig-src': del.src = val(); break;
      case '-d': case '--dst': case '--orig-dst': del.dst = val(); break;
      case '--sport': case '--orig-port-src': del.sport = num(val(), 65535); break;
      case '--dport': case '--orig-port-dst': del.dport = num(val(), 65535); break;
      case '--icmp-id': del.id = num(val(), 65535); break;
      default: throw new UsageError(`conntrack: unknown option '${excerpt(a)}'`);
    }
  }
  if (mode !== 'D' && (del.src || del.dst || del.sport || del.dport || del.id)) {
    throw new UsageError('conntrack: -s/-d/--sport/--dport/--icmp-id select one connection for -D; filter lists with --addr and --port');
  }
  switch (mode) {
    case 'C': {
      const a = await call(g, 'GET', '/conntrack/count');
      return show(a, () => `${a.json!.entries}\n`);
    }
    case 'F': {
      const a = await call(g, 'DELETE', `/conntrack?${q}`);
      return show(a, () => `flatwall ctl conntrack: ${a.json!.flushed} flow entries have been deleted.\n`);
    }
    case 'D': {
      for (const k of ['proto', 'src', 'dst']) if (!del[k]) throw new UsageError('conntrack -D needs -p PROTO, -s SRC and -d DST');
      const a = await call(g, 'DELETE', `/conntrack/entry?${new URLSearchParams(del)}`);
      return show(a, () => 'flatwall ctl conntrack: 1 flow entries have been deleted.\n');
    }
    default: {
      const a = await call(g, 'GET', `/conntrack?${q}`);
      return show(a, () => {
        const lines = (a.json!.entries as Array<Record<string, any>>).map(conntrackLine);
        // conntrack -L reports its total on stderr, keeping stdout parseable.
        process.stderr.write(`flatwall ctl conntrack: ${a.json!.count} flow entries have been shown${a.json!.truncated ? ' (--limit reached)' : ''}.\n`);
        return lines.length ? `${lines.join('\n')}\n` : '';
      });
    }
  }
}

function formatStats(s: Record<string, any>): string {
  const r = s.reload;
  const lines = [
    `ready: ${s.ready ? 'yes' : 'no'}    generation: ${r.generation}    last reload: ${r.lastOk ? 'ok' : `FAILED: ${r.lastError}`} (${r.lastSeconds.toFixed(3)} s, build ${r.buildSeconds.toFixed(3)} s, classifier ${(r.memoryBytes / 1048576).toFixed(1)} MiB)`,
    `verdicts: accept ${s.verdicts.accept} (${s.verdicts.acceptBytes} B)  drop ${s.verdicts.drop} (${s.verdicts.dropBytes} B)  reject ${s.verdicts.reject} (${s.verdicts.rejectSent} answers sent)`,
    'port        rx packets     rx bytes   tx packets     tx bytes        drops  kernel drops',
    ...s.ports.map((p: Record<string, any>) => `${String(p.name).padEnd(10)}${[p.rxPackets, p.rxBytes, p.txPackets, p.txBytes, p.drops].map((v: number) => String(v).padStart(13)).join('')}${String(p.kernelDrops).padStart(14)}`),
  ];
  const drops = Object.entries(s.dropsByReason as Record<string, number>).filter(([, v]) => v > 0);
  if (drops.length) lines.push(`drops: ${drops.map(([k, v]) => `${k} ${v}`).join('  ')}`);
  const ct = s.conntrack;
  if (ct?.enabled) {
    lines.push(`conntrack: ${ct.entries}/${ct.limit} entries  found ${ct.found}  insert ${ct.insert}  insert_failed ${ct.insert_failed}  invalid ${ct.invalid}  early_drop ${ct.early_drop}  drop ${ct.drop}  expired ${ct.expired}`);
  } else if (ct) lines.push('conntrack: off (stateless)');
  if (s.flowCache) lines.push(`flow cache: ${s.flowCache.hits} hits, ${s.flowCache.misses} misses`);
  const pm = s.process;
  const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
  if (pm) lines.push(`memory: rss ${mib(pm.rssBytes)}  heap ${mib(pm.heapUsedBytes)} used of ${mib(pm.heapTotalBytes)}  external ${mib(pm.externalBytes)}`);
  return `${lines.join('\n')}\n`;
}

export async function runCtl(argv: string[]): Promise<number> {
  const { g, rest } = globals(argv);
  if (rest[0] === '--help') {
    process.stdout.write(CTL_HELP);
    return EXIT_OK;
  }
  if (rest.length === 0) throw new UsageError('a command is needed: reload, apply, list, insert, append, delete, policy, stats, zero, save, conntrack or ipset');
  if (rest[0] === 'ipset') return runCtlIpset(g, rest.slice(1));
  // No rule, file name or conntrack filter is spelled -h or --help (iptables reads them as help too).
  if (rest.slice(1).some((a) => a === '-h' || a === '--help')) {
    const help = ctlCommandHelp(rest[0]);
    if (!help) throw new UsageError(`unknown ctl command '${excerpt(rest[0])}'`);
    process.stdout.write(help);
    return EXIT_OK;
  }
  return execute(g, rest[0], rest.slice(1));
}

export async function runSave(argv: string[]): Promise<number> {
  const { g, rest } = globals(argv.filter((a) => a !== '-c'));
  if (rest[0] === '--help') {
    process.stdout.write(SAVE_HELP);
    return EXIT_OK;
  }
  if (rest.length) throw new UsageError(`unexpected argument ${rest[0]}`);
  return execute(g, 'save', argv.includes('-c') ? ['-c'] : []);
}

async function execute(g: Global, cmd: string, args: string[]): Promise<number> {
  try {
    process.stdout.write(await command(g, cmd, args));
    return EXIT_OK;
  } catch (err) {
    if (err instanceof ApiFailure) {
      process.stderr.write(`flatwall ctl ${cmd}: ${err.message}\n`);
      return EXIT_ERRORS;
    }
    throw err;
  }
}
