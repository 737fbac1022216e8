// The seek index of a gzip layer. Checkpoints are deflate block starts found by our inflater (inflate.ts):
// the first one at or after each span's worth of output past the last span start. Span i starts at
// S_i = the checkpoint's output position rounded up to 4096 (skip = the difference) and ends at S_{i+1};
// its remote range runs from the checkpoint's byte (bits = the checkpoint's bit in it) through the byte
// holding the last bit of the symbol that produces byte S_{i+1} - 1 (for the last span: the layer's end).
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
  /** The input bit after the symbol producing the byte before the next span's start (-1: not yet known). */
  endBit: number;
}

export class GzipIndexer implements LayerIndexer {
  readonly #spanSize: number;
  readonly #inf: Inflater;
  readonly #spans = new SpanDigests();
  readonly #cps: Checkpoint[] = [];
  /** The checkpoint whose end bit the inflater is watching for, or null. */
  #watching: Checkpoint | null = null;
  /** Checkpoints whose window is not final yet, oldest first. */
  #open: Checkpoint[] = [];
  #remoteSize = 0;

  constructor(spanSize: number) {
    this.#spanSize = spanSize;
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
    const cps = this.#cps.slice(0, digests.length); // checkpoints past the tar's end start no span
    const unended = cps.findIndex((cp, i) => i + 1 < cps.length && cp.endBit < 0);
    if (unended >= 0) throw new Error(`internal: span ${unended} of the gzip index has no end`);
    const entries = cps.map((cp, i): ChunkEntry => {
      const plainEnd = i + 1 < cps.length ? cps[i + 1].start : tarSize;
      const remoteOffset = Math.floor(cp.bit / 8);
      const bits = cp.bit % 8;
      const remoteSize = (i + 1 < cps.length ? Math.ceil(cp.endBit / 8) : this.#remoteSize) - remoteOffset;
      return { plainOffset: cp.start, plainSize: plainEnd - cp.start, remoteOffset, remoteSize, flags: 0, digest: digests[i], skip: cp.start - cp.out, bits };
    });
    const windows = cps.map((cp) => cp.window ?? new Uint8Array(0));
    return { table: layerTable("gzip", tarSize, this.#remoteSize, entries, windows), diffId, tarSize, remoteSize: this.#remoteSize };
  }

  #onBlock(b: BlockStart): void {
    this.#takeWatch();
    const last = this.#cps[this.#cps.length - 1];
    if (last && b.out < last.start + this.#spanSize) return;
    const start = Math.ceil(b.out / SPAN_ALIGN) * SPAN_ALIGN;
    const first = b.memberStart || b.history === 0;
    const cp: Checkpoint = {
      bit: b.bit, out: b.out, start, endBit: -1, window: first ? new Uint8Array(0) : null,
      history: first ? null : this.#inf.window(b.history), reach: first ? null : this.#inf.trackReach(b.out),
    };
    if (!first) this.#open.push(cp);
    if (last) {
      // The span before ends at `start`: right here when the block starts on a 4096 boundary (its end-of-block
      // code comes along), else once the inflater produces byte start - 1 of this block.
      if (start === b.out) last.endBit = b.bit;
      else {
        this.#inf.watch(start);
        this.#watching = last;
      }
      this.#spans.cut(start);
    }
    this.#cps.push(cp);
  }

  #takeWatch(): void {
    if (this.#watching && this.#inf.watched() >= 0) {
      this.#watching.endBit = this.#inf.watched();
      this.#watching = null;
    }
  }

  /** Hashes the tar bytes, records a resolved watch, and compresses the windows no match can reach past any more. */
  #settle(out: Uint8Array[]): Uint8Array[] {
    for (const o of out) this.#spans.push(o);
    this.#takeWatch();
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
