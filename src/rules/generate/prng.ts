// Deterministic pseudo-random numbers for the rule-set generators.
//
// Everything here is integer arithmetic on 32-bit values (Math.imul, shifts),
// plus one exact division by 2^32, so the same seed yields the same stream on
// every machine and every JavaScript engine. No Math.random, Math.pow, Math.log.

/** SplitMix32-style finaliser (the "lowbias32" mixer): a good 32-bit hash. */
export function mix32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d);
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b);
  x = (x ^ (x >>> 16)) >>> 0;
  return x;
}

/** Hash of up to four 32-bit integers; stable, order-sensitive. */
export function hash32(a: number, b = 0, c = 0, d = 0): number {
  let h = mix32((a ^ 0x9e3779b9) >>> 0);
  h = mix32((h ^ Math.imul(b | 0, 0x85ebca6b)) >>> 0);
  h = mix32((h ^ Math.imul(c | 0, 0xc2b2ae35)) >>> 0);
  h = mix32((h ^ Math.imul(d | 0, 0x27d4eb2f)) >>> 0);
  return h;
}

const TWO32 = 4294967296;

/**
 * xoshiro128** (Blackman & Vigna), 32-bit state words, seeded through
 * SplitMix32 so that any seed (including 0) gives a non-zero state.
 */
export class Prng {
  // State in a typed array: plain object fields holding values >= 2^30 would
  // be boxed as heap numbers on every update, which costs more than the math.
  private readonly s = new Uint32Array(4);

  constructor(seed: number, stream = 0) {
    // SplitMix32 expansion of (seed, stream) into four state words.
    let z = (Math.trunc(seed) ^ Math.imul(stream | 0, 0x632be5ab)) >>> 0;
    for (let i = 0; i < 4; i++) {
      z = (z + 0x9e3779b9) >>> 0;
      this.s[i] = mix32(z);
    }
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1;
  }

  /** Next uniform 32-bit unsigned integer. */
  u32(): number {
    const s = this.s;
    const s1 = s[1];
    let r = Math.imul(s1, 5);
    r = (r << 7) | (r >>> 25);
    r = Math.imul(r, 9);
    const t = s1 << 9;
    s[2] ^= s[0];
    s[3] ^= s1;
    s[1] = s1 ^ s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    const s3 = s[3];
    s[3] = (s3 << 11) | (s3 >>> 21);
    return r >>> 0;
  }

  /** Uniform float in [0, 1) with 32 bits of resolution (exact, portable). */
  float(): number {
    return this.u32() / TWO32;
  }

  /** Uniform integer in [0, n) for 1 <= n <= 2^32 (multiply-shift, no modulo bias worth noting). */
  int(n: number): number {
    return Math.floor((this.u32() / TWO32) * n);
  }

  /** Uniform integer in [lo, hi] inclusive. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** true with probability p. */
  chance(p: number): boolean {
    return this.u32() / TWO32 < p;
  }

  /**
   * Skewed index in [0, n): floor(n * u^k) for k = 1..4. Small indices are
   * popular (k = 2: half of the draws fall in the first quarter), which is
   * how the generators make a few prefixes, servers and ports "hot".
   */
  skewed(n: number, k: 1 | 2 | 3 | 4): number {
    const u = this.u32() / TWO32;
    const v = k === 1 ? u : k === 2 ? u * u : k === 3 ? u * u * u : u * u * u * u;
    return Math.floor(v * n);
  }
}

/**
 * A discrete distribution over indices, sampled by binary search on the
 * cumulative weights. Weights need not sum to 1.
 */
export class Weighted {
  readonly cum: Float64Array;
  readonly total: number;

  constructor(weights: readonly number[]) {
    if (weights.length === 0) throw new Error('Weighted: no weights');
    this.cum = new Float64Array(weights.length);
    let t = 0;
    for (let i = 0; i < weights.length; i++) {
      const w = weights[i];
      if (!(w >= 0)) throw new Error(`Weighted: bad weight ${w} at ${i}`);
      t += w;
      this.cum[i] = t;
    }
    if (!(t > 0)) throw new Error('Weighted: all weights are zero');
    this.total = t;
  }

  /** Index drawn with probability weight[i] / total. */
  sample(rng: Prng): number {
    const x = rng.float() * this.total;
    const cum = this.cum;
    let lo = 0;
    let hi = cum.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (x < cum[mid]) hi = mid;
      else lo = mid + 1;
    }
    // Smallest i with x < cum[i]: a zero-weight entry is never returned.
    return lo;
  }
}
