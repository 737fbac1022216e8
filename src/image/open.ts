// Opens whatever the CLI is given as an image: an image directory (manifest.json + bootstrap + blobs) or an
// EROFS file (ours or mkfs.erofs's, with --device files for its extra devices).
import fs from "node:fs";
import path from "node:path";
import { EodError } from "../errors.ts";
import { ErofsReader, type ByteSource } from "../erofs/reader.ts";
import { remoteBlobSource } from "./blob-source.ts";
import type { ChunkTable } from "./chunk-table.ts";
import { isImageDir, openImageDir, openImageDirMetadata, type ImageDir, type ImageDirMetadata } from "./image-dir.ts";
import type { BlobRef } from "./manifest.ts";

export interface OpenedImage<D extends ImageDirMetadata = ImageDir> {
  reader: ErofsReader;
  /** Set for image directories. */
  imageDir?: D;
  close(): void;
}

/** A ByteSource over a local file, read with positional reads. */
export function fileSource(p: string): ByteSource & { close(): void } {
  let fd: number;
  try {
    fd = fs.openSync(p, "r");
  } catch (err) {
    throw new EodError("IMAGE_INVALID", `Cannot open ${p}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
  const size = fs.fstatSync(fd).size;
  return {
    size,
    read(pos, length) {
      const buf = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const n = fs.readSync(fd, buf, done, length - done, pos + done);
        if (n === 0) break;
        done += n;
      }
      return buf;
    },
    close: () => fs.closeSync(fd),
  };
}

/**
 * Opens an image to read everything: an image directory's blobs and chunk tables must all be here, unless
 * `remoteOf` says where a blob missing from it is (an index image's layers); null or a throw, or an index
 * image's layer with no `remoteOf`: not here, an error at the first read of it.
 */
export function openImage(target: string, devices: readonly string[] = [], remoteOf?: (b: BlobRef) => string | null): OpenedImage {
  return open(target, devices, (dir) => {
    const imageDir = openImageDir(dir);
    const where = (b: BlobRef, k: number): string | null => {
      const local = path.join(dir, b.remote.path);
      if (fs.existsSync(local)) return local;
      if (remoteOf) { try { return remoteOf(b); } catch { return null; } }
      return imageDir.tables[k].version === 2 ? null : local; // an index image's layers are elsewhere
    };
    return { imageDir, blobs: (opened) => imageDir.manifest.blobs.forEach((b, k) => {
      const p = where(b, k);
      opened.push(p !== null ? remoteBlobSource(p, imageDir.tables[k], b.id) : absentBlobSource(b));
    }) };
  });
}

/** A blob whose remote form is not here: its size for the device table, an error if its data is read. */
function absentBlobSource(b: BlobRef): ByteSource & { close(): void } {
  return {
    size: b.kernelSize,
    read() { throw new EodError("IMAGE_INVALID", `Cannot read blob ${b.id}: its remote form ${b.remote.digest} is not here`); },
    close() {},
  };
}

/**
 * Opens an image to read its metadata (eod inspect): an image directory needs only manifest.json and the
 * bootstrap; a blob is opened when file data is read from it, and one whose files are absent is an error then.
 */
export function openImageMetadata(target: string, devices: readonly string[] = []): OpenedImage<ImageDirMetadata> {
  return open(target, devices, (dir) => {
    const imageDir = openImageDirMetadata(dir);
    return { imageDir, blobs: (opened) => imageDir.manifest.blobs.forEach((b, k) => opened.push(lazyBlobSource(path.join(dir, b.remote.path), imageDir.tables[k], b))) };
  });
}

type DirOpener<D> = (dir: string) => { imageDir: D; blobs: (opened: Array<ByteSource & { close(): void }>) => void };

function open<D extends ImageDirMetadata>(target: string, devices: readonly string[], openDir: DirOpener<D>): OpenedImage<D> {
  if (fs.existsSync(target) && fs.statSync(target).isDirectory()) {
    if (!isImageDir(target)) throw new EodError("USAGE", `${target} is a directory but not an image directory (no manifest.json)`);
    if (devices.length) throw new EodError("USAGE", `--device is for an EROFS file's extra devices; the blobs of image directory ${target} are named by its manifest`);
    const { imageDir, blobs } = openDir(target);
    const sources: Array<ByteSource & { close(): void }> = [];
    const close = () => sources.forEach((s) => s.close());
    try {
      const primary = fileSource(imageDir.bootstrapPath);
      sources.push(primary);
      blobs(sources); // pushed one by one, so a failure closes those already open
      const reader = new ErofsReader(primary, sources.slice(1));
      checkAgainstManifest(reader, imageDir);
      return { reader, imageDir, close };
    } catch (err) {
      close();
      throw err;
    }
  }
  const primary = fileSource(target);
  const extra = devices.map(fileSource);
  const close = () => { primary.close(); extra.forEach((d) => d.close()); };
  try {
    const reader = new ErofsReader(primary, extra);
    const want = reader.devices.length;
    if (devices.length > want) {
      throw new EodError("USAGE", `${target} has ${want ? `${want} extra device(s)` : "no extra devices (no device table)"}, but ${devices.length} --device ${devices.length === 1 ? "was" : "were"} given`);
    }
    return { reader, close };
  } catch (err) {
    close();
    throw err;
  }
}

/** A blob's kernel form read through its remote form, opened at the first read; its chunk table may be absent. */
function lazyBlobSource(remotePath: string, table: ChunkTable | undefined, blob: BlobRef): ByteSource & { close(): void } {
  let src: (ByteSource & { close(): void }) | undefined;
  return {
    size: blob.kernelSize,
    read(pos, length) {
      if (!table) throw new EodError("IMAGE_INVALID", `Cannot read blob ${blob.id}: its chunk table ${blob.table.path} is not here`);
      src ??= remoteBlobSource(remotePath, table, blob.id);
      return src.read(pos, length);
    },
    close: () => src?.close(),
  };
}

/** The bootstrap and the manifest must describe the same blobs: same count, order, ids, sizes and block size. */
export function checkAgainstManifest(reader: ErofsReader, img: ImageDirMetadata): void {
  const m = img.manifest;
  const bad = (why: string) => new EodError("IMAGE_INVALID", `Bootstrap of ${img.dir} disagrees with its manifest: ${why}`);
  if (reader.blkSz !== m.blockSize) throw bad(`block size ${reader.blkSz}, manifest says ${m.blockSize}`);
  if (reader.devices.length !== m.blobs.length) throw bad(`${reader.devices.length} devices, manifest lists ${m.blobs.length} blobs`);
  reader.devices.forEach((d, k) => {
    const b = m.blobs[k];
    if (d.tag !== b.id) throw bad(`device ${k + 1} is tagged ${JSON.stringify(d.tag)}, manifest says blob ${b.id}`);
    if (d.blocks * reader.blkSz !== b.kernelSize) throw bad(`device ${k + 1} has ${d.blocks} blocks, blob ${b.id} has ${b.kernelSize} bytes`);
    const t = img.tables[k];
    if (!t) return; // not here (eod inspect reads metadata only)
    if (2 ** t.blkSzBits !== m.blockSize) throw bad(`chunk table of blob ${b.id} uses ${2 ** t.blkSzBits}-byte blocks`);
    // A seek index (version 2) names its own layer's compression: an index image's layers may differ.
    if (t.version !== 2 && t.compression !== m.compression) throw bad(`blob ${b.id} is compressed with ${t.compression}, manifest says ${m.compression}`);
    const big = t.entries.findIndex((e) => e.plainSize > m.chunkSize);
    if (big >= 0) throw bad(`chunk ${big} of blob ${b.id} is larger than the chunk size ${m.chunkSize}`);
  });
}
