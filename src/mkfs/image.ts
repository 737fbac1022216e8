// `eod build <dir> -o <image-dir>`: the lazy-loading image. A bootstrap (an EROFS image with all metadata and
// no bulk file data) plus one data blob whose chunks are deduplicated by sha256, a chunk table per blob and
// manifest.json with the digest of every file. See docs/format.md.
import fs from "node:fs";
import path from "node:path";
import { EROFS_FEATURE_INCOMPAT_CHUNKED_FILE, EROFS_FEATURE_INCOMPAT_DEVICE_TABLE, S_IFMT, S_IFREG } from "../erofs/constants.ts";
import type { ChunkAddr } from "../erofs/chunk.ts";
import type { DeviceSlot } from "../erofs/devt.ts";
import { blobIdOf, encodeChunkTable, type ChunkTable, type Compression } from "../image/chunk-table.ts";
import { compressBootstrap } from "../image/codec.ts";
import { MANIFEST_MEDIA_TYPE, MANIFEST_NAME, type BlobRef, type Manifest } from "../image/manifest.ts";
import type { PrefetchEntry } from "../image/prefetch.ts";
import { BlobWriter } from "./blob-writer.ts";
import { prefetchFirst } from "./prefetch-order.ts";
import { canInline, chooseEpoch, planLayout, type FileShape, type Layout } from "./layout.ts";
import { writeMetadata } from "./metadata.ts";
import { checkOutputDir, commitDir, type BuildProgress } from "./output.ts";
import { Chunker } from "./chunker.ts";
import { chunkWorkersFor, inFlightFor } from "./chunk-workers.ts";
import { SourceFile } from "./source-file.ts";
import { scanTree, type ScanResult, type TreeInode } from "./tree.ts";
import { sha256Digest } from "../util/sha256.ts";

export const BOOTSTRAP_NAME = "bootstrap.erofs";
/** 128 KiB: an isolated miss fetches little and fills in ~0.3 ms; bigger chunks cost bytes and latency, smaller
 * ones a bigger chunk table (64 B per chunk, fetched at mount). Chosen from `npm run bench:lazy` (docs/benchmarks.md). */
export const DEFAULT_CHUNK_SIZE = 128 << 10;
export const DEFAULT_INLINE_MAX = 1024;

export interface ImageOptions {
  chunkSize?: number;
  compression?: Compression;
  level?: number;
  /** Regular files up to this size live entirely in the bootstrap (0 = none). */
  inlineMax?: number;
  /** Files a mount fetches first (manifest `prefetch`); their data also goes first in the blob. */
  prefetch?: PrefetchEntry[];
  progress?: BuildProgress;
}

export interface ImageSummary {
  imageDir: string;
  manifest: Manifest;
  inodes: number;
  files: number;
  inlineFiles: number;
  bytes: number;
  chunks: number;
  uniqueChunks: number;
  holeChunks: number;
  dedupSavedBytes: number;
  warnings: string[];
}

export const BLK_SZ_BITS = 12;

