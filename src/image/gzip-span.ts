// Decoding one span of a gzip layer's seek index (gzip-index.ts) from its remote bytes, with node:zlib:
// raw inflate primed with the span's window as the dictionary, and across a member's end (trailer, next
// header) on to the next member; then `skip` bytes dropped and exactly the span's plain size kept. Never
// more output than the span needs and a little: a lying remote cannot make a decompression bomb of it.
// Several pieces of one checkpoint decode in one inflate (the last one's bytes hold the others'), each cut
// out where its skip says: a fill of a whole span inflates it once, not once per piece.
//
// A checkpoint `bits` into its first byte: node:zlib has no inflatePrime(), and shifting the bytes would
// move the byte boundaries that stored blocks align to. So the first `bits` bits are replaced by empty
// deflate blocks of as many bits modulo 8 (BIT_PREFIX): the original bytes stay where they are, aligned.
import zlib from "node:zlib";
import { EodError } from "../errors.ts";
import { sameCheckpoint, type ChunkTable } from "./chunk-table.ts";
import { gzipHeaderLength } from "./gzip-header.ts";
import { CLEN_ORDER } from "./inflate-tables.ts";

/** Output past a span's end that its last bytes may still decode (a few symbols of the next one). */
const OVERSHOOT = 64 * 1024;
const GZIP_TRAILER = 8;

/** The plain bytes of span `i` from its remote bytes, on this thread; anything else is a DIGEST_MISMATCH. */
export function decodeGzipSpan(table: ChunkTable, i: number, remote: Uint8Array, what: string): Uint8Array {
  return decodeGzipPieces(table, i, i, remote, what)[0];
}

/** decodeGzipSpan() with the inflating on the thread pool. */
export async function decodeGzipSpanAsync(table: ChunkTable, i: number, remote: Uint8Array, what: string): Promise<Uint8Array> {
  return (await decodeGzipPiecesAsync(table, i, i, remote, what))[0];
}

/**
 * Pieces first..last of one checkpoint's span (chunk-table.ts sameCheckpoint) from the remote bytes of `last`
 * (which hold the others'), in one inflate from the checkpoint: each piece's plain bytes, not yet verified.
 * @throws EodError DIGEST_MISMATCH when the bytes do not decode to as many bytes as the pieces need
 */
export function decodeGzipPieces(table: ChunkTable, first: number, last: number, remote: Uint8Array, what: string): Uint8Array[] {
  const s = prepare(table, first, last, remote, what);
  let out: Buffer;
  try {
    out = zlib.inflateRawSync(s.input, s.options);
  } catch (err) {
    throw corrupt(err, what);
  }
  return finishPieces(s, out, what);
}

/** decodeGzipPieces() with the inflating on the thread pool (a span crossing a gzip member's end finishes here). */
export async function decodeGzipPiecesAsync(table: ChunkTable, first: number, last: number, remote: Uint8Array, what: string): Promise<Uint8Array[]> {
  const s = prepare(table, first, last, remote, what);
  let out: Buffer;
  try {
    out = await new Promise<Buffer>((resolve, reject) => zlib.inflateRaw(s.input, s.options, (err, out) => (err ? reject(err) : resolve(out))));
  } catch (err) {
    throw corrupt(err, what);
  }
  return finishPieces(s, out, what);
}

interface Prepared {
  input: Uint8Array;
  options: zlib.ZlibOptions;
  /** Decoded bytes from the checkpoint through the end of the last piece. */
  need: number;
  /** Where each piece starts and ends in them. */
  pieces: Array<{ start: number; end: number }>;
  remote: Uint8Array;
  /** Whole bytes the input has before the remote bytes (the empty blocks that stand for `bits`). */
  prefix: number;
}

function prepare(table: ChunkTable, first: number, last: number, remote: Uint8Array, what: string): Prepared {
  const entries = table.entries;
  for (let k = first + 1; k <= last; k++) {
    if (!sameCheckpoint(entries[k], entries[k - 1])) throw new RangeError(`internal: pieces ${first}..${last} do not share a checkpoint (${k})`);
  }
  const e = entries[last];
  const bits = e.bits ?? 0;
  const need = (e.skip ?? 0) + e.plainSize;
  if (remote.length !== e.remoteSize) throw new EodError("DIGEST_MISMATCH", `Cannot decode ${what}: got ${remote.length} remote bytes, expected ${e.remoteSize}`);
  const options: zlib.ZlibOptions = { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: need + OVERSHOOT, chunkSize: Math.max(64, need + 1024) };
  const window = table.windows?.[first];
  if (window?.length) options.dictionary = inflateWindow(window, what);
  const pieces = entries.slice(first, last + 1).map((p) => ({ start: p.skip ?? 0, end: (p.skip ?? 0) + p.plainSize }));
  return { input: bits ? withPrefix(remote, bits) : remote, options, need, pieces, remote, prefix: bits ? BIT_PREFIX[bits].bytes : 0 };
}

