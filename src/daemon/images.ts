// Loading an image for a mount: manifest → bootstrap (fetched whole, verified, kept content-addressed in the
// cache directory) → per blob its chunk table (verified; a copy is kept so a restarted daemon needs no
// remote to re-attach) and its cache in the core. Everything is checked before anything is mounted.
import fs from "node:fs";
import path from "node:path";
import { EodError, RemoteError } from "../errors.ts";
import { ErofsReader, bufferSource } from "../erofs/reader.ts";
import { blobIdOf, decodeChunkTable, type ChunkTable } from "../image/chunk-table.ts";
import { decompressBootstrap } from "../image/codec.ts";
import { MANIFEST_NAME, parseManifest, type BlobRef, type FileRef, type Manifest } from "../image/manifest.ts";
import { checkAgainstManifest } from "../image/open.ts";
import { sha256Digest, sha256Hex } from "../util/sha256.ts";
import type { Remote } from "../remote/remote.ts";
import type { PreparedImage } from "../frontend/frontend.ts";

export interface LoadedImage extends PreparedImage {
  source: string;
  manifest: Manifest;
  manifestDigest: string;
  /** Bytes fetched from the remote to load the image (manifest, bootstrap, tables). */
  fetchedBytes: number;
}

const MAX_MANIFEST = 4 << 20;
const MAX_BOOTSTRAP = 1 << 30;

/** Fetches and verifies everything but blob bytes; keeps the bootstrap and chunk tables in `cacheDir`. */
export async function loadImage(remote: Remote, cacheDir: string): Promise<LoadedImage> {
  let fetchedBytes = 0;
  const fetch = async (rel: string, what: string, maxBytes: number) => {
    try {
      const bytes = await remote.readFile(rel, { maxBytes });
      fetchedBytes += bytes.length;
      return bytes;
    } catch (err) {
      if (err instanceof RemoteError && err.status === 404) throw new EodError("IMAGE_INVALID", `Cannot load ${what} from ${remote.location}: ${rel} does not exist`, { cause: err });
      throw err;
    }
  };
  const manifestBytes = await fetch(MANIFEST_NAME, "the image manifest", MAX_MANIFEST);
  const manifest = parseManifest(Buffer.from(manifestBytes).toString("utf8"), `${remote.location} ${MANIFEST_NAME}`);
  const manifestDigest = sha256Digest(manifestBytes);

  // After the manifest, everything else at once: each of these is a round trip on the cold-start path.
  const [bootstrap, tables] = await Promise.all([
    loadBootstrap(manifest, cacheDir, fetch),
    Promise.all(manifest.blobs.map((b) => loadTable(b, cacheDir, fetch))),
    Promise.all(manifest.blobs.map((b) => checkRemoteSize(b, remote))),
  ]);
  const bootstrapPath = bootstrapPathOf(manifest, cacheDir);
  // The bootstrap must name exactly these blobs, with these sizes.
  checkAgainstManifest(new ErofsReader(bufferSource(bootstrap)), { dir: remote.location, manifest, bootstrapPath, tables });
  return {
    source: remote.location, manifest, manifestDigest, bootstrapPath, bootstrapSize: bootstrap.length,
    bootstrapDigest: manifest.bootstrap.digest.slice("sha256:".length),
    blobs: manifest.blobs.map((b, k) => ({ id: b.id, table: tables[k], source: { remote, path: b.remote.path } })), fetchedBytes,
  };
}

type Fetch = (rel: string, what: string, maxBytes: number) => Promise<Uint8Array>;

function bootstrapPathOf(manifest: Manifest, cacheDir: string): string {
  return path.join(cacheDir, "bootstraps", `${manifest.bootstrap.digest.slice("sha256:".length)}.erofs`);
}

