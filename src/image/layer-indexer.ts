// The seek index of one original layer (issue 14), built while its bytes pass once: every indexer takes the
// compressed bytes in order, hands back the tar bytes they produce, and at the end gives the chunk table
// (version 2) whose spans let a miss decode any 4096-aligned range of the tar from a small remote range.
// gzip-index.ts (deflate block checkpoints), zstd-frames.ts (whole frames) and `none` below (the tar itself);
// a span is decoded again by codec.ts's decompressSpan() (gzip-span.ts, zstd-span.ts), through verified-chunk.ts.
import { SPAN_ALIGN, type ChunkEntry } from "./chunk-table.ts";
import { GzipIndexer } from "./gzip-index.ts";
import { layerTable, SpanDigests, type LayerIndex, type LayerIndexer } from "./layer-spans.ts";
import { ZstdIndexer } from "./zstd-frames.ts";

export type { LayerIndex, LayerIndexer } from "./layer-spans.ts";

export type LayerKind = "gzip" | "zstd" | "none";
export const DEFAULT_SPAN_SIZE = 1024 * 1024;
/**
 * The unit a miss fetches and verifies within a span: a gzip span (one window) is cut into pieces of this size
 * (a miss decodes from the span's checkpoint only through the piece it needs), an uncompressed tar into spans of
 * it. Not larger than the span.
 */
export const DEFAULT_PIECE_SIZE = 256 * 1024;

/**
 * An indexer for a layer of `kind`: gzip checkpoints (windows) about every `spanSize` tar bytes, entries of
 * `pieceSize` (both multiples of 4096; defaults 1 MiB and 256 KiB; a zstd span is whole frames).
 */
export function layerIndexer(kind: LayerKind, opts?: { spanSize?: number; pieceSize?: number }): LayerIndexer {
  const spanSize = opts?.spanSize ?? DEFAULT_SPAN_SIZE;
  const pieceSize = Math.min(opts?.pieceSize ?? DEFAULT_PIECE_SIZE, spanSize);
  for (const [what, v] of [["span", spanSize], ["piece", pieceSize]] as const) {
    if (!Number.isInteger(v) || v < SPAN_ALIGN || v % SPAN_ALIGN || v > 2 ** 30) {
      throw new RangeError(`Cannot index a layer: ${what} size must be a multiple of ${SPAN_ALIGN} up to 1 GiB, got ${v}`);
    }
  }
  switch (kind) {
    case "gzip":
      return new GzipIndexer(spanSize, pieceSize);
    case "zstd":
      return new ZstdIndexer(spanSize);
    case "none":
      return new PlainIndexer(pieceSize);
  }
}

/** An uncompressed tar: spans of exactly `spanSize` bytes (the last shorter), remote = plain. */
class PlainIndexer implements LayerIndexer {
  #spanSize: number;
  #spans = new SpanDigests();

  constructor(spanSize: number) {
    this.#spanSize = spanSize;
  }

  push(compressed: Uint8Array): Uint8Array[] {
    const s = this.#spans;
    // Cut at every span boundary these bytes reach (the digests need each cut before the bytes past it).
    for (let at = (Math.floor(s.size / this.#spanSize) + 1) * this.#spanSize; at <= s.size + compressed.length; at += this.#spanSize) s.cut(at);
    s.push(compressed);
    return compressed.length ? [compressed] : [];
  }

  finish(): LayerIndex {
    const { digests, diffId, tarSize } = this.#spans.finish();
    const entries = digests.map((digest, i): ChunkEntry => {
      const plainOffset = i * this.#spanSize;
      const plainSize = Math.min(this.#spanSize, tarSize - plainOffset);
      return { plainOffset, plainSize, remoteOffset: plainOffset, remoteSize: plainSize, flags: 0, digest, skip: 0, bits: 0 };
    });
    return { table: layerTable("none", tarSize, tarSize, entries, entries.map(() => new Uint8Array(0))), diffId, tarSize, remoteSize: tarSize };
  }
}
