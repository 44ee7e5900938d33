// iptables-save / ip6tables-save text -> RuleSet, accepting what
// iptables-restore accepts for the filter table. Every error names the
// offending token with file:line:column, and nothing from a file with an error
// is returned (the caller gets an exception, never half a rule set).
import { byName } from '../by-name';
import { RuleError, overRuleLimit, type Position } from '../errors';
import {
  CT, type AddrRange, type Neg, type Chain, type ExtMatch, type Family, type SkippedTable, type IcmpType, type Match, type PortRange,
  type Rule, type RuleSet, type Table, type Target, BUILTIN_CHAINS, TABLE_BUILTINS, type TableName, type IfaceMatch,
} from '../model';
import { EXTENSIONS, extension, type MatchExtension, type OptionContext } from '../extensions/registry';
import { TARGETS, targetExtension } from '../extensions/targets';
import { drain } from '../steps';

/** -j LOG's flag options, as XT_LOG_* (include/uapi/linux/netfilter/xt_LOG.h). */
export const LOG_FLAGS: Record<string, number> = byName({
  '--log-tcp-sequence': 0x01, '--log-tcp-options': 0x02, '--log-ip-options': 0x04, '--log-uid': 0x08, '--log-macdecode': 0x20,
});
import {
  V4_MAX, V6_MAX, maskLength4, maskLength6, parseIPv4, parseIPv6, prefixRange6,
} from '../address';
import {
  ICMPV6_TYPES, ICMP_TYPES, LOG_LEVELS, LOG_LEVEL_DEFAULT, PROTO_BY_NAME, PROTO_DCCP, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP,
  PROTO_TCP, PROTO_UDP, PROTO_UDPLITE, REJECT_V4, REJECT_V6, SERVICES, TCP_FLAGS_ALL, TCP_FLAG_NAMES,
} from './names';

export interface ParseOptions {
  file: string;
  /** Force the family; otherwise detected from the header or the first address. */
  family?: Family;
  /** Skip tables other than filter and raw instead of failing on them. */
  skipOtherTables?: boolean;
  /** Called every 4 * PARSE_STEP_LINES lines with (linesDone, linesTotal). */
  onProgress?: (done: number, total: number) => void;
  /** At most this many rules (--max-rules): more is a RuleLimitError at the first rule over it. */
  maxRules?: number;
  /** Rules counted against maxRules before this text (earlier files, tables a replace keeps). */
  rulesBefore?: number;
  /** Things to tell the operator (a CT --helper that assigns no helper), each once per file, with the first place. */
  onNotice?: (message: string) => void;
}

interface Token {
  text: string;
  col: number;
  line?: number; // set when tokens come from a structured file (native format)
}

const MAX_CHAIN_NAME = 28; // XT_EXTENSION_MAXNAMELEN - 1
const MAX_IFNAME = 15; // IFNAMSIZ - 1
const MAX_COMMENT = 256;
const MAX_LOG_PREFIX = 29;
const MAX_MULTIPORT = 15;

// Limits of one line, as iptables-restore has them (iptables/xshared.c:
// add_param_to_argv's 1024-byte parameter buffer, "Parameter too long!";
// add_argv's MAX_ARGC 255, "Parser cannot handle more arguments";
// iptables-restore reads lines into 10240 bytes). Ours are looser where
// that costs nothing, and they make a pathological line (a 300 MB one, or
// 50 MB of control bytes) fail at once instead of growing tokens.
export const MAX_LINE = 65536;
export const MAX_TOKEN = 1023;
export const MAX_TOKENS = 254;

/** Split one line like iptables-restore does: whitespace, and "quoted strings". */
export function tokenize(line: string, pos: Position, pool?: Token[]): Token[] {
  if (line.length > MAX_LINE) {
    throw new RuleError({ ...pos, col: 1 }, `line too long: ${line.length} characters, at most ${MAX_LINE}`, line);
  }
  if (pool && line.indexOf('"') === -1 && line.indexOf('\t') === -1 && line.indexOf('\r') === -1) {
    // Fast path for the common line: no quoting, single spaces. The token
    // objects are reused from line to line (a rule is done with them before
    // the next line), which keeps a million-line file from allocating ten
    // million of them.
    let start = 0;
    let k = 0;
    for (;;) {
      const sp = line.indexOf(' ', start);
      const end = sp === -1 ? line.length : sp;
      if (end > start) {
        if (end - start > MAX_TOKEN) tooLong(pos, start, line.slice(start, end));
        if (k === MAX_TOKENS) tooMany(pos, start, line.slice(start, end));
        const t = pool[k] ?? (pool[k] = { text: '', col: 0 });
        t.text = line.slice(start, end);
        t.col = start + 1;
        k++;
      }
      if (sp === -1) break;
      start = sp + 1;
    }
    pool.length = k;
    return pool;
  }
  const out: Token[] = [];
  let i = 0;
  const n = line.length;
  while (i < n) {
    const c = line.charCodeAt(i);
    if (c === 32 || c === 9 || c === 13) {
      i++;
      continue;
    }
    const start = i;
    let text = '';
    let quoted = false;
    while (i < n) {
      const ch = line[i];
      if (!quoted && (ch === ' ' || ch === '\t' || ch === '\r')) break;
      if (ch === '"') {
        quoted = !quoted;
        i++;
        continue;
      }
      if (quoted && ch === '\\' && i + 1 < n) {
        text += line[i + 1];
        i += 2;
        continue;
      }
      text += ch;
      i++;
    }
    if (quoted) throw new RuleError({ ...pos, col: start + 1 }, 'unterminated quoted string', line.slice(start));
    if (text.length > MAX_TOKEN) tooLong(pos, start, text);
    if (out.length === MAX_TOKENS) tooMany(pos, start, text);
    out.push({ text, col: start + 1 });
  }
  return out;
}

function tooLong(pos: Position, start: number, text: string): never {
  throw new RuleError({ ...pos, col: start + 1 }, `argument too long: ${text.length} characters, at most ${MAX_TOKEN}`, text);
}

function tooMany(pos: Position, start: number, text: string): never {
  throw new RuleError({ ...pos, col: start + 1 }, `too many arguments on one line: at most ${MAX_TOKENS}`, text);
}

