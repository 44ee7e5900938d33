// Text reloads on a thread of their own.
//
// Parsing and compiling a million rules takes seconds and allocates
// gigabytes over its run; on the thread that serves the API every
// collection of that garbage, and of the model it builds, is a pause of the
// probes (bench/results/update-health.md). Here a worker thread
// (build-worker.ts) reads the recipe's texts, compiles and packs them, and
// hands back what forwarding needs: the packed tables (transferred, not
// copied), the interface classes, the rule spans for edits, and, while the
// dataplane builds the classifier, the counter identities and the IP set
// references. Its heap, with everything the parse made, goes when it ends.
// The rule set it gives has no model (src/rules/deferred.ts): this thread
// reads the model from the same texts only when a listing, edit or save
// asks for it.
//
// Failures are the parser's and compiler's own, rebuilt here as the same
// classes (RuleError with its position, RuleLimitError with its limit), so
// the API and the CLI answer exactly as if the work had run here.
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { RuleError, RuleLimitError, type Position } from '../rules/errors';
import { IfaceClasses } from '../rules/iface';
import { deferModel, type Recipe } from '../rules/deferred';
import { logRuleOf, type CompiledRuleSet, type CompileStats, type LogRule, type TableInfo } from '../rules/compile';
import type { Family, RuleSet, SkippedTable, TableName } from '../rules/model';
import type { RuleIdentities } from './counters';
import { describeSets } from '../sets/registry';
import { abortReaders } from './shared-body';

export interface BuildRequest {
  recipe: Recipe;
  maxRecords?: number;
  /** Also return the file's [packets:bytes] by rule id (iptables-restore -c). */
  fileCounters: boolean;
  /** False: straight to the reference (the addon's compiler has declined these texts already). */
  fastPath?: boolean;
}

/**
 * Texts parsed while they arrive (shared-body.ts: a PUT /rules body, rule
 * files being read) by the addon's text compiler: they replace the whole of
 * the running rules, or the build declines and the caller builds them again
 * by the reference.
 */
export interface StreamRequest {
  stream: {
    inputs: Array<{ buffer: SharedArrayBuffer; progress: SharedArrayBuffer; file: string }>;
    /** The running tables a PUT keeps unless it gives them: a body that would leave one in place is declined (merging is the reference's). */
    running: Array<{ family: Family; name: TableName }>;
    opts: Pick<Recipe['opts'], 'family' | 'skipOtherTables' | 'maxRules' | 'saveOnly'>;
  };
  maxRecords?: number;
  fileCounters: boolean;
}

export interface BuildHooks {
  onParseProgress?: (file: string, done: number, total: number) => void;
  onProgress?: (done: number, total: number) => void;
  onNotice?: (message: string) => void;
  /** Called with the number of tables and rules the texts gave, before the classifiers are built; throwing stops the build with that error. */
  onParsed?: (parsedTables: number, rules: number) => void;
  /** Whether the addon's text compiler built it (src/rules/text-fast-path.ts), or why the reference did. */
  onFastPath?: (r: { taken: true; parseSeconds: number; compileSeconds: number } | { taken: false; reason: string }) => void;
  /** Aborting it ends the thread. */
  signal?: AbortSignal;
  /** The reference's steps saw the build abandoned and stopped there (tests). */
  onStopped?: () => void;
}

/** What the worker posts, in order: progress and notices, then built, then identities (or error at any point). */
export type WorkerMessage =
  | { type: 'parse'; file: string; done: number; total: number }
  | { type: 'compile'; done: number; total: number }
  | { type: 'notice'; message: string }
  | { type: 'parsed'; tables: number; rules: number }
  | { type: 'declined'; reason: string }
  | { type: 'stopped' }
  | { type: 'fast-path'; taken: true; parseSeconds: number; compileSeconds: number }
  | { type: 'fast-path'; taken: false; reason: string }
  | {
    type: 'built'; buffer: ArrayBuffer; tables: TableInfo[]; stats: CompileStats; ifaceCuts: string[]; ruleIds: number;
    spans?: { start: Uint32Array; end: Uint32Array }; skipped?: SkippedTable[];
  }
  | { type: 'identities'; fps: Uint32Array; keys: Uint32Array; keys2: Uint32Array; logRules: Array<[number, LogRule]>; fileCounters?: Array<[number, bigint, bigint]>; setReferences?: Array<[string, number]> }
  | { type: 'error'; error: SerializedError };

export interface SerializedError {
  kind: 'RuleError' | 'RuleLimitError' | 'Error';
  message: string;
  pos?: Position;
  reason?: string;
  token?: string;
  limit?: number;
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof RuleError) {
    return {
      kind: err instanceof RuleLimitError ? 'RuleLimitError' : 'RuleError', message: err.message,
      pos: { file: err.file, line: err.line, col: err.col }, reason: err.reason, token: err.token, limit: err instanceof RuleLimitError ? err.limit : undefined,
    };
  }
  return { kind: 'Error', message: err instanceof Error ? err.message : String(err) };
}

