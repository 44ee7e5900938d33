// Shared CLI plumbing: exit codes, usage errors, progress on stderr.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { excerpt } from '../rules/errors';

export const EXIT_OK = 0;
export const EXIT_ERRORS = 1; // the input had errors, or the operation failed
export const EXIT_USAGE = 2; // bad command line

export class UsageError extends Error {}

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, allowPositionals = true) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError(usageMessage(err as NodeJS.ErrnoException));
  }
}

/**
 * parseArgs' errors in the words of getopt(3) users ("unknown option
 * '--x'"), not its advice about '--'; main() adds "Try 'flatwall CMD --help'.".
 */
export function usageMessage(err: NodeJS.ErrnoException): string {
  const quoted = /'([^']*)'/.exec(err.message)?.[1];
  const what = quoted === undefined ? undefined : `'${excerpt(quoted.replace(/ <value>$/, ''))}'`;
  switch (what && err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': return `unknown option ${what}`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': return `unexpected argument ${what}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return /does not take/.test(err.message) ? `option ${what} does not take an argument` : `option ${what} requires an argument`;
    default: return excerpt(err.message, 1024);
  }
}

/** The family that -4 / -6 select (undefined: both); giving both is a usage error. */
export function familyFlag(values: { '4'?: boolean; '6'?: boolean }): 4 | 6 | undefined {
  if (values['4'] && values['6']) throw new UsageError('-4 and -6 are exclusive');
  return values['4'] ? 4 : values['6'] ? 6 : undefined;
}

/**
 * Progress for long work, on stderr only: a rewritten line on a terminal, a
 * line per quarter otherwise, and nothing for work that ends within a second.
 */
export class Progress {
  private lastQuarter = -1;
  private drew = false;
  constructor(
    private readonly label: string,
    private readonly quiet = false,
    /** When the work started (a later stage of the same work keeps its start). */
    private readonly start = performance.now(),
  ) {}

  update(done: number, total: number, unit = 'lines'): void {
    if (this.quiet || performance.now() - this.start < 1000 || total <= 0) return;
    const pct = Math.min(100, Math.floor((done / total) * 100));
    if (process.stderr.isTTY) {
      const bar = '#'.repeat(Math.round(pct / 5)).padEnd(20, '.');
      process.stderr.write(`\r${this.label}: [${bar}] ${pct}% (${done}/${total} ${unit})\x1b[K`);
      this.drew = true;
    } else {
      const q = Math.floor(pct / 25);
      if (q > this.lastQuarter) {
        this.lastQuarter = q;
        process.stderr.write(`${this.label}: ${pct}% (${done}/${total} ${unit})\n`);
      }
    }
  }

  done(): void {
    if (this.drew) process.stderr.write('\r\x1b[K');
    this.drew = false;
  }
}