/** Does the line at s[from, end) hold a rule command: [counters] -A/-I/--append/--insert? */
function isRuleCommand(s: string, from: number, end: number): boolean {
  let i = from;
  while (i < end && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i++;
  if (s.charCodeAt(i) === 91 /* [ */) {
    // [packets:bytes]: two 64-bit numbers, at most 43 characters.
    const stop = Math.min(end, i + 44);
    while (i < stop && s.charCodeAt(i) !== 93 /* ] */) i++;
    if (i === stop) return false;
    i++;
    while (i < end && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i++;
  }
  if (i >= end || s.charCodeAt(i) !== 45 /* - */) return false;
  return s.startsWith('-A', i) || s.startsWith('-I', i) || s.startsWith('--append', i) || s.startsWith('--insert', i);
}

/**
 * Rule commands in an iptables-save text (-A/-I lines; a rule with several
 * addresses becomes several rules, so this is a lower bound), counted
 * without parsing: a few hundred ms for 6M lines, no allocation per line.
 * `stopAfter`: stop at the line of the (stopAfter+1)-th and say which.
 */
export function countRuleCommands(text: string, stopAfter = Infinity): { rules: number; lines: number; over?: { line: number } } {
  let rules = 0;
  let line = 0;
  for (let at = 0; at < text.length;) {
    line++;
    const nl = text.indexOf('\n', at);
    const end = nl === -1 ? text.length : nl;
    if (isRuleCommand(text, at, end)) {
      rules++;
      if (rules > stopAfter) return { rules, lines: line, over: { line } };
    }
    at = end + 1;
  }
  return { rules, lines: line };
}

export class LineCursor {
  i = 0;
  constructor(
    public toks: Token[],
    readonly file: string,
    public line: number,
  ) {}

  /** Reuse this cursor for the next line. */
  reset(toks: Token[], line: number): this {
    this.toks = toks;
    this.line = line;
    this.i = 0;
    return this;
  }
  pos(t?: Token): Position {
    const at = t ?? this.toks.at(-1);
    return { file: this.file, line: at?.line ?? this.line, col: at ? at.col : 1 };
  }
  peek(): Token | undefined {
    return this.toks[this.i];
  }
  next(): Token | undefined {
    return this.toks[this.i++];
  }
  fail(t: Token | undefined, reason: string): never {
    throw new RuleError(this.pos(t), reason, t?.text);
  }
  /** The value of an option; `what` names it in the error. */
  value(opt: Token, what: string): Token {
    const t = this.next();
    if (t === undefined) throw new RuleError(this.pos(opt), `option ${opt.text} requires ${what}`, opt.text);
    return t;
  }
}

/** Decimal digits only (no sign, no spaces), at most `max`. */
function parseUint(s: string, max: number): number | undefined {
  if (s.length === 0 || s.length > 10) return undefined;
  let v = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return undefined;
    v = v * 10 + c;
  }
  return v <= max ? v : undefined;
}

function isDigits(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return s.length > 0;
}

function parsePort(cur: LineCursor, tok: Token, s: string): number {
  const digits = isDigits(s);
  const v = digits ? parseUint(s, 65535) : SERVICES[s];
  if (v === undefined) cur.fail(tok, digits ? `port ${s} is out of range 0-65535` : `unknown port or service "${s}"`);
  return v;
}

/** `p`, `lo:hi`, `lo:` (to 65535) or `:hi` (from 0). */
function parsePortRange(cur: LineCursor, tok: Token, s: string): PortRange {
  const colon = s.indexOf(':');
  if (colon === -1) {
    const p = parsePort(cur, tok, s);
    return { lo: p, hi: p };
  }
  const a = s.slice(0, colon);
  const b = s.slice(colon + 1);
  const lo = a === '' ? 0 : parsePort(cur, tok, a);
  const hi = b === '' ? 65535 : parsePort(cur, tok, b);
  if (lo > hi) cur.fail(tok, `invalid port range ${s} (min > max)`);
  return { lo, hi };
}

// `-p` conditions, shared: every rule's is one of few, and the model is
// immutable once parsed (a million rules need not hold a million copies).
const PROTO_NEGS: Array<Array<Neg<number>>> = [[], []];
function protoNeg(not: boolean, v: number): Neg<number> {
  const byNot = PROTO_NEGS[not ? 1 : 0];
  return (byNot[v] ??= Object.freeze({ not, v }) as Neg<number>);
}

// Port conditions, shared the same way (rule sets repeat ports); bounded,
// past that new ones are simply not shared.
const PORT_NEGS = new Map<number, Neg<PortRange>>();
function portNeg(not: boolean, v: PortRange): Neg<PortRange> {
  const k = (not ? 0x100000000 : 0) + v.lo * 0x10000 + v.hi;
  let n = PORT_NEGS.get(k);
  if (!n) {
    n = Object.freeze({ not, v: Object.freeze(v) }) as Neg<PortRange>;
    if (PORT_NEGS.size < 1 << 18) PORT_NEGS.set(k, n);
  }
  return n;
}

function parseAddress(cur: LineCursor, tok: Token, s: string, family: Family): AddrRange {
  const slash = s.indexOf('/');
  const addrText = slash === -1 ? s : s.slice(0, slash);
  const maskText = slash === -1 ? undefined : s.slice(slash + 1);
  if (family === 4) {
    const addr = parseIPv4(addrText);
    if (addr === undefined) {
      cur.fail(tok, /[a-zA-Z]/.test(addrText) && !addrText.includes(':')
        ? `host names are not supported, give an address: "${addrText}"`
        : `invalid IPv4 address "${addrText}"`);
    }
    let len = 32;
    if (maskText !== undefined) {
      if (maskText.includes('.')) {
        const m = parseIPv4(maskText);
        const l = m === undefined ? undefined : maskLength4(m);
        if (l === undefined) cur.fail(tok, `invalid or non-contiguous netmask "${maskText}"`);
        len = l;
      } else {
        const l = parseUint(maskText, 32);
        if (l === undefined) cur.fail(tok, `invalid prefix length "/${maskText}"`);
        len = l;
      }
    }
    const size = 2 ** (32 - len);
    const lo = addr - (addr % size);
    // A host address: hi is lo's number (one heap number, not two: most
    // IPv4 addresses are above the small-integer range).
    return { lo, hi: size === 1 ? lo : lo + size - 1, prefix: len };
  }
  const addr = parseIPv6(addrText);
  if (addr === undefined) cur.fail(tok, `invalid IPv6 address "${addrText}"`);
  let len = 128;
  if (maskText !== undefined) {
    if (maskText.includes(':')) {
      const m = parseIPv6(maskText);
      const l = m === undefined ? undefined : maskLength6(m);
      if (l === undefined) cur.fail(tok, `invalid or non-contiguous netmask "${maskText}"`);
      len = l;
    } else {
      const l = parseUint(maskText, 128);
      if (l === undefined) cur.fail(tok, `invalid prefix length "/${maskText}"`);
      len = l;
    }
  }
  const [lo, hi] = prefixRange6(addr, len);
  return { lo, hi, prefix: len };
}

function parseIpRange(cur: LineCursor, tok: Token, s: string, family: Family): AddrRange {
  const dash = s.indexOf('-');
  if (dash === -1) cur.fail(tok, `invalid address range "${s}", expected FROM-TO`);
  const a = s.slice(0, dash);
  const b = s.slice(dash + 1);
  if (family === 4) {
    const lo = parseIPv4(a);
    const hi = parseIPv4(b);
    if (lo === undefined || hi === undefined) cur.fail(tok, `invalid IPv4 address range "${s}"`);
    if (lo > hi) cur.fail(tok, `invalid address range "${s}" (start > end)`);
    return { lo, hi };
  }
  const lo = parseIPv6(a);
  const hi = parseIPv6(b);
  if (lo === undefined || hi === undefined) cur.fail(tok, `invalid IPv6 address range "${s}"`);
  if (lo > hi) cur.fail(tok, `invalid address range "${s}" (start > end)`);
  return { lo, hi };
}

function parseIface(cur: LineCursor, tok: Token, s: string): IfaceMatch {
  const wildcard = s.endsWith('+');
  const name = wildcard ? s.slice(0, -1) : s;
  if (s.length === 0 || s.length > MAX_IFNAME) cur.fail(tok, `interface name "${s}" must be 1-${MAX_IFNAME} characters`);
  if (/[\s/]/.test(name) || name.includes('+')) cur.fail(tok, `invalid interface name "${s}"`);
  return { name, wildcard };
}

function parseTcpFlagList(cur: LineCursor, tok: Token, s: string): number {
  let v = 0;
  for (const part of s.split(',')) {
    if (part === 'ALL') v |= TCP_FLAGS_ALL;
    else if (part === 'NONE') continue;
    else {
      const f = TCP_FLAG_NAMES.find(([name]) => name === part);
      if (!f) cur.fail(tok, `unknown TCP flag "${part}"`);
      v |= f[1];
    }
  }
  return v;
}

function parseIcmpType(cur: LineCursor, tok: Token, s: string, v6: boolean): IcmpType {
  if (!v6 && s === 'any') return { any: true, type: 0, codeLo: 0, codeHi: 255 };
  const names = v6 ? ICMPV6_TYPES : ICMP_TYPES;
  const named = names[s];
  if (named) return { any: false, type: named[0], codeLo: named[1], codeHi: named[2] };
  const m = /^(\d{1,3})(?:\/(\d{1,3}))?$/.exec(s);
  if (!m || Number(m[1]) > 255 || (m[2] !== undefined && Number(m[2]) > 255)) {
    cur.fail(tok, `unknown ${v6 ? 'ICMPv6' : 'ICMP'} type "${s}"`);
  }
  const type = Number(m[1]);
  if (m[2] === undefined) return { any: false, type, codeLo: 0, codeHi: 255 };
  const code = Number(m[2]);
  return { any: false, type, codeLo: code, codeHi: code };
}

function parseStates(cur: LineCursor, tok: Token, s: string, natStates: boolean): number {
  let mask = 0;
  for (const part of s.split(',')) {
    const name = part.toUpperCase();
    const bit = (CT as Record<string, number>)[name];
    if (bit === undefined || (!natStates && (name === 'SNAT' || name === 'DNAT'))) cur.fail(tok, `unknown conntrack state "${part}"`);
    mask |= bit;
  }
  return mask;
}

const PORT_PROTOS = new Set([PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_UDPLITE, PROTO_DCCP]);
// Module names by their text: the model holds these strings, not the
// token's copy (a million `-m tcp` rules, one "tcp").
const MODULES = new Map<string, Match['module']>(
  (['tcp', 'udp', 'sctp', 'icmp', 'icmp6', 'multiport', 'iprange', 'conntrack', 'state', 'comment'] as const).map((m) => [m, m]));
/** Modules iptables loads by itself when an option follows -p PROTO. */
const IMPLICIT_MODULE: Record<number, Match['module']> = {
  [PROTO_TCP]: 'tcp', [PROTO_UDP]: 'udp', [PROTO_SCTP]: 'sctp', [PROTO_ICMP]: 'icmp', [PROTO_ICMPV6]: 'icmp6',
};

// Targets without options are immutable, so all rules share one object each.
const NO_TARGET: Target = Object.freeze({ kind: 'none' });
const PLAIN_TARGETS: Record<string, Target> = {
  ACCEPT: Object.freeze({ kind: 'ACCEPT' }), DROP: Object.freeze({ kind: 'DROP' }), RETURN: Object.freeze({ kind: 'RETURN' }),
};

/** What a rule needs to know about the file it is in. */
export interface RuleContext {
  family(): Family;
  /** Fix the family, or fail if the file already showed the other one. */
  setFamily(f: Family, tok: Token, cur: LineCursor): void;
  chainExists(name: string): boolean;
  /** The table the rule is in. */
  table(): TableName;
  /** The declared chain's name string (to share it), if the chain exists. */
  chainName?(name: string): string | undefined;
  /** A notice for the operator at `where` (FILE:LINE:COL); the same message is given once. */
  notice?(where: string, message: string): void;
}

/** Parses the options of one rule (everything after `-A CHAIN`). */
export class RuleParser {
  private negate: Token | undefined;
  private readonly rule: Rule;
  private srcList: { tok: Token; text: string } | undefined;
  private dstList: { tok: Token; text: string } | undefined;
  private srcNot = false;
  private dstNot = false;
  private targetTok: Token | undefined;
  private protoTok: Token | undefined;
  private readonly moduleToks: Token[] = [];
  private readonly seen: string[] = [];
  private inTok: Token | undefined;
  private outTok: Token | undefined;

  /** `chain`: the chain the rule goes into, when known (-i/-o are checked against it as iptables does). */
  constructor(
    private readonly cur: LineCursor,
    private readonly ctx: RuleContext,
    pos: Position,
    private readonly chain?: string,
  ) {
    // Every field present from the start: one object shape for all rules.
    this.rule = {
      pos, src: undefined, dst: undefined, inIface: undefined, outIface: undefined, proto: undefined,
      matches: [], target: NO_TARGET, targetPos: undefined, counters: undefined, id: undefined,
    };
  }

  private family(): Family {
    return this.ctx.family();
  }

  private setFamily(f: Family, tok: Token): void {
    this.ctx.setFamily(f, tok, this.cur);
  }

  private takeNegate(opt: Token, negatable: boolean): boolean {
    const n = this.negate;
    this.negate = undefined;
    if (n && !negatable) this.cur.fail(n, `option ${opt.text} cannot be negated`);
    return n !== undefined;
  }

  private readonly seenOwner: (Match | undefined)[] = [];

  /** Each option once per rule, or once per match module instance for module options. */
  private once(key: string, opt: Token, owner?: Match): void {
    for (let i = 0; i < this.seen.length; i++) {
      if (this.seen[i] === key && this.seenOwner[i] === owner) this.cur.fail(opt, `option ${opt.text} given more than once`);
    }
    this.seen.push(key);
    this.seenOwner.push(owner);
  }

  parse(): Rule[] {
    const cur: LineCursor = this.cur;
    for (let t = cur.next(); t !== undefined; t = cur.next()) {
      const o = t.text;
      if (o === '!') {
        if (this.negate) cur.fail(t, 'double negation "! !" is not allowed');
        this.negate = t;
        continue;
      }
      if (this.rule.target.kind !== 'none' && this.targetOption(t)) continue;
      switch (o) {
        case '-s': case '--source': case '--src':
          this.once('-s', t);
          this.srcNot = this.takeNegate(t, true);
          this.srcList = { tok: cur.value(t, 'an address'), text: '' };
          this.srcList.text = this.srcList.tok.text;
          break;
        case '-d': case '--destination': case '--dst':
          this.once('-d', t);
          this.dstNot = this.takeNegate(t, true);
          this.dstList = { tok: cur.value(t, 'an address'), text: '' };
          this.dstList.text = this.dstList.tok.text;
          break;
        case '-p': case '--protocol': {
          this.once('-p', t);
          const not = this.takeNegate(t, true);
          const v = cur.value(t, 'a protocol');
          const name = v.text.toLowerCase();
          const num = isDigits(name) ? parseUint(name, 255) : PROTO_BY_NAME[name];
          if (num === undefined) cur.fail(v, `unknown protocol "${v.text}"`);
          if (name === 'icmp') this.setFamily(4, v); // family-only names (src/rules/family.ts)
          else if (name === 'ipv6-icmp' || name === 'icmpv6') this.setFamily(6, v);
          if (num !== 0 || not) this.rule.proto = protoNeg(not, num);
          this.protoTok = v;
          break;
        }
        case '-i': case '--in-interface':
        case '-o': case '--out-interface': {
          const out = o === '-o' || o === '--out-interface';
          this.once(out ? '-o' : '-i', t);
          const not = this.takeNegate(t, true);
          const v = cur.value(t, 'an interface name');
          const m = { not, v: parseIface(cur, v, v.text) };
          if (out) this.rule.outIface = m, this.outTok = t;
          else this.rule.inIface = m, this.inTok = t;
          break;
        }
        case '-m': case '--match': {
          if (this.negate) cur.fail(this.negate, `"!" cannot be applied to ${o}`);
          const v = cur.value(t, 'a match name');
          if (MODULES.has(v.text)) this.addModule(MODULES.get(v.text)!, v);
          else if (EXTENSIONS.has(v.text)) this.addExtension(EXTENSIONS.get(v.text)!, v);
          else cur.fail(v, `match "${v.text}" is not supported`);
          break;
        }
        case '-j': case '--jump': case '-g': case '--goto': {
          if (this.negate) cur.fail(this.negate, `"!" cannot be applied to ${o}`);
          if (this.rule.target.kind !== 'none') cur.fail(t, 'only one target (-j or -g) per rule');
          const v = cur.value(t, 'a target');
          this.targetTok = v;
          this.rule.target = this.parseTarget(t, v, o === '-g' || o === '--goto');
          if (this.rule.target.kind === 'jump' || this.rule.target.kind === 'goto') this.rule.targetPos = cur.pos(v);
          break;
        }
        case '-c': case '--set-counters': {
          const p = cur.value(t, 'packet and byte counters');
          const b = cur.value(t, 'packet and byte counters');
          if (!/^\d+$/.test(p.text)) cur.fail(p, 'invalid packet counter');
          if (!/^\d+$/.test(b.text)) cur.fail(b, 'invalid byte counter');
          this.rule.counters = [BigInt(p.text), BigInt(b.text)];
          break;
        }
        default:
          if (o.startsWith('--')) {
            this.moduleOption(t);
          } else if (o.startsWith('-')) {
            cur.fail(t, `option ${o} is not supported`);
          } else {
            cur.fail(t, `unexpected argument "${o}"`);
          }
      }
    }
    if (this.negate) cur.fail(this.negate, '"!" must be followed by an option');
    this.checkInterfaces();
    this.validate();
    // Matches were pushed one by one, so the array has room for ~16 more;
    // a million rules keep theirs, at its exact length.
    if (this.rule.matches.length) this.rule.matches = this.rule.matches.slice();
    return this.expandAddresses();
  }

  private addModule(name: Match['module'], tok: Token): Match {
    if (name === 'icmp') this.setFamily(4, tok);
    if (name === 'icmp6') this.setFamily(6, tok);
    const m = (name === 'tcp' ? { module: name, sport: undefined, dport: undefined, flags: undefined }
      : name === 'udp' || name === 'sctp' ? { module: name, sport: undefined, dport: undefined }
        : { module: name }) as Match;
    this.rule.matches.push(m);
    this.moduleToks.push(tok);
    return m;
  }

  private addExtension(e: MatchExtension, tok: Token): void {
    if (e.family) this.setFamily(e.family, tok);
    this.rule.matches.push({ module: 'ext', name: e.name, o: e.create() });
    this.moduleToks.push(tok);
  }

  /** What an extension's option parser sees of this parser (extensions/registry.ts). */
  private optionContext(m: object, opt: Token): OptionContext {
    const cur: LineCursor = this.cur;
    return {
      opt,
      value: (what) => cur.value(opt, what),
      peekValue: () => {
        const n = cur.peek();
        return n && !n.text.startsWith('-') && n.text !== '!' ? cur.next() : undefined;
      },
      negated: (negatable) => this.takeNegate(opt, negatable),
      once: (key) => this.once(key, opt, m as Match),
      family: () => this.family(),
      setFamily: (f, tok) => this.setFamily(f, tok),
      fail: (tok, reason) => cur.fail(tok, reason),
      notice: (tok, message) => this.ctx.notice?.(`${cur.file}:${cur.line}:${tok.col}`, message),
    };
  }

  /** An option starting with "--" belongs to the latest loaded match that knows it. */
  private moduleOption(t: Token): void {
    for (let i = this.rule.matches.length - 1; i >= 0; i--) {
      if (this.matchOption(this.rule.matches[i], t)) return;
    }
    // Like iptables: an unknown option after -p PROTO loads PROTO's own match.
    const proto = this.rule.proto;
    const implicit = proto && !proto.not ? IMPLICIT_MODULE[proto.v] : undefined;
    if (implicit && !this.rule.matches.some((m) => m.module === implicit)) {
      const m = this.addModule(implicit, this.protoTok!);
      if (this.matchOption(m, t)) return;
      this.rule.matches.pop();
      this.moduleToks.pop();
    }
    if (this.targetTok && this.rule.target.kind !== 'none') {
      this.cur.fail(t, `option ${t.text} is not supported by target ${this.targetTok.text}`);
    }
    this.cur.fail(t, `unknown option ${t.text}`);
  }

  private matchOption(m: Match, t: Token): boolean {
    const cur: LineCursor = this.cur;
    const o = t.text;
    const key = (k: string) => this.once(k, t, m);
    switch (m.module) {
      case 'ext':
        return extension(m).option(m.o, this.optionContext(m, t));
      case 'tcp': case 'udp': case 'sctp':
        if (o === '--sport' || o === '--source-port' || o === '--dport' || o === '--destination-port') {
          const src = o === '--sport' || o === '--source-port';
          key(src ? 'sport' : 'dport');
          const not = this.takeNegate(t, true);
          const v = cur.value(t, 'a port or port range');
          const r = portNeg(not, parsePortRange(cur, v, v.text));
          // 0:65535 is the match's default (xt_tcp/xt_udp store the same
          // range with or without it; iptables-save prints nothing): the
          // model holds no range, so parse(print(x)) is x.
          if (!not && r.v.lo === 0 && r.v.hi === 65535) return true;
          if (src) m.sport = r;
          else m.dport = r;
          return true;
        }
        if (m.module === 'tcp' && (o === '--tcp-flags' || o === '--syn')) {
          key('flags');
          const not = this.takeNegate(t, true);
          if (o === '--syn') {
            m.flags = { not, v: { mask: 0x17, comp: 0x02 } };
          } else {
            const a = cur.value(t, 'a flag mask and a comparison list');
            const b = cur.value(t, 'a flag mask and a comparison list');
            m.flags = { not, v: { mask: parseTcpFlagList(cur, a, a.text), comp: parseTcpFlagList(cur, b, b.text) } };
          }
          return true;
        }
        if (o === '--tcp-option' || o === '--chunk-types') cur.fail(t, `option ${o} is not supported`);
        return false;
      case 'icmp':
      case 'icmp6': {
        const want = m.module === 'icmp' ? '--icmp-type' : '--icmpv6-type';
        if (o !== want) return false;
        key('type');
        const not = this.takeNegate(t, true);
        const v = cur.value(t, 'a type');
        m.type = { not, v: parseIcmpType(cur, v, v.text, m.module === 'icmp6') };
        return true;
      }
      case 'multiport': {
        const which = o === '--sports' || o === '--source-ports' ? 'sports'
          : o === '--dports' || o === '--destination-ports' ? 'dports'
          : o === '--ports' ? 'ports' : undefined;
        if (!which) return false;
        if (m.which) cur.fail(t, 'multiport takes only one of --sports, --dports, --ports');
        const not = this.takeNegate(t, true);
        const v = cur.value(t, 'a list of ports');
        const list = v.text.split(',').map((p) => parsePortRange(cur, v, p));
        const slots = list.reduce((n, r) => n + (r.lo === r.hi ? 1 : 2), 0);
        if (slots > MAX_MULTIPORT) cur.fail(v, `too many ports specified (multiport takes at most ${MAX_MULTIPORT}, a range counts as two)`);
        m.which = which;
        m.ports = { not, v: list };
        return true;
      }
      case 'iprange':
        if (o !== '--src-range' && o !== '--dst-range') return false;
        {
          key(o);
          const not = this.takeNegate(t, true);
          const v = cur.value(t, 'an address range');
          if (v.text.includes(':')) this.setFamily(6, v);
          else this.setFamily(4, v);
          const r = { not, v: parseIpRange(cur, v, v.text, this.family()) };
          if (o === '--src-range') m.src = r;
          else m.dst = r;
        }
        return true;
      case 'conntrack':
        if (o === '--ctstate') {
          key('ctstate');
          const not = this.takeNegate(t, true);
          const v = cur.value(t, 'a list of states');
          m.ctstate = { not, v: parseStates(cur, v, v.text, true) };
          return true;
        }
        if (o.startsWith('--ct')) cur.fail(t, `conntrack option ${o} is not supported (only --ctstate)`);
        return false;
      case 'state':
        if (o !== '--state') return false;
        key('state');
        {
          const not = this.takeNegate(t, true);
          const v = cur.value(t, 'a list of states');
          m.state = { not, v: parseStates(cur, v, v.text, false) };
        }
        return true;
      case 'comment':
        if (o !== '--comment') return false;
        key('comment');
        this.takeNegate(t, false);
        {
          const v = cur.value(t, 'a comment');
          if (v.text.length > MAX_COMMENT) cur.fail(v, `comment longer than ${MAX_COMMENT} characters`);
          m.comment = v.text;
        }
        return true;
    }
  }

  private parseTarget(opt: Token, v: Token, isGoto: boolean): Target {
    const name = v.text;
    if (!isGoto && TARGETS.has(name)) {
      // xt_register_target's .table: CT and NOTRACK are raw's own targets.
      const only = TARGETS.get(name)!.tables;
      const table = this.ctx.table();
      if (only && !only.includes(table)) this.cur.fail(v, `${name} target is only valid in the ${only.join('/')} table, not ${table} (the kernel refuses it too)`);
      return { kind: 'ext', name, o: TARGETS.get(name)!.create() };
    }
    if (isGoto || !['ACCEPT', 'DROP', 'REJECT', 'RETURN', 'LOG'].includes(name)) {
      if (BUILTIN_CHAINS.includes(name as never) || name === 'PREROUTING' || name === 'POSTROUTING') {
        this.cur.fail(v, `cannot jump to built-in chain ${name}`);
      }
      if (!this.ctx.chainExists(name)) {
        this.cur.fail(v, /^[A-Z]+$/.test(name) && !isGoto
          ? `target ${name} is not supported, and no chain of that name exists`
          : `chain ${name} does not exist`);
      }
      // The chain's own name string, not the token's copy.
      const chain = this.ctx.chainName?.(name) ?? name;
      return isGoto ? { kind: 'goto', chain } : { kind: 'jump', chain };
    }
    switch (name) {
      case 'REJECT':
        // ipt_REJECT.c / ip6t_REJECT.c register with .table = "filter".
        if (this.ctx.table() !== 'filter') this.cur.fail(v, `REJECT target is only valid in the filter table, not ${this.ctx.table()} (the kernel refuses it too)`);
        return { kind: 'REJECT', with: this.family() === 6 ? 'icmp6-port-unreachable' : 'icmp-port-unreachable' };
      case 'LOG':
        return { kind: 'LOG' };
      default:
        return PLAIN_TARGETS[name];
    }
  }

  /** Options of the target (after -j). Returns false when not a target option. */
  private targetOption(t: Token): boolean {
    const target = this.rule.target;
    const cur: LineCursor = this.cur;
    if (target.kind === 'REJECT' && t.text === '--reject-with') {
      this.once('--reject-with', t);
      this.takeNegate(t, false);
      const v = cur.value(t, 'a reject type');
      const canon = REJECT_V4[v.text] ?? REJECT_V6[v.text];
      if (canon === undefined) cur.fail(v, `unknown reject type "${v.text}"`);
      const v6 = REJECT_V6[v.text] !== undefined && REJECT_V4[v.text] === undefined;
      const v4only = REJECT_V4[v.text] !== undefined && REJECT_V6[v.text] === undefined;
      if (v6) this.setFamily(6, v);
      if (v4only) this.setFamily(4, v);
      target.with = this.family() === 6 ? REJECT_V6[v.text] : REJECT_V4[v.text];
      if (target.with === undefined) cur.fail(v, `reject type "${v.text}" is not valid for IPv${this.family()}`);
      return true;
    }
    if (target.kind === 'LOG' && (t.text === '--log-prefix' || t.text === '--log-level')) {
      this.once(t.text, t);
      this.takeNegate(t, false);
      const v = cur.value(t, t.text === '--log-prefix' ? 'a prefix' : 'a level');
      if (t.text === '--log-prefix') {
        if (v.text.length > MAX_LOG_PREFIX) cur.fail(v, `log prefix longer than ${MAX_LOG_PREFIX} characters`);
        target.prefix = v.text;
      } else {
        const level = /^\d$/.test(v.text) ? Number(v.text) : LOG_LEVELS[v.text.toLowerCase()];
        if (level === undefined || level > 7) cur.fail(v, `invalid log level "${v.text}"`);
        target.level = level === LOG_LEVEL_DEFAULT ? undefined : level;
      }
      return true;
    }
    if (target.kind === 'LOG' && LOG_FLAGS[t.text] !== undefined) {
      // XT_LOG_* bits (libxt_LOG.c). The log stream's events carry the
      // packet's header fields; these options are kept for printing.
      this.once(t.text, t);
      this.takeNegate(t, false);
      target.flags = (target.flags ?? 0) | LOG_FLAGS[t.text];
      return true;
    }
    if (target.kind === 'LOG' && t.text.startsWith('--log-')) cur.fail(t, `LOG option ${t.text} is not supported`);
    if (target.kind === 'ext') return targetExtension(target.name).option(target.o, this.optionContext(target, t));
    return false;
  }

  /**
   * iptables (and iptables-restore, legacy and nft) refuses an output
   * interface in INPUT (and PREROUTING) and an input interface in OUTPUT
   * (and POSTROUTING): "Can't use -o with INPUT". In a user chain either is
   * accepted, and where the packet has no such interface it never matches
   * (`! -o eth0` always does), as in the kernel.
   */
  private checkInterfaces(): void {
    const c = this.chain;
    if (this.outTok && (c === 'INPUT' || c === 'PREROUTING')) {
      const why = c === 'INPUT' ? 'a packet for the host has no output interface' : 'a packet is not routed yet';
      this.cur.fail(this.outTok, `can't use -o with ${c}: ${why} (iptables refuses it too)`);
    }
    if (this.inTok && (c === 'OUTPUT' || c === 'POSTROUTING')) {
      this.cur.fail(this.inTok, `can't use -i with ${c}: a packet from the host has no input interface (iptables refuses it too)`);
    }
  }

  private validate(): void {
    const r = this.rule;
    const cur: LineCursor = this.cur;
    const proto = r.proto && !r.proto.not ? r.proto.v : undefined;
    for (let i = 0; i < r.matches.length; i++) {
      const m = r.matches[i];
      const tok = this.moduleToks[i];
      switch (m.module) {
        case 'tcp': case 'udp': case 'sctp': {
          const want = m.module === 'tcp' ? PROTO_TCP : m.module === 'udp' ? PROTO_UDP : PROTO_SCTP;
          if (proto !== want) cur.fail(tok, `-m ${m.module} requires -p ${m.module}`);
          break;
        }
        case 'icmp':
          if (proto !== PROTO_ICMP) cur.fail(tok, '-m icmp requires -p icmp');
          if (!m.type) m.type = { not: false, v: { any: true, type: 0, codeLo: 0, codeHi: 255 } };
          break;
        case 'icmp6':
          if (proto !== PROTO_ICMPV6) cur.fail(tok, '-m icmp6 requires -p ipv6-icmp');
          if (!m.type) cur.fail(tok, '-m icmp6 requires --icmpv6-type');
          break;
        case 'multiport':
          if (proto === undefined || !PORT_PROTOS.has(proto)) {
            cur.fail(tok, '-m multiport requires -p tcp, udp, udplite, dccp or sctp');
          }
          if (!m.which) cur.fail(tok, '-m multiport requires --sports, --dports or --ports');
          break;
        case 'iprange':
          if (!m.src && !m.dst) cur.fail(tok, '-m iprange requires --src-range or --dst-range');
          break;
        case 'state':
          if (!m.state) cur.fail(tok, '-m state requires --state');
          break;
        case 'comment':
          if (m.comment === undefined) cur.fail(tok, '-m comment requires --comment');
          break;
        case 'conntrack':
          break;
        case 'ext': {
          const e = extension(m);
          e.validate?.(m.o, {
            rule: r, family: this.family(), table: this.ctx.table(), tok,
            notice: (message) => this.ctx.notice?.(`${cur.file}:${cur.line}:${tok.col}`, message),
            fail: (reason) => cur.fail(tok, reason),
          });
          break;
        }
      }
    }
    if (r.target.kind === 'ext') {
      const at = `${cur.file}:${cur.line}:${this.targetTok!.col}`;
      targetExtension(r.target.name).validate?.(r.target.o, {
        rule: r, family: this.family(), table: this.ctx.table(), tok: this.targetTok!,
        notice: (message) => this.ctx.notice?.(at, message),
        fail: (reason) => cur.fail(this.targetTok, reason),
      });
    }
    if (r.target.kind === 'REJECT' && r.target.with === 'tcp-reset' && proto !== PROTO_TCP) {
      cur.fail(this.targetTok, 'REJECT --reject-with tcp-reset requires -p tcp');
    }
  }

  /** `-s a,b -d c,d` is shorthand for one rule per combination, as in iptables. */
  private expandAddresses(): Rule[] {
    const list = (l: { tok: Token; text: string } | undefined): (AddrRange | undefined)[] => {
      if (!l) return [undefined];
      if (l.text.indexOf(',') === -1) {
        const c = l.text.charCodeAt(0);
        if (l.text.indexOf(':') !== -1) this.setFamily(6, l.tok);
        else if (c >= 48 && c <= 57) this.setFamily(4, l.tok);
        return [parseAddress(this.cur, l.tok, l.text, this.family())];
      }
      const parts = l.text.split(',');
      if (parts.some((p) => p === '')) this.cur.fail(l.tok, `invalid address list "${l.text}"`);
      for (const p of parts) {
        if (p.includes(':')) this.setFamily(6, l.tok);
        else if (p.charCodeAt(0) >= 48 && p.charCodeAt(0) <= 57) this.setFamily(4, l.tok);
      }
      return parts.map((p) => parseAddress(this.cur, l.tok, p, this.family()));
    };
    const srcs = list(this.srcList);
    const dsts = list(this.dstList);
    if (srcs.length === 1 && dsts.length === 1) {
      const r = this.rule;
      const s = srcs[0];
      const d = dsts[0];
      if (s && (this.srcNot || !isFull(s, this.family()))) r.src = { not: this.srcNot, v: s };
      if (d && (this.dstNot || !isFull(d, this.family()))) r.dst = { not: this.dstNot, v: d };
      return [r];
    }
    const out: Rule[] = [];
    for (const s of srcs) {
      for (const d of dsts) {
        const r: Rule = { ...this.rule };
        if (s) r.src = { not: this.srcNot, v: s };
        if (d) r.dst = { not: this.dstNot, v: d };
        if (r.src && !r.src.not && isFull(r.src.v, this.family())) delete r.src;
        if (r.dst && !r.dst.not && isFull(r.dst.v, this.family())) delete r.dst;
        out.push(r);
      }
    }
    return out;
  }
}

function isFull(a: AddrRange, family: Family): boolean {
  return family === 4 ? a.lo === 0 && a.hi === V4_MAX : a.lo === 0n && a.hi === V6_MAX;
}

/** Lines as split('\n') counts them (a trailing newline ends an empty last line). */
function lineCount(text: string): number {
  let n = 1;
  for (let at = text.indexOf('\n'); at >= 0; at = text.indexOf('\n', at + 1)) n++;
  return n;
}

function detectFamily(text: string): Family | undefined {
  const head = text.slice(0, 4096);
  if (/^# Generated by (ip6tables-(save|nft-save)|flatwall save \(IPv6\))/m.test(head)) return 6;
  if (/^# Generated by (iptables|iptables-nft|iptables-legacy)-save/m.test(head)) return 4;
  return undefined;
}

/** Parse one iptables-save (or ip6tables-save) file. */
export function parseIptables(text: string, opts: ParseOptions): RuleSet {
  return drain(parseIptablesSteps(text, opts));
}

/** Lines between the points where a long parse may give the event loop a turn. */
export const PARSE_STEP_LINES = 4096;

/**
 * parseIptables as steps (src/rules/steps.ts): yields every PARSE_STEP_LINES
 * lines, so a caller on the event loop can serve other work between them.
 */
export function* parseIptablesSteps(text: string, opts: ParseOptions): Generator<number, RuleSet> {
  const file = opts.file;
  const maxRules = opts.maxRules ?? Infinity;
  if (maxRules !== Infinity) {
    // Before any memory goes into parsing: a 6M-rule body is refused in a
    // fraction of a second, not after minutes at gigabytes of heap.
    const pre = countRuleCommands(text, Math.max(0, maxRules - (opts.rulesBefore ?? 0)));
    if (pre.over) overLimit({ file, line: pre.over.line, col: 1 }, maxRules);
  }
  let ruleCount = opts.rulesBefore ?? 0;
  let family: Family | undefined = opts.family ?? detectFamily(text);
  let table: Table | undefined;
  const ctx: RuleContext = {
    family: () => family ?? 4,
    setFamily: (f, tok, cur) => {
      if (family === undefined) family = f;
      else if (family !== f) {
        throw new RuleError({ file, line: cur.line, col: tok.col },
          `IPv${f} syntax in an IPv${family} rule file (use separate iptables-save and ip6tables-save files)`, tok.text);
      }
    },
    chainExists: (name) => table!.chains.has(name),
    chainName: (name) => table!.chains.get(name)?.name,
    table: () => table!.name,
    notice: (where, message) => {
      if (noticed.has(message)) return;
      noticed.add(message);
      opts.onNotice?.(`${where}: ${message}`);
    },
  };
  const noticed = new Set<string>();

  const tables: Table[] = [];
  let skipping = false;
  const skipped: SkippedTable[] = [];
  let tableTok: { line: number; col: number; name: string } | undefined;
  const seenTables = new Set<string>();
  // Lines by indexOf, not split: no array of a million strings at once.
  const total = lineCount(text);
  const pool: Token[] = [];
  const cursor = new LineCursor(pool, file, 0);

  let next = 0;
  for (let ln = 0; ln < total; ln++) {
    if (ln > 0 && ln % PARSE_STEP_LINES === 0) {
      if (opts.onProgress && ln % (PARSE_STEP_LINES * 4) === 0) opts.onProgress(ln, total);
      yield ln;
    }
    let end = text.indexOf('\n', next);
    if (end < 0) end = text.length;
    const raw = text.slice(next, end);
    next = end + 1;
    const lineNo = ln + 1;
    // Fast skip of blank lines and comments.
    let first = 0;
    while (first < raw.length && (raw[first] === ' ' || raw[first] === '\t' || raw[first] === '\r')) first++;
    if (first === raw.length || raw[first] === '#') continue;

    const toks = tokenize(raw, { file, line: lineNo, col: 1 }, pool);
    const cur: LineCursor = cursor.reset(toks, lineNo);
    const t0 = toks[0];

    if (t0.text.startsWith('*')) {
      if (table || skipping) cur.fail(t0, `table ${t0.text.slice(1)} starts before COMMIT of the previous table`);
      const name = t0.text.slice(1);
      if (toks.length > 1) cur.fail(toks[1], 'unexpected text after table name');
      if (seenTables.has(name)) cur.fail(t0, `table ${name} appears twice`);
      seenTables.add(name);
      tableTok = { line: lineNo, col: t0.col, name };
      if (name !== 'filter' && name !== 'raw') {
        if (!opts.skipOtherTables) {
          cur.fail(t0, `table ${name} is not supported (flatwall runs filter and raw; pass --skip-tables to ignore it)`);
        }
        skipping = true;
        skipped.push({ file, table: name, line: lineNo, rules: 0 });
        continue;
      }
      table = { name, family: 4, file, chains: new Map() };
      for (const b of TABLE_BUILTINS[name]) {
        table.chains.set(b, { name: b, builtin: true, policy: 'ACCEPT', pos: { file, line: lineNo, col: 1 }, rules: [] });
      }
      continue;
    }
    if (t0.text === 'COMMIT') {
      if (toks.length > 1) cur.fail(toks[1], 'unexpected text after COMMIT');
      if (skipping) {
        skipping = false;
        continue;
      }
      if (!table) cur.fail(t0, 'COMMIT without a table (missing "*filter")');
      tables.push(table);
      table = undefined;
      continue;
    }
    if (skipping) {
      if (/^(\[\d+:\d+\] )?-[AI] /.test(raw.slice(first))) skipped[skipped.length - 1].rules++;
      continue;
    }
    if (!table) cur.fail(t0, 'rule outside a table (missing "*filter")');
    const tbl = table;

    if (t0.text.startsWith(':')) {
      parseChainLine(cur, tbl);
      continue;
    }

    // Optional "[packets:bytes]" counters, then a command.
    let counters: [bigint, bigint] | undefined;
    let cmd = cur.next()!;
    if (cmd.text.startsWith('[')) {
      counters = parseCounters(cur, cmd);
      cmd = cur.next() ?? cur.fail(cmd, 'counters must be followed by a command');
    }
    switch (cmd.text) {
      case '-A': case '--append':
      case '-I': case '--insert': {
        const chainTok = cur.value(cmd, 'a chain name');
        const chain = tbl.chains.get(chainTok.text);
        if (!chain) cur.fail(chainTok, `chain ${chainTok.text} does not exist`);
        let at = chain.rules.length;
        if (cmd.text === '-I' || cmd.text === '--insert') {
          at = 0;
          const n = cur.peek();
          if (n && /^\d+$/.test(n.text)) {
            cur.next();
            const idx = Number(n.text);
            if (idx < 1 || idx > chain.rules.length + 1) cur.fail(n, `rule number ${idx} is out of range 1-${chain.rules.length + 1}`);
            at = idx - 1;
          }
        }
        const rp = new RuleParser(cur, ctx, cur.pos(cmd), chain.name);
        const rules = rp.parse();
        ruleCount += rules.length;
        if (ruleCount > maxRules) overLimit(cur.pos(cmd), maxRules);
        if (counters) for (const r of rules) r.counters = counters;
        if (at === chain.rules.length) for (const r of rules) chain.rules.push(r);
        else chain.rules.splice(at, 0, ...rules);
        break;
      }
      case '-N': case '--new-chain': case '--new': {
        const chainTok = cur.value(cmd, 'a chain name');
        checkChainName(cur, chainTok);
        if (tbl.chains.has(chainTok.text)) cur.fail(chainTok, `chain ${chainTok.text} already exists`);
        tbl.chains.set(chainTok.text, { name: chainTok.text, builtin: false, pos: cur.pos(chainTok), rules: [] });
        expectEnd(cur);
        break;
      }
      case '-P': case '--policy': {
        const chainTok = cur.value(cmd, 'a chain name');
        const chain = tbl.chains.get(chainTok.text);
        if (!chain) cur.fail(chainTok, `chain ${chainTok.text} does not exist`);
        if (!chain.builtin) cur.fail(chainTok, `only built-in chains have a policy, ${chain.name} is a user chain`);
        const p = cur.value(chainTok, 'a policy');
        if (p.text !== 'ACCEPT' && p.text !== 'DROP') cur.fail(p, `policy must be ACCEPT or DROP`);
        chain.policy = p.text as 'ACCEPT' | 'DROP';
        expectEnd(cur);
        break;
      }
      case '-F': case '--flush': {
        const chainTok = cur.next();
        if (chainTok) {
          const chain = tbl.chains.get(chainTok.text);
          if (!chain) cur.fail(chainTok, `chain ${chainTok.text} does not exist`);
          ruleCount -= chain.rules.length;
          chain.rules = [];
        } else {
          for (const c of tbl.chains.values()) {
            ruleCount -= c.rules.length;
            c.rules = [];
          }
        }
        expectEnd(cur);
        break;
      }
      case '-X': case '--delete-chain': {
        const chainTok = cur.next();
        const refs = (name: string) => {
          for (const c of tbl.chains.values()) {
            for (const r of c.rules) {
              if ((r.target.kind === 'jump' || r.target.kind === 'goto') && r.target.chain === name) return true;
            }
          }
          return false;
        };
        const del = (name: string, tok: Token) => {
          const c = tbl.chains.get(name)!;
          if (c.builtin) cur.fail(tok, `cannot delete built-in chain ${name}`);
          if (c.rules.length) cur.fail(tok, `chain ${name} is not empty`);
          if (refs(name)) cur.fail(tok, `chain ${name} is still referenced`);
          tbl.chains.delete(name);
        };
        if (chainTok) {
          if (!tbl.chains.has(chainTok.text)) cur.fail(chainTok, `chain ${chainTok.text} does not exist`);
          del(chainTok.text, chainTok);
        } else {
          for (const c of [...tbl.chains.values()]) if (!c.builtin) del(c.name, cmd);
        }
        expectEnd(cur);
        break;
      }
      default:
        if (/^-[A-Z]$/.test(cmd.text) || /^--[a-z-]+$/.test(cmd.text)) cur.fail(cmd, `command ${cmd.text} is not supported`);
        cur.fail(cmd, 'expected a command (-A, -I, -N, -P, -F, -X), a chain line (:NAME) or COMMIT');
    }
  }
  if (table || skipping) {
    throw new RuleError({ file, line: tableTok?.line ?? total, col: tableTok?.col ?? 1 },
      `table ${tableTok?.name ?? 'filter'} is missing its COMMIT`, `*${tableTok?.name ?? 'filter'}`);
  }
  const fam = family ?? 4;
  for (const t of tables) {
    t.family = fam;
    for (const c of t.chains.values()) {
      for (const r of c.rules) {
        // A REJECT parsed before the file showed it was IPv6 got the IPv4 default.
        if (fam === 6 && r.target.kind === 'REJECT' && r.target.with === 'icmp-port-unreachable') r.target.with = 'icmp6-port-unreachable';
        for (const m of r.matches) if (m.module === 'ext') extension(m).finish?.(m.o, fam);
      }
    }
  }
  opts.onProgress?.(total, total);
  return skipped.length ? { tables, skipped } : { tables };
}

function overLimit(pos: Position, max: number): never {
  throw overRuleLimit(pos, max);
}

function expectEnd(cur: LineCursor): void {
  const t = cur.next();
  if (t) cur.fail(t, 'unexpected argument');
}

function checkChainName(cur: LineCursor, tok: Token): void {
  const n = tok.text;
  if (n.length === 0 || n.length > MAX_CHAIN_NAME) cur.fail(tok, `chain name must be 1-${MAX_CHAIN_NAME} characters`);
  if (n.startsWith('-') || n.startsWith('!') || /\s/.test(n)) cur.fail(tok, `invalid chain name "${n}"`);
  if (['ACCEPT', 'DROP', 'REJECT', 'RETURN', 'LOG', 'QUEUE'].includes(n)) cur.fail(tok, `chain name ${n} is reserved`);
}

function parseCounters(cur: LineCursor, tok: Token): [bigint, bigint] {
  const m = /^\[(\d+):(\d+)\]$/.exec(tok.text);
  if (!m) cur.fail(tok, 'invalid counters, expected [packets:bytes]');
  return [BigInt(m[1]), BigInt(m[2])];
}

function parseChainLine(cur: LineCursor, tbl: Table): void {
  const t0 = cur.next()!;
  const name = t0.text.slice(1);
  const nameTok = { text: name, col: t0.col + 1 };
  checkChainName(cur, nameTok);
  const pol = cur.next();
  if (!pol) cur.fail(t0, 'chain line needs a policy (ACCEPT, DROP, or - for a user chain)');
  const cnt = cur.next();
  const counters = cnt ? parseCounters(cur, cnt) : undefined;
  expectEnd(cur);
  const builtin = TABLE_BUILTINS[tbl.name].includes(name);
  if (builtin) {
    if (pol.text !== 'ACCEPT' && pol.text !== 'DROP') cur.fail(pol, `policy of built-in chain ${name} must be ACCEPT or DROP`);
    const c = tbl.chains.get(name)!;
    c.policy = pol.text as 'ACCEPT' | 'DROP';
    c.counters = counters;
    c.pos = cur.pos(t0);
    return;
  }
  if (pol.text !== '-') cur.fail(pol, `${name} is not a built-in chain; its policy must be "-"`);
  if (tbl.chains.has(name)) cur.fail(nameTok, `chain ${name} declared twice`);
  tbl.chains.set(name, { name, builtin: false, pos: cur.pos(t0), rules: [], counters });
}

export function isIptablesText(text: string): boolean {
  return /^\s*(\*filter|\*\w+|#|:|-A|COMMIT)/m.test(text.slice(0, 2048)) && !/^\s*[{\[]/.test(text);
}

export type { Token };
