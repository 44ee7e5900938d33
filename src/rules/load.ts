// Rule files -> compiled rule set. The one entry point the CLI, the dataplane
// control and the tests use, so every caller gets the same validation.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { RuleError, errnoText, overRuleLimit } from './errors';

export { errnoText };
import type { Family, RuleSet } from './model';
import { parseIptablesSteps } from './iptables/parse';
import { drain, runSliced } from './steps';
import { parseNative, looksNative } from './native-format';
import { detectFileFamily, noEvidenceNotice } from './family';
import { compileSteps, type CompiledRuleSet, type CompileOptions } from './compile';

export interface LoadOptions extends CompileOptions {
  /** The family of every iptables-save file (-4/-6); otherwise detected per file (./family.ts). */
  family?: Family;
  /** Called with a one-line notice, e.g. for a file loaded as IPv4 for want of evidence (the CLI prints it on stderr). */
  onNotice?: (message: string) => void;
  skipOtherTables?: boolean;
  onParseProgress?: (file: string, done: number, total: number) => void;
  /** At most this many rules, all files together (--max-rules): more is a RuleLimitError. */
  maxRules?: number;
  /** Rules already counted against maxRules (earlier files). */
  rulesBefore?: number;
  /** iptables-save text only: a text that looks like the native format is not taken as one (a PUT /rules text/plain body). */
  saveOnly?: boolean;
  /** Called with every file's text once all are read, before any is parsed (the memory admission check). */
  beforeParse?: (files: Array<{ file: string; text: string }>) => void;
}

export interface LoadTimings {
  readSeconds: number;
  parseSeconds: number;
  compileSeconds: number;
}

/** The text without a leading UTF-8 byte order mark (editors on other systems save one: not a token), with a notice if there was one. */
export function stripBom(text: string, file: string, onNotice?: (message: string) => void): string {
  if (text.charCodeAt(0) !== 0xfeff) return text;
  onNotice?.(`${file}: UTF-8 byte order mark at the start of the file ignored`);
  return text.slice(1);
}

/** Rules in a rule set (after expansion: what --max-rules counts). */
export function ruleCount(rs: RuleSet): number {
  let n = 0;
  for (const t of rs.tables) for (const c of t.chains.values()) n += c.rules.length;
  return n;
}

/**
 * The rule limit for a rule set parsed whole (the native format is one YAML
 * document, so its rules are counted after); the error is at the first rule
 * over the limit. `before`: rules counted elsewhere.
 */
export function checkCount(rs: RuleSet, file: string, max = Infinity, before = 0): RuleSet {
  if (max === Infinity) return rs;
  let n = before;
  for (const t of rs.tables) {
    for (const c of t.chains.values()) {
      if (n + c.rules.length > max) throw overRuleLimit(c.rules[Math.max(0, max - n)]?.pos ?? { file, line: 1, col: 1 }, max);
      n += c.rules.length;
    }
  }
  return rs;
}

export function parseText(input: string, file: string, opts: LoadOptions = {}): RuleSet {
  return drain(parseTextSteps(input, file, opts));
}

/**
 * What a text is before a parser reads it: without its BOM (noticed),
 * the native format or not, and, for iptables-save text, its family (the
 * forced one, else detected; noticed when nothing shows it). A family
 * disagreement is a RuleError. `whole` gives the full text when `input` is
 * only its prefix (src/rules/text-fast-path.ts): the detection reads it
 * only when the prefix shows no family, since it stops at the first
 * evidence.
 */
