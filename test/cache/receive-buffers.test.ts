// Receive buffers: fetches read their answers into recycled buffers (no fresh memory per fill), a buffer comes
// back only after its fetch's fills are done, a failed fetch's is dropped, and the cache holds the right bytes.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { buildImage } from "../../src/mkfs/image.ts";
import { CacheCore } from "../../src/cache/core.ts";
import { decodeChunkTable, type ChunkTable } from "../../src/image/chunk-table.ts";
import { openRemote } from "../../src/remote/open-remote.ts";
import type { Remote } from "../../src/remote/remote.ts";

const CHUNK = 64 << 10;
let work = "";
let img = "";
let blobId = "";
let remotePath = "";
let table: ChunkTable;
let inner: Remote;
let plain: Buffer;

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-receive-buffers-"));
  const src = path.join(work, "src");
  fs.mkdirSync(src);
  plain = randomBytes(1 << 20); // incompressible: 16 raw chunks, one file
  fs.writeFileSync(path.join(src, "r"), plain);
  img = path.join(work, "img");
  await buildImage(src, img, { chunkSize: CHUNK, inlineMax: 0 });
  const m = JSON.parse(fs.readFileSync(path.join(img, "manifest.json"), "utf8"));
  blobId = m.blobs[0].id;
  remotePath = m.blobs[0].remote.path;
  table = decodeChunkTable(fs.readFileSync(path.join(img, m.blobs[0].table.path)), "t");
  inner = openRemote(img);
});

after(async () => {
  await inner.close();
  fs.rmSync(work, { recursive: true, force: true });
});

/** The directory remote, recording the buffers fetches ask it to read into; it corrupts the next `corrupt` answers. */
function recordingRemote(s: { into: Array<ArrayBufferLike | undefined>; corrupt: number }): Remote {
  return {
    ...inner,
    location: inner.location,
    async readRange(p, off, len, o) {
      s.into.push(o?.into?.buffer); // the memory: each take() is a new view of it
      const b = await inner.readRange(p, off, len, o);
      if (s.corrupt > 0) { s.corrupt--; b[b.length >> 1] ^= 0xff; }
      return b;
    },
  };
}

const cacheFile = (core: CacheCore) => fs.readFileSync(core.blobPath(blobId));
const chunkBytes = (i: number) => plain.subarray(i * CHUNK, (i + 1) * CHUNK);

test("fetches read into one recycled buffer, retries included; a failed fetch's buffer is not reused; the cache holds verified bytes", async (t) => {
  const core = new CacheCore(path.join(work, "cache"), { flushIntervalMs: 0, minFetch: CHUNK, fileFetch: 0, verifyAttempts: 2 });
  t.after(() => core.close());
  const s = { into: [] as Array<ArrayBufferLike | undefined>, corrupt: 0 };
  const blob = core.openBlob(blobId, table, { remote: recordingRemote(s), path: remotePath });
  await blob.ensure(3 * CHUNK, 1);
  await blob.ensure(9 * CHUNK, 1); // not sequential: one chunk each
  assert.equal(s.into.length, 2);
  assert.ok(s.into[0] && s.into[0].byteLength >= CHUNK);
  assert.equal(s.into[1], s.into[0], "the second fetch reads into the first one's buffer");
  // A corrupt answer, then a good one: both attempts read into the same buffer, and the good bytes are kept.
  s.corrupt = 1;
  await blob.ensure(5 * CHUNK, 1);
  assert.deepEqual(s.into.slice(2), [s.into[0], s.into[0]]);
  assert.equal(blob.stats().corrupt, 1);
  // Every attempt corrupt: the fetch fails and its buffer is dropped (the next fetch gets another one).
  s.corrupt = 2;
  await assert.rejects(blob.ensure(12 * CHUNK, 1), { code: "DIGEST_MISMATCH" });
  await blob.ensure(14 * CHUNK, 1);
  assert.equal(s.into[4], s.into[0]);
  assert.notEqual(s.into[6], s.into[0], "a failed fetch's buffer is not given back");
  const file = cacheFile(core);
  for (const i of [3, 9, 5, 14]) assert.deepEqual(file.subarray(i * CHUNK, (i + 1) * CHUNK), chunkBytes(i), `chunk ${i}`);
  assert.ok(!blob.isPresent(12 * CHUNK, 1));
});
