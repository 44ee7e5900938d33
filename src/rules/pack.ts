// Writes compiled records straight into the packed table buffer whose layout
// native/classifier/rule_table.h defines. Offsets come from the addon
// (layout.cc), never from constants here, so the two sides cannot drift.
import { native, type FieldLayout, type NativeLayout, type RecordLayout } from '../native';
import { TABLE_BUILTINS, chainKey, type Family, type TableName } from './model';

/** Every table's hooks, by their code in rule_table.h (Hook): filter's, then raw's. */
export const HOOKS = ['INPUT', 'FORWARD', 'OUTPUT', 'raw/PREROUTING', 'raw/OUTPUT'] as const;
export type Hook = (typeof HOOKS)[number];
const HOOK_CODE = Object.fromEntries(HOOKS.map((h, i) => [h, i])) as Record<Hook, number>;
/** The hooks of one table, in the order its built-in chains are declared. */
export const tableHooks = (table: TableName): Hook[] => TABLE_BUILTINS[table].map((c) => chainKey(table, c) as Hook);

/** One record's condition: an inclusive range per field. */
export interface Cond {
  srcLo: number | bigint;
  srcHi: number | bigint;
  dstLo: number | bigint;
  dstHi: number | bigint;
  sportLo: number;
  sportHi: number;
  dportLo: number;
  dportHi: number;
  protoLo: number;
  protoHi: number;
  iifLo: number;
  iifHi: number;
  oifLo: number;
  oifHi: number;
  icmpLo: number;
  icmpHi: number;
  tcpMask: number;
  tcpValue: number;
  ct: number;
  needsL4: boolean;
  /**
   * With needsL4: the rule's L4 match comes before its conntrack/state
   * (l4BeforeCt) or iprange (l4BeforeAddr) match, so the kernel hot-drops a
   * truncated header before testing those (native/dataplane/hotdrop.h).
   * Set only when true.
   */
  l4BeforeCt?: boolean;
  l4BeforeAddr?: boolean;
}

export const ACTION: Record<'ACCEPT' | 'DROP' | 'REJECT' | 'LOG' | 'COUNT' | 'SKIP', number> = {
  ACCEPT: 0, DROP: 1, REJECT: 2, LOG: 3, COUNT: 4, SKIP: 5,
};
export const ACTION_NAME = Object.fromEntries(Object.entries(ACTION).map(([k, v]) => [v, k])) as Record<number, keyof typeof ACTION>;

function off(rec: RecordLayout, name: string): number {
  const f = rec[name] as FieldLayout | undefined;
  if (!f || typeof f !== 'object') throw new Error(`native layout has no field ${name}`);
  return f.offset;
}

/** Offsets resolved once, checked against our action numbering. */
export class Layout {
  readonly headerSize: number;
  readonly descSize: number;
  readonly r4: Record<string, number> & { size: number };
  readonly r6: Record<string, number> & { size: number };
  readonly h: Record<string, number>;
  readonly d: Record<string, number>;
  readonly flags: NativeLayout['recordFlags'];

  constructor(readonly native: NativeLayout) {
    for (const [k, v] of Object.entries(ACTION)) {
      if (native.actions[k as keyof typeof ACTION] !== v) throw new Error(`native action ${k} is ${native.actions[k as keyof typeof ACTION]}, expected ${v}`);
    }
    const pick = (rec: RecordLayout) => {
      const o: Record<string, number> = { size: rec.size };
      for (const k of Object.keys(rec)) if (k !== 'size') o[k] = off(rec, k);
      return o as Record<string, number> & { size: number };
    };
    this.flags = native.recordFlags;
    this.headerSize = native.header.size;
    this.descSize = native.desc.size;
    this.h = pick(native.header);
    this.d = pick(native.desc);
    this.r4 = pick(native.record4);
    this.r6 = pick(native.record6);
  }
}

let layoutCache: Layout | undefined;
export function layout(): Layout {
  return (layoutCache ??= new Layout(native().layout));
}

export class TableWriter {
  private buf: ArrayBuffer;
  private view: DataView;
  private len: number;
  private tableIndex = -1;
  private tableStart = 0;
  private rec: Record<string, number> & { size: number };
  private family: Family = 4;
  private recordsInTable = 0;
  private readonly L: Layout;

  constructor(private readonly tableCount: number, expectedRecords: number) {
    this.L = layout();
    this.rec = this.L.r4;
    const head = this.L.headerSize + this.L.descSize * tableCount;
    this.buf = new ArrayBuffer(head + expectedRecords * this.L.r4.size);
    this.view = new DataView(this.buf);
    this.len = head;
    const h = this.L.h;
    this.view.setUint32(h.magic, this.L.native.magic, true);
    this.view.setUint16(h.version, this.L.native.version, true);
    this.view.setUint16(h.table_count, tableCount, true);
  }

