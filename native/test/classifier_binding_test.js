// The classifier's N-API surface, end to end, with node:test:
//   node --test native/test/classifier_binding_test.js
// Loads build/Release/flatwall_native.node (or $FLATWALL_ADDON), packs table
// sets through the exported layout, and checks results against the linear
// algorithm, every documented misuse error, and bench()'s contract.
'use strict';
const assert = require('node:assert/strict');
const path = require('node:path');
const test = require('node:test');

const addon = require(process.env.FLATWALL_ADDON ||
  path.join(__dirname, '..', '..', 'build', 'Release', 'flatwall_native.node'));
const L = addon.layout;

// ------------------------------------------------------------- packing

function field(view, layout, name, off, value) {
  const f = layout[name];
  const o = off + f.offset;
  if (f.size === 1) view.setUint8(o, value);
  else if (f.size === 2) view.setUint16(o, value, true);
  else view.setUint32(o, value >>> 0, true);
}

// A rule: every field a range [lo, hi]; defaults are wildcards.
function rule(r = {}) {
  return {
    src: r.src || [0, 0xffffffff], dst: r.dst || [0, 0xffffffff],
    sport: r.sport || [0, 65535], dport: r.dport || [0, 65535],
    iif: r.iif || [0, 65535], oif: r.oif || [0, 65535], icmp: r.icmp || [0, 65535],
    proto: r.proto || [0, 255], ct: r.ct ?? 0x1f, flags: r.flags || 0,
    action: r.action ?? L.actions.ACCEPT, arg: r.arg || 0,
  };
}

function pack4(tables) {
  const rs = L.record4.size;
  let total = L.header.size + tables.length * L.desc.size;
  const offsets = tables.map((t) => { const o = total; total += t.length * rs; return o; });
  const buf = new ArrayBuffer(total);
  const v = new DataView(buf);
  field(v, L.header, 'magic', 0, L.magic);
  field(v, L.header, 'version', 0, L.version);
  field(v, L.header, 'table_count', 0, tables.length);
  field(v, L.header, 'total_bytes', 0, total);
  tables.forEach((t, i) => {
    const d = L.header.size + i * L.desc.size;
    field(v, L.desc, 'family', d, 4);
    field(v, L.desc, 'hook', d, 1);
    field(v, L.desc, 'record_size', d, rs);
    field(v, L.desc, 'count', d, t.length);
    field(v, L.desc, 'offset', d, offsets[i]);
    t.forEach((r, j) => {
      const o = offsets[i] + j * rs;
      for (const k of ['src', 'dst', 'sport', 'dport', 'iif', 'oif', 'icmp', 'proto']) {
        field(v, L.record4, `${k}_lo`, o, r[k][0]);
        field(v, L.record4, `${k}_hi`, o, r[k][1]);
      }
      field(v, L.record4, 'ct_state_mask', o, r.ct);
      field(v, L.record4, 'flags', o, r.flags);
      field(v, L.record4, 'action', o, r.action);
      field(v, L.record4, 'arg', o, r.arg);
      field(v, L.record4, 'rule_id', o, j);
    });
  });
  return buf;
}

function keys4(list) {
  const ks = L.key4.size;
  const buf = new ArrayBuffer(list.length * ks);
  const v = new DataView(buf);
  list.forEach((k, i) => {
    const o = i * ks;
    field(v, L.key4, 'src', o, k.src || 0);
    field(v, L.key4, 'dst', o, k.dst || 0);
    field(v, L.key4, 'sport', o, k.sport || 0);
    field(v, L.key4, 'dport', o, k.dport || 0);
    field(v, L.key4, 'proto', o, k.proto || 0);
    field(v, L.key4, 'ct_state', o, k.ct || L.ctState.NEW);
    field(v, L.key4, 'flags', o, k.flags ?? L.keyFlags.HAS_L4);
  });
  return buf;
}

