// The snapshots containerd asks for, with the semantics of containerd 1.6.20's overlay snapshotter for ordinary
// layers (containerd applies their diffs into `<root>/snapshots/<id>/fs`), plus the layers of images converted
// by eod: a Prepare of one records a committed snapshot without fetching anything, and the active and view
// snapshots over it sit on the image's one lazy mount (ImageMounts), shared and released with the last of them.
// With mount_on_pull, a pull's lazy Prepare also starts mounting the image in the background, held for its first
// container (the database's images.held_until says so) and released when none comes in time.
// An ordinary image an eod index refers to (indexed; asked of the cache daemon once per image, index-lookups.ts) is
// recorded and mounted the same way, by its registry manifest digest. Its lower lazy layers have no content of
// their own (its one mount is the whole tree): only its top layer may be the lower of a container or of another
// image's layer. A chain reaching one of the others (another image sharing its lower layers) has them unpacked
// first (LayerContent: fetched from the registry, applied like containerd's applier), so they become ordinary
// layers; without a LayerContent it is refused.
// Directories are made under a temporary name and renamed into place inside the database transaction that
// records them (all synchronous), so a kill -9 leaves at worst a directory nothing refers to: start-up and
// Cleanup remove those.
import fs from "node:fs";
import path from "node:path";
import type { Log } from "../util/log.ts";
import { diskUsage, type Usage } from "./disk-usage.ts";
import { SnapshotError } from "./errors.ts";
import { matchFilter, parseFilters, snapshotFields } from "./filter.ts";
import { ImageLocks } from "./image-locks.ts";
import type { ImageMounts, LazyImage } from "./image-mounts.ts";
import { IndexLookups } from "./index-lookups.ts";
import type { LayerContent } from "./layer-content.ts";
import { SharedLayers } from "./shared-layers.ts";
import { indexedImageOf } from "./indexed-image.ts";
import { CRI_IMAGE_REF, CRI_MANIFEST_DIGEST, EOD_MANIFEST, SNAPSHOT_REF, withoutEmpty } from "./labels.ts";
import { HoldTimers } from "./hold-timers.ts";
import { snapshotMounts, type Mount } from "./mounts.ts";
import { SnapshotStore, type ImageRow, type Kind, type SnapshotRow } from "./store.ts";

/** containerd's snapshots.Info. */
export interface Info {
  name: string;
  parent: string;
  kind: Kind;
  createdMs: number;
  updatedMs: number;
  labels: Record<string, string>;
}

export interface SnapshotterOptions {
  root: string;
  imageMounts: ImageMounts;
  log: Log;
  /** Add `index=off` to overlay mounts; containerd does when the overlay module has the parameter. */
  indexOff?: boolean;
  /** snapshotter.mount_on_pull: how long a mount made at the pull waits for a container; null (default): off. */
  mountOnPullIdleMs?: number | null;
  /** How long the Prepare of an ordinary image's first layer waits to know whether it is indexed (index-lookups.ts). */
  lookupTimeoutMs?: number;
  /** snapshotter.index_locally: indexes an ordinary image nobody indexed on this node (true: mountable now). */
  indexLocally?: (ref: string) => Promise<boolean>;
  /** Unpacks an indexed image's lower lazy layer another image needs; none: such a chain is refused. */
  layerContent?: LayerContent;
}

/** What mount_on_pull did since the snapshotter started (its metrics). */
export interface PullMountCounters {
  /** Images mounted at their pull. */
  mounts: number;
  /** Mounts at a pull that failed (logged; the pull went on, the first container mounts the image). */
  failures: number;
  /** Mounts at a pull no container took in time, unmounted. */
  expired: number;
}

const MANIFEST_DIGEST = /^sha256:[0-9a-f]{64}$/;
const SNAPSHOTS_DIR = "snapshots";

