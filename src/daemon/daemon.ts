// The cache daemon: owns the cache core, the remotes, one kernel frontend and the mount table of one cache
// directory. Lifecycle: start (re-attach to mounts recorded in state.json that are still mounted) → serve
// → exit once the last mount is gone (or on shutdown, leaving mounts for a restarted daemon to re-attach).
import fs from "node:fs";
import path from "node:path";
import type http from "node:http";
import { CacheCore, type CacheOptions } from "../cache/core.ts";
import { EodError } from "../errors.ts";
import { openRemote } from "../remote/open-remote.ts";
import type { Remote, RemoteOptions } from "../remote/remote.ts";
import { MNT_DETACH, umount } from "../sys/mount.ts";
import type { Frontend, PreparedImage } from "../frontend/frontend.ts";
import { socketPathOf } from "./client.ts";
import { RawReply, startControl } from "./control.ts";
import { DaemonMetrics, type MetricsInput } from "./metrics.ts";
import { METRICS_CONTENT_TYPE } from "./metrics-http.ts";
import { isRegistrySource, type RegistryImageOptions } from "../remote/registry/image-remote.ts";
import { pullImage, pullsRunning, pullsStatus, type PullRequest, type PullResult } from "./pull.ts";
import { ErofsReader, bufferSource } from "../erofs/reader.ts";
import { cachedImage, loadImage, type LoadedImage } from "./images.ts";
import { fileExtentsOf } from "../image/file-extents.ts";
import { fillInBackground } from "./background.ts";
import { planPrefetch } from "./prefetch.ts";
import { TraceRecorder } from "./trace.ts";
import type { Trace } from "../image/prefetch.ts";
import type { Log } from "../util/log.ts";
import { mountAt, mounts } from "./mountinfo.ts";
import { stillMounted, watchWorld, type WorldWatch } from "./world.ts";
import { loadState, saveState, type DaemonState, type MountRecord } from "./state.ts";
import { ErofsMounter } from "./erofs-mount.ts";
import type { LoopDeviceMode } from "../config/keys.ts";

export interface DaemonOptions {
  cacheDir: string;
  frontend: Frontend;
  log: Log;
  cache?: CacheOptions;
  remote?: RemoteOptions;
  /** Called once the daemon has nothing left to serve (last umount, or shutdown). */
  onIdle?: () => void;
  /** Why this frontend was chosen (src/frontend/resolve.ts), for status. */
  frontendReason?: string;
  /** config mount.loop_devices (default auto: only where the kernel cannot mount files). */
  loopDevices?: LoopDeviceMode;
}

export interface MountRequest {
  source: string;
  mountPoint: string;
  /** `--insecure-registry` names for a registry source (added to the daemon's config remote.insecure_registries). */
  insecureRegistries?: string[];
  /** Fill every blob in the background after the prefetch list, at this many bytes/s (0: no cap). */
  backgroundFetch?: number;
  /** An index image directory built on this node for the ordinary registry image `source` names (`--index-locally`). */
  indexDir?: string;
}

export interface ResolveRequest extends Pick<MountRequest, "source" | "insecureRegistries"> {
  /** Answer what the image is (`form`), "ordinary" when it is neither eod's nor indexed, instead of an error. */
  form?: boolean;
}

/**
 * What a registry image is to eod: made by `eod convert`, an ordinary image read through the eod index that
 * refers to it (both mountable), or an ordinary image with no index.
 */
export type ImageForm = "converted" | "indexed" | "ordinary";

export class Daemon {
  readonly core: CacheCore;
  /** Prometheus counters (GET /metrics): remotes are timed through it. */
  readonly metrics = new DaemonMetrics();
  readonly #opts: DaemonOptions;
  readonly #remotes = new Map<string, Remote>();
  /** The remotes of #remotes as opened, unwrapped: a registry image's says where its index came from. */
  readonly #opened = new Map<string, Remote>();
  readonly #traces = new Map<string, TraceRecorder>();
  /** Background fills by mount point, stopped by umount. */
  readonly #fills = new Map<string, AbortController>();
  readonly #erofs: ErofsMounter;
  #state: DaemonState;
  #control: http.Server | null = null;
  #world: WorldWatch | null = null;
  /** The cache directory was removed or renamed: stopping cannot flush into it. */
  #cacheDirGone = false;
  #busy: Promise<unknown> = Promise.resolve(); // mount/umount run one at a time
  #stopping: Promise<void> | null = null;
  /** Idle: stopping soon (see #idle). */
  #closing = false;

