// flatwall check FILE...: parse, validate and compile, then summarise.
import { RuleError } from '../rules/errors';
import { loadRuleTexts, readRuleTexts, type LoadTimings } from '../rules/load';
import { fastCompileTexts, fastPathEnabled } from '../rules/text-fast-path';
import type { CompileStats, TableInfo } from '../rules/compile';
import type { SkippedTable } from '../rules/model';
import { EXIT_ERRORS, EXIT_OK, Progress, UsageError, familyFlag, parse } from './args';
import type { Family } from '../rules/model';
import { IpsetStore, loadIpsetFiles } from '../sets/store';
import { useSetStore } from '../sets/registry';

export const CHECK_HELP = `Usage: flatwall check [OPTIONS] FILE...

Parse, validate and compile rule files (iptables-save, ip6tables-save, or the
native JSON/YAML format) exactly as 'flatwall run' would, and print a summary.
Files together form one rule set (for example an IPv4 and an IPv6 file).

Options:
  -4, -6              treat iptables-save files as IPv4 / IPv6 (default: detect
                      from the header, a *.v6 / *.v4 name, or the first
                      family-only token; a file without any is IPv4, with a
                      notice on stderr)
      --skip-tables   skip tables other than filter and raw instead of failing
      --max-records N bound on compiled records per table (default 8388608)
      --ipset FILE    IP sets in 'ipset save' form the rules may name, checked
                      and loaded first, as 'flatwall run --ipset' does (repeatable)
      --json          print the summary as JSON
  -q, --quiet         no progress on stderr
  -h, --help          show this help

Exit status: 0 if the rules are valid, 1 if they have errors, 2 on usage errors.
`;

