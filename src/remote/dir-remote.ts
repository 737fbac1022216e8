// A local image directory as a Remote: positional reads on cached FileHandles. Errors use the same codes
// as the HTTP remote (a missing file is REMOTE_STATUS 404, a short file REMOTE_IO), so the cache above
// treats both the same way and tests can swap one for the other.
import fs from "node:fs";
import path from "node:path";
import { EodError, RemoteError } from "../errors.ts";
import { checkRange, checkRelPath, DEFAULT_CONCURRENCY, DEFAULT_MAX_FILE_BYTES, positiveInt, type ReadOptions, type Remote, type RemoteOptions, type RemoteStats } from "./remote.ts";
import { Semaphore } from "../util/semaphore.ts";

/** Reads an image directory; one attempt per call (wrap with `withRetry`, or use `openRemote`). */
export class DirRemote implements Remote {
  readonly location: string;
  readonly #root: string;
  readonly #slots: Semaphore;
  // Promises, not handles, so two concurrent first reads of a file open it once.
  readonly #handles = new Map<string, Promise<fs.promises.FileHandle>>();
  readonly #stats: RemoteStats = { requests: 0, bytes: 0, retries: 0, errors: 0 };
  #closed = false;

  constructor(dir: string, opts: RemoteOptions = {}) {
    this.#root = path.resolve(dir);
    this.location = this.#root;
    this.#slots = new Semaphore(positiveInt(opts.concurrency, DEFAULT_CONCURRENCY, "concurrency"));
  }

  async readFile(relPath: string, opts: ReadOptions & { maxBytes?: number } = {}): Promise<Uint8Array> {
    const rel = checkRelPath(relPath);
    const maxBytes = opts.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
    return this.#attempt(rel, opts.signal, false, async (fh, where) => {
      const { size } = await fh.stat();
      if (size > maxBytes) {
        // Not retryable: the file will not shrink; an image with such a file is not one we can use.
        throw new EodError("IMAGE_INVALID", `Cannot read ${where}: ${size} bytes is more than the limit of ${maxBytes}`);
      }
      return readExactly(fh, where, 0, new Uint8Array(size), opts.signal);
    });
  }

  async readRange(relPath: string, offset: number, length: number, opts: ReadOptions = {}): Promise<Uint8Array> {
    const rel = checkRelPath(relPath);
    checkRange(rel, offset, length);
    const into = opts.into && opts.into.length >= length ? opts.into.subarray(0, length) : new Uint8Array(length);
    return this.#attempt(rel, opts.signal, true, (fh, where) => readExactly(fh, where, offset, into, opts.signal));
  }

  async size(relPath: string, opts: ReadOptions = {}): Promise<number> {
    const rel = checkRelPath(relPath);
    return this.#attempt(rel, opts.signal, true, async (fh) => (await fh.stat()).size);
  }

  stats(): RemoteStats {
    return { ...this.#stats };
  }

  async close(): Promise<void> {
    this.#closed = true;
    const handles = [...this.#handles.values()];
    this.#handles.clear();
    await Promise.allSettled(handles.map(async (p) => (await p).close()));
  }

  /**
   * One counted request holding a concurrency slot, with the file's cached handle; `keep` false for whole-file
   * reads (manifest, bootstrap, chunk tables: read once per mount), so only blobs keep a descriptor open.
   */
  async #attempt<T extends Uint8Array | number>(rel: string, signal: AbortSignal | undefined, keep: boolean, read: (fh: fs.promises.FileHandle, where: string) => Promise<T>): Promise<T> {
    const where = path.join(this.#root, rel);
    return this.#slots.run(async () => {
      // An EodError, not a RemoteError: same code for callers, but retry.ts does not repeat it.
      if (this.#closed) throw new EodError("REMOTE_IO", `Cannot read ${where}: remote is closed`);
      this.#stats.requests++;
      try {
        const cached = this.#handles.get(rel);
        const fh = keep || cached ? await this.#handle(rel, where) : await fs.promises.open(where, "r").catch((err: NodeJS.ErrnoException) => { throw openError(where, err); });
        let result: T;
        try {
          result = await read(fh, where);
        } finally {
          if (!keep && !cached) await fh.close();
        }
        if (typeof result !== "number") this.#stats.bytes += result.length;
        return result;
      } catch (err) {
        if (!signal?.aborted) this.#stats.errors++;
        throw err;
      }
    }, signal);
  }

  #handle(rel: string, where: string): Promise<fs.promises.FileHandle> {
    let p = this.#handles.get(rel);
    if (!p) {
      p = fs.promises.open(where, "r").catch((err: NodeJS.ErrnoException) => {
        this.#handles.delete(rel); // a file that appears later can still be read
        throw openError(where, err);
      });
      this.#handles.set(rel, p);
    }
    return p;
  }
}

function openError(where: string, err: NodeJS.ErrnoException): RemoteError {
  if (err.code === "ENOENT" || err.code === "ENOTDIR") {
    return new RemoteError("REMOTE_STATUS", where, `Cannot read ${where}: no such file (404)`, { status: 404, cause: err });
  }
  if (err.code === "EACCES" || err.code === "EPERM") {
    return new RemoteError("REMOTE_STATUS", where, `Cannot read ${where}: permission denied (403)`, { status: 403, cause: err });
  }
  return new RemoteError("REMOTE_IO", where, `Cannot read ${where}: ${err.code ?? err.message}`, { cause: err });
}

/** Fills `buf` with the bytes at `offset`; a file that ends first is REMOTE_IO (it may be being replaced). */
async function readExactly(fh: fs.promises.FileHandle, where: string, offset: number, buf: Uint8Array, signal?: AbortSignal): Promise<Uint8Array> {
  const length = buf.length;
  let done = 0;
  try {
    while (done < length) {
      signal?.throwIfAborted();
      const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) {
        throw new RemoteError("REMOTE_IO", where, `Cannot read ${where} bytes ${offset}-${offset + length - 1}: file ends after ${offset + done} bytes`);
      }
      done += bytesRead;
    }
  } catch (err) {
    if (err instanceof RemoteError || signal?.aborted) throw err;
    const e = err as NodeJS.ErrnoException;
    // EISDIR: a directory is not a file of the image, as the server answers 404 for one.
    if (e.code === "EISDIR") throw new RemoteError("REMOTE_STATUS", where, `Cannot read ${where}: is a directory (404)`, { status: 404, cause: e });
    throw new RemoteError("REMOTE_IO", where, `Cannot read ${where}: ${e.code ?? e.message}`, { cause: e });
  }
  return buf;
}
