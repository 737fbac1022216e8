// `eod build` from layers: each layer's tar is read once, in order, as a stream. File bodies are chunked as
// they pass and written into that layer's blob at once (chunks a lower layer already stored are referenced
// there); the merged tree keeps only metadata, chunk addresses and small inline files. When every layer is
// read, the merged tree is laid out and written exactly like a scanned directory (image.ts).
import fs from "node:fs";
import path from "node:path";
import type { ChunkAddr } from "../../erofs/chunk.ts";
import { S_IFMT, S_IFREG } from "../../erofs/constants.ts";
import { BlobWriter } from "../blob-writer.ts";
import { chunkWorkersFor, inFlightFor, type ChunkWorkers } from "../chunk-workers.ts";
import {
  BLK_SZ_BITS, DEFAULT_CHUNK_SIZE, DEFAULT_INLINE_MAX, writeImageFiles, type FinishedBlob, type ImageOptions, type ImageSummary,
} from "../image.ts";
import { writeHotBlob } from "../hot-blob.ts";
import { canInline, chooseEpoch, planLayout, type FileShape } from "../layout.ts";
import { commitDir } from "../output.ts";
import { prefetchChunks, prefetchFiles } from "../prefetch-order.ts";
import type { ScanResult, TreeInode } from "../tree.ts";
import type { BufferPool } from "../../util/buffer-pool.ts";
import { layerTarStream, type LayerInput, type LayerStreamStats } from "./layer-stream.ts";
import { MergedTree } from "./merge.ts";
import { Chunker, type ChunkIndex } from "../chunker.ts";
import { HotPaths } from "./hot-paths.ts";
import { readTar } from "./tar-reader.ts";

export interface LayersOptions extends ImageOptions {
  /** Largest accepted ratio of tar bytes to stored bytes per layer (0 = no limit; default 1000). */
  maxRatio?: number;
  /** Largest PAX / GNU long-name header (default 1 MiB). */
  maxMetaSize?: number;
  /**
   * Called when a layer's blob is complete, before the next layer is read: its remote form is final at
   * `remoteTmp` (renamed to blobs/<id> when the image is written; an fd opened now stays valid), so a
   * caller can push it while the next layers build.
   */
  onBlobDone?: (blob: FinishedBlob, layer: number) => void;
  /**
   * Called when a layer's blob file is created (at the layer's first new chunk). Its remote form is then
   * written in order, appended and never rewritten, so a caller may read it as it grows (to upload it);
   * `appended` registers a listener called after each append (see BlobWriter.onAppend).
   */
  onBlobOpen?: (remoteTmp: string, layer: number, appended: (listener: (length: number, bytes: Uint8Array | null) => void) => void) => void;
  /**
   * Chunk workers started earlier with chunkWorkersFor() for this chunk size (their start then overlaps
   * the caller's own work, e.g. registry round trips); the caller closes them. Default: started here.
   */
  chunkWorkers?: ChunkWorkers;
}

export interface LayerSummary extends LayerStreamStats {
  name: string;
  entries: number;
  /** The layer's blob, or null when it added no new chunk. */
  blobId: string | null;
}

export interface LayersSummary extends ImageSummary {
  layers: LayerSummary[];
}

const ARCHIVE_NAMES = /^(\.\/)?(manifest\.json|oci-layout|index\.json|repositories|[0-9a-f]{64}\/layer\.tar|blobs\/sha256\/[0-9a-f]{64})$/;

/** Names a `docker save` archive or an OCI layout holds at its top: a layer made of those is likely a mistake. */
function looksLikeImageArchive(p: Buffer): boolean {
  return ARCHIVE_NAMES.test(p.toString("latin1"));
}

/**
 * Builds a lazy image from layers, lowest first: one blob per layer that adds data, one merged tree.
 * @example
 * await buildFromLayers([layerFromFile("base.tar.gz", "layer 1"), layerFromFile("app.tar", "layer 2")], "img");
 */
export async function buildFromLayers(layers: LayerInput[], outDir: string, opts: LayersOptions = {}): Promise<LayersSummary> {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const chunkBits = Math.log2(chunkSize);
  const compression = opts.compression ?? "zstd";
  const inlineMax = opts.inlineMax ?? DEFAULT_INLINE_MAX;
  const blkSz = 2 ** BLK_SZ_BITS;
  const inFlight = inFlightFor(chunkSize);
  const stats = { files: 0, inlineFiles: 0, bytes: 0, chunks: 0, uniqueChunks: 0, holeChunks: 0, dedupSavedBytes: 0 };

  // Digests and compression run on worker threads.
  const workers = opts.chunkWorkers ?? chunkWorkersFor(chunkSize);
  const compress = compression !== "none" ? (plain: Uint8Array) => workers.compress(plain, compression, opts.level) : undefined;
  const digest = (buf: Uint8Array) => workers.digest(buf);
  try {
    return await buildLayers(layers, outDir, opts, { chunkSize, chunkBits, compression, inlineMax, blkSz, inFlight, stats, pool: workers.pool, digest, compress });
  } finally {
    if (!opts.chunkWorkers) await workers.close();
  }
}

