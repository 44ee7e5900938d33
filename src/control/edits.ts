// Single-rule edits without a rebuild.
//
// A rule inserted into, appended to or deleted from a built-in FORWARD chain,
// or that chain's new policy, becomes a delta over the last full build
// (the "base") instead of a recompile of every rule: the dataplane keeps the
// base classifier and adds a small overlay classifier of the inserted rules'
// records, dead ranges for the deleted rules' records and a policy override
// (native/dataplane/ruleset.h, "SINGLE-RULE EDITS", says how a lookup merges
// them). This module turns an edit into that delta and into the next
// CompiledRuleSet the API lists, in time proportional to the edit (plus one
// copy of the edited chain's arrays), not to the rule set.
//
// Where an edit goes: the compiler records each built-in-chain rule's span
// [start, end) of records in its table (CompiledRuleSet.spans). A rule
// inserted at position p sits before the rule now at p: its ANCHOR is that
// rule's span start (or, if that rule was itself inserted, its anchor; or
// the policy index for an append). Deleting a base rule marks its whole
// span dead, which also covers any user chain it inlines.
//
// What falls back to a full rebuild (Firewall.edit does it): edits of user
// chains and of INPUT/OUTPUT (the dataplane evaluates FORWARD only, and a
// user chain is inlined at every call site), inserted rules that jump, goto
// or RETURN, interface names the base build did not know (they would change
// every record's interface classes), a rule set without spans (started from
// a snapshot, until its first full reload), and past the limits below.
import type { CompiledRuleSet, SourceRule } from '../rules/compile';
import { hasExtensionMatches, ruleConds, ruleIdCount } from '../rules/compile';
import { isDeferred } from '../rules/deferred';
import type { Family, Policy, Rule, RuleSet, Table } from '../rules/model';
import { ACTION, TableWriter } from '../rules/pack';
import { REJECT_CODE } from '../rules/iptables/names';
import { ruleIdsByChain } from '../rules/positions';
import type { RuleOp } from './ruleops';

/** Inserted records per family before edits fall back to a full rebuild. */
export const MAX_OVERLAY_RECORDS = 4096;
/** Rule ids the edits of one base may add (native Ruleset::kEditRuleIds). */
export const MAX_EDIT_RULE_IDS = 1 << 16;
/** Deleted rules per family before edits fall back to a full rebuild. */
export const MAX_DEAD_RANGES = 1 << 16;

interface OverlayRule {
  id: number;
  rule: Rule;
  /** The base record index this rule sits before. */
  anchor: number;
}

interface FamilyEdits {
  overlay: OverlayRule[]; // in chain (= merged) order
  dead: [number, number][];
  policy?: Policy;
}

/** Everything edited since the base build. Immutable: each edit makes a new one. */
export interface EditState {
  baseGeneration: number;
  base: CompiledRuleSet;
  /** Ids below this are the base's; inserted rules get ids from here on. */
  baseRuleCount: number;
  families: Map<Family, FamilyEdits>;
}

/** The native applyEdits argument for one family. */
interface NativeTableEdits {
  records: ArrayBuffer;
  anchors: Uint32Array;
  dead: Uint32Array;
  policy: number;
}

export interface EditPlan {
  state: EditState;
  compiled: CompiledRuleSet;
  /** SourceRules of the inserted rules. */
  added: SourceRule[];
  /** Ids whose rule is gone (their counters are never carried over). */
  removed: number[];
  native: { baseGeneration: number; ruleCount: number; v4?: NativeTableEdits; v6?: NativeTableEdits };
  /**
   * Makes `compiled` true: splices the edited chain's rule and position
   * arrays in place and appends `added` to the rule list. Call it once the
   * dataplane has the edit, and only then: until that point nothing the
   * running rule set holds has changed. In place because copying a
   * million-entry array per edit cost more than the rest of the edit.
   */
  commit(): void;
}

export function initialEditState(compiled: CompiledRuleSet, generation: number): EditState | undefined {
  if (!compiled.spans) return undefined;
  // The positions are an O(rules) pass: paid here, with the full build,
  // not by the first edit; for a model not read yet (src/rules/deferred.ts),
  // by the first edit, which reads it.
  if (!isDeferred(compiled)) compiled.positions = new Map(ruleIdsByChain(compiled));
  return { baseGeneration: generation, base: compiled, baseRuleCount: ruleIdCount(compiled), families: new Map() };
}

/**
 * Edits keep a rule set's positions explicitly (SourceRule.index is the
 * position at compile time); a base whose model was read after its build
 * gets them at its first edit.
 */
function withPositions(c: CompiledRuleSet): void {
  if (!c.positions) c.positions = new Map(ruleIdsByChain(c));
}

const EDITABLE_TARGETS = new Set(['ACCEPT', 'DROP', 'REJECT', 'LOG', 'none']);

/**
 * The delta for `op` over `running` (which `state` describes), or a reason
 * why it needs a full rebuild.
 */
