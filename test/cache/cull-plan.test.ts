// Culling under a budget, the pure parts: watermarks, option parsing, LRU choice across blobs, punch ranges.
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkWatermarks, parseByteSize, planCull, punchRange, watermarks, type CullView } from "../../src/cache/cull-plan.ts";
import { ChunkClock, nowTick, TICK_MS } from "../../src/cache/lru.ts";

function view(ticks: number[], sizes: number[] | number = 100, cullable: (i: number) => boolean = () => true): CullView {
  return { ticks, bytes: (i) => (typeof sizes === "number" ? sizes : sizes[i]), cullable };
}

test("watermarks and defaults", () => {
  assert.deepEqual(watermarks({ size: 1000, highPct: 95, lowPct: 85 }), { high: 950, low: 850 });
  checkWatermarks({ highPct: 95, lowPct: 85 });
  checkWatermarks({ highPct: 90, lowPct: 50 });
  assert.equal(parseByteSize("20G", "x"), 20 * 1024 ** 3);
  assert.equal(parseByteSize("1.5K", "x"), 1536);
  assert.equal(parseByteSize("4096", "x"), 4096);
});

test("bad budget options are USAGE errors", () => {
  for (const s of ["lots", "1X"]) assert.throws(() => parseByteSize(s, "--cache-size"), { code: "USAGE" }, s);
  for (const [h, l] of [[80, 90], [101, 85], [95, 0]]) assert.throws(() => checkWatermarks({ highPct: h, lowPct: l }), { code: "USAGE" }, `${h} ${l}`);
});

test("planCull takes the least recently used chunks across blobs until enough bytes", () => {
  const a = view([5, 1, 9, 3]);
  const b = view([2, 8, 4]);
  assert.deepEqual(planCull([a, b], 250, 100), [{ blob: 0, chunks: [1, 3] }, { blob: 1, chunks: [0] }]);
  assert.deepEqual(planCull([a, b], 1, 100), [{ blob: 0, chunks: [1] }]);
  assert.deepEqual(planCull([a, b], 0, 100), []);
});

test("planCull never takes chunks used after maxTick, nor uncullable (missing, in flight) ones", () => {
  const a = view([1, 2, 3, 4], 100, (i) => i !== 0);
  assert.deepEqual(planCull([a], 1000, 3), [{ blob: 0, chunks: [1, 2] }]);
});

test("planCull: sizes count, ties are deterministic, not enough is all there is", () => {
  const a = view([7, 7], [10, 500]);
  const b = view([7], [50]);
  assert.deepEqual(planCull([a, b], 505, 7), [{ blob: 0, chunks: [0, 1] }]);
  assert.deepEqual(planCull([b, a], 10_000, 7), [{ blob: 0, chunks: [0] }, { blob: 1, chunks: [0, 1] }]);
});

test("punchRange covers the chunk's last block but never the next chunk", () => {
  assert.deepEqual(punchRange(0, 4096, 4096), { offset: 0, length: 4096 });
  assert.deepEqual(punchRange(8192, 5000, 16384), { offset: 8192, length: 8192 });
  assert.deepEqual(punchRange(8192, 5000, 13192), { offset: 8192, length: 5000 });
  assert.deepEqual(punchRange(0, 100, 1 << 20), { offset: 0, length: 4096 });
});

test("ChunkClock: a coarse tick per chunk, persisted ticks kept", () => {
  const t0 = nowTick();
  const c = new ChunkClock(4, null, 10);
  assert.deepEqual([...c.ticks], [10, 10, 10, 10]);
  c.touch(1, 2);
  assert.ok(c.ticks[1] >= t0 && c.ticks[2] === c.ticks[1] && c.ticks[3] === 10);
  assert.deepEqual([...new ChunkClock(2, Uint32Array.from([3, 4])).ticks], [3, 4]);
  assert.equal(nowTick(Date.UTC(2024, 0, 1) + 10 * TICK_MS), 10);
});
