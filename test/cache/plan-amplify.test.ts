// The small-file amplification (cache.amplify, plan.ts) on a real build: the files it reads from the chunk
// layout are the files mkfs wrote, with deduplicated chunks, inline and empty files among them, and a miss
// fetches its file and the whole files written after it, within the window.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { planRuns } from "../../src/cache/plan.ts";
import { decodeChunkTable, type ChunkEntry } from "../../src/image/chunk-table.ts";
import { buildImage } from "../../src/mkfs/image.ts";
import { ErofsReader, bufferSource } from "../../src/erofs/reader.ts";
import { S_IFMT, S_IFREG } from "../../src/erofs/constants.ts";

const K = 1024;
const CHUNK = 64 * K;

/** A file written by mkfs: its name and the chunk table entries it added (the others it shares). */
interface Written { name: string; first: number; last: number; plain: number }

/** Builds `files` (name → bytes) and returns the chunk table and the files in the order their chunks were written. */
async function build(work: string, files: Record<string, Uint8Array>): Promise<{ entries: ChunkEntry[]; written: Written[]; chunksOf: Map<string, number[]> }> {
  const src = path.join(work, "src");
  for (const [name, bytes] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(src, name)), { recursive: true });
    fs.writeFileSync(path.join(src, name), bytes);
  }
  const img = path.join(work, "img");
  await buildImage(src, img, { chunkSize: CHUNK, inlineMax: 1024 });
  const manifest = JSON.parse(fs.readFileSync(path.join(img, "manifest.json"), "utf8"));
  const entries = decodeChunkTable(fs.readFileSync(path.join(img, manifest.blobs[0].table.path)), "t").entries;
  const index = new Map(entries.map((e, i) => [e.plainOffset, i]));
  const reader = new ErofsReader(bufferSource(fs.readFileSync(path.join(img, manifest.bootstrap.path))));
  const byNid = new Map<number, { name: string; chunks: number[] }>();
  for (const { path: parts, inode } of reader.walk()) {
    if ((inode.mode & S_IFMT) !== S_IFREG || byNid.has(inode.nid)) continue;
    const chunks = reader.chunks(inode).filter((c) => c.addr).map((c) => index.get(c.addr!.startBlk * reader.blkSz)!);
    byNid.set(inode.nid, { name: parts.map((p) => Buffer.from(p).toString()).join("/"), chunks });
  }
  // mkfs writes the files' data in inode order: each file's chunks not seen before are appended.
  const seen = new Set<number>();
  const written: Written[] = [];
  for (const [, f] of [...byNid].sort((a, b) => a[0] - b[0])) {
    const added = f.chunks.filter((i) => !seen.has(i));
    added.forEach((i) => seen.add(i));
    if (added.length === 0) continue;
    const first = Math.min(...added);
    const last = Math.max(...added);
    assert.equal(last - first + 1, new Set(added).size, `${f.name}: its new chunks are back to back`);
    assert.equal(first, written.length ? written.at(-1)!.last + 1 : 0, `${f.name}: written after the file before`);
    written.push({ name: f.name, first, last, plain: added.reduce((n, i) => n + entries[i].plainSize, 0) });
  }
  assert.equal(seen.size, entries.length);
  return { entries, written, chunksOf: new Map([...byNid.values()].map((f) => [f.name, f.chunks])) };
}

/** The chunks a miss on the first chunk of written[k] should fetch: that file, then whole files while they fit. */
function expected(written: Written[], k: number, window: number): number[] {
  const out: number[] = [];
  let left = window;
  for (let j = k; j < written.length && (j === k || written[j].plain <= left); j++) { // its own file: whole (fileFetch)
    for (let i = written[j].first; i <= written[j].last; i++) out.push(i);
    left -= written[j].plain;
  }
  return out;
}

const planned = (entries: ChunkEntry[], i: number, amplify: number, wanted: (i: number) => boolean = () => true, fileFetch = 8 << 20) =>
  planRuns(entries, i, i, wanted, { minFetch: 1, maxFetch: 1 << 30, fileFetch, amplify }).flatMap((r) => Array.from({ length: r.last - r.first + 1 }, (_, n) => r.first + n));

