// `eod inspect`: what an image holds, as plain data for the CLI to print or emit as JSON.
import { EROFS_INODE_CHUNK_BASED, S_IFBLK, S_IFCHR, S_IFLNK, S_IFMT } from "../erofs/constants.ts";
import { decodeChunkFormat } from "../erofs/chunk.ts";
import { decodeRdev } from "../erofs/inode.ts";
import { featureNames } from "../erofs/super.ts";
import { escapeName, escapePath } from "../erofs/printable-name.ts";
import type { ErofsReader, LoadedInode } from "../erofs/reader.ts";
import type { ChunkTable } from "./chunk-table.ts";
import type { ImageDirMetadata } from "./image-dir.ts";
import type { OpenedImage } from "./open.ts";
import type { PrefetchEntry } from "./prefetch.ts";

const LAYOUT_NAMES = ["flat-plain", "compressed-full", "flat-inline", "compressed-compact", "chunk-based"];

export interface EntryInfo {
  /** Escaped where a name is not printable UTF-8 (printable-name.ts), as eod inspect --stat takes it. */
  path: string;
  nid: number;
  mode: string;
  type: string;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  mtime: string;
  mtimeSec: number;
  mtimeNsec: number;
  layout: string;
  inodeForm: "compact" | "extended";
  rdev?: { major: number; minor: number };
  target?: string;
  xattrs?: Record<string, string>;
  chunks?: { count: number; holes: number; chunkSize: number };
}

const TYPE_NAMES: Record<number, string> = { 0o140000: "socket", 0o120000: "symlink", 0o100000: "file", 0o060000: "block", 0o040000: "dir", 0o020000: "char", 0o010000: "fifo" };

export function entryInfo(reader: ErofsReader, inode: LoadedInode, path: string, withXattrs: boolean): EntryInfo {
  const type = inode.mode & S_IFMT;
  const t = reader.mtimeOf(inode);
  const info: EntryInfo = {
    path, nid: inode.nid, mode: (inode.mode & 0o7777).toString(8).padStart(4, "0"), type: TYPE_NAMES[type] ?? "unknown",
    uid: inode.uid, gid: inode.gid, nlink: inode.nlink, size: inode.size,
    mtime: new Date(t.sec * 1000).toISOString().replace(".000Z", `.${String(t.nsec).padStart(9, "0")}Z`),
    mtimeSec: t.sec, mtimeNsec: t.nsec,
    layout: LAYOUT_NAMES[inode.dataLayout] ?? String(inode.dataLayout), inodeForm: inode.extended ? "extended" : "compact",
  };
  if (type === S_IFCHR || type === S_IFBLK) info.rdev = decodeRdev(inode.iU);
  if (type === S_IFLNK) info.target = escapeName(reader.readLink(inode));
  if (withXattrs) {
    const xs = reader.xattrs(inode);
    if (xs.length) info.xattrs = Object.fromEntries(xs.map((x) => [x.name, Buffer.from(x.value).toString("base64")]));
  }
  if (inode.dataLayout === EROFS_INODE_CHUNK_BASED) {
    const chunks = reader.chunks(inode);
    const chunkSize = 2 ** decodeChunkFormat(inode.iU, reader.sb.blkSzBits, inode.nid).chunkBits;
    info.chunks = { count: chunks.length, holes: chunks.filter((c) => !c.addr).length, chunkSize };
  }
  return info;
}

export interface ImageInfo {
  kind: "image-dir" | "erofs-file";
  blockSize: number;
  inodes: number;
  rootNid: number;
  uuid: string;
  featureCompat: number;
  featureIncompat: number;
  /** The names of the feature bits set (dump.erofs's). */
  features: string[];
  primaryBlocks: number;
  devices: Array<{ tag: string; blocks: number }>;
  bootstrap?: { size: number; digest: string };
  blobs?: Array<{
    id: string; kernelSize: number; remoteSize: number; chunks: number; compression: string;
    /** From the chunk table; absent when the table is not here (an image directory copied without blobs/). */
    rawChunks?: number; ratio?: number; meanChunk?: number;
    /** The chunk table's path when it is not here. */
    tableMissing?: string;
    /** A seek index (chunk table version 2) over an original layer: see seekIndexInfo(). */
    seekIndex?: SeekIndexInfo;
  }>;
  /** The manifest's prefetch list (files a mount fetches first), when it has one. */
  prefetch?: PrefetchEntry[];
}

