// RuleSet -> packed first-match tables, one per (family, hook).
//
// How chains become one flat list (see docs/ARCHITECTURE.md, "Semantics"):
//
// * A rule is a conjunction of field conditions. Each field becomes a list of
//   disjoint ranges (a negation is the complement: up to two ranges; a
//   multiport list is several). The rule becomes the cross product: one
//   record per combination, all sharing the rule's id. `--ports` (source OR
//   destination port) and `! --tcp-flags` (some masked bit differs) are
//   disjunctions and add records the same way.
// * `-j CHAIN` emits a COUNT record for the jump rule itself (so its counter
//   moves, as in iptables), then CHAIN's rules inlined with the jump's
//   condition intersected into each of them. A RETURN inside becomes a SKIP
//   record to the first record after the inlined chain; falling off the end
//   needs nothing, the next record is the caller's next rule.
// * `-g CHAIN` inlines the same way, but RETURN (and falling off the end, a
//   SKIP record with the goto's condition) leaves the chain that did the goto:
//   it jumps to wherever that chain's own RETURN would.
// * In a built-in chain, RETURN and the end go to the policy, which is the
//   last record and matches everything.
// * LOG and rules without a target are non-terminal: their records continue
//   at the first record after the rule's own records, so a rule expanded into
//   several records logs and counts a packet once.
//
// Every record keeps its source rule's id; the ids index `CompiledRuleSet.rules`
// (file, line, chain, position). A chain called from k places is inlined k
// times, so the expansion is bounded (maxRecords) with an error naming it.
import { RuleError } from './errors';
import { IfaceClasses } from './iface';
import {
  BUILTIN_CHAINS, CT_ALL, TABLE_BUILTINS, chainKey, type AddrRange, type Chain, type Family, type IfaceMatch, type Neg,
  type Rule, type RuleSet, type Table, type TableName, type Target,
} from './model';
import { V4_MAX, V6_MAX } from './address';
import { REJECT_CODE } from './iptables/names';
import { TableWriter, ACTION, type Cond, type Hook, tableHooks } from './pack';
import { extension, type CompileContext } from './extensions/registry';
import { targetExtension } from './extensions/targets';
import { ExtSection, type Op } from './extensions/program';
import { ruleSpec } from './iptables/print';
import { drain, runSliced } from './steps';

/**
 * Collects one rule's match program while ruleConds compiles its
 * extension matches (src/rules/extensions/).
 */
export class ProgramCollector {
  readonly ops: Op[] = [];
  constructor(
    readonly section: ExtSection,
    private readonly key: () => string,
  ) {}
  get ruleKey(): string {
    return this.key();
  }
}

export interface SourceRule {
  id: number;
  family: Family;
  table: TableName;
  chain: string;
  /** 1-based position in its chain, as `iptables -L --line-numbers`; 0 for a policy. */
  index: number;
  file: string;
  line: number;
  rule?: Rule; // absent for policies
  policy?: 'ACCEPT' | 'DROP';
  /** The SKIP records that end a -g'd chain: not a rule of the operator's, never counted. */
  internal?: boolean;
}

export interface TableInfo {
  family: Family;
  hook: Hook;
  records: number;
}

export interface CompiledRuleSet {
  buffer: ArrayBuffer;
  tables: TableInfo[];
  rules: SourceRule[];
  ifaces: IfaceClasses;
  source: RuleSet;
  stats: CompileStats;
  /**
   * Where each rule of a built-in chain sits in its hook's table: records
   * [spans.start[id], spans.end[id]) are the rule's own and everything it
   * inlines (start == end when it can never match). UNSPANNED for rules of
   * user chains. What single-rule edits anchor to (src/control/edits.ts).
   */
  spans?: { start: Uint32Array; end: Uint32Array };
  /**
   * Rule ids of each chain by position (src/rules/positions.ts), when
   * single-rule edits moved rules since compile (SourceRule.index is the
   * position at compile time).
   */
  positions?: Map<string, number[]>;
  /** How many rule ids `rules` has, set when the model is read later (src/rules/deferred.ts). */
  ruleIds?: number;
  /** What LOG lines say of the rules that log (LOG, NFLOG), by id, while the model is not read (src/control/build-thread.ts). */
  logRules?: Map<number, LogRule>;
}

