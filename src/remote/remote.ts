// The one interface every reader of image bytes uses (`Remote`), its options and defaults, and the small
// checks every implementation shares (paths, ranges, option values). The implementations and openRemote(),
// which picks one from the location, are in other modules (open-remote.ts), so that they can import this
// one without a cycle. Retry is not here: it is a wrapper (retry.ts), as in undici, so each implementation
// only has to make one attempt and say whether the failure is worth repeating.
import path from "node:path";

export interface ReadOptions {
  /** Aborting rejects with `signal.reason` and is never retried. */
  signal?: AbortSignal;
  /**
   * readRange() only, optional for a remote to honour: called as the answer arrives, with the buffer being
   * filled (the same one, until a retry starts a new one) and how many of its bytes are in. Lets a caller use
   * the first bytes of a long range before the rest has arrived.
   */
  onData?: (bytes: Uint8Array, received: number) => void;
  /**
   * readRange() only, optional for a remote to honour: a buffer of at least `length` bytes to read the answer
   * into (what is returned is then its first `length` bytes) instead of a new one, so a caller can recycle
   * its buffers: fresh memory costs a page fault per page at its first touch. The caller leaves it alone
   * until the read settled.
   */
  into?: Uint8Array;
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
  /**
   * Registry sources only: the `--insecure-registry` names ("host[:port]") spoken to without TLS verification
   * (or over plain HTTP); default none. Loopback registries are always plain HTTP.
   */
  insecureRegistries?: string[];
}

export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_CONCURRENCY = 16;
/** readFile() refuses bigger files unless the caller raises the limit (a bootstrap of a huge tree is ~100s of MB). */
export const DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024;

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
