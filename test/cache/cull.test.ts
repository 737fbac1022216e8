// Culling under a size budget, through the cache core against local image directories (no kernel): the
// budget holds, every byte read is right, culling one blob never corrupts another, a full filesystem culls
// and the write is retried, and LRU state and resting blobs survive a restart.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import os from "node:os";
import { buildImage } from "../../src/mkfs/image.ts";
import { CACHE_DEFAULTS, CacheCore, fetchSizesWithin } from "../../src/cache/core.ts";
import { SparseFileStorage, type BlobStorage } from "../../src/cache/storage.ts";
import { PresenceMap } from "../../src/cache/presence.ts";
import { decodeChunkTable, type ChunkTable } from "../../src/image/chunk-table.ts";
import { writeKernelForm } from "../../src/image/unpack.ts";
import { openRemote } from "../../src/remote/open-remote.ts";
import type { Remote } from "../../src/remote/remote.ts";
import { dataRanges } from "../../src/sys/seek.ts";

interface Img { dir: string; id: string; table: ChunkTable; kernel: Buffer; ctab: string }
let work = "";
const imgs: Img[] = [];
const remotes: Remote[] = [];
const CHUNK = 64 << 10;

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-cull-"));
  for (const seed of [1, 2]) {
    const src = path.join(work, `src${seed}`);
    fs.mkdirSync(src);
    let x = seed;
    for (let f = 0; f < 24; f++) {
      const b = Buffer.alloc(5000 + f * 13007);
      for (let i = 0; i < b.length; i++) { x = (x * 1103515245 + 12345) >>> 0; b[i] = x >>> 24; }
      fs.writeFileSync(path.join(src, `f${f}`), b);
    }
    const dir = path.join(work, `img${seed}`);
    await buildImage(src, dir, { chunkSize: CHUNK, inlineMax: 0 });
    const m = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
    const ctab = path.join(dir, m.blobs[0].table.path);
    const table = decodeChunkTable(fs.readFileSync(ctab), "t");
    const kf = path.join(work, `kernel${seed}`);
    const fd = fs.openSync(kf, "w");
    writeKernelForm(path.join(dir, m.blobs[0].remote.path), m.blobs[0].remote.digest, table, m.blobs[0].id, fd);
    fs.closeSync(fd);
    imgs.push({ dir, id: m.blobs[0].id, table, kernel: fs.readFileSync(kf), ctab });
  }
});

after(async () => {
  for (const r of remotes) await r.close();
  fs.rmSync(work, { recursive: true, force: true });
});

function core(name: string, opts = {}): CacheCore {
  const dir = path.join(work, name);
  const c = new CacheCore(dir, { flushIntervalMs: 0, cullGraceMs: 0, ...opts });
  for (const i of imgs) fs.copyFileSync(i.ctab, path.join(dir, "blobs", `${i.id}.ctab`)); // as the daemon keeps them
  return c;
}

function open(c: CacheCore, i: Img, storage?: BlobStorage) {
  const remote = openRemote(i.dir);
  remotes.push(remote);
  return c.openBlob(i.id, i.table, { remote, path: `blobs/${i.id}` }, storage);
}

/** Every present chunk of the blob's cache file holds exactly the kernel form's bytes; returns the allocated bytes. */
function checkFile(c: CacheCore, i: Img): number {
  const file = fs.readFileSync(c.blobPath(i.id));
  const blob = c.blob(i.id);
  const presence = blob?.presence ?? PresenceMap.load(`${c.blobPath(i.id)}.present`, i.table.entries.length, Buffer.alloc(32));
  i.table.entries.forEach((e, k) => {
    if (blob ? blob.presence.has(k) : presence?.has(k)) {
      assert.ok(file.subarray(e.plainOffset, e.plainOffset + e.plainSize).equals(i.kernel.subarray(e.plainOffset, e.plainOffset + e.plainSize)), `chunk ${k} of ${i.id.slice(0, 8)}`);
    }
  });
  const fd = fs.openSync(c.blobPath(i.id), "r");
  try { return dataRanges(fd, file.length).reduce((n, r) => n + r.length, 0); } finally { fs.closeSync(fd); }
}

