// Per-rule counters that outlive a rule set generation.
//
// The dataplane counts per rule id into arrays that belong to one generation
// (a swap starts new ones). Operators expect `iptables -L -v` behaviour: a
// rule that did not change keeps its counters when the rule set is replaced.
// So the control plane keeps a signed base per rule id, and a rule's counter
// is base + the dataplane's live count for the current generation.
//
// Identity of a rule across generations (documented in docs/ARCHITECTURE.md,
// "Counters across reloads"): family, chain, canonical rule spec (the
// iptables-save spelling, so `--dport 22` and `--destination-port 22` are the
// same rule) and occurrence index (the k-th rule with that spec in that
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
import type { Rule } from '../rules/model';
import { ruleSpec } from '../rules/iptables/print';

export interface LiveCounters {
  packets: BigUint64Array;
  bytes: BigUint64Array;
}

// Specs of rule objects already seen: an edit of one rule in a million keeps
// the other Rule objects, so their keys are not printed again.
const specCache = new WeakMap<Rule, string>();

function specOf(r: Rule, family: 4 | 6): string {
  let s = specCache.get(r);
  if (s === undefined) {
    s = ruleSpec(r, family);
    specCache.set(r, s);
  }
  return s;
}

/** The identity key of every source rule, indexed by rule id ('' = never carried). */
export function ruleKeys(rules: SourceRule[]): string[] {
  const keys = new Array<string>(rules.length);
  const seen = new Map<string, number>();
  for (const sr of rules) {
    if (sr.internal) {
      keys[sr.id] = '';
    } else if (!sr.rule) {
      keys[sr.id] = `${sr.family}\t${sr.chain}\t:policy`;
    } else {
      const base = `${sr.family}\t${sr.chain}\t${specOf(sr.rule, sr.family)}`;
      const k = seen.get(base) ?? 0;
      seen.set(base, k + 1);
      keys[sr.id] = `${base}\t#${k}`;
    }
  }
  return keys;
}

/** Counters of the file ([p:b] on rules, chain lines for policies), by rule id. */
function fileCounters(c: CompiledRuleSet, id: number): [bigint, bigint] | undefined {
  const sr = c.rules[id];
  if (sr.internal) return undefined;
  if (sr.rule) return sr.rule.counters;
  const t = c.source.tables.find((x) => x.family === sr.family);
  return t?.chains.get(sr.chain)?.counters;
}

export class CounterBank {
  private keys: string[] = [];
  private basePackets = new BigInt64Array(0);
  private baseBytes = new BigInt64Array(0);

  /** Carried-over rules at the latest swap (for logs and tests). */
  lastCarried = 0;

  /**
   * A new generation replaced the old one. `previous` = the old
   * generation's final live counters (from setRules), absent for the first.
   */
  swap(next: CompiledRuleSet, previous: LiveCounters | undefined, restore: boolean): void {
    const keys = ruleKeys(next.rules);
    const n = next.rules.length;
    const bp = new BigInt64Array(n);
    const bb = new BigInt64Array(n);
    let carried = 0;
    if (this.keys.length > 0) {
      const old = new Map<string, number>();
      for (let i = 0; i < this.keys.length; i++) if (this.keys[i] !== '') old.set(this.keys[i], i);
      for (let i = 0; i < n; i++) {
        const j = keys[i] === '' ? undefined : old.get(keys[i]);
        if (j === undefined) continue;
        bp[i] = this.basePackets[j] + BigInt.asIntN(64, previous?.packets[j] ?? 0n);
        bb[i] = this.baseBytes[j] + BigInt.asIntN(64, previous?.bytes[j] ?? 0n);
        carried++;
      }
    }
    if (restore) {
      for (let i = 0; i < n; i++) {
        const fc = fileCounters(next, i);
        if (fc) {
          bp[i] = BigInt.asIntN(64, fc[0]);
          bb[i] = BigInt.asIntN(64, fc[1]);
        }
      }
    }
    this.keys = keys;
    this.basePackets = bp;
    this.baseBytes = bb;
    this.lastCarried = carried;
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
    const all = ids ?? Array.from({ length: this.basePackets.length }, (_, i) => i);
    for (const i of all) {
      this.basePackets[i] = -BigInt.asIntN(64, live.packets[i] ?? 0n);
      this.baseBytes[i] = -BigInt.asIntN(64, live.bytes[i] ?? 0n);
      n++;
    }
    return n;
  }

  key(id: number): string | undefined {
    return this.keys[id];
  }
}
