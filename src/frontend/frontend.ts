// What the daemon needs from a kernel frontend. Each frontend (fanotify, fscache, fuse) gets an
// image's blobs ready in its own way and says how to mount the image; then it serves the kernel's misses
// through the cache core until the blobs are released.
import type { BlobSourceRef } from "../cache/blob-cache.ts";
import type { CacheCore } from "../cache/core.ts";
import type { ChunkTable } from "../image/chunk-table.ts";
import type { Log } from "../util/log.ts";

/** What `--frontend` takes: `auto` resolves to one of the others on the running kernel (./resolve.ts). */
export const FRONTEND_KINDS = ["auto", "fanotify", "fscache", "fuse"] as const;
export type FrontendKind = (typeof FRONTEND_KINDS)[number];

/** The kernel end a holder (src/daemon/holder.ts) passed on to the daemon it runs, as fd 3. */
export interface HandOver {
  /** A bound /dev/cachefiles fd. */
  cachefilesFd?: number | undefined;
  /** A fanotify pre-content group fd. */
  fanotifyFd?: number | undefined;
  /** A /dev/fuse fd: before the first daemon mounted its FUSE filesystem, a fresh one; after, that connection. */
  fuseFd?: number | undefined;
  /** Why the holder chose this frontend (./resolve.ts), for `eod status`. */
  reason?: string | undefined;
  /** Send cachefiles `restore`: the previous daemon died with requests taken. */
  restore: boolean;
  /** This daemon replaces one that died (or handed over). */
  restarted: boolean;
}

/** An image ready to be served: everything verified, nothing mounted yet. */
export interface PreparedImage {
  /** The bootstrap, local and verified. */
  bootstrapPath: string;
  bootstrapSize: number;
  /** sha256 (hex) of the bootstrap: names the image to the kernel where a name is needed (fscache fsid). */
  bootstrapDigest: string;
  /** Blobs in device order (device k + 1 = blobs[k]). */
  blobs: Array<{ id: string; table: ChunkTable; source: BlobSourceRef }>;
}

export interface MountArgs {
  source: string;
  data: string | null;
}

export interface Frontend {
  readonly name: string;
  /**
   * The files prepare() names are served only for reads made through them (fanotify: pre-content events are
   * not raised for a loop device's reads of its backing file, which would read unfetched zeros): erofs must
   * mount them directly, never through loop devices.
   */
  readonly fileBackedOnly?: boolean;
  /**
   * Gets an image's blobs served (idempotent per blob; images may share blobs) and returns the mount(2)
   * source and data. Called again for each mount a restarted daemon re-attaches to.
   */
  prepare(image: PreparedImage, core: CacheCore, mountPoint: string): Promise<MountArgs>;
  /** Stops serving these blobs (no mount uses them any more). */
  release(blobIds: readonly string[], core: CacheCore): void;
  /** Called once the daemon has re-attached its mounts: from now on the frontend may take requests. */
  ready?(): void;
  /** Stops everything; requests in flight are answered first. */
  close(): Promise<void>;
  /** Counters for `eod status`. */
  stats(): Record<string, unknown>;
  /**
   * Called once if the frontend can no longer serve (polling or reading its kernel fd failed): nothing more
   * will be answered, so the daemon must exit non-zero and let its holder start a fresh one. Unset, the
   * error is thrown as an uncaught exception (the process exits).
   */
  onFatal: ((err: unknown) => void) | null;
}

const failed = new WeakSet<Frontend>();

/**
 * `f` can no longer serve: the first time, stops it (`stop`: its kernel fd's watch), logs why and hands the
 * error to its onFatal (else throws it outside any callback). Later failures of the same frontend are ignored.
 */
export function failFrontend(f: Frontend, log: Log, what: string, err: unknown, stop: () => void): void {
  if (failed.has(f)) return;
  failed.add(f);
  stop();
  log("error", `${what}: the ${f.name} frontend can no longer serve`, { err });
  if (f.onFatal) f.onFatal(err);
  else process.nextTick(() => { throw err; });
}
