// Rule files -> compiled rule set. The one entry point the CLI, the dataplane
// control and the tests use, so every caller gets the same validation.
import { readFileSync } from 'node:fs';
import { RuleError } from './errors';
import type { Family, RuleSet } from './model';
import { parseIptables } from './iptables/parse';
import { parseNative, looksNative } from './native-format';
import { detectFileFamily, noEvidenceNotice } from './family';
import { compile, type CompiledRuleSet, type CompileOptions } from './compile';

export interface LoadOptions extends CompileOptions {
  /** The family of every iptables-save file (-4/-6); otherwise detected per file (./family.ts). */
  family?: Family;
  /** Called with a one-line notice, e.g. for a file loaded as IPv4 for want of evidence (the CLI prints it on stderr). */
  onNotice?: (message: string) => void;
  skipOtherTables?: boolean;
  onParseProgress?: (file: string, done: number, total: number) => void;
}

export interface LoadTimings {
  readSeconds: number;
  parseSeconds: number;
  compileSeconds: number;
}

export function parseText(text: string, file: string, opts: LoadOptions = {}): RuleSet {
  // Editors on other systems save a UTF-8 byte order mark: not a token.
  if (text.charCodeAt(0) === 0xfeff) {
    text = text.slice(1);
    opts.onNotice?.(`${file}: UTF-8 byte order mark at the start of the file ignored`);
  }
  if (looksNative(file, text)) return parseNative(text, file);
  let family = opts.family;
  if (family === undefined) {
    // Never a silent IPv4: header, name or the first family-only token, and
    // a notice when there is none (the parser then checks every later token
    // against the family fixed here).
    const d = detectFileFamily(text, file);
    family = d.family;
    if (d.evidence.kind === 'none') opts.onNotice?.(noEvidenceNotice(file));
  }
  return parseIptables(text, {
    file,
    family,
    skipOtherTables: opts.skipOtherTables,
    onProgress: opts.onParseProgress ? (d, t) => opts.onParseProgress!(file, d, t) : undefined,
  });
}

export function parseFiles(files: string[], opts: LoadOptions = {}): { ruleset: RuleSet; readSeconds: number } {
  const tables: RuleSet['tables'] = [];
  const skipped: NonNullable<RuleSet['skipped']> = [];
  let readSeconds = 0;
  for (const file of files) {
    const t0 = performance.now();
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new RuleError({ file, line: 0, col: 0 }, `cannot read rule file: ${errnoText(err as NodeJS.ErrnoException)}`);
    }
    readSeconds += (performance.now() - t0) / 1000;
    const rs = parseText(text, file, opts);
    tables.push(...rs.tables);
    skipped.push(...(rs.skipped ?? []));
  }
  return { ruleset: skipped.length ? { tables, skipped } : { tables }, readSeconds };
}

export function loadRuleFiles(files: string[], opts: LoadOptions = {}): { compiled: CompiledRuleSet; timings: LoadTimings } {
  const t0 = performance.now();
  const { ruleset, readSeconds } = parseFiles(files, opts);
  const t1 = performance.now();
  const compiled = compile(ruleset, opts);
  const t2 = performance.now();
  return {
    compiled,
    timings: { readSeconds, parseSeconds: (t1 - t0) / 1000 - readSeconds, compileSeconds: (t2 - t1) / 1000 },
  };
}

/** strerror(3)'s text for the errors reading a file gives, as cat(1) prints them. */
export function errnoText(err: NodeJS.ErrnoException): string {
  const known: Record<string, string> = {
    ENOENT: 'No such file or directory', EACCES: 'Permission denied', EISDIR: 'Is a directory',
    ENOTDIR: 'Not a directory', ELOOP: 'Too many levels of symbolic links', EMFILE: 'Too many open files',
    ENAMETOOLONG: 'File name too long', EIO: 'Input/output error', EPERM: 'Operation not permitted',
  };
  return (err.code && known[err.code]) ?? err.message;
}
