// flatwall gen FAMILY N: deterministic rule sets for tests and benchmarks.
import { createWriteStream, writeFileSync } from 'node:fs';
import YAML from 'yaml';
import { FAMILIES, describeFamily, generateLines, type GenFamily } from '../rules/generate';
import { parseText } from '../rules/load';
import { toNative } from '../rules/native-format';
import { EXIT_OK, Progress, UsageError, parse } from './args';

export const GEN_HELP = `Usage: flatwall gen [OPTIONS] FAMILY N

Generate a deterministic rule set of N rules (1 to 1,000,000 and beyond).
The same FAMILY, N and seed give byte-identical output on any machine.

Families:
${FAMILIES.map((f) => `  ${f.padEnd(12)} ${describeFamily(f)}`).join('\n')}

Options:
  -s, --seed N        PRNG seed (default 1)
  -f, --format FMT    iptables (default), json or yaml
  -o, --output FILE   write to FILE instead of stdout
  -q, --quiet         no progress on stderr
  -h, --help          show this help
`;

export async function runGen(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    seed: { type: 'string', short: 's', default: '1' },
    format: { type: 'string', short: 'f', default: 'iptables' },
    output: { type: 'string', short: 'o' },
    quiet: { type: 'boolean', short: 'q' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(GEN_HELP);
    return EXIT_OK;
  }
  if (positionals.length !== 2) throw new UsageError('gen needs FAMILY and N');
  const family = positionals[0] as GenFamily;
  if (!FAMILIES.includes(family)) throw new UsageError(`unknown family "${family}" (one of: ${FAMILIES.join(', ')})`);
  const n = Number(positionals[1].replace(/_/g, ''));
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`N must be a positive integer, got "${positionals[1]}"`);
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed must be a non-negative integer`);
  if (!['iptables', 'json', 'yaml'].includes(values.format!)) throw new UsageError(`unknown format "${values.format}"`);

  const progress = new Progress(`generating ${family}:${n}`, values.quiet);
  if (values.format !== 'iptables') {
    // The native form goes through the parser, so it is exactly the same rule set.
    const text = [...generateLines({ family, rules: n, seed })].join('\n');
    const rs = parseText(`${text}\n`, `${family}-${n}.rules`);
    const obj = toNative(rs);
    const out = values.format === 'json' ? `${JSON.stringify(obj)}\n` : YAML.stringify(obj);
    if (values.output) writeFileSync(values.output, out);
    else process.stdout.write(out);
    return EXIT_OK;
  }
  const sink = values.output ? createWriteStream(values.output) : process.stdout;
  let buf = '';
  let i = 0;
  for (const line of generateLines({ family, rules: n, seed })) {
    buf += `${line}\n`;
    if (buf.length > 1 << 20) {
      if (!sink.write(buf)) await new Promise<void>((r) => sink.once('drain', () => r()));
      buf = '';
      progress.update(++i, n, 'rules');
    }
  }
  await new Promise<void>((resolve, reject) => {
    sink.write(buf, (err) => (err ? reject(err) : resolve()));
  });
  if (values.output) await new Promise<void>((r) => (sink as NodeJS.WritableStream).end(() => r()));
  progress.done();
  return EXIT_OK;
}
