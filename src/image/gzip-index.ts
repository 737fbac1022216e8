// The seek index of a gzip layer. Checkpoints are deflate block starts found by our inflater (inflate.ts):
// the first one at or after each span's worth of output past the last span start. Span i starts at
// S_i = the checkpoint's output position rounded up to 4096 and ends at S_{i+1}. It is cut into pieces of
// `pieceSize` (the last one up to S_{i+1}), each an entry of the table with its own digest: a piece's remote
// range runs from its checkpoint's byte (bits = the checkpoint's bit in it) through the byte holding the last
// bit of the symbol that produces the piece's last byte (for the layer's last piece: the layer's end), and
// skip = the decoded bytes from the checkpoint to the piece. So a miss fetches and decodes from the checkpoint
// only as far as the piece it needs, while windows (the index's bulk) are paid once per span.
// The window of a checkpoint is the output before it that the next 32 KiB of matches reach (at most
// 32 KiB), raw-deflate compressed at level 9; a member's first block needs none.
import zlib from "node:zlib";
import { SPAN_ALIGN, type ChunkEntry } from "./chunk-table.ts";
import { Inflater, type BlockStart } from "./inflate.ts";
import { layerTable, SpanDigests, type LayerIndex, type LayerIndexer } from "./layer-spans.ts";

const WSIZE = 32768;

interface Checkpoint {
  bit: number;
  out: number;
  /** The span's plain offset: `out` rounded up to SPAN_ALIGN. */
  start: number;
  /** The history before `out` (until `window` is final), or null for a member's first block. */
  history: Uint8Array | null;
  reach: { readonly reach: number } | null;
  /** The compressed window, once the matches after `out` can no longer reach further back. */
  window: Uint8Array | null;
}

/** An entry of the table: a piece of a checkpoint's span. */
interface Piece {
  cp: Checkpoint;
  start: number;
  /** The input bit after the symbol producing the piece's last byte (-1: not yet known). */
  endBit: number;
}

export class GzipIndexer implements LayerIndexer {
  readonly #spanSize: number;
  readonly #pieceSize: number;
  readonly #inf: Inflater;
  readonly #spans = new SpanDigests();
  readonly #pieces: Piece[] = [];
  /** The pieces whose end bits the inflater watches for, in the order it was asked. */
  readonly #watching: Piece[] = [];
  /** Checkpoints whose window is not final yet, oldest first. */
  #open: Checkpoint[] = [];
  #remoteSize = 0;

  constructor(spanSize: number, pieceSize: number) {
    this.#spanSize = spanSize;
    this.#pieceSize = pieceSize;
    this.#inf = new Inflater({ format: "gzip", onBlock: (b) => this.#onBlock(b) });
  }

  push(compressed: Uint8Array): Uint8Array[] {
    this.#remoteSize += compressed.length;
    return this.#settle(this.#inf.push(compressed));
  }

  finish(): LayerIndex {
    // Every push decodes all its input completes, so the end adds checks, never bytes (the caller has them all).
    if (this.#settle(this.#inf.finish()).length) throw new Error("internal: the inflater made bytes at the end of the gzip layer");
    const { digests, diffId, tarSize } = this.#spans.finish();
    for (const cp of this.#open) this.#closeWindow(cp);
    const pieces = this.#pieces.slice(0, digests.length); // pieces past the tar's end hold no bytes
    const unended = pieces.findIndex((p, i) => i + 1 < pieces.length && p.endBit < 0);
    if (unended >= 0) throw new Error(`internal: piece ${unended} of the gzip index has no end`);
    const entries = pieces.map((p, i): ChunkEntry => {
      const plainEnd = i + 1 < pieces.length ? pieces[i + 1].start : tarSize;
      const remoteOffset = Math.floor(p.cp.bit / 8);
      const remoteSize = (i + 1 < pieces.length ? Math.ceil(p.endBit / 8) : this.#remoteSize) - remoteOffset;
      return { plainOffset: p.start, plainSize: plainEnd - p.start, remoteOffset, remoteSize, flags: 0, digest: digests[i], skip: p.start - p.cp.out, bits: p.cp.bit % 8 };
    });
    const windows = pieces.map((p) => p.cp.window ?? new Uint8Array(0)); // a span's pieces share its window
    return { table: layerTable("gzip", tarSize, this.#remoteSize, entries, windows), diffId, tarSize, remoteSize: this.#remoteSize };
  }

  #onBlock(b: BlockStart): void {
    this.#takeWatched();
    const last = this.#pieces[this.#pieces.length - 1];
    if (last && b.out < last.cp.start + this.#spanSize) return;
    const start = Math.ceil(b.out / SPAN_ALIGN) * SPAN_ALIGN;
    const first = b.memberStart || b.history === 0;
    const cp: Checkpoint = {
      bit: b.bit, out: b.out, start, window: first ? new Uint8Array(0) : null,
      history: first ? null : this.#inf.window(b.history), reach: first ? null : this.#inf.trackReach(b.out),
    };
    if (!first) this.#open.push(cp);
    if (last) {
      // The piece before ends at `start`: right here when the block starts on a 4096 boundary (its end-of-block
      // code comes along), else once the inflater produces byte start - 1 of this block.
      if (start === b.out) last.endBit = b.bit;
      else this.#watchEnd(last, start);
      this.#spans.cut(start);
    }
    this.#pieces.push({ cp, start, endBit: -1 });
    for (let at = start + this.#pieceSize; at < start + this.#spanSize; at += this.#pieceSize) {
      this.#watchEnd(this.#pieces[this.#pieces.length - 1], at);
      this.#spans.cut(at);
      this.#pieces.push({ cp, start: at, endBit: -1 });
    }
  }

  /** Has the inflater find where piece `p` (ending at output position `end`) ends in the input. */
  #watchEnd(p: Piece, end: number): void {
    this.#inf.watch(end);
    this.#watching.push(p);
  }

  #takeWatched(): void {
    for (const bit of this.#inf.takeWatched()) (this.#watching.shift() as Piece).endBit = bit;
  }

  /** Hashes the tar bytes, records a resolved watch, and compresses the windows no match can reach past any more. */
  #settle(out: Uint8Array[]): Uint8Array[] {
    for (const o of out) this.#spans.push(o);
    this.#takeWatched();
    const pos = this.#inf.outPos;
    while (this.#open.length && this.#open[0].out + WSIZE <= pos) this.#closeWindow(this.#open.shift() as Checkpoint);
    return out;
  }

  #closeWindow(cp: Checkpoint): void {
    const h = cp.history as Uint8Array;
    const reach = (cp.reach as { reach: number }).reach;
    cp.window = reach ? Uint8Array.from(zlib.deflateRawSync(h.subarray(h.length - reach), { level: 9 })) : new Uint8Array(0);
    cp.history = null;
    cp.reach = null;
  }
}
