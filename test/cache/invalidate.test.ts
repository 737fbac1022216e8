// BlobCache.invalidate() as the fscache frontend calls it for a READ (the kernel saw a hole there): a chunk whose
// bytes the storage holds (written by a wider run after the kernel looked) stays present and is not fetched
// again; a chunk whose bytes are gone is forgotten and fetched on the next ensure(). The storage is
// FscacheStorage over an ordinary sparse file (the anon fd of a kernel cache file behaves the same for it).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { buildImage } from "../../src/mkfs/image.ts";
import { CacheCore } from "../../src/cache/core.ts";
import { FscacheStorage } from "../../src/cache/fscache-storage.ts";
import { decodeChunkTable, type ChunkTable } from "../../src/image/chunk-table.ts";
import { openRemote } from "../../src/remote/open-remote.ts";
import type { Remote } from "../../src/remote/remote.ts";
import { punchHole } from "../../src/sys/seek.ts";

let work = "";
let blobId = "";
let remotePath = "";
let table: ChunkTable;
let remote: Remote;

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-invalidate-"));
  const src = path.join(work, "src");
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, "r"), randomBytes(8 * 65536));
  const img = path.join(work, "img");
  await buildImage(src, img, { chunkSize: 64 << 10, inlineMax: 0 });
  const m = JSON.parse(fs.readFileSync(path.join(img, "manifest.json"), "utf8"));
  blobId = m.blobs[0].id;
  remotePath = m.blobs[0].remote.path;
  table = decodeChunkTable(fs.readFileSync(path.join(img, m.blobs[0].table.path)), "t");
  remote = openRemote(img);
});

after(async () => {
  await remote.close();
  fs.rmSync(work, { recursive: true, force: true });
});

test("invalidate() forgets only the chunks whose bytes the storage no longer holds", async (t) => {
  const file = path.join(work, "object");
  fs.writeFileSync(file, "");
  fs.truncateSync(file, Math.ceil(table.kernelSize / 4096) * 4096);
  const fd = fs.openSync(file, "r+");
  const core = new CacheCore(path.join(work, "cache"), { flushIntervalMs: 0, minFetch: 0, fileFetch: 0 });
  t.after(() => core.close()); // closes the storage's fd
  const blob = core.openBlob(blobId, table, { remote, path: remotePath }, new FscacheStorage("test object", fd, table.kernelSize));
  const e = table.entries[3];
  await blob.ensure(e.plainOffset, 1);
  const fetches = blob.stats().fetches;

  blob.invalidate(e.plainOffset, e.plainSize); // a READ that raced the chunk's write: its bytes are there
  assert.ok(blob.isPresent(e.plainOffset, e.plainSize), "a chunk the storage holds stays present");
  await blob.ensure(e.plainOffset, 1);
  assert.equal(blob.stats().fetches, fetches, "and is not fetched again");

  punchHole(fd, e.plainOffset, Math.ceil(e.plainSize / 4096) * 4096); // its bytes gone behind our back
  blob.invalidate(e.plainOffset, e.plainSize);
  assert.ok(!blob.isPresent(e.plainOffset, 1), "a chunk whose bytes are gone is forgotten");
  await blob.ensure(e.plainOffset, 1);
  assert.equal(blob.stats().fetches, fetches + 1, "and fetched again");
  assert.ok(blob.storage.holdsData!(e.plainOffset, e.plainSize));
});
