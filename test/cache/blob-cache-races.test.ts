// Two races of a blob's fetches with its readers, as the fscache frontend meets them with whole-file fetches:
// * a corrupt chunk at the start of a long streamed answer: its fill fails while the rest is still arriving. That
//   failure must be the fetch's (retried, then the reader's error), never an unhandled rejection, which kills
//   the daemon (seen in the fscache VM test: the holder restarted it until it gave up, the reader got ENOBUFS);
// * invalidate() as the fscache frontend calls it for a READ (the kernel saw a hole there): a chunk whose bytes
//   the storage holds (written by a wider run after the kernel looked) stays present and is not fetched again;
//   a chunk whose bytes are gone is forgotten and fetched on the next ensure(). The storage is FscacheStorage
//   over an ordinary sparse file (the anon fd of a kernel cache file behaves the same for it).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { CacheCore } from "../../src/cache/core.ts";
import { FscacheStorage } from "../../src/cache/fscache-storage.ts";
import { decodeChunkTable, type ChunkTable } from "../../src/image/chunk-table.ts";
import { openRemote } from "../../src/remote/open-remote.ts";
import type { Remote } from "../../src/remote/remote.ts";
import { punchHole } from "../../src/sys/seek.ts";
import { randomImage, type RandomImage } from "../helpers/random-image.ts";

let image: RandomImage;
let blobId = "";
let table: ChunkTable;
let inner: Remote;

before(async () => {
  image = await randomImage("eod-blob-races-", { r: 1 << 20 }); // incompressible: 64K chunks stored as is, one file
  const m = JSON.parse(fs.readFileSync(path.join(image.img, "manifest.json"), "utf8"));
  blobId = m.blobs[0].id;
  table = decodeChunkTable(fs.readFileSync(path.join(image.img, m.blobs[0].table.path)), "t");
  inner = openRemote(image.img);
});

after(async () => {
  await inner.close();
  fs.rmSync(image.work, { recursive: true, force: true });
});

/**
 * A remote that streams each answer in two parts, the first chunk's bytes first (with one byte flipped while
 * `corrupt` answers remain), the rest after a pause of a few macrotasks.
 */
function streamingRemote(corrupt: { left: number }): Remote {
  return {
    ...inner,
    location: inner.location,
    async readRange(p, off, len, o) {
      const b = Buffer.from(await inner.readRange(p, off, len, o));
      if (corrupt.left > 0) { corrupt.left--; b[10] ^= 0xff; }
      o?.onData?.(b, Math.min(len, table.entries[0].remoteSize));
      await new Promise((r) => setTimeout(r, 50));
      o?.onData?.(b, len);
      return b;
    },
  };
}

test("a chunk that fails verification while the rest of its answer streams in fails the fetch, not the process", async (t) => {
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);
  process.on("unhandledRejection", onUnhandled);
  t.after(() => process.off("unhandledRejection", onUnhandled));
  const core = new CacheCore(path.join(image.work, "cache"), { flushIntervalMs: 0, minFetch: 1 << 20, fileFetch: 0, verifyAttempts: 2 });
  t.after(() => core.close());
  const corrupt = { left: 2 };
  const blob = core.openBlob(blobId, table, { remote: streamingRemote(corrupt), path: image.blob });
  // Every attempt corrupt: the reader gets the digest error; the chunks after it were verified and kept.
  await assert.rejects(blob.ensure(0, 1), { code: "DIGEST_MISMATCH" });
  await blob.settled();
  assert.equal(blob.stats().corrupt, 2);
  assert.ok(!blob.isPresent(0, 1), "the corrupt chunk never became present");
  assert.deepEqual(unhandled, [], "no fill's failure went unobserved");
  // Healthy again: one more fetch brings the missing chunk.
  await blob.ensure(0, 1);
  assert.ok(blob.isPresent(0, table.entries[0].plainSize));
  assert.deepEqual(unhandled, []);
});

test("invalidate() forgets only the chunks whose bytes the storage no longer holds", async (t) => {
  const file = path.join(image.work, "object");
  fs.writeFileSync(file, "");
  fs.truncateSync(file, Math.ceil(table.kernelSize / 4096) * 4096);
  const fd = fs.openSync(file, "r+");
  const core = new CacheCore(path.join(image.work, "cache"), { flushIntervalMs: 0, minFetch: 0, fileFetch: 0 });
  t.after(() => core.close()); // closes the storage's fd
  const blob = core.openBlob(blobId, table, { remote: inner, path: image.blob }, new FscacheStorage("test object", fd, table.kernelSize));
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
