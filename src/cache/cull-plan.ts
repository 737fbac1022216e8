// Pure parts of culling under a size budget: the watermarks, parsing the budget options, and choosing the
// least recently used chunks across blobs. The core (cull.ts) gathers the candidates and does the I/O.
import { EodError } from "../errors.ts";
import type { ChunkTable } from "../image/chunk-table.ts";

export interface BudgetOptions {
  /** Bytes of present chunks the cache may hold (0 = no budget). */
  size: number;
  /** Culling starts when cached bytes exceed this percent of `size` (default 95). */
  highPct: number;
  /** ...and frees the least recently used chunks down to this percent (default 85). */
  lowPct: number;
}

export const BUDGET_DEFAULTS: BudgetOptions = { size: 0, highPct: 95, lowPct: 85 };

/** The byte levels of a budget: cull above `high`, down to `low`. */
export function watermarks(b: BudgetOptions): { high: number; low: number } {
  return { high: Math.floor((b.size * b.highPct) / 100), low: Math.floor((b.size * b.lowPct) / 100) };
}

/**
 * Parses a size: bytes with an optional K/M/G/T suffix (powers of 1024), e.g. "512M", "20G", "1048576".
 * @throws EodError USAGE
 */
export function parseByteSize(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b?)?$/i.exec(text.trim());
  if (!m) throw new EodError("USAGE", `Cannot parse ${what} ${JSON.stringify(text)}: expected a number of bytes with an optional K/M/G/T suffix, e.g. 20G`);
  const suffix = (m[2] ?? "").toLowerCase();
  const unit = suffix ? "kmgt".indexOf(suffix[0]) + 1 : 0;
  return Math.floor(Number(m[1]) * 1024 ** unit);
}

/** @throws EodError USAGE unless 0 < low < high <= 100 */
export function checkWatermarks(b: Pick<BudgetOptions, "highPct" | "lowPct">): void {
  if (!(b.lowPct > 0 && b.lowPct < b.highPct && b.highPct <= 100)) {
    throw new EodError("USAGE", `Cannot use cache watermarks high=${b.highPct}% low=${b.lowPct}%: need 0 < low < high <= 100`);
  }
}

/** What the planner needs of one blob: its chunks' ticks and sizes, and which chunks may go. */
export interface CullView {
  readonly ticks: ArrayLike<number>;
  /** Bytes the chunk holds in the cache (0 = not present). */
  bytes(chunk: number): number;
  /** Whether the chunk may be culled now (present, not being fetched, not being read). */
  cullable(chunk: number): boolean;
}

export interface CullPick {
  /** Index into the views passed to planCull. */
  blob: number;
  /** Chunks of that blob, in the order chosen (coldest first). */
  chunks: number[];
}

/**
 * Chooses the least recently used cullable chunks across all blobs until they add up to at least `need`
 * bytes (fewer when there are not enough). Chunks last used at a tick after `maxTick` are never chosen (they
 * may be being read). Ties go to the lower blob, then the lower chunk, so the plan is deterministic.
 */
export function planCull(views: readonly CullView[], need: number, maxTick: number): CullPick[] {
  if (need <= 0) return [];
  const blob: number[] = [];
  const chunk: number[] = [];
  const tick: number[] = [];
  views.forEach((v, b) => {
    for (let i = 0; i < v.ticks.length; i++) {
      if (v.ticks[i] > maxTick || !v.cullable(i)) continue;
      blob.push(b);
      chunk.push(i);
      tick.push(v.ticks[i]);
    }
  });
  const order = Array.from(blob.keys()).sort((x, y) => tick[x] - tick[y] || blob[x] - blob[y] || chunk[x] - chunk[y]);
  const picks = new Map<number, number[]>();
  let freed = 0;
  for (const k of order) {
    if (freed >= need) break;
    const list = picks.get(blob[k]) ?? [];
    if (list.length === 0) picks.set(blob[k], list);
    list.push(chunk[k]);
    freed += views[blob[k]].bytes(chunk[k]);
  }
  return [...picks].sort((a, b) => a[0] - b[0]).map(([b, chunks]) => ({ blob: b, chunks }));
}

/** The byte range to punch for a chunk: its bytes, widened to the block its tail is in (never into the next chunk). */
export function punchRange(offset: number, size: number, nextOffset: number, block = 4096): { offset: number; length: number } {
  const end = Math.min(Math.ceil((offset + size) / block) * block, nextOffset);
  return { offset, length: Math.max(size, end - offset) };
}

/** punchRange() of chunk `i` of `table`: the next chunk, or the end of the blob, bounds it. */
export function chunkPunchRange(table: ChunkTable, i: number): { offset: number; length: number } {
  const e = table.entries;
  return punchRange(e[i].plainOffset, e[i].plainSize, i + 1 < e.length ? e[i + 1].plainOffset : table.kernelSize);
}
