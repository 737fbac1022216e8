// An image served over HTTP(S) as a Remote: one undici Pool per origin (keep-alive, `connections` =
// concurrency), one attempt per call. Remotes of one server share its pool and its request slots: a daemon
// serving 100 images of one server keeps at most `concurrency` connections to it, not 100 pools (hundreds
// of sockets and their memory: docs/benchmarks.md, bench/many-blobs.ts). Every answer is checked before it is
// believed (range answers by range-reader.ts, the reader the registry uses too), and the body must have
// exactly the length asked for. Undici's headersTimeout/bodyTimeout catch a silent socket; our own deadline
// covers the whole request, so a body that trickles in forever also times out.
import type { Pool } from "undici";
import { EodError, RemoteError } from "../errors.ts";
import { contentLength, discard, readWholeBody, statusError, toRemoteError, type Body, type Headers } from "./answer.ts";
import { readRangeAnswer } from "./range-reader.ts";
import { checkRange, checkRelPath, DEFAULT_CONCURRENCY, DEFAULT_MAX_FILE_BYTES, DEFAULT_TIMEOUT_MS, positiveInt, type ReadOptions, type Remote, type RemoteOptions, type RemoteStats } from "./remote.ts";
import { Semaphore } from "../util/semaphore.ts";

/**
 * Pools shared by the remotes of one origin with the same options, counted so the last close() destroys it.
 * undici is loaded when the first HttpRemote is made, not with this module: the daemon imports it for every
 * image, and one read from a directory should not pay for loading undici; loading starts before the first
 * request (the manifest), so a kernel miss does not wait for it.
 */
const pools = new Map<string, { pool: Promise<Pool>; slots: Semaphore; refs: number }>();

/** Reads an image from a base URL; one attempt per call (wrap with `withRetry`, or use `openRemote`). */
export class HttpRemote implements Remote {
  readonly location: string;
  readonly #base: URL;
  readonly #pool: Promise<Pool>;
  readonly #slots: Semaphore;
  readonly #poolKey: string;
  readonly #timeoutMs: number;
  readonly #stats: RemoteStats = { requests: 0, bytes: 0, retries: 0, errors: 0 };
  #closed = false;

  constructor(baseUrl: string, opts: RemoteOptions = {}) {
    const base = new URL(baseUrl);
    if (base.protocol !== "http:" && base.protocol !== "https:") throw new TypeError(`Cannot open remote ${baseUrl}: not an http(s) URL`);
    if (base.search || base.hash) throw new TypeError(`Cannot open remote ${baseUrl}: a base URL has no query or fragment`);
    // "http://host/images/app" means the directory app/, not its sibling files.
    if (!base.pathname.endsWith("/")) base.pathname += "/";
    this.#base = base;
    this.location = base.href;
    this.#timeoutMs = positiveInt(opts.timeoutMs, DEFAULT_TIMEOUT_MS, "timeoutMs");
    const concurrency = positiveInt(opts.concurrency, DEFAULT_CONCURRENCY, "concurrency");
    this.#poolKey = `${base.origin}|${concurrency}|${this.#timeoutMs}`;
    let shared = pools.get(this.#poolKey);
    if (!shared) {
      shared = {
        pool: import("undici").then(({ Pool }) => new Pool(base.origin, {
          connections: concurrency,
          pipelining: 1, // one request per connection at a time: a stalled answer cannot hold up others behind it
          connectTimeout: this.#timeoutMs,
          headersTimeout: this.#timeoutMs,
          bodyTimeout: this.#timeoutMs, // undici: longest silence between body chunks
        })),
        slots: new Semaphore(concurrency), // the deadline starts once a slot is ours, so the pool never queues
        refs: 0,
      };
      pools.set(this.#poolKey, shared);
    }
    shared.refs++;
    this.#pool = shared.pool;
    this.#slots = shared.slots;
  }

  async readFile(relPath: string, opts: ReadOptions & { maxBytes?: number } = {}): Promise<Uint8Array> {
    const url = this.#url(relPath);
    const maxBytes = opts.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
    return this.#attempt(`GET ${url}`, url, opts.signal, {}, async (status, headers, body, what) => {
      if (status !== 200) throw statusError(what, url, status, headers);
      return readWholeBody({ status, headers, body, url }, what, maxBytes);
    });
  }

