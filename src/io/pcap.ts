// Classic pcap files (not pcapng): read every record, write a new file.
// The format is a 24-byte global header and a 16-byte header per record;
// both byte orders and the microsecond and nanosecond variants are read.
// (The `pcap` npm package binds libpcap for live capture and cannot write
// files; what replay needs is this much.)

export const LINKTYPE_ETHERNET = 1;

export interface PcapRecord {
  tsSec: number;
  tsFrac: number; // microseconds, or nanoseconds when nanos
  origLen: number;
  data: Buffer; // a view into the file buffer
}

export interface PcapFile {
  linktype: number;
  nanos: boolean;
  snaplen: number;
  records: PcapRecord[];
}

export class PcapError extends Error {}

export function readPcap(buf: Buffer, name = 'pcap'): PcapFile {
  if (buf.length < 24) throw new PcapError(`${name}: not a pcap file (${buf.length} bytes, the header alone is 24)`);
  const magicLE = buf.readUInt32LE(0);
  let le: boolean;
  let nanos: boolean;
  if (magicLE === 0xa1b2c3d4 || magicLE === 0xa1b23c4d) {
    le = true;
    nanos = magicLE === 0xa1b23c4d;
  } else if (buf.readUInt32BE(0) === 0xa1b2c3d4 || buf.readUInt32BE(0) === 0xa1b23c4d) {
    le = false;
    nanos = buf.readUInt32BE(0) === 0xa1b23c4d;
  } else if (magicLE === 0x0a0d0d0a) {
    throw new PcapError(`${name}: pcapng is not supported; convert it with "editcap -F pcap IN OUT"`);
  } else {
    throw new PcapError(`${name}: not a pcap file (magic 0x${magicLE.toString(16)})`);
  }
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const snaplen = u32(16);
  const linktype = u32(20) & 0xffff;
  const records: PcapRecord[] = [];
  let off = 24;
  while (off < buf.length) {
    if (off + 16 > buf.length) throw new PcapError(`${name}: record ${records.length + 1} header is cut short at byte ${off}`);
    const incl = u32(off + 8);
    const orig = u32(off + 12);
    if (incl > 262144) throw new PcapError(`${name}: record ${records.length + 1} claims ${incl} bytes (corrupt file?)`);
    if (off + 16 + incl > buf.length) throw new PcapError(`${name}: record ${records.length + 1} data is cut short at byte ${off + 16}`);
    records.push({ tsSec: u32(off), tsFrac: u32(off + 4), origLen: orig, data: buf.subarray(off + 16, off + 16 + incl) });
    off += 16 + incl;
  }
  return { linktype, nanos, snaplen, records };
}

/** A little-endian pcap file with the same timestamps and link type. */
export function writePcap(records: PcapRecord[], linktype = LINKTYPE_ETHERNET, nanos = false, snaplen = 262144): Buffer {
  const size = 24 + records.reduce((n, r) => n + 16 + r.data.length, 0);
  const out = Buffer.alloc(size);
  out.writeUInt32LE(nanos ? 0xa1b23c4d : 0xa1b2c3d4, 0);
  out.writeUInt16LE(2, 4);
  out.writeUInt16LE(4, 6);
  out.writeUInt32LE(snaplen, 16);
  out.writeUInt32LE(linktype, 20);
  let off = 24;
  for (const r of records) {
    out.writeUInt32LE(r.tsSec, off);
    out.writeUInt32LE(r.tsFrac, off + 4);
    out.writeUInt32LE(r.data.length, off + 8);
    out.writeUInt32LE(r.origLen, off + 12);
    r.data.copy(out, off + 16);
    off += 16 + r.data.length;
  }
  return out;
}
