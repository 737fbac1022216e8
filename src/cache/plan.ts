// Fetch planning, pure: which chunks a read of [offset, offset+length) of a blob's kernel form needs, widened
// to the rest of the file, and to the small files after it (a small file) or the minimum fetch unit (any
// other), and cut into runs that are contiguous in the remote form (one range request each).
//
// The chunk table knows no files, but its layout shows them: mkfs cuts every file into chunks of the image's
// chunk size, the last one shorter, and lays a file's chunks out one after another; a chunk never holds two
// files. So a full-size chunk directly followed by the next one continues its file, and a shorter one ends it.
import { sameCheckpoint, type ChunkEntry } from "../image/chunk-table.ts";

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
  /**
   * A miss in a file of at most this many plain bytes also fetches the file's other missing chunks (0: off).
   * A program's binary and libraries are paged in at scattered places: one request instead of one per fault;
   * larger files (data read at random) are fetched as asked.
   */
  fileFetch?: number;
  /**
   * A miss in a file of less than this many plain bytes (fetched whole: `fileFetch` on) also fetches the files
   * after it whole, while the fetch stays within this many plain bytes (0: off; see planRuns).
   */
  amplify?: number;
}

/**
 * A miss on chunks first..last of a seek index whose spans are cut into pieces (chunk-table.ts: pieces share a
 * checkpoint and decode from it): the fetch from the checkpoint through `last` brings every earlier missing
 * piece of its span too, so they are taken along; and when a piece of the span before them is already there
 * (or coming), the reader is going through the span: the rest of it comes in the same request rather than
 * one request per piece, each from the checkpoint again. Other tables: [first, last] as given.
 */
