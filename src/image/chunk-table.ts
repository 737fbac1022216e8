// The chunk table of one blob (blobs/<id>.ctab): everything a daemon needs to serve a blob without reading it.
//
// header (64 B, little-endian):
//   0 magic "EODCTAB1"  8 u32 version (1)  12 u32 entry count  16 u8 compression (0 none, 1 zstd, 2 lz4)
//   17 u8 blkszbits  18..24 reserved  24 u64 kernel size (bytes of the kernel form, a block multiple)
//   32 u64 remote size (bytes of the remote form)  40..64 reserved
// entry (64 B each, sorted by plain offset, non-overlapping):
//   0 u64 plain offset (in the kernel form, block aligned)  8 u64 remote offset  16 u32 plain size
//   20 u32 remote size  24 u32 flags (bit 0: stored uncompressed)  28 u32 reserved  32 sha256 of the plain bytes
//
// Version 2, the seek index of a layer (docs/format.md 3.1): the same header with compression 3 = gzip too and
// 40 u64 window bytes; entries are spans of the layer's tar, plain ranges contiguous from 0 and starting on
// 4096-byte boundaries, remote ranges that may overlap, and 28 u16 skip (decoded bytes from the checkpoint to
// the plain offset), 30 u8 bits (bits of the first remote byte already consumed), 31 reserved; then a window
// directory (one u32 per entry: the length of its compressed window, 0 for none) and the windows back to back.
// A gzip entry with the same remote offset and bits as the one before is a further piece of that checkpoint's
// span: its stored skip and window are empty; it decodes with the first piece's window, skipping the pieces
// before it (its skip in memory).
import { EodError } from "../errors.ts";
import { sha256Stream } from "../util/sha256.ts";

export const CHUNK_TABLE_MAGIC = "EODCTAB1";
export const CHUNK_TABLE_HEADER_SIZE = 64;
export const CHUNK_TABLE_ENTRY_SIZE = 64;
export const CHUNK_FLAG_RAW = 1;

/** The codecs a build writes chunks with (`--compress`). */
export type Compression = "none" | "zstd" | "lz4";
/** What a table's remote form may be: a build's codec, or (version 2) an original gzip layer. */
export type TableCompression = Compression | "gzip";
const COMPRESSION_CODES: readonly TableCompression[] = ["none", "zstd", "lz4", "gzip"];
/** Version 2 spans start on this boundary of the tar, and a span's first piece's `skip` stays below it. */
export const SPAN_ALIGN = 4096;
/** A window is the 32 KiB of output before a gzip checkpoint, raw-deflate compressed (at most a few bytes larger). */
export const WINDOW_MAX_COMPRESSED = 32768 + 64;
const WINDOW_DIR_ENTRY_SIZE = 4;

export interface ChunkEntry {
  plainOffset: number;
  remoteOffset: number;
  plainSize: number;
  remoteSize: number;
  /** CHUNK_FLAG_RAW when the remote bytes are the plain bytes (compression did not pay). */
  flags: number;
  /** sha256 of the plain bytes. */
  digest: Uint8Array;
  /**
   * Version 2: decoded bytes from the span's checkpoint to its plain offset (< SPAN_ALIGN for a span's first
   * piece; a further piece also skips the pieces before it).
   */
  skip?: number;
  /** Version 2: bits (0-7) of the first remote byte that belong to the symbols before the checkpoint. */
  bits?: number;
}

export interface ChunkTable {
  /** 2 for a layer's seek index; absent for version 1 (a build's blob). */
  version?: 2;
  compression: TableCompression;
  blkSzBits: number;
  kernelSize: number;
  remoteSize: number;
  entries: ChunkEntry[];
  /**
   * Version 2: per entry, the 32 KiB of output before its checkpoint, raw-deflate compressed (empty: none); the
   * pieces of one span share their first piece's.
   */
  windows?: Uint8Array[];
}