export function runCheck(argv: string[]): number {
  const { values, positionals } = parse(argv, {
    '4': { type: 'boolean', short: '4' },
    '6': { type: 'boolean', short: '6' },
    'skip-tables': { type: 'boolean' },
    'max-records': { type: 'string' },
    ipset: { type: 'string', multiple: true },
    json: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(CHECK_HELP);
    return EXIT_OK;
  }
  if (positionals.length === 0 && !values.ipset?.length) throw new UsageError('check needs at least one FILE (or --ipset FILE)');
  const family: Family | undefined = familyFlag(values);
  const maxRecords = values['max-records'] !== undefined ? Number(values['max-records']) : undefined;
  if (maxRecords !== undefined && !(Number.isInteger(maxRecords) && maxRecords > 0)) {
    throw new UsageError(`--max-records must be a positive integer, got "${values['max-records']}"`);
  }
  const progress = new Progress('loading', values.quiet);
  try {
    const sets = new IpsetStore();
    useSetStore(sets);
    const ipsets = values.ipset?.length ? loadIpsetFiles(sets, values.ipset) : undefined;
    const setSummary = sets.summary().map((s) => ({ name: s.name, type: s.type, family: s.family, entries: s.entries }));
    if (positionals.length === 0) {
      // Only sets to check.
      if (values.json) process.stdout.write(`${JSON.stringify({ ok: true, ipsetFiles: values.ipset, ipsets: setSummary }, null, 2)}\n`);
      else process.stdout.write(`${values.ipset!.join(', ')}: OK\n  ip sets:   ${setSummary.map((s) => `${s.name} (${s.type}, ${s.entries} entries)`).join(', ') || 'none'}\n`);
      return EXIT_OK;
    }
    const loaded = load(positionals, { family, skipOtherTables: values['skip-tables'], maxRecords }, progress);
    progress.done();
    const s = loaded.stats;
    const perHook = loaded.tables.map((t) => ({
      family: `ipv${t.family}`, hook: t.hook, rules: s.rulesPerHook[`ipv${t.family}/${t.hook}`] ?? 0, records: t.records,
    }));
    if (values.json) {
      process.stdout.write(`${JSON.stringify({
        ok: true, files: positionals, tables: loaded.parsedTables.map((t) => ({ ...t, family: `ipv${t.family}` })),
        skippedTables: loaded.skipped,
        chains: s.chains, userChains: s.userChains, rules: s.sourceRules, records: s.records, hooks: perHook,
        features: s.features, interfaceClasses: loaded.interfaceClasses, seconds: loaded.timings, compiledBy: loaded.compiledBy,
        ...(ipsets ? { ipsetFiles: values.ipset, ipsets: setSummary } : {}),
        maxRssBytes: process.resourceUsage().maxRSS * 1024,
      }, null, 2)}\n`);
      return EXIT_OK;
    }
    const out: string[] = [];
    out.push(`${positionals.join(', ')}: OK`);
    out.push(`  tables:    ${loaded.parsedTables.map((t) => `${t.name} (IPv${t.family}, ${t.file})`).join(', ')}`);
    if (loaded.skipped.length) {
      out.push(`  skipped:   ${loaded.skipped.map((s) => `${s.table} (${s.rules} rules, ${s.file}:${s.line})`).join(', ')} (--skip-tables)`);
    }
    out.push(`  chains:    ${s.chains} (${s.chains - s.userChains} built-in, ${s.userChains} user)`);
    out.push(`  rules:     ${s.sourceRules} source rules -> ${s.records} compiled records`);
    out.push('  per hook:');
    for (const h of perHook) {
      out.push(`    IPv${h.family.slice(3)} ${h.hook.padEnd(8)} ${String(h.rules).padStart(9)} rules ${String(h.records).padStart(9)} records`);
    }
    const feats = Object.entries(s.features).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`);
    out.push(`  features:  ${feats.join(', ') || 'none'}`);
    if (ipsets) out.push(`  ip sets:   ${setSummary.map((x) => `${x.name} (${x.type}, ${x.entries} entries)`).join(', ') || 'none'} from ${values.ipset!.join(', ')}`);
    const t = loaded.timings;
    out.push(`  time:      read ${t.readSeconds.toFixed(3)} s, parse ${t.parseSeconds.toFixed(3)} s, compile ${t.compileSeconds.toFixed(3)} s (${loaded.compiledBy === 'addon' ? 'the addon\'s text compiler' : 'the reference parser and compiler'})`);
    process.stdout.write(`${out.join('\n')}\n`);
    return EXIT_OK;
  } catch (err) {
    progress.done();
    if (err instanceof RuleError) {
      if (values.json) process.stdout.write(`${JSON.stringify({ ok: false, ...err.toJSON() }, null, 2)}\n`);
      process.stderr.write(`flatwall: ${err.message}\n`);
      return EXIT_ERRORS;
    }
    throw err;
  }
}

interface Loaded {
  stats: CompileStats;
  tables: TableInfo[];
  parsedTables: Array<{ name: string; family: Family; file: string }>;
  skipped: SkippedTable[];
  interfaceClasses: number;
  timings: LoadTimings;
  compiledBy: 'addon' | 'reference';
}

/** The files compiled by the addon's text compiler when it takes them (src/rules/text-fast-path.ts), else by the reference. */
function load(files: string[], opts: { family?: Family; skipOtherTables?: boolean; maxRecords?: number }, progress: Progress): Loaded {
  const onNotice = (m: string) => process.stderr.write(`${m}\n`);
  const t0 = performance.now();
  const texts = readRuleTexts(files);
  const t1 = performance.now();
  const readSeconds = (t1 - t0) / 1000;
  if (fastPathEnabled()) {
    const r = fastCompileTexts(texts, opts);
    const t2 = performance.now();
    if (!('declined' in r)) {
      for (const n of r.notices) onNotice(n);
      const total = (t2 - t1) / 1000;
      return {
        stats: r.stats, tables: r.tables, skipped: r.skipped ?? [], interfaceClasses: r.ifaceCuts.length + 1,
        parsedTables: r.parsedTables,
        // The compile is timed natively; parse is the rest (the family scan, the copy into the addon, the parse).
        timings: { readSeconds, parseSeconds: total - r.compileSeconds, compileSeconds: r.compileSeconds },
        compiledBy: 'addon',
      };
    }
  }
  // The reference, on the texts already read.
  const { compiled, timings } = loadRuleTexts(texts, readSeconds, { ...opts, onNotice, onParseProgress: (_file, d, t) => progress.update(d, t) });
  return {
    stats: compiled.stats, tables: compiled.tables, skipped: compiled.source.skipped ?? [], interfaceClasses: compiled.ifaces.count,
    parsedTables: compiled.source.tables.map((t) => ({ name: t.name, family: t.family, file: t.file })),
    timings, compiledBy: 'reference',
  };
}