/** A logging rule as its LOG lines name it. */
export interface LogRule {
  file: string;
  line: number;
  chain: string;
  target: Target | undefined;
  spec: string | undefined;
}

/** What LOG lines say of a source rule. */
export function logRuleOf(sr: SourceRule): LogRule {
  return { file: sr.file, line: sr.line, chain: sr.chain, target: sr.rule?.target, spec: sr.rule ? ruleSpec(sr.rule, sr.family) : undefined };
}

/** Rule ids of a compiled set (policies and internal records included), without reading a deferred model. */
export function ruleIdCount(c: CompiledRuleSet): number {
  return c.ruleIds ?? c.rules.length;
}

export const UNSPANNED = 0xffffffff;

export interface CompileStats {
  families: Family[];
  chains: number;
  userChains: number;
  sourceRules: number;
  records: number;
  rulesPerHook: Record<string, number>; // "ipv4/FORWARD" -> source rules reachable from it
  features: Record<string, number>; // match feature -> rules using it
}

export interface CompileOptions {
  /** Upper bound on records per table (inlining and negation expansion). */
  maxRecords?: number;
  /** Built-in chain rules inlined so far, of all of them (every COMPILE_STEP_RULES and per chain). */
  onProgress?: (done: number, total: number) => void;
}

export const DEFAULT_MAX_RECORDS = 1 << 23;

type Ranges = [number, number][];
type AddrRanges = [number | bigint, number | bigint][];

function complement(lo: number, hi: number, max: number): Ranges {
  const out: Ranges = [];
  if (lo > 0) out.push([0, lo - 1]);
  if (hi < max) out.push([hi + 1, max]);
  return out;
}

/** Sorted, merged complement of a union of ranges. */
function complementUnion(list: Ranges, max: number): Ranges {
  const sorted = [...list].sort((a, b) => a[0] - b[0]);
  const out: Ranges = [];
  let next = 0;
  for (const [lo, hi] of sorted) {
    if (lo > next) out.push([next, lo - 1]);
    next = Math.max(next, hi + 1);
  }
  if (next <= max) out.push([next, max]);
  return out;
}

function addrRanges(a: Neg<AddrRange>, family: Family): AddrRanges {
  if (!a.not) return [[a.v.lo, a.v.hi]];
  if (family === 4) return complement(a.v.lo as number, a.v.hi as number, V4_MAX);
  const lo = a.v.lo as bigint;
  const hi = a.v.hi as bigint;
  const out: AddrRanges = [];
  if (lo > 0n) out.push([0n, lo - 1n]);
  if (hi < V6_MAX) out.push([hi + 1n, V6_MAX]);
  return out;
}

export function fullCond(family: Family, ifaceMax: number): Cond {
  return {
    srcLo: family === 4 ? 0 : 0n, srcHi: family === 4 ? V4_MAX : V6_MAX,
    dstLo: family === 4 ? 0 : 0n, dstHi: family === 4 ? V4_MAX : V6_MAX,
    sportLo: 0, sportHi: 65535, dportLo: 0, dportHi: 65535,
    protoLo: 0, protoHi: 255, iifLo: 0, iifHi: ifaceMax, oifLo: 0, oifHi: ifaceMax,
    icmpLo: 0, icmpHi: 0xffff, tcpMask: 0, tcpValue: 0, ct: CT_ALL, needsL4: false,
  };
}

const maxOf = (a: number | bigint, b: number | bigint) => (a > b ? a : b);
const minOf = (a: number | bigint, b: number | bigint) => (a < b ? a : b);