  constructor(opts: DaemonOptions) {
    this.#opts = opts;
    fs.mkdirSync(opts.cacheDir, { recursive: true, mode: 0o700 });
    this.core = new CacheCore(opts.cacheDir, opts.cache);
    this.core.onEvent = (level, msg, fields) => opts.log(level, msg, fields);
    this.#state = loadState(opts.cacheDir);
    this.#erofs = new ErofsMounter(opts.loopDevices ?? "auto", opts.log, { loopsServed: !opts.frontend.fileBackedOnly, frontend: opts.frontend.name });
  }

  get mounts(): readonly MountRecord[] {
    return this.#state.mounts;
  }

  /** Re-attaches to recorded mounts that still exist, then listens on the control socket. */
  async start(): Promise<void> {
    const kept: MountRecord[] = [];
    const table = mounts();
    for (const m of this.#state.mounts) {
      if (!stillMounted(m, table)) {
        this.#opts.log("info", "forgetting a mount that is gone", { mountPoint: m.mountPoint });
        continue;
      }
      try {
        await this.#reattach(m);
        kept.push(m);
        if (m.backgroundFetch !== undefined) this.#fillInBackground(m, Promise.resolve()); // resumes where the cache is
        this.#opts.log("info", "re-attached", { mountPoint: m.mountPoint, source: m.source });
      } catch (err) {
        this.#opts.log("error", "cannot re-attach", { mountPoint: m.mountPoint, err });
      }
    }
    this.#state.mounts = kept;
    saveState(this.#opts.cacheDir, this.#state);
    this.#opts.frontend.ready?.();
    this.#control = await startControl(socketPathOf(this.#opts.cacheDir), {
      "GET /status": async () => this.status(),
      "GET /metrics": async () => new RawReply(METRICS_CONTENT_TYPE, this.metricsText()),
      "POST /mounts": async (b) => this.#serial(async () => {
        try {
          return await this.mount(b as MountRequest);
        } catch (err) {
          if (this.#state.mounts.length === 0) this.#idle(); // nothing to serve
          throw err;
        }
      }),
      "POST /umount": async (b) => this.#serial(() => this.umount((b as { mountPoint: string }).mountPoint)),
      "POST /shutdown": async () => { this.#idle(); return {}; },
      "POST /traces": async (b) => this.startTrace((b as { mountPoint: string }).mountPoint),
      "POST /traces/stop": async (b) => this.stopTrace((b as { mountPoint: string }).mountPoint),
      "POST /cull": async (b) => this.#serial(async () => this.cull((b as { blobId: string }).blobId)),
      "POST /pull": async (b) => this.pull(b as PullRequest),
      "POST /resolve": async (b) => this.resolve(b as Partial<ResolveRequest>),
    });
    const serially = (what: string, fn: () => void) => () => {
      this.#serial(async () => fn()).catch((err: unknown) => this.#opts.log("error", what, { err }));
    };
    this.#world = watchWorld(this.#opts.cacheDir, {
      onMountsChanged: serially("cannot follow a change of the mount table", () => this.#forgetVanished()),
      onCacheDirGone: serially("cannot leave a cache directory that is gone", () => this.#leaveGoneCacheDir()),
    }, this.#opts.log);
  }

  /**
   * Nothing left to serve: from now on a mount or pull is refused (the daemon is going; its client starts a
   * new one), so none can land on a daemon that stops under it.
   */
  #idle(): void {
    this.#closing = true;
    setImmediate(() => this.#opts.onIdle?.());
  }

  #refuseIfClosing(): void {
    if (this.#closing) throw new EodError("DAEMON", `The daemon of ${this.#opts.cacheDir} is stopping (nothing was mounted any more); start it again`);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#busy.then(fn, fn);
    this.#busy = run.catch(() => {});
    return run;
  }

  #remote(source: string, indexDir?: string): Remote {
    let r = this.#remotes.get(source);
    if (!r) {
      const opts: RegistryImageOptions = { ...this.#opts.remote, ...(indexDir !== undefined ? { indexDir } : {}) };
      const raw = openRemote(source, opts);
      r = this.metrics.timed(raw); // retries transient failures itself
      this.#remotes.set(source, r);
      this.#opened.set(source, raw);
    }
    return r;
  }

