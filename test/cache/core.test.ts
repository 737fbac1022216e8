// The cache core against a local image directory, with a wrapping remote that counts, delays and lies.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import os from "node:os";
import { randomBytes } from "node:crypto";
import { buildImage } from "../../src/mkfs/image.ts";
import { CacheCore } from "../../src/cache/core.ts";
import { decodeChunkTable, type ChunkTable } from "../../src/image/chunk-table.ts";
import { writeKernelForm } from "../../src/image/unpack.ts";
import { openRemote } from "../../src/remote/open-remote.ts";
import type { Remote } from "../../src/remote/remote.ts";
import { punchHole } from "../../src/sys/seek.ts";
import { serve } from "../helpers/lazy.ts";

let work = "";
let img = "";
let blobId = "";
let table: ChunkTable;
let kernel: Buffer; // the blob's kernel form, the truth to compare with

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-cache-"));
  const src = path.join(work, "src");
  fs.mkdirSync(src);
  let x = 1;
  for (let f = 0; f < 40; f++) {
    const b = Buffer.alloc(3000 + f * 7919);
    for (let i = 0; i < b.length; i++) { x = (x * 1103515245 + 12345) >>> 0; b[i] = x >>> 24; }
    fs.writeFileSync(path.join(src, `f${f}`), b);
  }
  img = path.join(work, "img");
  await buildImage(src, img, { chunkSize: 64 << 10, inlineMax: 0 });
  const manifest = JSON.parse(fs.readFileSync(path.join(img, "manifest.json"), "utf8"));
  blobId = manifest.blobs[0].id;
  table = decodeChunkTable(fs.readFileSync(path.join(img, manifest.blobs[0].table.path)), "t");
  const kf = path.join(work, "kernel");
  const fd = fs.openSync(kf, "w");
  writeKernelForm(path.join(img, manifest.blobs[0].remote.path), manifest.blobs[0].remote.digest, table, blobId, fd);
  fs.closeSync(fd);
  kernel = fs.readFileSync(kf);
});

const opened: Remote[] = [];
after(async () => {
  for (const r of opened) await r.close();
  fs.rmSync(work, { recursive: true, force: true });
});

/** A remote that counts range reads, can delay them and can corrupt the next `corrupt` answers. */
function spy(inner: Remote) {
  opened.push(inner);
  const s = { ranges: 0, bytes: 0, corrupt: 0, delayMs: 0, active: 0, maxActive: 0 };
  const remote: Remote = {
    location: inner.location,
    readFile: (p, o) => inner.readFile(p, o),
    size: (p, o) => inner.size(p, o),
    async readRange(p, off, len, o) {
      s.ranges++;
      s.maxActive = Math.max(s.maxActive, ++s.active);
      if (s.delayMs) await new Promise((r) => setTimeout(r, s.delayMs));
      let b: Buffer;
      try {
        b = Buffer.from(await inner.readRange(p, off, len, o));
      } finally {
        s.active--;
      }
      s.bytes += b.length;
      if (s.corrupt > 0) { s.corrupt--; b[b.length >> 1] ^= 0xff; }
      return b;
    },
    stats: () => inner.stats(),
    close: () => inner.close(),
  };
  return { remote, s };
}

/** A core whose misses fetch the asked chunks widened to minFetch only (no rest-of-file widening: plan.test.ts). */
function freshCore(name: string, opts = {}) {
  const dir = path.join(work, name);
  return new CacheCore(dir, { flushIntervalMs: 0, fileFetch: 0, ...opts });
}