export function piecesToFetch(entries: readonly ChunkEntry[], first: number, last: number, wanted: (i: number) => boolean): [number, number] {
  let lo = first;
  while (lo > 0 && sameCheckpoint(entries[lo], entries[lo - 1]) && wanted(lo - 1)) lo--;
  let hi = last;
  if (lo > 0 && sameCheckpoint(entries[lo], entries[lo - 1])) {
    while (hi + 1 < entries.length && sameCheckpoint(entries[hi + 1], entries[hi])) hi++;
  }
  return [lo, hi];
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
 * plus the other missing chunks of chunk `first`'s file when the whole file is at most `fileFetch` plain
 * bytes. Around a miss in such a file smaller than `amplify` (with `minFetch` no larger), the whole files
 * after it within that window; around any other miss, missing neighbours forward then backward until
 * `minFetch` plain bytes. Split
 * wherever the remote form is not contiguous or a run would exceed `maxFetch`. The asked chunks' run and what
 * follows it come first, then the runs of the file before it.
 */
export function planRuns(entries: readonly ChunkEntry[], first: number, last: number, wanted: (i: number) => boolean, opts: PlanOptions): FetchRun[] {
  const picked: number[] = [];
  for (let i = first; i <= last; i++) if (wanted(i)) picked.push(i);
  if (picked.length === 0) return [];
  const amplify = opts.amplify ?? 0;
  const file = fileAround(entries, first, opts.fileFetch ?? 0);
  // A small file's neighbours are whole files (below), not minFetch's bytes around the miss: the part of the
  // file before it would be a guess, and so would a piece of the file after it. A sequential reader's larger
  // unit (miss-planner.ts) reaches further than the window, and is kept.
  const small = file !== null && file.plain < amplify && opts.minFetch <= amplify;
  const minFetch = small ? 0 : opts.minFetch;
  let plain = picked.reduce((n, i) => n + entries[i].plainSize, 0);
  let hi = last + 1;
  let lo = first - 1;
  for (; plain < minFetch && hi < entries.length && wanted(hi); hi++) { picked.push(hi); plain += entries[hi].plainSize; }
  for (; plain < minFetch && lo >= 0 && wanted(lo); lo--) { picked.unshift(lo); plain += entries[lo].plainSize; }
  if (!file) return groupRuns(entries, picked, opts.maxFetch);
  const before: number[] = [];
  for (let i = hi; i <= file.last; i++) if (wanted(i)) picked.push(i);
  for (let i = file.first; i <= lo; i++) if (wanted(i)) before.push(i);
  if (small && last <= file.last) picked.push(...followingFiles(entries, file.last + 1, amplify - file.plain, wanted));
  return [...groupRuns(entries, picked, opts.maxFetch), ...groupRuns(entries, before, opts.maxFetch)];
}

/**
 * The chunks of the whole files laid out from chunk `from` on, within `window` plain bytes: mkfs writes files
 * in directory-walk order, so these are mostly the directory neighbours of the file before them (nydus's
 * amplify_io reads the next inodes the same way). Stops at a file that does not fit what is left of the
 * window (a large file: its reader reads it at random or in a stream, and the window stays for small files),
 * at a chunk `take(i)` refuses (present already or being fetched: what follows was most likely read too), and
 * where the remote form is not contiguous (never an extra request).
 */
function followingFiles(entries: readonly ChunkEntry[], from: number, window: number, take: (i: number) => boolean): number[] {
  const out: number[] = [];
  for (let a = from; a < entries.length;) {
    const file = fileAround(entries, a, window);
    if (!file || !remoteFollows(entries, a - 1)) break;
    for (let i = a; i <= file.last; i++) if (!take(i)) return out;
    for (let i = a; i <= file.last; i++) out.push(i);
    window -= file.plain;
    a = file.last + 1;
  }
  return out;
}

/** Whether chunk i + 1's remote bytes directly follow chunk i's (one request can hold both). */
function remoteFollows(entries: readonly ChunkEntry[], i: number): boolean {
  return entries[i + 1].remoteOffset === entries[i].remoteOffset + entries[i].remoteSize;
}

/**
 * The chunks first..last of chunk i's file and its plain bytes, or null when the file holds more than `max`.
 * Called with the first chunk of a file, it walks forward only.
 */
function fileAround(entries: readonly ChunkEntry[], i: number, max: number): { first: number; last: number; plain: number } | null {
  if (max <= 0) return null;
  const full = chunkSizeOf(entries);
  let plain = entries[i].plainSize;
  if (plain > max) return null;
  let a = i;
  let b = i;
  for (; a > 0 && continuesFile(entries, a - 1, full); a--) if ((plain += entries[a - 1].plainSize) > max) return null;
  for (; continuesFile(entries, b, full); b++) if ((plain += entries[b + 1].plainSize) > max) return null;
  return { first: a, last: b, plain };
}

/** Whether chunk i + 1 holds more of the file of chunk i: chunk i is full-size and i + 1 follows it directly. */
function continuesFile(entries: readonly ChunkEntry[], i: number, chunkSize: number): boolean {
  const e = entries[i];
  return i + 1 < entries.length && e.plainSize === chunkSize && entries[i + 1].plainOffset === e.plainOffset + e.plainSize;
}

/** The image's chunk size, as the chunk table shows it: its largest chunk (cached per table). */
const chunkSizes = new WeakMap<readonly ChunkEntry[], number>();
function chunkSizeOf(entries: readonly ChunkEntry[]): number {
  let size = chunkSizes.get(entries);
  if (size === undefined) {
    size = entries.reduce((m, e) => Math.max(m, e.plainSize), 0);
    chunkSizes.set(entries, size);
  }
  return size;
}

/**
 * Chunk indexes (in the order given; a prefetch list is in priority order) cut into runs: a chunk joins the
 * run before it when it is the next index, its remote range starts at or before the run's end (adjacent, or
 * overlapping: the spans of a layer's seek index share the bytes around a checkpoint) and the run stays
 * within `maxFetch`. The run then reaches to the farther of the two ends.
 */
export function groupRuns(entries: readonly ChunkEntry[], indexes: Iterable<number>, maxFetch: number): FetchRun[] {
  const runs: FetchRun[] = [];
  let cur: FetchRun | null = null;
  for (const i of indexes) {
    const e = entries[i];
    const runEnd = cur ? cur.remoteOffset + cur.remoteLength : 0;
    const end = Math.max(runEnd, e.remoteOffset + e.remoteSize);
    if (cur && cur.last === i - 1 && e.remoteOffset >= cur.remoteOffset && e.remoteOffset <= runEnd && end - cur.remoteOffset <= maxFetch) {
      cur.last = i;
      cur.remoteLength = end - cur.remoteOffset;
    } else {
      cur = { first: i, last: i, remoteOffset: e.remoteOffset, remoteLength: e.remoteSize };
      runs.push(cur);
    }
  }
  return runs;
}
