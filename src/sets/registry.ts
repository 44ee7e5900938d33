// The sets rules can name: one store per process (the running firewall's,
// or `flatwall check --ipset`'s), so that the rule compiler can check a
// `-m set --match-set NAME src,dst` against it without being handed the
// store: the set must exist, and setDims(...).dims tells how many of the
// flags it uses (the kernel's ip_set_test never matches with fewer flags
// than the set has dimensions). `id` is the native store's id for the name
// (SetStore::Find), what a compiled rule hands to SetStore::Test.
//
// Sets come from `--ipset FILE` (loaded before the rules) and the API
// (`flatwall ctl ipset ...`); they are not part of rule snapshots.
import type { IpsetStore, SetDims } from './store';

export type { SetDims } from './store';

let active: IpsetStore | undefined;
// On the build thread (src/control/build-thread.ts), which has no store:
// the descriptions the main thread's store gave when the build started.
let described: Map<string, SetDims> | undefined;
let references: (name: string) => number = () => 0;

/** Makes `store` the one setDims() answers from (undefined: none). */
export function useSetStore(store: IpsetStore | undefined): void {
  active = store;
  if (store) store.references = (name) => references(name);
}

export function activeSetStore(): IpsetStore | undefined {
  return active;
}

/** The named set's type, family, dimensions and id; undefined when it does not exist. */
export function setDims(name: string): SetDims | undefined {
  return described ? described.get(name) : active?.describe(name);
}

/** Every set's description, from the active store (what a build thread is handed). */
export function describeSets(): Array<[string, SetDims]> {
  return active ? active.names().map((n): [string, SetDims] => [n, active!.describe(n)!]) : [];
}

/** Answer setDims() from these descriptions (a build thread). */
export function useSetDescriptions(sets: Array<[string, SetDims]>): void {
  described = new Map(sets);
}

/** `fn` with setDims() answering from `sets` (re-reading a rule set as it was built), then as before. */
export function withSetDescriptions<T>(sets: Map<string, SetDims>, fn: () => T): T {
  const before = described;
  described = sets;
  try {
    return fn();
  } finally {
    described = before;
  }
}

/**
 * How many rules of the active rule set reference each set, for `ipset
 * list`'s References and for refusing to destroy or rename a referenced set
 * (the rule compiler's integration calls this; the default counts none).
 */
export function setReferenceCounter(count: ((name: string) => number) | undefined): void {
  references = count ?? (() => 0);
}
