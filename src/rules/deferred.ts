// A compiled rule set whose model is read when first asked for.
//
// The model of a rule set (its RuleSet: tables, chains, a Rule object per
// rule; and the SourceRule of every rule id) is what listings, edits and
// saves read, and at a million rules it is ~7 objects and ~600 bytes of heap
// per rule. Forwarding needs none of it: the dataplane runs the packed
// tables, counters carry over by identities computed beside the compile
// (src/control/counters.ts), and LOG events and metrics name rules by id.
// So a rule set built on the build thread (src/control/build-thread.ts)
// arrives here without its model, holding instead the recipe it was made
// from: the rule texts (one byte per character: a tenth of the model) and,
// for a PUT of some tables, the running tables it merges with. The first
// read of `rules` or `source` makes the model from the recipe with the same
// parser and numbering the build thread ran, so it is the same model and
// every id means the same rule; `materialize` does it in slices first, for
// callers on the event loop. A recipe always gives the same model: its
// inputs are immutable strings and tables no longer edited (an edit makes a
// new rule set).
import { numberRulesSteps, type CompiledRuleSet, type SourceRule } from './compile';
import { decodeUtf8Steps, mergeTables, parseTextsSteps, type LoadOptions } from './load';
import type { Family, RuleSet, Table } from './model';
import { drain, runSliced } from './steps';
import { withSetDescriptions, type SetDims } from '../sets/registry';

/**
 * A rule text of a recipe: the text, or its UTF-8 bytes where the text was
 * never decoded (a request body the build thread read as it arrived:
 * src/control/shared-body.ts); they are decoded when the model is read.
 */
export type RecipeText = { file: string; text: string } | { file: string; bytes: Uint8Array };

/** Characters (or bytes) of a recipe text. */
export function recipeTextLength(t: RecipeText): number {
  return 'bytes' in t ? t.bytes.length : t.text.length;
}

/** What a rule set's model is made from. */
export interface Recipe {
  texts: RecipeText[];
  opts: Pick<LoadOptions, 'family' | 'skipOtherTables' | 'maxRules' | 'rulesBefore' | 'saveOnly'>;
  /** The running tables the texts' tables are merged into (iptables-restore of some tables), absent for a full load. */
  kept?: Table[];
  /** The IP sets `-m set` could name when it was built (src/sets/registry.ts): a re-read answers from these, not from the store as it is by then. */
  sets?: Array<[string, SetDims]>;
  /**
   * The texts' bytes where the caller has them and needs them no more (a
   * file just read, a request body): the build thread is handed these,
   * moved, not a copy of each text made on this thread (~70 ms at 80 MB).
   * Taken out of the recipe when it is sent; never part of a kept recipe.
   */
  bytes?: Array<ArrayBuffer | undefined>;
}

/** `b`'s memory as an ArrayBuffer that may be moved to another thread, if it is b's alone (not a slice of a pool or of a larger buffer). */
export function movableBytes(b: Buffer): ArrayBuffer | undefined {
  return b.byteOffset === 0 && b.buffer.byteLength === b.length && b.buffer instanceof ArrayBuffer ? b.buffer : undefined;
}

/** `g` with each step run against the recipe's set descriptions (steps are synchronous: nothing else sees them). */
function* withSets<T>(g: Generator<unknown, T>, list: Recipe['sets']): Generator<unknown, T> {
  if (!list) return yield* g;
  const sets = new Map(list);
  for (;;) {
    const r = withSetDescriptions(sets, () => g.next());
    if (r.done) return r.value;
    yield r.value;
  }
}

/** The RuleSet a recipe makes (parse errors are RuleErrors, as from the files). */
export function* recipeSourceSteps(recipe: Recipe, onParseProgress?: LoadOptions['onParseProgress'], onNotice?: LoadOptions['onNotice']): Generator<unknown, { source: RuleSet; parsedTables: number }> {
  const texts: Array<{ file: string; text: string }> = [];
  for (const t of recipe.texts) texts.push('bytes' in t ? { file: t.file, text: yield* decodeUtf8Steps(t.bytes) } : t);
  const parsed = yield* parseTextsSteps(texts, { ...recipe.opts, onParseProgress, onNotice });
  return { source: recipe.kept ? mergeTables({ tables: recipe.kept }, parsed) : parsed, parsedTables: parsed.tables.length };
}

interface Model {
  rules: SourceRule[];
  source: RuleSet;
}

const pending = new WeakMap<CompiledRuleSet, { load: () => Promise<void> }>();

/**
 * `base` with `rules` and `source` read from `recipe` on first use.
 * `ruleIds`: how many ids the build thread numbered, checked against the
 * re-read model (a difference would be a parser that is not deterministic:
 * an error, never a silently shifted listing).
 */
export function deferModel(base: Omit<CompiledRuleSet, 'rules' | 'source'>, recipe: Recipe, families: Family[], ruleIds: number): CompiledRuleSet {
  const c = base as CompiledRuleSet;
  c.ruleIds = ruleIds;
  let model: Model | undefined;
  function* steps(): Generator<unknown, Model> {
    const { source } = yield* withSets(recipeSourceSteps(recipe), recipe.sets);
    const { rules } = yield* numberRulesSteps(source, families);
    if (rules.length !== ruleIds) throw new Error(`the rule set re-read from its texts has ${rules.length} rule ids, the build had ${ruleIds}`);
    return { rules, source };
  }
  const adopt = (m: Model) => {
    if (!model) {
      model = m;
      pending.delete(c);
      delete c.ruleIds; // `rules` says it now (and edits add ids to it)
      // Plain fields from here on: what was read is the model.
      Object.defineProperty(c, 'rules', { value: m.rules, writable: true, enumerable: true, configurable: true });
      Object.defineProperty(c, 'source', { value: m.source, writable: true, enumerable: true, configurable: true });
    }
  };
  const read = (): Model => {
    if (!model) adopt(drain(steps()));
    return model!;
  };
  Object.defineProperty(c, 'rules', { get: () => read().rules, enumerable: true, configurable: true });
  Object.defineProperty(c, 'source', { get: () => read().source, enumerable: true, configurable: true });
  let loading: Promise<void> | undefined;
  // A failed read is reported to its callers and tried again by the next one.
  pending.set(c, {
    load: () => (loading ??= runSliced(steps()).then(adopt, (err) => {
      loading = undefined;
      throw err;
    })),
  });
  return c;
}

/** True while a deferred rule set's model has not been read. */
export function isDeferred(c: CompiledRuleSet): boolean {
  return pending.has(c);
}

/** Reads a deferred rule set's model in slices of the event loop (nothing for one already read). */
export function materialize(c: CompiledRuleSet | undefined): Promise<void> {
  return (c && pending.get(c)?.load()) ?? Promise.resolve();
}
