// Memory admission of a new rule set: refuse a reload that would not fit
// beside the running rules before parsing it, instead of dying of a V8
// heap out-of-memory half-way (the old rules went with the process).
//
// The estimate is from the input alone (its size and its rule lines, which
// countRuleCommands counts without parsing) and the constants below, which
// were measured as the smallest --max-old-space-size under which parse +
// compile + counter fingerprints of a rule set succeed (scratch runs of
// `node --max-old-space-size=N`, ClassBench-like sets from `flatwall gen`):
//   iptables-save, acl 250k rules (20 MB): 215 MB; acl 1M (82 MB): 825 MB;
//   chain/fw/ipc/adversarial retain the same ~770-790 B per rule as acl;
//   native JSON, acl 100k (9.2 MB): 650 MB (the YAML document tree).
// It errs on the side of refusing: 850 B per rule plus two bytes per input
// character for iptables-save, 80 B per character for JSON/YAML.
//
// What is compared: the JS heap still free (heap_size_limit - used, after a
// full collection when the first look says no: garbage of the last reload
// may still be counted as used), and the memory the process may still take
// (process.availableMemory(): the machine's free memory or the cgroup's
// limit, whichever is lower) for the heap growth plus the classifiers
// (the running set's bytes per rule, at least NATIVE_BYTES_PER_RULE).
import { freemem, totalmem } from 'node:os';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export const HEAP_BYTES_PER_RULE = 850;
export const HEAP_BYTES_PER_CHAR_SAVE = 2;
export const HEAP_BYTES_PER_CHAR_NATIVE = 80;
/** Classifier and packed tables: the classifier benchmark's 300 B/rule target plus the 52 B/rule packed buffer. */
export const NATIVE_BYTES_PER_RULE = 400;
/** The default --max-rules allows a rule set this many heap bytes per rule (one set alone fits, with room). */
export const DEFAULT_BUDGET_PER_RULE = 1024;

export interface Demand {
  /** What is loaded, for the message: "the request body", "the rule files". */
  what: string;
  rules: number;
  chars: number;
  heapBytes: number;
  nativeBytes: number;
}

export interface Running {
  rules: number;
  /** The running classifiers' memory (setRules' memoryBytes). */
  nativeBytes: number;
  /** Memory admitted to builds still under way (a streamed text's compiler): not free, though not taken yet. */
  reservedBytes?: number;
}

export interface MemoryNow {
  heapLimit: number;
  heapUsed: number;
  available: number;
}

export class AdmissionError extends Error {
  constructor(message: string, readonly detail: Record<string, number>) {
    super(message);
    this.name = 'AdmissionError';
  }
}

/** iptables-save text with `rules` rule lines, or native JSON/YAML. */
export function textDemand(what: string, chars: number, rules: number, format: 'save' | 'native'): Demand {
  const heapBytes = format === 'save'
    ? rules * HEAP_BYTES_PER_RULE + chars * HEAP_BYTES_PER_CHAR_SAVE
    : chars * HEAP_BYTES_PER_CHAR_NATIVE;
  return { what, rules, chars, heapBytes, nativeBytes: rules * NATIVE_BYTES_PER_RULE };
}

/**
 * The addon's text compiler (native/rules/text_compiler.h): its records and
 * the packed tables it makes, off the JS heap, per byte of text (bench:parse
 * measured 3.3x the input for acl, 4.0x for chain at 1M rules; 5 leaves
 * room). `rules`, once the compiler has counted them, sizes the classifiers.
 */
export const NATIVE_BYTES_PER_CHAR_FAST = 5;

export function fastTextDemand(what: string, chars: number, rules = 0): Demand {
  return { what, rules, chars, heapBytes: 0, nativeBytes: chars * NATIVE_BYTES_PER_CHAR_FAST };
}

export function memoryNow(): MemoryNow {
  const h = getHeapStatistics();
  const available = typeof process.availableMemory === 'function' ? process.availableMemory() : freemem();
  return { heapLimit: h.heap_size_limit, heapUsed: h.used_heap_size, available };
}

let gc: (() => void) | undefined;
/** A full collection (V8's gc(), reached without starting node with --expose-gc). */
export function collect(): void {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}

const mb = (n: number) => `${Math.round(n / 1048576)} MiB`;

/**
 * Throws AdmissionError when `d` would not fit beside the running rules.
 * `now` is for tests; by default the process's own figures.
 */
export function admit(d: Demand, running: Running, now: () => MemoryNow = memoryNow): void {
  let m = now();
  if (d.heapBytes > m.heapLimit - m.heapUsed && now === memoryNow) {
    collect();
    m = now();
  }
  if (running.reservedBytes) m = { ...m, available: Math.max(0, m.available - running.reservedBytes) };
  const heapFree = m.heapLimit - m.heapUsed;
  const perRule = running.rules >= 10_000 ? Math.max(NATIVE_BYTES_PER_RULE, running.nativeBytes / running.rules) : NATIVE_BYTES_PER_RULE;
  const nativeBytes = Math.max(d.nativeBytes, d.rules * perRule);
  const detail = {
    rules: d.rules, chars: d.chars, heapNeeded: d.heapBytes, heapFree, heapLimit: m.heapLimit, memoryNeeded: d.heapBytes + nativeBytes,
    memoryAvailable: m.available, runningRules: running.rules,
  };
  const size = `${d.what} (${d.rules} rule lines, ${mb(d.chars)})`;
  if (d.heapBytes > heapFree) {
    throw new AdmissionError(`not enough memory for ${size}: parsing and compiling it needs an estimated ${mb(d.heapBytes)} of JS heap, `
      + `${mb(heapFree)} of the ${mb(m.heapLimit)} heap limit is free beside the running ${running.rules} rules; the running rules stay `
      + '(a larger heap: node --max-old-space-size)', detail);
  }
  if (d.heapBytes + nativeBytes > m.available) {
    throw new AdmissionError(`not enough memory for ${size}: it needs an estimated ${mb(d.heapBytes + nativeBytes)} (heap and classifiers), `
      + `the process may take ${mb(m.available)} more (free memory or the cgroup limit${running.reservedBytes ? `, less ${mb(running.reservedBytes)} admitted to a build under way` : ''}); the running rules stay`, detail);
  }
}

/**
 * The default --max-rules: the rules one rule set can have within the JS
 * heap limit (or the machine's memory, if lower) at DEFAULT_BUDGET_PER_RULE,
 * in thousands: ~4.2M with Node's default 4 GiB heap on a 16+ GiB machine.
 * A reload beside a running set of that size is the admission check's call.
 */
export function defaultMaxRules(h = getHeapStatistics().heap_size_limit, total = totalmem()): number {
  return Math.max(1000, Math.floor(Math.min(h, total) / DEFAULT_BUDGET_PER_RULE / 1000) * 1000);
}
