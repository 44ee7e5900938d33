// Per-rule counters that outlive a rule set generation.
//
// The dataplane counts per rule id into arrays that belong to one generation
// (a swap starts new ones). Operators expect `iptables -L -v` behaviour: a
// rule that did not change keeps its counters when the rule set is replaced.
// So the control plane keeps a signed base per rule id, and a rule's counter
// is base + the dataplane's live count for the current generation.
//
// Identity of a rule across generations (documented in docs/API.md,
// "Counters across reloads"): family, chain, the parsed rule (what its
// canonical iptables-save spec says, so `--dport 22` and
// `--destination-port 22` are the same rule) and occurrence index (the k-th rule with that spec in that
// chain). Moving a rule within its chain keeps its counters; changing any
// option makes it a new rule that starts at zero. A built-in chain's policy
// is keyed by family and chain alone, so it keeps its counters when the
// policy changes (as `iptables -P` does).
//
// At a swap, the dataplane hands back the final counters of the replaced
// generation, read after every worker left it, so nothing counted during the
// swap is lost: new base = old base + old generation's final count.
//
// Seeding (`iptables-restore -c`): with `restore`, the [packets:bytes] of
// the rule file set the counters of the rules that carry them (chain lines
// seed the policies), replacing what was carried over.
import type { CompiledRuleSet, SourceRule } from '../rules/compile';
import { drain } from '../rules/steps';
import { chainKey, type TableName, type Match, type Neg, type PortRange, type Rule, type Target } from '../rules/model';

export interface LiveCounters {
  packets: BigUint64Array;
  bytes: BigUint64Array;
}

// Identity strings are built from char codes, not decimal text: number to
// decimal conversion of 32-bit addresses dominated the cost at a million
// rules. Every field is self-delimiting (a marker, then fixed-width codes or
// a length-prefixed string), so two different rules never give the same key.
const C = String.fromCharCode;
const neg = (n: { not: boolean } | undefined) => (n === undefined ? '-' : n.not ? '!' : '=');
const str = (t: string) => C(t.length) + t;
const val = (v: number | bigint) => (typeof v === 'bigint' ? str(v.toString(36)) : C(v >>> 16, v & 0xffff));
const addr = (a: Rule['src']) => (a ? neg(a) + val(a.v.lo) + val(a.v.hi) : '-');
const port = (p: Neg<PortRange> | undefined) => (!p || (!p.not && p.v.lo === 0 && p.v.hi === 65535) ? '-' : neg(p) + C(p.v.lo, p.v.hi));
const MODULES = ['tcp', 'udp', 'sctp', 'icmp', 'icmp6', 'multiport', 'iprange', 'conntrack', 'state', 'comment'];

function matchKey(m: Match): string {
  const k = C(MODULES.indexOf(m.module));
  switch (m.module) {
    case 'ext':
      // An extension's identity is its parsed options, whole.
      return k + str(m.name) + str(JSON.stringify(m.o, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)));
    case 'tcp': case 'udp': case 'sctp':
      return k + port(m.sport) + port(m.dport) + (m.module === 'tcp' && m.flags && (m.flags.v.mask !== 0 || m.flags.not) ? neg(m.flags) + C(m.flags.v.mask, m.flags.v.comp) : '-');
    case 'icmp': case 'icmp6': {
      const t = m.type!;
      return k + neg(t) + (t.v.any ? 'a' : C(t.v.type, t.v.codeLo, t.v.codeHi));
    }
    case 'multiport':
      return k + str(m.which ?? '') + neg(m.ports) + str(m.ports!.v.map((p) => C(p.lo, p.hi)).join(''));
    case 'iprange':
      return k + addr(m.src) + addr(m.dst);
    case 'conntrack':
      return k + (m.ctstate ? neg(m.ctstate) + C(m.ctstate.v) : '-');
    case 'state':
      return k + neg(m.state) + C(m.state!.v);
    case 'comment':
      return k + str(m.comment ?? '');
  }
}