/** a AND b, or undefined when nothing can match both. */
export function intersect(a: Cond, b: Cond): Cond | undefined {
  // Two positive tcp-flags tests must agree on the bits both look at.
  const both = a.tcpMask & b.tcpMask;
  if ((a.tcpValue & both) !== (b.tcpValue & both)) return undefined;
  const c: Cond = {
    srcLo: maxOf(a.srcLo, b.srcLo), srcHi: minOf(a.srcHi, b.srcHi),
    dstLo: maxOf(a.dstLo, b.dstLo), dstHi: minOf(a.dstHi, b.dstHi),
    sportLo: Math.max(a.sportLo, b.sportLo), sportHi: Math.min(a.sportHi, b.sportHi),
    dportLo: Math.max(a.dportLo, b.dportLo), dportHi: Math.min(a.dportHi, b.dportHi),
    protoLo: Math.max(a.protoLo, b.protoLo), protoHi: Math.min(a.protoHi, b.protoHi),
    iifLo: Math.max(a.iifLo, b.iifLo), iifHi: Math.min(a.iifHi, b.iifHi),
    oifLo: Math.max(a.oifLo, b.oifLo), oifHi: Math.min(a.oifHi, b.oifHi),
    icmpLo: Math.max(a.icmpLo, b.icmpLo), icmpHi: Math.min(a.icmpHi, b.icmpHi),
    tcpMask: a.tcpMask | b.tcpMask, tcpValue: a.tcpValue | b.tcpValue,
    ct: a.ct & b.ct, needsL4: a.needsL4 || b.needsL4,
  };
  if (a.l4BeforeCt || b.l4BeforeCt) c.l4BeforeCt = true;
  if (a.l4BeforeAddr || b.l4BeforeAddr) c.l4BeforeAddr = true;
  if (c.srcLo > c.srcHi || c.dstLo > c.dstHi || c.sportLo > c.sportHi || c.dportLo > c.dportHi ||
      c.protoLo > c.protoHi || c.iifLo > c.iifHi || c.oifLo > c.oifHi || c.icmpLo > c.icmpHi || c.ct === 0) {
    return undefined;
  }
  return c;
}

type RangeKey = 'src' | 'dst' | 'sport' | 'dport' | 'proto' | 'iif' | 'oif' | 'icmp';

/** Narrow one field of `c` in place to [lo, hi]; false when that empties it. */
const KEYS: Record<RangeKey, [keyof Cond, keyof Cond]> = {
  src: ['srcLo', 'srcHi'], dst: ['dstLo', 'dstHi'], sport: ['sportLo', 'sportHi'], dport: ['dportLo', 'dportHi'],
  proto: ['protoLo', 'protoHi'], iif: ['iifLo', 'iifHi'], oif: ['oifLo', 'oifHi'], icmp: ['icmpLo', 'icmpHi'],
};

function narrow(c: Cond, key: RangeKey, lo: number | bigint, hi: number | bigint): boolean {
  const [kl, kh] = KEYS[key];
  const nl = maxOf(c[kl] as number | bigint, lo);
  const nh = minOf(c[kh] as number | bigint, hi);
  if (nl > nh) return false;
  (c as unknown as Record<string, number | bigint>)[kl] = nl;
  (c as unknown as Record<string, number | bigint>)[kh] = nh;
  return true;
}

/** Narrow every cond by one range, in place (the common, allocation-free case). */
function narrowAll(conds: Cond[], key: RangeKey, lo: number | bigint, hi: number | bigint): Cond[] {
  if (conds.length === 1) return narrow(conds[0], key, lo, hi) ? conds : [];
  return conds.filter((c) => narrow(c, key, lo, hi));
}

/**
 * Narrow every cond by one field's alternatives (a disjunction): in place
 * for the common single alternative, one copy per alternative otherwise.
 */
function refine(conds: Cond[], key: RangeKey, alts: [number | bigint, number | bigint][]): Cond[] {
  if (alts.length === 1) return narrowAll(conds, key, alts[0][0], alts[0][1]);
  const out: Cond[] = [];
  if (alts.length === 1) {
    for (const c of conds) if (narrow(c, key, alts[0][0], alts[0][1])) out.push(c);
    return out;
  }
  for (const c of conds) {
    for (const [lo, hi] of alts) {
      const d = { ...c };
      if (narrow(d, key, lo, hi)) out.push(d);
    }
  }
  return out;
}

function portRanges(p: Neg<{ lo: number; hi: number }>): Ranges {
  return p.not ? complement(p.v.lo, p.v.hi, 65535) : [[p.v.lo, p.v.hi]];
}

