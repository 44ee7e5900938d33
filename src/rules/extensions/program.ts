// Match programs and the extension section of the packed buffer
// (native/extensions/ext_table.h is the layout's one definition; op and
// state numbers come from the addon's layout export).
//
// A rule's matches the classifier cannot index become ops of one program;
// every record of the rule is flagged and gets an entry (table, record,
// fail, program). The section is: header, entries, state specs, programs.
import { native } from '../../native';

export type OpName =
  | 'ttl' | 'length' | 'tos' | 'dscp' | 'ecn' | 'pkttype' | 'mac' | 'addrtype' | 'never'
  | 'ipv6header' | 'frag' | 'opts' | 'rt' | 'spi' | 'limit' | 'hashlimit' | 'recent' | 'tcpmss' | 'set' | 'connlimit' | 'ct';
export type StateName = 'limit' | 'hashlimit' | 'recent' | 'connlimit';

function extLayout() {
  return native().layout.ext;
}

/** Little-endian bytes, 4-byte padded at the end. */
export class Bytes {
  private readonly a: number[] = [];
  u8(v: number): this { this.a.push(v & 0xff); return this; }
  u16(v: number): this { return this.u8(v).u8(v >>> 8); }
  u32(v: number): this { return this.u16(v & 0xffff).u16(v >>> 16); }
  u64(v: bigint): this { return this.u32(Number(v & 0xffffffffn)).u32(Number((v >> 32n) & 0xffffffffn)); }
  raw(b: Uint8Array | number[]): this { for (const x of b) this.u8(x); return this; }
  /** A u16 length, two bytes of padding, then the UTF-8 text. */
  name(s: string): this {
    const t = Buffer.from(s, 'utf8');
    return this.u16(t.length).u16(0).raw(t);
  }
  pad4(): this { while (this.a.length % 4) this.a.push(0); return this; }
  get length(): number { return this.a.length; }
  bytes(): Uint8Array { return Uint8Array.from(this.a); }
}

export interface Op {
  name: OpName;
  invert: boolean;
  payload: Bytes;
}

/** What an extension's compile step adds to its rule: ops, and the states they use. */
export interface ProgramSink {
  op(name: OpName, invert: boolean, payload: Bytes): void;
  /**
   * A state spec; equal (kind, bytes) specs within one rule set share one
   * index, and so do specs with the same `key` (the first one's bytes win:
   * a named table is configured by the first rule naming it, as the kernel
   * creates it at that rule's checkentry).
   */
  state(kind: StateName, payload: Bytes, key?: string): number;
}

/** The extension section of one compiled rule set. */
export class ExtSection {
  private readonly entries: { table: number; record: number; fail: number; prog: number }[] = [];
  private readonly states: Uint8Array[] = [];
  private readonly stateIndex = new Map<string, number>();
  private readonly progs: number[] = [];

  state(kind: StateName, payload: Bytes, name?: string): number {
    if (name !== undefined) {
      const named = this.stateIndex.get(`#${kind}:${name}`);
      if (named !== undefined) return named;
    }
    const body = payload.pad4().bytes();
    const key = `${kind}:${Buffer.from(body).toString('latin1')}`;
    const known = this.stateIndex.get(key);
    if (known !== undefined) {
      if (name !== undefined) this.stateIndex.set(`#${kind}:${name}`, known);
      return known;
    }
    const rec = new Bytes().u16(extLayout().states[kind]).u16(4 + body.length).raw(body);
    const i = this.states.length;
    this.states.push(rec.bytes());
    this.stateIndex.set(key, i);
    if (name !== undefined) this.stateIndex.set(`#${kind}:${name}`, i);
    return i;
  }

  /** Appends a program; returns its offset in the program area. */
  program(ops: Op[]): number {
    const at = this.progs.length;
    const body = new Bytes();
    for (const o of ops) {
      const p = o.payload.pad4().bytes();
      body.u8(extLayout().ops[o.name]).u8(o.invert ? 1 : 0).u16(4 + p.length).raw(p);
    }
    const b = body.bytes();
    const prog = new Bytes().u16(ops.length).u16(4 + b.length).raw(b).bytes();
    for (const x of prog) this.progs.push(x);
    return at;
  }

  entry(table: number, record: number, fail: number, prog: number): void {
    this.entries.push({ table, record, fail, prog });
  }

  get empty(): boolean {
    return this.entries.length === 0;
  }

  /** The section bytes (entries sorted by table and record, as the native side checks). */
  finish(): Uint8Array {
    this.entries.sort((a, b) => a.table - b.table || a.record - b.record);
    const stateBytes = this.states.reduce((n, s) => n + s.length, 0);
    const out = new Bytes()
      .u32(extLayout().magic).u32(this.entries.length).u32(this.states.length).u32(stateBytes).u32(this.progs.length);
    for (const e of this.entries) out.u16(e.table).u16(0).u32(e.record).u32(e.fail).u32(e.prog);
    for (const s of this.states) out.raw(s);
    out.raw(this.progs);
    return out.bytes();
  }
}