  get count(): number {
    return this.recordsInTable;
  }

  beginTable(family: Family, hook: Hook): void {
    this.tableIndex++;
    if (this.tableIndex >= this.tableCount) throw new Error('more tables than declared');
    this.family = family;
    this.rec = family === 4 ? this.L.r4 : this.L.r6;
    this.tableStart = this.len;
    this.recordsInTable = 0;
    const d = this.L.headerSize + this.L.descSize * this.tableIndex;
    this.view.setUint8(d + this.L.d.family, family);
    this.view.setUint8(d + this.L.d.hook, HOOK_CODE[hook]);
    this.view.setUint16(d + this.L.d.record_size, this.rec.size, true);
    this.view.setUint32(d + this.L.d.offset, this.tableStart, true);
  }

  endTable(): number {
    const d = this.L.headerSize + this.L.descSize * this.tableIndex;
    this.view.setUint32(d + this.L.d.count, this.recordsInTable, true);
    return this.recordsInTable;
  }

  private grow(need: number): void {
    let cap = this.buf.byteLength * 2;
    while (cap < need) cap *= 2;
    const next = new ArrayBuffer(cap);
    new Uint8Array(next).set(new Uint8Array(this.buf, 0, this.len));
    this.buf = next;
    this.view = new DataView(next);
  }

  /** Appends one record; returns its index in the current table. */
  push(c: Cond, action: number, arg: number, ruleId: number): number {
    const r = this.rec;
    if (this.len + r.size > this.buf.byteLength) this.grow(this.len + r.size);
    const v = this.view;
    const o = this.len;
    v.setUint32(o + r.rule_id, ruleId, true);
    v.setUint32(o + r.arg, arg, true);
    v.setUint16(o + r.sport_lo, c.sportLo, true);
    v.setUint16(o + r.sport_hi, c.sportHi, true);
    v.setUint16(o + r.dport_lo, c.dportLo, true);
    v.setUint16(o + r.dport_hi, c.dportHi, true);
    v.setUint16(o + r.iif_lo, c.iifLo, true);
    v.setUint16(o + r.iif_hi, c.iifHi, true);
    v.setUint16(o + r.oif_lo, c.oifLo, true);
    v.setUint16(o + r.oif_hi, c.oifHi, true);
    v.setUint16(o + r.icmp_lo, c.icmpLo, true);
    v.setUint16(o + r.icmp_hi, c.icmpHi, true);
    v.setUint8(o + r.proto_lo, c.protoLo);
    v.setUint8(o + r.proto_hi, c.protoHi);
    v.setUint8(o + r.tcp_flags_mask, c.tcpMask);
    v.setUint8(o + r.tcp_flags_value, c.tcpValue);
    v.setUint8(o + r.ct_state_mask, c.ct);
    const F = this.L.flags;
    v.setUint8(o + r.flags, (c.needsL4 ? F.NEEDS_L4 : 0) | (c.l4BeforeCt ? F.L4_BEFORE_CT : 0) | (c.l4BeforeAddr ? F.L4_BEFORE_ADDR : 0));
    v.setUint8(o + r.action, action);
    if (this.family === 4) {
      v.setUint32(o + r.src_lo, c.srcLo as number, true);
      v.setUint32(o + r.src_hi, c.srcHi as number, true);
      v.setUint32(o + r.dst_lo, c.dstLo as number, true);
      v.setUint32(o + r.dst_hi, c.dstHi as number, true);
    } else {
      writeV6(v, o + r.src_lo, c.srcLo as bigint);
      writeV6(v, o + r.src_hi, c.srcHi as bigint);
      writeV6(v, o + r.dst_lo, c.dstLo as bigint);
      writeV6(v, o + r.dst_hi, c.dstHi as bigint);
    }
    this.len += r.size;
    return this.recordsInTable++;
  }

  setArg(index: number, arg: number): void {
    this.view.setUint32(this.tableStart + index * this.rec.size + this.rec.arg, arg, true);
  }

  /** Marks a SKIP record as leaving the built-in chain (native kRuleReturnsToPolicy). */
  markReturnsToPolicy(index: number): void {
    const o = this.tableStart + index * this.rec.size + this.rec.flags;
    this.view.setUint8(o, this.view.getUint8(o) | this.L.flags.RETURNS_TO_POLICY);
  }

  /** Flags a record as having a match program (native kRuleHasExt). */
  markExt(index: number): void {
    const o = this.tableStart + index * this.rec.size + this.rec.flags;
    this.view.setUint8(o, this.view.getUint8(o) | this.L.flags.HAS_EXT);
  }