/** The rule's own condition as a disjunction of single-range conds. */
export function ruleConds(r: Rule, family: Family, ifaces: IfaceClasses, program?: ProgramCollector): Cond[] {
  let conds: Cond[] = [fullCond(family, ifaces.count - 1)];
  // What an extension (src/rules/extensions/) compiles against.
  const extCx = (name: string): CompileContext => ({
    family,
    refine: (key, alts) => { conds = refine(conds, key, alts); },
    ifaceRange: (n, wildcard) => ifaces.range({ name: n, wildcard }),
    needsL4: () => { for (const c of conds) c.needsL4 = true; },
    never: () => { conds = []; },
    op: (op, invert, payload) => {
      if (!program) throw new Error(`${name} needs a match program here`);
      program.ops.push({ name: op, invert, payload });
    },
    state: (kind, payload, key) => {
      if (!program) throw new Error(`${name} needs a match program here`);
      return program.section.state(kind, payload, key);
    },
    get ruleKey() {
      return program ? program.ruleKey : '';
    },
  });
  if (r.src) conds = r.src.not ? refine(conds, 'src', addrRanges(r.src, family)) : narrowAll(conds, 'src', r.src.v.lo, r.src.v.hi);
  if (r.dst) conds = r.dst.not ? refine(conds, 'dst', addrRanges(r.dst, family)) : narrowAll(conds, 'dst', r.dst.v.lo, r.dst.v.hi);
  if (r.proto) conds = r.proto.not ? refine(conds, 'proto', complement(r.proto.v, r.proto.v, 255)) : narrowAll(conds, 'proto', r.proto.v, r.proto.v);
  const iface = (m: Neg<IfaceMatch>): Ranges => {
    const [lo, hi] = ifaces.range(m.v);
    return m.not ? complement(lo, hi, ifaces.count - 1) : [[lo, hi]];
  };
  if (r.inIface) conds = refine(conds, 'iif', iface(r.inIface));
  if (r.outIface) conds = refine(conds, 'oif', iface(r.outIface));
  // The kernel runs the matches in order: after an L4 match, a truncated
  // header has been hot-dropped before later matches are tested (hotdrop.h).
  let l4 = false;
  for (const m of r.matches) {
    if (conds.length === 0) break;
    switch (m.module) {
      case 'tcp': case 'udp': case 'sctp':
        l4 = true;
        for (const c of conds) c.needsL4 = true;
        if (m.sport) conds = m.sport.not ? refine(conds, 'sport', portRanges(m.sport)) : narrowAll(conds, 'sport', m.sport.v.lo, m.sport.v.hi);
        if (m.dport) conds = m.dport.not ? refine(conds, 'dport', portRanges(m.dport)) : narrowAll(conds, 'dport', m.dport.v.lo, m.dport.v.hi);
        if (m.module === 'tcp' && m.flags) {
          const { mask, comp } = m.flags.v;
          // Positive: one mask/value test. Negated: some masked bit differs,
          // one alternative per bit, each a positive one-bit test.
          // The kernel compares (flags & mask) == comp, so comp bits outside
          // the mask make the test always false (or, negated, always true).
          if (comp & ~mask) {
            if (!m.flags.not) conds = [];
            break;
          }
          const alts: [number, number][] = m.flags.not
            ? [0x01, 0x02, 0x04, 0x08, 0x10, 0x20].filter((b) => mask & b).map((b) => [b, ~comp & b])
            : [[mask, comp]];
          const next: Cond[] = [];
          for (const c of conds) {
            for (const [mk, val] of alts) {
              const both = c.tcpMask & mk;
              if ((c.tcpValue & both) !== (val & both)) continue;
              next.push({ ...c, tcpMask: c.tcpMask | mk, tcpValue: c.tcpValue | val });
            }
          }
          conds = next;
        }
        break;
      case 'icmp': case 'icmp6': {
        l4 = true;
        for (const c of conds) c.needsL4 = true;
        const t = m.type!;
        if (t.v.any) {
          if (t.not) conds = [];
          break;
        }
        const lo = (t.v.type << 8) | t.v.codeLo;
        const hi = (t.v.type << 8) | t.v.codeHi;
        conds = refine(conds, 'icmp', t.not ? complement(lo, hi, 0xffff) : [[lo, hi]]);
        break;
      }
      case 'multiport': {
        l4 = true;
        for (const c of conds) c.needsL4 = true;
        const list: Ranges = m.ports!.v.map((p) => [p.lo, p.hi]);
        const inSet = m.ports!.not ? complementUnion(list, 65535) : list;
        if (m.which === 'sports') conds = refine(conds, 'sport', inSet);
        else if (m.which === 'dports') conds = refine(conds, 'dport', inSet);
        else if (m.ports!.not) conds = refine(refine(conds, 'sport', inSet), 'dport', inSet);
        else conds = [...refine(conds.map((c) => ({ ...c })), 'sport', inSet), ...refine(conds, 'dport', inSet)];
        break;
      }
      case 'iprange':
        if (m.src) conds = refine(conds, 'src', addrRanges(m.src, family));
        if (m.dst) conds = refine(conds, 'dst', addrRanges(m.dst, family));
        if (l4) for (const c of conds) c.l4BeforeAddr = true;
        break;
      case 'conntrack': case 'state': {
        const s = m.module === 'state' ? m.state : m.ctstate;
        if (!s) break;
        // SNAT/DNAT bits never occur here (no NAT), so they drop out.
        const mask = (s.not ? ~s.v : s.v) & CT_ALL;
        conds = conds.filter((c) => (c.ct &= mask) !== 0);
        if (l4) for (const c of conds) c.l4BeforeCt = true;
        break;
      }
      case 'comment':
        break;
      case 'ext':
        extension(m).compile(m.o, extCx(m.name));
        break;
    }
  }
  // A target that changes the packet acts last, when everything matched.
  if (r.target.kind === 'ext') targetExtension(r.target.name).compile?.(r.target.o, extCx(r.target.name));
  return conds;
}

