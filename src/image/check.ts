// `eod check`: walks every structure of an image and verifies every digest. Problems are collected with
// where they are (inode, path, blob, chunk) instead of stopping at the first, so one run names them all.
import fs from "node:fs";
import path from "node:path";
import { EodError } from "../errors.ts";
import { decodeChunkFormat } from "../erofs/chunk.ts";
import { escapePath } from "../erofs/printable-name.ts";
import { EROFS_INODE_CHUNK_BASED, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from "../erofs/constants.ts";
import type { ErofsReader, LoadedInode } from "../erofs/reader.ts";
import { decodeGroups, findChunk, type ChunkTable } from "./chunk-table.ts";
import { openBlobFile, readChunks } from "./blob-source.ts";
import type { VerifiedChunk } from "./verified-chunk.ts";
import { sha256Stream } from "../util/sha256.ts";
import { openImage } from "./open.ts";
import type { BlobRef } from "./manifest.ts";

export interface CheckReport {
  ok: boolean;
  kind: "image-dir" | "erofs-file";
  problems: string[];
  inodes: number;
  entries: number;
  chunksVerified: number;
  /** What this check could not look at (not a problem by itself: an EROFS file has no data digests). */
  notChecked: string[];
}

export interface CheckOptions {
  /**
   * Where blob `b`'s remote form is, when not at its path in the image directory: an index image's blobs are
   * the original layers (`eod check <index-dir> --layers <oci-layout>`). Null: not here (said in notChecked);
   * an error is a problem of that blob.
   */
  remoteOf?: (b: BlobRef) => string | null;
}

export function checkImage(target: string, devices: readonly string[] = [], opts: CheckOptions = {}): CheckReport {
  const report: CheckReport = { ok: true, kind: "erofs-file", problems: [], inodes: 0, entries: 0, chunksVerified: 0, notChecked: [] };
  const problem = (where: string, err: unknown) => {
    report.problems.push(`${where}: ${err instanceof Error ? err.message : String(err)}`);
  };
  let opened;
  try {
    opened = openImage(target, devices, opts.remoteOf);
  } catch (err) {
    if (!(err instanceof EodError) || err.code === "USAGE") throw err;
    problem(target, err);
    report.ok = false;
    return report;
  }
  try {
    const { reader, imageDir } = opened;
    walkStructures(reader, report, problem, imageDir !== undefined);
    if (!imageDir) {
      checkDevices(reader, devices, report, problem);
    } else {
      report.kind = "image-dir";
      // Every chunk index must name the start of a chunk of exactly the size the file expects there.
      verifyChunkRefs(reader, imageDir.tables, imageDir.manifest.chunkSize, problem);
      imageDir.manifest.blobs.forEach((b, k) => {
        const table = imageDir.tables[k];
        const local = path.join(imageDir.dir, b.remote.path);
        let remote: string | null;
        try {
          remote = fs.existsSync(local) ? local : opts.remoteOf ? opts.remoteOf(b) : table.version === 2 ? null : local;
        } catch (err) { problem(`blob ${b.id}`, err); return; }
        if (remote === null) {
          report.notChecked.push(`blob ${b.id}: its layer ${b.remote.digest} is not here (eod check <index-dir> --layers <oci-layout>, or eod check <reference>)`);
          return;
        }
        let fd: number;
        try { fd = openBlobFile(remote, b.id); } catch (err) { problem(`blob ${b.id}`, err); return; }
        try {
          const size = fs.fstatSync(fd).size;
          if (size !== b.remote.size) problem(`blob ${b.id}`, `remote form has ${size} bytes, manifest says ${b.remote.size}`);
          const whole = sha256Stream();
          const buf = Buffer.allocUnsafe(1 << 20);
          for (let at = 0, n; (n = fs.readSync(fd, buf, 0, buf.length, at)) > 0; at += n) whole.update(buf.subarray(0, n));
          if (`sha256:${whole.digest("hex")}` !== b.remote.digest) problem(`blob ${b.id}`, "remote form digest differs from the manifest");
          const unit = table.version === 2 ? "span" : "chunk";
          for (const { first, last } of decodeGroups(table)) {
            let verified: VerifiedChunk[];
            try { verified = readChunks(fd, table, first, last, b.id); } catch (err) { problem(`blob ${b.id} ${unit}${first === last ? ` ${first}` : `s ${first}..${last}`}`, err); continue; }
            verified.forEach((v, k) => (v.error ? problem(`blob ${b.id} ${unit} ${first + k}`, v.error) : report.chunksVerified++));
          }
        } catch (err) {
          problem(`blob ${b.id}`, err);
        } finally {
          fs.closeSync(fd);
        }
      });
    }
  } finally {
    opened.close();
  }
  report.ok = report.problems.length === 0;
  return report;
}

/**
 * The extra devices of an EROFS file, as fsck.erofs decides: each must be given (else its extents were bounded
 * by the device table only) and be as large as the device table says (in whole blocks: a last block may be
 * short on disk). File data is never read: an EROFS file holds no digests to verify it against.
 */
function checkDevices(reader: ErofsReader, files: readonly string[], report: CheckReport, problem: (w: string, e: unknown) => void): void {
  reader.devices.forEach((d, k) => {
    const where = `device ${k + 1} (${d.tag || "no tag"})`;
    const file = files[k];
    if (file === undefined) {
      problem(where, "not given (--device <file>, in device-table order): its extents were checked against the device table only");
      return;
    }
    const size = fs.statSync(file).size;
    if (!d.blocks) report.notChecked.push(`${where}: the size of ${file} (the device table gives none)`);
    else if (Math.ceil(size / reader.blkSz) !== d.blocks) {
      problem(where, `${file} has ${size} bytes, the device table says ${d.blocks} blocks of ${reader.blkSz} bytes`);
    }
  });
  report.notChecked.push("file data: an EROFS file has no data digests (every extent was mapped inside its device)");
}

function walkStructures(reader: ErofsReader, report: CheckReport, problem: (w: string, e: unknown) => void, lazy: boolean): void {
  const seen = new Set<number>();
  const nlinks = new Map<number, { want: number; got: number; path: string }>();
  try {
    for (const { path: p, inode } of reader.walk()) {
      report.entries++;
      const where = `${escapePath(p)} (nid ${inode.nid})`;
      const type = inode.mode & S_IFMT;
      if (type !== S_IFDIR) {
        const n = nlinks.get(inode.nid) ?? { want: inode.nlink, got: 0, path: where };
        n.got++;
        nlinks.set(inode.nid, n);
      }
      if (seen.has(inode.nid)) continue;
      seen.add(inode.nid);
      report.inodes++;
      try {
        reader.xattrs(inode);
        if (type === S_IFLNK) reader.readLink(inode);
        if (type === S_IFREG) checkFileMapping(reader, inode, lazy);
      } catch (err) {
        problem(where, err);
      }
    }
  } catch (err) {
    problem("directory tree", err);
  }
  for (const [nid, n] of nlinks) {
    if (n.want !== n.got) problem(n.path, `nlink is ${n.want} but ${n.got} names point to inode ${nid}`);
  }
}

/** Maps every extent of a file (no data read): each must lie inside its device. */
function checkFileMapping(reader: ErofsReader, inode: LoadedInode, lazy: boolean): void {
  if (lazy && inode.dataLayout !== EROFS_INODE_CHUNK_BASED && inode.size > reader.blkSz) {
    throw new EodError("IMAGE_INVALID", `bootstrap holds ${inode.size} bytes of file data (expected chunk-based)`);
  }
  for (let la = 0; la < inode.size;) {
    const m = reader.map(inode, la);
    if (m.len <= 0) throw new EodError("EROFS_CORRUPTED", `empty extent at ${la}`);
    la += m.len;
  }
}

function verifyChunkRefs(reader: ErofsReader, tables: readonly ChunkTable[], chunkSize: number, problem: (w: string, e: unknown) => void): void {
  const done = new Set<number>();
  try {
    for (const { path: p, inode } of reader.walk()) {
      if (inode.dataLayout !== EROFS_INODE_CHUNK_BASED || done.has(inode.nid)) continue;
      done.add(inode.nid);
      try {
        const bits = decodeChunkFormat(inode.iU, reader.sb.blkSzBits, inode.nid).chunkBits;
        if (onSeekIndex(reader, inode, tables, p, problem)) continue;
        if (2 ** bits !== chunkSize) problem(`${escapePath(p)} (nid ${inode.nid})`, `chunk size ${2 ** bits}, manifest says ${chunkSize}`);
        for (const c of reader.chunks(inode)) {
          if (!c.addr) continue;
          const where = `${escapePath(p)} (nid ${inode.nid}) chunk ${c.index}`;
          const table = tables[c.addr.deviceId - 1];
          if (!table) { problem(where, `device ${c.addr.deviceId} is not a blob of this image`); continue; }
          const pos = c.addr.startBlk * reader.blkSz;
          const i = findChunk(table.entries, pos);
          const want = Math.min(inode.size - c.la, c.len);
          if (i < 0 || table.entries[i].plainOffset !== pos) problem(where, `block ${c.addr.startBlk} of device ${c.addr.deviceId} is not the start of a chunk`);
          else if (table.entries[i].plainSize !== want) problem(where, `chunk holds ${table.entries[i].plainSize} bytes, the file needs ${want}`);
        }
      } catch (err) {
        problem(`${escapePath(p)} (nid ${inode.nid})`, err);
      }
    }
  } catch {
    // the structural walk already reported it
  }
}

/**
 * A file of an index image (issue 14) points into its layer's tar, anywhere inside the spans of that layer's
 * seek index (chunk table version 2), in chunks of the size its own layout chose: each chunk must lie inside
 * the spans. Returns false for a file whose chunks are on ordinary blobs (checked chunk by chunk).
 */
function onSeekIndex(reader: ErofsReader, inode: LoadedInode, tables: readonly ChunkTable[], p: Uint8Array[], problem: (w: string, e: unknown) => void): boolean {
  const chunks = [...reader.chunks(inode)].filter((c) => c.addr);
  if (!chunks.some((c) => tables[c.addr!.deviceId - 1]?.version === 2)) return false;
  for (const c of chunks) {
    const where = `${escapePath(p)} (nid ${inode.nid}) chunk ${c.index}`;
    const table = tables[c.addr!.deviceId - 1];
    if (table?.version !== 2) { problem(where, `device ${c.addr!.deviceId} is not a layer of this index image`); continue; }
    const pos = c.addr!.startBlk * reader.blkSz;
    const end = pos + Math.min(inode.size - c.la, c.len);
    const last = table.entries.at(-1);
    if (!last || end > last.plainOffset + last.plainSize) problem(where, `bytes ${pos}..${end} of device ${c.addr!.deviceId} run past its layer's spans`);
  }
  return true;
}