  async #reattach(m: MountRecord): Promise<void> {
    const image = cachedImage(this.#opts.cacheDir, m.bootstrapPath, m.blobs, this.#remote(m.source, m.indexDir));
    await this.#opts.frontend.prepare(image, this.core, m.mountPoint);
    this.#tellFiles(image, m.mountPoint);
  }

  /**
   * Gives the cache core where the files lie in blobs whose chunk tables cannot show it (a layer's seek
   * index: pieces cut by size), so that a miss in a small file fetches all of it as for our own images. In the
   * background, after the mount (a large tree takes a while to walk); misses before it are fetched by piece.
   */
  #tellFiles(image: PreparedImage, mountPoint: string): void {
    const blobs = image.blobs.map((b) => (b.table.version === 2 ? this.core.blob(b.id) : undefined));
    if (!blobs.some((b) => b && !b.knowsFiles)) return;
    const started = performance.now();
    fileExtentsOf(new ErofsReader(bufferSource(fs.readFileSync(image.bootstrapPath))), blobs.length)
      .then((files) => {
        files.forEach((f, k) => blobs[k]?.setFiles(f));
        this.#opts.log("info", "file extents known", { mountPoint, ms: Math.round(performance.now() - started) });
      })
      .catch((err: unknown) => this.#opts.log("warn", "cannot read the file extents of the bootstrap: misses are fetched by piece", { mountPoint, err }));
  }