export async function buildImage(src: string, outDir: string, opts: ImageOptions = {}): Promise<ImageSummary> {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const chunkBits = Math.log2(chunkSize);
  const compression = opts.compression ?? "zstd";
  const inlineMax = opts.inlineMax ?? DEFAULT_INLINE_MAX;
  const blkSz = 2 ** BLK_SZ_BITS;
  checkOutputDir(outDir); // before the scan: a wrong output is reported at once, not after minutes
  const scan = scanTree(src, { onProgress: (n) => opts.progress?.("scan", n, 0), exclude: [outDir] });
  const epoch = chooseEpoch(scan.inodes);
  const shapeOf = (i: TreeInode): FileShape => {
    if (i.size === 0) return { kind: "empty" };
    if (i.size <= inlineMax && canInline(i, i.size, blkSz, epoch)) return { kind: "inline" };
    return { kind: "chunks", chunkBits, indexes: true, count: Math.ceil(i.size / chunkSize) };
  };
  const hasData = scan.inodes.some((i) => (i.mode & S_IFMT) === S_IFREG && shapeOf(i).kind === "chunks");
  const layout = planLayout(scan, { blkSzBits: BLK_SZ_BITS, extraDevices: hasData ? 1 : 0, shapeOf }, epoch);

  const stats = { files: 0, inlineFiles: 0, bytes: 0, chunks: 0, uniqueChunks: 0, holeChunks: 0, dedupSavedBytes: 0 };
  return commitDir(outDir, async (tmp) => {
    fs.mkdirSync(path.join(tmp, "blobs"));
    const remoteTmp = path.join(tmp, "blobs", ".remote.tmp");
    // Bound the bytes held in flight (read-ahead for hashing, and chunks waiting for compression) to ~32 MiB each.
    const inFlight = inFlightFor(chunkSize);
    // Digests (WebCrypto) and zstd (node:zlib) run on libuv's thread pool. The TypeScript LZ4 encoder needs
    // threads of its own: chunk workers, as for layers (they cost more memory, so only for lz4).
    const workers = compression === "lz4" ? chunkWorkersFor(chunkSize) : null;
    const compress = workers ? (plain: Uint8Array) => workers.compress(plain, compression, opts.level) : undefined;
    const writer = new BlobWriter(remoteTmp, { compression, level: opts.level, blkSzBits: BLK_SZ_BITS, maxInFlight: inFlight, compress });
    const inline = new Map<TreeInode, Uint8Array>();
    const addrs = new Map<TreeInode, Array<ChunkAddr | null>>();
    const chunker = new Chunker({
      chunkSize, window: inFlight, index: new Map(), openBlob: () => ({ writer, deviceId: 1 }),
      ...(workers ? { pool: workers.pool, digest: (buf: Uint8Array) => workers.digest(buf) } : {}),
    });
    const total = layout.placed.reduce((n, p) => n + ((p.inode.mode & S_IFMT) === S_IFREG ? p.inode.size : 0), 0);
    const { hot, skipped } = prefetchFirst(scan.root, opts.prefetch ?? []);
    for (const path of skipped) scan.warnings.push(`prefetch entry ${path} is not a file or directory of the tree: skipped`);
    const order = new Set([...hot.map((i) => layout.byInode.get(i)!), ...layout.placed]);
    let table: ChunkTable, remoteDigest: string;
    try {
      for (const p of order) {
        const i = p.inode;
        if ((i.mode & S_IFMT) !== S_IFREG || i.size === 0) continue;
        stats.files++;
        stats.bytes += i.size;
        const f = SourceFile.open(i.sourcePath, i.size);
        try {
          if (p.shape!.kind === "inline") {
            const bytes = new Uint8Array(i.size);
            f.readExact(bytes, 0);
            inline.set(i, bytes);
            stats.inlineFiles++;
          } else {
            addrs.set(i, await chunker.addFile(f, i.sparse));
          }
        } finally {
          f.close();
        }
        opts.progress?.("data", stats.bytes, total);
      }
      await chunker.finish();
      Object.assign(stats, chunker.stats);
      ({ table, remoteDigest } = await writer.finish());
    } catch (err) {
      chunker.abort();
      writer.abort();
      throw err;
    } finally {
      await workers?.close();
    }
    if (!table.entries.length) fs.rmSync(remoteTmp);
    const manifest = writeImageFiles(tmp, {
      scan, layout, chunkSize, compression, blobs: table.entries.length ? [{ table, remoteDigest, remoteTmp }] : [],
      chunkAddrs: (i) => addrs.get(i) ?? new Array((layout.byInode.get(i)!.shape as { count: number }).count).fill(null),
      inlineData: (i) => inline.get(i)!,
      prefetch: opts.prefetch?.filter((e) => !skipped.includes(e.path)),
    });
    return { imageDir: outDir, manifest, inodes: layout.placed.length, ...stats, warnings: scan.warnings };
  });
}

