// IP address text <-> numbers, on the rule-loading hot path (a 1M-rule file
// has 2M addresses). IPv4 addresses are numbers, IPv6 addresses bigints.
// Formatting follows glibc inet_ntop, which is what iptables-save prints.
// (ip-num is the independent oracle these are tested against; at ~20 us per
// IPv6 parse it is too slow to load a million rules with.)

export const V4_MAX = 0xffffffff;
export const V6_MAX = (1n << 128n) - 1n;

/** Strict dotted quad: four decimal octets, no leading '+', no empty parts. */
export function parseIPv4(s: string): number | undefined {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return undefined;
    } else if (c === 46) {
      if (digits === 0 || ++dots > 3) return undefined;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
    } else {
      return undefined;
    }
  }
  if (dots !== 3 || digits === 0) return undefined;
  return value * 256 + octet;
}

export function formatIPv4(v: number): string {
  return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

function hexGroup(s: string): number | undefined {
  if (s.length === 0 || s.length > 4) return undefined;
  let v = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let d: number;
    if (c >= 48 && c <= 57) d = c - 48;
    else if (c >= 97 && c <= 102) d = c - 87;
    else if (c >= 65 && c <= 70) d = c - 55;
    else return undefined;
    v = v * 16 + d;
  }
  return v;
}

/** RFC 4291 text forms, including '::' and a trailing dotted quad. */
export function parseIPv6(s: string): bigint | undefined {
  if (s.length < 2 || s.length > 45) return undefined;
  const dbl = s.indexOf('::');
  if (dbl !== -1 && s.indexOf('::', dbl + 1) !== -1) return undefined;
  const parseSide = (part: string, allowV4Tail: boolean): number[] | undefined => {
    if (part === '') return [];
    const groups = part.split(':');
    const out: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i];
      if (allowV4Tail && i === groups.length - 1 && g.includes('.')) {
        const v4 = parseIPv4(g);
        if (v4 === undefined) return undefined;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else {
        const v = hexGroup(g);
        if (v === undefined) return undefined;
        out.push(v);
      }
    }
    return out;
  };
  let words: number[];
  if (dbl === -1) {
    const w = parseSide(s, true);
    if (!w || w.length !== 8) return undefined;
    words = w;
  } else {
    const head = parseSide(s.slice(0, dbl), false);
    const tail = parseSide(s.slice(dbl + 2), true);
    if (!head || !tail || head.length + tail.length > 7) return undefined;
    words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  let v = 0n;
  for (const w of words) v = (v << 16n) | BigInt(w);
  return v;
}

export function formatIPv6(v: bigint): string {
  const w: number[] = [];
  for (let i = 7; i >= 0; i--) w.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  // Longest run of two or more zero groups, the first one on a tie.
  let bestBase = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestBase = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) bestBase = -1;
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    // Embedded IPv4, as inet_ntop prints ::a.b.c.d and ::ffff:a.b.c.d.
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && w[5] === 0xffff))) {
      out += `${w[6] >>> 8}.${w[6] & 255}.${w[7] >>> 8}.${w[7] & 255}`;
      break;
    }
    out += w[i].toString(16);
  }
  if (bestBase !== -1 && bestBase + bestLen === 8) out += ':';
  return out;
}

/** [lo, hi] of a prefix, host bits cleared (what iptables stores). */
export function prefixRange4(addr: number, len: number): [number, number] {
  if (len === 0) return [0, V4_MAX];
  const hostBits = 32 - len;
  const size = 2 ** hostBits;
  const lo = addr - (addr % size);
  return [lo, lo + size - 1];
}

export function prefixRange6(addr: bigint, len: number): [bigint, bigint] {
  const hostBits = BigInt(128 - len);
  const mask = (1n << hostBits) - 1n;
  const lo = addr & ~mask & V6_MAX;
  return [lo, lo | mask];
}

/** Length of a contiguous dotted netmask, or undefined if it has holes. */
export function maskLength4(mask: number): number | undefined {
  const inv = V4_MAX - mask; // host bits
  // host bits must be 2^k - 1
  if (((inv + 1) & inv) !== 0 && inv !== V4_MAX) return undefined;
  return 32 - Math.round(Math.log2(inv + 1));
}

export function maskLength6(mask: bigint): number | undefined {
  const inv = V6_MAX ^ mask;
  if (((inv + 1n) & inv) !== 0n) return undefined;
  return 128 - (inv === 0n ? 0 : inv.toString(2).length);
}