/** The error as the thread had it: same class, position, reason, token and message (not escaped and cut a second time). */
function rebuildError(e: SerializedError): Error {
  if (e.kind === 'Error') return new Error(e.message);
  const err = e.kind === 'RuleLimitError' ? new RuleLimitError(e.pos!, '', e.limit!) : new RuleError(e.pos!, '');
  return Object.assign(err, { message: e.message, reason: e.reason, token: e.token });
}

/** The IP sets the rules name (-m set), with how many rules name each (`ipset list`'s References). */
export function setReferenceCounts(rs: RuleSet): Map<string, number> {
  const counts = new Map<string, number>();
  for (const t of rs.tables) {
    for (const c of t.chains.values()) {
      for (const r of c.rules) {
        for (const m of r.matches) {
          if (m.module === 'ext' && m.name === 'set') {
            const name = (m.o as { name?: string }).name;
            if (name !== undefined) counts.set(name, (counts.get(name) ?? 0) + 1);
          }
        }
      }
    }
  }
  return counts;
}

/** What LOG lines say of each rule that logs (LOG, NFLOG and other extension targets), by id. */
export function logRules(c: CompiledRuleSet): Array<[number, LogRule]> {
  const out: Array<[number, LogRule]> = [];
  for (const sr of c.rules) {
    const t = sr.rule?.target;
    if (t && (t.kind === 'LOG' || t.kind === 'ext')) out.push([sr.id, logRuleOf(sr)]);
  }
  return out;
}

/** A compiled rule set from the build thread, whose identities (and the rest) may still be on the way. */
export interface ThreadBuilt {
  compiled: CompiledRuleSet;
  skipped: SkippedTable[];
  /** Settles when the worker has sent them; rejects if it fails first. */
  later: Promise<{ identities: RuleIdentities; logRules: Map<number, LogRule>; fileCounters?: Map<number, [bigint, bigint]>; setReferences?: Map<string, number> }>;
  /** Stop the thread (the build was abandoned: a refused body, a native failure). */
  cancel: () => void;
}


const WORKER = join(__dirname, 'build-worker.js');
/** How long an abandoned build may take to leave the addon before its thread is terminated anyway. */
const ADDON_GRACE_MS = 30_000;
// Each running build thread, with what ends it (onThread's `end`).
const live = new Map<Worker, () => void>();

// Set once the process is on its way out (endBuildThreads): no new build starts.
let closed = false;

/** Tells every build thread to stop, as an abandoned build is, and starts no more (a crash's exit: see run.ts logCrashes). */
export function endBuildThreads(): void {
  closed = true;
  for (const end of [...live.values()]) end();
}

/**
 * Resolves once every build thread has ended (true) or `timeoutMs` has passed (false):
 * a process that exits while one is inside the addon aborts (Firewall.stop
 * waits for them).
 */
export async function buildThreadsEnded(timeoutMs = ADDON_GRACE_MS): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (live.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  return live.size === 0;
}

/**
 * Parse, compile and pack `req.recipe` on a worker thread. Resolves once the
 * packed tables are here (the identities follow in `later`); rejects with
 * the parse or compile error, and nothing of it is kept.
 */
export function buildOffThread(req: BuildRequest, hooks: BuildHooks = {}): Promise<ThreadBuilt> {
  // The sets -m set may name, as the store describes them now: the thread
  // and any later re-read of the model (deferred.ts) both answer from these.
  const { bytes, ...given } = req.recipe;
  const recipe: Recipe = { ...given, sets: given.sets ?? describeSets() };
  // Texts whose bytes are given cross as those bytes, moved (the thread
  // decodes them); the others are copied.
  const moved = recipe.texts.map((_t, i) => bytes?.[i]);
  const sent = { ...recipe, texts: recipe.texts.map((t, i) => (moved[i] ? { file: t.file, text: '' } : t)) };
  return onThread({ ...req, recipe: sent, bytes: moved }, moved.filter((b): b is ArrayBuffer => b !== undefined), () => recipe, hooks) as Promise<ThreadBuilt>;
}

/**
 * Texts compiled while they arrive (StreamRequest; `bodies` are views of
 * their buffers, the model's texts), or `{ declined }` once all of them are
 * here, when the addon's compiler cannot take them (then build them as a
 * recipe). The model is read from the bytes with the request's options: a
 * family it leaves open is detected again from the same text, as the
 * compiler did.
 */