/** The context an extension declares its named state in (compile's pre-pass). */
function declareContext(family: Family, section: ExtSection): CompileContext {
  const no = () => {
    throw new Error('declare() may only declare state');
  };
  return {
    family, refine: no, ifaceRange: no, needsL4: no, never: no, op: no,
    state: (kind, payload, key) => section.state(kind, payload, key),
    ruleKey: '',
  };
}

/** Whether a rule has matches or a target that compile to a match program (not only to conditions). */
export function hasExtensionMatches(r: Rule): boolean {
  return r.target.kind === 'ext' || r.matches.some((m) => m.module === 'ext');
}

/** The interfaces every table of the rule set names (for the class map). */
function* ifaceMatches(rs: RuleSet): Generator<IfaceMatch> {
  for (const t of rs.tables) {
    for (const c of t.chains.values()) {
      for (const r of c.rules) {
        if (r.inIface) yield r.inIface.v;
        if (r.outIface) yield r.outIface.v;
        for (const m of r.matches) if (m.module === 'ext') yield* extension(m).ifaces?.(m.o) ?? [];
      }
    }
  }
}

class ChainInliner {
  private readonly stack: string[] = [];
  /** Source rules this hook can reach, each counted once however often it is inlined. */
  reachable = 0;

  constructor(
    private readonly table: Table,
    private readonly hook: string, // the built-in chain it starts from
    private readonly w: TableWriter,
    private readonly ifaces: IfaceClasses,
    private readonly maxRecords: number,
    private readonly internalId: number,
    private readonly seen: Uint8Array,
    private readonly spans: { start: Uint32Array; end: Uint32Array },
    private readonly section: ExtSection,
    private readonly ruleKey: (r: Rule, chain: string, family: Family) => string,
    private readonly programs: Map<number, number>,
  ) {}

  /** Inlines the built-in chain, yielding every COMPILE_STEP_RULES of its rules (see compileSteps). */
  *run(policyId: number, policy: 'ACCEPT' | 'DROP'): Generator<number, void> {
    const root = this.table.chains.get(this.hook)!;
    const returns: number[] = [];
    // The built-in chain's own rules, each with its span (what edits anchor
    // to); chains they jump to are inlined in one go.
    this.stack.push(root.name);
    let n = 0;
    for (const r of root.rules) {
      this.spans.start[r.id!] = this.spans.end[r.id!] = this.w.count;
      this.rule(r, undefined, returns, root.name);
      this.spans.end[r.id!] = this.w.count;
      if (++n % COMPILE_STEP_RULES === 0) yield n;
    }
    this.stack.pop();
    const policyIndex = this.w.count;
    for (const i of returns) {
      this.w.setArg(i, policyIndex);
      this.w.markReturnsToPolicy(i);
    }
    this.w.push(fullCond(this.table.family, this.ifaces.count - 1), ACTION[policy], 0, policyId);
  }

