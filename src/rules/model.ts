// The parsed rule set: what the operator wrote, chain by chain, before any
// inlining. Both front ends (iptables-save text, the native JSON/YAML format)
// produce this, and the printers and the compiler consume it.
import type { Position } from './errors';

export type Family = 4 | 6;
export const BUILTIN_CHAINS = ['INPUT', 'FORWARD', 'OUTPUT'] as const;
export type BuiltinChain = (typeof BUILTIN_CHAINS)[number];
export type Policy = 'ACCEPT' | 'DROP';
export type TableName = 'filter' | 'raw';
/**
 * Each table's built-in chains. The raw table is walked before conntrack
 * (netfilter's NF_IP_PRI_RAW): PREROUTING for frames that arrive, OUTPUT for
 * a host's own; its NOTRACK / CT --notrack rules leave a packet UNTRACKED.
 */
export const TABLE_BUILTINS: Record<TableName, readonly string[]> = { filter: BUILTIN_CHAINS, raw: ['PREROUTING', 'OUTPUT'] };
/** A chain's name across tables: NAME in filter, "raw/NAME" in raw (what hook names, counters and listings key on). */
export const chainKey = (table: TableName, chain: string): string => (table === 'filter' ? chain : `${table}/${chain}`);
/** The table of a chain key (chainKey's inverse half), e.g. of a packed table's hook. */
export const tableOfKey = (key: string): TableName => (key.startsWith('raw/') ? 'raw' : 'filter');

/** A value with optional `!` in front. */
export interface Neg<T> {
  not: boolean;
  v: T;
}

/**
 * An address condition as an inclusive range of numbers. IPv4 addresses are
 * plain numbers; IPv6 addresses are bigints. `prefix` is set when the text was
 * a CIDR or a contiguous mask (it decides how the address is printed).
 */
export interface AddrRange {
  lo: number | bigint;
  hi: number | bigint;
  prefix?: number;
}

export interface PortRange {
  lo: number;
  hi: number;
}

export interface IfaceMatch {
  name: string; // without the trailing '+'
  wildcard: boolean; // written as "name+"
}

export interface TcpFlags {
  mask: number;
  comp: number;
}

export interface IcmpType {
  any: boolean; // --icmp-type any
  type: number;
  codeLo: number;
  codeHi: number;
}

export type Match =
  | { module: 'tcp'; sport?: Neg<PortRange>; dport?: Neg<PortRange>; flags?: Neg<TcpFlags> }
  | { module: 'udp'; sport?: Neg<PortRange>; dport?: Neg<PortRange> }
  | { module: 'sctp'; sport?: Neg<PortRange>; dport?: Neg<PortRange> }
  | { module: 'icmp'; type?: Neg<IcmpType> }
  | { module: 'icmp6'; type?: Neg<IcmpType> }
  | { module: 'multiport'; which?: 'sports' | 'dports' | 'ports'; ports?: Neg<PortRange[]> }
  | { module: 'iprange'; src?: Neg<AddrRange>; dst?: Neg<AddrRange> }
  | { module: 'conntrack'; ctstate?: Neg<number> }
  | { module: 'state'; state?: Neg<number> }
  | { module: 'comment'; comment?: string }
  | ExtMatch;

/**
 * A match implemented as a module of src/rules/extensions/ (limit, recent,
 * addrtype, ...): `o` is that module's own parsed options.
 */
export interface ExtMatch {
  module: 'ext';
  name: string;
  o: unknown;
}

export type MatchModule = Match['module'];

export type Target =
  | { kind: 'ACCEPT' }
  | { kind: 'DROP' }
  | { kind: 'REJECT'; with: string }
  | { kind: 'RETURN' }
  | { kind: 'LOG'; prefix?: string; level?: number; flags?: number }
  | { kind: 'ext'; name: string; o: unknown } // src/rules/extensions/targets.ts (NFLOG, TCPMSS)
  | { kind: 'jump'; chain: string }
  | { kind: 'goto'; chain: string }
  | { kind: 'none' };

export interface Rule {
  pos: Position; // where the rule starts (the -A/-I token)
  src?: Neg<AddrRange>;
  dst?: Neg<AddrRange>;
  inIface?: Neg<IfaceMatch>;
  outIface?: Neg<IfaceMatch>;
  proto?: Neg<number>; // absent = all
  matches: Match[];
  target: Target;
  targetPos?: Position;
  counters?: [bigint, bigint];
  /** Index into CompiledRuleSet.rules, set by the compiler. */
  id?: number;
}

export interface Chain {
  name: string;
  builtin: boolean;
  policy?: Policy; // builtin chains only
  counters?: [bigint, bigint];
  pos: Position;
  rules: Rule[];
}

/** One `*filter ... COMMIT` or `*raw ... COMMIT` block of one family. */
export interface Table {
  name: TableName;
  family: Family;
  file: string;
  chains: Map<string, Chain>;
}

export interface RuleSet {
  tables: Table[];
  /** Tables other than filter and raw that --skip-tables left out: which, where, and how many rules. */
  skipped?: SkippedTable[];
}

export interface SkippedTable {
  file: string;
  table: string;
  line: number;
  rules: number;
}

// Conntrack state bits. The first five are native/classifier/rule_table.h
// CtState, what a packet can carry. SNAT and DNAT are kept for printing only:
// flatwall does no NAT, so no packet is ever in those states.
export const CT = { INVALID: 1, NEW: 2, ESTABLISHED: 4, RELATED: 8, UNTRACKED: 16, SNAT: 32, DNAT: 64 } as const;
export const CT_ALL = 0x1f;
// iptables prints states in this order.
export const CT_PRINT_ORDER: (keyof typeof CT)[] = ['INVALID', 'NEW', 'RELATED', 'ESTABLISHED', 'UNTRACKED', 'SNAT', 'DNAT'];