  async readRange(relPath: string, offset: number, length: number, opts: ReadOptions = {}): Promise<Uint8Array> {
    const url = this.#url(relPath);
    checkRange(relPath, offset, length);
    if (length === 0) return new Uint8Array(0); // "bytes=a-(a-1)" is not a valid range
    const last = offset + length - 1;
    const what = `GET ${url} (bytes ${offset}-${last})`;
    return this.#attempt(what, url, opts.signal, { range: `bytes=${offset}-${last}` }, async (status, headers, body) => {
      if (status !== 206 && status !== 200) throw statusError(what, url, status, headers);
      return readRangeAnswer({ status, headers, body, url }, what, offset, length, opts.onData);
    });
  }

  async size(relPath: string, opts: ReadOptions = {}): Promise<number> {
    const url = this.#url(relPath);
    return this.#attempt(`HEAD ${url}`, url, opts.signal, {}, async (status, headers, body, what) => {
      body.dump().catch(() => {});
      if (status !== 200) throw statusError(what, url, status, headers);
      const n = contentLength(headers);
      if (n === undefined) throw new RemoteError("REMOTE_IO", url, `${what}: no Content-Length`);
      return n;
    }, "HEAD");
  }

  stats(): RemoteStats {
    return { ...this.#stats };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const shared = pools.get(this.#poolKey);
    if (!shared || shared.pool !== this.#pool || --shared.refs > 0) return;
    pools.delete(this.#poolKey);
    // destroy(), not close(): close() would wait for a stalled request to time out first.
    await (await this.#pool).destroy();
  }

  #url(relPath: string): string {
    const rel = checkRelPath(relPath).split("/").map(encodeURIComponent).join("/");
    return new URL(rel, this.#base).href;
  }

  /**
   * One counted request holding a concurrency slot. The deadline starts once the slot is ours: waiting in
   * our queue is not the server's fault. `check` validates the answer and reads the body; whatever it
   * throws, the body is discarded so the connection goes back to the pool or is closed.
   */
  async #attempt<T extends Uint8Array | number>(
    what: string, url: string, signal: AbortSignal | undefined, headers: Record<string, string>,
    check: (status: number, headers: Headers, body: Body, what: string) => Promise<T>,
    method: "GET" | "HEAD" = "GET",
  ): Promise<T> {
    return this.#slots.run(async () => {
      const pool = await this.#pool;
      // An EodError, not a RemoteError: same code for callers, but retry.ts does not repeat it.
      if (this.#closed) throw new EodError("REMOTE_IO", `${what}: remote is closed`);
      signal?.throwIfAborted();
      this.#stats.requests++;
      const ac = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => { timedOut = true; ac.abort(new Error("deadline")); }, this.#timeoutMs);
      const onAbort = () => ac.abort(signal!.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      let body: Body | undefined;
      try {
        const res = await pool.request({
          path: new URL(url).pathname, method, signal: ac.signal,
          headers: { ...headers, "accept-encoding": "identity" }, // lengths are of the stored bytes
        });
        body = res.body;
        const result = await check(res.statusCode, res.headers, res.body, what);
        if (typeof result !== "number") this.#stats.bytes += result.length;
        return result;
      } catch (err) {
        // After a status error the body is small and wanted by nobody: drain it (bounded) so the
        // connection stays alive for the retry; anything else may be half-read or stalled, so close it.
        if (err instanceof RemoteError && err.code === "REMOTE_STATUS" && !ac.signal.aborted) body?.dump({ limit: 64 * 1024 }).catch(() => {});
        else if (body) discard(body);
        if (signal?.aborted) throw signal.reason; // the caller gave up: not a remote failure
        this.#stats.errors++;
        throw toRemoteError(err, what, url, timedOut, this.#timeoutMs);
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      }
    }, signal);
  }
}