export function buildStreamOffThread(req: StreamRequest, bodies: Uint8Array[], hooks: BuildHooks = {}): Promise<ThreadBuilt | { declined: string }> {
  const sets = describeSets();
  const { inputs, opts } = req.stream;
  // No `kept`: the texts replace every table, and a merge would order the
  // model's tables by family, not as the files give them (as the addon numbered them).
  const recipe: Recipe = { texts: inputs.map((i, k) => ({ file: i.file, bytes: bodies[k] })), opts, sets };
  // Stopped while the addon pulls, its pull throws (the bodies' readers are told) and it returns.
  return onThread(req, [], () => recipe, hooks, () => inputs.forEach((i) => abortReaders(i.progress)));
}

/**
 * One worker of build-worker.ts, its messages turned into hooks and the
 * result. A worker is never terminated while it may be inside the addon
 * (V8 stops the thread's JavaScript under the addon's feet, and the
 * addon's next call into it aborts the process), and the addon is loaded
 * and called at points the main thread cannot see: an abandoned build is
 * told to stop instead (`stop`, a flag the worker's steps read; `cancel`:
 * a streamed build's bodies, whose pull then throws) and ends by itself at
 * its next step, or when the compiler returns. Only one that has not ended
 * ADDON_GRACE_MS later is terminated.
 */
function onThread(workerData: object, transferList: ArrayBuffer[], recipeOf: () => Recipe,
  hooks: BuildHooks, cancel?: () => void): Promise<ThreadBuilt | { declined: string }> {
  return new Promise((resolve, reject) => {
    if (hooks.signal?.aborted || closed) {
      reject(new Error('the build was stopped: the firewall is stopping'));
      return;
    }
    const stop = new SharedArrayBuffer(4);
    const w = new Worker(WORKER, { workerData: { ...workerData, stop }, transferList });
    let ending = false;
    const end = () => {
      if (ending) return;
      ending = true;
      Atomics.store(new Int32Array(stop), 0, 1);
      cancel?.();
      setTimeout(() => void w.terminate(), ADDON_GRACE_MS).unref();
    };
    live.set(w, end);
    // The firewall stopping ends the thread.
    const stopped = () => fail(new Error('the build was stopped: the firewall is stopping'));
    hooks.signal?.addEventListener('abort', stopped, { once: true });
    w.once('exit', () => {
      live.delete(w);
      hooks.signal?.removeEventListener('abort', stopped);
    });
    let settleLater: { resolve: (v: Awaited<ThreadBuilt['later']>) => void; reject: (e: Error) => void } | undefined;
    let built = false;
    let done = false;
    const fail = (err: Error) => {
      if (done) return;
      done = true;
      if (!built) reject(err);
      else settleLater!.reject(err);
      end();
    };
    w.on('message', (m: WorkerMessage) => {
      if (m.type === 'stopped') hooks.onStopped?.();
      if (done) return;
      switch (m.type) {
        case 'parse': hooks.onParseProgress?.(m.file, m.done, m.total); break;
        case 'compile': hooks.onProgress?.(m.done, m.total); break;
        case 'notice': hooks.onNotice?.(m.message); break;
        case 'fast-path': hooks.onFastPath?.(m.taken ? { taken: true, parseSeconds: m.parseSeconds, compileSeconds: m.compileSeconds } : { taken: false, reason: m.reason }); break;
        case 'parsed':
          try {
            hooks.onParsed?.(m.tables, m.rules);
          } catch (err) {
            fail(err as Error);
          }
          break;
        case 'error': fail(rebuildError(m.error)); break;
        case 'declined':
          done = true;
          resolve({ declined: m.reason });
          break;
        case 'built': {
          built = true;
          const later = new Promise<Awaited<ThreadBuilt['later']>>((res, rej) => (settleLater = { resolve: res, reject: rej }));
          later.catch(() => undefined); // a caller that stops waiting (the build failed natively) leaves it unobserved
          const compiled = deferModel({
            buffer: m.buffer, tables: m.tables, stats: m.stats, ifaces: IfaceClasses.fromCuts(m.ifaceCuts), spans: m.spans,
          }, recipeOf(), m.stats.families, m.ruleIds);
          resolve({ compiled, skipped: m.skipped ?? [], later, cancel: () => fail(new Error('the build was abandoned')) });
          break;
        }
        case 'identities':
          done = true;
          settleLater!.resolve({
            identities: { fps: m.fps, keys: m.keys, keys2: m.keys2 },
            logRules: new Map(m.logRules),
            fileCounters: m.fileCounters ? new Map(m.fileCounters.map(([id, p, b]) => [id, [p, b]])) : undefined,
            setReferences: m.setReferences ? new Map(m.setReferences) : undefined,
          });
          break;
      }
    });
    w.on('error', (err) => fail(err));
    w.on('exit', (code) => fail(new Error(`the build thread exited (code ${code}) before it finished`)));
  });
}