interface BuildContext {
  chunkSize: number;
  chunkBits: number;
  compression: NonNullable<LayersOptions["compression"]>;
  inlineMax: number;
  blkSz: number;
  inFlight: number;
  stats: { files: number; inlineFiles: number; bytes: number; chunks: number; uniqueChunks: number; holeChunks: number; dedupSavedBytes: number };
  pool: BufferPool;
  digest: (buf: Uint8Array) => Promise<Uint8Array>;
  compress: ((plain: Uint8Array) => Promise<Uint8Array>) | undefined;
}

function buildLayers(layers: LayerInput[], outDir: string, opts: LayersOptions, ctx: BuildContext): Promise<LayersSummary> {
  const { chunkSize, chunkBits, compression, inlineMax, blkSz, inFlight, stats } = ctx;
  return commitDir(outDir, async (tmp) => {
    fs.mkdirSync(path.join(tmp, "blobs"));
    const tree = new MergedTree();
    const index: ChunkIndex = new Map();
    const blobs: FinishedBlob[] = [];
    const blobLayers: number[] = []; // the layer of each blob
    const shapes = new Map<TreeInode, FileShape>();
    const addrs = new Map<TreeInode, Array<ChunkAddr | null>>();
    const inline = new Map<TreeInode, Buffer>();
    const summaries: LayerSummary[] = [];
    let tarTotal = 0;
    // Listed files' data goes to a blob of its own (device 1), spooled in stream order and put in the
    // prefetch's order at the end (hot-blob.ts); a listed file gets its own copy of a chunk a lower layer has.
    const hotPaths = opts.prefetch?.length ? new HotPaths(opts.prefetch) : null;
    const spoolTmp = path.join(tmp, "blobs", ".hot-spool.tmp");
    const hotChunker = hotPaths && new Chunker({
      chunkSize, window: inFlight, index: new Map(), pool: ctx.pool, digest: ctx.digest,
      openBlob: () => ({ writer: new BlobWriter(spoolTmp, { compression, level: opts.level, blkSzBits: BLK_SZ_BITS, maxInFlight: inFlight, compress: ctx.compress }), deviceId: SPOOL_DEVICE }),
    });

    for (const [k, layer] of layers.entries()) {
      tree.beginLayer(k);
      let archiveHints = 0;
      const ls: LayerSummary = { name: layer.name, compression: "none", storedBytes: 0, tarBytes: 0, entries: 0, blobId: null };
      const remoteTmp = path.join(tmp, "blobs", `.layer-${k}.tmp`);
      const chunker = new Chunker({
        chunkSize, window: inFlight, index, pool: ctx.pool, digest: ctx.digest,
        openBlob: () => {
          // Device numbers count layer blobs from 1 here; a hot blob shifts them by one at the end.
          const writer = new BlobWriter(remoteTmp, { compression, level: opts.level, blkSzBits: BLK_SZ_BITS, maxInFlight: inFlight, compress: ctx.compress });
          opts.onBlobOpen?.(remoteTmp, k, (listener) => { writer.onAppend = listener; });
          return { writer, deviceId: blobs.length + 1 };
        },
      });
      try {
        const tar = readTar(layerTarStream(layer, { maxRatio: opts.maxRatio }, ls), { where: layer.name, maxMetaSize: opts.maxMetaSize });
        for await (const { entry, body } of tar) {
          ls.entries++;
          if (ls.entries <= 64 && looksLikeImageArchive(entry.path)) archiveHints++;
          const where = `${layer.name}: entry ${JSON.stringify(entry.path.toString())}`;
          const { comps, inode } = tree.apply(entry, where);
          if (!inode) continue;
          if (entry.type === "symlink") hotPaths?.symlink(comps, entry.linkpath);
          if (entry.type !== "file" || entry.size === 0) continue;
          stats.files++;
          stats.bytes += entry.size;
          // Extended inode size is the worst case, so the layout will find room for the data whatever the epoch.
          if (entry.size <= inlineMax && canInline(inode, entry.size, blkSz)) {
            const parts: Buffer[] = [];
            for await (const p of body) parts.push(Buffer.from(p));
            inline.set(inode, Buffer.concat(parts));
            shapes.set(inode, { kind: "inline" });
            stats.inlineFiles++;
          } else {
            shapes.set(inode, { kind: "chunks", chunkBits, indexes: true, count: Math.ceil(entry.size / chunkSize) });
            const to = hotPaths?.has(comps) ? hotChunker! : chunker;
            addrs.set(inode, await to.addStream(body, entry.size, where));
          }
          opts.progress?.("data", tarTotal + ls.tarBytes, 0);
        }
        await chunker.finish();
        const writer = chunker.blob;
        if (writer) {
          const done = { ...(await writer.finish()), remoteTmp };
          blobs.push(done);
          blobLayers.push(k);
          opts.onBlobDone?.(done, k);
        }
      } catch (err) {
        chunker.abort();
        hotChunker?.abort();
        throw err;
      }
      for (const key of ["chunks", "uniqueChunks", "holeChunks", "dedupSavedBytes"] as const) stats[key] += chunker.stats[key];
      tarTotal += ls.tarBytes;
      if (archiveHints >= 2) {
        tree.warnings.push(`${layer.name} looks like a docker save archive or OCI layout packed in a tar (manifest.json, layer tars, blobs/sha256): if so, give it uncompressed or unpacked`);
      }
      summaries.push(ls);
    }

    let spool: FinishedBlob | null = null;
    try {
      await hotChunker?.finish();
      if (hotChunker?.blob) spool = { ...(await hotChunker.blob.finish()), remoteTmp: spoolTmp };
    } catch (err) {
      hotChunker?.abort();
      throw err;
    }
    if (hotChunker) for (const key of ["chunks", "uniqueChunks", "holeChunks", "dedupSavedBytes"] as const) stats[key] += hotChunker.stats[key];

    const scan = tree.finish();
    const { files: listed, skipped } = prefetchFiles(scan.root, opts.prefetch ?? []);
    for (const p of skipped) scan.warnings.push(`prefetch entry ${p} is not a file or directory of the tree: skipped`);
    const hot = spool && await finishHotBlob(spool, scan, listed.length ? prefetchChunks(listed, chunkSize, (i) => addrs.get(i)) : [], addrs, path.join(tmp, "blobs", ".hot.tmp"));
    if (spool && !hot) stats.uniqueChunks -= spool.table.entries.length;
    if (hot) stats.uniqueChunks -= spool!.table.entries.length - hot.blob.table.entries.length;
    const shift = hot ? 1 : 0;
    const device = (a: ChunkAddr | null): ChunkAddr | null => {
      if (!a) return null;
      if (a.deviceId === SPOOL_DEVICE) return { deviceId: 1, startBlk: hot!.blockOf.get(a.startBlk)! };
      return shift ? { deviceId: a.deviceId + shift, startBlk: a.startBlk } : a;
    };
    const epoch = chooseEpoch(scan.inodes);
    const shapeOf = (i: TreeInode): FileShape => shapes.get(i) ?? { kind: "empty" };
    const layout = planLayout(scan, { blkSzBits: BLK_SZ_BITS, extraDevices: blobs.length + shift, shapeOf }, epoch);
    const manifest = writeImageFiles(tmp, {
      scan, layout, chunkSize, compression, blobs: hot ? [hot.blob, ...blobs] : blobs,
      chunkAddrs: (i) => addrs.get(i)!.map(device),
      inlineData: (i) => inline.get(i)!,
      prefetch: opts.prefetch?.filter((e) => !skipped.includes(e.path)),
    });
    blobLayers.forEach((k, b) => { summaries[k].blobId = manifest.blobs[b + shift].id; });
    const files = scan.inodes.filter((i) => (i.mode & S_IFMT) === S_IFREG);
    return { imageDir: outDir, manifest, inodes: layout.placed.length, ...stats, files: files.length, warnings: scan.warnings, layers: summaries };
  });
}

/** The device number of chunks in the hot spool until the hot blob is written (never in an image). */
const SPOOL_DEVICE = -1;

/**
 * The hot blob from the spool: the chunks the mount's prefetch asks for first (`wanted`, in its order), then
 * the other spooled chunks a file of the final tree refers to; null when none is left. The spool is removed.
 */
async function finishHotBlob(spool: FinishedBlob, scan: ScanResult, wanted: readonly ChunkAddr[], addrs: Map<TreeInode, Array<ChunkAddr | null>>, out: string): Promise<{ blob: FinishedBlob; blockOf: Map<number, number> } | null> {
  const referenced = new Set<number>();
  for (const i of scan.inodes) for (const a of addrs.get(i) ?? []) if (a?.deviceId === SPOOL_DEVICE) referenced.add(a.startBlk);
  const first = wanted.filter((a) => a.deviceId === SPOOL_DEVICE).map((a) => a.startBlk);
  try {
    if (!referenced.size) return null;
    const { table, remoteDigest, blockOf } = await writeHotBlob(spool.remoteTmp, spool.table, first, referenced, out);
    return { blob: { table, remoteDigest, remoteTmp: out }, blockOf };
  } finally {
    fs.rmSync(spool.remoteTmp, { force: true });
  }
}
