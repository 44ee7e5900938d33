// Seed statistics for the ClassBench-like families (acl, fw, ipc, acl6).
//
// ClassBench (D. E. Taylor, J. S. Turner, "ClassBench: A Packet
// Classification Benchmark", IEEE/ACM Trans. Networking 15(3), 2007) describes
// each real filter set by a "seed" parameter file: the protocol mix, for each
// protocol the mix of 25 source/destination port-pair classes (WC, HI, LO, AR,
// EM for each side), tables of arbitrary-range and exact-match port values,
// and, per port-pair class, the joint distribution of (source, destination)
// prefix lengths given as "total length, then source length given total".
//
// acl: the numbers below are the acl1_seed parameter file as distributed with
//   ClassBench (sections -prots, -dpar, -dpem, -wc_wc, -wc_ar, -wc_em; all
//   other port-pair classes are empty in acl1).
// fw, ipc: the fw1_seed / ipc1_seed files were not available to us. Their
//   tables below are approximations measured by hand on ClassBench outputs
//   generated from those seeds (1k-rule sets fw1_1k and ipc1_1k), plus the
//   ipc1 -spar table quoted verbatim in the ClassBench parameter-file notes.
//   rules/README.md states this and gives the resulting figures.
// Actions are not part of ClassBench (it generates match fields only); the
// action mixes are our own choice and are documented as such.

export type PortClass = 0 | 1 | 2 | 3 | 4; // WC, HI, LO, AR, EM
export const WC = 0;
export const HI = 1;
export const LO = 2;
export const AR = 3;
export const EM = 4;

/** ClassBench's 25 port-pair classes, in the order of the seed files (source_destination). */
export const PAIR_CLASSES = [
  'wc_wc', 'wc_hi', 'hi_wc', 'hi_hi', 'wc_lo', 'lo_wc', 'hi_lo', 'lo_hi', 'lo_lo',
  'wc_ar', 'ar_wc', 'hi_ar', 'ar_hi', 'wc_em', 'em_wc', 'hi_em', 'em_hi', 'lo_ar',
  'ar_lo', 'lo_em', 'em_lo', 'ar_ar', 'ar_em', 'em_ar', 'em_em',
] as const;
export type PairClass = (typeof PAIR_CLASSES)[number];

const CLASS_CODE: Record<string, PortClass> = { wc: WC, hi: HI, lo: LO, ar: AR, em: EM };
export function splitClass(c: PairClass): [PortClass, PortClass] {
  return [CLASS_CODE[c.slice(0, 2)], CLASS_CODE[c.slice(3, 5)]];
}

export type Proto = 'all' | 'tcp' | 'udp' | 'icmp' | 'gre';

export interface ProtoSpec {
  proto: Proto;
  weight: number;
  /** Port-pair class mix (tcp/udp only); absent = wc_wc. */
  classes?: Partial<Record<PairClass, number>>;
  /** ICMP type mix: [type or -1 for any, weight]. */
  icmpTypes?: ReadonlyArray<readonly [number, number]>;
}

/** ClassBench form: [total length, P(total), src length, P(src | total), ...]. */
export type CbPrefixRows = ReadonlyArray<readonly number[]>;
/** Range form: [src lo, src hi, dst lo, dst hi, weight]; lengths uniform within the ranges. */
export type RangePrefixRows = ReadonlyArray<readonly [number, number, number, number, number]>;

export interface PrefixTables {
  /** Per port-pair class, ClassBench form. */
  byClass?: Partial<Record<PairClass, CbPrefixRows>>;
  /** Rules that constrain a port (range form). */
  ports?: RangePrefixRows;
  /** Rules that constrain no port: wc_wc, or protocols without ports (range form). */
  noports?: RangePrefixRows;
}

/** [weight, lo, hi] */
export type PortRows = ReadonlyArray<readonly [number, number, number]>;

export interface SeedSpec {
  protos: readonly ProtoSpec[];
  spar: PortRows;
  spem: PortRows;
  dpar: PortRows;
  dpem: PortRows;
  prefixes: PrefixTables;
  /** [ACCEPT, DROP, REJECT] weights. */
  actions: readonly [number, number, number];
}

// ---------------------------------------------------------------- acl1 (real)

