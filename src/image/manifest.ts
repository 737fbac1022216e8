// manifest.json of an image directory: the root of trust. It names the bootstrap and, per blob, the chunk
// table and the remote form, each with its sha256; the chunk table in turn carries every chunk's sha256.
import { EodError } from "../errors.ts";
import type { Compression } from "./chunk-table.ts";
import { checkPrefetch, type PrefetchEntry } from "./prefetch.ts";

export const MANIFEST_NAME = "manifest.json";
export const MANIFEST_MEDIA_TYPE = "application/vnd.erofs-ondemand.image.v1+json";

export interface FileRef {
  /** Relative to the image directory (or the base URL). */
  path: string;
  /** "sha256:<hex>" */
  digest: string;
  size: number;
}

export interface BlobRef {
  /** 64 hex digits; also the device-table tag and the blob's cache file name. */
  id: string;
  /** Bytes of the kernel form (the cache file). */
  kernelSize: number;
  chunks: number;
  table: FileRef;
  remote: FileRef;
}

export interface Manifest {
  schemaVersion: 1;
  mediaType: typeof MANIFEST_MEDIA_TYPE;
  blockSize: number;
  chunkSize: number;
  compression: Compression;
  bootstrap: FileRef;
  /**
   * The bootstrap as one zstd frame (`bootstrap.erofs.zst`), what mounts fetch: metadata compresses ~4×
   * and the bootstrap is on every cold start's critical path. `bootstrap` stays the truth (its digest is
   * checked after decompressing). Absent in images built before it existed.
   */
  bootstrapZstd?: FileRef;
  /** Files a mount fetches first, in priority order (`eod build --prefetch`, `--prefetch-from`; prefetch.ts). */
  prefetch?: PrefetchEntry[];
  /** In device-table order: blobs[k] is device k + 1. */
  blobs: BlobRef[];
}

const HEX64 = /^[0-9a-f]{64}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
/** Relative paths of plain characters only: no NUL, no backslash, nothing a URL or a shell would mangle. */
const SAFE_PATH = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

/** Parses and validates manifest.json; `where` names it in errors. */
export function parseManifest(text: string, where: string): Manifest {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch (err) {
    throw new EodError("IMAGE_INVALID", `Cannot parse ${where}: ${(err as Error).message}`);
  }
  const bad = (why: string) => new EodError("IMAGE_INVALID", `Invalid ${where}: ${why}`);
  if (!isObj(m)) throw bad("not a JSON object");
  onlyKeys(m, TOP_KEYS, "the manifest", bad);
  if (m.schemaVersion !== 1) throw bad(`unsupported schemaVersion ${JSON.stringify(m.schemaVersion)}`);
  if (m.mediaType !== MANIFEST_MEDIA_TYPE) throw bad(`mediaType is ${JSON.stringify(m.mediaType)}`);
  for (const k of ["blockSize", "chunkSize"] as const) {
    const v = m[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 512 || (v & (v - 1)) !== 0) throw bad(`${k} must be a power of two, got ${JSON.stringify(v)}`);
  }
  if (!["none", "zstd", "lz4"].includes(m.compression as string)) throw bad(`unknown compression ${JSON.stringify(m.compression)}`);
  checkRef(m.bootstrap, "bootstrap", bad);
  if (m.bootstrapZstd !== undefined) checkRef(m.bootstrapZstd, "bootstrapZstd", bad);
  if (m.prefetch !== undefined) checkPrefetch(m.prefetch, where);
  if (!Array.isArray(m.blobs)) throw bad("blobs is not an array");
  const ids = new Set<string>();
  m.blobs.forEach((b: unknown, i: number) => {
    if (!isObj(b)) throw bad(`blobs[${i}] is not an object`);
    onlyKeys(b, BLOB_KEYS, `blobs[${i}]`, bad);
    if (typeof b.id !== "string" || !HEX64.test(b.id)) throw bad(`blobs[${i}].id is not 64 hex digits`);
    if (ids.has(b.id)) throw bad(`blob ${b.id} is listed twice`);
    ids.add(b.id);
    if (!isCount(b.kernelSize) || !isCount(b.chunks)) throw bad(`blobs[${i}] sizes are invalid`);
    checkRef(b.table, `blobs[${i}].table`, bad);
    checkRef(b.remote, `blobs[${i}].remote`, bad);
  });
  return m as unknown as Manifest;
}

function checkRef(r: unknown, what: string, bad: (why: string) => EodError): void {
  if (!isObj(r)) throw bad(`${what} is missing`);
  onlyKeys(r, REF_KEYS, what, bad);
  if (typeof r.path !== "string" || !SAFE_PATH.test(r.path) || r.path.split("/").some((c) => c === "" || c === "." || c === "..")) {
    throw bad(`${what}.path ${JSON.stringify(r.path)} must be a relative path inside the image`);
  }
  if (typeof r.digest !== "string" || !DIGEST.test(r.digest)) throw bad(`${what}.digest must be sha256:<64 hex>`);
  if (!isCount(r.size)) throw bad(`${what}.size is invalid`);
}

// The manifest is the root of trust: a key we do not know (a misspelt optional one) is an error, not ignored.
const TOP_KEYS = new Set(["schemaVersion", "mediaType", "blockSize", "chunkSize", "compression", "bootstrap", "bootstrapZstd", "prefetch", "blobs"]);
const BLOB_KEYS = new Set(["id", "kernelSize", "chunks", "table", "remote"]);
const REF_KEYS = new Set(["path", "digest", "size"]);

function onlyKeys(o: Record<string, unknown>, known: ReadonlySet<string>, what: string, bad: (why: string) => EodError): void {
  for (const k of Object.keys(o)) if (!known.has(k)) throw bad(`unknown key ${JSON.stringify(k)} in ${what}`);
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}
