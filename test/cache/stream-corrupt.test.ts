// A corrupt chunk at the start of a long streamed answer: its fill fails while the rest is still arriving. That
// failure must be the fetch's (retried, then the reader's error), never an unhandled rejection, which kills the
// daemon (seen in the fscache VM test with whole-file fetches: the holder restarted it until it gave up).
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

let work = "";
let img = "";
let blobId = "";
let remotePath = "";
let table: ChunkTable;
let inner: Remote;

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-stream-corrupt-"));
  const src = path.join(work, "src");
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, "r"), randomBytes(1 << 20)); // incompressible: 16 chunks of 64K, one file
  img = path.join(work, "img");
  await buildImage(src, img, { chunkSize: 64 << 10, inlineMax: 0 });
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
  const core = new CacheCore(path.join(work, "cache"), { flushIntervalMs: 0, minFetch: 1 << 20, fileFetch: 0, verifyAttempts: 2 });
  t.after(() => core.close());
  const corrupt = { left: 2 };
  const blob = core.openBlob(blobId, table, { remote: streamingRemote(corrupt), path: remotePath });
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