  /** Appends one record per cond; they are contiguous, so returns the first index. */
  private emit(conds: Cond[], action: number, arg: number, rule: Rule, internal = false): number {
    const id = internal ? this.internalId : rule.id!;
    const first = this.w.count;
    if (this.w.count + conds.length > this.maxRecords) {
      throw new RuleError(rule.pos,
        `rule expansion exceeds ${this.maxRecords} records in the IPv${this.table.family} ${chainKey(this.table.name, this.hook)} table ` +
        `(chains inlined at many call sites, or many negations; raise --max-records if intended)`);
    }
    for (const c of conds) this.w.push(c, action, arg, id);
    return first;
  }

  /** Records [first, end of table) continue at the current end: the next record to come. */
  private continueHere(first: number): void {
    for (let i = first; i < this.w.count; i++) this.w.setArg(i, this.w.count);
  }

  private pushRange(list: number[], first: number): void {
    for (let i = first; i < this.w.count; i++) list.push(i);
  }

  /** Inline user chain `chain` under context `ctx`. RETURN records go to `returns`. */
  private chain(chain: Chain, ctx: Cond[], returns: number[]): void {
    this.stack.push(chain.name);
    for (const r of chain.rules) this.rule(r, ctx, returns, chain.name);
    this.stack.pop();
  }

  private rule(r: Rule, ctx: Cond[] | undefined, returns: number[], chain: string): void {
    const family = this.table.family;
    // A rule with extension matches also gets a match program: its records
    // are flagged, and each has an entry whose `fail` is the first record
    // after everything the rule expands to (native/extensions/ext_table.h).
    let collector: ProgramCollector | undefined;
    if (hasExtensionMatches(r)) collector = new ProgramCollector(this.section, () => this.ruleKey(r, chainKey(this.table.name, chain), family));
    let conds = ruleConds(r, family, this.ifaces, collector);
    let prog: number | undefined;
    if (collector && collector.ops.length && conds.length) {
      prog = this.programs.get(r.id!);
      if (prog === undefined) {
        prog = this.section.program(collector.ops);
        this.programs.set(r.id!, prog);
      }
    }
    const first = this.w.count;
    if (ctx) {
      const both: Cond[] = [];
      for (const a of ctx) {
        for (const b of conds) {
          const c = intersect(a, b);
          if (c) both.push(c);
        }
      }
      conds = both;
    }
    if (conds.length === 0) return; // can never match here
    const own = conds.length;
    this.emitRule(r, conds, returns);
    if (prog !== undefined) {
      const table = this.w.currentTable;
      for (let i = first; i < first + own; i++) {
        this.w.markExt(i);
        this.section.entry(table, i, this.w.count, prog);
      }
    }
  }

  private emitRule(r: Rule, conds: Cond[], returns: number[]): void {
    if (this.seen[r.id!] === 0) {
      this.seen[r.id!] = 1;
      this.reachable++;
    }
    const t = r.target;
    switch (t.kind) {
      case 'ACCEPT': case 'DROP':
        this.emit(conds, ACTION[t.kind], 0, r);
        break;
      case 'REJECT':
        this.emit(conds, ACTION.REJECT, REJECT_CODE[t.with], r);
        break;
      case 'LOG': case 'none':
        this.continueHere(this.emit(conds, t.kind === 'LOG' ? ACTION.LOG : ACTION.COUNT, 0, r));
        break;
      case 'ext':
        this.continueHere(this.emit(conds, ACTION[targetExtension(t.name).action], 0, r));
        break;
      case 'RETURN':
        this.pushRange(returns, this.emit(conds, ACTION.SKIP, 0, r));
        break;
      case 'jump': case 'goto': {
        const target = this.table.chains.get(t.chain)!;
        if (this.stack.includes(t.chain)) {
          throw new RuleError(r.targetPos ?? r.pos,
            `chain loop: ${[...this.stack, t.chain].join(' -> ')}`, t.chain);
        }
        this.continueHere(this.emit(conds, ACTION.COUNT, 0, r));
        if (t.kind === 'jump') {
          const inner: number[] = [];
          this.chain(target, conds, inner);
          for (const i of inner) this.w.setArg(i, this.w.count);
        } else {
          this.chain(target, conds, returns);
          // Falling off the end of a -g'd chain returns from this chain.
          this.pushRange(returns, this.emit(conds, ACTION.SKIP, 0, r, true));
        }
        break;
      }
    }
  }
}