export function planEdit(running: CompiledRuleSet, state: EditState, op: RuleOp): EditPlan | string {
  const { base } = state;
  withPositions(running);
  if (op.chain !== 'FORWARD') return `edits of ${op.chain} are applied by a rebuild (only FORWARD has an overlay)`;
  const tableIndex = base.tables.findIndex((t) => t.family === op.family && t.hook === 'FORWARD');
  if (tableIndex < 0 || !base.spans) return 'the base build has no spans for this table';
  const policyIndex = base.tables[tableIndex].records - 1;
  const key = `${op.family}/FORWARD`;
  const ids = ruleIdsByChain(running).get(key);
  if (!ids) return 'no FORWARD chain';
  const prev = state.families.get(op.family) ?? { overlay: [], dead: [] };
  const fam: FamilyEdits = { overlay: prev.overlay, dead: prev.dead, policy: prev.policy };
  const isInserted = (id: number) => id >= state.baseRuleCount;
  const anchorOf = (id: number) => (isInserted(id) ? fam.overlay.find((o) => o.id === id)!.anchor : base.spans!.start[id]);
  let spliceIds = () => {};
  const added: SourceRule[] = [];
  const removed: number[] = [];

  switch (op.op) {
    case 'insert': case 'append': {
      for (const r of op.rules) {
        if (!EDITABLE_TARGETS.has(r.target.kind)) return `inserted -j ${r.target.kind === 'jump' || r.target.kind === 'goto' ? r.target.chain : r.target.kind === 'ext' ? r.target.name : r.target.kind} is applied by a rebuild`;
        // Their match programs live in the base build's extension section.
        if (hasExtensionMatches(r)) return `inserted rules with ${r.matches.filter((m) => m.module === 'ext').map((m) => `-m ${(m as { name: string }).name}`).join(' ')} are applied by a rebuild`;
        for (const m of [r.inIface, r.outIface]) {
          if (m && !running.ifaces.knows(m.v)) return `interface ${m.v.name}${m.v.wildcard ? '+' : ''} is new to the rule set`;
        }
      }
      const p = op.index; // 1-based position of the first new rule
      const anchor = p < ids.length ? anchorOf(ids[p]) : policyIndex;
      const at = overlayIndexAt(ids, p, anchor, fam.overlay, isInserted, base.spans.start, base.spans.end);
      const firstId = running.rules.length;
      const fresh: OverlayRule[] = op.rules.map((rule, k) => ({ id: firstId + k, rule, anchor }));
      fam.overlay = [...fam.overlay.slice(0, at), ...fresh, ...fam.overlay.slice(at)];
      const newIds = fresh.map((f) => f.id);
      spliceIds = () => ids.splice(p, 0, ...newIds);
      for (const [k, f] of fresh.entries()) {
        added.push({ id: f.id, family: op.family, table: 'filter', chain: 'FORWARD', index: p + k, file: f.rule.pos.file, line: f.rule.pos.line, rule: f.rule });
      }
      break;
    }
    case 'delete': {
      const id = ids[op.index];
      if (isInserted(id)) {
        fam.overlay = fam.overlay.filter((o) => o.id !== id);
      } else if (base.spans.start[id] < base.spans.end[id]) {
        fam.dead = [...fam.dead, [base.spans.start[id], base.spans.end[id]]];
      }
      spliceIds = () => ids.splice(op.index, 1);
      removed.push(id);
      break;
    }
    case 'policy':
      fam.policy = op.policy;
      break;
  }

  const ruleCount = running.rules.length + added.length;
  if (ruleCount - state.baseRuleCount > MAX_EDIT_RULE_IDS) return `more than ${MAX_EDIT_RULE_IDS} rules inserted since the last full build`;
  if (fam.dead.length > MAX_DEAD_RANGES) return `more than ${MAX_DEAD_RANGES} rules deleted since the last full build`;
  const packed = packOverlay(fam, op.family, running);
  if (packed.records > MAX_OVERLAY_RECORDS) return `more than ${MAX_OVERLAY_RECORDS} inserted records since the last full build`;

  const families = new Map(state.families);
  families.set(op.family, fam);
  const { source, spliceRules } = withChain(running.source, op);
  const delta = added.length - removed.length;
  const hookKey = `ipv${op.family}/FORWARD`;
  return {
    state: { ...state, families },
    compiled: {
      ...running, source,
      stats: {
        ...running.stats, sourceRules: running.stats.sourceRules + delta,
        // Rules the hook can reach (flatwall_rules): an approximation after
        // edits, counting an inserted or deleted rule even if it can never match.
        rulesPerHook: { ...running.stats.rulesPerHook, [hookKey]: (running.stats.rulesPerHook[hookKey] ?? 0) + delta },
      },
    },
    added,
    removed,
    commit: () => {
      spliceIds();
      spliceRules();
      running.rules.push(...added);
      if (ids.length - 1 !== source.tables.find((t) => t.family === op.family && t.name === 'filter')!.chains.get(op.chain)!.rules.length) {
        throw new Error(`edit bookkeeping: chain ${op.chain} and its positions disagree`);
      }
    },
    native: {
      baseGeneration: state.baseGeneration, ruleCount,
      [op.family === 4 ? 'v4' : 'v6']: {
        records: packed.buffer, anchors: packed.anchors, policy: fam.policy === undefined ? -1 : ACTION[fam.policy],
        dead: Uint32Array.from(fam.dead.flat()),
      },
    },
  };
}

