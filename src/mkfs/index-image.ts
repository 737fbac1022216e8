// The index image of an ordinary image (issue 14): an eod image directory whose blobs are the layers' tars as
// they are. Each layer is read once: layer-index-stream.ts checks its digests and makes its seek index (a
// version 2 chunk table) while the tar reader's entries build the 512-byte-block bootstrap (tar-bootstrap.ts).
// No blob file is written: blob k's id is its tar's diff_id (hex), its kernel form the tar (rounded up to a
// block), and its remote form the original layer (the manifest's remote digest and size are the layer's), so a
// registry serves it as it is. Layers with the same tar share one blob. A prefetch list goes into manifest.json
// as for a build (the daemon maps it to the seek index's pieces at mount); the data stays in the layers' order.
import fs from "node:fs";
import path from "node:path";
import { S_IFMT, S_IFREG } from "../erofs/constants.ts";
import { encodeChunkTable } from "../image/chunk-table.ts";
import type { BlobRef, Manifest } from "../image/manifest.ts";
import type { PrefetchEntry } from "../image/prefetch.ts";
import { sha256Digest } from "../util/sha256.ts";
import { writeImageHead } from "./image.ts";
import { layerIndexStream, newIndexedLayerStats, type IndexedLayerStats, type LayerIndexOptions } from "./layers/layer-index-stream.ts";
import type { LayerInput } from "./layers/layer-stream.ts";
import { chunkBitsFor, TAR_BLK_SZ_BITS, TarBootstrap } from "./layers/tar-bootstrap.ts";
import { readTar } from "./layers/tar-reader.ts";
import { commitDir } from "./output.ts";
import { prefetchFiles } from "./prefetch-order.ts";

export interface IndexImageOptions extends LayerIndexOptions {
  /** Largest PAX / GNU long-name header (default 1 MiB). */
  maxMetaSize?: number;
  /** Files a mount fetches first (manifest `prefetch`); the data stays where it is in the layers. */
  prefetch?: PrefetchEntry[];
}

export interface IndexLayerSummary {
  name: string;
  compression: IndexedLayerStats["compression"];
  storedBytes: number;
  tarBytes: number;
  entries: number;
  /** The layer's digest (its remote form) and its blob id (the diff_id's hex). */
  digest: string;
  blobId: string;
  spans: number;
  /** Bytes of its seek index (blobs/<id>.ctab). */
  indexBytes: number;
}

export interface IndexImageSummary {
  imageDir: string;
  manifest: Manifest;
  inodes: number;
  files: number;
  warnings: string[];
  layers: IndexLayerSummary[];
}

const SPARSE_HINT = "an index points into the tar, where a sparse entry's body is not the file's bytes: the image needs conversion from an extracted tree";

/**
 * Reads `layers` (lowest first) once and writes the index image directory `outDir`.
 * @example
 * await buildIndexImage([layerFromFile("base.tar.gz"), layerFromFile("app.tar")], "index-img");
 */
export function buildIndexImage(layers: LayerInput[], outDir: string, opts: IndexImageOptions = {}): Promise<IndexImageSummary> {
  return commitDir(outDir, async (tmp) => {
    fs.mkdirSync(path.join(tmp, "blobs"));
    const boot = new TarBootstrap();
    const blobs: BlobRef[] = [];
    const deviceOf: number[] = []; // per layer: its blob's device (1-based)
    const summaries: IndexLayerSummary[] = [];
    let largestSpan = 0;
    for (const [k, layer] of layers.entries()) {
      boot.beginLayer(k);
      const stats = newIndexedLayerStats();
      let entries = 0;
      const tar = readTar(layerIndexStream(layer, opts, stats), { where: layer.name, maxMetaSize: opts.maxMetaSize, sparseHint: SPARSE_HINT });
      for await (const { entry } of tar) {
        entries++;
        boot.add(entry, `${layer.name}: entry ${JSON.stringify(entry.path.toString())}`);
      }
      const index = stats.index!;
      const id = index.diffId.slice("sha256:".length);
      const tableBytes = encodeChunkTable(index.table);
      let device = blobs.findIndex((b) => b.id === id) + 1;
      if (!device) {
        fs.writeFileSync(path.join(tmp, "blobs", `${id}.ctab`), tableBytes);
        blobs.push({
          id, kernelSize: index.table.kernelSize, chunks: index.table.entries.length,
          table: { path: `blobs/${id}.ctab`, digest: sha256Digest(tableBytes), size: tableBytes.length },
          remote: { path: `blobs/${id}`, digest: stats.digest, size: stats.storedBytes },
        });
        device = blobs.length;
      }
      deviceOf.push(device);
      for (const e of index.table.entries) largestSpan = Math.max(largestSpan, e.plainSize);
      summaries.push({
        name: layer.name, compression: stats.compression, storedBytes: stats.storedBytes, tarBytes: stats.tarBytes, entries,
        digest: stats.digest, blobId: id, spans: index.table.entries.length, indexBytes: tableBytes.length,
      });
    }
    const plan = boot.finish(blobs.length, (k) => deviceOf[k]);
    const { skipped } = prefetchFiles(plan.scan.root, opts.prefetch ?? []);
    for (const p of skipped) boot.warnings.push(`prefetch entry ${p} is not a file or directory of the image: skipped`);
    const prefetch = opts.prefetch?.filter((e) => !skipped.includes(e.path));
    // The manifest's compression and chunk size describe eod-built blobs; here each seek index names its
    // layer's codec, and every file is one chunk of its own size: "none", and a power of two no file chunk
    // and no span exceeds.
    const chunkSize = Math.max(plan.chunkSize, 2 ** chunkBitsFor(largestSpan));
    const manifest = writeImageHead(tmp, { ...plan, chunkSize, blkSzBits: TAR_BLK_SZ_BITS, blobs, compression: "none", prefetch });
    const files = plan.scan.inodes.filter((i) => (i.mode & S_IFMT) === S_IFREG).length;
    return { imageDir: outDir, manifest, inodes: plan.layout.placed.length, files, warnings: boot.warnings, layers: summaries };
  });
}
