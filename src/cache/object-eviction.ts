// Eviction by whole object, for cache files a kernel owns (fscache): the daemon cannot punch holes in them,
// so it culls whole files, least recently used first, through the commands its frontend supplies; a file a
// mount holds is refused by the kernel and skipped. The budget counts the bytes allocated to every such file.
import type { Evicted, Eviction, EvictionStep } from "./eviction.ts";
import { belowRun, freePct, spaceOf, type RunLevels } from "./free-space.ts";

/** One cache file on disk. */
export interface KernelObject {
  /** Names the object to the daemon (fscache: the cookie key, a blob id or an fsid). */
  key: string;
  /** Bytes allocated to the file. */
  bytes: number;
  /** Its last write (the time of its last fill), for objects the daemon has not seen used since it started. */
  mtimeMs: number;
}

/** What a frontend whose kernel owns the cache files supplies: how to list them and how to cull one. */
export interface KernelObjects<O extends KernelObject = KernelObject> {
  /** The directory the files are in (its filesystem's free space is watched). */
  readonly dir: string;
  /** Culling for low space goes on until free space is back at these levels. */
  readonly runLevels: RunLevels;
  /** The cache files on disk. */
  list(): O[];
  /**
   * Bytes of the objects open now, by key: a file being filled may not show in the directory yet (cachefiles
   * links a new file only when its object is closed), and one both open and listed counts once.
   */
  openBytes(): Map<string, number>;
  /** Culls one file: "busy" when a mount holds it (refused), "gone" when it is no longer there. */
  cull(o: O): "culled" | "busy" | "gone";
}

export class ObjectEviction<O extends KernelObject = KernelObject> implements Eviction {
  readonly costly = true;
  readonly #objects: KernelObjects<O>;
  /** ms of each object's last use the frontend reported (OPEN, READ, CLOSE). */
  readonly #lastUse = new Map<string, number>();
  readonly #onCulled: (fields: Record<string, unknown>) => void;
  /** The files listed in this synchronous pass (a budget check measures, then plans: one scan for both). */
  #listed: O[] | null = null;

  /** @param onCulled called for each file culled (the daemon logs it) */
  constructor(objects: KernelObjects<O>, onCulled: (fields: Record<string, unknown>) => void) {
    this.#objects = objects;
    this.#onCulled = onCulled;
  }

  /** The object `key` was used now. */
  used(key: string, ms: number = Date.now()): void {
    this.#lastUse.set(key, ms);
  }

  cachedBytes(): number {
    const open = this.#objects.openBytes();
    let total = 0;
    for (const o of this.#list()) if (!open.has(o.key)) total += o.bytes;
    for (const bytes of open.values()) total += bytes;
    return total;
  }

  /** Every file on disk, least recently used first (the daemon's last use of it, else its last fill). */
  ordered(): Array<O & { lastUsed: number }> {
    return this.#list()
      .map((o) => ({ ...o, lastUsed: Math.max(this.#lastUse.get(o.key) ?? 0, o.mtimeMs) }))
      .sort((a, b) => a.lastUsed - b.lastUsed || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  #list(): O[] {
    if (this.#listed === null) {
      this.#listed = this.#objects.list();
      queueMicrotask(() => { this.#listed = null; }); // the next pass lists the directory afresh
    }
    return this.#listed;
  }

  plan(): EvictionStep[] | null {
    const files = this.ordered();
    if (files.length === 0) return null;
    return files.map((o) => () => this.#evict(o));
  }

  /** The one object `key`, to cull now whatever its age (`eod cull`); null when it has no file. */
  planOne(key: string): { bytes: number; steps: EvictionStep[] } | null {
    const o = this.ordered().find((f) => f.key === key);
    return o ? { bytes: o.bytes, steps: [() => this.#evict(o)] } : null;
  }

  #evict(o: O & { lastUsed: number }): Evicted {
    this.#listed = null; // the directory changes: what is measured next is listed again
    const r = this.#objects.cull(o);
    if (r === "busy") return { bytes: 0, chunks: 0, objects: 0, refused: 1 };
    if (r === "gone") return { bytes: 0, chunks: 0, objects: 0, refused: 0 };
    this.#lastUse.delete(o.key);
    this.#onCulled({ key: o.key, bytes: o.bytes, lastUsed: new Date(o.lastUsed).toISOString() });
    return { bytes: o.bytes, chunks: 0, objects: 1, refused: 0 };
  }

  spaceIsLow(): boolean {
    return belowRun(spaceOf(this.#objects.dir), this.#objects.runLevels);
  }

  spaceNote(): Record<string, unknown> {
    return { ...freePct(spaceOf(this.#objects.dir)), runLevels: this.#objects.runLevels };
  }
}
