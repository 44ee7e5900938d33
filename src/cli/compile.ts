// flatwall compile FILE... -o SNAPSHOT: parse and compile once, write a
// snapshot that `flatwall run --snapshot` starts from without either.
import { RuleError } from '../rules/errors';
import { loadRuleFiles } from '../rules/load';
import { buildImage, writeSnapshot } from '../control/snapshot';
import { EXIT_ERRORS, EXIT_OK, Progress, UsageError, familyFlag, parse } from './args';
import type { Family } from '../rules/model';

export const COMPILE_HELP = `Usage: flatwall compile [OPTIONS] FILE... -o SNAPSHOT

Parse and compile rule files (as 'flatwall check' does), build the
classifiers, and write a snapshot: the packed tables, the built classifiers
and the rule metadata, versioned and checksummed, so that
'flatwall run --snapshot SNAPSHOT' forwards without parsing, compiling or
building.
A snapshot is tied to the native table layout of this flatwall build; one
from another build is refused (recompile it). Counters in the files are not
kept.

Options:
  -o, --output FILE   the snapshot to write (replaced atomically)
  -4, -6              treat iptables-save files as IPv4 / IPv6 (default: detect,
                      as 'flatwall check' does)
      --no-image      leave the built classifiers out (a smaller snapshot;
                      'run --snapshot' then builds them, ~1 s per million rules)
  -q, --quiet         no progress on stderr
  -h, --help          show this help

Exit status: 0 written, 1 rule errors or write failure, 2 usage errors.
`;

export async function runCompile(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    output: { type: 'string', short: 'o' },
    '4': { type: 'boolean', short: '4' },
    '6': { type: 'boolean', short: '6' },
    quiet: { type: 'boolean', short: 'q' },
    'no-image': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(COMPILE_HELP);
    return EXIT_OK;
  }
  if (positionals.length === 0) throw new UsageError('compile needs at least one FILE');
  if (!values.output) throw new UsageError('compile needs -o SNAPSHOT');
  const family: Family | undefined = familyFlag(values);
  const progress = new Progress('compiling', values.quiet);
  try {
    const t0 = performance.now();
    const { compiled } = loadRuleFiles(positionals, { family, onNotice: (m) => process.stderr.write(`${m}\n`), onParseProgress: (_f, d, t) => progress.update(d, t) });
    progress.done();
    const image = values['no-image'] ? undefined : await buildImage(compiled);
    const { bytes } = writeSnapshot(values.output, compiled, positionals, image);
    process.stderr.write(`${values.output}: ${compiled.stats.sourceRules} rules, ${compiled.stats.records} records, ${bytes} bytes in ${((performance.now() - t0) / 1000).toFixed(2)} s\n`);
    return EXIT_OK;
  } catch (err) {
    progress.done();
    if (err instanceof RuleError) {
      process.stderr.write(`flatwall: ${err.message}\n`);
      return EXIT_ERRORS;
    }
    if ((err as NodeJS.ErrnoException).code) {
      process.stderr.write(`flatwall compile: cannot write ${values.output}: ${(err as Error).message}\n`);
      return EXIT_ERRORS;
    }
    throw err;
  }
}
