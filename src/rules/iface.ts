// Interface names -> small integer classes, so that `-i eth0`, `-i eth+` and
// `! -i eth+` are each one or two integer ranges in the classifier.
//
// Every exact name and every prefix the rules mention cuts the (sorted) space
// of all strings. Strings that start with a prefix are contiguous in that
// order, so each condition covers a run of consecutive classes. An exact name
// `e` covers [e, e + "\0"), which holds only e itself. The class of any
// interface, named in the rules or not, is the number of cut points <= it.
import type { IfaceMatch } from './model';

export const IFACE_CLASS_MAX = 0xffff;

function successor(prefix: string): string {
  // The least string greater than every string that starts with `prefix`.
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

export class IfaceClasses {
  private readonly cuts: string[];

  constructor(matches: Iterable<IfaceMatch>) {
    const set = new Set<string>();
    for (const m of matches) {
      if (m.wildcard) {
        if (m.name.length === 0) continue; // "+" matches everything: no cut
        set.add(m.name);
        set.add(successor(m.name));
      } else {
        set.add(m.name);
        set.add(`${m.name}\0`);
      }
    }
    this.cuts = [...set].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    if (this.cuts.length > IFACE_CLASS_MAX) throw new Error(`too many distinct interface names in the rules (${set.size})`);
  }

  /** Number of classes; ids are 0 .. count-1. */
  get count(): number {
    return this.cuts.length + 1;
  }

  /** Class of a concrete interface name. */
  classOf(name: string): number {
    let lo = 0;
    let hi = this.cuts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.cuts[mid] <= name) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The classes a match covers, as one inclusive range. */
  range(m: IfaceMatch): [number, number] {
    if (m.wildcard) {
      if (m.name.length === 0) return [0, this.count - 1];
      return [this.classOf(m.name), this.classOf(successor(m.name)) - 1];
    }
    const c = this.classOf(m.name);
    return [c, c];
  }

  /** Whether `m` is one of the conditions these classes were cut for (so range(m) is exact). */
  knows(m: IfaceMatch): boolean {
    if (m.wildcard) return m.name.length === 0 || (this.has(m.name) && this.has(successor(m.name)));
    return this.has(m.name) && this.has(`${m.name}\0`);
  }

  private has(cut: string): boolean {
    const i = this.classOf(cut) - 1;
    return i >= 0 && this.cuts[i] === cut;
  }

  toJSON(): string[] {
    return this.cuts;
  }

  /** The classes of a saved rule set (toJSON's output), e.g. from a snapshot. */
  static fromCuts(cuts: string[]): IfaceClasses {
    const c = new IfaceClasses([]);
    (c as unknown as { cuts: string[] }).cuts = [...cuts];
    return c;
  }
}
