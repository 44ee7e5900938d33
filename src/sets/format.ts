// `ipset list` and `ipset save` output for flatwall's sets, byte for byte
// what ipset 7.x prints for the same sets (lib/session.c list_create and
// list_adt), with the members of hash types in `ipset -s` (sorted) order:
// the kernel lists a hash set in bucket order, which depends on its random
// initval, so the sorted form is the only reproducible one, and ours is
// always sorted. What differs from the kernel's: "Size in memory" (our
// tables' bytes, not the kernel's), and the hashsize of a set the kernel has
// grown (ours stays as created).
import { formatElement, formatExtensions } from './entry';
import { SET_TYPES, type NativeSetInfo } from './types';

/** The part after "Header: " (and after the type in a save's create line). */
export function headerText(s: NativeSetInfo): string {
  const o = s.options;
  let h: string;
  if (o.type === 'bitmap:port') {
    h = `range ${o.range![0]}-${o.range![1]}`;
  } else {
    h = `family ${o.family} hashsize ${o.hashsize} maxelem ${o.maxelem}`;
  }
  if (o.timeout !== undefined) h += ` timeout ${o.timeout}`;
  if (o.counters) h += ' counters';
  if (o.comment) h += ' comment';
  if (SET_TYPES[o.type].hash) h += ` bucketsize ${o.bucketsize} initval 0x${(o.initval ?? 0).toString(16).padStart(8, '0')}`;
  return h;
}

/** Member lines of a set, without the newline, in ipset -s order for hash types. */
export function memberLines(s: NativeSetInfo): string[] {
  const ctx = { type: s.options.type, family: s.options.family };
  const lines = (s.members ?? []).map((e) => formatElement(ctx, e) + formatExtensions(s.options, e));
  if (SET_TYPES[s.options.type].hash) lines.sort((a, b) => bystrcmp(`${a}\n`, `${b}\n`));
  else lines.sort((a, b) => Number(a.split(' ')[0]) - Number(b.split(' ')[0]));
  return lines;
}

export interface ListTextOptions {
  /** -t: headers only. */
  terse?: boolean;
  /** References of a set (the rules that use it). */
  references?: (name: string) => number;
}

/** `ipset list [NAME]` (plain output). */
export function listText(sets: NativeSetInfo[], opts: ListTextOptions = {}): string {
  let out = '';
  sets.forEach((s, i) => {
    if (i > 0) out += '\n';
    out += `Name: ${s.name}\nType: ${s.type}\nRevision: ${s.revision}\nHeader: ${headerText(s)}\n`;
    out += `Size in memory: ${s.memoryBytes}\nReferences: ${opts.references?.(s.name) ?? 0}\nNumber of entries: ${s.entries}\n`;
    if (opts.terse) return;
    out += 'Members:\n';
    for (const l of memberLines(s)) out += `${l}\n`;
  });
  return out;
}

/** `ipset list -n`. */
export function namesText(sets: { name: string }[]): string {
  return sets.map((s) => `${s.name}\n`).join('');
}

/** `ipset save [NAME]`: what `ipset restore` (and flatwall's --ipset) reads back. */
export function saveText(sets: NativeSetInfo[]): string {
  let out = '';
  for (const s of sets) {
    out += `create ${s.name} ${s.type} ${headerText(s)}\n`;
    for (const l of memberLines(s)) out += `add ${s.name} ${l}\n`;
  }
  return out;
}

// ---- ipset's sort (lib/session.c bystrcmp) ----

const isSpace = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';
const isHex = (c: string) => /^[0-9a-fA-F]$/.test(c);
const LONG_MAX = (1n << 63n) - 1n;

/** strtol(s + i, &end, 16): the value and the end index (i when nothing was converted). */
function strtol16(s: string, i: number): { value: bigint; end: number } {
  let j = i;
  while (j < s.length && isSpace(s[j])) j++;
  let neg = false;
  if (s[j] === '+' || s[j] === '-') neg = s[j++] === '-';
  if (s[j] === '0' && (s[j + 1] === 'x' || s[j + 1] === 'X') && isHex(s[j + 2] ?? '')) j += 2;
  const start = j;
  while (j < s.length && isHex(s[j])) j++;
  if (j === start) return { value: 0n, end: i };
  let v = BigInt(`0x${s.slice(start, j)}`);
  if (v > LONG_MAX) v = neg ? LONG_MAX + 1n : LONG_MAX; // ERANGE: LONG_MIN / LONG_MAX
  else if (neg) v = -v;
  return { value: v, end: j };
}

function strcspn(s: string, i: number, reject: string): number {
  let j = i;
  while (j < s.length && !reject.includes(s[j])) j++;
  return j - i;
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * ipset's sort comparator on two printed member lines, ported as is: runs of
 * hex digits compare as numbers, '/' reverses the order of what follows (so
 * longer prefixes of the same network come first), other runs up to ':' or
 * ',' compare by length, then bytes.
 */
export function bystrcmp(x: string, y: string): number {
  const at = (s: string, k: number) => (k < s.length ? s[k] : '\0');
  let i = 0;
  let j = 0;
  let neg = 1n;
  while (at(x, i) !== '\0' && at(y, j) !== '\0') {
    const a = strtol16(x, i);
    const b = strtol16(y, j);
    if (a.end === i || b.end === j) {
      // No leading numbers: proto:port, iface, setname
      const n1 = strcspn(x, i, ':,');
      const n2 = strcspn(y, j, ':,');
      if (n1 !== 0 || n2 !== 0) {
        if (n1 === n2) {
          const c = cmpStr(x.slice(i, i + n1), y.slice(j, j + n1));
          if (c === 0) {
            i += n1 + 1;
            j += n1 + 1;
            neg = 1n;
            continue;
          }
          return c;
        }
        return n1 < n2 ? -1 : 1;
      }
      return cmpStr(x.slice(i), y.slice(j));
    }
    if (a.value !== b.value) {
      // `return neg * (n1 - n2)`: a long difference returned as int.
      return Number(BigInt.asIntN(32, neg * (a.value - b.value)));
    }
    const s1 = at(x, a.end);
    const s2 = at(y, b.end);
    if (s1 === '/' || s2 === '/') {
      if (s1 === s2) neg = s1 === '/' ? -1n : 1n;
      else if (s1 === '/') return 1;
      else return -1;
    }
    i = a.end + 1;
    j = b.end + 1;
    // IPv6 '::'
    if (at(x, i) === ':' || at(y, j) === ':') {
      if (at(x, i) === at(y, j)) {
        i++;
        j++;
      } else if (at(x, i) === ':') {
        return -1;
      } else {
        return 1;
      }
    }
  }
  return at(x, i) !== '\0' ? 1 : at(y, j) !== '\0' ? -1 : 0;
}