/** Reads [off, off+len) the way a frontend does: ensure, then the bytes of the cache file. */
async function read(c: CacheCore, i: Img, off: number, len: number): Promise<void> {
  await c.ensure(i.id, off, len);
  const fd = fs.openSync(c.blobPath(i.id), "r");
  try {
    const got = Buffer.alloc(len);
    fs.readSync(fd, got, 0, len, off);
    assert.ok(got.equals(i.kernel.subarray(off, off + len)), `bytes ${off}+${len} of ${i.id.slice(0, 8)}`);
  } finally { fs.closeSync(fd); }
}

test("a budget smaller than the working set: cached bytes stay under it (+ one fetch unit), every byte is right", async () => {
  const budget = 1 << 20;
  // The default miss policy (whole files up to 8 MiB, amplify): each fetch is cut to 1/8 of the budget.
  const c = core("budget", { cacheSize: budget, maxFetch: 256 << 10 });
  const blobs = imgs.map((i) => open(c, i));
  const total = imgs.reduce((n, i) => n + i.kernel.length, 0);
  assert.ok(total > 4 * budget, `working set ${total} B`);
  let x = 7;
  let worst = 0;
  for (let step = 0; step < 300; step++) {
    x = (x * 1103515245 + 12345) >>> 0;
    const i = imgs[x & 1];
    const off = (x >>> 8) % (i.kernel.length - 4096);
    await read(c, i, off, Math.min(20000, i.kernel.length - off));
    const s = c.cacheStats();
    worst = Math.max(worst, s.cachedBytes);
    assert.ok(s.cachedBytes <= budget + (256 << 10), `cached ${s.cachedBytes} B over the budget`);
    assert.equal(s.cachedBytes, blobs.reduce((n, b) => n + b.cachedBytes, 0));
  }
  const allocated = imgs.reduce((n, i) => n + checkFile(c, i), 0);
  const s = c.cacheStats();
  assert.ok(s.evictions > 0 && s.cullRuns > 0, JSON.stringify(s));
  assert.ok(allocated <= budget + (256 << 10), `allocated ${allocated} B`);
  assert.ok(worst <= budget, `worst ${worst}`);
  await c.close();
});

test("readers at once, each asking more than the whole budget: their chunks stay until read, every byte is right, then the cache goes back under the budget", async () => {
  const budget = 256 << 10;
  const c = core("asked", { cacheSize: budget });
  imgs.forEach((i) => open(c, i));
  const reads: Array<Promise<void>> = [];
  for (let k = 0; k < 8; k++) {
    const i = imgs[k & 1];
    const off = ((k * 397_981) % (i.kernel.length - (600 << 10))) & ~4095;
    reads.push(read(c, i, off, 600 << 10));
  }
  await Promise.all(reads);
  await new Promise((r) => setTimeout(r, 250)); // past the cull grace
  await read(c, imgs[1], imgs[1].kernel.length - 4096, 4096); // the next fill culls what the readers left behind
  const s = c.cacheStats();
  assert.ok(s.evictions > 0, JSON.stringify(s));
  assert.ok(s.cachedBytes <= budget + (600 << 10), `cached ${s.cachedBytes} B`);
  imgs.forEach((i) => checkFile(c, i));
  await c.close();
});

test("with a budget, one fetch brings at most 1/8 of it; without one, the sizes as configured", () => {
  const sized = fetchSizesWithin({ ...CACHE_DEFAULTS, cacheSize: 1 << 20 });
  assert.deepEqual(sized, { minFetch: 32 << 10, fileFetch: 128 << 10, amplify: 128 << 10, maxFetch: 128 << 10, prefetchFetch: 128 << 10 });
  const free = fetchSizesWithin(CACHE_DEFAULTS);
  assert.equal(free.fileFetch, CACHE_DEFAULTS.fileFetch);
  assert.equal(free.maxFetch, CACHE_DEFAULTS.maxFetch);
});

