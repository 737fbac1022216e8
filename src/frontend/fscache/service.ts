// The fscache frontend (cachefiles on-demand, kernels 5.19–7.1): the kernel owns the cache files and asks
// through /dev/cachefiles. OPEN names a cookie: the image's fsid (its bootstrap, served from the local
// verified copy) or a blob id (its device tag), answered with `copen <id>,<size>` (always the same size
// for the same blob, or the kernel throws the cache away); READ is filled through the cache core into the
// object's anonymous fd and always completed (without data, the reader gets EIO); CLOSE drops the object.
// Mounts: `mount -t erofs none -o fsid=<fsid>,domain_id=<domain>`; images of one domain share blob objects.
// Culling is the cache core's (src/cache/cull.ts): this frontend supplies it the kernel's cache files and how
// to cull one whole (`inuse` + `cull`, ./cull.ts), reports their use, and passes on the kernel's low-space
// signal (POLLOUT on the device); the core culls the least recently used files no mount holds, for the budget
// or until free space is back above `brun`/`frun`.
import fs from "node:fs";
import path from "node:path";
import type { ChunkTable } from "../../image/chunk-table.ts";
import type { BlobCache, BlobSourceRef } from "../../cache/blob-cache.ts";
import type { CacheCore } from "../../cache/core.ts";
import { FscacheStorage } from "../../cache/fscache-storage.ts";
import { writeDirect } from "../../cache/direct-write.ts";
import type { KernelObjects } from "../../cache/object-eviction.ts";
import { dataRanges } from "../../sys/seek.ts";
import type { Log } from "../../util/log.ts";
import { LatencyWindow } from "../../util/latency.ts";
import { sha256Hex } from "../../util/sha256.ts";
import { SysError } from "../../errors.ts";
import {
  CACHEFILES_MSG_MAX_SIZE, cachefilesCommand, cachefilesRead, cachefilesReadComplete, pollCachefiles,
  type CachefilesLimits, type CachefilesPoll,
} from "../../sys/cachefiles.ts";
import { bindCachefiles } from "./device.ts";
import { cacheFiles, DEFAULT_LIMITS, type CacheFile } from "./cull.ts";
import { failFrontend, type Frontend, type MountArgs, type PreparedImage } from "../frontend.ts";
import { CachefilesParseError, encodeCopen, parseMessage, type CachefilesMsg } from "./protocol.ts";

export const DEFAULT_DOMAIN = "eod";
const ENOENT = 2;

export interface FscacheOptions {
  /** Directory for cachefiles' own cache (must be on ext4/xfs: O_TMPFILE, xattrs, sync_fs). */
  cacheDir: string;
  /** Shared domain of every image this daemon mounts (blobs shared by id). */
  domain?: string;
  /** A /dev/cachefiles fd that is already bound (kept by the holder across daemon restarts). */
  inheritedFd?: number;
  /** Send `restore` on the inherited fd: a daemon died with requests taken; make them new again (6.8+). */
  restore?: boolean;
  /** Free-space limits the cache was bound with (default DEFAULT_LIMITS of ./cull.ts). */
  limits?: CachefilesLimits;
}

/** After a low-space signal, the POLLOUT watch is off for this long (doubling up to the max while nothing helps). */
const CULL_PAUSE_MS = 1000;
const CULL_PAUSE_MAX_MS = 60_000;

type FscacheObject =
  | { kind: "bootstrap"; fd: number; path: string; size: number; cookie: string; reads: Set<Promise<void>> }
  | { kind: "blob"; fd: number; blob: BlobCache; storage: FscacheStorage; cookie: string };

interface Expected {
  table: ChunkTable;
  source: BlobSourceRef;
}

