// Whether an ordinary image is mounted lazily through an eod index: asked of the cache daemon once per image (by
// its registry manifest digest) at the Prepare of its first layer, and the answer kept for its other layers, so
// one pull never mixes unpacked and lazy layers of an image. The pull waits for the answer, so it is bounded:
// a daemon or registry that fails or is slow makes the image ordinary (containerd unpacks it, as before), never a
// failed pull. An answer is kept for a while only, so an index pushed (or deleted) later counts for a later pull;
// an indexed image is in the database with its first lazy layer, which is asked before this. With
// snapshotter.index_locally, an image the daemon says is ordinary is indexed on this node (`buildIndex`: one full
// download, not bounded by the timeout: containerd would download as much); if that fails, it is unpacked.
import type { Log } from "../util/log.ts";
import type { ImageForm, ImageMounts } from "./image-mounts.ts";

/** How long a Prepare waits for the answer: a cold daemon start, a registry client load and two round trips. */
export const LOOKUP_TIMEOUT_MS = 15_000;
/** How long an answer is kept: longer than any one pull of the image. */
export const LOOKUP_MEMORY_MS = 10 * 60_000;

/** The lookups' outcomes since the snapshotter started (its metrics). */
export interface LookupCounters {
  indexed: number;
  ordinary: number;
  /** Lookups that failed or did not answer in time: the image was unpacked. */
  failed: number;
  /** Ordinary images indexed on this node (snapshotter.index_locally), counted in `indexed` too. */
  builtLocally: number;
}

export interface IndexLookupsOptions {
  images: Pick<ImageMounts, "lookup">;
  log: Log;
  timeoutMs?: number;
  memoryMs?: number;
  /** snapshotter.index_locally: indexes an ordinary image on this node; true when it is mountable now. */
  buildIndex?: (ref: string) => Promise<boolean>;
}

export class IndexLookups {
  readonly counters: LookupCounters = { indexed: 0, ordinary: 0, failed: 0, builtLocally: 0 };
  readonly #opts: IndexLookupsOptions;
  /** By manifest digest: the answer (or the lookup in progress), and until when it is kept. */
  readonly #answers = new Map<string, { indexed: Promise<boolean>; until: number }>();

  constructor(opts: IndexLookupsOptions) {
    this.#opts = opts;
  }

  /** Whether the image `ref` (pinned to `manifest`) is indexed; never rejects. */
  indexed(manifest: string, ref: string): Promise<boolean> {
    const now = Date.now();
    const known = this.#answers.get(manifest);
    if (known !== undefined && known.until > now) return known.indexed;
    const entry = { indexed: this.#ask(manifest, ref), until: Infinity };
    this.#answers.set(manifest, entry);
    void entry.indexed.then(() => { entry.until = Date.now() + (this.#opts.memoryMs ?? LOOKUP_MEMORY_MS); });
    return entry.indexed;
  }

  async #ask(manifest: string, ref: string): Promise<boolean> {
    const started = performance.now();
    const timeoutMs = this.#opts.timeoutMs ?? LOOKUP_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    let form: ImageForm;
    try {
      form = await Promise.race([this.#opts.images.lookup(ref), late]);
    } catch (err) {
      this.counters.failed++;
      this.#opts.log("warn", "cannot tell whether an image is indexed: containerd unpacks it", { manifest, ref, err });
      return false;
    } finally {
      clearTimeout(timer);
    }
    let indexed = form === "indexed";
    if (form === "ordinary" && this.#opts.buildIndex) indexed = await this.#buildIndex(manifest, ref);
    this.counters[indexed ? "indexed" : "ordinary"]++;
    this.#opts.log("info", indexed ? "image indexed: its layers are recorded lazily" : "image not indexed: containerd unpacks it",
      { manifest, ref, form, ms: Math.round(performance.now() - started) });
    return indexed;
  }

  async #buildIndex(manifest: string, ref: string): Promise<boolean> {
    const started = performance.now();
    this.#opts.log("info", "indexing an ordinary image on this node (snapshotter.index_locally): its layers are downloaded once", { manifest, ref });
    try {
      const built = await this.#opts.buildIndex!(ref);
      if (built) this.counters.builtLocally++;
      this.#opts.log("info", "image indexed on this node", { manifest, ref, ms: Math.round(performance.now() - started) });
      return built;
    } catch (err) {
      this.#opts.log("warn", "cannot index an image on this node: containerd unpacks it", { manifest, ref, err });
      return false;
    }
  }
}