test("LRU: chunks used recently survive a cull, cold ones go; the other blob's bytes stay intact", async () => {
  const [a, b] = imgs;
  const c = core("lru", { cacheSize: 10 << 20, cacheHighPct: 60, cacheLowPct: 30 }); // both blobs (2 × 3.7 MB) do not fit under 6 MiB
  let watchedAgain = 0;
  open(c, a).onIncomplete = () => { watchedAgain++; }; // as the fanotify frontend: a complete blob is culled only if it can be watched again
  open(c, b);
  await read(c, a, 0, a.kernel.length); // all of a, then wait a tick so b is strictly newer
  await new Promise((r) => setTimeout(r, 250));
  await read(c, a, 0, 4096); // a's first chunk is hot again
  await new Promise((r) => setTimeout(r, 250));
  await read(c, b, 0, b.kernel.length);
  const ba = c.blob(a.id)!;
  assert.ok(c.cacheStats().evictions > 0);
  assert.equal(ba.presence.has(0), true, "the recently used chunk stays");
  assert.ok(ba.presence.present < a.table.entries.length, "cold chunks of a were culled");
  assert.equal(watchedAgain, 1, "the complete blob was watched again before its first hole");
  assert.equal(c.blob(b.id)!.isPresent(0, b.kernel.length), true, "b's new chunks stay");
  checkFile(c, a);
  checkFile(c, b);
  await read(c, a, 0, a.kernel.length); // culled chunks are fetched again
  await c.close();
});

test("a full cache filesystem culls and the write is retried; the read succeeds", async () => {
  const [a, b] = imgs;
  const c = core("nospace"); // no budget: only the full filesystem culls
  const cap = 1 << 20;
  class Small extends SparseFileStorage {
    override write(pos: number, bytes: Uint8Array): Promise<void> {
      const used = imgs.reduce((n, i) => n + (c.blob(i.id)?.cachedBytes ?? 0), 0);
      if (used + bytes.length > cap) return Promise.reject(Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" }));
      return super.write(pos, bytes);
    }
  }
  open(c, a, new Small(c.blobPath(a.id), a.table.kernelSize));
  open(c, b, new Small(c.blobPath(b.id), b.table.kernelSize));
  await read(c, a, 0, 900 << 10);
  await read(c, b, 0, 900 << 10); // does not fit: a's chunks are culled to make room
  const s = c.cacheStats();
  assert.ok(s.noSpaceCulls > 0 && s.evictions > 0, JSON.stringify(s));
  assert.ok(c.blob(b.id)!.stats().noSpaceRetries > 0);
  checkFile(c, a);
  checkFile(c, b);
  await c.close();
});

test("LRU ticks persist with the presence map; blobs no mount uses count and are culled, coldest first", async () => {
  const [a, b] = imgs;
  const c1 = core("persist");
  open(c1, a);
  await read(c1, a, 0, a.kernel.length);
  const ticks = Uint32Array.from(c1.blob(a.id)!.clock.ticks);
  await c1.close();
  await new Promise((r) => setTimeout(r, 250)); // b's chunks come a tick later: a is the colder
  const cached = a.table.entries.reduce((n, e) => n + e.plainSize, 0);
  const c2 = new CacheCore(path.join(work, "persist"), { flushIntervalMs: 0, cullGraceMs: 0, cacheSize: cached + (512 << 10) });
  assert.equal(c2.cacheStats().cachedBytes, cached, "a resting blob counts");
  assert.equal(c2.cacheStats().restingBlobs, 1);
  open(c2, b);
  await read(c2, b, 0, 1 << 20); // over the budget: a (older) loses chunks though nobody mounts it
  const s = c2.cacheStats();
  assert.ok(s.evictions > 0 && s.restingBytes < cached, JSON.stringify(s));
  assert.ok(s.cachedBytes <= s.budget, JSON.stringify(s));
  const reopened = open(c2, a);
  assert.deepEqual([...reopened.clock.ticks], [...ticks], "ticks came back from the map");
  assert.equal(reopened.cachedBytes, s.restingBytes);
  checkFile(c2, a);
  await read(c2, a, 0, a.kernel.length);
  await c2.close();
});
