// The build thread's side of build-thread.ts: one recipe in, its packed
// tables, then its identities out, then the thread ends.
import { parentPort, workerData } from 'node:worker_threads';
import { compileSteps } from '../rules/compile';
import { recipeSourceSteps } from '../rules/deferred';
import { ruleCount } from '../rules/load';
import { fileCounters, identities } from './counters';
import { useSetDescriptions } from '../sets/registry';
import { fastCompileTexts, fastPathEnabled, type FastBuilt } from '../rules/text-fast-path';
import { SharedBodyReader } from './shared-body';
import type { Family } from '../rules/model';
import { logRules, serializeError, setReferenceCounts, type BuildRequest, type StreamRequest, type WorkerMessage } from './build-thread';

const post = (m: WorkerMessage, transfer: ArrayBuffer[] = []) => parentPort!.postMessage(m, transfer);

// Set by the main thread when the build is abandoned (build-thread.ts
// onThread): the reference's steps stop at the next one, rather than the
// thread being terminated (which the addon does not survive).
const stopFlag = new Int32Array((workerData as { stop: SharedArrayBuffer }).stop);

/** drain, stopping between steps once the build is abandoned. */
function drainUnlessStopped<T>(g: Generator<unknown, T>): T {
  for (;;) {
    const r = g.next();
    if (r.done) return r.value;
    if (Atomics.load(stopFlag, 0) !== 0) throw new Abandoned();
  }
}

class Abandoned extends Error {
  constructor() {
    super('the build was abandoned');
  }
}

/** A build the addon's text compiler made, posted as the reference's would be (progress, tables, then identities). */
function postFast(r: FastBuilt, files: string[]): void {
  for (const message of r.notices) post({ type: 'notice', message });
  files.forEach((file, i) => post({ type: 'parse', file, done: r.lines[i], total: r.lines[i] }));
  post({ type: 'fast-path', taken: true, parseSeconds: r.parseSeconds, compileSeconds: r.compileSeconds });
  post({ type: 'parsed', tables: r.parsedTables.length, rules: r.stats.sourceRules });
  post({ type: 'compile', done: r.stats.sourceRules, total: r.stats.sourceRules });
  post({
    type: 'built', buffer: r.buffer, tables: r.tables, stats: r.stats, ifaceCuts: r.ifaceCuts, ruleIds: r.ruleIds, spans: r.spans, skipped: r.skipped,
  }, [r.buffer]);
  const ids = r.identities;
  // The subset has no LOG rules and no -m set: nothing to name in LOG lines, no set references.
  post({ type: 'identities', fps: ids.fps, keys: ids.keys, keys2: ids.keys2, logRules: [], fileCounters: r.fileCounters },
    [ids.fps.buffer as ArrayBuffer, ids.keys.buffer as ArrayBuffer, ids.keys2.buffer as ArrayBuffer]);
}

/**
 * The addon's text compiler (src/rules/text-fast-path.ts), for a whole
 * load or replace (a PUT that keeps running tables of the other family
 * merges with them: the reference's; a PUT's recipe keeps none as []).
 * False when it declined: then only the reason was posted.
 */
function fast(req: BuildRequest, bytes: Array<ArrayBuffer | undefined>): boolean {
  const { recipe } = req;
  if (recipe.kept?.length || req.fastPath === false || !fastPathEnabled()) return false;
  // Texts that came as their bytes go to the addon as bytes.
  const texts = recipe.texts.map((t, i) => (bytes[i] ? { file: t.file, bytes: new Uint8Array(bytes[i]!) } : t));
  const r = fastCompileTexts(texts, { ...recipe.opts, maxRecords: req.maxRecords, fileCounters: req.fileCounters });
  if ('declined' in r) {
    post({ type: 'fast-path', taken: false, reason: r.declined });
    return false;
  }
  postFast(r, recipe.texts.map((t) => t.file));
  return true;
}