export function imageInfo(img: OpenedImage<ImageDirMetadata>): ImageInfo {
  const { reader, imageDir } = img;
  const sb = reader.sb;
  const info: ImageInfo = {
    kind: imageDir ? "image-dir" : "erofs-file", blockSize: reader.blkSz, inodes: sb.inos, rootNid: sb.rootNid,
    uuid: Buffer.from(sb.uuid).toString("hex"), featureCompat: sb.featureCompat, featureIncompat: sb.featureIncompat,
    features: featureNames(sb.featureCompat, sb.featureIncompat), primaryBlocks: sb.blocks, devices: reader.devices.map((d) => ({ tag: d.tag, blocks: d.blocks })),
  };
  if (imageDir) {
    info.bootstrap = { size: imageDir.manifest.bootstrap.size, digest: imageDir.manifest.bootstrap.digest };
    if (imageDir.manifest.prefetch?.length) info.prefetch = imageDir.manifest.prefetch;
    info.blobs = imageDir.manifest.blobs.map((b, k) => {
      const t = imageDir.tables[k];
      if (!t) {
        return { id: b.id, kernelSize: b.kernelSize, remoteSize: b.remote.size, chunks: b.chunks, compression: imageDir.manifest.compression, tableMissing: b.table.path };
      }
      const plain = t.entries.reduce((n, e) => n + e.plainSize, 0);
      return {
        id: b.id, kernelSize: t.kernelSize, remoteSize: t.remoteSize, chunks: t.entries.length, compression: t.compression,
        rawChunks: t.entries.filter((e) => e.flags & 1).length, ratio: plain ? Number((t.remoteSize / plain).toFixed(4)) : 1,
        meanChunk: t.entries.length ? Math.round(plain / t.entries.length) : 0,
        ...(t.version === 2 ? { seekIndex: seekIndexInfo(t, b.table.size) } : {}),
      };
    });
  }
  return info;
}

/** What `eod inspect` tells of one layer's seek index (issue 14). */
export interface SeekIndexInfo {
  /** The original layer's compression. */
  kind: string;
  spans: number;
  /** Bytes of the gzip checkpoints' windows (compressed), the bulk of a gzip index. */
  windowBytes: number;
  /** Bytes of the seek index file, and that ÷ the layer's stored bytes. */
  indexBytes: number;
  indexRatio: number;
  /** Mean tar bytes per span, and mean compressed bytes a miss of one span fetches. */
  meanSpan: number;
  meanFetch: number;
}

export function seekIndexInfo(t: ChunkTable, indexBytes: number): SeekIndexInfo {
  const n = t.entries.length;
  const plain = t.entries.reduce((s, e) => s + e.plainSize, 0);
  const fetch = t.entries.reduce((s, e) => s + e.remoteSize, 0);
  return {
    kind: t.compression, spans: n, windowBytes: (t.windows ?? []).reduce((s, w) => s + w.length, 0), indexBytes,
    indexRatio: t.remoteSize ? Number((indexBytes / t.remoteSize).toFixed(5)) : 0,
    meanSpan: n ? Math.round(plain / n) : 0, meanFetch: n ? Math.round(fetch / n) : 0,
  };
}

/** Every entry in walk order (root first), with its path. */
export function* listEntries(reader: ErofsReader, withXattrs: boolean): Generator<EntryInfo> {
  for (const { path, inode } of reader.walk()) {
    yield entryInfo(reader, inode, escapePath(path), withXattrs);
  }
}
