// Match extensions as modules, the way iptables keeps extensions/libxt_*.c
// and the kernel net/netfilter/xt_*.c: each file here is one match, with its
// option parser, its iptables-save and iptables -L text, and how it compiles
// (conditions the classifier indexes, or ops of the rule's match program,
// native/extensions/). This table is the one list of them; the rule parser
// only dispatches `-m NAME` and `--option` tokens to it.
import type { Family, ExtMatch, Rule, TableName } from '../model';
import type { Cond } from '../pack';
import type { Bytes, OpName, StateName } from './program';
import { addrtype } from './addrtype';
import { connlimit } from './connlimit';
import { hashlimit } from './hashlimit';
import { helper } from './helper';
import { ecn, dscp, tos } from './dsfield';
import { length } from './length';
import { limit } from './limit';
import { mac } from './mac';
import { physdev } from './physdev';
import { pkttype } from './pkttype';
import { recent } from './recent';
import { set } from './set';
import { hl, ttl } from './ttl';
import { ah, dst, esp, frag, hbh, ipv6header, rt } from './ipv6';

/** A token of the rule line (see iptables/parse.ts). */
export interface Tok {
  text: string;
  col: number;
  line?: number;
}

/** What an extension's option parser may ask of the rule parser. */
export interface OptionContext {
  /** The option token being parsed. */
  readonly opt: Tok;
  /** The next token, the option's value; `what` names it in the error. */
  value(what: string): Tok;
  /** The next token if it is not an option (for options with an optional value). */
  peekValue(): Tok | undefined;
  /** Whether "!" preceded the option; refuses it when the option cannot be negated. */
  negated(negatable: boolean): boolean;
  /** Each option once per match. */
  once(key: string): void;
  /** The rule's family so far (4 until the file shows otherwise). */
  family(): Family;
  /** Fix the family, or fail at `tok` if the file already showed the other. */
  setFamily(f: Family, tok: Tok): void;
  fail(tok: Tok | undefined, reason: string): never;
  /** Tell the operator something about the rule set once per file (what it loads, but not as the kernel would). */
  notice(tok: Tok, message: string): void;
}

export interface ValidateContext {
  readonly rule: Rule;
  readonly family: Family;
  /** The table the rule is in. */
  readonly table: TableName;
  /** Tell the operator something about the rule set, once per file (at the `-m` / `-j` token). */
  notice(message: string): void;
  /** The `-m NAME` token (errors about the match as a whole point here). */
  readonly tok: Tok;
  fail(reason: string): never;
}

/** The compiler's view while it compiles one match of one rule. */
export interface CompileContext {
  readonly family: Family;
  /** Narrow the rule's classifier conditions to these alternatives of one field. */
  refine(key: 'iif' | 'oif' | 'proto', alts: [number, number][]): void;
  /** The interface class range of a name or `name+` (as -i/-o). */
  ifaceRange(name: string, wildcard: boolean): [number, number];
  /** Records of this rule need the L4 header (as tcp/udp matches). */
  needsL4(): void;
  /** The rule can never match (drop all its records). */
  never(): void;
  /** Append an op to the rule's match program. */
  op(name: OpName, invert: boolean, payload: Bytes): void;
  /** A state spec for a stateful op (shared by equal specs, or by `key`: first wins). */
  state(kind: StateName, payload: Bytes, key?: string): number;
  /** What identifies this rule across reloads (chain, spec, occurrence): a limit's bucket key. */
  readonly ruleKey: string;
}

export interface MatchExtension<O = unknown> {
  readonly name: string;
  /** The family the match exists in (icmp-like modules), or both. */
  readonly family?: Family;
  create(): O;
  /** Parse one option of this match; false when the option is not this match's. */
  option(o: O, cx: OptionContext): boolean;
  /** After the whole rule is read: required options, protocol requirements, defaults. */
  validate?(o: O, cx: ValidateContext): void;
  /** Once the file's family is final (the end of the file): defaults that depend on it. */
  finish?(o: O, family: Family): void;
  /** The options as iptables-save prints them, each with a leading space. */
  save(o: O, family: Family): string;
  /** The text iptables -L -n prints for it, with a leading space. */
  list(o: O, family: Family): string;
  compile(o: O, cx: CompileContext): void;
  /**
   * Before any rule compiles, in source order (built-in chains, then user
   * chains as declared): declare named state the kernel configures from
   * the first rule that names it (recent and hashlimit tables).
   */
  declare?(o: O, cx: CompileContext): void;
  /** Interface names the match compares (they shape the interface classes, as -i/-o names do). */
  ifaces?(o: O): { name: string; wildcard: boolean }[];
}

const ALL: MatchExtension<any>[] = [
  limit, hashlimit, recent, addrtype, ttl, hl, helper, length, pkttype, tos, dscp, ecn, mac, physdev,
  ipv6header, frag, hbh, dst, rt, ah, esp, set, connlimit,
];

export const EXTENSIONS: ReadonlyMap<string, MatchExtension<any>> = new Map(ALL.map((e) => [e.name, e]));

export function extension(m: ExtMatch): MatchExtension<any> {
  const e = EXTENSIONS.get(m.name);
  if (!e) throw new Error(`unknown match extension ${m.name}`);
  return e;
}