// A small ACL: 10.0.0.0/8 -> port 22 accepted, a LOG that continues, a
// port range dropped, policy DROP.
const ACL = [
  rule({ src: [0x0a000000, 0x0affffff], dport: [22, 22], proto: [6, 6], flags: 1 }),
  rule({ dport: [80, 80], action: L.actions.LOG, arg: 2 }),
  rule({ dport: [1000, 2000], action: L.actions.DROP, flags: 1 }),
  rule({ dport: [80, 80], action: L.actions.ACCEPT }),
  rule({ action: L.actions.DROP }),
];

// --------------------------------------------------------------- tests

test('layout exports key4/key6', () => {
  assert.equal(L.key4.size, 24);
  assert.equal(L.key6.size, 48);
  assert.equal(L.key4.src.size, 4);
  assert.equal(L.key6.dst.size, 16);
  for (const f of ['sport', 'dport', 'iif', 'oif', 'icmp', 'proto', 'tcp_flags', 'ct_state', 'flags'])
    assert.ok(L.key4[f] && L.key6[f], f);
});

test('validateTables', () => {
  assert.equal(addon.validateTables(pack4([ACL])), null);
  const bad = pack4([ACL]);
  new DataView(bad).setUint32(0, 0, true);
  assert.match(addon.validateTables(bad), /bad magic/);
  assert.match(addon.validateTables(new Uint8Array(3)), /shorter than/);
  assert.throws(() => addon.validateTables(), TypeError);
  assert.throws(() => addon.validateTables('x'), TypeError);
});

test('buildClassifier, lookup, evaluate', async () => {
  for (const algo of ['tuplemerge', 'linear']) {
    const c = await addon.buildClassifier(pack4([ACL]), 0, algo);
    const s = c.stats();
    assert.equal(s.algorithm, algo);
    assert.equal(s.family, 4);
    assert.equal(s.records, 5);
    assert.ok(s.memoryBytes > 0 && s.bytesPerRule > 0 && s.buildSeconds >= 0 && s.tables >= 1);
    const keys = keys4([
      { src: 0x0a010203, dport: 22, proto: 6 },
      { src: 0x0b010203, dport: 22, proto: 6 },
      { dport: 80, proto: 6 },
      { dport: 1500, proto: 17 },
      { dport: 1500, proto: 17, flags: 0 },
    ]);
    const out = new Uint32Array(5);
    c.lookup(keys, out);
    assert.deepEqual([...out], [0, 4, 1, 2, 4]);
    c.lookup(keys, out, new Uint32Array([1, 0, 2, 3, 0]));
    assert.deepEqual([...out], [4, 4, 3, 4, 4]);
    c.evaluate(keys, out);
    assert.deepEqual([...out], [0, 4, 3, 2, 4]);
    // A view with an odd byte offset (copied internally), and a Buffer.
    const odd = new Uint8Array(keys.byteLength + 1);
    odd.set(new Uint8Array(keys), 1);
    c.lookup(odd.subarray(1), out);
    assert.deepEqual([...out], [0, 4, 1, 2, 4]);
    c.lookup(Buffer.from(keys), out);
    assert.deepEqual([...out], [0, 4, 1, 2, 4]);
  }
});

test('tuplemerge agrees with linear on generated traces', async () => {
  const rules = [];
  for (let i = 0; i < 3000; i++) {
    const net = (0x0a000000 + ((i * 2654435761) >>> 8)) >>> 0;
    const len = 16 + (i % 17);
    const mask = len === 32 ? 0xffffffff : ~(0xffffffff >>> len) >>> 0;
    const lo = (net & mask) >>> 0;
    rules.push(rule({
      dst: [lo, (lo | ~mask) >>> 0], dport: i % 3 ? [i % 1000, i % 1000] : [0, 65535],
      proto: i % 5 ? [6, 6] : [0, 255], flags: i % 3 ? 1 : 0, action: i % 2,
    }));
  }
  rules.push(rule({ action: L.actions.DROP }));
  const buf = pack4([rules]);
  const tm = await addon.buildClassifier(buf, 0);
  const lin = await addon.buildClassifier(buf, 0, 'linear');
  for (const mode of ['targeted', 'random']) {
    const keys = tm.makeTrace(20000, { seed: 7, mode, locality: 0.1 });
    assert.equal(keys.byteLength, 20000 * L.key4.size);
    const a = new Uint32Array(20000), b = new Uint32Array(20000);
    tm.lookup(keys, a);
    lin.lookup(keys, b);
    assert.deepEqual(a, b);
    tm.evaluate(keys, a);
    lin.evaluate(keys, b);
    assert.deepEqual(a, b);
  }
  // Deterministic traces.
  assert.deepEqual(new Uint8Array(tm.makeTrace(100, { seed: 3 })),
    new Uint8Array(tm.makeTrace(100, { seed: 3 })));
});

