// One layer read once for `eod index` (issue 14): its stored bytes are checked as layer-stream.ts checks them
// (size and digest of the descriptor), fed to the layer indexer of their compression (by magic: gzip, zstd or
// none), and the tar bytes the indexer decodes are handed on to the tar reader. At the end the indexer's
// seek index is kept with the layer's digest; the diff_id it computed must be the one the image names.
import { EodError } from "../../errors.ts";
import { layerIndexer, type LayerIndex, type LayerIndexer } from "../../image/layer-indexer.ts";
import { sha256Stream } from "../../util/sha256.ts";
import {
  check, checkExpansion, checkStored, DEFAULT_MAX_RATIO, openStored, sha256Of,
  type LayerInput, type LayerStreamStats,
} from "./layer-stream.ts";

export interface LayerIndexOptions {
  /** Plain bytes per span (the indexer's default when absent). */
  spanSize?: number;
  /** Largest accepted ratio of tar bytes to stored bytes (0 = no limit). */
  maxRatio?: number;
}

export interface IndexedLayerStats extends LayerStreamStats {
  /** "sha256:<hex>" of the stored bytes (what a registry names the layer by), once the stream ended. */
  digest: string;
  /** The seek index, once the stream ended. */
  index: LayerIndex | null;
}

export function newIndexedLayerStats(): IndexedLayerStats {
  return { compression: "none", storedBytes: 0, tarBytes: 0, digest: "", index: null };
}

/**
 * The layer's tar bytes as a stream; `stats.index` and `stats.digest` are set when it ends, after the checks
 * (DIGEST_MISMATCH), so a consumer must read it to the end (the tar reader drains what follows the archive).
 */
export async function* layerIndexStream(input: LayerInput, opts: LayerIndexOptions, stats: IndexedLayerStats): AsyncGenerator<Buffer> {
  const maxRatio = opts.maxRatio ?? DEFAULT_MAX_RATIO;
  // The index names the layer by its digest whether or not the caller knew it: hash always (an uncompressed
  // layer's digest is its tar's, which the indexer computes anyway).
  const storedHash = input.digest ? sha256Of(input.digest, input.name) : sha256Stream();
  if (input.diffId) sha256Of(input.diffId, input.name); // refuses a digest of another algorithm before any work
  const stored = await openStored(input, stats, null);
  let index: LayerIndex;
  try {
    const indexer = named(layerIndexer(stats.compression, opts.spanSize !== undefined ? { spanSize: opts.spanSize } : {}), input.name);
    const hashStored = stats.compression !== "none";
    for await (const piece of stored.pieces) {
      if (hashStored) storedHash.update(piece);
      for (const out of indexer.push(piece)) {
        stats.tarBytes += out.length;
        checkExpansion(input.name, maxRatio, stats);
        yield Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.byteLength);
      }
    }
    index = indexer.finish();
  } finally {
    await stored.close();
  }
  const hex = stats.compression === "none" ? index.diffId.slice("sha256:".length) : storedHash.digest("hex");
  checkStored(input, stats.storedBytes, hex);
  check(index.diffId.slice("sha256:".length), input.diffId, `${input.name}: uncompressed tar (diff_id)`);
  if (index.tarSize !== stats.tarBytes || index.remoteSize !== stats.storedBytes) {
    throw new Error(`internal: ${input.name}: the index says ${index.tarSize} tar bytes from ${index.remoteSize}, the stream had ${stats.tarBytes} from ${stats.storedBytes}`);
  }
  stats.digest = `sha256:${hex}`;
  stats.index = index;
}

/** The indexer's refusals (a corrupt stream, a zstd layer of one frame) prefixed with the layer's name. */
function named(indexer: LayerIndexer, name: string): LayerIndexer {
  const call = <T>(f: () => T): T => {
    try {
      return f();
    } catch (err) {
      throw err instanceof EodError ? new EodError(err.code, `${name}: ${err.message}`, { cause: err }) : err;
    }
  };
  return { push: (compressed) => call(() => indexer.push(compressed)), finish: () => call(() => indexer.finish()) };
}
