// `eod pull`: every chunk of every blob of an image made present in the cache ahead of time, through the cache
// core (so each chunk is verified against its table exactly as a kernel miss would be), a bounded number of
// windows at a time. A later mount of the image then fetches no blob byte. Runs in the daemon, the one owner
// of the cache directory: a second process writing the same cache files would race its presence maps.
import { EodError } from "../errors.ts";
import type { CacheCore } from "../cache/core.ts";
import type { PreparedImage } from "../frontend/frontend.ts";
import { Semaphore } from "../util/semaphore.ts";

export interface PullRequest {
  source: string;
  insecureRegistries?: string[];
  /** An index image directory built on this node for an ordinary registry image (`--index-locally`). */
  indexDir?: string;
}

export interface PullStatus {
  source: string;
  blobs: string[];
  totalBytes: number;
  cachedBytes: number;
  /** Bytes received from the remote for this pull (compressed). */
  fetchedBytes: number;
}

export interface PullResult extends PullStatus {
  ms: number;
}

/**
 * Plain bytes and chunks per ensure() call, and calls in flight: four requests of up to 4 MiB keep a slow link
 * busy (a registry takes ~5 ms per request on top of the link's latency: fewer, larger requests).
 */
const WINDOW = 4 << 20;
const WINDOW_CHUNKS = 32;
const SLOTS = 4;

const active = new Set<() => PullStatus>();

/** The pulls running now, for `eod status` and the progress of `eod pull`. */
export function pullsStatus(): PullStatus[] {
  return [...active].map((f) => f());
}

export function pullsRunning(): number {
  return active.size;
}

/**
 * Ensures every chunk of `image`. A blob no mount has open is opened for the pull (fanotify's sparse cache
 * files, the same the frontend opens) and closed after it unless `inUse` says a mount took it meanwhile.
 * With fscache the kernel owns the cache files and creates them when a mount first uses a blob: such a
 * blob must be open already (mounted and read from), else USAGE.
 */
export async function pullImage(core: CacheCore, image: PreparedImage & { source: string }, frontend: string, inUse: (id: string) => boolean): Promise<PullResult> {
  const started = performance.now();
  const opened: string[] = [];
  const fetchedBefore = new Map<string, number>();
  const totalBytes = image.blobs.reduce((n, b) => n + b.table.entries.reduce((m, e) => m + e.plainSize, 0), 0);
  let fetchedDone = 0;
  let cachedDone = 0;
  const done = new Set<string>();
  const status = (): PullStatus => {
    let cachedBytes = cachedDone;
    let fetchedBytes = fetchedDone;
    for (const b of image.blobs) {
      if (done.has(b.id)) continue;
      const s = core.blob(b.id)?.stats();
      if (!s) continue;
      cachedBytes += s.cachedBytes;
      fetchedBytes += s.fetchedBytes - (fetchedBefore.get(b.id) ?? s.fetchedBytes);
    }
    return { source: image.source, blobs: image.blobs.map((b) => b.id), totalBytes, cachedBytes, fetchedBytes };
  };
  active.add(status);
  try {
    for (const b of image.blobs) {
      let blob = core.blob(b.id);
      if (!blob) {
        if (frontend === "fscache") { // the fanotify and fuse frontends serve the sparse files of the core itself
          throw new EodError("USAGE", `Cannot pull blob ${b.id} of ${image.source}: with the ${frontend} frontend the kernel creates a blob's cache file when a mount first reads it; mount the image, read from it, then pull`);
        }
        blob = core.openBlob(b.id, b.table, b.source);
        opened.push(b.id);
      }
      fetchedBefore.set(b.id, blob.stats().fetchedBytes);
      const slots = new Semaphore(SLOTS);
      const entries = b.table.entries;
      const windows: Array<[number, number]> = [];
      for (let i = 0; i < entries.length;) {
        const start = entries[i].plainOffset;
        let end = start + entries[i].plainSize;
        const first = i;
        for (i++; i < entries.length && i - first < WINDOW_CHUNKS && entries[i].plainOffset + entries[i].plainSize - start <= WINDOW; i++) end = entries[i].plainOffset + entries[i].plainSize;
        if (!blob.isPresent(start, end - start)) windows.push([start, end - start]);
      }
      const target = blob;
      let failed: unknown = null; // the first failure stops the windows not started yet
      await Promise.all(windows.map(([offset, length]) => slots.run(async () => {
        if (failed) return;
        await target.ensure(offset, length).catch((err: unknown) => { failed ??= err; });
      })));
      if (failed) throw failed;
      const s = blob.stats();
      cachedDone += s.cachedBytes;
      fetchedDone += s.fetchedBytes - fetchedBefore.get(b.id)!;
      done.add(b.id);
    }
    return { ...status(), ms: Math.round(performance.now() - started) };
  } finally {
    active.delete(status);
    for (const id of opened) if (!inUse(id)) await core.closeBlob(id); // presence maps made durable
  }
}
