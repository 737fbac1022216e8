// How much a miss fetches, and when it reads ahead. An isolated miss fetches the missing chunks widened to
// `minFetch`, to the rest of their file (`fileFetch`) and to the small files after it (`amplify`; plan.ts); a
// miss that continues the previous one starts a sequential stream whose unit doubles up to
// `maxFetch`, and each stream miss also starts the next window ahead of the reader (read-ahead), so a
// sequential reader keeps two requests in flight instead of waiting for one round trip per window.
import type { ChunkEntry } from "../image/chunk-table.ts";
import { extentAt, type FileExtents } from "../image/file-extents.ts";
import { chunksOverlapping, piecesToFetch, planRuns, type FetchRun, type PlanOptions } from "./plan.ts";

/** A sequential reader: windows are planned up to chunk `next`; reaching `trigger` plans the next window. */
interface Stream {
  next: number;
  trigger: number;
  unit: number;
}

/** The fetch plans of one blob's misses; remembers the last one to tell a sequential reader from others. */
export class MissPlanner {
  readonly #entries: readonly ChunkEntry[];
  readonly #opts: PlanOptions;
  readonly #wanted: (i: number) => boolean;
  /** A miss in a file of at most this many bytes (the files below) fetches all of it. */
  readonly #fileFetch: number;
  #stream: Stream | null = null;
  /**
   * Where the files lie, when the chunk table cannot show them (a layer's seek index: its pieces are cut by
   * size, so plan.ts's file-shape heuristics are off for it); from the bootstrap (image/file-extents.ts).
   */
  files: FileExtents | null = null;

  /** `wanted(i)`: chunk i is neither present nor being fetched. `bySize`: the chunks are cut by size, not by file. */
  constructor(entries: readonly ChunkEntry[], opts: PlanOptions, wanted: (i: number) => boolean, bySize = false) {
    this.#entries = entries;
    this.#opts = bySize ? { ...opts, fileFetch: 0, amplify: 0 } : opts;
    this.#fileFetch = opts.fileFetch ?? 0;
    this.#wanted = wanted;
  }

  /** first..last widened to the whole file holding byte `at` (if the files are known and it is small enough). */
  #withFile(first: number, last: number, at: number): [number, number] {
    const file = this.files && extentAt(this.files, at);
    if (!file || file[1] - file[0] > this.#fileFetch) return [first, last];
    const r = chunksOverlapping(this.#entries, file[0], file[1] - file[0]);
    return r ? [Math.min(first, r[0]), Math.max(last, r[1])] : [first, last];
  }

  /**
   * Plans the fetches of a miss on chunks first..last (`missing`: some of them are not being fetched yet) and
   * hands each run to `start` as soon as it is planned, the reader's runs first, then the read-ahead window:
   * a started run is no longer wanted, and the plans after it must see that. `at`: the byte the reader asked
   * first.
   */
  plan(first: number, last: number, missing: boolean, start: (run: FetchRun, readahead: boolean) => void, at = -1): void {
    const { minFetch, maxFetch } = this.#opts;
    const widen = (unit: number): PlanOptions => ({ ...this.#opts, minFetch: unit });
    const s = this.#stream;
    const sequential = s !== null && first <= s.next && last >= s.trigger;
    const unit = sequential ? Math.min(maxFetch, s.unit * 2) : minFetch;
    let end = last + 1;
    if (missing) {
      const [lo, hi] = piecesToFetch(this.#entries, ...this.#withFile(first, last, at), this.#wanted);
      for (const run of planRuns(this.#entries, lo, hi, this.#wanted, widen(unit))) {
        start(run, false);
        end = Math.max(end, run.last + 1);
      }
    }
    if (sequential) {
      const from = Math.max(end, s.next);
      const ahead = from < this.#entries.length && this.#wanted(from)
        ? planRuns(this.#entries, from, from, this.#wanted, widen(unit))
        : [];
      for (const run of ahead) start(run, true);
      this.#stream = { next: ahead.length ? ahead.at(-1)!.last + 1 : from, trigger: ahead.length ? ahead[0].first : from, unit };
    } else if (missing) {
      this.#stream = { next: end, trigger: end, unit };
    }
  }
}
