// Rule positions in their chains (what `iptables -L --line-numbers` shows).
// A compiled rule set knows them from SourceRule.index; after single-rule
// edits (src/control/edits.ts) the edited set carries them explicitly.
import type { CompiledRuleSet } from './compile';
import { chainKey } from './model';

const byChainCache = new WeakMap<CompiledRuleSet, Map<string, number[]>>();

/** Rule ids of each chain ("4/FORWARD", "4/raw/PREROUTING") by position: [policy id or -1, rule 1, rule 2, ...]. */
export function ruleIdsByChain(c: CompiledRuleSet): Map<string, number[]> {
  if (c.positions) return c.positions;
  let m = byChainCache.get(c);
  if (!m) {
    m = new Map();
    for (const r of c.rules) {
      if (r.internal) continue;
      const k = `${r.family}/${chainKey(r.table, r.chain)}`;
      let a = m.get(k);
      if (!a) m.set(k, (a = [-1]));
      a[r.index] = r.id;
    }
    byChainCache.set(c, m);
  }
  return m;
}

const positionCache = new WeakMap<CompiledRuleSet, Int32Array>();

/** Rule id -> its 1-based position in its chain (0 for policies, -1 for rules no chain holds any more). */
export function rulePositions(c: CompiledRuleSet): Int32Array {
  let pos = positionCache.get(c);
  if (!pos) {
    pos = new Int32Array(c.rules.length).fill(-1);
    for (const ids of ruleIdsByChain(c).values()) {
      for (let i = 0; i < ids.length; i++) if (ids[i] >= 0) pos[ids[i]] = i;
    }
    positionCache.set(c, pos);
  }
  return pos;
}
