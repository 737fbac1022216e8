// ImageMounts through the cache daemon: an image is mounted at <root>/images/<hex of its manifest>/mnt with the
// daemon's POST /mounts, as `eod mount` does (the daemon, started when none runs, lives in its own process
// group with its holder, so the mounts outlive a snapshotter that crashes). The kernel's mount table is the
// only record of what is mounted: a mount found there is reused, whoever made it, but only once a daemon is
// seen serving it. A fanotify mount whose daemon and holder both died has no listener left, and its reads of
// what is not cached yet would return the cache files' holes: zeros. So the cache daemon of the mount's cache
// directory is started (it re-adopts the mounts its state.json records), and a mount it still does not serve
// is replaced when nothing uses it, or refused when containers sit on it.
import fs from "node:fs";
import path from "node:path";
import type { EodConfig } from "../config/config.ts";
import { callDaemon, daemonAlive, socketPathOf } from "../daemon/client.ts";
import { daemonServing } from "../daemon/locate.ts";
import { mountAt } from "../daemon/mountinfo.ts";
import { callStartedDaemon, ensureDaemon } from "../daemon/spawn.ts";
import type { MountRecord } from "../daemon/state.ts";
import { EodError } from "../errors.ts";
import { REGISTRY_SCHEME } from "../remote/registry/image-remote.ts";
import { formatReference, parseReference } from "../remote/registry/reference.ts";
import { umount } from "../sys/mount.ts";
import type { Log } from "../util/log.ts";
import { ImageLocks } from "./image-locks.ts";
import { IMAGES_DIR, imageMountPoint, type ImageForm, type ImageMounts, type LazyImage } from "./image-mounts.ts";
import type { ImageMountCounters } from "./metrics.ts";

export interface DaemonImageMountsOptions {
  /** The snapshotter's root; image mounts go under <root>/images. */
  root: string;
  /** cacheDir, frontend and the daemon's start timeout choose and start the daemon; remote.insecureRegistries go with each mount. */
  config: EodConfig;
  /** Flags for a daemon started here (src/config forwardedFlags: --config and the config keys' flags given). */
  daemonArgs?: string[];
  log?: Log;
}

export class DaemonImageMounts implements ImageMounts {
  readonly counters: ImageMountCounters = { acquires: 0, acquireFailures: 0, releases: 0, releaseFailures: 0, unserved: 0 };
  readonly #opts: DaemonImageMountsOptions;
  /** Acquires and releases of one image run one at a time. */
  readonly #locks = new ImageLocks();
  /** The daemon starts in progress, by cache directory. */
  readonly #starting = new Map<string, Promise<string>>();

  constructor(opts: DaemonImageMountsOptions) {
    this.#opts = opts;
  }