test("amplify on a real build: a miss fetches its file and the files mkfs wrote after it, whole, within the window", async (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-amplify-"));
  t.after(() => fs.rmSync(work, { recursive: true, force: true }));
  const pyc4 = randomBytes(70_000);
  const files: Record<string, Uint8Array> = {
    "enc/a.pyc": randomBytes(5000),
    "enc/b.pyc": randomBytes(3000),
    "enc/c.pyc": randomBytes(2 * CHUNK + 9000),
    "enc/d.pyc": pyc4,
    "enc/e.pyc": randomBytes(12_000),
    "enc/tiny": randomBytes(12), // inline: not in the blob
    "enc/empty": new Uint8Array(0),
    "json/copy.pyc": Buffer.from(pyc4), // deduplicated whole: adds no chunk
    "json/head.pyc": Buffer.concat([pyc4.subarray(0, CHUNK), randomBytes(1000)]), // first chunk shared, tail new
    "json/mid.pyc": Buffer.concat([randomBytes(CHUNK), pyc4.subarray(0, CHUNK), randomBytes(500)]), // a shared chunk inside
    "json/x.pyc": randomBytes(40_000),
    "re/big": randomBytes(12 * CHUNK + 7), // larger than any window here
    "re/y.pyc": randomBytes(6000),
  };
  const { entries, written, chunksOf } = await build(work, files);
  assert.deepEqual(written.map((w) => path.basename(w.name)).sort(), ["a.pyc", "b.pyc", "big", "c.pyc", "d.pyc", "e.pyc", "head.pyc", "mid.pyc", "x.pyc", "y.pyc"]);
  for (const window of [16 * K, 128 * K, 256 * K, 512 * K]) {
    for (let k = 0; k < written.length; k++) {
      assert.deepEqual(planned(entries, written[k].first, window), expected(written, k, window), `window ${window}: a miss in ${written[k].name}`);
    }
  }
  // A miss on a deduplicated chunk is planned from the file that wrote it: that file and the ones after it.
  const d = written.find((w) => w.name === "enc/d.pyc")!;
  assert.deepEqual(planned(entries, chunksOf.get("json/head.pyc")![0], 256 * K), expected(written, written.indexOf(d), 256 * K));
  // A random reader of a file larger than fileFetch: as asked, whatever the window.
  const big = chunksOf.get("re/big")!;
  for (const i of [big[0], big[5], big.at(-1)!]) assert.deepEqual(planned(entries, i, 512 * K, () => true, 512 * K), [i]);
  // Stops at a file present already (or being fetched): the files after it are not fetched either.
  const b = written.find((w) => w.name === "enc/b.pyc")!;
  const a = written.find((w) => w.name === "enc/a.pyc")!;
  assert.deepEqual(planned(entries, a.first, 512 * K, (i) => i !== b.first), [a.first]);
});

test("amplify on a real build: a file whose last chunk is full-size looks like one file with the file after it", async (t) => {
  // The chunk layout cannot tell where such a file ends (its size is a multiple of the chunk size, or its last
  // chunk is shared): the two are fetched together or not at all, and never a part of either.
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-amplify-"));
  t.after(() => fs.rmSync(work, { recursive: true, force: true }));
  const { entries, written } = await build(work, {
    "a/1": randomBytes(4000),
    "a/2": randomBytes(2 * CHUNK), // ends full-size: 2 + 3 look like one file of 2 * CHUNK + 30000 bytes
    "a/3": randomBytes(30_000),
    "a/4": randomBytes(5000),
  });
  const [f1, f2, f3, f4] = written;
  const range = (w: Written) => Array.from({ length: w.last - w.first + 1 }, (_, n) => w.first + n);
  assert.deepEqual(planned(entries, f1.first, 166 * K), [...range(f1), ...range(f2), ...range(f3)], "4 does not fit after them");
  assert.deepEqual(planned(entries, f1.first, 150 * K), range(f1), "2 and 3 together do not fit, 2 alone would");
  assert.deepEqual(planned(entries, f3.first, 200 * K), [...range(f3), ...range(f4), ...range(f2)], "a miss in 3 fetches 2 as its file's start");
});
