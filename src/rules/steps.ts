// Long rule-set work (parsing, compiling a million rules) as step generators:
// the work yields at points where nothing is half-done, and a driver decides
// whether to give the event loop a turn there. The CLI drains them at once;
// `flatwall run` runs them time-sliced (runSliced), so /health, /metrics,
// signals and `ctl list` are served during a reload instead of waiting
// seconds for it.
import { setImmediate as nextTurn } from 'node:timers/promises';

/** Runs a step generator to its end (the synchronous form). */
export function drain<T>(g: Generator<unknown, T>): T {
  for (;;) {
    const r = g.next();
    if (r.done) return r.value;
  }
}

/**
 * Runs a step generator, giving the event loop a turn whenever a slice of
 * `sliceMs` has passed at a step. The turn is a macrotask (setImmediate), so
 * pending I/O callbacks run in it.
 */
export async function runSliced<T>(g: Generator<unknown, T>, sliceMs = 10): Promise<T> {
  let start = performance.now();
  for (;;) {
    const r = g.next();
    if (r.done) return r.value;
    const now = performance.now();
    if (now - start >= sliceMs) {
      await nextTurn();
      start = performance.now();
    }
  }
}
