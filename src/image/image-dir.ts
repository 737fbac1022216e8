// Opening a local image directory: manifest.json, then the bootstrap and chunk tables it names, each checked
// against its digest before use. Remote forms are verified chunk by chunk by whoever reads them.
import fs from "node:fs";
import path from "node:path";
import { EodError } from "../errors.ts";
import { decodeChunkTable, blobIdOf, type ChunkTable } from "./chunk-table.ts";
import { decompressBootstrap } from "./codec.ts";
import { MANIFEST_NAME, parseManifest, type FileRef, type Manifest } from "./manifest.ts";
import { sha256Digest } from "../util/sha256.ts";

/** What reading metadata needs (eod inspect): the manifest, the bootstrap, and the chunk tables that are here. */
export interface ImageDirMetadata {
  dir: string;
  manifest: Manifest;
  bootstrapPath: string;
  /** Chunk tables in device-table order; undefined where the table file is absent. */
  tables: ReadonlyArray<ChunkTable | undefined>;
}

export interface ImageDir extends ImageDirMetadata {
  /** Chunk tables in device-table order. */
  tables: ChunkTable[];
}

export function isImageDir(dir: string): boolean {
  return fs.existsSync(path.join(dir, MANIFEST_NAME));
}

export function openImageDir(dir: string): ImageDir {
  return readImageDir(dir, false) as ImageDir; // every table was read
}

/**
 * openImageDir() for metadata readers: only manifest.json and the bootstrap must be here; a missing chunk table
 * (blobs/ not copied) is left undefined, a missing compressed bootstrap (the bootstrap's wire form) unchecked.
 */
export function openImageDirMetadata(dir: string): ImageDirMetadata {
  return readImageDir(dir, true);
}

function readImageDir(dir: string, tablesOptional: boolean): ImageDirMetadata {
  const manifestPath = path.join(dir, MANIFEST_NAME);
  let text: string;
  try {
    text = fs.readFileSync(manifestPath, "utf8");
  } catch (err) {
    throw new EodError("IMAGE_INVALID", `Cannot read ${manifestPath}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
  const manifest = parseManifest(text, manifestPath);
  const bootstrap = readVerified(dir, manifest.bootstrap, "bootstrap");
  if (manifest.bootstrapZstd && !(tablesOptional && !fs.existsSync(path.join(dir, manifest.bootstrapZstd.path)))) {
    const plain = decompressBootstrap(readVerified(dir, manifest.bootstrapZstd, "compressed bootstrap"), manifest.bootstrap.size, "the compressed bootstrap");
    if (!plain.equals(bootstrap)) throw new EodError("DIGEST_MISMATCH", `The compressed bootstrap of ${dir} does not decompress to the bootstrap`);
  }
  const tables = manifest.blobs.map((b) => {
    if (tablesOptional && !fs.existsSync(path.join(dir, b.table.path))) return undefined;
    const table = decodeChunkTable(readVerified(dir, b.table, `chunk table of blob ${b.id}`), `blob ${b.id}`);
    // A seek index (version 2) is named by its layer's diff_id, which only the whole tar proves (eod check).
    if (table.version !== 2 && blobIdOf(table) !== b.id) throw new EodError("DIGEST_MISMATCH", `Chunk table of blob ${b.id} describes another blob (${blobIdOf(table)})`);
    if (table.kernelSize !== b.kernelSize || table.entries.length !== b.chunks || table.remoteSize !== b.remote.size) {
      throw new EodError("IMAGE_INVALID", `Chunk table of blob ${b.id} disagrees with the manifest on sizes`);
    }
    return table;
  });
  return { dir, manifest, bootstrapPath: path.join(dir, manifest.bootstrap.path), tables };
}

/** Reads a file named by the manifest and checks its size and sha256. */
export function readVerified(dir: string, ref: FileRef, what: string): Buffer {
  const p = path.join(dir, ref.path);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(p);
  } catch (err) {
    throw new EodError("IMAGE_INVALID", `Cannot read ${what} ${p}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
  if (bytes.length !== ref.size) throw new EodError("DIGEST_MISMATCH", `${what} ${p} has ${bytes.length} bytes, the manifest says ${ref.size}`);
  const digest = sha256Digest(bytes);
  if (digest !== ref.digest) throw new EodError("DIGEST_MISMATCH", `${what} ${p} has digest ${digest}, the manifest says ${ref.digest}`);
  return bytes;
}