test("ensure() fetches only what a read needs and the cache file then holds the kernel form there", async () => {
  const core = freshCore("c1", { minFetch: 0 });
  const { remote, s } = spy(openRemote(img));
  const blob = core.openBlob(blobId, table, { remote, path: `blobs/${blobId}` });
  const e = table.entries[5];
  await blob.ensure(e.plainOffset + 10, 100);
  assert.equal(s.ranges, 1);
  assert.ok(blob.isPresent(e.plainOffset, e.plainSize));
  assert.ok(!blob.isPresent(table.entries[6].plainOffset, 1));
  const got = fs.readFileSync(core.blobPath(blobId)).subarray(e.plainOffset, e.plainOffset + e.plainSize);
  assert.ok(got.equals(kernel.subarray(e.plainOffset, e.plainOffset + e.plainSize)));
  await blob.ensure(e.plainOffset, e.plainSize); // a hit: no request
  assert.equal(s.ranges, 1);
  await core.close();
});

test("32 concurrent ensures of one cold chunk make exactly one fetch", async () => {
  const core = freshCore("c2", { minFetch: 0 });
  const { remote, s } = spy(openRemote(img));
  s.delayMs = 30;
  const blob = core.openBlob(blobId, table, { remote, path: `blobs/${blobId}` });
  const e = table.entries[3];
  await Promise.all(Array.from({ length: 32 }, (_, k) => blob.ensure(e.plainOffset + k, 1)));
  assert.equal(s.ranges, 1);
  await core.close();
});

test("a miss is widened to the minimum fetch unit and adjacent chunks come in one request", async () => {
  const core = freshCore("c3", { minFetch: 256 << 10 });
  const { remote, s } = spy(openRemote(img));
  const blob = core.openBlob(blobId, table, { remote, path: `blobs/${blobId}` });
  await blob.ensure(table.entries[0].plainOffset, 1);
  await blob.settled(); // ensure() returns once the chunk asked for is in; the rest of the run may still be arriving
  assert.equal(s.ranges, 1);
  assert.ok(blob.stats().cachedBytes >= 256 << 10);
  await core.close();
});

test("corrupt answers are retried; after the attempts the read fails and the cache never holds bad bytes", async () => {
  const core = freshCore("c4", { minFetch: 0, verifyAttempts: 3 });
  const { remote, s } = spy(openRemote(img));
  const blob = core.openBlob(blobId, table, { remote, path: `blobs/${blobId}` });
  const e = table.entries[7];
  s.corrupt = 2;
  await blob.ensure(e.plainOffset, 1); // third attempt is clean
  assert.equal(blob.stats().corrupt, 2);
  const e2 = table.entries[9];
  s.corrupt = 3;
  await assert.rejects(blob.ensure(e2.plainOffset, 1), { code: "DIGEST_MISMATCH" });
  assert.ok(!blob.isPresent(e2.plainOffset, 1));
  const bytes = fs.readFileSync(core.blobPath(blobId)).subarray(e2.plainOffset, e2.plainOffset + e2.plainSize);
  assert.ok(bytes.every((b) => b === 0), "no bad bytes written");
  await blob.ensure(e2.plainOffset, 1); // healthy again
  assert.ok(blob.isPresent(e2.plainOffset, e2.plainSize));
  await core.close();
});

test("presence survives a restart, and a chunk whose bytes vanished is fetched again", async () => {
  const dir = "c5";
  let core = freshCore(dir, { minFetch: 0 });
  let { remote } = spy(openRemote(img));
  let blob = core.openBlob(blobId, table, { remote, path: `blobs/${blobId}` });
  for (const i of [1, 2, 3]) await blob.ensure(table.entries[i].plainOffset, 1);
  await core.close();
  // Punch out chunk 2's bytes behind the cache's back.
  const fd = fs.openSync(path.join(work, dir, "blobs", blobId), "r+");
  const e2 = table.entries[2];
  punchHole(fd, Math.floor(e2.plainOffset / 4096) * 4096, Math.ceil(e2.plainSize / 4096) * 4096);
  fs.closeSync(fd);
  core = freshCore(dir, { minFetch: 0 });
  const sp = spy(openRemote(img));
  remote = sp.remote;
  blob = core.openBlob(blobId, table, { remote, path: `blobs/${blobId}` });
  assert.ok(blob.isPresent(table.entries[1].plainOffset, 1));
  assert.ok(blob.isPresent(table.entries[3].plainOffset, 1));
  assert.ok(!blob.isPresent(e2.plainOffset, 1));
  await blob.ensure(table.entries[1].plainOffset, 1);
  assert.equal(sp.s.ranges, 0);
  await blob.ensure(e2.plainOffset, 1);
  assert.equal(sp.s.ranges, 1);
  await core.close();
});

