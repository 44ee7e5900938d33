// `ipset save` / `ipset restore` text: one command per line,
//
//   create NAME TYPE [family inet|inet6] [hashsize N] [maxelem N] [timeout N]
//                    [counters] [comment] [bucketsize N] [initval N] [range A-B]
//   add NAME ELEMENT [timeout N] [nomatch] [packets N] [bytes N] [comment "..."]
//   del NAME ELEMENT
//   flush [NAME] | destroy [NAME] | swap A B | rename A B
//
// (ipset's one-letter and -N/-A/... spellings too; `-exist` or `-!` on a
// line lets an existing set/element stand; `#` lines and blank lines are
// skipped; a double-quoted token may hold spaces). Elements are parsed for
// the set's type (src/sets/entry.ts), so a set must be created before it is
// added to, in the text or in the store. Every error is a RuleError at
// file:line:column with the token, and a text with an error yields nothing.
import { byName } from '../rules/by-name';
import { RuleError } from '../rules/errors';
import { ElementError, ipsetNumber, parseElement, type ElementContext } from './entry';
import {
  MAX_COMMENT_LEN, MAX_NAME_LEN, MAX_TIMEOUT, SET_TYPES, TYPE_ALIASES, UNSUPPORTED_TYPES,
  type FamilyName, type NativeCommand, type SetEntry, type SetOptions, type SetTypeName,
} from './types';

export interface Token {
  text: string;
  line: number;
  col: number;
}

/** Where a native command came from, for error messages. */
export interface Where {
  file: string;
  line: number;
  col: number;
  token: string;
  /** The command's source text, for messages that name it. */
  source: string;
}

export interface ParsedSets {
  file: string;
  commands: NativeCommand[];
  /** where[i]: the source of commands[i]; an error at a command points at its element or set name. */
  where: Where[];
  /** Source lines that held a command. */
  lines: number;
  /** The sets as the text leaves them, where it touched them (undefined: destroyed). */
  sets: Map<string, ElementContext | undefined>;
}

/** What the parser needs to know about sets that exist before the text runs. */
export type SetLookup = (name: string) => ElementContext | undefined;

const COMMANDS: Record<string, 'create' | 'add' | 'del' | 'destroy' | 'flush' | 'rename' | 'swap'> = byName({
  create: 'create', n: 'create', '-N': 'create', '--create': 'create',
  add: 'add', a: 'add', '-A': 'add', '--add': 'add',
  del: 'del', d: 'del', '-D': 'del', '--del': 'del',
  destroy: 'destroy', x: 'destroy', '-X': 'destroy', '--destroy': 'destroy',
  flush: 'flush', f: 'flush', '-F': 'flush', '--flush': 'flush',
  rename: 'rename', e: 'rename', '-E': 'rename', '--rename': 'rename',
  swap: 'swap', w: 'swap', '-W': 'swap', '--swap': 'swap',
});
const NOT_IN_RESTORE = new Set(['list', 'l', '-L', 'save', 's', '-S', 'test', 't', '-T', 'restore', 'r', '-R', 'help', 'version']);
const EXIST_FLAGS = new Set(['-exist', '-!', '--exist']);
const QUIET_FLAGS = new Set(['-q', '-quiet', '--quiet']);

/** Splits one line into tokens: whitespace separates, double quotes group (and are dropped). */
export function tokenize(text: string, file: string, line: number): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i])) i++;
    if (i >= text.length) break;
    const start = i;
    let s = '';
    let quoted = false;
    while (i < text.length && (quoted || !/\s/.test(text[i]))) {
      if (text[i] === '"') quoted = !quoted;
      else s += text[i];
      i++;
    }
    if (quoted) throw new RuleError({ file, line, col: start + 1 }, 'missing close quote', text.slice(start));
    out.push({ text: s, line, col: start + 1 });
  }
  return out;
}

/** The set type a create line names (aliases included); a clear error for types flatwall lacks. */
export function setTypeOf(s: string): SetTypeName | string {
  if (s in SET_TYPES) return s as SetTypeName;
  if (s in TYPE_ALIASES) return TYPE_ALIASES[s];
  if (UNSUPPORTED_TYPES.includes(s)) return `set type ${s} is not supported by flatwall (supported: ${Object.keys(SET_TYPES).join(', ')})`;
  return `Syntax error: typename '${s}' is unknown`;
}

class Parser {
  readonly commands: NativeCommand[] = [];
  readonly where: Where[] = [];
  // Sets as the text leaves them so far (undefined: destroyed here).
  readonly local = new Map<string, ElementContext | undefined>();

  constructor(
    private readonly file: string,
    private readonly lookup: SetLookup,
    private readonly exist: boolean,
  ) {}

  err(t: Token, msg: string, token: string | undefined = t.text, col = t.col): RuleError {
    return new RuleError({ file: this.file, line: t.line, col }, msg, token);
  }

  typeOf(name: string): ElementContext | undefined {
    return this.local.has(name) ? this.local.get(name) : this.lookup(name);
  }

