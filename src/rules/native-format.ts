// The native rule format: JSON or YAML (schema: docs/ruleset.schema.json).
// It serves generated rule sets and the management API, and says everything
// the iptables form can. Each rule is turned into the iptables options it
// stands for and goes through the same RuleParser, so both formats share one
// set of checks and one meaning; errors point at the JSON/YAML node.
import YAML, { LineCounter, isMap, isSeq, isScalar, type Node, type YAMLMap } from 'yaml';
import { RuleError, type Position } from './errors';
import { BUILTIN_CHAINS, type Chain, type Family, type Rule, type RuleSet, type Table } from './model';
import { LineCursor, RuleParser, type Token } from './iptables/parse';
import { ruleSpec, chainOrder } from './iptables/print';
import { tokenize } from './iptables/parse';

export function looksNative(file: string, text: string): boolean {
  if (/\.(json|ya?ml)$/i.test(file)) return true;
  return /^\s*[{[]/.test(text) || /^\s*(version|family|tables|chains)\s*:/m.test(text.slice(0, 2048));
}

// Rule keys in the order they are turned into options (and printed).
const RULE_KEYS = [
  'src', 'dst', 'in', 'out', 'proto', 'sport', 'dport', 'sports', 'dports', 'ports', 'tcpFlags', 'syn',
  'icmpType', 'icmpv6Type', 'srcRange', 'dstRange', 'ctstate', 'state', 'comment',
  'action', 'jump', 'goto', 'rejectWith', 'logPrefix', 'logLevel', 'counters',
];

class NativeParser {
  private readonly lc = new LineCounter();
  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {}

  pos(n: Node | null | undefined): Position {
    const off = n?.range?.[0] ?? 0;
    const p = this.lc.linePos(off);
    return { file: this.file, line: p.line, col: p.col };
  }

  fail(n: Node | null | undefined, reason: string, token?: string): never {
    throw new RuleError(this.pos(n), reason, token);
  }

  parse(): RuleSet {
    const doc = YAML.parseDocument(this.text, { lineCounter: this.lc, uniqueKeys: true, prettyErrors: false });
    if (doc.errors.length) {
      const e = doc.errors[0];
      const p = this.lc.linePos(e.pos[0]);
      throw new RuleError({ file: this.file, line: p.line, col: p.col }, `syntax error: ${e.message.split('\n')[0]}`);
    }
    const root = doc.contents;
    if (!isMap(root)) this.fail(root, 'a rule file must be an object with "chains" or "tables"');
    this.keys(root, ['$schema', 'version', 'family', 'chains', 'tables']);
    const version = root.get('version', true);
    if (version && (!isScalar(version) || Number(version.value) !== 1)) this.fail(version as Node, 'unsupported version, expected 1');
    const tablesNode = root.get('tables', true);
    const tables: Table[] = [];
    if (tablesNode) {
      if (root.get('chains', true)) this.fail(root.get('chains', true) as Node, 'give either "tables" or "chains", not both');
      if (!isSeq(tablesNode)) this.fail(tablesNode as Node, '"tables" must be a list');
      for (const t of tablesNode.items) {
        if (!isMap(t)) this.fail(t as Node, 'a table must be an object');
        this.keys(t, ['family', 'chains']);
        tables.push(this.table(t));
      }
    } else {
      tables.push(this.table(root));
    }
    return { tables };
  }

  private keys(m: YAMLMap, allowed: string[]): void {
    for (const it of m.items) {
      const k = isScalar(it.key) ? String(it.key.value) : '';
      if (!allowed.includes(k)) this.fail(it.key as Node, `unknown key "${k}" (expected one of: ${allowed.join(', ')})`, k);
    }
  }

  private table(m: YAMLMap): Table {
    const famNode = m.get('family', true);
    let family: Family = 4;
    if (famNode) {
      const v = isScalar(famNode) ? String(famNode.value) : '';
      if (v === 'ipv4' || v === '4') family = 4;
      else if (v === 'ipv6' || v === '6') family = 6;
      else this.fail(famNode as Node, 'family must be "ipv4" or "ipv6"', v);
    }
    const table: Table = { name: 'filter', family, file: this.file, chains: new Map() };
    for (const b of BUILTIN_CHAINS) {
      table.chains.set(b, { name: b, builtin: true, policy: 'ACCEPT', pos: this.pos(m), rules: [] });
    }
    const chainsNode = m.get('chains', true);
    if (!chainsNode) return table;
    if (!isMap(chainsNode)) this.fail(chainsNode as Node, '"chains" must be an object of chain name -> chain');
    // Declare every chain first, so rules may jump to chains defined later.
    for (const it of chainsNode.items) {
      const name = isScalar(it.key) ? String(it.key.value) : '';
      const builtin = (BUILTIN_CHAINS as readonly string[]).includes(name);
      if (!/^[^-!\s][^\s]{0,27}$/.test(name)) this.fail(it.key as Node, `invalid chain name "${name}"`, name);
      if (!builtin) table.chains.set(name, { name, builtin: false, pos: this.pos(it.key as Node), rules: [] });
    }
    for (const it of chainsNode.items) {
      const name = String((it.key as { value: unknown }).value);
      const chain = table.chains.get(name)!;
      const body = it.value;
      if (!isMap(body)) this.fail(body as Node, `chain ${name} must be an object with "rules" (and "policy" for a built-in chain)`);
      this.keys(body, ['policy', 'rules', 'counters']);
      const pol = body.get('policy', true);
      if (pol) {
        const v = isScalar(pol) ? String(pol.value) : '';
        if (!chain.builtin) this.fail(pol as Node, `only built-in chains have a policy, ${name} is a user chain`);
        if (v !== 'ACCEPT' && v !== 'DROP') this.fail(pol as Node, 'policy must be ACCEPT or DROP', v);
        chain.policy = v;
      }
      const rules = body.get('rules', true);
      if (!rules) continue;
      if (!isSeq(rules)) this.fail(rules as Node, `"rules" of chain ${name} must be a list`);
      for (const r of rules.items) chain.rules.push(...this.rule(r as Node, table, chain));
    }
    return table;
  }

  /** One rule -> iptables option tokens (positioned at their JSON/YAML nodes) -> RuleParser. */
  private rule(n: Node, table: Table, chain: Chain): Rule[] {
    if (!isMap(n)) this.fail(n, 'a rule must be an object');
    this.keys(n, RULE_KEYS);
    const toks: Token[] = [];
    const push = (node: Node, ...texts: string[]) => {
      const p = this.pos(node);
      for (const text of texts) toks.push({ text, line: p.line, col: p.col });
    };
    const scalar = (node: Node, what: string): string => {
      if (!isScalar(node) || node.value === null || typeof node.value === 'object') this.fail(node, `${what} must be a string or number`);
      return String(node.value);
    };
    const list = (node: Node, what: string): string => {
      if (isSeq(node)) return node.items.map((i) => scalar(i as Node, what)).join(',');
      return scalar(node, what);
    };
    // A value or {not: value}.
    const neg = (node: Node, opt: string, conv: (v: Node) => string) => {
      if (isMap(node)) {
        this.keys(node, ['not']);
        const inner = node.get('not', true) as Node;
        push(node, '!');
        push(inner, opt, conv(inner));
      } else {
        push(node, opt, conv(node));
      }
    };
    const get = (k: string) => n.get(k, true) as Node | undefined;
    let v: Node | undefined;
    if ((v = get('src'))) neg(v, '-s', (x) => scalar(x, 'src'));
    if ((v = get('dst'))) neg(v, '-d', (x) => scalar(x, 'dst'));
    if ((v = get('in'))) neg(v, '-i', (x) => scalar(x, 'in'));
    if ((v = get('out'))) neg(v, '-o', (x) => scalar(x, 'out'));
    if ((v = get('proto'))) neg(v, '-p', (x) => scalar(x, 'proto'));
    // The kernel tests matches in order, which only shows on a cut-short L4
    // header (native/dataplane/hotdrop.h): keys ctstate/state and
    // srcRange/dstRange written before the first L4 key are tested before
    // the L4 match, after it otherwise (as RULE_KEYS lists them). toNative
    // writes the keys in the rule's match order.
    const order = n.items.map((it) => String(isScalar(it.key) ? it.key.value : ''));
    const at = (...ks: string[]) => Math.min(...ks.map((k) => { const i = order.indexOf(k); return i < 0 ? Infinity : i; }));
    const firstL4 = at('sport', 'dport', 'tcpFlags', 'syn', 'icmpType', 'icmpv6Type', 'sports', 'dports', 'ports');
    const ranges = () => {
      const srcR = get('srcRange');
      const dstR = get('dstRange');
      if (srcR || dstR) push((srcR ?? dstR)!, '-m', 'iprange');
      if (srcR) neg(srcR, '--src-range', (x) => scalar(x, 'srcRange'));
      if (dstR) neg(dstR, '--dst-range', (x) => scalar(x, 'dstRange'));
    };
    const states = () => {
      let w: Node | undefined;
      if ((w = get('ctstate'))) {
        push(w, '-m', 'conntrack');
        neg(w, '--ctstate', (x) => list(x, 'ctstate'));
      }
      if ((w = get('state'))) {
        push(w, '-m', 'state');
        neg(w, '--state', (x) => list(x, 'state'));
      }
    };
    const rangesFirst = at('srcRange', 'dstRange') < firstL4;
    const statesFirst = at('ctstate', 'state') < firstL4;
    if (rangesFirst) ranges();
    if (statesFirst) states();
    if ((v = get('sport'))) neg(v, '--sport', (x) => scalar(x, 'sport'));
    if ((v = get('dport'))) neg(v, '--dport', (x) => scalar(x, 'dport'));
    if ((v = get('tcpFlags'))) {
      const inner = isMap(v) && v.get('not', true) ? (v.get('not', true) as Node) : v;
      if (inner !== v) push(v, '!');
      if (!isMap(inner)) this.fail(inner, 'tcpFlags must be {mask: "SYN,ACK", set: "SYN"}');
      this.keys(inner, ['mask', 'set']);
      const mask = inner.get('mask', true) as Node;
      const set = inner.get('set', true) as Node;
      if (!mask || !set) this.fail(inner, 'tcpFlags needs both "mask" and "set"');
      push(inner, '--tcp-flags');
      push(mask, list(mask, 'tcpFlags.mask'));
      push(set, list(set, 'tcpFlags.set'));
    }
    if ((v = get('syn'))) {
      if (!isScalar(v) || typeof v.value !== 'boolean') this.fail(v, 'syn must be true or false');
      if (v.value) push(v, '--syn');
      else push(v, '!', '--syn');
    }
    if ((v = get('icmpType'))) neg(v, '--icmp-type', (x) => scalar(x, 'icmpType'));
    if ((v = get('icmpv6Type'))) neg(v, '--icmpv6-type', (x) => scalar(x, 'icmpv6Type'));
    const multi = (k: string, opt: string) => {
      const node = get(k);
      if (!node) return;
      push(node, '-m', 'multiport');
      neg(node, opt, (x) => list(x, k));
    };
    multi('sports', '--sports');
    multi('dports', '--dports');
    multi('ports', '--ports');
    if (!rangesFirst) ranges();
    if (!statesFirst) states();
    if ((v = get('comment'))) push(v, '-m', 'comment', '--comment', scalar(v, 'comment'));
    const action = get('action');
    const jump = get('jump');
    const go = get('goto');
    if ([action, jump, go].filter(Boolean).length > 1) this.fail(n, 'give only one of "action", "jump", "goto"');
    if (action) push(action, '-j', scalar(action, 'action'));
    if (jump) push(jump, '-j', scalar(jump, 'jump'));
    if (go) push(go, '-g', scalar(go, 'goto'));
    if ((v = get('rejectWith'))) push(v, '--reject-with', scalar(v, 'rejectWith'));
    if ((v = get('logPrefix'))) push(v, '--log-prefix', scalar(v, 'logPrefix'));
    if ((v = get('logLevel'))) push(v, '--log-level', scalar(v, 'logLevel'));
    if ((v = get('counters'))) {
      if (!isSeq(v) || v.items.length !== 2) this.fail(v, 'counters must be [packets, bytes]');
      push(v, '-c', scalar(v.items[0] as Node, 'counters'), scalar(v.items[1] as Node, 'counters'));
    }
    const pos = this.pos(n);
    const cur = new LineCursor(toks, this.file, pos.line);
    const family = table.family;
    const rp = new RuleParser(cur, {
      family: () => family,
      setFamily: (f, tok) => {
        if (f !== family) throw new RuleError({ file: this.file, line: tok.line ?? pos.line, col: tok.col }, `IPv${f} syntax in an IPv${family} table`, tok.text);
      },
      chainExists: (name) => table.chains.has(name),
      table: () => table.name,
    }, pos, chain.name);
    return rp.parse();
  }
}

export function parseNative(text: string, file: string): RuleSet {
  return new NativeParser(text, file).parse();
}

/** RuleSet -> native-format object (print it with JSON.stringify or YAML.stringify). */
export function toNative(rs: RuleSet): Record<string, unknown> {
  const tables = rs.tables.map((t) => {
    if (t.name !== 'filter') {
      throw new RuleError({ file: t.file, line: 1, col: 1 }, `the ${t.name} table has no native (JSON/YAML) form yet; keep this rule set in iptables-save form`);
    }
    const chains: Record<string, unknown> = {};
    for (const c of chainOrder(t)) {
      const body: Record<string, unknown> = {};
      if (c.builtin) body.policy = c.policy;
      body.rules = c.rules.map((r) => ruleToNative(r, t.family));
      chains[c.name] = body;
    }
    return { family: t.family === 4 ? 'ipv4' : 'ipv6', chains };
  });
  const head = { $schema: 'https://flatwall.dev/schema/ruleset-v1.json', version: 1 };
  return tables.length === 1 ? { ...head, ...tables[0] } : { ...head, tables };
}

/** Via the canonical iptables spelling, so the two formats cannot disagree. */
export function ruleToNative(r: Rule, family: Family): Record<string, unknown> {
  // The native format has no keys for the extension modules yet
  // (docs/EXTENSIONS.md): say which rule, not an internal error.
  const ext = r.matches.find((m) => m.module === 'ext') as { name: string } | undefined;
  const logFlags = r.target.kind === 'LOG' && r.target.flags;
  if (ext || r.target.kind === 'ext' || logFlags) {
    const what = ext ? `-m ${ext.name}` : r.target.kind === 'ext' ? `-j ${r.target.name}` : 'LOG flag options';
    throw new RuleError(r.pos, `${what} has no native (JSON/YAML) form yet; keep this rule set in iptables-save form`);
  }
  const toks = tokenize(ruleSpec(r, family), { file: '', line: 0, col: 0 }).map((t) => t.text);
  const o: Record<string, unknown> = {};
  const num = (s: string) => (/^\d+$/.test(s) ? Number(s) : s);
  let not = false;
  const set = (k: string, v: unknown) => {
    o[k] = not ? { not: v } : v;
    not = false;
  };
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i];
    const next = () => toks[++i];
    switch (t) {
      case '!': not = true; break;
      case '-s': set('src', next()); break;
      case '-d': set('dst', next()); break;
      case '-i': set('in', next()); break;
      case '-o': set('out', next()); break;
      case '-p': set('proto', next()); break;
      case '-m': {
        // A bare -m tcp/udp/sctp still means "has a complete L4 header"
        // (never a non-first fragment); a full port range says the same.
        const mod = next();
        if (['tcp', 'udp', 'sctp'].includes(mod) && !['--sport', '--dport', '--tcp-flags', '!'].includes(toks[i + 1])) {
          o.sport = '0:65535';
        }
        break;
      }
      case '--sport': set('sport', num(next())); break;
      case '--dport': set('dport', num(next())); break;
      case '--sports': case '--dports': case '--ports':
        set(t.slice(2), next().split(',').map(num)); break;
      case '--tcp-flags': { const mask = next(); set('tcpFlags', { mask, set: next() }); break; }
      case '--icmp-type': set('icmpType', num(next())); break;
      case '--icmpv6-type': set('icmpv6Type', num(next())); break;
      case '--src-range': set('srcRange', next()); break;
      case '--dst-range': set('dstRange', next()); break;
      case '--ctstate': set('ctstate', next().split(',')); break;
      case '--state': set('state', next().split(',')); break;
      case '--comment': set('comment', next()); break;
      case '-j': {
        const target = next();
        if (r.target.kind === 'jump') set('jump', target);
        else set('action', target);
        break;
      }
      case '-g': set('goto', next()); break;
      case '--reject-with': set('rejectWith', next()); break;
      case '--log-prefix': set('logPrefix', next()); break;
      case '--log-level': set('logLevel', Number(next())); break;
      default: throw new Error(`internal: no native form for ${t}`);
    }
  }
  if (r.counters) o.counters = [Number(r.counters[0]), Number(r.counters[1])];
  return o;
}
