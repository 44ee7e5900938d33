// Rule files for the lab and the end-to-end benchmark: generated sets are
// streamed to disk (1M rules ~ 67 MB) without holding them in memory.
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { FAMILIES, generateLines, type GenFamily } from '../rules/generate';

export interface GenSpec {
  family: GenFamily;
  rules: number;
}

/** "chain:1000000" (underscores and a k/M suffix allowed) -> spec, or an error message. */
export function parseGenSpec(s: string): GenSpec | string {
  const m = /^([a-z0-9]+):([\d_]+)([kKmM]?)$/.exec(s.trim());
  if (!m) return `--generate wants FAMILY:N (e.g. chain:1000000), got "${s}"`;
  const family = m[1] as GenFamily;
  if (!FAMILIES.includes(family)) return `unknown rule family "${m[1]}" (one of: ${FAMILIES.join(', ')})`;
  const mult = m[3] === '' ? 1 : m[3].toLowerCase() === 'k' ? 1000 : 1_000_000;
  const rules = Number(m[2].replace(/_/g, '')) * mult;
  if (!Number.isSafeInteger(rules) || rules < 1) return `N must be a positive integer, got "${m[2]}${m[3]}"`;
  return { family, rules };
}

/** Write a generated rule set to `file`; returns the seconds it took. */
export async function writeGenerated(spec: GenSpec, file: string, onProgress?: (done: number, total: number) => void): Promise<number> {
  const t0 = performance.now();
  const out = createWriteStream(file);
  let buf: string[] = [];
  let n = 0;
  for (const line of generateLines({ family: spec.family, rules: spec.rules, seed: 1 })) {
    buf.push(line);
    if (buf.length >= 16384) {
      n += buf.length;
      if (!out.write(`${buf.join('\n')}\n`)) await once(out, 'drain');
      buf = [];
      onProgress?.(n, spec.rules + 6);
    }
  }
  out.end(buf.length ? `${buf.join('\n')}\n` : '');
  await once(out, 'finish');
  return (performance.now() - t0) / 1000;
}