export function textPreamble(input: string, file: string, opts: Pick<LoadOptions, 'family' | 'saveOnly' | 'onNotice'>, whole?: () => string):
  { text: string; native: true } | { text: string; native: false; family: Family } {
  const text = stripBom(input, file, opts.onNotice);
  if (!opts.saveOnly && looksNative(file, text)) return { text, native: true };
  if (opts.family !== undefined) return { text, native: false, family: opts.family };
  // Never a silent IPv4: header, name or the first family-only token, and
  // a notice when there is none (the parser then checks every later token
  // against the family fixed here).
  let d = detectFileFamily(text, file);
  if (d.evidence.kind === 'none' && whole) d = detectFileFamily(whole(), file);
  if (d.evidence.kind === 'none') opts.onNotice?.(noEvidenceNotice(file));
  return { text, native: false, family: d.family };
}

export function* parseTextSteps(input: string, file: string, opts: LoadOptions): Generator<unknown, RuleSet> {
  const p = textPreamble(input, file, opts);
  if (p.native) return checkCount(parseNative(p.text, file), file, opts.maxRules, opts.rulesBefore);
  const { text, family } = p;
  return yield* parseIptablesSteps(text, {
    file,
    family,
    skipOtherTables: opts.skipOtherTables,
    maxRules: opts.maxRules,
    rulesBefore: opts.rulesBefore,
    onProgress: opts.onParseProgress ? (d, t) => opts.onParseProgress!(file, d, t) : undefined,
    onNotice: opts.onNotice,
  });
}

export function parseFiles(files: string[], opts: LoadOptions = {}): { ruleset: RuleSet; readSeconds: number } {
  return drain(parseFilesSteps(files, opts));
}

function* parseFilesSteps(files: string[], opts: LoadOptions): Generator<unknown, { ruleset: RuleSet; readSeconds: number }> {
  const t0 = performance.now();
  // All read before any is parsed: the admission check sees them together.
  const texts = readRuleTexts(files);
  const readSeconds = (performance.now() - t0) / 1000;
  opts.beforeParse?.(texts);
  return { ruleset: yield* parseTextsSteps(texts, opts), readSeconds };
}

/** A rule file that cannot be read: a RuleError naming it. */
export function unreadable(file: string, err: unknown): RuleError {
  return new RuleError({ file, line: 0, col: 0 }, `cannot read rule file: ${errnoText(err as NodeJS.ErrnoException)}`);
}

/** The rule files' texts; a file that cannot be read is a RuleError naming it. */
export function readRuleTexts(files: string[]): Array<{ file: string; text: string }> {
  return files.map((file) => {
    try {
      return { file, text: readFileSync(file, 'utf8') };
    } catch (err) {
      throw unreadable(file, err);
    }
  });
}

/** Bytes decoded at a step of decodeUtf8Steps. */
const DECODE_STEP = 1 << 20;

/**
 * `b` as UTF-8 text, decoded a MiB at a time, cut at newlines (never inside
 * a character), with a step between: an 80 MB rule file or body is ~100 ms
 * of decoding (more on a loaded machine), which a probe should not wait for.
 */
export function* decodeUtf8Steps(b: Uint8Array): Generator<unknown, string> {
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.length);
  if (buf.length <= DECODE_STEP) return buf.toString('utf8');
  const parts: string[] = [];
  for (let at = 0; at < buf.length;) {
    let end = Math.min(buf.length, at + DECODE_STEP);
    if (end < buf.length) {
      const nl = buf.indexOf(10, end);
      end = nl === -1 ? buf.length : nl + 1;
    }
    parts.push(buf.toString('utf8', at, end));
    at = end;
    yield;
  }
  // One flat string (a join copies once; later scans would flatten a rope anyway).
  return parts.join('');
}

/** decodeUtf8Steps with turns of the event loop between its slices. */
export function decodeUtf8Sliced(b: Uint8Array): Promise<string> {
  return runSliced(decodeUtf8Steps(b));
}

/**
 * readRuleTexts for the event loop: the bytes are read on the libuv pool,
 * and each file's decoding (~80 ms at 80 MB) gets a turn of its own, so a
 * million-rule file never stops the API for the ~300 ms a synchronous read
 * and decode of it take.
 */