test("memory stays bounded: fetches wait for the byte budget", async () => {
  const core = freshCore("c6", { minFetch: 0, memoryBudget: 100 << 10 });
  const { remote, s } = spy(openRemote(img));
  s.delayMs = 20;
  const blob = core.openBlob(blobId, table, { remote, path: `blobs/${blobId}` });
  await Promise.all(table.entries.map((e) => blob.ensure(e.plainOffset, 1)));
  assert.ok(blob.complete);
  assert.ok(fs.readFileSync(core.blobPath(blobId)).equals(kernel));
  // A 64K chunk needs its remote and plain bytes (up to 128K) in the budget: one fetch at a time fits 100K.
  assert.ok(s.maxActive <= 4, `fetches in parallel within a 100K budget: ${s.maxActive}`);
  await core.close();
});

test("a sequential reader gets growing fetch units and a read-ahead window; isolated misses get neither", async () => {
  const core = freshCore("c7", { minFetch: 64 << 10, maxFetch: 1 << 20 });
  const { remote, s } = spy(openRemote(img));
  const blob = core.openBlob(blobId, table, { remote, path: `blobs/${blobId}` });
  const n = table.entries.length;
  for (const i of [Math.floor(n / 2), 3, n - 2, Math.floor(n / 4)]) await blob.ensure(table.entries[i].plainOffset, 1);
  assert.equal(blob.stats().readaheads, 0, "isolated misses start no read-ahead");
  const before = s.ranges;
  for (const e of table.entries) await blob.ensure(e.plainOffset, e.plainSize);
  assert.ok(blob.complete);
  assert.ok(blob.stats().readaheads > 0, "a sequential reader is read ahead of");
  assert.ok(s.ranges - before < n / 4, `${s.ranges - before} requests for ${n} chunks read in order`);
  assert.ok(fs.readFileSync(core.blobPath(blobId)).equals(kernel));
  await core.close();
});

test("a streaming remote makes the first chunks of a long run present before the rest has arrived", async () => {
  const src = path.join(work, "random-src");
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, "r"), randomBytes(1 << 20)); // incompressible: the remote form is 1 MiB too
  const rimg = path.join(work, "random-img");
  await buildImage(src, rimg, { chunkSize: 64 << 10, inlineMax: 0 });
  const m = JSON.parse(fs.readFileSync(path.join(rimg, "manifest.json"), "utf8"));
  const rtable = decodeChunkTable(fs.readFileSync(path.join(rimg, m.blobs[0].table.path)), "t");
  // The server sends the first half of each answer, then holds the socket open and silent: the first chunks
  // can only be present if they were filled while the answer was still arriving.
  const server = await serve(rimg);
  try {
    await server.setFaults({ mode: "stall", match: "blobs/" });
    const core = freshCore("c8", { minFetch: 1 << 20 });
    const remote = openRemote(server.url);
    opened.push(remote);
    const blob = core.openBlob(m.blobs[0].id, rtable, { remote, path: m.blobs[0].remote.path });
    await blob.ensure(0, 1);
    assert.equal(blob.stats().fetches, 1, "one request for the run");
    assert.ok(!blob.isPresent(rtable.kernelSize - 1, 1), "the end of the run has not arrived");
    assert.ok(fs.readFileSync(core.blobPath(m.blobs[0].id)).subarray(0, 64 << 10).equals(fs.readFileSync(path.join(src, "r")).subarray(0, 64 << 10)));
    await core.close();
  } finally {
    server.stop();
  }
});