export class FscacheFrontend implements Frontend {
  readonly name = "fscache";
  readonly domain: string;
  readonly #log: Log;
  readonly #dev: number;
  #poll: CachefilesPoll | null = null;
  readonly #limits: CachefilesLimits;
  /** The cache core the images are served through (set by the first prepare()): it culls, we report use. */
  #core: CacheCore | null = null;
  /** The kernel's cache files, as the core's culling sees them (whole files, culled with `inuse` + `cull`). */
  readonly #kernelObjects: KernelObjects<CacheFile>;
  #cullTimer: NodeJS.Timeout | null = null;
  #cullPause = CULL_PAUSE_MS;
  readonly #restore: boolean;
  readonly #buf = Buffer.allocUnsafe(CACHEFILES_MSG_MAX_SIZE);
  readonly #bootstraps = new Map<string, { path: string; size: number }>(); // fsid -> bootstrap
  readonly #blobs = new Map<string, Expected>(); // blob id -> how to open it
  readonly #objects = new Map<number, FscacheObject>(); // object_id -> object
  readonly #pending = new Set<Promise<void>>();
  /** Kernel requests and signals; what culling did is in the core's cache stats. */
  readonly #stats = { opens: 0, closes: 0, reads: 0, readBytes: 0, failedReads: 0, inFlight: 0, lowSpaceSignals: 0 };
  readonly #readLatency = new LatencyWindow();
  #closing: Promise<void> | null = null;
  onFatal: ((err: unknown) => void) | null = null;

  constructor(log: Log, opts: FscacheOptions) {
    this.#log = log;
    this.domain = opts.domain ?? DEFAULT_DOMAIN;
    this.#limits = opts.limits ?? DEFAULT_LIMITS;
    const fscacheDir = path.join(opts.cacheDir, "fscache");
    this.#kernelObjects = {
      dir: fscacheDir, runLevels: { blocksPct: this.#limits.brun, filesPct: this.#limits.frun },
      list: () => cacheFiles(fscacheDir),
      openBytes: () => this.#openObjectBytes(),
      cull: (f) => this.#cullFile(f.dir, f.name),
    };
    this.#dev = opts.inheritedFd ?? bindCachefiles(opts.cacheDir, this.#limits);
    this.#restore = opts.inheritedFd !== undefined && opts.restore === true;
  }

  /**
   * Starts taking requests, once the daemon has prepared the images it re-attached to (an OPEN that came
   * before would find no image to serve). After a daemon died, `restore` makes the requests it had taken
   * new again, and the kernel re-sends OPEN for objects whose fds died (Linux 6.8+).
   */
  ready(): void {
    if (this.#poll) return;
    if (this.#restore) {
      cachefilesCommand(this.#dev, "restore");
      this.#log("info", "fscache: took over /dev/cachefiles from a dead daemon, sent restore");
    }
    this.#poll = pollCachefiles(this.#dev, {
      onRequests: () => this.#drain(),
      onLowSpace: () => this.#onLowSpace(),
      onError: (err) => failFrontend(this, this.#log, "polling /dev/cachefiles failed", err, () => this.#poll?.stop()),
    });
    this.#poll.watchLowSpace(true);
  }

  /** Bytes of data in the cache file of each open object, by cookie key (SEEK_DATA/HOLE through the anon fd). */
  #openObjectBytes(): Map<string, number> {
    const out = new Map<string, number>();
    for (const obj of this.#objects.values()) {
      try {
        out.set(obj.cookie, obj.kind === "blob" ? obj.storage.dataBytes() : dataRanges(obj.fd, obj.size).reduce((n, r) => n + r.length, 0));
      } catch { /* object closing: its file shows up in the directory */ }
    }
    return out;
  }

  // POLLOUT: the kernel's CULLING state. It is level-triggered and stays set until the kernel's next space
  // check (a write or a new cache file) finds free space above brun/frun, so the watch is turned off while
  // culling and turned on again by a timer: never a busy loop, even when nothing can be culled.
  #onLowSpace(): void {
    this.#poll?.watchLowSpace(false);
    this.#stats.lowSpaceSignals++;
    let culled = 0;
    try {
      culled = this.#core?.culler.lowOnSpace("the kernel reports the cache low on space") ?? 0;
    } catch (err) {
      this.#log("error", "fscache: culling failed", { err });
    }
    // Something culled: look again soon (the kernel clears the state on its next write). Nothing to cull
    // (space already back above brun, or every file in use), or culling failed: back off.
    this.#cullPause = culled > 0 ? CULL_PAUSE_MS : Math.min(CULL_PAUSE_MAX_MS, this.#cullPause * 2);
    if (this.#cullTimer) clearTimeout(this.#cullTimer);
    this.#cullTimer = setTimeout(() => { this.#cullTimer = null; this.#poll?.watchLowSpace(true); }, this.#cullPause);
    this.#cullTimer.unref();
  }