export const ACL1: SeedSpec = {
  protos: [
    { proto: 'all', weight: 0.0845839 },
    { proto: 'icmp', weight: 0.0313779 },
    { proto: 'tcp', weight: 0.87312412, classes: { wc_wc: 0.215625, wc_ar: 0.13124999, wc_em: 0.65312499 } },
    { proto: 'udp', weight: 0.01091405, classes: { wc_ar: 0.125, wc_em: 0.875 } },
  ],
  spar: [],
  spem: [],
  dpar: [
    [0.08235294, 1600, 1649], [0.07058824, 1300, 1349], [0.07058824, 1300, 1350],
    [0.04705882, 7500, 7599], [0.04705882, 2200, 2210], [0.03529412, 1025, 65535],
    [0.03529412, 1700, 1750], [0.03529412, 5001, 65535], [0.03529412, 32200, 32207],
    [0.03529412, 8000, 8100], [0.02352941, 61700, 61709], [0.02352941, 61500, 61509],
    [0.02352941, 61600, 61609], [0.02352941, 61900, 61909], [0.02352941, 62000, 62009],
    [0.02352941, 61800, 61809], [0.02352941, 61100, 61119], [0.02352941, 61200, 61209],
    [0.02352941, 61000, 61009], [0.02352941, 61400, 61409], [0.02352941, 61300, 61309],
    [0.02352941, 62700, 62709], [0.02352941, 1700, 1720], [0.02352941, 62600, 62609],
    [0.02352941, 20000, 20010], [0.02352941, 1600, 1650], [0.02352941, 62400, 62409],
    [0.02352941, 62100, 62109], [0.02352941, 62500, 62509], [0.01176471, 62200, 62219],
    [0.01176471, 32210, 32219], [0.01176471, 62220, 62239], [0.01176471, 62200, 62239],
    [0.01176471, 1300, 1399],
  ],
  dpem: [
    [0.1882353, 1521], [0.05411765, 1526], [0.04235294, 1221], [0.03529412, 1433],
    [0.02823529, 1525], [0.02823529, 135], [0.02823529, 14753], [0.02352941, 1712],
    [0.02352941, 1711], [0.02352941, 1704], [0.02352941, 1708], [0.02117647, 5555],
    [0.02117647, 1705], [0.02117647, 6000], [0.02117647, 20], [0.02117647, 21],
    [0.02117647, 1724], [0.02117647, 1717], [0.01882353, 1707], [0.01882353, 1733],
    [0.01882353, 1706], [0.01882353, 5540], [0.01882353, 5541], [0.01647059, 1734],
    [0.01411765, 1489], [0.01411765, 1490], [0.01411765, 5632], [0.01411765, 5631],
    [0.01176471, 6789], [0.00941176, 1715], [0.00941176, 2121], [0.00705882, 6790],
    [0.00705882, 32200], [0.00705882, 32201], [0.00470588, 2110], [0.00470588, 2115],
    [0.00470588, 3031], [0.00470588, 1540], [0.00470588, 31000], [0.00470588, 3745],
    [0.00470588, 30210], [0.00470588, 19856], [0.00470588, 2026], [0.00470588, 443],
    [0.00470588, 80], [0.00470588, 30211], [0.00470588, 6849], [0.00470588, 27000],
    [0.00470588, 27400], [0.00470588, 65500], [0.00470588, 30804], [0.00470588, 30899],
    [0.00235294, 1650], [0.00235294, 1600], [0.00235294, 15126], [0.00235294, 15121],
    [0.00235294, 2051], [0.00235294, 2308], [0.00235294, 12050], [0.00235294, 1601],
    [0.00235294, 1602], [0.00235294, 5543], [0.00235294, 7205], [0.00235294, 5542],
    [0.00235294, 1432], [0.00235294, 1352], [0.00235294, 6888], [0.00235294, 512],
    [0.00235294, 4646], [0.00235294, 55444], [0.00235294, 6889], [0.00235294, 1550],
    [0.00235294, 6890],
  ].map(([w, p]) => [w, p, p] as const),
  prefixes: {
    byClass: {
      wc_wc: [
        [0, 0.00448431, 0, 1],
        [8, 0.00896861, 0, 0.5, 8, 0.5],
        [13, 0.00448431, 0, 1],
        [23, 0.00448431, 23, 1], [24, 0.00448431, 23, 1], [25, 0.00448431, 23, 1],
        [26, 0.00448431, 23, 1], [27, 0.00448431, 23, 1], [28, 0.00448431, 23, 1],
        [29, 0.00448431, 23, 1], [30, 0.00448431, 23, 1], [31, 0.00448431, 23, 1],
        [38, 0.00448431, 23, 1],
        [39, 0.05381166, 23, 1],
        [47, 0.00448431, 23, 1], [48, 0.00448431, 23, 1], [49, 0.00448431, 23, 1],
        [52, 0.01793722, 30, 1],
        [53, 0.00896861, 31, 1],
        [54, 0.0896861, 23, 0.1, 32, 0.89999998],
        [55, 0.10313901, 23, 0.95652175, 31, 0.04347826],
        [56, 0.11210762, 32, 1],
        [62, 0.01793722, 30, 1],
        [63, 0.03139013, 31, 0.85714287, 32, 0.14285715],
        [64, 0.48878923, 32, 1],
      ],
      wc_ar: [
        [55, 0.01176471, 23, 1],
        [63, 0.03529412, 31, 1],
        [64, 0.95294118, 32, 1],
      ],
      wc_em: [
        [51, 0.00470588, 23, 1],
        [52, 0.01411765, 30, 1],
        [53, 0.00705882, 31, 1],
        [54, 0.04470588, 23, 0.05263158, 32, 0.94736844],
        [55, 0.02823529, 23, 1],
        [62, 0.01176471, 32, 1],
        [63, 0.04235294, 31, 0.6111111, 32, 0.3888889],
        [64, 0.84705883, 32, 1],
      ],
    },
  },
  actions: [0.6, 0.37, 0.03],
};