/** Whether version 2 entry `e` is a further piece of the span of `prev` (the entry before it): the same checkpoint. */
export function sameCheckpoint(e: ChunkEntry, prev: ChunkEntry | undefined): boolean {
  return prev !== undefined && e.remoteOffset === prev.remoteOffset && (e.bits ?? 0) === (prev.bits ?? 0);
}

/** Whether chunk `i` decodes in one pass with chunk `i - 1` (a further piece of its gzip checkpoint's span). */
export function decodesWithPrevious(table: ChunkTable, i: number): boolean {
  return table.version === 2 && table.compression === "gzip" && i > 0 && sameCheckpoint(table.entries[i], table.entries[i - 1]);
}

/**
 * The chunks of a table as they decode in one pass each (verified-chunk.ts verifiedChunks): the pieces of one
 * gzip checkpoint together, every other chunk alone. The remote bytes of a group are those of its last chunk.
 */
export function* decodeGroups(table: ChunkTable): Generator<{ first: number; last: number }> {
  for (let first = 0, last = 0; first < table.entries.length; first = ++last) {
    while (last + 1 < table.entries.length && decodesWithPrevious(table, last + 1)) last++;
    yield { first, last };
  }
}

export function encodeChunkTable(t: ChunkTable): Buffer {
  const v2 = t.version === 2;
  const given = v2 ? (t.windows ?? t.entries.map(() => new Uint8Array(0))) : [];
  if (v2 && given.length !== t.entries.length) throw new RangeError(`Cannot encode chunk table: ${given.length} windows for ${t.entries.length} entries`);
  const windows = given.map((w, i) => (piece(t, i) ? new Uint8Array(0) : w));
  const windowBytes = windows.reduce((n, w) => n + w.length, 0);
  const entriesEnd = CHUNK_TABLE_HEADER_SIZE + t.entries.length * CHUNK_TABLE_ENTRY_SIZE;
  const out = Buffer.alloc(entriesEnd + (v2 ? windows.length * WINDOW_DIR_ENTRY_SIZE + windowBytes : 0));
  out.write(CHUNK_TABLE_MAGIC, 0, "latin1");
  out.writeUInt32LE(v2 ? 2 : 1, 8);
  out.writeUInt32LE(t.entries.length, 12);
  out.writeUInt8(COMPRESSION_CODES.indexOf(t.compression), 16);
  out.writeUInt8(t.blkSzBits, 17);
  out.writeBigUInt64LE(BigInt(t.kernelSize), 24);
  out.writeBigUInt64LE(BigInt(t.remoteSize), 32);
  if (v2) out.writeBigUInt64LE(BigInt(windowBytes), 40);
  let at = CHUNK_TABLE_HEADER_SIZE;
  for (const [i, e] of t.entries.entries()) {
    out.writeBigUInt64LE(BigInt(e.plainOffset), at);
    out.writeBigUInt64LE(BigInt(e.remoteOffset), at + 8);
    out.writeUInt32LE(e.plainSize, at + 16);
    out.writeUInt32LE(e.remoteSize, at + 20);
    out.writeUInt32LE(e.flags, at + 24);
    if (v2) {
      out.writeUInt16LE(piece(t, i) ? 0 : e.skip ?? 0, at + 28);
      out.writeUInt8(e.bits ?? 0, at + 30);
    }
    out.set(e.digest, at + 32);
    at += CHUNK_TABLE_ENTRY_SIZE;
  }
  let data = at + windows.length * WINDOW_DIR_ENTRY_SIZE;
  for (const w of windows) {
    out.writeUInt32LE(w.length, at);
    out.set(w, data);
    at += WINDOW_DIR_ENTRY_SIZE;
    data += w.length;
  }
  return out;
}