  /** `<root>/images/<hex of the manifest digest>/mnt`. */
  mountPointOf(image: Pick<LazyImage, "manifest">): string {
    return imageMountPoint(this.#opts.root, image.manifest);
  }

  async acquire(image: LazyImage, inUse = false): Promise<string> {
    this.counters.acquires++;
    try {
      return await this.#locks.run(image.manifest, () => this.#mount(image, inUse));
    } catch (err) {
      this.counters.acquireFailures++;
      throw err;
    }
  }

  /**
   * At the snapshotter's start: a cache daemon that runs already (its service) loads its registry client now,
   * not at the first container's mount. None is started for it.
   */
  async warmUp(): Promise<void> {
    const sock = socketPathOf(this.#opts.config.cacheDir);
    if (await daemonAlive(sock)) await callDaemon(sock, "POST", "/resolve", {});
  }

  async warm(image: LazyImage): Promise<void> {
    const { remote } = this.#opts.config;
    const start = () => this.#startDaemon(this.#opts.config.cacheDir);
    await callStartedDaemon(start, "POST", "/resolve", { source: registrySource(image.ref), insecureRegistries: remote.insecureRegistries });
  }

  async lookup(ref: string): Promise<ImageForm> {
    const { remote } = this.#opts.config;
    const start = () => this.#startDaemon(this.#opts.config.cacheDir);
    const { answer } = await callStartedDaemon<{ form?: ImageForm }>(start, "POST", "/resolve", { source: registrySource(ref), insecureRegistries: remote.insecureRegistries, form: true });
    if (answer.form === undefined) throw new EodError("DAEMON", `The cache daemon of ${this.#opts.config.cacheDir} did not say what ${ref} is (an older daemon?)`);
    return answer.form;
  }

  /**
   * snapshotter.index_locally: builds the index of the ordinary image `ref` in the cache directory (every layer
   * downloaded once in full), unless it is there already or the registry has one; true when the image can be
   * mounted through an index now.
   */
  async indexLocally(ref: string): Promise<boolean> {
    const { ensureLocalIndex } = await import("../mkfs/local-index.ts"); // the layer readers and indexers: only when asked
    const { cacheDir, remote } = this.#opts.config;
    const r = await ensureLocalIndex(registrySource(ref), cacheDir, { insecureRegistries: remote.insecureRegistries });
    return !(r.kind === "not-needed" && r.why === "ours");
  }

  async release(image: LazyImage): Promise<void> {
    this.counters.releases++;
    try {
      await this.#locks.run(image.manifest, () => this.#unmount(this.mountPointOf(image)));
    } catch (err) {
      this.counters.releaseFailures++;
      throw err;
    }
  }

  /**
   * Unmounts every image mount under <root>/images that no image of `inUse` or `held` is, then mounts those that
   * are not mounted (after a reboot, or an unmount behind our back) and checks that a daemon serves those that
   * are (a held one no daemon serves is mounted afresh: no container sits on it). Every image is tried; each
   * failure is logged.
   * @returns the images of `inUse` and `held` that are not mounted and served now, with why
   */
  async reattach(inUse: LazyImage[], held: LazyImage[] = []): Promise<Map<string, Error>> {
    const wanted = new Set([...inUse, ...held].map((image) => image.manifest));
    const failures = new Map<string, Error>();
    for (const manifest of this.#imageDirs().map((hex) => `sha256:${hex}`)) {
      if (wanted.has(manifest)) continue;
      await this.release({ manifest, ref: "" }).catch((err: unknown) => { this.#opts.log?.("error", "cannot remove an image mount nothing uses", { manifest, err }); });
    }
    for (const [image, used] of [...inUse.map((i) => [i, true] as const), ...held.map((i) => [i, false] as const)]) {
      try {
        await this.acquire(image, used);
      } catch (err) {
        this.#opts.log?.("error", "cannot re-attach an image mount", { manifest: image.manifest, ref: image.ref, err });
        failures.set(image.manifest, err as Error);
      }
    }
    return failures;
  }

  async #mount(image: LazyImage, inUse: boolean): Promise<string> {
    const started = performance.now();
    const mountPoint = this.mountPointOf(image);
    if (mountAt(mountPoint)) {
      if (await this.#served(mountPoint)) return mountPoint;
      this.counters.unserved++;
      if (inUse) {
        throw new EodError("DAEMON", `Image ${image.ref} is mounted at ${mountPoint}, but no cache daemon serves that mount (its daemon and holder died, and the daemon started again could not re-attach it: see ${path.join(this.#cacheDirOf(mountPoint), "daemon.log")}). Its containers would read zeros where the cache has nothing yet: remove them, and their image is mounted afresh for the next one`);
      }
      this.#opts.log?.("warn", "unmounting an image mount no cache daemon serves (nothing uses it) to mount it again", { mountPoint });
      umount(mountPoint);
    }
    fs.mkdirSync(mountPoint, { recursive: true, mode: 0o700 });
    this.#opts.log?.("info", "image mount requested", { mountPoint, ref: image.ref });
    const { remote } = this.#opts.config;
    const start = () => this.#startDaemon(this.#opts.config.cacheDir);
    const indexDir = image.indexed ? await this.#localIndexOf(image) : undefined;
    const request = { source: registrySource(image.ref), mountPoint, insecureRegistries: remote.insecureRegistries, ...(indexDir ? { indexDir } : {}) };
    const { sock, answer } = await callStartedDaemon<MountRecord>(start, "POST", "/mounts", request);
    // A converted image is named by its manifest.json; an indexed one by its registry manifest, which the
    // daemon's pinned source names (the index it found refers to that manifest).
    const mounted = image.indexed ? /@(sha256:[0-9a-f]{64})$/.exec(answer.source)?.[1] : answer.manifestDigest;
    if (mounted !== image.manifest) {
      await callDaemon(sock, "POST", "/umount", { mountPoint }).catch((err: unknown) => this.#opts.log?.("error", "cannot unmount the wrong image", { mountPoint, err }));
      throw new EodError("DIGEST_MISMATCH", `Cannot mount ${image.ref} for its layers: it is ${image.indexed ? "the index of the image manifest" : "the image whose manifest.json is"} ${mounted}, the layers name ${image.manifest} (the tag now names another image: pull it again)`);
    }
    this.#opts.log?.("info", "image mounted", { mountPoint, ref: image.ref, manifest: image.manifest, ms: Math.round(performance.now() - started) });
    return mountPoint;
  }

  /** The index built on this node for an indexed image (snapshotter.index_locally), when there is one. */
  async #localIndexOf(image: LazyImage): Promise<string | undefined> {
    const { localIndexDir } = await import("../mkfs/local-index.ts");
    const dir = localIndexDir(this.#opts.config.cacheDir, image.manifest);
    return fs.existsSync(path.join(dir, "manifest.json")) ? dir : undefined;
  }

  /**
   * Whether a cache daemon serves the mount: one that has it already, else the daemon of its cache directory,
   * started now if none runs (it re-adopts what its state.json records).
   */
  async #served(mountPoint: string): Promise<boolean> {
    if ((await daemonServing(mountPoint)) !== null) return true;
    const sock = await this.#startDaemon(this.#cacheDirOf(mountPoint));
    const status = await callDaemon<{ mounts?: MountRecord[] }>(sock, "GET", "/status");
    return status.mounts?.some((m) => m.mountPoint === mountPoint) === true;
  }

  /**
   * One start at a time per cache directory: ensureDaemon() calls that overlap (a pull's warm-up and a
   * container's mount) could each spawn a holder before either holder's pid file exists, and leave one running.
   */
  #startDaemon(cacheDir: string): Promise<string> {
    let starting = this.#starting.get(cacheDir);
    if (starting === undefined) {
      const { frontend, daemonStartTimeoutMs } = this.#opts.config;
      starting = ensureDaemon(cacheDir, frontend, { args: this.#opts.daemonArgs, timeoutMs: daemonStartTimeoutMs })
        .finally(() => { this.#starting.delete(cacheDir); });
      this.#starting.set(cacheDir, starting);
    }
    return starting;
  }

  /** The cache directory a fanotify mount's bootstrap is in (<cache-dir>/bootstraps/…), else the configured one. */
  #cacheDirOf(mountPoint: string): string {
    const source = mountAt(mountPoint)?.source;
    return source && path.basename(path.dirname(source)) === "bootstraps" ? path.dirname(path.dirname(source)) : this.#opts.config.cacheDir;
  }

  /** Through the daemon that serves the mount; directly when none does (it died, its holder gave up). */
  async #unmount(mountPoint: string): Promise<void> {
    if (mountAt(mountPoint)) {
      const sock = await daemonServing(mountPoint);
      if (sock !== null) await callDaemon(sock, "POST", "/umount", { mountPoint });
      else umount(mountPoint);
      this.#opts.log?.("info", "image unmounted", { mountPoint });
    }
    for (const dir of [mountPoint, path.dirname(mountPoint)]) {
      try {
        fs.rmdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw new EodError("SYS", `Cannot remove ${dir}: ${(err as NodeJS.ErrnoException).code}`, { cause: err });
      }
    }
  }

  #imagesDir(): string {
    return path.join(this.#opts.root, IMAGES_DIR);
  }

  /** The hex names under <root>/images (others are not ours: left alone). */
  #imageDirs(): string[] {
    try {
      return fs.readdirSync(this.#imagesDir()).filter((name) => /^[0-9a-f]{64}$/.test(name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
  }
}

/** The daemon's source for a registry reference: `docker://host/repo[:tag][@sha256:…]`. */
function registrySource(ref: string): string {
  const bare = ref.startsWith(REGISTRY_SCHEME) ? ref.slice(REGISTRY_SCHEME.length) : ref;
  return REGISTRY_SCHEME + formatReference(parseReference(bare));
}