export class Snapshotter {
  readonly store: SnapshotStore;
  readonly #root: string;
  readonly #images: ImageMounts;
  readonly #log: Log;
  readonly #indexOff: boolean;
  readonly #locks = new ImageLocks();
  /** Images this process acquired or re-attached and has not released: their mounts can be shared without asking again. */
  readonly #attached = new Set<string>();
  /** Images in use whose mount no cache daemon serves (found at a re-attach or acquire): why, for their Mounts. */
  readonly #unserved = new Map<string, Error>();
  readonly #mountOnPullIdleMs: number | null;
  readonly pullMounts: PullMountCounters = { mounts: 0, failures: 0, expired: 0 };
  /** Mounts at a pull started by this process and not ended yet (one per image, whatever its layer count). */
  readonly #pullMounting = new Set<string>();
  /** When each held image's hold runs out; the database says what is held, these only wake us up. */
  readonly #holdTimers = new HoldTimers();
  /** Whether ordinary images are indexed, once per image. */
  readonly lookups: IndexLookups;
  /** Lower lazy layers of indexed images another image shares: unpacked, or refused. */
  readonly #shared: SharedLayers;

  private constructor(opts: SnapshotterOptions, store: SnapshotStore) {
    this.#root = opts.root;
    this.#images = opts.imageMounts;
    this.#log = opts.log;
    this.#indexOff = opts.indexOff ?? fs.existsSync("/sys/module/overlay/parameters/index");
    this.#mountOnPullIdleMs = opts.mountOnPullIdleMs ?? null;
    this.lookups = new IndexLookups({ images: opts.imageMounts, log: opts.log, timeoutMs: opts.lookupTimeoutMs, buildIndex: opts.indexLocally });
    this.#shared = new SharedLayers({ store, snapshotsDir: path.join(opts.root, SNAPSHOTS_DIR), locks: this.#locks, layerContent: opts.layerContent, log: opts.log });
    this.store = store;
  }

  /** Lower layers of indexed images unpacked since the start because another image shares them. */
  get layersUnpacked(): number {
    return this.#shared.unpacked;
  }

  /**
   * Opens the root (creating it), removes directories a crash left behind and starts re-attaching the image
   * mounts the database says are in use. That may wait for a cache daemon to start: it holds every image's
   * lock meanwhile, while ordinary snapshots are served at once; a failure is logged (the next container of
   * an image acquires it again).
   */
  static async open(opts: SnapshotterOptions): Promise<Snapshotter> {
    const store = SnapshotStore.open(opts.root);
    fs.mkdirSync(path.join(opts.root, SNAPSHOTS_DIR), { recursive: true, mode: 0o700 });
    const s = new Snapshotter(opts, store);
    await s.#removeOrphans();
    void s.#reattach().catch((err: unknown) => { opts.log("error", "cannot re-attach the image mounts in use", { err }); });
    return s;
  }

  /**
   * Closes the database once no image work runs (a background re-attach or mount at a pull would otherwise write
   * to a closed one). Held mounts stay: the next start finds their holds in the database.
   */
  close(): Promise<void> {
    this.#holdTimers.clear();
    return this.#locks.runExclusive(() => Promise.resolve(this.store.close()));
  }

  async prepare(key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    if (labels[SNAPSHOT_REF]) {
      if (labels[EOD_MANIFEST] !== undefined) this.#recordLazyLayer(key, parent, labels, convertedImageOf(labels));
      const indexed = indexedImageOf(labels);
      if (indexed !== null && (this.store.image(indexed.manifest)?.indexed === true || await this.lookups.indexed(indexed.manifest, indexed.ref))) {
        this.#recordLazyLayer(key, parent, labels, indexed, indexed.top);
      }
    }
    return this.#create("active", key, parent, labels);
  }

  view(key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    return this.#create("view", key, parent, labels);
  }

  async mounts(key: string): Promise<Mount[]> {
    const row = this.#get(key);
    if (row.kind === "committed") throw new SnapshotError("FAILED_PRECONDITION", `Snapshot ${JSON.stringify(key)} is committed: only active and view snapshots have mounts`);
    if (row.uses === null) return this.#mountsOf(row);
    // The recorded mountpoint is trusted only under the image's lock: a re-attach (at start, or Cleanup) holds
    // it until the mount is served again or marked unserved, and an overlay on an unserved lower reads zeros.
    return this.#locks.run(row.uses, () => Promise.resolve(this.#mountsOf(this.#get(key))));
  }