/** Whether entry `i` of a gzip table is a further piece of a span (stored without skip and window). */
function piece(t: ChunkTable, i: number): boolean {
  const pieceSkip = () => (t.entries[i - 1].skip ?? 0) + t.entries[i - 1].plainSize;
  if (t.compression !== "gzip" || !sameCheckpoint(t.entries[i], t.entries[i - 1])) return false;
  if ((t.entries[i].skip ?? 0) !== pieceSkip()) throw new RangeError(`Cannot encode chunk table: piece ${i} skips ${t.entries[i].skip}, not the ${pieceSkip()} bytes before it`);
  return true;
}

/** Decodes and validates a chunk table (version 1 or 2); `what` names it in errors (e.g. the blob id). */
export function decodeChunkTable(buf: Uint8Array, what: string): ChunkTable {
  const bad = (why: string) => new EodError("IMAGE_INVALID", `Chunk table of ${what} is invalid: ${why}`);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < CHUNK_TABLE_HEADER_SIZE) throw bad(`only ${b.length} bytes`);
  if (b.toString("latin1", 0, 8) !== CHUNK_TABLE_MAGIC) throw bad("bad magic");
  const version = b.readUInt32LE(8);
  if (version !== 1 && version !== 2) throw bad(`unknown version ${version}`);
  const v2 = version === 2;
  const count = b.readUInt32LE(12);
  const entriesEnd = CHUNK_TABLE_HEADER_SIZE + count * CHUNK_TABLE_ENTRY_SIZE;
  const windowBytes = v2 ? u64(b, 40, bad) : 0;
  const size = entriesEnd + (v2 ? count * WINDOW_DIR_ENTRY_SIZE + windowBytes : 0);
  if (b.length !== size) throw bad(`${count} entries${v2 ? ` and ${windowBytes} window bytes` : ""} need ${size} bytes, have ${b.length}`);
  const compression = COMPRESSION_CODES[b.readUInt8(16)];
  if (!compression || (compression === "gzip" && !v2)) throw bad(`unknown compression ${b.readUInt8(16)} in version ${version}`);
  if (v2 && compression === "lz4") throw bad("version 2 holds gzip, zstd or none, not lz4");
  const blkSzBits = b.readUInt8(17);
  if (blkSzBits < 9 || blkSzBits > 16) throw bad(`block size bits ${blkSzBits}`);
  const blkSz = 2 ** blkSzBits;
  const kernelSize = u64(b, 24, bad);
  const remoteSize = u64(b, 32, bad);
  if (kernelSize % blkSz) throw bad(`kernel size ${kernelSize} is not a multiple of ${blkSz}`);
  if (reservedBytes(b, 18, 24) || reservedBytes(b, v2 ? 48 : 40, 64)) throw bad("reserved header bytes are not zero");
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
    if (v2) {
      e.skip = b.readUInt16LE(at + 28);
      e.bits = b.readUInt8(at + 30);
      checkSpan(e, i, entries[i - 1], plainEnd, compression, b.readUInt8(at + 31), bad);
    } else if (b.readUInt32LE(at + 28)) throw bad(`chunk ${i} has reserved bytes set`);
    if ((e.flags & CHUNK_FLAG_RAW || compression === "none") && e.remoteSize !== e.plainSize) throw bad(`stored chunk ${i} has remote size ${e.remoteSize} != plain size ${e.plainSize}`);
    plainEnd = e.plainOffset + e.plainSize;
    entries.push(e);
  }
  // The kernel form ends with its last chunk's block: anything else is a table that lies about its blob.
  if (kernelSize !== Math.ceil(plainEnd / blkSz) * blkSz) throw bad(`kernel size ${kernelSize} does not end at the last chunk's block (${Math.ceil(plainEnd / blkSz) * blkSz})`);
  if (!v2) return { compression, blkSzBits, kernelSize, remoteSize, entries };
  const windows = decodeWindows(b, entriesEnd, count, compression, bad);
  for (let i = 1; i < count; i++) {
    if (!sameCheckpoint(entries[i], entries[i - 1])) continue;
    if (windows[i].length) throw bad(`span ${i} continues span ${i - 1}'s checkpoint but has a window of its own`);
    windows[i] = windows[i - 1];
  }
  return { version: 2, compression, blkSzBits, kernelSize, remoteSize, entries, windows };
}