  /** `inuse` + `cull` of one file, from inside its fan-out directory (the kernel resolves the name in our cwd). */
  #cullFile(dir: string, name: string): "culled" | "busy" | "gone" {
    const cwd = process.cwd();
    try {
      process.chdir(dir);
    } catch {
      return "gone";
    }
    try {
      cachefilesCommand(this.#dev, `inuse ${name}`);
      cachefilesCommand(this.#dev, `cull ${name}`);
      return "culled";
    } catch (err) {
      if (err instanceof SysError && err.errno === "EBUSY") return "busy";
      if (err instanceof SysError && (err.errno === "ESTALE" || err.errno === "ENOENT")) return "gone";
      throw err;
    } finally {
      process.chdir(cwd);
    }
  }

  /** The fsid of an image mounted at `mountPoint`: unique per mount, the same again after a restart. */
  static fsidOf(bootstrapDigest: string, mountPoint: string): string {
    return `${bootstrapDigest.slice(0, 32)}-${sha256Hex(mountPoint).slice(0, 12)}`;
  }

  async prepare(image: PreparedImage, core: CacheCore, mountPoint: string): Promise<MountArgs> {
    const fsid = FscacheFrontend.fsidOf(image.bootstrapDigest, mountPoint);
    if (this.#core === null) {
      this.#core = core;
      core.culler.useObjects(this.#kernelObjects); // whole cache files are what the core culls from now on
    }
    this.#bootstraps.set(fsid, { path: image.bootstrapPath, size: image.bootstrapSize });
    for (const b of image.blobs) this.#blobs.set(b.id, { table: b.table, source: b.source });
    // The blobs' cookies are their device-table tags (our blob ids), so no device= is needed.
    return { source: "none", data: `fsid=${fsid},domain_id=${this.domain}` };
  }

  release(blobIds: readonly string[]): void {
    for (const id of blobIds) this.#blobs.delete(id); // the kernel CLOSEs the objects at umount
  }

  #drain(): void {
    for (;;) {
      let n: number;
      try {
        n = cachefilesRead(this.#dev, this.#buf);
      } catch (err) {
        failFrontend(this, this.#log, "reading /dev/cachefiles failed", err, () => this.#poll?.stop()); // EIO: the cache is dead
        return;
      }
      if (n === 0) return;
      let msg: CachefilesMsg;
      try {
        msg = parseMessage(this.#buf, n);
      } catch (err) {
        this.#log("error", "malformed cachefiles message", { err });
        if (err instanceof CachefilesParseError && err.opcode === 0 && err.msgId != null) {
          this.#copen(err.msgId, -ENOENT);
          if (err.fd != null) this.#closeFd(err.fd);
        } else if (err instanceof CachefilesParseError && err.opcode === 2 && err.msgId != null && err.objectId != null) {
          const obj = this.#objects.get(err.objectId); // complete without data: the reader gets EIO, not a hang
          if (obj) try { cachefilesReadComplete(obj.fd, err.msgId); } catch { /* object gone */ }
        }
        continue;
      }
      if (msg.opcode === "open") this.#open(msg);
      else if (msg.opcode === "read") this.#read(msg);
      else this.#close(msg);
    }
  }

  #open(msg: CachefilesMsg): void {
    this.#stats.opens++;
    const { cookieKey: cookie, fd } = msg.open!;
    this.#core?.culler.objectUsed(cookie);
    const boot = this.#bootstraps.get(cookie);
    const expected = this.#blobs.get(cookie);
    try {
      if (boot) {
        this.#objects.set(msg.objectId, { kind: "bootstrap", fd, path: boot.path, size: boot.size, cookie, reads: new Set() });
        this.#copen(msg.msgId, boot.size);
      } else if (expected) {
        const core = this.#core!; // set by the prepare() that expected this blob
        if (core.blob(cookie)) core.closeBlob(cookie).catch((err: unknown) => this.#log("error", "fscache: closing a re-opened blob failed", { cookie, err })); // a re-OPEN (after CLOSE or restore) brings a new fd
        // copen first: the backing file is set up by it (lseek on the anon fd fails with ENOBUFS before).
        // No READ can come in between: we are still in the synchronous drain loop.
        this.#copen(msg.msgId, expected.table.kernelSize);
        const storage = new FscacheStorage(`fscache object ${msg.objectId} (blob ${cookie})`, fd, expected.table.kernelSize);
        const blob = core.openBlob(cookie, expected.table, expected.source, storage);
        this.#objects.set(msg.objectId, { kind: "blob", fd, blob, storage, cookie });
      } else {
        this.#log("warn", "fscache OPEN of an unknown cookie", { cookie, volume: msg.open!.volumeKey });
        this.#copen(msg.msgId, -ENOENT);
        this.#closeFd(fd);
      }
    } catch (err) {
      this.#log("error", "fscache OPEN failed", { cookie, err });
      this.#copen(msg.msgId, -ENOENT);
      this.#closeFd(fd);
    }
  }

  #read(msg: CachefilesMsg): void {
    this.#stats.reads++;
    const obj = this.#objects.get(msg.objectId);
    const { offset, length } = msg.read!;
    if (!obj) { this.#log("warn", "fscache READ of an unknown object", { object: msg.objectId }); return; }
    this.#core?.culler.objectUsed(obj.cookie);
    const started = performance.now();
    this.#stats.inFlight++;
    const p = (async () => {
      if (obj.kind === "bootstrap") {
        const end = Math.min(obj.size, offset + length);
        const bytes = Buffer.alloc(Math.max(0, end - offset));
        const fh = await fs.promises.open(obj.path, "r");
        try { await fh.read(bytes, 0, bytes.length, offset); } finally { await fh.close(); }
        await writeDirect(obj.fd, bytes, offset);
      } else {
        obj.blob.invalidate(offset, length); // the kernel asks only for holes: chunks we thought present there and that are not
        await obj.blob.ensure(offset, length); // a write refused for lack of space (below bstop: ENOBUFS) culls and retries in the core
      }
      this.#stats.readBytes += length;
    })().catch((err: unknown) => {
      this.#stats.failedReads++;
      this.#log("warn", "fscache READ failed; completing without data (EIO)", { cookie: obj.cookie, offset, length, err });
    }).finally(() => {
      try {
        cachefilesReadComplete(obj.fd, msg.msgId);
      } catch (err) {
        if (!(err instanceof SysError && err.errno === "EBADF")) this.#log("warn", "READ_COMPLETE failed", { err });
      }
      this.#readLatency.add(performance.now() - started);
      this.#stats.inFlight--;
      this.#pending.delete(p);
      if (obj.kind === "bootstrap") obj.reads.delete(p);
    });
    this.#pending.add(p);
    if (obj.kind === "bootstrap") obj.reads.add(p);
  }

  #close(msg: CachefilesMsg): void {
    this.#stats.closes++;
    const obj = this.#objects.get(msg.objectId);
    if (!obj) return;
    this.#core?.culler.objectUsed(obj.cookie);
    this.#objects.delete(msg.objectId);
    if (obj.kind === "blob") {
      const core = this.#core; // (the blob may be released already: umount releases before the kernel's CLOSE)
      // Closes the fd. A blob no longer in the core was closed (fd and all) by a re-OPEN of its cookie: closing
      // its storage again would close a number that another object may have been given since.
      if (core && core.blob(obj.cookie) === obj.blob) core.closeBlob(obj.cookie).catch((err: unknown) => this.#log("error", "fscache: closing a blob failed", { cookie: obj.cookie, err }));
    } else { // after its READs: their writes and READ_COMPLETE go through this fd, whose number a new OPEN could get
      void Promise.allSettled([...obj.reads]).then(() => this.#closeFd(obj.fd));
    }
  }

  #copen(msgId: number, size: number): void {
    try {
      cachefilesCommand(this.#dev, encodeCopen(msgId, size));
    } catch (err) {
      this.#log("error", "copen failed", { msgId, size, err });
    }
  }

  #closeFd(fd: number): void {
    try { fs.closeSync(fd); } catch { /* gone */ }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#poll?.stop();
      this.#poll = null;
      if (this.#cullTimer) clearTimeout(this.#cullTimer);
      await Promise.allSettled([...this.#pending]);
      for (const obj of this.#objects.values()) if (obj.kind === "bootstrap") this.#closeFd(obj.fd);
      this.#objects.clear();
      fs.closeSync(this.#dev); // without a holder, the cache dies with us: mounts then get EIO
    })();
    return this.#closing;
  }

  stats(): Record<string, unknown> {
    return { ...this.#stats, domain: this.domain, limits: this.#limits, readLatencyMs: this.#readLatency.summary() };
  }
}