// ------------------------------------------------------ fw1 (approximation)

const FW_DPEM_PORTS = [
  80, 22, 25, 53, 123, 21, 23, 443, 110, 119, 143, 161, 179, 750, 544, 69, 67, 37, 113,
  137, 138, 139, 871, 873, 879, 754, 2105, 2055, 1999, 2401, 5998, 5999, 7648, 7649, 7326,
  24032, 8080, 13, 88, 162,
];
// Weight falls off with rank, as in the seed tables (the head of the list is the common services).
const FW_DPEM: PortRows = FW_DPEM_PORTS.map((p, i) => [1 / (i + 3), p, p] as const);
const FW_SPEM: PortRows = [123, 53, 161, 69, 750, 88, 7648, 24032, 67, 162, 25, 5999].map(
  (p, i) => [1 / (i + 2), p, p] as const,
);
const TRACEROUTE: PortRows = [[1, 33434, 33600]];

export const FW1: SeedSpec = {
  protos: [
    {
      proto: 'tcp', weight: 0.545,
      classes: { wc_em: 0.58, wc_wc: 0.22, hi_hi: 0.1, hi_em: 0.03, wc_hi: 0.02, em_hi: 0.01, hi_wc: 0.01, wc_ar: 0.01, wc_lo: 0.01, ar_wc: 0.01 },
    },
    {
      proto: 'udp', weight: 0.36,
      classes: { wc_em: 0.34, em_wc: 0.22, hi_hi: 0.12, em_hi: 0.1, hi_em: 0.08, em_em: 0.06, wc_wc: 0.04, hi_ar: 0.02, ar_hi: 0.01, lo_em: 0.01 },
    },
    { proto: 'icmp', weight: 0.04, icmpTypes: [[17, 0.25], [13, 0.2], [15, 0.2], [8, 0.15], [0, 0.05], [-1, 0.15]] },
    { proto: 'gre', weight: 0.04 },
    { proto: 'all', weight: 0.015 },
  ],
  spar: TRACEROUTE,
  spem: FW_SPEM,
  dpar: TRACEROUTE,
  dpem: FW_DPEM,
  prefixes: {
    ports: [
      [0, 0, 32, 32, 12], [0, 0, 31, 31, 10], [0, 0, 30, 30, 5], [0, 0, 26, 29, 2], [0, 0, 0, 0, 3],
      [0, 0, 1, 2, 1], [1, 1, 32, 32, 11], [1, 1, 31, 31, 3], [2, 2, 32, 32, 4], [1, 2, 0, 0, 1.5],
      [32, 32, 0, 0, 6], [31, 31, 0, 0, 7], [30, 30, 0, 0, 2], [32, 32, 1, 2, 5], [31, 31, 1, 1, 3],
      [32, 32, 32, 32, 9], [31, 31, 32, 32, 5], [32, 32, 31, 31, 3], [28, 30, 30, 32, 2], [32, 32, 20, 23, 1.5],
    ],
    noports: [
      [32, 32, 32, 32, 6], [31, 31, 31, 32, 6], [32, 32, 26, 30, 5], [26, 30, 31, 32, 5], [20, 31, 0, 0, 14],
      [20, 31, 1, 2, 7], [11, 19, 0, 1, 4], [0, 0, 0, 0, 3], [0, 1, 0, 1, 3], [30, 32, 1, 2, 4],
      [31, 32, 0, 0, 6], [0, 2, 30, 32, 4],
    ],
  },
  actions: [0.5, 0.44, 0.06],
};

