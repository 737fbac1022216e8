// The chunk table of one blob (blobs/<id>.ctab): everything a daemon needs to serve a blob without reading it.
//
// header (64 B, little-endian):
//   0 magic "EODCTAB1"  8 u32 version (1)  12 u32 entry count  16 u8 compression (0 none, 1 zstd, 2 lz4)
//   17 u8 blkszbits  18..24 reserved  24 u64 kernel size (bytes of the kernel form, a block multiple)
//   32 u64 remote size (bytes of the remote form)  40..64 reserved
// entry (64 B each, sorted by plain offset, non-overlapping):
//   0 u64 plain offset (in the kernel form, block aligned)  8 u64 remote offset  16 u32 plain size
//   20 u32 remote size  24 u32 flags (bit 0: stored uncompressed)  28 u32 reserved  32 sha256 of the plain bytes
import { EodError } from "../errors.ts";
import { sha256Stream } from "../util/sha256.ts";

export const CHUNK_TABLE_MAGIC = "EODCTAB1";
export const CHUNK_TABLE_HEADER_SIZE = 64;
export const CHUNK_TABLE_ENTRY_SIZE = 64;
export const CHUNK_FLAG_RAW = 1;

export type Compression = "none" | "zstd" | "lz4";
const COMPRESSION_CODES: readonly Compression[] = ["none", "zstd", "lz4"];

export interface ChunkEntry {
  plainOffset: number;
  remoteOffset: number;
  plainSize: number;
  remoteSize: number;
  /** CHUNK_FLAG_RAW when the remote bytes are the plain bytes (compression did not pay). */
  flags: number;
  /** sha256 of the plain bytes. */
  digest: Uint8Array;
}

export interface ChunkTable {
  compression: Compression;
  blkSzBits: number;
  kernelSize: number;
  remoteSize: number;
  entries: ChunkEntry[];
}

export function encodeChunkTable(t: ChunkTable): Buffer {
  const out = Buffer.alloc(CHUNK_TABLE_HEADER_SIZE + t.entries.length * CHUNK_TABLE_ENTRY_SIZE);
  out.write(CHUNK_TABLE_MAGIC, 0, "latin1");
  out.writeUInt32LE(1, 8);
  out.writeUInt32LE(t.entries.length, 12);
  out.writeUInt8(COMPRESSION_CODES.indexOf(t.compression), 16);
  out.writeUInt8(t.blkSzBits, 17);
  out.writeBigUInt64LE(BigInt(t.kernelSize), 24);
  out.writeBigUInt64LE(BigInt(t.remoteSize), 32);
  let at = CHUNK_TABLE_HEADER_SIZE;
  for (const e of t.entries) {
    out.writeBigUInt64LE(BigInt(e.plainOffset), at);
    out.writeBigUInt64LE(BigInt(e.remoteOffset), at + 8);
    out.writeUInt32LE(e.plainSize, at + 16);
    out.writeUInt32LE(e.remoteSize, at + 20);
    out.writeUInt32LE(e.flags, at + 24);
    out.set(e.digest, at + 32);
    at += CHUNK_TABLE_ENTRY_SIZE;
  }
  return out;
}