const MODULE_FEATURE: Record<string, string> = Object.fromEntries(
  ['tcp', 'udp', 'sctp', 'icmp', 'icmp6', 'multiport', 'iprange', 'conntrack', 'state', 'comment'].map((m) => [m, `-m ${m}`]));
const TARGET_FEATURE: Record<string, string> = {
  ACCEPT: '-j ACCEPT', DROP: '-j DROP', REJECT: '-j REJECT', RETURN: '-j RETURN', LOG: '-j LOG',
  jump: '-j CHAIN', goto: '-g CHAIN', none: 'no target',
};
const targetFeature = (t: Rule['target']) => (t.kind === 'ext' ? `-j ${t.name}` : TARGET_FEATURE[t.kind]);

/**
 * Source rule ids: one per rule and one per built-in policy, in table and
 * chain (Map) order, then one internal id for the SKIP records of -g chains.
 * The packed tables carry these ids, so anything that re-reads a rule set
 * (a snapshot) numbers it with this same function.
 */
export function numberRules(rs: RuleSet, families: Family[]) {
  return drain(numberRulesSteps(rs, families));
}

export function* numberRulesSteps(rs: RuleSet, families: Family[]) {
  const rules: SourceRule[] = [];
  const policyIds = new Map<string, number>();
  let totalRules = 0;
  const features: Record<string, number> = {};
  const feature = (k: string) => (features[k] = (features[k] ?? 0) + 1);
  for (const t of rs.tables) {
    for (const c of t.chains.values()) {
      if (c.builtin) {
        policyIds.set(`${t.family}/${chainKey(t.name, c.name)}`, rules.length);
        rules.push({ id: rules.length, family: t.family, table: t.name, chain: c.name, index: 0, file: t.file, line: c.pos.line, policy: c.policy });
      }
      for (let i = 0; i < c.rules.length; i++) {
        const r = c.rules[i];
        if (i % (COMPILE_STEP_RULES * 4) === COMPILE_STEP_RULES * 4 - 1) yield i;
        r.id = rules.length;
        rules.push({ id: rules.length, family: t.family, table: t.name, chain: c.name, index: i + 1, file: r.pos.file, line: r.pos.line, rule: r });
        totalRules++;
        if (r.src || r.dst) feature('address');
        if (r.src?.not || r.dst?.not || r.proto?.not || r.inIface?.not || r.outIface?.not) feature('negation');
        if (r.inIface || r.outIface) feature('interface');
        if (r.proto) feature('protocol');
        for (const m of r.matches) feature(m.module === 'ext' ? `-m ${m.name}` : MODULE_FEATURE[m.module]);
        feature(targetFeature(r.target));
      }
    }
  }
  const internalId = rules.length;
  rules.push({ id: internalId, family: families[0] ?? 4, table: 'filter', chain: '', index: -1, file: '', line: 0, internal: true });
  return { rules, policyIds, totalRules, features, internalId };
}

/** Compile a parsed rule set into the packed tables the classifier builds from. */
export function compile(rs: RuleSet, opts: CompileOptions = {}): CompiledRuleSet {
  return drain(compileSteps(rs, opts));
}

/** compile on the event loop, in slices (src/rules/steps.ts). */
export function compileAsync(rs: RuleSet, opts: CompileOptions = {}, sliceMs = 10): Promise<CompiledRuleSet> {
  return runSliced(compileSteps(rs, opts), sliceMs);
}

/** Built-in chain rules between the points where compileSteps yields. */
export const COMPILE_STEP_RULES = 4096;

/**
 * compile as steps (see parseIptablesSteps): yields every COMPILE_STEP_RULES
 * rules of a built-in chain, and while numbering rules. A user chain is
 * inlined between two yields, however long it is.
 */
