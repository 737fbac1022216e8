// The miss policy (plan.ts, miss-planner.ts): how far a miss is widened, on synthetic chunk tables, and the
// layout it reads files from (a full-size chunk followed directly continues its file) checked on a real build.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { groupRuns, piecesToFetch, planRuns, type FetchRun } from "../../src/cache/plan.ts";
import { MissPlanner } from "../../src/cache/miss-planner.ts";
import type { ChunkEntry } from "../../src/image/chunk-table.ts";
import { decodeChunkTable } from "../../src/image/chunk-table.ts";
import { buildImage } from "../../src/mkfs/image.ts";
import { ErofsReader, bufferSource } from "../../src/erofs/reader.ts";
import { S_IFMT, S_IFREG } from "../../src/erofs/constants.ts";

const K = 1024;
const CHUNK = 128 * K;

/** A chunk table of files laid out one after another (sizes in bytes), each cut into CHUNK-size chunks. */
function tableOf(files: number[], gapAfter = new Set<number>()): ChunkEntry[] {
  const entries: ChunkEntry[] = [];
  let plain = 0;
  let remote = 0;
  for (const size of files) {
    for (let off = 0; off < size; off += CHUNK) {
      const len = Math.min(CHUNK, size - off);
      entries.push({ plainOffset: plain, remoteOffset: remote, plainSize: len, remoteSize: len >> 1, flags: 0, digest: new Uint8Array(32) });
      plain += Math.ceil(len / 4096) * 4096;
      remote += len >> 1;
      if (gapAfter.has(entries.length - 1)) plain += 4096;
    }
  }
  return entries;
}

const chunks = (runs: FetchRun[]) => runs.map((r) => [r.first, r.last]);
const all = () => true;

test("without fileFetch an isolated miss is widened to minFetch only", () => {
  const t = tableOf([10 * CHUNK + 100]); // one file, chunks 0..10
  assert.deepEqual(chunks(planRuns(t, 4, 4, all, { minFetch: 64 * K, maxFetch: 4 << 20 })), [[4, 4]]);
  assert.deepEqual(chunks(planRuns(t, 4, 4, all, { minFetch: 3 * CHUNK, maxFetch: 4 << 20, fileFetch: 0 })), [[4, 6]]);
});

test("a miss fetches the rest of its file: the asked chunk and what follows first, then what comes before", () => {
  const t = tableOf([50 * K, 6 * CHUNK + 10 * K, 30 * K]); // chunk 0 | file chunks 1..7 | chunk 8
  const runs = planRuns(t, 4, 4, all, { minFetch: 64 * K, maxFetch: 4 << 20, fileFetch: 8 << 20 });
  assert.deepEqual(chunks(runs), [[4, 7], [1, 3]], "never into the neighbouring files");
  assert.equal(runs[0].remoteOffset, t[4].remoteOffset);
});

test("minFetch still widens into neighbouring files; only the asked chunk's file is fetched whole", () => {
  const t = tableOf([50 * K, 20 * K, 3 * CHUNK]); // chunk 0 | chunk 1 | chunks 2..4
  assert.deepEqual(chunks(planRuns(t, 1, 1, all, { minFetch: 64 * K, maxFetch: 4 << 20, fileFetch: 8 << 20 })), [[1, 2]]);
});

test("a file larger than fileFetch is fetched as asked (a random reader of a big file)", () => {
  const t = tableOf([20 * CHUNK]);
  assert.deepEqual(chunks(planRuns(t, 10, 10, all, { minFetch: 64 * K, maxFetch: 4 << 20, fileFetch: 19 * CHUNK })), [[10, 10]]);
  assert.deepEqual(chunks(planRuns(t, 10, 10, all, { minFetch: 64 * K, maxFetch: 4 << 20, fileFetch: 20 * CHUNK })), [[10, 19], [0, 9]]);
});