  /** Fetches the image's prefetch list in the background (never fails the mount: misses fetch on demand). */
  async #prefetch(image: LoadedImage, mountPoint: string): Promise<void> {
    const started = performance.now();
    try {
      const reader = new ErofsReader(bufferSource(fs.readFileSync(image.bootstrapPath)));
      const plan = planPrefetch(reader, image.blobs.map((b) => b.table), image.manifest.prefetch!);
      await Promise.all(image.blobs.map((b, k) => this.core.prefetch(b.id, plan.chunks[k])));
      const chunks = plan.chunks.reduce((n, c) => n + c.length, 0);
      this.#opts.log("info", "prefetched", { mountPoint, files: plan.files, chunks, skipped: plan.skipped.length, ms: Math.round(performance.now() - started) });
      if (plan.skipped.length) this.#opts.log("warn", "prefetch entries not in the image", { mountPoint, paths: plan.skipped.slice(0, 20) });
    } catch (err) {
      this.#opts.log("warn", "prefetch failed", { mountPoint, err });
    }
  }

  /**
   * The source as recorded: a path made absolute, a URL as is, a registry reference resolved now to its
   * manifest digest (`docker://host/repo:tag@sha256:…`), so this mount and a restarted daemon stay on the
   * image the tag named at mount time. The resolved remote is kept under that name.
   */
  async #source(source: string, insecureRegistries?: string[], indexDir?: string): Promise<string> {
    if (/^https?:\/\//.test(source)) return source;
    if (!isRegistrySource(source)) return path.resolve(source);
    // Keys of registry remotes are pinned sources (`…@sha256:…`): one asked for again needs no new resolve.
    if (this.#remotes.has(source)) return source;
    if (insecureRegistries !== undefined && !(Array.isArray(insecureRegistries) && insecureRegistries.every((h) => typeof h === "string"))) {
      throw new EodError("USAGE", "insecureRegistries must be a list of host[:port] names");
    }
    if (indexDir !== undefined && (typeof indexDir !== "string" || !path.isAbsolute(indexDir))) throw new EodError("USAGE", "indexDir must be an absolute path");
    const configured = this.#opts.remote?.insecureRegistries ?? [];
    const opts: RegistryImageOptions = { ...this.#opts.remote, insecureRegistries: [...(insecureRegistries ?? []), ...configured], ...(indexDir !== undefined ? { indexDir } : {}) };
    const raw = openRemote(source, opts);
    const r = this.metrics.timed(raw);
    let pinned: string;
    try {
      pinned = await r.pin!();
    } catch (err) {
      await r.close();
      throw err;
    }
    if (this.#remotes.has(pinned)) {
      await r.close();
    } else {
      this.#remotes.set(pinned, r);
      this.#opened.set(pinned, raw);
    }
    return pinned;
  }

  /**
   * A registry source resolved ahead of its mount (the snapshotter asks at the image's pull): the registry client
   * is loaded and the remote kept under its pinned name, so the mount that follows starts with manifest.json.
   * Fetches the reference's manifest only, no blob. Without a source (the snapshotter's start), only loads the
   * registry client: a daemon that serves registry images does not pay that on a container's start.
   */
  async resolve(req: Partial<ResolveRequest>): Promise<{ source?: string; form?: ImageForm }> {
    if (req?.source === undefined) {
      await loadRegistryClient();
      return {};
    }
    if (typeof req.source !== "string" || !isRegistrySource(req.source)) throw new EodError("USAGE", "resolve needs a docker:// source");
    this.#refuseIfClosing();
    let source: string;
    try {
      source = await this.#source(req.source, req.insecureRegistries);
    } catch (err) {
      // The image resolved, but it is not eod's and no index refers to it (the registry client found none).
      if (req.form === true && (err as EodError).code === "REGISTRY_NOT_FOUND") return { form: "ordinary" };
      throw err;
    }
    // A registry image's remote, resolved (a re-attached mount's may not be yet), says where an ordinary image's
    // index came from; null for a converted image.
    const raw = this.#opened.get(source);
    await raw?.pin?.();
    return { source, form: (raw as { index?: unknown } | undefined)?.index ? "indexed" : "converted" };
  }

  /** eod pull: every chunk of the image into the cache (see pull.ts); the daemon idles out after if nothing is mounted. */
  async pull(req: PullRequest): Promise<PullResult> {
    if (!req || typeof req.source !== "string") throw new EodError("USAGE", "pull needs a source");
    this.#refuseIfClosing();
    try {
      const source = await this.#source(req.source, req.insecureRegistries, req.indexDir);
      const image = await this.#serial(() => loadImage(this.#remote(source, req.indexDir), this.#opts.cacheDir));
      const r = await pullImage(this.core, { ...image, source }, this.#opts.frontend.name, (id) => this.#inUse(id));
      this.#opts.log("info", "pulled", { source, blobs: r.blobs.length, fetchedBytes: r.fetchedBytes, ms: r.ms });
      return r;
    } finally {
      this.stopIfIdle();
    }
  }

  /** Calls onIdle after any mount in progress if nothing is mounted and no pull runs. */
  stopIfIdle(): void {
    void this.#serial(async () => { if (this.#state.mounts.length === 0 && pullsRunning() === 0) this.#idle(); });
  }

  /** Starts `--background-fetch` of a mount's blobs once `after` (its prefetch list) is done. */
  #fillInBackground(record: MountRecord, after: Promise<void>): void {
    const stop = new AbortController();
    this.#fills.set(record.mountPoint, stop);
    const { mountPoint } = record;
    after.then(async () => {
      const started = performance.now();
      const bytes = await fillInBackground(this.core, record.blobs.map((b) => b.id), record.backgroundFetch ?? 0, stop.signal);
      if (!stop.signal.aborted) this.#opts.log("info", "background fetch done", { mountPoint, bytes, ms: Math.round(performance.now() - started) });
    }).catch((err: unknown) => this.#opts.log("warn", "background fetch failed", { mountPoint, err }))
      .finally(() => { if (this.#fills.get(mountPoint) === stop) this.#fills.delete(mountPoint); });
  }

  async mount(req: MountRequest): Promise<MountRecord> {
    if (!req || typeof req.source !== "string" || typeof req.mountPoint !== "string") throw new EodError("USAGE", "mount needs a source and a mount point");
    this.#refuseIfClosing();
    const mountPoint = path.resolve(req.mountPoint);
    const source = await this.#source(req.source, req.insecureRegistries, req.indexDir);
    let st: fs.Stats;
    try { st = fs.statSync(mountPoint); } catch { throw new EodError("USAGE", `Mount point ${mountPoint} does not exist`); }
    if (!st.isDirectory()) throw new EodError("USAGE", `Mount point ${mountPoint} is not a directory`);
    if (mountAt(mountPoint)) throw new EodError("USAGE", `${mountPoint} is already a mount point`);
    const started = performance.now();
    const image = await loadImage(this.#remote(source, req.indexDir), this.#opts.cacheDir);
    const fresh = image.blobs.map((b) => b.id).filter((id) => !this.#inUse(id));
    let mounted;
    try {
      mounted = await this.#erofs.mount(await this.#opts.frontend.prepare(image, this.core, mountPoint), mountPoint);
    } catch (err) {
      this.#opts.frontend.release(fresh, this.core);
      throw new EodError((err as EodError).code ?? "SYS", `Cannot mount ${image.bootstrapPath} on ${mountPoint}: ${(err as Error).message}`, { cause: err });
    }
    const record: MountRecord = {
      mountPoint, source, frontend: this.#opts.frontend.name, bootstrapPath: image.bootstrapPath, mountSource: mounted.source, manifestDigest: image.manifestDigest,
      blobs: image.manifest.blobs.map((b) => ({ id: b.id, remotePath: b.remote.path })), mountedAt: new Date().toISOString(),
      ...(mounted.loopDevices.length ? { loopDevices: mounted.loopDevices } : {}),
      ...(typeof req.backgroundFetch === "number" && req.backgroundFetch >= 0 ? { backgroundFetch: req.backgroundFetch } : {}),
      ...(req.indexDir !== undefined ? { indexDir: req.indexDir } : {}),
    };
    this.#state.mounts.push(record);
    saveState(this.#opts.cacheDir, this.#state);
    this.#tellFiles(image, mountPoint);
    this.#opts.log("info", "mounted", { mountPoint, source, blobs: image.blobs.length, loadBytes: image.fetchedBytes, ms: Math.round(performance.now() - started) });
    const prefetched = image.manifest.prefetch?.length ? this.#prefetch(image, mountPoint) : Promise.resolve();
    if (record.backgroundFetch !== undefined) this.#fillInBackground(record, prefetched);
    return record;
  }

  #inUse(blobId: string, except?: MountRecord): boolean {
    return this.#state.mounts.some((m) => m !== except && m.blobs.some((b) => b.id === blobId));
  }

  /** Starts recording which ranges of the mount's blobs are asked for (eod trace); one trace per blob at a time. */
  async startTrace(mountPointArg: string): Promise<{ mountPoint: string }> {
    const record = this.#record(mountPointArg);
    const blobs = record.blobs.map((b) => this.core.blob(b.id));
    if (blobs.some((b) => !b)) throw new EodError("USAGE", `The blobs of ${record.mountPoint} are not open (fscache opens them on first use: read something first)`);
    if (blobs.some((b) => b!.onAccess)) throw new EodError("USAGE", `A trace already runs on a blob of ${record.mountPoint}`);
    const recorder = new TraceRecorder();
    blobs.forEach((b, k) => { b!.onAccess = (offset, length) => recorder.record(k, offset, length); });
    this.#traces.set(record.mountPoint, recorder);
    return { mountPoint: record.mountPoint };
  }

  /** Stops a trace and returns the files touched, in first-touch order. */
  async stopTrace(mountPointArg: string): Promise<Trace & { truncated: boolean }> {
    const record = this.#record(mountPointArg);
    const recorder = this.#traces.get(record.mountPoint);
    if (!recorder) throw new EodError("USAGE", `No trace runs on ${record.mountPoint}`);
    this.#traces.delete(record.mountPoint);
    for (const b of record.blobs) { const blob = this.core.blob(b.id); if (blob) blob.onAccess = null; }
    const reader = new ErofsReader(bufferSource(fs.readFileSync(record.bootstrapPath)));
    return { ...recorder.toTrace(reader, record.manifestDigest), truncated: recorder.truncated };
  }

  #record(mountPointArg: string): MountRecord {
    const mountPoint = path.resolve(String(mountPointArg));
    const record = this.#state.mounts.find((m) => m.mountPoint === mountPoint);
    if (!record) throw new EodError("USAGE", `${mountPoint} is not mounted by this daemon`);
    return record;
  }

  async umount(mountPointArg: string): Promise<{ mountPoint: string; remaining: number }> {
    const mountPoint = path.resolve(String(mountPointArg));
    const record = this.#state.mounts.find((m) => m.mountPoint === mountPoint);
    if (!record) throw new EodError("USAGE", `${mountPoint} is not mounted by this daemon`);
    if (mountAt(mountPoint)) {
      try {
        umount(mountPoint);
      } catch (err) {
        throw new EodError("SYS", `Cannot unmount ${mountPoint}: ${(err as Error).message}`, { cause: err });
      }
    }
    this.#forget(record);
    this.#opts.log("info", "unmounted", { mountPoint });
    return { mountPoint, remaining: this.#state.mounts.length };
  }

  /** Drops a mount from the table (it is unmounted already) and releases its blobs; idle when it was the last. */
  #forget(record: MountRecord): void {
    this.#state.mounts = this.#state.mounts.filter((m) => m !== record);
    this.#fills.get(record.mountPoint)?.abort();
    this.#traces.delete(record.mountPoint);
    this.metrics.observeBlobs(this.core.stats()); // counters of the blobs about to close are kept
    this.#opts.frontend.release(record.blobs.map((b) => b.id).filter((id) => !this.#inUse(id)), this.core);
    saveState(this.#opts.cacheDir, this.#state);
    if (this.#state.mounts.length === 0) this.#idle();
  }

  /** The mount table changed: forget the mounts unmounted behind our back (`umount -l`, another tool). */
  #forgetVanished(): void {
    if (this.#stopping) return;
    const table = mounts();
    for (const m of this.#state.mounts.filter((r) => !stillMounted(r, table))) {
      this.#opts.log("info", "a mount was removed behind the daemon's back: forgotten", { mountPoint: m.mountPoint });
      this.#forget(m);
    }
  }

  /**
   * The cache directory was removed or renamed: no cache file or state can be kept. The mounts are detached
   * (readers would otherwise see errors, or zeros for unfetched ranges once the fanotify group is gone), and
   * the daemon becomes idle.
   */
  #leaveGoneCacheDir(): void {
    if (this.#stopping) return;
    this.#cacheDirGone = true;
    this.#opts.log("error", "the cache directory is gone: detaching its mounts; the daemon exits", { cacheDir: this.#opts.cacheDir, mounts: this.#state.mounts.length });
    const table = mounts();
    for (const m of this.#state.mounts) {
      try {
        if (mountAt(m.mountPoint, table)) umount(m.mountPoint, MNT_DETACH);
      } catch (err) {
        this.#opts.log("error", "cannot detach a mount", { mountPoint: m.mountPoint, err });
      }
      this.#fills.get(m.mountPoint)?.abort();
    }
    this.#state.mounts = [];
    this.#idle();
  }

  /** Evicts one blob's cache (whole file, through the cache core's culler) if no mount uses it. */
  cull(blobId: string): { blobId: string } {
    if (typeof blobId !== "string" || !/^[0-9a-f]{64}$/.test(blobId)) throw new EodError("USAGE", "cull needs a blob id (64 hex digits)");
    if (this.#inUse(blobId)) throw new EodError("USAGE", `Blob ${blobId} is used by a mount; not culled`);
    this.core.culler.cullObject(blobId);
    return { blobId };
  }

  /** The Prometheus text of GET /metrics (and of --metrics-listen). */
  metricsText(): string {
    return this.metrics.render(this.status() as MetricsInput);
  }

  status(): unknown {
    return {
      pid: process.pid,
      cacheDir: this.#opts.cacheDir,
      frontend: { name: this.#opts.frontend.name, reason: this.#opts.frontendReason, ...this.#opts.frontend.stats() },
      erofsMount: this.#erofs.status(),
      mounts: this.#state.mounts,
      cache: this.core.cacheStats(),
      blobs: this.core.stats(),
      remotes: [...this.#remotes].map(([location, r]) => ({ location, ...r.stats() })),
      pulls: pullsStatus(),
    };
  }

  /** Stops serving: the control socket, the frontend, the cache (maps flushed). Mounts stay. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    this.#world?.stop();
    await new Promise<void>((resolve) => (this.#control ? this.#control.close(() => resolve()) : resolve()));
    fs.rmSync(socketPathOf(this.#opts.cacheDir), { force: true });
    try {
      await this.#opts.frontend.close();
      await this.core.close();
    } catch (err) {
      if (!this.#cacheDirGone) throw err;
      this.#opts.log("info", "the cache was not flushed: its directory is gone", { err });
    }
    for (const r of this.#remotes.values()) await r.close();
  }
}

/**
 * The modules a registry mount needs, which load on first use (image-remote.ts, transport.ts): with caches
 * dropped, 0.3 s and more of a cold container start. undici is the transport's; loading it here is the same module.
 */
async function loadRegistryClient(): Promise<void> {
  await Promise.all([import("../remote/registry/client.ts"), import("../remote/registry/registry-remote.ts"), import("undici")]);
}