// ----------------------------------------------------- ipc1 (approximation)

const IPC_DPEM_PORTS = [
  80, 53, 69, 514, 9003, 25, 113, 137, 139, 1433, 5510, 5520, 5530, 5540, 5550, 161, 119, 143,
  135, 22, 1645, 1646, 1723, 500, 524, 5631, 8875, 6699, 6970, 32774, 3389, 162, 1214,
];
const IPC_SPEM_PORTS = [53, 161, 25, 80, 5500, 5510, 5520, 5540, 5550, 143, 69, 5631, 500, 135, 22];
// -spar of ipc1_seed, verbatim from the ClassBench parameter-file notes.
const IPC_SPAR: PortRows = [
  [0.29411766, 20, 23], [0.29411766, 109, 110], [0.23529412, 20, 21], [0.14705883, 1645, 1646], [0.02941176, 5000, 5001],
];

export const IPC1: SeedSpec = {
  protos: [
    {
      proto: 'tcp', weight: 0.4,
      classes: { wc_em: 0.66, em_wc: 0.16, wc_wc: 0.07, em_em: 0.04, wc_ar: 0.03, ar_wc: 0.02, wc_hi: 0.01, hi_wc: 0.01 },
    },
    {
      proto: 'udp', weight: 0.37,
      classes: { wc_em: 0.64, em_wc: 0.18, wc_wc: 0.06, em_em: 0.05, wc_ar: 0.03, ar_wc: 0.02, wc_hi: 0.02 },
    },
    { proto: 'all', weight: 0.2 },
    { proto: 'icmp', weight: 0.03, icmpTypes: [[8, 0.3], [5, 0.2], [4, 0.1], [-1, 0.4]] },
  ],
  spar: IPC_SPAR,
  spem: IPC_SPEM_PORTS.map((p, i) => [1 / (i + 2), p, p] as const),
  dpar: IPC_SPAR,
  dpem: IPC_DPEM_PORTS.map((p, i) => [1 / (i + 3), p, p] as const),
  prefixes: {
    ports: [
      [32, 32, 32, 32, 22], [31, 31, 32, 32, 8], [32, 32, 31, 31, 6], [25, 30, 32, 32, 12], [32, 32, 25, 30, 8],
      [23, 24, 32, 32, 4], [32, 32, 23, 24, 2], [0, 0, 24, 32, 12], [24, 32, 0, 0, 9], [1, 2, 23, 31, 5],
      [23, 31, 1, 2, 2], [14, 17, 15, 17, 2], [0, 0, 0, 0, 1],
    ],
    noports: [
      [23, 28, 22, 28, 55], [20, 22, 24, 28, 8], [24, 28, 16, 22, 8], [14, 18, 14, 17, 6], [29, 32, 24, 27, 8],
      [32, 32, 32, 32, 5], [0, 0, 16, 24, 4], [17, 24, 0, 1, 4], [0, 0, 0, 0, 2],
    ],
  },
  actions: [0.55, 0.4, 0.05],
};

// ------------------------------------------------------------------- acl6

/**
 * IPv4 prefix length -> IPv6 prefix length for the acl6 family. Keeps the
 * role of each length: /8 ISP-sized -> /32, /16 -> /48 (site), /22 -> /56,
 * /24 LAN -> /64, /30 and /31 point-to-point -> /126 and /127, /32 host -> /128.
 */
export const V6_LEN: readonly number[] = [
  0, 16, 20, 24, 28, 32, 32, 32, 32, 36, 40, 44, 48, 48, 48, 48, 48, 52, 52, 56, 56, 56, 56, 60, 64,
  96, 112, 116, 120, 124, 126, 127, 128,
];

/** ICMPv6 types for acl6: echo request/reply, unreachable, too big, time exceeded, ND. */
export const ACL6_ICMP6_TYPES: ReadonlyArray<readonly [number, number]> = [
  [128, 0.3], [129, 0.1], [1, 0.1], [2, 0.1], [3, 0.05], [135, 0.1], [136, 0.1], [-1, 0.15],
];