test("chunks present or being fetched are skipped, and runs stay within maxFetch", () => {
  const t = tableOf([10 * CHUNK]);
  const wanted = (i: number) => i !== 6 && i !== 2;
  assert.deepEqual(chunks(planRuns(t, 4, 4, wanted, { minFetch: 64 * K, maxFetch: 4 << 20, fileFetch: 8 << 20 })), [[4, 5], [7, 9], [0, 1], [3, 3]]);
  assert.deepEqual(chunks(planRuns(t, 0, 0, all, { minFetch: 64 * K, maxFetch: 2 * (CHUNK >> 1), fileFetch: 8 << 20 })), [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]);
});

test("a full-size chunk not directly followed by the next one ends its file", () => {
  const t = tableOf([4 * CHUNK, 4 * CHUNK], new Set([3])); // two files of exactly 4 chunks, a block between them
  assert.deepEqual(chunks(planRuns(t, 1, 1, all, { minFetch: 64 * K, maxFetch: 4 << 20, fileFetch: 8 << 20 })), [[1, 3], [0, 0]]);
});

test("the miss planner passes fileFetch on: a miss in a file brings the rest of it", () => {
  const t = tableOf([8 * CHUNK + 5]);
  const started: Array<[number, number, boolean]> = [];
  const inFlight = new Set<number>();
  const planner = new MissPlanner(t, { minFetch: 64 * K, maxFetch: 4 << 20, fileFetch: 8 << 20 }, (i) => !inFlight.has(i));
  planner.plan(5, 5, true, (run, readahead) => {
    for (let i = run.first; i <= run.last; i++) inFlight.add(i);
    started.push([run.first, run.last, readahead]);
  });
  assert.deepEqual(started, [[5, 8, false], [0, 4, false]]);
});

test("mkfs's layout is what plan.ts reads files from: a file's chunks are full-size and back to back, its last one ends it", async (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-plan-"));
  t.after(() => fs.rmSync(work, { recursive: true, force: true }));
  const src = path.join(work, "src");
  fs.mkdirSync(src);
  // Not a multiple of the chunk size: such a file's last chunk is full-size too, and the widening runs on into
  // the file after it (bounded by fileFetch), which this check would report.
  const sizes = [5000, 3 * 65536 + 1, 200_000, 70_000, 65535, 12, 2 * 65536 + 4096];
  sizes.forEach((n, f) => fs.writeFileSync(path.join(src, `f${f}`), randomBytes(n))); // no chunk shared (deduplicated)
  const img = path.join(work, "img");
  await buildImage(src, img, { chunkSize: 64 * K, inlineMax: 0 });
  const manifest = JSON.parse(fs.readFileSync(path.join(img, "manifest.json"), "utf8"));
  const entries = decodeChunkTable(fs.readFileSync(path.join(img, manifest.blobs[0].table.path)), "t").entries;
  const reader = new ErofsReader(bufferSource(fs.readFileSync(path.join(img, manifest.bootstrap.path))));
  let files = 0;
  for (const { inode } of reader.walk()) {
    if ((inode.mode & S_IFMT) !== S_IFREG) continue;
    const starts = reader.chunks(inode).filter((c) => c.addr).map((c) => c.addr!.startBlk * reader.blkSz);
    if (starts.length === 0) continue;
    files++;
    const first = entries.findIndex((e) => e.plainOffset === starts[0]);
    assert.ok(first >= 0, "a file starts at a chunk");
    const last = first + starts.length - 1;
    // The whole file, and nothing more, is what a miss on its first chunk widens to (when minFetch adds nothing).
    assert.deepEqual(chunks(planRuns(entries, first, first, all, { minFetch: 1, maxFetch: 1 << 30, fileFetch: 1 << 30 })), [[first, last]], `file of ${starts.length} chunks at ${first}`);
  }
  assert.equal(files, sizes.length);
});

const AMP = { minFetch: 32 * K, maxFetch: 4 << 20, fileFetch: 8 << 20 };