/** Decodes and validates a chunk table; `what` names it in errors (e.g. the blob id). */
export function decodeChunkTable(buf: Uint8Array, what: string): ChunkTable {
  const bad = (why: string) => new EodError("IMAGE_INVALID", `Chunk table of ${what} is invalid: ${why}`);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < CHUNK_TABLE_HEADER_SIZE) throw bad(`only ${b.length} bytes`);
  if (b.toString("latin1", 0, 8) !== CHUNK_TABLE_MAGIC) throw bad("bad magic");
  if (b.readUInt32LE(8) !== 1) throw bad(`unknown version ${b.readUInt32LE(8)}`);
  const count = b.readUInt32LE(12);
  if (b.length !== CHUNK_TABLE_HEADER_SIZE + count * CHUNK_TABLE_ENTRY_SIZE) {
    throw bad(`${count} entries need ${CHUNK_TABLE_HEADER_SIZE + count * CHUNK_TABLE_ENTRY_SIZE} bytes, have ${b.length}`);
  }
  const compression = COMPRESSION_CODES[b.readUInt8(16)];
  if (!compression) throw bad(`unknown compression ${b.readUInt8(16)}`);
  const blkSzBits = b.readUInt8(17);
  if (blkSzBits < 9 || blkSzBits > 16) throw bad(`block size bits ${blkSzBits}`);
  const blkSz = 2 ** blkSzBits;
  const kernelSize = u64(b, 24, bad);
  const remoteSize = u64(b, 32, bad);
  if (kernelSize % blkSz) throw bad(`kernel size ${kernelSize} is not a multiple of ${blkSz}`);
  const entries: ChunkEntry[] = [];
  let plainEnd = 0;
  let at = CHUNK_TABLE_HEADER_SIZE;
  for (let i = 0; i < count; i++, at += CHUNK_TABLE_ENTRY_SIZE) {
    const e: ChunkEntry = {
      plainOffset: u64(b, at, bad), remoteOffset: u64(b, at + 8, bad), plainSize: b.readUInt32LE(at + 16),
      remoteSize: b.readUInt32LE(at + 20), flags: b.readUInt32LE(at + 24), digest: Uint8Array.from(b.subarray(at + 32, at + 64)),
    };
    if (e.plainSize === 0) throw bad(`chunk ${i} is empty`);
    if (e.plainOffset % blkSz) throw bad(`chunk ${i} plain offset ${e.plainOffset} is not block aligned`);
    if (e.plainOffset < plainEnd) throw bad(`chunk ${i} overlaps the previous one or is out of order`);
    if (e.plainOffset + e.plainSize > kernelSize) throw bad(`chunk ${i} ends past the kernel size`);
    if (e.remoteOffset + e.remoteSize > remoteSize) throw bad(`chunk ${i} ends past the remote size`);
    if (e.flags & ~CHUNK_FLAG_RAW) throw bad(`chunk ${i} has unknown flags 0x${e.flags.toString(16)}`);
    if ((e.flags & CHUNK_FLAG_RAW || compression === "none") && e.remoteSize !== e.plainSize) throw bad(`stored chunk ${i} has remote size ${e.remoteSize} != plain size ${e.plainSize}`);
    plainEnd = e.plainOffset + e.plainSize;
    entries.push(e);
  }
  // The kernel form ends with its last chunk's block: anything else is a table that lies about its blob.
  if (kernelSize !== Math.ceil(plainEnd / blkSz) * blkSz) throw bad(`kernel size ${kernelSize} does not end at the last chunk's block (${Math.ceil(plainEnd / blkSz) * blkSz})`);
  return { compression, blkSzBits, kernelSize, remoteSize, entries };
}

function u64(b: Buffer, at: number, bad: (why: string) => EodError): number {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`value ${v} at byte ${at} is too large`);
  return Number(v);
}

/**
 * The blob id: sha256 over the kernel form's description (size, then each chunk's offset, size and digest).
 * It names the plain content, so the same content gets the same id whatever the compression.
 */
export function blobIdOf(t: Pick<ChunkTable, "kernelSize" | "entries">): string {
  const h = sha256Stream();
  const head = Buffer.alloc(8 + 8);
  head.write("eodblob1", 0, "latin1");
  head.writeBigUInt64LE(BigInt(t.kernelSize), 8);
  h.update(head);
  const rec = Buffer.alloc(12);
  for (const e of t.entries) {
    rec.writeBigUInt64LE(BigInt(e.plainOffset), 0);
    rec.writeUInt32LE(e.plainSize, 8);
    h.update(rec);
    h.update(e.digest);
  }
  return h.digest("hex");
}

/** Binary search: the entry whose plain range contains `offset`, or -1 (a gap or past the end). */
export function findChunk(entries: readonly ChunkEntry[], offset: number): number {
  let lo = 0;
  let hi = entries.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const e = entries[mid];
    if (offset < e.plainOffset) hi = mid - 1;
    else if (offset >= e.plainOffset + e.plainSize) lo = mid + 1;
    else return mid;
  }
  return -1;
}
