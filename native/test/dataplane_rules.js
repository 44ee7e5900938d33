'use strict';
// Packs a small FORWARD table set for the dataplane's end-to-end tests, using
// the layout the addon exports (native/addon/layout.cc), never hard-coded
// offsets. Not the project's rule compiler (src/rules/pack.ts): just enough
// to drive the dataplane without it.
//
//   pack(layout, { v4: [rule...], v6: [rule...] }) -> ArrayBuffer
//   rule: { id, action: 'ACCEPT'|'DROP'|'REJECT'|'LOG'|'COUNT'|'SKIP', arg?,
//           proto?: [lo,hi], dport?: [lo,hi], sport?, icmp?, iif?, oif?,
//           src?: [lo,hi] (v4 numbers), needsL4? }
// LOG/COUNT without `arg` continue at the next record.

const FAMILY = { v4: 4, v6: 6 };
const HOOK_FORWARD = 1;

function pack(layout, tables) {
  const fams = Object.keys(tables).filter((f) => tables[f] && tables[f].length);
  const hdr = layout.header.size;
  const desc = layout.desc.size;
  let off = hdr + desc * fams.length;
  const plan = fams.map((f) => {
    const rsz = (f === 'v4' ? layout.record4 : layout.record6).size;
    const p = { f, rsz, offset: off, count: tables[f].length };
    off += rsz * p.count;
    off = (off + 3) & ~3;
    return p;
  });
  const buf = new ArrayBuffer(off);
  const dv = new DataView(buf);
  const put = (base, field, value) => {
    const o = base + field.offset;
    switch (field.size) {
      case 1: dv.setUint8(o, value); break;
      case 2: dv.setUint16(o, value, true); break;
      case 4: dv.setUint32(o, value >>> 0, true); break;
      case 16: for (let i = 0; i < 4; i++) dv.setUint32(o + 4 * i, value[i] >>> 0, true); break;
      default: throw new Error('field size ' + field.size);
    }
  };
  put(0, layout.header.magic, layout.magic);
  put(0, layout.header.version, layout.version);
  put(0, layout.header.table_count, fams.length);
  put(0, layout.header.total_bytes, off);
  plan.forEach((p, i) => {
    const d = hdr + desc * i;
    put(d, layout.desc.family, FAMILY[p.f]);
    put(d, layout.desc.hook, HOOK_FORWARD);
    put(d, layout.desc.record_size, p.rsz);
    put(d, layout.desc.count, p.count);
    put(d, layout.desc.offset, p.offset);
    const L = p.f === 'v4' ? layout.record4 : layout.record6;
    tables[p.f].forEach((r, idx) => {
      const b = p.offset + p.rsz * idx;
      const range = (name, lo, hi, v) => {
        const [a, z] = v || [lo, hi];
        put(b, L[name + '_lo'], a);
        put(b, L[name + '_hi'], z);
      };
      put(b, L.rule_id, r.id);
      const action = layout.actions[r.action];
      if (action === undefined) throw new Error('action ' + r.action);
      let arg = r.arg;
      if (arg === undefined) arg = ['LOG', 'COUNT'].includes(r.action) ? idx + 1 : 0;
      put(b, L.arg, arg);
      range('sport', 0, 65535, r.sport);
      range('dport', 0, 65535, r.dport);
      range('iif', 0, 65535, r.iif);
      range('oif', 0, 65535, r.oif);
      range('icmp', 0, 65535, r.icmp);
      range('proto', 0, 255, r.proto);
      put(b, L.tcp_flags_mask, 0);
      put(b, L.tcp_flags_value, 0);
      put(b, L.ct_state_mask, 0x1f);
      const l4 = r.needsL4 ?? Boolean(r.sport || r.dport || r.icmp);
      put(b, L.flags, l4 ? 1 : 0);
      put(b, L.action, action);
      if (p.f === 'v4') {
        const [slo, shi] = r.src || [0, 0xffffffff];
        put(b, L.src_lo, slo);
        put(b, L.src_hi, shi);
        put(b, L.dst_lo, 0);
        put(b, L.dst_hi, 0xffffffff);
      } else {
        const all = [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff];
        put(b, L.src_lo, [0, 0, 0, 0]);
        put(b, L.src_hi, all);
        put(b, L.dst_lo, [0, 0, 0, 0]);
        put(b, L.dst_hi, all);
      }
    });
  });
  return buf;
}

const REJECT_WITH = {
  'icmp-port-unreachable': 2,
  'icmp-admin-prohibited': 6,
  'tcp-reset': 7,
  'icmp6-adm-prohibited': 9,
  'icmp6-port-unreachable': 11,
};

module.exports = { pack, REJECT_WITH };