  /** Index of the table being written, as extension entries name it. */
  get currentTable(): number {
    return this.tableIndex;
  }

  /** The current table's records alone, without header or descriptor (an edit overlay). */
  tableRecords(): ArrayBuffer {
    return this.buf.slice(this.tableStart, this.len);
  }

  /** Ends the buffer; `ext` (the extension section) goes after the records. */
  finish(ext?: Uint8Array): ArrayBuffer {
    if (ext && ext.length) {
      this.len = (this.len + 3) & ~3;
      if (this.len + ext.length > this.buf.byteLength) this.grow(this.len + ext.length);
      new Uint8Array(this.buf, this.len, ext.length).set(ext);
      this.view.setUint32(this.L.h.ext_offset, this.len, true);
      this.len += ext.length;
    }
    this.view.setUint32(this.L.h.total_bytes, this.len, true);
    return this.buf.slice(0, this.len);
  }
}

/** Four 32-bit words, most significant first, each little-endian. */
export function writeV6(v: DataView, o: number, x: bigint): void {
  v.setUint32(o, Number((x >> 96n) & 0xffffffffn), true);
  v.setUint32(o + 4, Number((x >> 64n) & 0xffffffffn), true);
  v.setUint32(o + 8, Number((x >> 32n) & 0xffffffffn), true);
  v.setUint32(o + 12, Number(x & 0xffffffffn), true);
}

export function readV6(v: DataView, o: number): bigint {
  return (BigInt(v.getUint32(o, true)) << 96n) | (BigInt(v.getUint32(o + 4, true)) << 64n) |
    (BigInt(v.getUint32(o + 8, true)) << 32n) | BigInt(v.getUint32(o + 12, true));
}

/** Decoded record, for listings, tests and the reference matcher. */
export interface DecodedRecord extends Cond {
  ruleId: number;
  arg: number;
  action: number;
  flags: number;
}

export interface DecodedTable {
  family: Family;
  hook: Hook;
  records: DecodedRecord[];
}

export function decodeTables(buf: ArrayBuffer): DecodedTable[] {
  const L = layout();
  const v = new DataView(buf);
  const n = v.getUint16(L.h.table_count, true);
  const out: DecodedTable[] = [];
  for (let t = 0; t < n; t++) {
    const d = L.headerSize + L.descSize * t;
    const family = v.getUint8(d + L.d.family) as Family;
    const hook = HOOKS[v.getUint8(d + L.d.hook)];
    const count = v.getUint32(d + L.d.count, true);
    const start = v.getUint32(d + L.d.offset, true);
    const r = family === 4 ? L.r4 : L.r6;
    const records: DecodedRecord[] = [];
    for (let i = 0; i < count; i++) {
      const o = start + i * r.size;
      records.push({
        ruleId: v.getUint32(o + r.rule_id, true), arg: v.getUint32(o + r.arg, true),
        sportLo: v.getUint16(o + r.sport_lo, true), sportHi: v.getUint16(o + r.sport_hi, true),
        dportLo: v.getUint16(o + r.dport_lo, true), dportHi: v.getUint16(o + r.dport_hi, true),
        iifLo: v.getUint16(o + r.iif_lo, true), iifHi: v.getUint16(o + r.iif_hi, true),
        oifLo: v.getUint16(o + r.oif_lo, true), oifHi: v.getUint16(o + r.oif_hi, true),
        icmpLo: v.getUint16(o + r.icmp_lo, true), icmpHi: v.getUint16(o + r.icmp_hi, true),
        protoLo: v.getUint8(o + r.proto_lo), protoHi: v.getUint8(o + r.proto_hi),
        tcpMask: v.getUint8(o + r.tcp_flags_mask), tcpValue: v.getUint8(o + r.tcp_flags_value),
        ct: v.getUint8(o + r.ct_state_mask), flags: v.getUint8(o + r.flags),
        needsL4: (v.getUint8(o + r.flags) & L.flags.NEEDS_L4) !== 0, action: v.getUint8(o + r.action),
        srcLo: family === 4 ? v.getUint32(o + r.src_lo, true) : readV6(v, o + r.src_lo),
        srcHi: family === 4 ? v.getUint32(o + r.src_hi, true) : readV6(v, o + r.src_hi),
        dstLo: family === 4 ? v.getUint32(o + r.dst_lo, true) : readV6(v, o + r.dst_lo),
        dstHi: family === 4 ? v.getUint32(o + r.dst_hi, true) : readV6(v, o + r.dst_hi),
      });
    }
    out.push({ family, hook, records });
  }
  return out;
}
