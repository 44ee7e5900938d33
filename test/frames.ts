// Ethernet frames for tests: IPv4/IPv6 with TCP, UDP or ICMP, with correct
// IPv4 header checksums (the dataplane parser checks them).
export interface FrameSpec {
  family: 4 | 6;
  src: number | bigint;
  dst: number | bigint;
  proto: number;
  sport?: number;
  dport?: number;
  tcpFlags?: number;
  icmpType?: number;
  icmpCode?: number;
  payload?: number;
  /** Keep only this many bytes of the L4 header (a cut-short header, native/dataplane/parse.h). */
  truncateL4?: number;
}

function csum(b: Buffer, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) s += (b[off + i] << 8) | (i + 1 < len ? b[off + i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

export function l4Header(f: FrameSpec): Buffer {
  const pay = Buffer.alloc(f.payload ?? 0, 0x61);
  if (f.proto === 6) {
    const h = Buffer.alloc(20);
    h.writeUInt16BE(f.sport ?? 0, 0);
    h.writeUInt16BE(f.dport ?? 0, 2);
    h[12] = 5 << 4;
    h[13] = f.tcpFlags ?? 0x02;
    h.writeUInt16BE(65535, 14);
    return Buffer.concat([h, pay]);
  }
  if (f.proto === 17 || f.proto === 132) {
    const h = Buffer.alloc(f.proto === 17 ? 8 : 12);
    h.writeUInt16BE(f.sport ?? 0, 0);
    h.writeUInt16BE(f.dport ?? 0, 2);
    if (f.proto === 17) h.writeUInt16BE(8 + pay.length, 4);
    return Buffer.concat([h, pay]);
  }
  if (f.proto === 1 || f.proto === 58) {
    const h = Buffer.alloc(8);
    h[0] = f.icmpType ?? 8;
    h[1] = f.icmpCode ?? 0;
    return Buffer.concat([h, pay]);
  }
  return pay;
}

export function frame(f: FrameSpec): Buffer {
  const l4 = f.truncateL4 === undefined ? l4Header(f) : l4Header(f).subarray(0, f.truncateL4);
  const eth = Buffer.alloc(14);
  eth.writeUIntBE(0x020000000002, 0, 6);
  eth.writeUIntBE(0x020000000001, 6, 6);
  if (f.family === 4) {
    eth.writeUInt16BE(0x0800, 12);
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + l4.length, 2);
    ip[8] = 64;
    ip[9] = f.proto;
    ip.writeUInt32BE(Number(f.src) >>> 0, 12);
    ip.writeUInt32BE(Number(f.dst) >>> 0, 16);
    ip.writeUInt16BE(csum(ip, 0, 20), 10);
    return Buffer.concat([eth, ip, l4]);
  }
  eth.writeUInt16BE(0x86dd, 12);
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip.writeUInt16BE(l4.length, 4);
  ip[6] = f.proto;
  ip[7] = 64;
  const w = (o: number, v: bigint) => {
    for (let i = 0; i < 16; i++) ip[o + i] = Number((v >> BigInt(8 * (15 - i))) & 0xffn);
  };
  w(8, BigInt(f.src));
  w(24, BigInt(f.dst));
  return Buffer.concat([eth, ip, l4]);
}
