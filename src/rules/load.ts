// Rule files -> compiled rule set. The one entry point the CLI, the dataplane
// control and the tests use, so every caller gets the same validation.
import { readFileSync } from 'node:fs';
import { RuleError } from './errors';
import type { Family, RuleSet } from './model';
import { parseIptables } from './iptables/parse';
import { parseNative, looksNative } from './native-format';
import { compile, type CompiledRuleSet, type CompileOptions } from './compile';

export interface LoadOptions extends CompileOptions {
  family?: Family;
  skipOtherTables?: boolean;
  onParseProgress?: (file: string, done: number, total: number) => void;
}

export interface LoadTimings {
  readSeconds: number;
  parseSeconds: number;
  compileSeconds: number;
}

export function parseText(text: string, file: string, opts: LoadOptions = {}): RuleSet {
  if (looksNative(file, text)) return parseNative(text, file);
  return parseIptables(text, {
    file,
    family: opts.family,
    skipOtherTables: opts.skipOtherTables,
    onProgress: opts.onParseProgress ? (d, t) => opts.onParseProgress!(file, d, t) : undefined,
  });
}

export function parseFiles(files: string[], opts: LoadOptions = {}): { ruleset: RuleSet; readSeconds: number } {
  const tables: RuleSet['tables'] = [];
  let readSeconds = 0;
  for (const file of files) {
    const t0 = performance.now();
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new RuleError({ file, line: 0, col: 0 }, `cannot read rule file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    readSeconds += (performance.now() - t0) / 1000;
    tables.push(...parseText(text, file, opts).tables);
  }
  return { ruleset: { tables }, readSeconds };
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