  async commit(name: string, key: string, labels: Record<string, string>): Promise<void> {
    // containerd's storage checks the name first: a taken name is ALREADY_EXISTS whatever the key is
    if (this.store.get(name) !== undefined) throw new SnapshotError("ALREADY_EXISTS", `Committed snapshot ${JSON.stringify(name)} already exists`);
    const row = this.#get(key);
    if (row.kind !== "active") throw new SnapshotError("FAILED_PRECONDITION", `Snapshot ${JSON.stringify(key)} is not active`);
    const usage = await diskUsage(this.#fsDir(row.id));
    await this.#withImage(row.uses, () => {
      this.store.transaction(() => {
        const now = this.#get(key);
        if (now.id !== row.id || now.kind !== "active") throw new SnapshotError("FAILED_PRECONDITION", `Snapshot ${JSON.stringify(key)} changed while it was being committed`);
        if (this.store.get(name) !== undefined) throw new SnapshotError("ALREADY_EXISTS", `Committed snapshot ${JSON.stringify(name)} already exists`);
        this.store.commit(row.id, name, withoutEmpty(labels), usage);
      });
    });
  }

  async remove(key: string): Promise<void> {
    const row = this.#get(key);
    // A lazy layer of an image a pull holds mounted: removing its last layer forgets the image, and unmounts it.
    const held = row.layerOf !== null && this.store.image(row.layerOf)?.heldUntil != null ? row.layerOf : null;
    await this.#withImage(row.uses ?? held, () => {
      this.store.transaction(() => {
        const now = this.#get(key);
        if (now.id !== row.id) throw new SnapshotError("FAILED_PRECONDITION", `Snapshot ${JSON.stringify(key)} changed while it was being removed`);
        if (this.store.hasChildren(now.id)) throw new SnapshotError("FAILED_PRECONDITION", `Cannot remove snapshot ${JSON.stringify(key)}: it has children`);
        this.store.delete(now.id);
        if (now.layerOf !== null) this.store.dropImageIfUnreferenced(now.layerOf);
      });
    });
    // The row is gone: a directory left by a failure here is an orphan that Cleanup removes.
    const dir = this.#dir(row.id);
    await fs.promises.rm(dir, { recursive: true, force: true })
      .catch((err: unknown) => { this.#log("warn", "cannot remove a snapshot directory (Cleanup retries)", { dir, err }); });
  }

  stat(key: string): Info {
    return toInfo(this.#get(key));
  }

  /** containerd's UpdateInfo: fieldpaths "labels" or "labels.<key>" (none: all labels); other fields are immutable. */
  update(info: Pick<Info, "name" | "labels">, fieldpaths: readonly string[]): Info {
    return this.store.transaction(() => {
      const row = this.#get(info.name);
      let labels = { ...row.labels };
      if (fieldpaths.length === 0) labels = { ...info.labels };
      for (const p of fieldpaths) {
        if (p.startsWith("labels.")) labels[p.slice("labels.".length)] = info.labels[p.slice("labels.".length)] ?? "";
        else if (p === "labels") labels = { ...info.labels };
        else throw new SnapshotError("INVALID_ARGUMENT", `Cannot update the ${JSON.stringify(p)} field of snapshot ${JSON.stringify(info.name)}: only labels change`);
      }
      this.store.setLabels(row.id, withoutEmpty(labels));
      return toInfo(this.#get(info.name));
    });
  }

  /** An active snapshot's directory now; what was stored at commit for the others. */
  async usage(key: string): Promise<Usage> {
    const row = this.#get(key);
    if (row.kind !== "active") return { size: row.size, inodes: row.inodes };
    return diskUsage(this.#fsDir(row.id));
  }

  list(filters: readonly string[]): Info[] {
    const filter = parseFilters(filters);
    return this.store.all().filter((row) => matchFilter(filter, snapshotFields(row))).map(toInfo);
  }

  /** Removes the directories no snapshot refers to, and the image mounts no snapshot uses. */
  async cleanup(): Promise<void> {
    await this.#removeOrphans();
    await this.#reattach();
  }

  /**
   * A layer of an image converted by eod, or of an indexed image: commit `<chain ID>` as its snapshot (nothing to
   * fetch: the image is mounted whole when a container needs it) and answer ALREADY_EXISTS, which tells containerd
   * the layer is there. `top`: the indexed image's top layer, the one its mount stands for.
   */
  #recordLazyLayer(key: string, parent: string, labels: Record<string, string>, image: LazyImage, top = false): never {
    const target = labels[SNAPSHOT_REF];
    const { manifest, ref } = image;
    const idleMs = this.#mountOnPullIdleMs;
    const recorded = this.store.transaction(() => {
      const existing = this.store.get(target);
      if (existing !== undefined && top) this.#takeOver(existing, image);
      if (existing !== undefined || this.store.get(key) !== undefined) return null;
      const parentRow = this.#committedParent(parent);
      const known = this.store.image(manifest);
      this.store.putImage(image);
      this.store.insert({ name: target, parentId: parentRow?.id ?? null, kind: "committed", labels: withoutEmpty(labels), layerOf: manifest });
      if (top) this.store.setTop(manifest, target);
      // mount_on_pull: the image's first layer holds it for the mount started below; its other layers renew the
      // hold (unless that mount failed already: it is not tried once per layer).
      const mount = idleMs !== null && known === undefined;
      if (idleMs !== null && (mount || known?.heldUntil != null)) this.store.setHold(manifest, Date.now() + idleMs);
      return { mount, first: known === undefined };
    });
    if (recorded) this.#log("info", "lazy layer recorded", { name: target, parent, manifest, ref, ...(image.indexed ? { indexed: true, top } : {}) });
    if (recorded?.mount) this.#mountOnPull(manifest);
    else if (recorded?.first && !image.indexed) this.#warm(manifest, ref); // an indexed one was resolved by its lookup
    throw new SnapshotError("ALREADY_EXISTS", `Target snapshot ${JSON.stringify(target)} exists (a layer of image ${manifest}, mounted lazily)`);
  }

  /**
   * The top layer of an indexed image is recorded already as a lower lazy layer of another indexed image (which
   * shares this one's layers and has more): that record has no content of its own, so it becomes this image's
   * top, whose mount is exactly its tree. The other image does not need it: only its own top stands for its mount.
   */
  #takeOver(existing: SnapshotRow, image: LazyImage): void {
    if (existing.layerOf === null || existing.layerOf === image.manifest || !image.indexed) return;
    const owner = this.store.image(existing.layerOf);
    if (owner?.indexed !== true || owner.top === existing.name) return;
    this.store.putImage(image);
    this.store.setLayerOf(existing.id, image.manifest);
    this.store.setTop(image.manifest, existing.name);
    this.store.dropImageIfUnreferenced(owner.manifest);
    this.#log("info", "lazy layer taken over as the top of an indexed image", { name: existing.name, from: owner.manifest, to: image.manifest });
  }

  async #create(kind: "active" | "view", key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    await this.#shared.unpackUnder(parent);
    const image = this.store.transaction(() => this.#checkNew(key, parent).image);
    if (image === null) return this.#createRow(kind, key, parent, labels, null);
    return this.#locks.run(image, async () => {
      const known = this.store.image(image);
      if (known === undefined) throw new SnapshotError("NOT_FOUND", `Image ${image} of snapshot ${JSON.stringify(parent)} is not recorded`);
      // Another snapshot over it keeps it mounted: share that mount instead of acquiring it again.
      if (!this.#attached.has(image) || known.mountpoint === null) {
        const inUse = this.store.usersOf(image) > 0;
        let mountpoint: string;
        try {
          mountpoint = await this.#images.acquire(lazyImageOf(known), inUse);
        } catch (err) {
          if (inUse) this.#markUnserved(image, err as Error);
          throw err;
        }
        this.store.transaction(() => { this.store.setMountpoint(image, mountpoint); });
        this.#attached.add(image);
        this.#unserved.delete(image);
      }
      try {
        return this.#createRow(kind, key, parent, labels, image);
      } catch (err) {
        await this.#releaseIfUnused(image);
        throw err;
      }
    });
  }

  /** Checks a new snapshot's key and parent; the lazy image its chain reaches, if any. */
  #checkNew(key: string, parent: string): { parentRow: SnapshotRow | undefined; image: string | null } {
    if (key === "") throw new SnapshotError("INVALID_ARGUMENT", "A snapshot key must not be empty");
    const parentRow = this.#committedParent(parent); // before the key, as containerd's storage.CreateSnapshot
    if (this.store.get(key) !== undefined) throw new SnapshotError("ALREADY_EXISTS", `Snapshot ${JSON.stringify(key)} already exists`);
    const chain = parentRow === undefined ? [] : [parentRow, ...this.store.parents(parentRow)];
    const lazy = chain.find((r) => r.layerOf !== null);
    if (lazy !== undefined) this.#checkWhole(lazy, key);
    return { parentRow, image: lazy?.layerOf ?? null };
  }

  /** A new snapshot's nearest lazy layer must stand for its whole image mount (shared-layers.ts). */
  #checkWhole(lazy: SnapshotRow, key: string): void {
    if (this.#shared.isPlaceholder(lazy)) throw this.#shared.refusal(key, lazy);
  }

  #committedParent(parent: string): SnapshotRow | undefined {
    if (parent === "") return undefined;
    const row = this.store.get(parent);
    if (row === undefined) throw new SnapshotError("NOT_FOUND", `Parent snapshot ${JSON.stringify(parent)} does not exist`);
    if (row.kind !== "committed") throw new SnapshotError("INVALID_ARGUMENT", `Parent ${JSON.stringify(parent)} is not a committed snapshot`);
    return row;
  }

  /** The directories under a temporary name, then the row and the rename in one transaction. */
  #createRow(kind: "active" | "view", key: string, parent: string, labels: Record<string, string>, image: string | null): Mount[] {
    const snapshots = path.join(this.#root, SNAPSHOTS_DIR);
    const tmp = fs.mkdtempSync(path.join(snapshots, "new-"));
    try {
      fs.mkdirSync(path.join(tmp, "fs"), { mode: 0o755 });
      if (kind === "active") fs.mkdirSync(path.join(tmp, "work"), { mode: 0o711 });
      const row = this.store.transaction(() => {
        const { parentRow } = this.#checkNew(key, parent);
        const id = this.store.insert({ name: key, parentId: parentRow?.id ?? null, kind, labels: withoutEmpty(labels), uses: image });
        if (image !== null) this.store.setHold(image, null); // a pull's mount is taken: its users keep it from now on
        const created = this.store.byId(id)!;
        const lowest = this.#lowers(created)[0];
        if (lowest !== undefined) {
          // the upper dir's root takes the owner of the layer below, as containerd's overlay snapshotter does
          const st = fs.statSync(lowest);
          fs.lchownSync(path.join(tmp, "fs"), st.uid, st.gid);
        }
        fs.rmSync(this.#dir(id), { recursive: true, force: true }); // a crash's leftover of an id never committed
        fs.renameSync(tmp, this.#dir(id));
        return created;
      });
      return this.#mountsOf(row);
    } catch (err) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw err;
    }
  }

  /** The layers under an active or view snapshot, nearest first: ordinary fs dirs, then the image's mountpoint. */
  #lowers(row: SnapshotRow): string[] {
    const out: string[] = [];
    for (const p of this.store.parents(row)) {
      if (p.layerOf === null) {
        out.push(this.#fsDir(p.id));
        continue;
      }
      const mountpoint = this.store.image(p.layerOf)?.mountpoint;
      if (!mountpoint) {
        const why = this.#unserved.get(p.layerOf);
        throw new SnapshotError("FAILED_PRECONDITION", `Image ${p.layerOf} under snapshot ${JSON.stringify(row.name)} is not mounted${why ? `: ${why.message}` : ""}`);
      }
      out.push(mountpoint);
      break; // the image's mount is its whole tree
    }
    return out;
  }

  #mountsOf(row: SnapshotRow): Mount[] {
    return snapshotMounts({ kind: row.kind as "active" | "view", fs: this.#fsDir(row.id), work: path.join(this.#dir(row.id), "work"), lowers: this.#lowers(row), indexOff: this.#indexOff });
  }

  /** Runs `change` (a transaction) under the image's lock when the snapshot uses one, releasing the mount after the last user. */
  async #withImage(image: string | null, change: () => void): Promise<void> {
    if (image === null) return change();
    await this.#locks.run(image, async () => {
      const before = this.store.image(image);
      change();
      await this.#releaseIfUnused(image, before);
    });
  }

  /**
   * Unmounts the image when no snapshot uses it and no pull holds it. `forgotten`: the image as it was before a
   * change that may have dropped its row (its last layer removed while a pull held it mounted).
   */
  async #releaseIfUnused(manifest: string, forgotten?: ImageRow): Promise<void> {
    if (this.store.usersOf(manifest) > 0) return;
    const known = this.store.image(manifest);
    if (known?.heldUntil != null) return;
    const image = known ?? forgotten;
    if (image === undefined) return;
    this.#holdTimers.cancel(manifest);
    this.#attached.delete(manifest);
    this.#unserved.delete(manifest);
    try {
      await this.#images.release({ manifest, ref: image.ref });
    } catch (err) {
      // the snapshot is gone already: the mount stays until Cleanup or the next start re-attaches
      this.#log("error", "cannot release an image mount no snapshot uses", { manifest, err });
    }
    this.store.transaction(() => { this.store.dropImageIfUnreferenced(manifest); });
  }

  #reattach(): Promise<void> {
    return this.#locks.runExclusive(async () => {
      const inUse = this.store.imagesInUse().map(({ image }) => image);
      // Holds that ran out (while the snapshotter was down, or since the timer) end here: their mounts go below.
      const now = Date.now();
      const held = this.store.heldImages().filter((i) => !inUse.some((u) => u.manifest === i.manifest));
      this.store.transaction(() => { for (const i of held) if (i.heldUntil! <= now) this.store.setHold(i.manifest, null); });
      const live = held.filter((i) => i.heldUntil! > now);
      this.#attached.clear();
      const failed = await this.#images.reattach(inUse, live);
      for (const image of inUse) {
        const err = failed.get(image.manifest);
        if (err === undefined) this.#attached.add(image.manifest);
        else this.#markUnserved(image.manifest, err);
      }
      for (const image of live) {
        if (!failed.has(image.manifest)) {
          this.#attached.add(image.manifest);
          this.#holdTimers.set(image.manifest, image.heldUntil!, () => this.#expireHold(image.manifest));
        } else {
          this.store.transaction(() => { this.store.setHold(image.manifest, null); }); // the first container mounts it afresh
        }
      }
    });
  }

  /**
   * mount_on_pull: mounts the image in the background for its first container, which then finds it mounted and
   * its prefetch under way. Never fails the pull: a failure is logged and counted, the hold dropped, and the
   * first container mounts the image as it would without mount_on_pull.
   */
  #mountOnPull(manifest: string): void {
    if (this.#pullMounting.has(manifest)) return;
    this.#pullMounting.add(manifest);
    this.#locks.run(manifest, async () => {
      const known = this.store.image(manifest);
      if (known?.heldUntil == null) return; // a container took it first (or it is gone)
      if (!this.#attached.has(manifest) || known.mountpoint === null) {
        let mountpoint: string;
        try {
          mountpoint = await this.#images.acquire(lazyImageOf(known), false);
        } catch (err) {
          this.pullMounts.failures++;
          this.#log("error", "image mount on pull failed (the first container mounts it)", { manifest, err });
          this.store.transaction(() => { this.store.setHold(manifest, null); });
          return;
        }
        this.store.transaction(() => { this.store.setMountpoint(manifest, mountpoint); });
        this.#attached.add(manifest);
        this.#unserved.delete(manifest);
        this.pullMounts.mounts++;
        this.#log("info", "image mounted on pull", { manifest, mountpoint });
      }
      const until = this.store.image(manifest)?.heldUntil;
      if (until != null) this.#holdTimers.set(manifest, until, () => this.#expireHold(manifest));
    }).catch((err: unknown) => { this.#log("error", "cannot record an image mounted on pull", { manifest, err }); })
      .finally(() => { this.#pullMounting.delete(manifest); });
  }

  /**
   * Without mount_on_pull: while the pull goes on, the cache daemon gets ready for the image's first container
   * (started, its registry client loaded, the reference resolved), with no blob fetched. Only a head start:
   * a failure is logged, and the container's mount does it all again.
   */
  #warm(manifest: string, ref: string): void {
    this.#images.warm({ manifest, ref }).catch((err: unknown) => {
      this.#log("warn", "cannot get the cache daemon ready for an image at its pull (its first container mounts it anyway)", { manifest, ref, err });
    });
  }

  /** A hold's time is up: unmounts the image if still no container took it (a pull since may have renewed it). */
  #expireHold(manifest: string): void {
    this.#locks.run(manifest, async () => {
      const until = this.store.image(manifest)?.heldUntil;
      if (until == null) return;
      if (until > Date.now()) {
        this.#holdTimers.set(manifest, until, () => this.#expireHold(manifest));
        return;
      }
      this.store.transaction(() => { this.store.setHold(manifest, null); });
      this.pullMounts.expired++;
      this.#log("info", "unmounting an image mounted on pull: no container took it in time", { manifest });
      await this.#releaseIfUnused(manifest);
    }).catch((err: unknown) => { this.#log("error", "cannot end the hold of an image mounted on pull", { manifest, err }); });
  }

  /**
   * Snapshots use the image, and its mount could not be acquired (no daemon serves it, or it could not be
   * mounted again): their Mounts answer why instead of an overlay over a lower nothing answers for.
   */
  #markUnserved(manifest: string, err: Error): void {
    this.#unserved.set(manifest, err);
    this.store.transaction(() => { this.store.setMountpoint(manifest, null); });
    this.#log("error", "an image in use has no served mount: its snapshots' Mounts fail until their containers are removed", { manifest, err });
  }

  /** Directories under `<root>/snapshots` no row names: temporary ones, and those of removed snapshots. */
  async #removeOrphans(): Promise<void> {
    const snapshots = path.join(this.#root, SNAPSHOTS_DIR);
    const ids = this.store.ids();
    const orphans = fs.readdirSync(snapshots).filter((name) => !(/^\d+$/.test(name) && ids.has(Number(name))));
    for (const name of orphans) {
      await fs.promises.rm(path.join(snapshots, name), { recursive: true, force: true });
      this.#log("info", "removed a directory no snapshot refers to", { dir: path.join(snapshots, name) });
    }
  }

  #get(key: string): SnapshotRow {
    const row = this.store.get(key);
    if (row === undefined) throw new SnapshotError("NOT_FOUND", `Snapshot ${JSON.stringify(key)} does not exist`);
    return row;
  }

  #dir(id: number): string {
    return path.join(this.#root, SNAPSHOTS_DIR, String(id));
  }

  #fsDir(id: number): string {
    return path.join(this.#dir(id), "fs");
  }
}