test('bench times the native loop', async () => {
  const c = await addon.buildClassifier(pack4([ACL]), 0);
  const keys = c.makeTrace(1000, { seed: 1 });
  const one = c.bench(keys, { batch: false, seconds: 0.05 });
  const many = c.bench(keys, { batch: true, seconds: 0, minIterations: 3 });
  for (const r of [one, many]) {
    assert.ok(r.lookups > 0 && r.seconds > 0 && r.lookupsPerSecond > 0);
    assert.equal(r.lookups % 1000, 0);
  }
  assert.equal(many.iterations, 3);
  assert.equal(one.checksum / one.iterations, many.checksum / many.iterations);
});

test('misuse throws TypeError/RangeError, bad tables reject', async () => {
  const buf = pack4([ACL]);
  assert.throws(() => addon.buildClassifier(), TypeError);
  assert.throws(() => addon.buildClassifier(buf), TypeError);
  assert.throws(() => addon.buildClassifier(42, 0), TypeError);
  assert.throws(() => addon.buildClassifier(buf, -1), RangeError);
  assert.throws(() => addon.buildClassifier(buf, 1.5), RangeError);
  assert.throws(() => addon.buildClassifier(buf, 0, 'nope'), TypeError);
  await assert.rejects(addon.buildClassifier(buf, 3), RangeError);
  const bad = pack4([ACL]);
  new DataView(bad).setUint16(L.header.size + L.desc.size + L.record4.dport_lo.offset, 9, true);
  new DataView(bad).setUint16(L.header.size + L.desc.size + L.record4.dport_hi.offset, 8, true);
  await assert.rejects(addon.buildClassifier(bad, 0), /record 0: dport lo > hi/);
  assert.throws(() => new addon.Classifier(), TypeError);

  const c = await addon.buildClassifier(buf, 0);
  const keys = keys4([{}, {}]);
  assert.throws(() => c.lookup(keys), TypeError);
  assert.throws(() => c.lookup(keys, new Uint32Array(1)), RangeError);
  assert.throws(() => c.lookup(keys, new Int32Array(2)), TypeError);
  assert.throws(() => c.lookup(keys, [0, 0]), TypeError);
  assert.throws(() => c.lookup(new Uint8Array(25), new Uint32Array(2)), RangeError);
  assert.throws(() => c.lookup(keys, new Uint32Array(2), new Uint32Array(1)), RangeError);
  assert.throws(() => c.evaluate(keys, new Uint32Array(1)), RangeError);
  assert.throws(() => c.makeTrace(-1), RangeError);
  assert.throws(() => c.makeTrace('5'), TypeError);
  assert.throws(() => c.makeTrace(5, { mode: 'sideways' }), TypeError);
  assert.throws(() => c.makeTrace(5, { locality: 2 }), RangeError);
  assert.throws(() => c.makeTrace(5, 'x'), TypeError);
  assert.throws(() => c.bench(keys, { batch: 'yes' }), TypeError);
  assert.throws(() => c.bench(keys, { seconds: -1 }), RangeError);
  assert.throws(() => c.bench(new ArrayBuffer(0)), RangeError);
  // Empty inputs are fine where they make sense.
  c.lookup(new ArrayBuffer(0), new Uint32Array(0));
  assert.equal(c.makeTrace(0).byteLength, 0);
});
