// The two ways culling gives space back, behind one interface the culler (cull.ts) drives:
// * chunks (chunk-eviction.ts): a chunk's hole is punched in our own sparse file (fanotify, FUSE);
// * whole objects (object-eviction.ts): a cache file the kernel owns is culled whole, through commands its
//   frontend supplies (fscache: `inuse` + `cull`; a file a mount holds is refused).
// Which entries go, in which order and how many, is the culler's; an eviction only measures and evicts.

/** What one eviction step did. */
export interface Evicted {
  /** Bytes given back. */
  bytes: number;
  /** Chunks whose holes were punched. */
  chunks: number;
  /** Whole cache objects culled. */
  objects: number;
  /** Objects the kernel refused to cull (a mount holds them). */
  refused: number;
}

export const NOTHING_EVICTED: Readonly<Evicted> = { bytes: 0, chunks: 0, objects: 0, refused: 0 };

/** Evicts one planned batch (one blob's chunks, or one object). */
export type EvictionStep = () => Evicted;

export interface Eviction {
  /** Bytes the budget counts now. */
  cachedBytes(): number;
  /** Whether cachedBytes() costs a scan (the culler then checks the budget at most once a second). */
  readonly costly: boolean;
  /**
   * Steps that evict the least recently used entries, coldest first: enough for `need` bytes where the plan
   * can tell (the culler stops once it has enough). Entries used after `maxTick` are left alone. null when
   * nothing can be evicted at all.
   */
  plan(need: number, maxTick: number): EvictionStep[] | null;
  /** Whether the cache filesystem is low on space (where the kernel keeps levels of its own): culls for space go on until it is not. */
  spaceIsLow?(): boolean;
  /** Free space for messages. */
  spaceNote?(): Record<string, unknown>;
}