/** The checkpoint's 32 KiB of history (the table's digest vouches for it; its size is still checked). */
function inflateWindow(window: Uint8Array, what: string): Buffer {
  try {
    return zlib.inflateRawSync(window, { maxOutputLength: 32768 });
  } catch (err) {
    throw new EodError("IMAGE_INVALID", `Cannot decode the window of ${what}: ${(err as Error).message}`, { cause: err });
  }
}

/** LSB-first bit writer (deflate's order); Huffman codes go MSB first. */
class BitWriter {
  #bits: number[] = [];
  get length(): number {
    return this.#bits.length;
  }
  put(value: number, n: number): this {
    for (let k = 0; k < n; k++) this.#bits.push((value >> k) & 1);
    return this;
  }
  code(code: number, n: number): this {
    for (let k = n - 1; k >= 0; k--) this.#bits.push((code >> k) & 1);
    return this;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(Math.ceil(this.#bits.length / 8));
    this.#bits.forEach((b, k) => (out[k >> 3] |= b << (k & 7)));
    return out;
  }
}

/**
 * Empty, non-final deflate blocks of `bits` + 8·bytes bits, per bits 1..7: fixed blocks (10 bits each) and an
 * empty dynamic block of 95 bits (only the end-of-block code, of length 1: the one incomplete code zlib allows).
 */
const BIT_PREFIX: readonly { bytes: number; data: Uint8Array }[] = [0, 1, 2, 3, 4, 5, 6, 7].map((bits) => {
  const w = new BitWriter();
  const fixed = [0, 1, 1, 2, 2, 3, 3, 0][bits];
  if (bits % 2) emptyDynamicBlock(w);
  for (let k = 0; k < fixed; k++) w.put(0, 1).put(1, 2).put(0, 7); // BFINAL 0, BTYPE 01, end-of-block 0000000
  if (w.length % 8 !== bits) throw new Error(`internal: empty blocks of ${w.length} bits for ${bits}`);
  return { bytes: (w.length - bits) / 8, data: w.bytes() };
});

function emptyDynamicBlock(w: BitWriter): void {
  w.put(0, 1).put(2, 2).put(0, 5).put(0, 5).put(19 - 4, 4); // BFINAL 0, BTYPE 10, HLIT 257, HDIST 1, HCLEN 19
  // Code length code: 18 (zeros) length 1, 0 and 1 length 2, in RFC 1951's order.
  for (const sym of CLEN_ORDER) w.put(sym === 18 ? 1 : sym === 0 || sym === 1 ? 2 : 0, 3);
  // 256 zero lengths (138 + 118), length 1 for end-of-block, 0 for the one distance code; codes 18 = 0, 0 = 10, 1 = 11.
  w.code(0, 1).put(127, 7).code(0, 1).put(107, 7).code(3, 2).code(2, 2);
  w.code(0, 1); // end-of-block
}

/** `remote` with its first `bits` bits replaced by BIT_PREFIX[bits]: a stream that starts at the checkpoint. */
function withPrefix(remote: Uint8Array, bits: number): Uint8Array {
  const p = BIT_PREFIX[bits];
  const out = new Uint8Array(p.bytes + remote.length);
  out.set(remote, p.bytes);
  out.set(p.data.subarray(0, p.bytes));
  const low = (1 << bits) - 1;
  if (remote.length) out[p.bytes] = (remote[0] & ~low) | (p.data[p.bytes] & low);
  return out;
}

function finishPieces(s: Prepared, first: Buffer, what: string): Uint8Array[] {
  let plain: Uint8Array = first;
  // The member ended before the span's end: the rest comes from the members after it.
  if (first.length < s.need) plain = Buffer.concat([first, nextMembers(s, s.need - first.length, what)]);
  const from = s.pieces[0].start;
  if (plain.length < s.need) throw new EodError("DIGEST_MISMATCH", `Cannot decode ${what}: got ${Math.max(0, plain.length - from)} bytes, expected ${s.need - from}`);
  return s.pieces.map((p) => plain.subarray(p.start, p.end));
}

/**
 * `want` more bytes from the members after the one the span started in: zlib says how many input bytes the
 * first member's deflate data took (up to its last, padded byte), so its trailer follows there.
 */
function nextMembers(s: Prepared, want: number, what: string): Buffer {
  let used: number;
  try {
    used = (zlib.inflateRawSync(s.input, { ...s.options, info: true }) as unknown as { engine: zlib.InflateRaw }).engine.bytesWritten;
  } catch (err) {
    throw corrupt(err, what);
  }
  const at = used - s.prefix + GZIP_TRAILER;
  try {
    gzipHeaderLength(s.remote.subarray(at), true, at);
    // zlib's gunzip goes on through every member that follows, checking the trailers of those that end here.
    return zlib.gunzipSync(s.remote.subarray(at), { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: want + OVERSHOOT });
  } catch (err) {
    throw corrupt(err, what);
  }
}

function corrupt(err: unknown, what: string): EodError {
  return new EodError("DIGEST_MISMATCH", `Cannot decode ${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
