// What every layer indexer shares: the digests it produces while the tar bytes pass (the sha256 of each span,
// cut at the plain offsets the indexer decides, each known before the bytes past it arrive, and the diff_id of
// the whole tar), the version 2 table it ends with, and the interface (re-exported by layer-indexer.ts).
import type { Hash } from "node:crypto";
import { EodError } from "../errors.ts";
import { sha256Stream } from "../util/sha256.ts";
import type { ChunkEntry, ChunkTable } from "./chunk-table.ts";

/** The seek index of one layer (layer-indexer.ts makes them). */
export interface LayerIndex {
  /** Version 2: one entry per span of the tar; remote offsets are bytes of the original (compressed) layer. */
  table: ChunkTable;
  /** sha256:<hex> of the tar (the layer's diff_id). */
  diffId: string;
  tarSize: number;
  /** Bytes of the original layer. */
  remoteSize: number;
}

export interface LayerIndexer {
  /** Feeds compressed bytes of the layer, in order; returns the uncompressed (tar) bytes they produced, in order. */
  push(compressed: Uint8Array): Uint8Array[];
  /** After the last push: the seek index. Throws EodError on a truncated/corrupt stream. */
  finish(): LayerIndex;
}

/** The kernel form of a layer is its tar in 512-byte blocks (the bootstrap's block size). */
export const LAYER_BLK_SZ_BITS = 9;

export class SpanDigests {
  /** Tar bytes seen so far. */
  size = 0;
  readonly digests: Uint8Array[] = [];
  #tar = sha256Stream();
  #span: Hash = sha256Stream();
  /** Plain offsets where the next spans start, ascending, each ≥ size when added. */
  #cuts: number[] = [];

  /** Ends the current span at plain offset `at` (≥ the bytes seen so far): the next span starts there. */
  cut(at: number): void {
    if (at < this.size || (this.#cuts.length && at <= this.#cuts[this.#cuts.length - 1])) throw new Error(`internal: span cut at ${at} after ${this.size} bytes`);
    this.#cuts.push(at);
  }

  push(bytes: Uint8Array): void {
    this.#tar.update(bytes);
    let from = 0;
    while (this.#cuts.length && this.#cuts[0] <= this.size + bytes.length - from) {
      const take = this.#cuts[0] - this.size;
      this.#span.update(bytes.subarray(from, from + take));
      from += take;
      this.size += take;
      this.#cuts.shift();
      this.#endSpan();
    }
    this.#span.update(bytes.subarray(from));
    this.size += bytes.length - from;
  }

  /**
   * The last span's digest (when it holds bytes) and the tar's diff_id. Cuts the tar never reached are
   * dropped: the spans are `digests.length`, the last one ending at `tarSize`.
   */
  finish(): { digests: Uint8Array[]; diffId: string; tarSize: number } {
    if (this.size > this.#spanStart) this.#endSpan();
    return { digests: this.digests, diffId: `sha256:${this.#tar.digest("hex")}`, tarSize: this.size };
  }

  #spanStart = 0;
  #endSpan(): void {
    this.digests.push(new Uint8Array(this.#span.digest()));
    this.#span = sha256Stream();
    this.#spanStart = this.size;
  }
}

/** The version 2 table of a layer: kernel form = the tar rounded up to 512 bytes. */
export function layerTable(compression: ChunkTable["compression"], tarSize: number, remoteSize: number, entries: ChunkEntry[], windows: Uint8Array[]): ChunkTable {
  for (const e of entries) {
    if (e.plainSize > 0xffffffff || e.remoteSize > 0xffffffff) {
      throw new EodError("SOURCE_UNSUPPORTED", `Cannot index the layer: span at tar byte ${e.plainOffset} needs ${e.plainSize} plain and ${e.remoteSize} remote bytes (at most 4 GiB each)`);
    }
  }
  const blkSz = 2 ** LAYER_BLK_SZ_BITS;
  return { version: 2, compression, blkSzBits: LAYER_BLK_SZ_BITS, kernelSize: Math.ceil(tarSize / blkSz) * blkSz, remoteSize, entries, windows };
}