/**
 * Where in the overlay (merged order) a rule inserted at chain position p
 * goes: right after the nearest inserted rule before p; failing that, after
 * every inserted rule anchored before `anchor`. Base rules without records
 * (start == end) are stepped over, so the scan is O(1) but for runs of
 * rules that can never match.
 */
function overlayIndexAt(ids: number[], p: number, anchor: number, overlay: OverlayRule[], isInserted: (id: number) => boolean,
  start: Uint32Array, end: Uint32Array): number {
  for (let q = p - 1; q >= 1; q--) {
    const id = ids[q];
    if (isInserted(id)) return overlay.findIndex((o) => o.id === id) + 1;
    if (start[id] < end[id]) break;
  }
  let lo = 0;
  let hi = overlay.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (overlay[mid].anchor < anchor) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The overlay's records, in merged order: LOG and rules without a target continue after their own records. */
function packOverlay(fam: FamilyEdits, family: Family, running: CompiledRuleSet) {
  const groups = fam.overlay.map((o) => ({ o, conds: ruleConds(o.rule, family, running.ifaces) }));
  const n = groups.reduce((k, g) => k + g.conds.length, 0);
  const w = new TableWriter(1, Math.max(1, n));
  w.beginTable(family, 'FORWARD');
  const anchors = new Uint32Array(n);
  for (const { o, conds } of groups) {
    const t = o.rule.target;
    const first = w.count;
    for (const c of conds) {
      anchors[w.count] = o.anchor;
      if (t.kind === 'REJECT') w.push(c, ACTION.REJECT, REJECT_CODE[t.with], o.id);
      else if (t.kind === 'ACCEPT' || t.kind === 'DROP') w.push(c, ACTION[t.kind], 0, o.id);
      else w.push(c, t.kind === 'LOG' ? ACTION.LOG : ACTION.COUNT, first + conds.length, o.id);
    }
  }
  w.endTable();
  return { buffer: w.tableRecords(), anchors, records: n };
}

/**
 * `rs` with op's chain replaced by a new Chain object (policy applied; other
 * chains and tables shared) whose rule array gets the edit at commit.
 */
function withChain(rs: RuleSet, op: RuleOp): { source: RuleSet; spliceRules: () => void } {
  let spliceRules = () => {};
  const source = {
    tables: rs.tables.map((t): Table => {
      if (t.family !== op.family || t.name !== 'filter') return t; // edits are the filter table's (ruleops.ts)
      const chains = new Map(t.chains);
      const c = t.chains.get(op.chain)!;
      if (op.op === 'insert' || op.op === 'append') spliceRules = () => c.rules.splice(op.index - 1, 0, ...op.rules);
      else if (op.op === 'delete') spliceRules = () => c.rules.splice(op.index - 1, 1);
      chains.set(op.chain, { ...c, policy: op.op === 'policy' ? op.policy : c.policy });
      return { ...t, chains };
    }),
  };
  return { source, spliceRules };
}

/**
 * One delta for a batch of edits (ctl apply): planEdit for each op in turn
 * on a shadow of `running` (copies of the edited FORWARD chains' rule and
 * position arrays and of the rule list), each committed into the shadow so
 * the next op sees it, and the last native spec of each family (the whole
 * edit state relative to the base, so the last one is the batch). Nothing
 * `running` holds changes; commit() is a no-op. A reason string when any
 * op needs a rebuild.
 */
export function planBatch(running: CompiledRuleSet, state: EditState, ops: RuleOp[]): EditPlan | string {
  if (ops.length === 0) return 'no edits';
  withPositions(running);
  const families = [...new Set(ops.map((o) => o.family))];
  const positions = new Map(ruleIdsByChain(running));
  for (const f of families) {
    const a = positions.get(`${f}/FORWARD`);
    if (a) positions.set(`${f}/FORWARD`, a.slice());
  }
  const source: RuleSet = {
    ...running.source,
    tables: running.source.tables.map((t): Table => (t.name !== 'filter' || !families.includes(t.family) ? t : {
      ...t, chains: new Map([...t.chains].map(([n, c]) => [n, n === 'FORWARD' ? { ...c, rules: [...c.rules] } : c])),
    })),
  };
  let shadow: CompiledRuleSet = { ...running, source, positions, rules: running.rules.slice() };
  let st = state;
  const added: SourceRule[] = [];
  const removed: number[] = [];
  const native: EditPlan['native'] = { baseGeneration: state.baseGeneration, ruleCount: running.rules.length };
  for (const op of ops) {
    const plan = planEdit(shadow, st, op);
    if (typeof plan === 'string') return plan;
    plan.commit();
    shadow = plan.compiled;
    st = plan.state;
    added.push(...plan.added);
    removed.push(...plan.removed);
    native.ruleCount = plan.native.ruleCount;
    if (plan.native.v4) native.v4 = plan.native.v4;
    if (plan.native.v6) native.v6 = plan.native.v6;
  }
  return { state: st, compiled: shadow, added, removed, native, commit: () => {} };
}