function targetKey(t: Target): string {
  switch (t.kind) {
    case 'REJECT': return `R${str(t.with)}`;
    case 'LOG': return `L${C(t.level ?? 0xffff, t.flags ?? 0)}${t.prefix === undefined ? '-' : `=${str(t.prefix)}`}`;
    case 'ext': return `X${str(t.name)}${str(JSON.stringify(t.o))}`;
    case 'jump': return `J${str(t.chain)}`;
    case 'goto': return `G${str(t.chain)}`;
    default: return str(t.kind);
  }
}

/**
 * The rule as parsed, as a string: equal for two rules exactly when what
 * they match and do is equal (when their canonical specs are equal), but
 * cheap to build at a million rules. Not for display.
 */
export function ruleIdentity(r: Rule): string {
  const iface = (i: Rule['inIface']) => (i ? neg(i) + str(i.v.name) + (i.v.wildcard ? '+' : '.') : '-');
  let s = addr(r.src) + addr(r.dst) + iface(r.inIface) + iface(r.outIface) + (r.proto ? neg(r.proto) + C(r.proto.v) : '-') + C(r.matches.length);
  for (const m of r.matches) s += matchKey(m);
  return s + targetKey(r.target);
}

/**
 * The identity key of every source rule, indexed by rule id ('' = never
 * carried). Identical rules in one chain share a key; their occurrence order
 * tells them apart (see CounterBank.swap).
 */
export function ruleKeys(rules: SourceRule[]): string[] {
  const keys = new Array<string>(rules.length);
  for (const sr of rules) keys[sr.id] = ruleKey(sr);
  return keys;
}

function ruleKey(sr: SourceRule): string {
  if (sr.internal) return '';
  const chain = chainKey(sr.table, sr.chain);
  if (!sr.rule) return `${sr.family}\t${chain}\t:policy`;
  return `${sr.family}\t${chain}\t${ruleIdentity(sr.rule)}`;
}

/**
 * What a counter carry-over needs of a generation, by rule id, without its
 * rule objects (so a rule set compiled on the build thread carries counters
 * before, or without, its model being re-read on this one): `fps` the
 * fingerprints (they pick the candidates), `keys` and `keys2` two
 * independent 32-bit hashes of the identity key (ruleKey; FNV-1a and a
 * multiply-xorshift), 0 in `keys` for ids that are never carried (internal
 * records). Candidates pair when fingerprint and both hashes agree: two
 * different rules would have to collide in 64 bits of hash (a million-rule
 * replace: ~10^-7 for any pair at all).
 */
export interface RuleIdentities {
  fps: Uint32Array;
  keys: Uint32Array;
  keys2: Uint32Array;
}

/** The identities of every rule, by id. */
export function identities(rules: SourceRule[]): RuleIdentities {
  return drain(identitiesSteps(rules));
}

/** identities as steps (src/rules/steps.ts); the chain's hash is computed once per run of its rules. */
export function* identitiesSteps(rules: SourceRule[]): Generator<number, RuleIdentities> {
  const fps = new Uint32Array(rules.length);
  const keys = new Uint32Array(rules.length);
  const keys2 = new Uint32Array(rules.length);
  let fam = 0, table: TableName = 'filter', chain: string | undefined, ch = 0;
  for (let i = 0; i < rules.length; i++) {
    const sr = rules[i];
    if ((i & 0x1fff) === 0x1fff) yield i;
    if (sr.internal) continue;
    if (sr.chain !== chain || sr.family !== fam || sr.table !== table) {
      fam = sr.family, table = sr.table, chain = sr.chain;
      ch = chainHash(fam, chainKey(table, chain));
    }
    fps[i] = fingerprintWith(sr, ch);
    [keys[i], keys2[i]] = keyHashes(ruleKey(sr));
  }
  return { fps, keys, keys2 };
}

/** Two independent 32-bit hashes of a key's UTF-16 code units (FNV-1a, never 0: 0 marks "never carried"; and a multiply-xorshift). */
function keyHashes(k: string): [number, number] {
  let h = 0x811c9dc5;
  let g = 0x9747b28c ^ k.length;
  for (let i = 0; i < k.length; i++) {
    const c = k.charCodeAt(i);
    h = Math.imul(h ^ c, 0x01000193);
    g = Math.imul(g ^ c, 0x5bd1e995);
    g ^= g >>> 15;
  }
  return [h >>> 0 || 1, g >>> 0];
}