  private name(t: Token | undefined, cmd: Token, what: string): string {
    if (!t) throw this.err(cmd, `Missing ${what} to command ${cmd.text}`, cmd.text);
    if (t.text.length > MAX_NAME_LEN) throw this.err(t, `Syntax error: setname '${t.text}' is longer than ${MAX_NAME_LEN} characters`);
    if (t.text === '') throw this.err(t, 'Syntax error: empty set name');
    return t.text;
  }

  private push(c: NativeCommand, at: Token, source: string): void {
    this.commands.push(c);
    this.where.push({ file: this.file, line: at.line, col: at.col, token: at.text, source });
  }

  line(toks: Token[], source: string): void {
    const exist = this.exist || toks.some((t) => EXIST_FLAGS.has(t.text));
    const words = toks.filter((t) => !EXIST_FLAGS.has(t.text) && !QUIET_FLAGS.has(t.text));
    if (words.length === 0) return;
    const [cmd, ...args] = words;
    const op = COMMANDS[cmd.text];
    if (!op) {
      if (NOT_IN_RESTORE.has(cmd.text)) throw this.err(cmd, `command ${cmd.text} is not allowed in a restore`);
      throw this.err(cmd, `Unknown command \`${cmd.text}'`);
    }
    switch (op) {
      case 'create': return this.create(cmd, args, exist, source);
      case 'add': case 'del': return this.adt(op, cmd, args, exist, source);
      case 'destroy': case 'flush': {
        if (args.length > 1) throw this.err(args[1], `Unknown argument: \`${args[1].text}'`);
        const name = args[0] ? this.name(args[0], cmd, 'set name') : undefined;
        if (op === 'destroy') {
          if (name === undefined) for (const n of this.local.keys()) this.local.set(n, undefined);
          else this.local.set(name, undefined);
        }
        this.push({ op, name }, args[0] ?? cmd, source);
        return;
      }
      case 'swap': case 'rename': {
        if (args.length > 2) throw this.err(args[2], `Unknown argument: \`${args[2].text}'`);
        const a = this.name(args[0], cmd, 'first mandatory argument');
        const b = this.name(args[1], cmd, 'second mandatory argument');
        const ta = this.typeOf(a);
        const tb = this.typeOf(b);
        if (op === 'swap') {
          this.local.set(a, tb);
          this.local.set(b, ta);
        } else {
          this.local.set(b, ta);
          this.local.set(a, undefined);
        }
        this.push({ op, name: a, name2: b }, args[0], source);
      }
    }
  }

  private create(cmd: Token, args: Token[], exist: boolean, source: string): void {
    const name = this.name(args[0], cmd, 'set name');
    const typeTok = args[1];
    if (!typeTok) throw this.err(cmd, `Missing second mandatory argument to command ${cmd.text}`, cmd.text);
    const type = setTypeOf(typeTok.text);
    if (!(type in SET_TYPES)) throw this.err(typeTok, type);
    const t = type as SetTypeName;
    const info = SET_TYPES[t];
    const o: SetOptions = { type: t };
    const seen = new Set<string>();
    const num = (tok: Token, v: Token | undefined, max: number) => {
      if (!v) throw this.err(tok, `Syntax error: option \`${tok.text}' needs a value`);
      try {
        return ipsetNumber(v.text, 0, max);
      } catch (e) {
        throw this.err(v, (e as Error).message);
      }
    };
    for (let i = 2; i < args.length; i++) {
      const k = args[i];
      const key = k.text;
      const canon = key === '-4' || key === '-6' ? 'family' : key;
      if (seen.has(canon)) throw this.err(k, `Syntax error: ${canon} already specified`);
      seen.add(canon);
      if (info.hash && (key === '-4' || key === '-6')) {
        o.family = key === '-4' ? 'inet' : 'inet6';
        continue;
      }
      switch (info.hash ? key : `bitmap:${key}`) {
        case 'family': {
          const v = args[++i];
          if (!v) throw this.err(k, 'Syntax error: option `family\' needs a value');
          const f: Record<string, FamilyName> = byName({ inet: 'inet', ipv4: 'inet', '-4': 'inet', inet6: 'inet6', ipv6: 'inet6', '-6': 'inet6' });
          if (!f[v.text]) throw this.err(v, `Syntax error: unknown inet family ${v.text}`);
          o.family = f[v.text];
          break;
        }
        case 'hashsize': o.hashsize = num(k, args[++i], 0xffffffff); break;
        case 'maxelem': o.maxelem = num(k, args[++i], 0xffffffff); break;
        case 'bucketsize': o.bucketsize = num(k, args[++i], 255); break;
        case 'initval': o.initval = num(k, args[++i], 0xffffffff); break;
        case 'timeout': case 'bitmap:timeout': o.timeout = num(k, args[++i], MAX_TIMEOUT); break;
        case 'counters': case 'bitmap:counters': o.counters = true; break;
        case 'comment': case 'bitmap:comment': o.comment = true; break;
        case 'bitmap:range': {
          const v = args[++i];
          if (!v) throw this.err(k, 'Syntax error: option `range\' needs a value');
          try {
            const el = parseElement({ type: 'bitmap:port' }, v.text);
            const ports = el.entries.map((e) => e.port!);
            o.range = [ports[0], ports[ports.length - 1]];
          } catch (e) {
            throw this.err(v, (e as Error).message);
          }
          break;
        }
        case 'netmask': case 'bitmask': case 'markmask': case 'skbinfo': case 'forceadd': case 'bitmap:skbinfo':
          throw this.err(k, `create option ${key} is not supported by flatwall`);
        default:
          throw this.err(k, `Unknown argument: \`${key}'`);
      }
    }
    if (t === 'bitmap:port' && !o.range) throw this.err(typeTok, 'Mandatory option `range\' is missing');
    if (info.hash) o.family ??= 'inet';
    this.local.set(name, { type: t, family: o.family });
    this.push({ op: 'create', name, options: o, exist }, args[0], source);
  }

