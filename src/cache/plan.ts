// Fetch planning, pure: which chunks a read of [offset, offset+length) of a blob's kernel form needs, widened
// to the minimum fetch unit and cut into runs that are contiguous in the remote form (one range request each).
import type { ChunkEntry } from "../image/chunk-table.ts";

export interface FetchRun {
  /** Chunk indexes first..last (inclusive), contiguous in the remote form. */
  first: number;
  last: number;
  remoteOffset: number;
  remoteLength: number;
}

export interface PlanOptions {
  /** Widen a miss with neighbouring missing chunks up to this many plain bytes. */
  minFetch: number;
  /** Never put more than this many remote bytes in one request. */
  maxFetch: number;
}

/** Index range [first, last] of the chunks overlapping [offset, offset+length), or null if none. */
export function chunksOverlapping(entries: readonly ChunkEntry[], offset: number, length: number): [number, number] | null {
  const end = offset + length;
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) { // first entry whose end is past offset
    const mid = (lo + hi) >>> 1;
    if (entries[mid].plainOffset + entries[mid].plainSize <= offset) lo = mid + 1;
    else hi = mid;
  }
  if (lo >= entries.length || entries[lo].plainOffset >= end) return null;
  let last = lo;
  while (last + 1 < entries.length && entries[last + 1].plainOffset < end) last++;
  return [lo, last];
}

/**
 * The runs to fetch so that every chunk in [first, last] is present: the missing ones (`wanted(i)` true),
 * widened forward then backward over missing neighbours until `minFetch` plain bytes, split wherever the
 * remote form is not contiguous or a run would exceed `maxFetch`.
 */
export function planRuns(entries: readonly ChunkEntry[], first: number, last: number, wanted: (i: number) => boolean, opts: PlanOptions): FetchRun[] {
  const picked: number[] = [];
  for (let i = first; i <= last; i++) if (wanted(i)) picked.push(i);
  if (picked.length === 0) return [];
  let plain = picked.reduce((n, i) => n + entries[i].plainSize, 0);
  for (let i = last + 1; plain < opts.minFetch && i < entries.length && wanted(i); i++) { picked.push(i); plain += entries[i].plainSize; }
  for (let i = first - 1; plain < opts.minFetch && i >= 0 && wanted(i); i--) { picked.unshift(i); plain += entries[i].plainSize; }
  return groupRuns(entries, picked, opts.maxFetch);
}

/**
 * Chunk indexes (in the order given; a prefetch list is in priority order) cut into runs: a chunk joins the
 * run before it when it is the next index, contiguous in the remote form and the run stays within `maxFetch`.
 */
export function groupRuns(entries: readonly ChunkEntry[], indexes: Iterable<number>, maxFetch: number): FetchRun[] {
  const runs: FetchRun[] = [];
  let cur: FetchRun | null = null;
  for (const i of indexes) {
    const e = entries[i];
    if (cur && cur.last === i - 1 && cur.remoteOffset + cur.remoteLength === e.remoteOffset && cur.remoteLength + e.remoteSize <= maxFetch) {
      cur.last = i;
      cur.remoteLength += e.remoteSize;
    } else {
      cur = { first: i, last: i, remoteOffset: e.remoteOffset, remoteLength: e.remoteSize };
      runs.push(cur);
    }
  }
  return runs;
}