/** The pairing key of id `i` (fingerprint and both identity hashes), '' when never carried. */
function pairKey(ids: RuleIdentities, i: number): string {
  const k = ids.keys[i];
  if (k === 0) return '';
  const f = ids.fps[i];
  const k2 = ids.keys2[i];
  return C(f >>> 16, f & 0xffff, k >>> 16, k & 0xffff, k2 >>> 16, k2 & 0xffff);
}

/**
 * For each new rule id, the old rule id it continues, or -1: the k-th rule
 * with a key in the new set continues the k-th rule with that key in the old
 * set (rule ids are in chain order).
 */
export function matchKeys(oldKeys: string[], newKeys: string[]): Int32Array {
  // One map entry per distinct old key; the rare duplicates become arrays.
  const old = new Map<string, number | number[]>();
  for (let i = 0; i < oldKeys.length; i++) {
    const k = oldKeys[i];
    if (k === '') continue;
    const e = old.get(k);
    if (e === undefined) old.set(k, i);
    else if (typeof e === 'number') old.set(k, [e, i]);
    else e.push(i);
  }
  const out = new Int32Array(newKeys.length).fill(-1);
  const taken = new Uint8Array(oldKeys.length);
  const nth = new Map<string, number>(); // occurrences so far, for duplicated keys only
  for (let i = 0; i < newKeys.length; i++) {
    const k = newKeys[i];
    if (k === '') continue;
    const e = old.get(k);
    if (e === undefined) continue;
    if (typeof e === 'number') {
      if (!taken[e]) {
        taken[e] = 1;
        out[i] = e;
      }
    } else {
      const n = nth.get(k) ?? 0;
      nth.set(k, n + 1);
      if (n < e.length) out[i] = e[n];
    }
  }
  return out;
}

/** The counters of the file ([p:b] on rules, chain lines for policies) by rule id: what `iptables-restore -c` seeds. */
export function fileCounters(c: CompiledRuleSet): Map<number, [bigint, bigint]> {
  const out = new Map<number, [bigint, bigint]>();
  for (const sr of c.rules) {
    if (sr.internal) continue;
    const fc = sr.rule ? sr.rule.counters : c.source.tables.find((x) => x.family === sr.family && x.name === sr.table)?.chains.get(sr.chain)?.counters;
    if (fc) out.set(sr.id, fc);
  }
  return out;
}

/** `a` in an array of length `n` (a copy, zero-filled past a's end). */
function grown(a: Uint32Array, n: number): Uint32Array {
  const out = new Uint32Array(Math.max(n, a.length));
  out.set(a);
  return out;
}

const EDIT_HEADROOM = 4096;
/** Bases of a generation that carried nothing: every id's base is 0. */
const NO_COUNTS = new BigInt64Array(0);

// A cheap numeric digest of a rule's identity: equal identities give equal
// fingerprints (it reads only fields the identity fully covers), so a swap
// can compute the costly string keys for the few rules whose fingerprint
// some counted old rule shares, instead of for every rule of both sets.
const fieldHash = (h: number, v: number) => Math.imul(h ^ v, 0x9e3779b1) ^ (h >>> 15);
const low32 = (v: number | bigint | undefined) => (v === undefined ? 0x5bd1e995 : typeof v === 'bigint' ? Number(v & 0xffffffffn) : v);
const chainHashes = new Map<string, number>();
function chainHash(family: number, chain: string): number {
  const k = `${family}${chain}`;
  let h = chainHashes.get(k);
  if (h === undefined) {
    h = 0x811c9dc5;
    for (let i = 0; i < k.length; i++) h = Math.imul(h ^ k.charCodeAt(i), 0x01000193);
    if (chainHashes.size < 65536) chainHashes.set(k, h);
  }
  return h;
}
const TARGET_CODE: Record<string, number> = { ACCEPT: 1, DROP: 2, REJECT: 3, LOG: 4, RETURN: 5, jump: 6, goto: 7, none: 8, ext: 9 };

