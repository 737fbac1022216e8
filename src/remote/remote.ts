// The one interface every reader of image bytes uses (`Remote`), `openRemote()` which picks the
// implementation from the location, and the small helpers both implementations share (path checks,
// argument checks, a FIFO semaphore). Retry is not here: it is a wrapper (retry.ts), as in undici,
// so each implementation only has to make one attempt and say whether the failure is worth repeating.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { DirRemote } from "./dir-remote.ts";
import { HttpRemote } from "./http-remote.ts";
import { isRegistrySource, RegistryImageRemote } from "./registry/image-remote.ts";
import { withRetry } from "./retry.ts";

export interface ReadOptions {
  /** Aborting rejects with `signal.reason` and is never retried. */
  signal?: AbortSignal;
  /**
   * readRange() only, optional for a remote to honour: called as the answer arrives, with the buffer being
   * filled (the same one, until a retry starts a new one) and how many of its bytes are in. Lets a caller use
   * the first bytes of a long range before the rest has arrived.
   */
  onData?: (bytes: Uint8Array, received: number) => void;
}

/** Counters since the remote was opened; `errors` counts failed attempts, `retries` the attempts repeated. */
export interface RemoteStats {
  requests: number;
  bytes: number;
  retries: number;
  errors: number;
}

export interface Remote {
  /** Where the image is (a directory path or a base URL), for messages. */
  readonly location: string;
  /**
   * A whole file of the image by relative path ("manifest.json", "bootstrap.erofs", "blobs/<id>.ctab").
   * maxBytes (default DEFAULT_MAX_FILE_BYTES) guards against absurd sizes: a bigger file is
   * EodError("IMAGE_INVALID"), not retried.
   */
  readFile(relPath: string, opts?: ReadOptions & { maxBytes?: number }): Promise<Uint8Array>;
  /** Exactly `length` bytes at `offset` of a file; fewer or more bytes is a RemoteError("REMOTE_IO"). */
  readRange(relPath: string, offset: number, length: number, opts?: ReadOptions): Promise<Uint8Array>;
  /** The size of a file without reading it (HTTP HEAD; fstat for a directory). */
  size(relPath: string, opts?: ReadOptions): Promise<number>;
  /**
   * Where a location that can change (a registry tag) resolves to now, as a location that cannot
   * (`docker://host/repo:tag@sha256:…`); what a mount records. Only remotes whose location can move have it.
   */
  pin?(): Promise<string>;
  /** Bytes and requests so far (for `eod status` and tests). */
  stats(): RemoteStats;
  close(): Promise<void>;
}

export interface RemoteOptions {
  /** Per request, default 10_000: headers AND body must arrive in time (a stalled body times out). */
  timeoutMs?: number;
  /** Default 3 (so 4 attempts), exponential backoff with full jitter, base 50 ms, cap 2 s. */
  retries?: number;
  /** Max requests in flight to one remote, default 16; more wait in FIFO order. */
  concurrency?: number;
}

export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_CONCURRENCY = 16;
/** readFile() refuses bigger files unless the caller raises the limit (a bootstrap of a huge tree is ~100s of MB). */
export const DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024;

/**
 * Opens the image at `location`: an `http://`/`https://` base URL (may carry a path prefix), a local
 * directory (a path or a `file:` URL), or an image in a registry (`docker://host/repo:tag`, the OCI form
 * `eod convert` pushes; see registry/image-remote.ts). The result retries transient failures (see retry.ts;
 * the registry client has the same policy built in).
 *
 * @example
 * const remote = openRemote("http://127.0.0.1:8080/images/app/", { timeoutMs: 5000 });
 * try {
 *   const manifest = await remote.readFile("manifest.json", { maxBytes: 1 << 20 });
 *   const head = await remote.readRange("bootstrap.erofs", 1024, 128);
 * } finally {
 *   await remote.close();
 * }
 */
export function openRemote(location: string, opts: RemoteOptions = {}): Remote {
  if (isRegistrySource(location)) return new RegistryImageRemote(location, opts);
  const inner = /^https?:\/\//i.test(location)
    ? new HttpRemote(location, opts)
    : new DirRemote(/^file:/i.test(location) ? fileURLToPath(location) : location, opts);
  return withRetry(inner, { retries: opts.retries });
}

/**
 * Checks a path relative to the image root and returns it with "/" separators: no absolute paths, no
 * `.`/`..`/empty segments, no NUL or backslash. Manifests are validated already; this keeps a bad caller
 * from reading outside the image through either remote.
 */
export function checkRelPath(relPath: string): string {
  if (typeof relPath !== "string" || relPath === "" || relPath.startsWith("/") || path.isAbsolute(relPath)) {
    throw new TypeError(`Cannot read ${JSON.stringify(relPath)}: expected a path relative to the image`);
  }
  for (const seg of relPath.split("/")) {
    if (seg === "" || seg === "." || seg === ".." || /[\\\0]/.test(seg)) {
      throw new TypeError(`Cannot read ${JSON.stringify(relPath)}: path segment ${JSON.stringify(seg)} is not allowed`);
    }
  }
  return relPath;
}

/** Checks readRange() arguments: offsets and lengths are non-negative safe integers. */
export function checkRange(relPath: string, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || !Number.isSafeInteger(offset + length)) {
    throw new RangeError(`Cannot read ${relPath}: bad range offset ${offset} length ${length}`);
  }
}

/** Resolves the option to a positive integer or its default; a bad value is a caller mistake. */
export function positiveInt(value: number | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${what} must be a positive integer, got ${value}`);
  return value;
}