/** The image a layer of `eod convert`'s output names (its `eod.manifest` label), refusing what cannot be mounted. */
function convertedImageOf(labels: Record<string, string>): LazyImage {
  const target = labels[SNAPSHOT_REF];
  const manifest = labels[EOD_MANIFEST];
  if (!MANIFEST_DIGEST.test(manifest)) throw new SnapshotError("INVALID_ARGUMENT", `Label ${EOD_MANIFEST} of layer ${target} must be sha256:<64 hex digits>, got ${JSON.stringify(manifest)}`);
  const imageRef = labels[CRI_IMAGE_REF];
  if (!imageRef) {
    throw new SnapshotError("FAILED_PRECONDITION", `Layer ${target} is a layer of an image converted by eod (image ${manifest}) but containerd passed no ${CRI_IMAGE_REF} label to mount it from: pull it through CRI (kubelet, or a CRI PullImage) with disable_snapshot_annotations = false, see docs/containerd.md`);
  }
  const digest = labels[CRI_MANIFEST_DIGEST];
  return { manifest, ref: digest && !imageRef.includes("@") ? `${imageRef}@${digest}` : imageRef };
}

/** The LazyImage part of a database row (what ImageMounts needs). */
function lazyImageOf(row: ImageRow): LazyImage {
  return { manifest: row.manifest, ref: row.ref, ...(row.indexed ? { indexed: true } : {}) };
}

function toInfo(row: SnapshotRow): Info {
  return { name: row.name, parent: row.parent, kind: row.kind, createdMs: row.createdMs, updatedMs: row.updatedMs, labels: row.labels };
}

export type { LazyImage, Mount, Usage };