export function ruleFingerprint(sr: SourceRule): number {
  return fingerprintWith(sr, chainHash(sr.family, chainKey(sr.table, sr.chain)));
}

function fingerprintWith(sr: SourceRule, chain: number): number {
  let h = chain;
  const r = sr.rule;
  if (!r) return fieldHash(h, 0x706f6c);
  h = fieldHash(h, low32(r.src?.v.lo));
  h = fieldHash(h, low32(r.src?.v.hi));
  h = fieldHash(h, low32(r.dst?.v.lo));
  h = fieldHash(h, low32(r.dst?.v.hi));
  h = fieldHash(h, r.proto ? r.proto.v : 0x10000);
  h = fieldHash(h, (TARGET_CODE[r.target.kind] << 8) | r.matches.length);
  return r.matches.length ? fieldHash(h, r.matches[0].module.length) : h;
}

export class CounterBank {
  // The identities of the current generation's rule ids (edits add ids);
  // ids whose rule an edit deleted.
  private ids: RuleIdentities = { fps: new Uint32Array(0), keys: new Uint32Array(0), keys2: new Uint32Array(0) };
  private count = 0;
  private removed = new Set<number>();
  private basePackets = NO_COUNTS;
  private baseBytes = NO_COUNTS;

  /** Rules whose (non-zero) counters continued into the latest generation (for logs and tests). */
  lastCarried = 0;

  /**
   * A new generation replaced the old one. `previous` = the old
   * generation's final live counters (from setRules), absent for the first.
   * `ids` = the identities of next's rules (computed while the dataplane
   * built the classifier, or on the build thread); `fileCounters` = with
   * `restore`, the [packets:bytes] of the rule file by rule id.
   *
   * Only old rules with something to carry matter: their fingerprints pick
   * the candidates on both sides, and matchKeys pairs the candidates by
   * identity and occurrence exactly as it would pair the whole sets (every
   * rule sharing a candidate's identity shares its fingerprint, so is a
   * candidate too).
   */
  swap(next: RuleIdentities, previous: LiveCounters | undefined, fileCounters?: Map<number, [bigint, bigint]>): void {
    const n = next.fps.length;
    // The new bases, made only if something is carried or seeded: a fresh
    // pair of a million BigInts (16 MB) at every swap was a probe's wait.
    // Room for the ids single-rule edits add before the next full build.
    let bp = NO_COUNTS;
    let bb = NO_COUNTS;
    const bases = () => {
      if (bp === NO_COUNTS) [bp, bb] = [new BigInt64Array(n + EDIT_HEADROOM), new BigInt64Array(n + EDIT_HEADROOM)];
    };
    let carried = 0;
    const total = (j: number): [bigint, bigint] => [
      (this.basePackets[j] ?? 0n) + BigInt.asIntN(64, previous?.packets[j] ?? 0n),
      (this.baseBytes[j] ?? 0n) + BigInt.asIntN(64, previous?.bytes[j] ?? 0n),
    ];
    const live = (j: number) => !this.removed.has(j) && this.ids.keys[j] !== 0;
    // Most ids have nothing to carry: find those with a count through 32-bit
    // views, without a BigInt per id (a million of them is ~100 ms here).
    // (One plain loop per array: a closure per id and array was ~30 ms of a probe's wait at a million.)
    const anyCount = new Uint8Array(this.count);
    for (const a of [this.basePackets, this.baseBytes, previous?.packets, previous?.bytes]) {
      if (!a) continue;
      const w = new Uint32Array(a.buffer, a.byteOffset, a.length * 2);
      const end = Math.min(this.count, a.length);
      for (let j = 0; j < end; j++) if ((w[j * 2] | w[j * 2 + 1]) !== 0) anyCount[j] = 1;
    }
    const counted = new Set<number>();
    for (let j = 0; j < this.count; j++) {
      if (!anyCount[j] || !live(j)) continue;
      const [p, b] = total(j);
      if (p !== 0n || b !== 0n) counted.add(this.ids.fps[j]);
    }
    if (counted.size > 0) {
      const oldIds: number[] = [];
      for (let j = 0; j < this.count; j++) if (counted.has(this.ids.fps[j]) && live(j)) oldIds.push(j);
      const newIds: number[] = [];
      for (let i = 0; i < n; i++) if (counted.has(next.fps[i]) && next.keys[i] !== 0) newIds.push(i);
      const from = matchKeys(oldIds.map((j) => pairKey(this.ids, j)), newIds.map((i) => pairKey(next, i)));
      newIds.forEach((i, k) => {
        if (from[k] < 0) return;
        const [p, b] = total(oldIds[from[k]]);
        if (p === 0n && b === 0n) return;
        bases();
        bp[i] = p;
        bb[i] = b;
        carried++;
      });
    }
    for (const [i, [p, b]] of fileCounters ?? []) {
      bases();
      bp[i] = BigInt.asIntN(64, p);
      bb[i] = BigInt.asIntN(64, b);
    }
    // next's own arrays (the build's, no one else's): edits grow them when they add ids.
    this.ids = next;
    this.count = n;
    this.removed = new Set();
    this.basePackets = bp;
    this.baseBytes = bb;
    this.lastCarried = carried;
  }

