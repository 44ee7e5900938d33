// `flatwall run --rules-cache DIR`: the compiled form of the rule files,
// kept as snapshots named by what they were compiled from, so that a restart
// with unchanged files (a crash, a reboot, a pod rescheduled) starts from the
// snapshot (under a second at 1M rules) instead of parsing and compiling
// again (seconds).
//
// The key is a SHA-256 over the native table layout, the flatwall version,
// the options that change what the files compile to (-4/-6, --skip-tables)
// and every file's name and bytes, in order. A hit is read and verified as
// any snapshot (snapshot.ts: checksums, layout); anything wrong with it
// falls back to the files. After a load from the files the cache is written
// in the background: the classifier image is built off the event loop, the
// file written beside and renamed (never half a snapshot under the name),
// and all but the newest KEEP entries removed. Rule sets with -m set cannot
// be snapshotted (their set ids are the running store's) and are not cached.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { CompiledRuleSet } from '../rules/compile';
import type { Family } from '../rules/model';
import { buildImage, layoutId, writeSnapshot } from './snapshot';
import { drain } from '../rules/steps';

const VERSION: string = require('../../../package.json').version;
const KEEP = 2;
const HASH_STEP = 4 << 20;

export interface CacheKeyOptions {
  family?: Family;
  skipOtherTables?: boolean;
}

export class RulesCache {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** The key of the files as they are now (reads them; undefined if one cannot be read: the load will say why). */
  keyOfFiles(files: string[], o: CacheKeyOptions): string | undefined {
    try {
      return drain(this.keySteps(files.map((file) => ({ file, bytes: readFileSync(file) })), o));
    } catch {
      return undefined;
    }
  }

  /**
   * The key of these files' bytes: what a load parsed, so the entry is the
   * compiled form of exactly them. Hashed a few MiB at a step (~10 ms each):
   * a reload's key is computed on the event loop.
   */
  *keySteps(files: Array<{ file: string; bytes: Uint8Array }>, o: CacheKeyOptions): Generator<unknown, string> {
    const h = createHash('sha256');
    h.update(JSON.stringify({ layout: layoutId(), flatwall: VERSION, family: o.family ?? null, skip: !!o.skipOtherTables, files: files.map((t) => t.file) }));
    for (const t of files) {
      for (let at = 0; at < t.bytes.length; at += HASH_STEP) {
        h.update(t.bytes.subarray(at, at + HASH_STEP));
        yield;
      }
      h.update('\0');
    }
    return h.digest('hex').slice(0, 32);
  }

  path(key: string): string {
    return join(this.dir, `${key}.snap`);
  }

  /** The snapshot for `key`, if there is one. */
  lookup(key: string): string | undefined {
    const p = this.path(key);
    try {
      return statSync(p).isFile() ? p : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Write `compiled` as the entry for `key`; resolves to the bytes written,
   * or rejects with why not (the caller logs it: the firewall runs on).
   */
  async store(key: string, compiled: CompiledRuleSet, sources: string[]): Promise<number> {
    const image = await buildImage(compiled);
    const { bytes } = writeSnapshot(this.path(key), compiled, sources, image);
    this.prune(key);
    return bytes;
  }

  /** Keep the newest KEEP entries (and always `keep`). */
  private prune(keep: string): void {
    const entries = readdirSync(this.dir)
      .filter((f) => /^[0-9a-f]{32}\.snap$/.test(f))
      .map((f) => ({ f, t: statSync(join(this.dir, f)).mtimeMs }))
      .sort((a, b) => b.t - a.t);
    for (const e of entries.slice(KEEP)) if (e.f !== `${keep}.snap`) rmSync(join(this.dir, e.f), { force: true });
  }
}
