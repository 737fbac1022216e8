// Opening a local image directory: manifest.json, then the bootstrap and chunk tables it names, each checked
// against its digest before use. Remote forms are verified chunk by chunk by whoever reads them.
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { EodError } from "../errors.ts";
import { decodeChunkTable, blobIdOf, type ChunkTable } from "./chunk-table.ts";
import { decompressBootstrap } from "./codec.ts";
import { MANIFEST_NAME, parseManifest, type FileRef, type Manifest } from "./manifest.ts";

export interface ImageDir {
  dir: string;
  manifest: Manifest;
  bootstrapPath: string;
  /** Chunk tables in device-table order. */
  tables: ChunkTable[];
}

export function isImageDir(dir: string): boolean {
  return fs.existsSync(path.join(dir, MANIFEST_NAME));
}

export function openImageDir(dir: string): ImageDir {
  const manifestPath = path.join(dir, MANIFEST_NAME);
  let text: string;
  try {
    text = fs.readFileSync(manifestPath, "utf8");
  } catch (err) {
    throw new EodError("IMAGE_INVALID", `Cannot read ${manifestPath}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
  const manifest = parseManifest(text, manifestPath);
  const bootstrap = readVerified(dir, manifest.bootstrap, "bootstrap");
  if (manifest.bootstrapZstd) {
    const plain = decompressBootstrap(readVerified(dir, manifest.bootstrapZstd, "compressed bootstrap"), manifest.bootstrap.size, "the compressed bootstrap");
    if (!plain.equals(bootstrap)) throw new EodError("DIGEST_MISMATCH", `The compressed bootstrap of ${dir} does not decompress to the bootstrap`);
  }
  const tables = manifest.blobs.map((b) => {
    const table = decodeChunkTable(readVerified(dir, b.table, `chunk table of blob ${b.id}`), `blob ${b.id}`);
    if (blobIdOf(table) !== b.id) throw new EodError("DIGEST_MISMATCH", `Chunk table of blob ${b.id} describes another blob (${blobIdOf(table)})`);
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
  const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  if (digest !== ref.digest) throw new EodError("DIGEST_MISMATCH", `${what} ${p} has digest ${digest}, the manifest says ${ref.digest}`);
  return bytes;
}