test("amplify: a miss in a small file also fetches the small files after it whole, within the window, in the same run", () => {
  // chunk 0 (20K) | chunk 1 (30K) | chunk 2 (40K) | chunks 3..4 (CHUNK + 50K) | chunk 5 (10K)
  const t = tableOf([20 * K, 30 * K, 40 * K, CHUNK + 50 * K, 10 * K]);
  // 30K + 40K + 178K = 248K fits 256K; chunk 5 (10K) would not.
  assert.deepEqual(chunks(planRuns(t, 1, 1, all, { ...AMP, amplify: 256 * K })), [[1, 4]]);
  // 30K + 40K = 70K fits 128K, the 178K file does not: the amplification stops there (it does not skip it).
  assert.deepEqual(chunks(planRuns(t, 1, 1, all, { ...AMP, amplify: 128 * K })), [[1, 2]]);
  // Without amplify: the file and the minFetch widening (into chunk 2) only.
  assert.deepEqual(chunks(planRuns(t, 1, 1, all, { ...AMP, amplify: 0 })), [[1, 2]]);
  assert.deepEqual(chunks(planRuns(t, 1, 1, all, { ...AMP, minFetch: 4 * K })), [[1, 1]]);
  // The last file of the blob: nothing after it.
  assert.deepEqual(chunks(planRuns(t, 5, 5, all, { ...AMP, minFetch: 4 * K, amplify: 256 * K })), [[5, 5]]);
});

test("amplify: the missed file's own bytes count in the window, the part before the miss comes in its own run", () => {
  const t = tableOf([2 * CHUNK + 10 * K, 20 * K, 30 * K]); // chunks 0..2 | 3 | 4
  // 266K + 20K fits 300K, + 30K does not.
  assert.deepEqual(chunks(planRuns(t, 1, 1, all, { ...AMP, amplify: 300 * K })), [[1, 3], [0, 0]]);
  // A file of the window's size or more brings no neighbour (minFetch may still widen into one).
  assert.deepEqual(chunks(planRuns(t, 1, 1, all, { ...AMP, minFetch: 4 * K, amplify: 266 * K })), [[1, 2], [0, 0]]);
});

test("amplify: a miss in a small file is not widened by minFetch, around it come whole files only", () => {
  const t = tableOf([50 * K, 20 * K, 30 * K, 10 * K]); // chunks 0 | 1 | 2 | 3
  // 20K + 30K does not fit 32K: neither the file before nor a part of the file after is fetched.
  assert.deepEqual(chunks(planRuns(t, 1, 1, all, { ...AMP, minFetch: 32 * K, amplify: 32 * K })), [[1, 1]]);
  assert.deepEqual(chunks(planRuns(t, 1, 1, all, { ...AMP, minFetch: 32 * K, amplify: 64 * K })), [[1, 3]]);
  assert.deepEqual(chunks(planRuns(t, 1, 1, all, { ...AMP, minFetch: 32 * K, amplify: 0 })), [[1, 2]], "without amplify: minFetch");
  // A file of the window's size or more is no small file: minFetch widens around it as before.
  assert.deepEqual(chunks(planRuns(t, 1, 1, all, { ...AMP, minFetch: 16 * K, amplify: 20 * K })), [[1, 1]]);
  assert.deepEqual(chunks(planRuns(t, 1, 1, all, { ...AMP, minFetch: 64 * K, amplify: 20 * K })), [[0, 3]]);
});

