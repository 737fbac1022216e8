// The lazy image mounts the snapshotter shares between the container snapshots of one image: one mount per
// image (by its manifest.json digest), made and removed through the cache daemon (daemon-image-mounts.ts).
import path from "node:path";
import type { ImageForm } from "../daemon/daemon.ts";
import { EodError } from "../errors.ts";

/** An image mounted lazily, as the snapshotter knows it from its layers' labels. */
export interface LazyImage {
  /**
   * Its identity: for an image converted by eod, "sha256:<hex>" of its manifest.json (the
   * `containerd.io/snapshot/eod.manifest` label); for an indexed one, its registry manifest digest (`cri.manifest-digest`).
   */
  manifest: string;
  /** The registry reference to mount, pinned with `@sha256:…` when containerd passed the manifest digest. */
  ref: string;
  /** An ordinary image mounted through the eod index that refers to it (its layers carry no eod label). */
  indexed?: boolean;
}

/** What a registry image is to eod, as the cache daemon's POST /resolve says. */
export type { ImageForm };

export interface ImageMounts {
  /**
   * The image's mountpoint, mounting it through the cache daemon when it is not mounted. Idempotent; one mount
   * per image. A mount that is there but no daemon serves is mounted afresh, unless `inUse` (snapshots sit on
   * it already): then it is an error, never a mount whose reads would not be answered.
   */
  acquire(image: LazyImage, inUse?: boolean): Promise<string>;
  /**
   * Gets ready to mount the image soon (at its pull), without mounting it or fetching any of its blobs: the
   * cache daemon started, its registry client loaded, the reference resolved (its manifest fetched).
   */
  warm(image: LazyImage): Promise<void>;
  /**
   * What the registry holds for `ref` (pinned `host/repo[:tag]@sha256:…`), asked of the cache daemon (started
   * when none runs), which keeps the image resolved for its mount. Rejects when that cannot be known.
   */
  lookup(ref: string): Promise<ImageForm>;
  /** Unmounts the image (no snapshot uses it any more); no error when it is not mounted. */
  release(image: LazyImage): Promise<void>;
  /**
   * At start-up: unmounts every image mount under the root no image of `inUse` or `held` is, and acquires those
   * of `inUse` (as in use) and of `held` (mounted at a pull, no snapshot on them yet: as not in use). Resolves to
   * the images it could not acquire, by manifest, with why.
   */
  reattach(inUse: LazyImage[], held?: LazyImage[]): Promise<Map<string, Error>>;
}

const MANIFEST_DIGEST = /^sha256:([0-9a-f]{64})$/;

/**
 * `<root>/images/<hex of the manifest digest>/mnt`: where an image is mounted.
 * @throws EodError IMAGE_INVALID for a digest that is not sha256:<64 hex digits> (it names a directory)
 */
export function imageMountPoint(root: string, manifest: string): string {
  const m = MANIFEST_DIGEST.exec(manifest);
  if (!m) throw new EodError("IMAGE_INVALID", `Cannot use ${JSON.stringify(manifest)} as an image's manifest digest: it must be sha256:<64 hex digits>`);
  return path.join(root, IMAGES_DIR, m[1], "mnt");
}

/** The directory of the image mounts under the snapshotter's root. */
export const IMAGES_DIR = "images";