/** A finished blob: its table, the remote form's digest and the temporary file that holds the remote form. */
export interface FinishedBlob {
  table: ChunkTable;
  remoteDigest: string;
  remoteTmp: string;
}

export interface ImageFiles {
  scan: ScanResult;
  layout: Layout;
  chunkSize: number;
  compression: Compression;
  /** In device order: blobs[k] is device k + 1 (the layout reserved that many device slots or more). */
  blobs: FinishedBlob[];
  chunkAddrs(inode: TreeInode): ReadonlyArray<ChunkAddr | null>;
  inlineData(inode: TreeInode): Uint8Array;
  prefetch?: PrefetchEntry[];
}

/**
 * The tail of every lazy build (from a directory or from layers): moves each blob's remote form to
 * blobs/<id>, writes its chunk table, the bootstrap (device table included) and manifest.json into `tmp`.
 */
export function writeImageFiles(tmp: string, inp: ImageFiles): Manifest {
  const blobs: BlobRef[] = [];
  for (const { table, remoteDigest, remoteTmp } of inp.blobs) {
    const id = blobIdOf(table);
    const tableBytes = encodeChunkTable(table);
    fs.renameSync(remoteTmp, path.join(tmp, "blobs", id));
    fs.writeFileSync(path.join(tmp, "blobs", `${id}.ctab`), tableBytes);
    blobs.push({
      id, kernelSize: table.kernelSize, chunks: table.entries.length,
      table: { path: `blobs/${id}.ctab`, digest: sha256Digest(tableBytes), size: tableBytes.length },
      remote: { path: `blobs/${id}`, digest: remoteDigest, size: table.remoteSize },
    });
  }
  return writeImageHead(tmp, { ...inp, blkSzBits: BLK_SZ_BITS, blobs });
}

export interface ImageHead extends Omit<ImageFiles, "blobs"> {
  blkSzBits: number;
  /** In device order, their files already in place (or elsewhere, for an index image). */
  blobs: BlobRef[];
}

/**
 * The bootstrap (device k + 1 = blobs[k], each in the unified address space after the ones before), its zstd
 * form and manifest.json, written into `tmp`.
 */
export function writeImageHead(tmp: string, inp: ImageHead): Manifest {
  const { scan, layout, blobs } = inp;
  const blkSz = 2 ** inp.blkSzBits;
  let uniAddr = layout.blocks;
  const devices: DeviceSlot[] = blobs.map((b) => {
    const d = { tag: b.id, blocks: b.kernelSize / blkSz, uniAddr };
    uniAddr += d.blocks;
    return d;
  });
  const meta = writeMetadata({
    scan, layout, blkSzBits: inp.blkSzBits, devices,
    featureIncompat: (layout.placed.some((p) => p.shape?.kind === "chunks") ? EROFS_FEATURE_INCOMPAT_CHUNKED_FILE : 0) |
      (devices.length ? EROFS_FEATURE_INCOMPAT_DEVICE_TABLE : 0),
    chunkAddrs: inp.chunkAddrs,
    inlineData: inp.inlineData,
  });
  fs.writeFileSync(path.join(tmp, BOOTSTRAP_NAME), meta);
  const metaZstd = compressBootstrap(meta);
  fs.writeFileSync(path.join(tmp, `${BOOTSTRAP_NAME}.zst`), metaZstd);
  const manifest: Manifest = {
    schemaVersion: 1, mediaType: MANIFEST_MEDIA_TYPE, blockSize: blkSz, chunkSize: inp.chunkSize, compression: inp.compression,
    bootstrap: { path: BOOTSTRAP_NAME, digest: sha256Digest(meta), size: meta.length },
    bootstrapZstd: { path: `${BOOTSTRAP_NAME}.zst`, digest: sha256Digest(metaZstd), size: metaZstd.length },
    ...(inp.prefetch?.length ? { prefetch: inp.prefetch } : {}),
    blobs,
  };
  fs.writeFileSync(path.join(tmp, MANIFEST_NAME), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}
