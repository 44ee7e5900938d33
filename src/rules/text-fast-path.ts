// The fast path for iptables-save text: the addon's text compiler
// (native/rules/text_compiler.h) turns rule texts straight into the packed
// tables, the counter identities and the statistics, without a JavaScript
// object per rule. It covers the subset large rule sets are written in and
// declines everything else, and every error, to the reference parser and
// compiler (parse.ts, compile.ts), which stay the definition of what a file
// means. What it returns equals what compileSteps and identitiesSteps
// return for the same texts, field by field (text-fast-path.test.ts).
//
// The model (RuleSet, SourceRules) of a rule set built here is read on
// demand from its texts by the reference parser (deferred.ts), as for the
// build thread's rule sets.
import { native } from '../native';
import { textPreamble } from './load';
import { ICMPV6_TYPES, ICMP_TYPES, PROTO_BY_NAME, REJECT_CODE, REJECT_V4, REJECT_V6, SERVICES } from './iptables/names';
import { TARGETS } from './extensions/targets';
import { RuleError } from './errors';
import type { CompileStats, TableInfo } from './compile';
import type { Family, SkippedTable, TableName } from './model';
import type { RuleIdentities } from '../control/counters';

export interface FastPathOptions {
  family?: Family;
  skipOtherTables?: boolean;
  maxRules?: number;
  rulesBefore?: number;
  saveOnly?: boolean;
  maxRecords?: number;
  /** Collect the [packets:bytes] of rules and policies (iptables-restore -c). */
  fileCounters?: boolean;
}

export interface FastBuilt {
  buffer: ArrayBuffer;
  tables: TableInfo[];
  stats: CompileStats;
  ifaceCuts: string[];
  ruleIds: number;
  spans: { start: Uint32Array; end: Uint32Array };
  skipped?: SkippedTable[];
  identities: RuleIdentities;
  fileCounters?: Array<[number, bigint, bigint]>;
  /** The tables parsed, in order (what a listing of files says before the model is read). */
  parsedTables: Array<{ name: TableName; family: Family; file: string }>;
  /** Lines of each text (progress). */
  lines: number[];
  /** Notices the reference would have given while parsing (a BOM, no family evidence). */
  notices: string[];
  parseSeconds: number;
  compileSeconds: number;
}

export type FastResult = FastBuilt | { declined: string };

/**
 * A text still arriving (src/control/shared-body.ts): each call blocks
 * until what it asks for is there.
 */
export interface TextStream {
  /** The first n bytes, or all of a shorter text. */
  head(n: number): Uint8Array;
  /** All of it. */
  all(): Uint8Array;
  /** From byte `from` on: runs of whole lines as they arrive, the rest at the end, then null. */
  puller(from: number): () => Uint8Array | null;
}

export type FastInput = { file: string; text: string } | { file: string; bytes: Uint8Array } | { file: string; stream: TextStream };

/** Off when FLATWALL_TEXT_FAST_PATH=0: every text goes to the reference (tests, and a way out). */
export function fastPathEnabled(): boolean {
  return process.env.FLATWALL_TEXT_FAST_PATH !== '0';
}

// The name tables the compiler needs, from the rule language's own.
let names: object | undefined;
function nameTables(): object {
  return (names ??= {
    protocols: PROTO_BY_NAME, services: SERVICES, icmp: ICMP_TYPES, icmpv6: ICMPV6_TYPES,
    reject4: REJECT_V4, reject6: REJECT_V6, rejectCodes: REJECT_CODE, extTargets: [...TARGETS.keys()],
  });
}

/**
 * The first MiB of `b` (to its last newline) as text: the header, the
 * format and the first family evidence are found in it (the detection stops
 * at the first token, so a prefix with one gives the whole file's answer).
 */
function prefixText(b: Uint8Array): string {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  if (buf.length <= 1 << 20) return buf.toString('utf8');
  const nl = buf.lastIndexOf(10, 1 << 20);
  return buf.toString('utf8', 0, nl === -1 ? 1 << 20 : nl + 1);
}

/** 3 if `b` starts with a UTF-8 BOM, else 0 (the preamble strips it from the text: the addon must not see it). */
function bomLength(b: Uint8Array): number {
  return b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0;
}

