// Canonical iptables-save / ip6tables-save spellings used by the generators.
//
// Addresses are printed the way the kernel tools print them: host bits
// cleared, the prefix length always present ("/32", "/128"), IPv6 in the
// glibc inet_ntop form (lower-case hex, no leading zeros, the leftmost
// longest run of two or more zero groups replaced by "::"). A /0 match is
// never printed by iptables-save, so callers omit -s/-d for length 0.

const OCTET: string[] = [];
for (let i = 0; i < 256; i++) OCTET.push(String(i));
const SLASH4: string[] = OCTET.slice(0, 33).map((o) => '/' + o);

/** Netmask for an IPv4 prefix length 0..32, as an unsigned 32-bit integer. */
export function mask4(len: number): number {
  return len <= 0 ? 0 : len >= 32 ? 0xffffffff : (0xffffffff << (32 - len)) >>> 0;
}

/** Dotted quad of an unsigned 32-bit address. */
export function ip4(a: number): string {
  return OCTET[a >>> 24] + '.' + OCTET[(a >>> 16) & 255] + '.' + OCTET[(a >>> 8) & 255] + '.' + OCTET[a & 255];
}

/** "a.b.c.d/len" with host bits cleared. */
export function cidr4(a: number, len: number): string {
  return ip4((a & mask4(len)) >>> 0) + SLASH4[len];
}

/** Mask one 32-bit word of an IPv6 address: word index w (0..3), prefix length len. */
export function mask6Word(w: number, len: number): number {
  return mask4(len - 32 * w);
}

let HEX: string[] | null = null;
let HEXC: string[] | null = null;
function hexTable(): string[] {
  // All 65536 hextet spellings, bare (HEX) and followed by ':' (HEXC), built
  // on first IPv6 use (a few MB, a few ms).
  if (!HEX) {
    HEX = new Array<string>(65536);
    HEXC = new Array<string>(65536);
    for (let v = 0; v < 65536; v++) {
      HEX[v] = v.toString(16);
      HEXC[v] = HEX[v] + ':';
    }
  }
  return HEX;
}

// RUN[z] for the 8-bit mask z of zero groups (bit i = group i is zero): the
// leftmost longest run of >= 2 zero groups as base * 16 + length, or -1.
const RUN = new Int8Array(256);
for (let z = 0; z < 256; z++) {
  let bestBase = -1;
  let bestLen = 0;
  let cur = 0;
  for (let i = 0; i < 8; i++) {
    if (z & (1 << i)) {
      cur++;
      if (cur > bestLen) {
        bestLen = cur;
        bestBase = i - cur + 1;
      }
    } else cur = 0;
  }
  RUN[z] = bestLen >= 2 ? bestBase * 16 + bestLen : -1;
}

const G = new Int32Array(8);

/** inet_ntop-style text of an IPv6 address given as four big-endian 32-bit words. */
export function ip6(w0: number, w1: number, w2: number, w3: number): string {
  const hex = hexTable();
  const hexc = HEXC!;
  G[0] = w0 >>> 16;
  G[1] = w0 & 0xffff;
  G[2] = w1 >>> 16;
  G[3] = w1 & 0xffff;
  G[4] = w2 >>> 16;
  G[5] = w2 & 0xffff;
  G[6] = w3 >>> 16;
  G[7] = w3 & 0xffff;
  let z = 0;
  for (let i = 0; i < 8; i++) if (G[i] === 0) z |= 1 << i;
  const run = RUN[z];
  if (run < 0) {
    return (
      hexc[G[0]] + hexc[G[1]] + hexc[G[2]] + hexc[G[3]] + hexc[G[4]] + hexc[G[5]] + hexc[G[6]] + hex[G[7]]
    );
  }
  const base = run >> 4;
  const end = base + (run & 15);
  // IPv4-compatible / IPv4-mapped forms, as inet_ntop prints them.
  if (base === 0 && (end === 6 || (end === 5 && G[5] === 0xffff))) {
    return (end === 5 ? '::ffff:' : '::') + ip4(w3 >>> 0);
  }
  // "a:b:" + ":" + "c:d", or "::" + "c:d", or "a:b:" + ":".
  let out = '';
  for (let i = 0; i < base; i++) out += hexc[G[i]];
  out += base === 0 ? '::' : ':';
  if (end < 8) {
    for (let i = end; i < 7; i++) out += hexc[G[i]];
    out += hex[G[7]];
  }
  return out;
}

const SLASH: string[] = [];
for (let i = 0; i <= 128; i++) SLASH.push('/' + i);

/** "addr/len" for IPv6 with host bits cleared. */
export function cidr6(w0: number, w1: number, w2: number, w3: number, len: number): string {
  return (
    ip6(
      (w0 & mask4(len)) >>> 0,
      (w1 & mask4(len - 32)) >>> 0,
      (w2 & mask4(len - 64)) >>> 0,
      (w3 & mask4(len - 96)) >>> 0,
    ) + SLASH[len]
  );
}

/** iptables-save spelling of a port or port range. */
export function portRange(lo: number, hi: number): string {
  return lo === hi ? String(lo) : lo + ':' + hi;
}

/**
 * iptables-save quoting of a string option (xtables_save_string): bare when it
 * is only [A-Za-z0-9_-], otherwise in double quotes with " \ ' escaped.
 */
export function saveString(v: string): string {
  if (/^[A-Za-z0-9_-]+$/.test(v)) return v;
  return '"' + v.replace(/["\\']/g, (c) => '\\' + c) + '"';
}