test("amplify: a sequential reader's unit larger than the window widens as before", () => {
  const t = tableOf([...Array.from({ length: 40 }, () => 20 * K), 2 * CHUNK + 1]); // forty 20K files, then a larger one
  assert.deepEqual(chunks(planRuns(t, 3, 3, all, { ...AMP, minFetch: 32 * K, amplify: 64 * K })), [[3, 5]], "20K + 20K + 20K");
  assert.deepEqual(chunks(planRuns(t, 3, 3, all, { ...AMP, minFetch: 256 * K, amplify: 64 * K })), [[3, 15]], "the unit: 13 x 20K");
  // In the miss planner: misses that follow each other double the unit, which soon passes the window.
  const inFlight = new Set<number>();
  const planner = new MissPlanner(t, { ...AMP, minFetch: 32 * K, amplify: 64 * K }, (i) => !inFlight.has(i));
  const runs: Array<[number, number]> = [];
  for (let i = 0; i < 40; i++) {
    if (inFlight.has(i)) continue;
    planner.plan(i, i, true, (run) => { for (let c = run.first; c <= run.last; c++) inFlight.add(c); runs.push([run.first, run.last]); });
  }
  assert.ok(runs.some(([a, b]) => b - a + 1 > 3), `runs longer than the window: ${JSON.stringify(runs)}`);
  assert.ok(runs.length < 10, `${runs.length} runs for 40 files read in order`);
});

test("amplify acts on files fetched whole only: fileFetch 0 turns it off too", () => {
  const t = tableOf([2 * CHUNK + 10 * K, 20 * K]); // chunks 0..2 | 3
  assert.deepEqual(chunks(planRuns(t, 1, 1, all, { minFetch: 4 * K, maxFetch: 4 << 20, fileFetch: 0, amplify: 512 * K })), [[1, 1]]);
  assert.deepEqual(chunks(planRuns(t, 1, 1, all, { minFetch: 4 * K, maxFetch: 4 << 20, fileFetch: 8 << 20, amplify: 512 * K })), [[1, 3], [0, 0]]);
});

test("amplify stops at a chunk present or being fetched, and where the remote form is not contiguous", () => {
  const t = tableOf([10 * K, 20 * K, 30 * K, 40 * K]); // chunks 0 | 1 | 2 | 3
  const opts = { ...AMP, minFetch: 4 * K, amplify: 512 * K };
  assert.deepEqual(chunks(planRuns(t, 0, 0, (i) => i !== 2, opts)), [[0, 1]], "chunk 2 present: chunk 3 is not fetched");
  const gap = t.map((e, i) => (i >= 2 ? { ...e, remoteOffset: e.remoteOffset + 512 } : e));
  assert.deepEqual(chunks(planRuns(gap, 0, 0, all, opts)), [[0, 1]]);
});

test("amplify: a random reader of a large file is fetched as asked, and a large file after small ones is not fetched", () => {
  const t = tableOf([40 * CHUNK + 5, 10 * K]); // chunks 0..40 | 41
  const opts = { minFetch: 32 * K, maxFetch: 4 << 20, fileFetch: 4 * CHUNK, amplify: 512 * K };
  assert.deepEqual(chunks(planRuns(t, 17, 17, all, opts)), [[17, 17]]);
  assert.deepEqual(chunks(planRuns(t, 40, 40, all, { ...opts, minFetch: 1 })), [[40, 40]], "its last chunk neither: the file is large");
  const u = tableOf([10 * K, 40 * CHUNK + 5]); // chunk 0 | 1..41
  assert.deepEqual(chunks(planRuns(u, 0, 0, all, { ...opts, minFetch: 4 * K })), [[0, 0]]);
});

test("amplify in the miss planner: the read-ahead of a sequential reader is not widened past the window's files", () => {
  const t = tableOf([10 * K, 10 * K, 10 * K, 10 * K, 10 * K, 10 * K]); // six one-chunk files
  const started: Array<[number, number, boolean]> = [];
  const inFlight = new Set<number>();
  const planner = new MissPlanner(t, { minFetch: 4 * K, maxFetch: 4 << 20, fileFetch: 8 << 20, amplify: 30 * K }, (i) => !inFlight.has(i));
  const plan = (i: number) => planner.plan(i, i, !inFlight.has(i), (run, readahead) => {
    for (let c = run.first; c <= run.last; c++) inFlight.add(c);
    started.push([run.first, run.last, readahead]);
  });
  plan(0);
  assert.deepEqual(started, [[0, 2, false]], "10K + 10K + 10K: the window");
  plan(3);
  assert.equal(started[1][0], 3, "the next miss starts where the amplification ended");
});