/** Bytes of text the addon copies at a time. */
const CHUNK = 4 << 20;

/**
 * `text` as slices of about CHUNK characters, each but the last ending in
 * a newline (slices share the string's memory until the addon copies them).
 */
function lineChunks(text: string): string[] {
  const out: string[] = [];
  let at = 0;
  while (text.length - at > CHUNK) {
    const nl = text.indexOf('\n', at + CHUNK);
    if (nl === -1) break;
    out.push(text.slice(at, nl + 1));
    at = nl + 1;
  }
  out.push(text.slice(at));
  return out;
}

/**
 * The texts compiled by the addon, or why not (then run the reference;
 * nothing was reported). Notices are returned, not given, so a declined
 * text is not noticed twice.
 */
export function fastCompileTexts(texts: FastInput[], opts: FastPathOptions, accept?: (file: string, family: Family) => string | undefined): FastResult {
  const notices: string[] = [];
  const inputs: Array<{ file: string; chunks?: string[]; bytes?: Uint8Array; pull?: () => Uint8Array | null; family: Family }> = [];
  for (const t of texts) {
    const { file } = t;
    const onNotice = (m: string) => notices.push(m);
    // What parseTextSteps does before the parser (textPreamble): the BOM,
    // the format, the family. Bytes go to the addon as they are; what the
    // preamble reads of them is decoded here (a prefix, or all of it for a
    // file without family evidence in the prefix).
    let p: ReturnType<typeof textPreamble>;
    let body: Uint8Array | undefined;
    let pull: (() => Uint8Array | null) | undefined;
    try {
      if ('stream' in t) {
        // What has arrived of the first MiB (all of a shorter text) is the prefix.
        const s = t.stream;
        const b = s.head((1 << 20) + 3);
        const bom = bomLength(b);
        p = textPreamble(prefixText(b), file, { ...opts, onNotice }, () => {
          const all = s.all();
          return Buffer.from(all.buffer, all.byteOffset + bom, all.length - bom).toString('utf8');
        });
        pull = s.puller(bom);
      } else if ('bytes' in t) {
        const b = t.bytes;
        body = b.subarray(bomLength(b));
        const all = body;
        p = textPreamble(prefixText(b), file, { ...opts, onNotice }, () => Buffer.from(all.buffer, all.byteOffset, all.length).toString('utf8'));
      } else {
        p = textPreamble(t.text, file, { ...opts, onNotice });
      }
    } catch (err) {
      if (err instanceof RuleError) return { declined: `${file}: family evidence disagrees` };
      throw err;
    }
    if (p.native) return { declined: `${file}: the native rule format` };
    const refused = accept?.(file, p.family);
    if (refused !== undefined) return { declined: refused };
    inputs.push(pull ? { file, pull, family: p.family } : body ? { file, bytes: body, family: p.family } : { file, chunks: lineChunks(p.text), family: p.family });
  }
  const r = native().compileRuleText(inputs, nameTables(), {
    skipOtherTables: opts.skipOtherTables ?? false,
    maxRules: opts.maxRules ?? undefined,
    rulesBefore: opts.rulesBefore ?? 0,
    maxRecords: opts.maxRecords,
    fileCounters: opts.fileCounters ?? false,
  });
  if (r.declined !== undefined) return { declined: r.declined as string };
  const parsedTables: FastBuilt['parsedTables'] = [];
  for (const t of r.parsedTableList as Array<{ file: number; family: Family }>) parsedTables.push({ name: 'filter', family: t.family, file: inputs[t.file].file });
  return {
    buffer: r.buffer, tables: r.tables, stats: r.stats, ifaceCuts: r.ifaceCuts, ruleIds: r.ruleIds, spans: r.spans,
    skipped: r.skipped.length ? r.skipped : undefined,
    identities: { fps: r.fps, keys: r.keys, keys2: r.keys2 },
    fileCounters: opts.fileCounters ? r.fileCounters : undefined,
    parsedTables, lines: r.lines, notices, parseSeconds: r.parseSeconds, compileSeconds: r.compileSeconds,
  };
}