export async function readRuleTextsAsync(files: string[]): Promise<{ texts: Array<{ file: string; text: string }>; bytes: Buffer[] }> {
  const out: Array<{ file: string; text: string }> = [];
  const all: Buffer[] = [];
  for (const file of files) {
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (err) {
      throw unreadable(file, err);
    }
    out.push({ file, text: await decodeUtf8Sliced(bytes) });
    all.push(bytes);
  }
  return { texts: out, bytes: all };
}

/** Rule file texts already read, parsed in turn into one rule set (the rule limit counts across them). */
export function* parseTextsSteps(texts: Array<{ file: string; text: string }>, opts: LoadOptions): Generator<unknown, RuleSet> {
  const tables: RuleSet['tables'] = [];
  const skipped: NonNullable<RuleSet['skipped']> = [];
  let before = opts.rulesBefore ?? 0;
  for (const { file, text } of texts) {
    const rs = yield* parseTextSteps(text, file, { ...opts, rulesBefore: before });
    tables.push(...rs.tables);
    skipped.push(...(rs.skipped ?? []));
    before += ruleCount(rs);
  }
  return skipped.length ? { tables, skipped } : { tables };
}

/**
 * iptables-restore semantics: the tables given replace those of the same
 * family and name; the others stay (a PUT /rules of one family's tables).
 */
export function mergeTables(running: RuleSet | undefined, next: RuleSet): RuleSet {
  const given = new Set(next.tables.map((t) => `${t.family}/${t.name}`));
  return {
    tables: [...(running?.tables ?? []).filter((t) => !given.has(`${t.family}/${t.name}`)), ...next.tables]
      .sort((a, b) => a.family - b.family || (a.name === b.name ? 0 : a.name === 'raw' ? -1 : 1)), // raw first, as it runs first
  };
}

export function loadRuleFiles(files: string[], opts: LoadOptions = {}): { compiled: CompiledRuleSet; timings: LoadTimings } {
  return drain(loadRuleFilesSteps(files, opts));
}

/**
 * loadRuleFiles on the event loop: parse and compile run in slices of
 * `sliceMs` with a turn of the loop between them (src/rules/steps.ts).
 */
export function loadRuleFilesAsync(files: string[], opts: LoadOptions = {}, sliceMs = 10): Promise<{ compiled: CompiledRuleSet; timings: LoadTimings }> {
  return runSliced(loadRuleFilesSteps(files, opts), sliceMs);
}

/** Parse text already in memory, sliced the same way (PUT /rules bodies). */
export function parseTextAsync(input: string, file: string, opts: LoadOptions = {}, sliceMs = 10): Promise<RuleSet> {
  return runSliced(parseTextSteps(input, file, opts), sliceMs);
}

function* loadRuleFilesSteps(files: string[], opts: LoadOptions): Generator<unknown, { compiled: CompiledRuleSet; timings: LoadTimings }> {
  const t0 = performance.now();
  const { ruleset, readSeconds } = yield* parseFilesSteps(files, opts);
  const t1 = performance.now();
  const compiled = yield* compileSteps(ruleset, opts);
  const t2 = performance.now();
  return {
    compiled,
    timings: { readSeconds, parseSeconds: (t1 - t0) / 1000 - readSeconds, compileSeconds: (t2 - t1) / 1000 },
  };
}

/** loadRuleFiles of texts already read (`readSeconds`: what reading them took), e.g. ones the text fast path declined. */
export function loadRuleTexts(texts: Array<{ file: string; text: string }>, readSeconds: number, opts: LoadOptions = {}): { compiled: CompiledRuleSet; timings: LoadTimings } {
  const t0 = performance.now();
  const ruleset = drain(parseTextsSteps(texts, opts));
  const t1 = performance.now();
  const compiled = drain(compileSteps(ruleset, opts));
  return { compiled, timings: { readSeconds, parseSeconds: (t1 - t0) / 1000, compileSeconds: (performance.now() - t1) / 1000 } };
}

