// ImageMounts through the cache daemon: an image is mounted at <root>/images/<hex of its manifest>/mnt with the
// daemon's POST /mounts, as `eod mount` does (the daemon, started when none runs, lives in its own process
// group with its holder, so the mounts outlive a snapshotter that crashes). The kernel's mount table is the
// only record of what is mounted: a mount found there is reused, whoever made it.
import fs from "node:fs";
import path from "node:path";
import type { EodConfig } from "../config/config.ts";
import { callDaemon } from "../daemon/client.ts";
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
import { IMAGES_DIR, imageMountPoint, type ImageMounts, type LazyImage } from "./image-mounts.ts";
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
  readonly counters: ImageMountCounters = { acquires: 0, acquireFailures: 0, releases: 0, releaseFailures: 0 };
  readonly #opts: DaemonImageMountsOptions;
  /** Acquires and releases of one image run one at a time. */
  readonly #locks = new ImageLocks();

  constructor(opts: DaemonImageMountsOptions) {
    this.#opts = opts;
  }

  /** `<root>/images/<hex of the manifest digest>/mnt`. */
  mountPointOf(image: Pick<LazyImage, "manifest">): string {
    return imageMountPoint(this.#opts.root, image.manifest);
  }

  async acquire(image: LazyImage): Promise<string> {
    this.counters.acquires++;
    try {
      return await this.#locks.run(image.manifest, () => this.#mount(image));
    } catch (err) {
      this.counters.acquireFailures++;
      throw err;
    }
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
   * Unmounts every image mount under <root>/images that no image of `inUse` is, then mounts those of `inUse` that
   * are not mounted (after a reboot, or an unmount behind our back). Every image is tried.
   * @throws the error of the one image that failed, or an EodError naming each when several did
   */
  async reattach(inUse: LazyImage[]): Promise<void> {
    const wanted = new Set(inUse.map((image) => image.manifest));
    const failures: Error[] = [];
    const attempt = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        this.#opts.log?.("error", what, { err });
        failures.push(err as Error);
      }
    };
    for (const manifest of this.#imageDirs().map((hex) => `sha256:${hex}`)) {
      if (!wanted.has(manifest)) await attempt("cannot remove an image mount nothing uses", () => this.release({ manifest, ref: "" }));
    }
    for (const image of inUse) await attempt("cannot re-attach an image mount", () => this.acquire(image));
    if (failures.length === 1) throw failures[0];
    if (failures.length > 1) {
      throw new EodError((failures[0] as EodError).code ?? "DAEMON", `Cannot re-attach ${failures.length} image mounts:\n${failures.map((e) => e.message).join("\n")}`);
    }
  }

  async #mount(image: LazyImage): Promise<string> {
    const mountPoint = this.mountPointOf(image);
    if (mountAt(mountPoint)) return mountPoint;
    fs.mkdirSync(mountPoint, { recursive: true, mode: 0o700 });
    const { cacheDir, frontend, daemonStartTimeoutMs, remote } = this.#opts.config;
    const start = () => ensureDaemon(cacheDir, frontend, { args: this.#opts.daemonArgs, timeoutMs: daemonStartTimeoutMs });
    const request = { source: registrySource(image.ref), mountPoint, insecureRegistries: remote.insecureRegistries };
    const { sock, answer } = await callStartedDaemon<MountRecord>(start, "POST", "/mounts", request);
    if (answer.manifestDigest !== image.manifest) {
      await callDaemon(sock, "POST", "/umount", { mountPoint }).catch((err: unknown) => this.#opts.log?.("error", "cannot unmount the wrong image", { mountPoint, err }));
      throw new EodError("DIGEST_MISMATCH", `Cannot mount ${image.ref} for its layers: its manifest.json is ${answer.manifestDigest}, the layers name ${image.manifest} (the tag now names another image: pull it again)`);
    }
    this.#opts.log?.("info", "image mounted", { mountPoint, ref: image.ref, manifest: image.manifest });
    return mountPoint;
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
