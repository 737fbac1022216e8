// A registry repository as a Remote, so the cache core reads an image's blobs from a registry exactly as it
// reads them from a directory or an HTTP server. The registry knows blobs by digest only: the caller says
// which digest each of our image files is (`files`, from the OCI manifest that carries the image), and a
// path that is itself a digest ("sha256:<hex>", or OCI-layout style "blobs/sha256/<hex>") needs no entry.
// readFile() verifies the whole blob against its digest; readRange() does not (a range is not the whole
// blob): the cache core verifies every chunk it fetches against the chunk table. The client retries, so
// this Remote is not wrapped in withRetry.
import { RemoteError } from "../../errors.ts";
import { checkRange, checkRelPath, DEFAULT_CONCURRENCY, DEFAULT_MAX_FILE_BYTES, positiveInt, type ReadOptions, type Remote, type RemoteStats } from "../remote.ts";
import { Semaphore } from "../../util/semaphore.ts";
import type { RegistryClient, Repo } from "./client.ts";
import { checkDigest } from "./digest.ts";
import type { Descriptor } from "./manifest.ts";

export interface RegistryRemoteOptions {
  /** Image file path → blob digest or descriptor ("bootstrap.erofs" → "sha256:…"). */
  files?: Record<string, string | Descriptor>;
  /** Max requests in flight through this remote, default 16. */
  concurrency?: number;
  /** Close the client with the remote (when the remote is its only user). */
  ownsClient?: boolean;
}

export class RegistryRemote implements Remote {
  readonly location: string;
  readonly #client: RegistryClient;
  readonly #repo: Repo;
  readonly #files: Map<string, { digest: string; size?: number }>;
  readonly #slots: Semaphore;
  readonly #owns: boolean;
  readonly #stats: RemoteStats = { requests: 0, bytes: 0, retries: 0, errors: 0 };

  constructor(client: RegistryClient, repo: Repo, opts: RegistryRemoteOptions = {}) {
    this.#client = client;
    this.#repo = { registry: repo.registry, repository: repo.repository };
    this.location = `${repo.registry}/${repo.repository}`;
    this.#files = new Map(Object.entries(opts.files ?? {}).map(([rel, d]) => [checkRelPath(rel), typeof d === "string" ? { digest: checkDigest(d) } : { digest: checkDigest(d.digest), size: d.size }]));
    this.#slots = new Semaphore(positiveInt(opts.concurrency, DEFAULT_CONCURRENCY, "concurrency"));
    this.#owns = opts.ownsClient ?? false;
  }

  async readFile(relPath: string, opts: ReadOptions & { maxBytes?: number } = {}): Promise<Uint8Array> {
    const blob = this.#blob(relPath);
    const desc = blob.size !== undefined ? { mediaType: "", digest: blob.digest, size: blob.size } : blob.digest;
    return this.#count(() => this.#client.fetchBlob(this.#repo, desc, { signal: opts.signal, maxBytes: opts.maxBytes ?? DEFAULT_MAX_FILE_BYTES }), opts.signal);
  }

  async readRange(relPath: string, offset: number, length: number, opts: ReadOptions = {}): Promise<Uint8Array> {
    const blob = this.#blob(relPath);
    checkRange(relPath, offset, length);
    return this.#count(() => this.#client.readBlobRange(this.#repo, blob.digest, offset, length, opts), opts.signal);
  }

  async size(relPath: string, opts: ReadOptions = {}): Promise<number> {
    const blob = this.#blob(relPath);
    if (blob.size !== undefined) return blob.size;
    return this.#count(async () => {
      const n = await this.#client.blobSize(this.#repo, blob.digest, opts);
      if (n === undefined) throw new RemoteError("REMOTE_STATUS", `${this.location}@${blob.digest}`, `blob ${blob.digest} of ${relPath} not found in ${this.location} (404)`, { status: 404 });
      return n;
    }, opts.signal);
  }

  stats(): RemoteStats {
    return { ...this.#stats };
  }

  async close(): Promise<void> {
    if (this.#owns) await this.#client.close();
  }

  #blob(relPath: string): { digest: string; size?: number } {
    const rel = checkRelPath(relPath);
    const known = this.#files.get(rel);
    if (known) return known;
    const m = /^(?:blobs\/(sha256|sha512)\/([a-f0-9]+)|(sha256|sha512):([a-f0-9]+))$/.exec(rel);
    if (m) return { digest: checkDigest(`${m[1] ?? m[3]}:${m[2] ?? m[4]}`) };
    // Same answer as a directory or HTTP remote gives for a file the image does not have.
    throw new RemoteError("REMOTE_STATUS", `${this.location}/${rel}`, `Cannot read ${rel} from ${this.location}: no blob is mapped to this path (404)`, { status: 404 });
  }

  /** One counted call holding a slot; bytes and retries from the client's counters around it. */
  async #count<T extends Uint8Array | number>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.#slots.run(async () => {
      const before = this.#client.stats();
      this.#stats.requests++;
      try {
        const r = await fn();
        if (typeof r !== "number") this.#stats.bytes += r.length;
        return r;
      } catch (err) {
        if (!signal?.aborted) this.#stats.errors++;
        throw err;
      } finally {
        this.#stats.retries += this.#client.stats().retries - before.retries; // approximate under concurrency
      }
    }, signal);
  }
}