test("groupRuns() joins spans whose remote ranges overlap or touch (a seek index), up to the farther end and maxFetch", () => {
  const span = (remoteOffset: number, remoteSize: number, i: number): ChunkEntry => ({ plainOffset: i * 4096, plainSize: 4096, remoteOffset, remoteSize, flags: 0, digest: new Uint8Array(32) });
  const spans = [span(10, 100, 0), span(90, 60, 1), span(150, 10, 2), span(161, 5, 3), span(165, 20, 4)];
  const run = (first: number, last: number, remoteOffset: number, remoteLength: number): FetchRun => ({ first, last, remoteOffset, remoteLength });
  assert.deepEqual(groupRuns(spans, [0, 1, 2, 3, 4], 1000), [run(0, 2, 10, 150), run(3, 4, 161, 24)]); // 3 starts after 2's end: a gap
  assert.deepEqual(groupRuns(spans, [0, 1, 2], 145), [run(0, 1, 10, 140), run(2, 2, 150, 10)]);
  assert.deepEqual(groupRuns(spans, [0, 2], 1000), [run(0, 0, 10, 100), run(2, 2, 150, 10)]); // not the next index
  const inside = [span(0, 100, 0), span(20, 30, 1)]; // wholly inside the run: the run keeps its end
  assert.deepEqual(groupRuns(inside, [0, 1], 1000), [run(0, 1, 0, 100)]);
});

/** A seek index's entries: two spans of four 256 KiB pieces, each piece decoding from its span's checkpoint. */
function pieces(): ChunkEntry[] {
  const P = 256 * 1024;
  return Array.from({ length: 8 }, (_, i) => {
    const span = i >> 2;
    return { plainOffset: i * P, plainSize: P, remoteOffset: span * 1000, remoteSize: 300 + (i & 3) * 250, flags: 0, digest: new Uint8Array(32), skip: (i & 3) * P, bits: 0 };
  });
}

test("pieces of a span: a miss takes the earlier missing pieces along (their bytes come with it); after a piece that is there, the rest of the span", () => {
  const e = pieces();
  const have = new Set<number>();
  const wanted = (i: number) => !have.has(i);
  assert.deepEqual(piecesToFetch(e, 2, 2, wanted), [0, 2]);
  have.add(0);
  assert.deepEqual(piecesToFetch(e, 2, 2, wanted), [1, 3], "piece 0 is there: the reader goes through the span");
  assert.deepEqual(piecesToFetch(e, 5, 5, wanted), [4, 5], "the next span starts at its own checkpoint");
  assert.deepEqual(piecesToFetch(tableOf([5 * CHUNK, 3 * CHUNK]), 4, 4, all), [4, 4], "a table of our own images: as asked");
});

test("MissPlanner with file extents (a seek index): a miss in a small file fetches every piece of it in one request", () => {
  const e = pieces();
  const runs: FetchRun[] = [];
  const planner = new MissPlanner(e, { minFetch: 0, maxFetch: 4 << 20, fileFetch: 8 << 20, amplify: 128 << 10 }, () => true, true);
  planner.plan(1, 1, true, (r) => runs.push(r), 300_000); // no files known: as asked, with the earlier piece
  assert.deepEqual(runs.map((r) => [r.first, r.last]), [[0, 1]]);
  planner.files = { starts: Float64Array.from([100_000, 1_000_000]), ends: Float64Array.from([150_000, 1_900_000]) };
  runs.length = 0;
  planner.plan(3, 3, true, (r) => runs.push(r), 1_000_000);
  assert.deepEqual(runs.map((r) => [r.first, r.last, r.remoteOffset, r.remoteLength]), [[0, 7, 0, 1000 + 1050]], "pieces 3..7 of the file and 0..2 before it, one request across the checkpoint");
});
