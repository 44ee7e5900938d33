// The real-world corpus (test/corpus/README.md): where it is and its rule
// files, relative to it (`ufw/default.v4`, ...), for the tests that use it.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

// From dist/test/ back to the source tree's test/corpus.
export const CORPUS = join(__dirname, '..', '..', 'test', 'corpus');

export function corpusFiles(): string[] {
  const out: string[] = [];
  for (const d of readdirSync(CORPUS).sort()) {
    if (!statSync(join(CORPUS, d)).isDirectory()) continue;
    for (const f of readdirSync(join(CORPUS, d)).sort()) if (/\.v[46]$/.test(f)) out.push(`${d}/${f}`);
  }
  return out;
}