/** The bootstrap from the cache directory, else fetched (its wire form when the image has one) and kept. */
async function loadBootstrap(manifest: Manifest, cacheDir: string, fetch: Fetch): Promise<Uint8Array> {
  const bootstrapPath = bootstrapPathOf(manifest, cacheDir);
  if (fs.existsSync(bootstrapPath)) {
    const kept = fs.readFileSync(bootstrapPath);
    if (sha256Digest(kept) === manifest.bootstrap.digest) return kept;
  }
  const wire = manifest.bootstrapZstd;
  const bootstrap = wire
    ? decompressBootstrap(verify(await fetch(wire.path, "the bootstrap", MAX_BOOTSTRAP), wire, "compressed bootstrap"), manifest.bootstrap.size, "the bootstrap")
    : await fetch(manifest.bootstrap.path, "the bootstrap", MAX_BOOTSTRAP);
  verify(bootstrap, manifest.bootstrap, "bootstrap");
  writeAtomic(bootstrapPath, bootstrap);
  return bootstrap;
}

/** A blob's chunk table from the cache directory's copy, else fetched, verified and kept. */
async function loadTable(b: BlobRef, cacheDir: string, fetch: Fetch): Promise<ChunkTable> {
  const copy = path.join(cacheDir, "blobs", `${b.id}.ctab`);
  let bytes: Uint8Array | null = fs.existsSync(copy) ? fs.readFileSync(copy) : null;
  if (!bytes || sha256Digest(bytes) !== b.table.digest) {
    bytes = verify(await fetch(b.table.path, `the chunk table of blob ${b.id}`, 1 << 30), b.table, `chunk table of blob ${b.id}`);
    writeAtomic(copy, bytes);
  }
  const table = decodeChunkTable(bytes, `blob ${b.id}`);
  // A seek index (version 2) is named by its layer's diff_id, which only the whole tar proves: manifest.json's
  // digest of the table binds it, and every span is checked as it is read.
  if (table.version !== 2 && blobIdOf(table) !== b.id) throw new EodError("DIGEST_MISMATCH", `Chunk table of blob ${b.id} describes another blob`);
  return table;
}

/** A missing or truncated remote form fails the mount now, not the first read (no blob byte is fetched). */
async function checkRemoteSize(b: BlobRef, remote: Remote): Promise<void> {
  let size: number;
  try {
    size = await remote.size(b.remote.path);
  } catch (err) {
    throw new EodError("IMAGE_INVALID", `Blob ${b.id} is not available from ${remote.location}: ${(err as Error).message}`, { cause: err });
  }
  if (size !== b.remote.size) throw new EodError("IMAGE_INVALID", `Blob ${b.id} at ${remote.location} has ${size} bytes, the manifest says ${b.remote.size}`);
}

/** The same image rebuilt from what the cache directory kept, for re-attaching without any remote I/O. */
export function cachedImage(cacheDir: string, bootstrapPath: string, blobs: ReadonlyArray<{ id: string; remotePath: string }>, remote: Remote): PreparedImage {
  const bootstrap = fs.readFileSync(bootstrapPath);
  return {
    bootstrapPath, bootstrapSize: bootstrap.length, bootstrapDigest: sha256Hex(bootstrap),
    blobs: blobs.map((b) => ({
      id: b.id, table: decodeChunkTable(fs.readFileSync(path.join(cacheDir, "blobs", `${b.id}.ctab`)), `blob ${b.id}`),
      source: { remote, path: b.remotePath },
    })),
  };
}

function verify(bytes: Uint8Array, ref: FileRef, what: string): Uint8Array {
  if (bytes.length !== ref.size) throw new EodError("DIGEST_MISMATCH", `The ${what} has ${bytes.length} bytes, the manifest says ${ref.size}`);
  const digest = sha256Digest(bytes);
  if (digest !== ref.digest) throw new EodError("DIGEST_MISMATCH", `The ${what} has digest ${digest}, the manifest says ${ref.digest}`);
  return bytes;
}

function writeAtomic(p: string, bytes: Uint8Array): void {
  fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o700 });
  const tmp = `${p}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, bytes, { mode: 0o644 });
  fs.renameSync(tmp, p);
}