  private adt(op: 'add' | 'del', cmd: Token, args: Token[], exist: boolean, source: string): void {
    const name = this.name(args[0], cmd, 'set name');
    const elTok = args[1];
    if (!elTok) throw this.err(cmd, `Missing second mandatory argument to command ${cmd.text}`, cmd.text);
    const ctx = this.typeOf(name);
    if (!ctx) throw this.err(args[0], 'The set with the given name does not exist');
    let parsed;
    try {
      parsed = parseElement(ctx, elTok.text);
    } catch (e) {
      if (e instanceof ElementError) throw this.err(elTok, e.message, elTok.text, elTok.col + e.offset);
      throw e;
    }
    const ext: SetEntry = {};
    const seen = new Set<string>();
    const info = SET_TYPES[ctx.type];
    for (let i = 2; i < args.length; i++) {
      const k = args[i];
      if (seen.has(k.text)) throw this.err(k, `Syntax error: ${k.text} already specified`);
      seen.add(k.text);
      const value = (max: number) => {
        const v = args[++i];
        if (!v) throw this.err(k, `Syntax error: option \`${k.text}' needs a value`);
        try {
          return ipsetNumber(v.text, 0, max);
        } catch (e) {
          throw this.err(v, (e as Error).message);
        }
      };
      if (op === 'del') throw this.err(k, `Unknown argument: \`${k.text}'`);
      switch (k.text) {
        case 'timeout': ext.timeout = value(MAX_TIMEOUT); break;
        case 'nomatch':
          if (!info.nets) throw this.err(k, `Unknown argument: \`${k.text}'`);
          ext.nomatch = true;
          break;
        case 'packets': case 'bytes': {
          const v = args[++i];
          if (!v) throw this.err(k, `Syntax error: option \`${k.text}' needs a value`);
          if (!/^\d+$/.test(v.text) || BigInt(v.text) >= 1n << 64n) throw this.err(v, `Syntax error: '${v.text}' is invalid as number`);
          ext[k.text] = BigInt(v.text);
          break;
        }
        case 'comment': {
          const v = args[++i];
          if (!v) throw this.err(k, 'Syntax error: option `comment\' needs a value');
          if (v.text.includes('"')) throw this.err(v, 'Syntax error: " character is not permitted in comments');
          if (v.text.length > MAX_COMMENT_LEN) throw this.err(v, `Syntax error: Comment is longer than the maximum allowed ${MAX_COMMENT_LEN} characters`);
          ext.comment = v.text;
          break;
        }
        case 'skbmark': case 'skbprio': case 'skbqueue':
          throw this.err(k, `element option ${k.text} is not supported by flatwall`);
        default:
          throw this.err(k, `Unknown argument: \`${k.text}'`);
      }
    }
    for (const e of parsed.entries) {
      this.push({ op, name, entry: { ...e, ...ext }, exist }, elTok, source);
    }
  }
}

export interface ParseOptions {
  /** Sets that exist before the text runs (the store's). */
  lookup?: SetLookup;
  /** ipset -exist for every line. */
  exist?: boolean;
}

/** Parses a whole restore text; throws the first RuleError. */
export function parseIpsetText(text: string, file: string, opts: ParseOptions = {}): ParsedSets {
  const p = new Parser(file, opts.lookup ?? (() => undefined), opts.exist ?? false);
  const lines = text.split('\n');
  let n = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].replace(/\r$/, '');
    if (/^\s*(#|$)/.test(raw)) continue;
    p.line(tokenize(raw, file, i + 1), raw.trim());
    n++;
  }
  return { file, commands: p.commands, where: p.where, lines: n, sets: p.local };
}

/**
 * One ipset command given as arguments (`flatwall ctl ipset add S E
 * timeout 5`) as a line of restore text (quoting what the shell unquoted).
 */
export function argsToLine(args: string[]): string {
  return args.map((a) => (/^[^\s"]+$/.test(a) ? a : `"${a}"`)).join(' ');
}
