// The seek index of a zstd layer: a zstd frame (RFC 8878) decodes on its own, so spans are whole frames.
// Checkpoints are frame starts, the first at or after each span's worth of output past the last span
// start; span i starts at S_i = its frame's output position rounded up to 4096 (skip = the difference) and
// its remote range runs from that frame's first byte through the end of the frame holding byte
// S_{i+1} - 1 (the last span: to the layer's end). Frames are found by their headers (block headers give
// their length), decoded one at a time with node:zlib; skippable frames are passed over. A layer of one
// frame has no place to start but its beginning: past one span, it needs conversion.
import zlib from "node:zlib";
import { EodError } from "../errors.ts";
import { SPAN_ALIGN, type ChunkEntry } from "./chunk-table.ts";
import { layerTable, SpanDigests, type LayerIndex, type LayerIndexer } from "./layer-spans.ts";

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MAGIC = 0x184d2a50; // the low 4 bits are free
const BLOCK_MAX = 128 * 1024;
/** A frame is decoded from memory in one piece: larger ones are refused rather than held. */
const FRAME_MAX_REMOTE = 256 * 1024 * 1024;
const FRAME_MAX_OUTPUT = 1024 * 1024 * 1024;

interface Frame {
  inStart: number;
  inEnd: number;
  outStart: number;
  outEnd: number;
}

/** How far a frame has been read (scanFrame()). */
export interface FrameScan {
  /** Offset of the next block header (or of the checksum, once `last`) from the frame's start. */
  pos: number;
  skippable: boolean;
  /** The frame's content size when its header says it, else -1. */
  contentSize: number;
  checksum: boolean;
  /** The most output its blocks can make. */
  bound: number;
  last: boolean;
  /** The frame's length once all of it has been seen, else -1. */
  end: number;
}

/**
 * Reads the frame at the start of `b` as far as `b` goes, resuming `s` (from an earlier, shorter `b`):
 * its header, then block headers, which give the blocks' lengths. Null while the header is incomplete.
 * `at` is the frame's offset in the layer, for messages.
 * @throws EodError SOURCE_INVALID on a malformed frame, SOURCE_UNSUPPORTED on one that needs a dictionary
 */
export function scanFrame(b: Uint8Array, s: FrameScan | null, at: number): FrameScan | null {
  const bad = (why: string) => new EodError("SOURCE_INVALID", `Cannot read the zstd frame at byte ${at}: ${why}`);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (!s) {
    if (b.length < 8) return null;
    const magic = v.getUint32(0, true);
    if ((magic & 0xfffffff0) === SKIPPABLE_MAGIC) s = { pos: 8 + v.getUint32(4, true), skippable: true, contentSize: 0, checksum: false, bound: 0, last: true, end: -1 };
    else if (magic === ZSTD_MAGIC) s = frameHeader(v, at, bad);
    else throw bad(`not a zstd frame (magic 0x${magic.toString(16)})`);
    if (!s) return null;
  }
  while (!s.last) {
    if (s.pos + 3 > b.length) return s;
    const h = b[s.pos] | (b[s.pos + 1] << 8) | (b[s.pos + 2] << 16);
    const type = (h >> 1) & 3;
    const size = h >>> 3;
    if (type === 3) throw bad(`reserved block type at byte ${at + s.pos}`);
    if (size > BLOCK_MAX) throw bad(`block of ${size} bytes (at most ${BLOCK_MAX})`);
    s.bound += type === 2 ? BLOCK_MAX : size;
    s.pos += 3 + (type === 1 ? 1 : size);
    s.last = (h & 1) === 1;
  }
  const end = s.pos + (s.checksum ? 4 : 0);
  if (end <= b.length) s.end = end;
  return s;
}

/** The most output of a scanned frame: its content size, when given, or what its blocks can make. */
export function frameBound(s: FrameScan): number {
  return s.contentSize >= 0 ? Math.min(s.contentSize, s.bound) : s.bound;
}

/** RFC 8878 3.1.1.1: Frame_Header_Descriptor, Window_Descriptor, Dictionary_ID, Frame_Content_Size. */
function frameHeader(v: DataView, at: number, bad: (why: string) => EodError): FrameScan | null {
  const fhd = v.getUint8(4);
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  if (fhd & 8) throw bad("reserved bit of the frame header descriptor set");
  const dictBytes = [0, 1, 2, 4][fhd & 3];
  const fcsBytes = [single, 2, 4, 8][fcsFlag];
  const pos = 5 + (single ? 0 : 1) + dictBytes + fcsBytes;
  if (v.byteLength < pos) return null;
  let p = 5 + (single ? 0 : 1);
  const dictId = dictBytes === 1 ? v.getUint8(p) : dictBytes === 2 ? v.getUint16(p, true) : dictBytes === 4 ? v.getUint32(p, true) : 0;
  if (dictId) throw new EodError("SOURCE_UNSUPPORTED", `Cannot read the zstd frame at byte ${at}: it needs dictionary ${dictId}`);
  p += dictBytes;
  let contentSize = -1;
  if (fcsBytes === 1) contentSize = v.getUint8(p);
  else if (fcsBytes === 2) contentSize = v.getUint16(p, true) + 256;
  else if (fcsBytes === 4) contentSize = v.getUint32(p, true);
  else if (fcsBytes === 8) contentSize = Number(v.getBigUint64(p, true));
  return { pos, skippable: false, contentSize, checksum: ((fhd >> 2) & 1) === 1, bound: 0, last: false, end: -1 };
}