export function* compileSteps(rs: RuleSet, opts: CompileOptions = {}): Generator<number, CompiledRuleSet> {
  const maxRecords = opts.maxRecords ?? DEFAULT_MAX_RECORDS;
  const ifaces = new IfaceClasses(ifaceMatches(rs));
  const families = [...new Set(rs.tables.map((t) => t.family))].sort();
  for (const t of rs.tables) {
    const same = rs.tables.filter((x) => x.family === t.family && x.name === t.name);
    if (same.length > 1) {
      throw new RuleError({ file: same[1].file, line: 1, col: 1 }, `more than one IPv${t.family} ${t.name} table in the rule set`);
    }
  }

  const { rules, policyIds, totalRules, features, internalId } = yield* numberRulesSteps(rs, families);
  const seen = new Uint8Array(internalId);
  const spans = { start: new Uint32Array(rules.length).fill(UNSPANNED), end: new Uint32Array(rules.length).fill(UNSPANNED) };

  const w = new TableWriter(rs.tables.reduce((n, t) => n + tableHooks(t.name).length, 0), Math.max(1024, totalRules + 16));
  // Match programs, shared by every table; a rule inlined into several
  // places keeps one program (and its states) however often it is inlined.
  const section = new ExtSection();
  const programs = new Map<number, number>();
  // Named tables (recent, hashlimit) take the configuration of the first
  // rule that names them, in the order iptables-restore creates rules.
  for (const t of rs.tables) {
    for (const c of t.chains.values()) {
      for (const r of c.rules) {
        for (const m of r.matches) {
          if (m.module !== 'ext') continue;
          const e = extension(m);
          if (e.declare) e.declare(m.o, declareContext(t.family, section));
        }
      }
    }
  }
  // What keeps a stateful rule's state (a limit bucket) across reloads: its
  // family, chain and canonical text, and which occurrence of that text it is.
  const keys = new Map<number, string>();
  const seenKeys = new Map<string, number>();
  const ruleKey = (r: Rule, chain: string, fam: Family): string => {
    let k = keys.get(r.id!);
    if (k === undefined) {
      const base = `${fam}/${chain}/${ruleSpec(r, fam)}`;
      const n = (seenKeys.get(base) ?? 0) + 1;
      seenKeys.set(base, n);
      k = `${base}#${n}`;
      keys.set(r.id!, k);
    }
    return k;
  };
  const tables: TableInfo[] = [];
  const rulesPerHook: Record<string, number> = {};
  // Progress: the built-in chains' own rules inlined so far, of all of them.
  let total = 0;
  for (const t of rs.tables) for (const name of TABLE_BUILTINS[t.name]) total += t.chains.get(name)?.rules.length ?? 0;
  let done = 0;
  for (const t of rs.tables) {
    for (const name of TABLE_BUILTINS[t.name]) {
      const hook = chainKey(t.name, name) as Hook;
      w.beginTable(t.family, hook);
      const chain = t.chains.get(name)!;
      seen.fill(0);
      const inl = new ChainInliner(t, name, w, ifaces, maxRecords, internalId, seen, spans, section, ruleKey, programs);
      const run = inl.run(policyIds.get(`${t.family}/${hook}`)!, chain.policy ?? 'ACCEPT');
      for (let step = run.next(); !step.done; step = run.next()) {
        opts.onProgress?.(done + step.value, total);
        yield step.value;
      }
      const n = w.endTable();
      tables.push({ family: t.family, hook, records: n });
      rulesPerHook[`ipv${t.family}/${hook}`] = inl.reachable;
      done += chain.rules.length;
      opts.onProgress?.(done, total);
    }
  }
  const userChains = rs.tables.reduce((n, t) => n + [...t.chains.values()].filter((c) => !c.builtin).length, 0);
  return {
    buffer: w.finish(section.empty ? undefined : section.finish()),
    tables,
    rules,
    ifaces,
    source: rs,
    spans,
    stats: {
      families,
      chains: rs.tables.reduce((n, t) => n + t.chains.size, 0),
      userChains,
      sourceRules: totalRules,
      records: tables.reduce((n, t) => n + t.records, 0),
      rulesPerHook,
      features,
    },
  };
}

export { BUILTIN_CHAINS };
