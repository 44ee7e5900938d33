// Hierarchical address pools: the "tree model" behind the generated prefixes.
//
// ClassBench (Taylor & Turner, ToN 2007, Sec. III-C / IV) does not draw
// addresses uniformly: it grows a binary trie of prefixes whose branching and
// skew come from the seed, so that filters share and nest prefixes the way
// real filter sets do. We keep the property that matters to classifiers --
// rules share parents and nest -- with a cheap, stateless three-level
// hierarchy that needs no per-rule memory:
//
//   IPv4: root (/8, /12, /16 or /20) -> subnet (/24) -> host (/32)
//   IPv6: root (/32 in 2000::/3) -> site (/48) -> LAN (/64) -> host (/128)
//
// A rule that needs a prefix of length L picks a host (root, subnet and host
// indices each drawn with a power-law skew, so a few are "hot") and keeps its
// top L bits. Two rules that chose the same root share every prefix shorter
// than the root length; the same subnet, every prefix up to /24; and so on,
// which produces realistic nesting (a /16, a /24 inside it, hosts inside
// that) instead of disjoint random prefixes. Every address is a pure hash of
// (seed, side, indices), so pools of any size cost nothing to hold.

import { hash32, mix32, Prng } from './prng';

export interface PoolShape {
  /** Number of top-level blocks. */
  roots: number;
  /** Subnets (v4 /24, v6 /48 sites) per root. */
  subnets: number;
  /** Hosts per subnet (v4: at most 256). */
  hosts: number;
  /** Skew exponents (1 = uniform, larger = more concentrated) for root, subnet, host. */
  skew: [1 | 2 | 3 | 4, 1 | 2 | 3 | 4, 1 | 2 | 3 | 4];
}

// First octets a v4 root may use: unicast, not 0/8, 10/8 (the test-traffic
// space, see rules/README.md), 127/8, and not 224/3.
const FIRST_OCTETS: number[] = [];
for (let o = 1; o < 224; o++) if (o !== 10 && o !== 127) FIRST_OCTETS.push(o);

// Root lengths for v4, chosen per root by hash: /8 10%, /12 20%, /16 45%, /20 25%.
function v4RootLen(h: number): number {
  const x = h % 100;
  return x < 10 ? 8 : x < 30 ? 12 : x < 75 ? 16 : 20;
}

/** Clamp a pool dimension to [1, max]. */
export function dim(n: number, max: number): number {
  return Math.max(1, Math.min(max, Math.floor(n)));
}

export class V4Pool {
  // Per-root constants, computed once: base address (first octet and the
  // root's own bits), root length, subnet permutation, and a key for hosts.
  private readonly base: Uint32Array;
  private readonly rlen: Uint8Array;
  private readonly smul: Uint32Array;
  private readonly soff: Uint32Array;
  private readonly hkey: Uint32Array;

  constructor(
    seed: number,
    side: number,
    private readonly shape: PoolShape,
  ) {
    const key = hash32(seed >>> 0, 0x4a11, side);
    const n = shape.roots;
    this.base = new Uint32Array(n);
    this.rlen = new Uint8Array(n);
    this.smul = new Uint32Array(n);
    this.soff = new Uint32Array(n);
    this.hkey = new Uint32Array(n);
    for (let r = 0; r < n; r++) {
      const hr = hash32(key, r);
      const rlen = v4RootLen(hr >>> 8);
      const first = FIRST_OCTETS[(hr >>> 16) % FIRST_OCTETS.length];
      const rootBits = rlen > 8 ? hash32(key, r, 1) >>> (32 - (rlen - 8)) : 0;
      this.base[r] = ((first << 24) | (rootBits << (32 - rlen))) >>> 0;
      this.rlen[r] = rlen;
      this.smul[r] = (hr | 1) >>> 0;
      this.soff[r] = hr >>> 3;
      this.hkey[r] = hash32(key, r, 2);
    }
  }

  /** A host address (unsigned 32-bit) drawn from the hierarchy. */
  pick(rng: Prng): number {
    const s = this.shape;
    const r = rng.skewed(s.roots, s.skew[0]);
    const k = rng.skewed(s.subnets, s.skew[1]);
    const m = rng.skewed(s.hosts, s.skew[2]);
    return this.host(r, k, m);
  }

  host(r: number, k: number, m: number): number {
    // Subnet: a permutation of k over the 24 - rlen bits below the root, so the
    // first 2^(24-rlen) subnets of a root are distinct.
    const smask = (1 << (24 - this.rlen[r])) - 1;
    const sub = (Math.imul(k, this.smul[r]) + this.soff[r]) & smask;
    // Host: a permutation of m over the last octet, different per subnet.
    const hs = mix32((this.hkey[r] ^ Math.imul(k, 0x9e3779b9)) >>> 0);
    const host = (Math.imul(m, hs | 1) + (hs >>> 8)) & 255;
    return (this.base[r] | (sub << 8) | host) >>> 0;
  }
}

/** IPv6 address as four big-endian 32-bit words, written into out[0..3]. */
export class V6Pool {
  private readonly w0: Uint32Array;
  private readonly smul: Uint32Array;
  private readonly soff: Uint32Array;
  private readonly hkey: Uint32Array;

  constructor(
    seed: number,
    side: number,
    private readonly shape: PoolShape,
  ) {
    const key = hash32(seed >>> 0, 0x6a11, side);
    const n = shape.roots;
    this.w0 = new Uint32Array(n);
    this.smul = new Uint32Array(n);
    this.soff = new Uint32Array(n);
    this.hkey = new Uint32Array(n);
    for (let r = 0; r < n; r++) {
      const hr = hash32(key, r);
      // Root /32 inside 2000::/3 (global unicast; never fd00::/8, the test-traffic space).
      this.w0[r] = (0x20000000 | (hr & 0x1fffffff)) >>> 0;
      this.smul[r] = (hr | 1) >>> 0;
      this.soff[r] = hr >>> 5;
      this.hkey[r] = hash32(key, r, 2);
    }
  }

  pick(rng: Prng, out: Uint32Array): void {
    const s = this.shape;
    const r = rng.skewed(s.roots, s.skew[0]);
    const k = rng.skewed(s.subnets, s.skew[1]);
    // LAN within the site: small numbers are common (::/64 subnets 0, 1, 2 ...).
    const lan = rng.skewed(16, 3);
    const m = rng.skewed(s.hosts, s.skew[2]);
    this.host(r, k, lan, m, out);
  }

  host(r: number, k: number, lan: number, m: number, out: Uint32Array): void {
    out[0] = this.w0[r];
    // Site /48: a permutation of k over 16 bits; LAN /64: 16 hashed bits (LAN 0 is :0:).
    const site = (Math.imul(k, this.smul[r]) + this.soff[r]) & 0xffff;
    const hk = mix32((this.hkey[r] ^ Math.imul(k, 0x9e3779b9)) >>> 0);
    const lanBits = lan === 0 ? 0 : mix32((hk ^ Math.imul(lan, 0x85ebca6b)) >>> 0) & 0xffff;
    out[1] = ((site << 16) | lanBits) >>> 0;
    // Interface ID: servers with low numbers (::1, ::a, ...) for the first 64
    // hosts of a LAN, hashed (SLAAC-like) IDs after that.
    if (m < 64) {
      out[2] = 0;
      out[3] = m + 1;
    } else {
      const h1 = mix32((hk ^ Math.imul(m, 0xc2b2ae35)) >>> 0);
      out[2] = h1;
      out[3] = mix32((h1 ^ 0x27d4eb2f) >>> 0);
    }
  }
}