  /** Forget everything: the next swap carries nothing. */
  reset(): void {
    this.ids = { fps: new Uint32Array(0), keys: new Uint32Array(0), keys2: new Uint32Array(0) };
    this.count = 0;
    this.removed = new Set();
  }

  /**
   * A single-rule edit: inserted rules (already appended to the rule list
   * the bank holds; new ids, counting from zero in the dataplane) and
   * removed ones (never carried to a later rule set).
   */
  edit(added: SourceRule[], removed: number[]): void {
    for (const id of removed) this.removed.add(id);
    for (const sr of added) {
      if (sr.id >= this.ids.fps.length) this.grow(sr.id + 1 + EDIT_HEADROOM);
      this.ids.fps[sr.id] = ruleFingerprint(sr);
      [this.ids.keys[sr.id], this.ids.keys2[sr.id]] = sr.internal ? [0, 0] : keyHashes(ruleKey(sr));
      this.count = Math.max(this.count, sr.id + 1);
    }
  }

  private grow(n: number): void {
    this.ids = { fps: grown(this.ids.fps, n), keys: grown(this.ids.keys, n), keys2: grown(this.ids.keys2, n) };
    if (this.basePackets.length > 0) this.growBases(n);
  }

  /** Bases for ids below n (they are made only when one is written: swap). */
  private growBases(n: number): void {
    if (this.basePackets.length >= n) return;
    const bp = new BigInt64Array(n);
    const bb = new BigInt64Array(n);
    bp.set(this.basePackets);
    bb.set(this.baseBytes);
    this.basePackets = bp;
    this.baseBytes = bb;
  }

  /** Counters of rule `id` as the operator sees them. */
  get(id: number, live: LiveCounters): [bigint, bigint] {
    const p = (this.basePackets[id] ?? 0n) + (live.packets[id] ?? 0n);
    const b = (this.baseBytes[id] ?? 0n) + (live.bytes[id] ?? 0n);
    return [p < 0n ? 0n : p, b < 0n ? 0n : b];
  }

  /**
   * Zero the given rule ids (all when omitted): the base becomes minus the
   * live count. Packets counted between reading `live` and this call stay
   * counted (like `iptables -Z`, which is not atomic with traffic either).
   */
  zero(live: LiveCounters, ids?: Iterable<number>): number {
    let n = 0;
    const all = ids ?? Array.from({ length: this.count }, (_, i) => i);
    this.growBases(Math.max(this.count, this.ids.fps.length));
    for (const i of all) {
      if (i >= this.basePackets.length) this.growBases(i + 1 + EDIT_HEADROOM);
      this.basePackets[i] = -BigInt.asIntN(64, live.packets[i] ?? 0n);
      this.baseBytes[i] = -BigInt.asIntN(64, live.bytes[i] ?? 0n);
      n++;
    }
    return n;
  }
}