/** A version 2 entry is a span of a layer's tar: contiguous with the one before, from its checkpoint's byte and bit. */
function checkSpan(e: ChunkEntry, i: number, prev: ChunkEntry | undefined, plainEnd: number, compression: TableCompression, reserved: number, bad: (why: string) => EodError): void {
  const skip = e.skip ?? 0;
  const bits = e.bits ?? 0;
  if (e.flags) throw bad(`span ${i} has flags 0x${e.flags.toString(16)} (version 2 has none)`);
  if (reserved) throw bad(`span ${i} has reserved byte 31 set`);
  if (e.plainOffset !== plainEnd) throw bad(`span ${i} starts at ${e.plainOffset}, not where span ${i - 1} ends (${plainEnd})`);
  if (e.plainOffset % SPAN_ALIGN) throw bad(`span ${i} plain offset ${e.plainOffset} is not a multiple of ${SPAN_ALIGN}`);
  if (bits > 7) throw bad(`span ${i} has ${bits} bits of its first byte consumed (at most 7)`);
  if (bits && compression !== "gzip") throw bad(`span ${i} starts ${bits} bits into a byte of a ${compression} layer`);
  if (sameCheckpoint(e, prev)) {
    // A further piece of prev's span: it decodes from the same checkpoint, past prev's bytes.
    if (compression !== "gzip") throw bad(`span ${i} starts at the same remote byte as span ${i - 1} in a ${compression} layer`);
    if (skip) throw bad(`span ${i} continues span ${i - 1}'s checkpoint but stores a skip of ${skip}`);
    if (e.remoteOffset + e.remoteSize < prev!.remoteOffset + prev!.remoteSize) throw bad(`span ${i} ends in the layer before span ${i - 1} does`);
    e.skip = (prev!.skip ?? 0) + prev!.plainSize;
    if (e.skip > 0xffffffff) throw bad(`span ${i} lies more than 4 GiB past its checkpoint`);
  } else if (skip >= SPAN_ALIGN || (skip && compression === "none")) throw bad(`span ${i} skips ${skip} bytes (${compression === "none" ? "none" : `less than ${SPAN_ALIGN}`} allowed)`);
  if (compression === "none" && e.remoteOffset !== e.plainOffset) throw bad(`span ${i} of an uncompressed layer has remote offset ${e.remoteOffset} != plain offset ${e.plainOffset}`);
  if (e.remoteSize === 0) throw bad(`span ${i} has no remote bytes`);
  if (prev && e.remoteOffset < prev.remoteOffset) throw bad(`span ${i} checkpoint at remote byte ${e.remoteOffset} is before span ${i - 1}'s (${prev.remoteOffset})`);
}

/** The window directory and windows after the entries; their lengths must add up to the header's window bytes. */
function decodeWindows(b: Buffer, at: number, count: number, compression: TableCompression, bad: (why: string) => EodError): Uint8Array[] {
  const windows: Uint8Array[] = [];
  let data = at + count * WINDOW_DIR_ENTRY_SIZE;
  for (let i = 0; i < count; i++, at += WINDOW_DIR_ENTRY_SIZE) {
    const len = b.readUInt32LE(at);
    if (len && compression !== "gzip") throw bad(`span ${i} of a ${compression} layer has a window`);
    if (len > WINDOW_MAX_COMPRESSED) throw bad(`span ${i} window of ${len} bytes is larger than ${WINDOW_MAX_COMPRESSED}`);
    if (data + len > b.length) throw bad(`span ${i} window runs past the window bytes`);
    windows.push(Uint8Array.from(b.subarray(data, data + len)));
    data += len;
  }
  if (data !== b.length) throw bad(`window lengths add up to ${data} bytes, the table has ${b.length}`);
  return windows;
}

function reservedBytes(b: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i]) return true;
  return false;
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