/**
 * Texts parsed as they arrive (StreamRequest): the addon's compiler or
 * nothing. The tables they give must replace every running one a PUT
 * would keep (a table that stays is merged by the reference), so a family
 * or a table that would leave one is declined; declined texts are built
 * again from their whole bytes by the reference, on a thread of its own
 * (build-thread.ts).
 */
function streamed(req: StreamRequest): void {
  const { inputs, running, opts } = req.stream;
  const bodies = inputs.map((i) => new SharedBodyReader(i.buffer, i.progress));
  const accept = (_file: string, f: Family): string | undefined => {
    const stays = running.find((t) => t.family !== f || t.name !== 'filter');
    return stays ? `the running ${stays.name} table of IPv${stays.family} stays (a merge is the reference's)` : undefined;
  };
  const r = fastCompileTexts(inputs.map((i, k) => ({ file: i.file, stream: bodies[k] })), { ...opts, maxRecords: req.maxRecords, fileCounters: req.fileCounters }, accept);
  const declined = 'declined' in r ? r.declined : r.parsedTables.length === 0 ? 'no filter table' : undefined;
  if (declined !== undefined) {
    // The reference needs all of them; wait for the end so that what it gets is whole.
    post({ type: 'fast-path', taken: false, reason: declined });
    for (const b of bodies) b.all();
    post({ type: 'declined', reason: declined });
    return;
  }
  postFast(r as FastBuilt, inputs.map((i) => i.file));
}

function run(req: BuildRequest & { bytes?: Array<ArrayBuffer | undefined> }): void {
  const bytes = req.bytes ?? [];
  if (fast(req, bytes)) return;
  // The reference reads text: the bytes that came instead (build-thread.ts), decoded.
  bytes.forEach((b, i) => {
    if (b) req.recipe.texts[i] = { file: req.recipe.texts[i].file, text: Buffer.from(b).toString('utf8') };
  });
  useSetDescriptions(req.recipe.sets ?? []);
  // Parse and compile, with progress and notices as the main thread would log them.
  const { source, parsedTables } = drainUnlessStopped(recipeSourceSteps(req.recipe,
    (file, done, total) => post({ type: 'parse', file, done, total }),
    (message) => post({ type: 'notice', message })));
  post({ type: 'parsed', tables: parsedTables, rules: ruleCount(source) });
  const compiled = drainUnlessStopped(compileSteps(source, { maxRecords: req.maxRecords, onProgress: (done, total) => post({ type: 'compile', done, total }) }));
  // The packed tables go first: the classifier builds while the rest is computed.
  post({
    type: 'built', buffer: compiled.buffer, tables: compiled.tables, stats: compiled.stats, ifaceCuts: compiled.ifaces.toJSON(),
    ruleIds: compiled.rules.length, spans: compiled.spans, skipped: source.skipped,
  }, [compiled.buffer]);
  // Counter identities, file counters and set references: what the swap needs of the model.
  const ids = identities(compiled.rules);
  const fc = req.fileCounters ? [...fileCounters(compiled)].map(([id, [p, b]]): [number, bigint, bigint] => [id, p, b]) : undefined;
  const refs = compiled.stats.features['-m set'] ? [...setReferenceCounts(source)] : undefined;
  post({ type: 'identities', fps: ids.fps, keys: ids.keys, keys2: ids.keys2, logRules: logRules(compiled), fileCounters: fc, setReferences: refs },
    [ids.fps.buffer as ArrayBuffer, ids.keys.buffer as ArrayBuffer, ids.keys2.buffer as ArrayBuffer]);
}

try {
  const data = workerData as (BuildRequest & { bytes?: Array<ArrayBuffer | undefined> }) | StreamRequest;
  if ('stream' in data) streamed(data);
  else run(data);
} catch (err) {
  post(err instanceof Abandoned ? { type: 'stopped' } : { type: 'error', error: serializeError(err) });
}
