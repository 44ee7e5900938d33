// The control plane's handle on a native set store (native/sets/set_store.h):
// ipset text in (restore files, `ipset add ...` lines), ipset text and JSON
// out. A restore is parsed whole, then applied by the native store in one
// step: on any error nothing changed, and the error is a RuleError at the
// file:line:column of the line that failed.
import { readFileSync } from 'node:fs';
import { native } from '../native';
import { RuleError, errnoText } from '../rules/errors';
import { ElementError, parseElement, type ElementContext } from './entry';
import { listText, namesText, saveText } from './format';
import { parseIpsetText, type ParsedSets, type Where } from './parse';
import { SET_TYPES, type FamilyName, type NativeCommand, type NativeSetInfo, type NativeSetStore, type SetTypeName } from './types';

/** What a rule needs to know about a set (src/sets/registry.ts). */
export interface SetDims {
  type: SetTypeName;
  family: FamilyName | undefined; // undefined: bitmap:port (either family)
  dims: 1 | 2;
  /** The native store's id (stable for the name: SetStore::Find). */
  id: number;
}

/** An ipset-level failure that is not about a position in a text (unknown set, bad element on the command line). */
export class SetStoreError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

export interface RestoreResult {
  /** Native commands applied (a range or CIDR is one per element). */
  commands: number;
  lines: number;
  seconds: number;
}

export class IpsetStore {
  readonly native: NativeSetStore;
  /** Bumped by every change applied (a standby resends the sets when it moves: src/control/standby.ts). */
  changes = 0;
  /** How many rules reference a set; the rule compiler's integration sets it (destroy/rename refuse referenced sets, like the kernel). */
  references: (name: string) => number = () => 0;

  constructor(store?: NativeSetStore) {
    this.native = store ?? (new (native().SetStore)() as NativeSetStore);
  }

  /** The set's type and family, for parsing its elements. */
  readonly lookup = (name: string): ElementContext | undefined => {
    const d = this.native.describe(name);
    return d && { type: d.type, family: d.family };
  };

  describe(name: string): SetDims | undefined {
    const d = this.native.describe(name);
    return d && { type: d.type, family: d.family, dims: d.dims, id: d.id };
  }

  names(): string[] {
    return this.native.names();
  }

  /** Parses `text` (ipset save/restore form) and applies it, all or nothing. */
  restore(text: string, file: string, opts: { exist?: boolean } = {}): RestoreResult {
    const t0 = performance.now();
    const parsed = parseIpsetText(text, file, { lookup: this.lookup, exist: opts.exist });
    this.apply([parsed]);
    return { commands: parsed.commands.length, lines: parsed.lines, seconds: (performance.now() - t0) / 1000 };
  }

  /** Applies parsed texts in order as one step. */
  apply(texts: ParsedSets[]): void {
    const commands: NativeCommand[] = [];
    const where: Where[] = [];
    for (const p of texts) {
      commands.push(...p.commands);
      where.push(...p.where);
    }
    this.checkReferences(commands, where);
    try {
      this.native.restore(commands);
      this.changes++;
    } catch (err) {
      const e = err as Error & { index?: number };
      if (e.index === undefined || !where[e.index]) throw err;
      const w = where[e.index];
      throw new RuleError({ file: w.file, line: w.line, col: w.col }, e.message, w.token);
    }
  }

  private checkReferences(commands: NativeCommand[], where: Where[]): void {
    commands.forEach((c, i) => {
      const w = where[i];
      const refused = (name: string, msg: string) => {
        if (this.references(name) > 0) throw new RuleError({ file: w.file, line: w.line, col: w.col }, msg, w.token);
      };
      if (c.op === 'destroy') {
        for (const n of c.name !== undefined ? [c.name] : this.names()) refused(n, 'Set cannot be destroyed: it is in use by a kernel component');
      } else if (c.op === 'rename') {
        refused(c.name, 'Set cannot be renamed: it is in use by another system');
      }
    });
  }

  /** `ipset test NAME ELEMENT`: whether it is in the set, and the element as ipset names it. */
  test(name: string, element: string): { present: boolean; element: string } {
    const ctx = this.lookup(name);
    if (!ctx) throw new SetStoreError('The set with the given name does not exist', 'no_set');
    let parsed;
    try {
      parsed = parseElement(ctx, element);
    } catch (err) {
      if (err instanceof ElementError) throw new SetStoreError(err.message, 'bad_element');
      throw err;
    }
    if (parsed.entries.length !== 1) {
      const fam = ctx.family ? ` and family ${ctx.family}` : '';
      throw new SetStoreError(`a range of elements is not allowed in command test with set type ${ctx.type}${fam}`, 'bad_element');
    }
    return { present: this.native.test(name, parsed.entries[0]), element: parsed.shown };
  }

  list(name?: string, members = true): NativeSetInfo[] {
    try {
      return this.native.list(name, members);
    } catch (err) {
      if ((err as { code?: string }).code === 'no_set') throw new SetStoreError((err as Error).message, 'no_set');
      throw err;
    }
  }

  listText(name?: string, opts: { terse?: boolean; names?: boolean } = {}): string {
    if (opts.names) return namesText(name ? this.list(name, false) : this.names().map((n) => ({ name: n })));
    return listText(this.list(name, !opts.terse), { terse: opts.terse, references: this.references });
  }

  saveText(name?: string): string {
    return saveText(this.list(name, true));
  }

  /** JSON summary (members: true adds the members as the native store lists them). */
  summary(name?: string, members = false): Record<string, unknown>[] {
    return this.list(name, members).map((s) => ({
      name: s.name, id: s.id, type: s.type, revision: s.revision, family: s.options.family, dims: SET_TYPES[s.type].dims,
      options: s.options, entries: s.entries, memoryBytes: s.memoryBytes, references: this.references(s.name),
      ...(members ? { members: s.members } : {}),
    }));
  }

  /** Reclaims expired entries, at most `budget` slots visited. */
  gc(budget = 65536): number {
    return this.native.gc(budget);
  }
}

/**
 * Loads ipset save/restore files (`flatwall run --ipset`, `flatwall check
 * --ipset`) as one step: a set created in an earlier file can be added to
 * in a later one; an error anywhere applies nothing.
 */
export function loadIpsetFiles(store: IpsetStore, files: string[]): { sets: number; commands: number; seconds: number } {
  const t0 = performance.now();
  const parsed: ParsedSets[] = [];
  const seen = new Map<string, ElementContext | undefined>();
  const lookup = (name: string) => (seen.has(name) ? seen.get(name) : store.lookup(name));
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (err) {
      throw new RuleError({ file: f, line: 0, col: 0 }, `cannot read the ipset file: ${errnoText(err as NodeJS.ErrnoException)}`);
    }
    const p = parseIpsetText(text, f, { lookup });
    for (const [n, c] of p.sets) seen.set(n, c);
    parsed.push(p);
  }
  store.apply(parsed);
  return { sets: store.names().length, commands: parsed.reduce((n, p) => n + p.commands.length, 0), seconds: (performance.now() - t0) / 1000 };
}