export class ZstdIndexer implements LayerIndexer {
  readonly #spanSize: number;
  readonly #spans = new SpanDigests();
  #buf = new Uint8Array(1024 * 1024);
  #len = 0;
  /** Layer offset of buf[0]. */
  #base = 0;
  #scan: FrameScan | null = null;
  readonly #frames: Frame[] = [];
  /** Span starts: the frame (index in #frames) and S_i. */
  readonly #cps: { frame: number; start: number }[] = [];
  #out = 0;

  constructor(spanSize: number) {
    this.#spanSize = spanSize;
  }

  push(compressed: Uint8Array): Uint8Array[] {
    this.#append(compressed);
    const outs: Uint8Array[] = [];
    for (;;) {
      const end = this.#frameEnd();
      if (end < 0) break;
      const out = this.#frame(end);
      if (out.length) outs.push(out);
      this.#buf.copyWithin(0, end, this.#len);
      this.#len -= end;
      this.#base += end;
      this.#scan = null;
    }
    return outs;
  }

  finish(): LayerIndex {
    if (this.#len) throw new EodError("SOURCE_INVALID", `Cannot index the zstd layer: it ends inside a frame (${this.#len} bytes from byte ${this.#base} on)`);
    const { digests, diffId, tarSize } = this.#spans.finish();
    const remoteSize = this.#base;
    if (this.#frames.length === 1 && tarSize > this.#spanSize) {
      throw new EodError("SOURCE_UNSUPPORTED", `Cannot index the zstd layer of ${tarSize} bytes: it needs conversion (one zstd frame: no place to start decoding but the beginning)`);
    }
    const cps = this.#cps.slice(0, digests.length); // checkpoints past the tar's end start no span
    const entries = cps.map((cp, i): ChunkEntry => {
      const remoteOffset = this.#frames[cp.frame].inStart;
      const plainEnd = i + 1 < cps.length ? cps[i + 1].start : tarSize;
      const remoteEnd = i + 1 < cps.length ? this.#frameHolding(plainEnd - 1).inEnd : remoteSize;
      const skip = cp.start - this.#frames[cp.frame].outStart;
      return { plainOffset: cp.start, plainSize: plainEnd - cp.start, remoteOffset, remoteSize: remoteEnd - remoteOffset, flags: 0, digest: digests[i], skip, bits: 0 };
    });
    return { table: layerTable("zstd", tarSize, remoteSize, entries, entries.map(() => new Uint8Array(0))), diffId, tarSize, remoteSize };
  }

  #append(bytes: Uint8Array): void {
    if (this.#len + bytes.length > this.#buf.length) {
      const bigger = new Uint8Array(Math.max(this.#len + bytes.length, this.#buf.length * 2));
      bigger.set(this.#buf.subarray(0, this.#len));
      this.#buf = bigger;
    }
    this.#buf.set(bytes, this.#len);
    this.#len += bytes.length;
  }

  /** The length of the frame at the start of the buffer once all of it is there, else -1. */
  #frameEnd(): number {
    this.#scan = scanFrame(this.#buf.subarray(0, this.#len), this.#scan, this.#base);
    const s = this.#scan;
    if (s && s.end >= 0) return s.end;
    // Wait for more, unless the frame grows past what is decoded in one piece.
    if (s && s.pos > FRAME_MAX_REMOTE) throw new EodError("SOURCE_UNSUPPORTED", `Cannot index the zstd layer: frame at byte ${this.#base} is larger than ${FRAME_MAX_REMOTE} bytes; it needs conversion`);
    return -1;
  }

  /** Decodes the whole frame buf[0, end), records it and its checkpoint, hashes its output. */
  #frame(end: number): Uint8Array {
    const s = this.#scan as FrameScan;
    if (s.skippable) return new Uint8Array(0);
    const most = frameBound(s);
    if (most > FRAME_MAX_OUTPUT) throw new EodError("SOURCE_UNSUPPORTED", `Cannot index the zstd layer: frame at byte ${this.#base} may decode to ${most} bytes (at most ${FRAME_MAX_OUTPUT}); it needs conversion`);
    let out: Buffer;
    try {
      out = zlib.zstdDecompressSync(this.#buf.subarray(0, end), { maxOutputLength: Math.max(1, most), chunkSize: Math.max(64, Math.min(most, 8 * 1024 * 1024)) });
    } catch (err) {
      throw new EodError("SOURCE_INVALID", `Cannot index the zstd layer: frame at byte ${this.#base}: ${(err as Error).message}`, { cause: err });
    }
    const f: Frame = { inStart: this.#base, inEnd: this.#base + end, outStart: this.#out, outEnd: this.#out + out.length };
    this.#frames.push(f);
    const last = this.#cps[this.#cps.length - 1];
    if (!last || f.outStart >= last.start + this.#spanSize) {
      const start = Math.ceil(f.outStart / SPAN_ALIGN) * SPAN_ALIGN;
      if (last) this.#spans.cut(start);
      this.#cps.push({ frame: this.#frames.length - 1, start });
    }
    this.#spans.push(out);
    this.#out += out.length;
    return out;
  }

  /** The frame whose output holds byte `pos` (frames in output order: a binary search). */
  #frameHolding(pos: number): Frame {
    let lo = 0;
    let hi = this.#frames.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#frames[mid].outEnd <= pos) lo = mid + 1;
      else hi = mid;
    }
    return this.#frames[lo];
  }
}
