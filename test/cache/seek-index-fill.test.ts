// The cache core filling a gzip layer's seek index (chunk table version 2): the pieces of one checkpoint in a
// run are decoded in one inflate (BlobStats.inflatedBytes counts what was inflated), a reader's piece at once
// while the rest of a streamed answer arrives; corrupt answers are retried, then the read fails, and the
// cache never holds a wrong byte.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { CacheCore } from "../../src/cache/core.ts";
import { inflatedBy } from "../../src/cache/chunk-fill.ts";
import { sameCheckpoint, type ChunkTable } from "../../src/image/chunk-table.ts";
import type { Remote } from "../../src/remote/remote.ts";
import { indexLayer, noise } from "../helpers/layer-spans.ts";

const K = 1024;
const TAR = Buffer.concat(Array.from({ length: 6 }, (_, k) => [Buffer.from(noise(40 * K, k + 1).toString("base64")), noise(70 * K, k + 100)]).flat());
const LAYER = zlib.gzipSync(TAR, { level: 6 });
/** Spans of 64 KiB cut into pieces of 16 KiB. */
const TABLE: ChunkTable = indexLayer("gzip", LAYER, TAR, 64 * K, 65536, 16 * K).table;
const BLOB = "seekindexblob";
const work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-seek-fill-"));
after(() => fs.rmSync(work, { recursive: true, force: true }));

/** The layer from memory; `parts` > 1 streams each answer in as many parts, a macrotask apart; corrupts the next `corrupt` answers. */
function layerRemote(parts = 1) {
  const s = { corrupt: 0, ranges: 0 };
  const remote: Remote = {
    location: "memory",
    readFile: () => Promise.reject(new Error("not here")),
    size: () => Promise.resolve(LAYER.length),
    async readRange(_p, off, len, o) {
      s.ranges++;
      const b = Buffer.from(LAYER.subarray(off, off + len));
      if (s.corrupt > 0) { s.corrupt--; b[len >> 1] ^= 0x5a; }
      for (let k = 1; k < parts; k++) {
        o?.onData?.(b, Math.floor((len * k) / parts));
        await new Promise((r) => setImmediate(r));
      }
      o?.onData?.(b, len);
      return b;
    },
    stats: () => ({ requests: s.ranges, bytes: 0, retries: 0, errors: 0 }),
    close: () => Promise.resolve(),
  };
  return { remote, s };
}

function open(name: string, remote: Remote, opts = {}) {
  const core = new CacheCore(path.join(work, name), { flushIntervalMs: 0, fileFetch: 0, minFetch: 4 << 20, ...opts });
  return { core, blob: core.openBlob(BLOB, TABLE, { remote, path: "layer" }) };
}

/** Inflated bytes of one pass per checkpoint, and of one pass per piece (each from its checkpoint). */
const lastOfSpan = (i: number) => i + 1 === TABLE.entries.length || !sameCheckpoint(TABLE.entries[i + 1], TABLE.entries[i]);
const ONCE = TABLE.entries.reduce((n, _, i) => (lastOfSpan(i) ? n + inflatedBy(TABLE, i) : n), 0);
const PER_PIECE = TABLE.entries.reduce((n, _, i) => n + inflatedBy(TABLE, i), 0);

/** Every present piece holds the tar's bytes, every other one nothing. */
function cacheHoldsOnlyTar(core: CacheCore, present: (i: number) => boolean): void {
  const file = fs.readFileSync(core.blobPath(BLOB));
  TABLE.entries.forEach((e, i) => {
    const got = file.subarray(e.plainOffset, e.plainOffset + e.plainSize);
    if (present(i)) assert.ok(got.equals(TAR.subarray(e.plainOffset, e.plainOffset + e.plainSize)), `piece ${i}`);
    else assert.ok(got.every((b) => b === 0), `piece ${i} is not present but holds bytes`);
  });
}

test("a run of a seek index's pieces fills every piece, inflating each checkpoint's bytes once", async () => {
  assert.ok(PER_PIECE > 2 * ONCE, "the table has spans of several pieces");
  const { remote, s } = layerRemote();
  const { core, blob } = open("whole", remote);
  await blob.ensure(0, TAR.length);
  assert.equal(s.ranges, 1);
  assert.ok(blob.complete);
  assert.equal(blob.stats().inflatedBytes, ONCE);
  cacheHoldsOnlyTar(core, () => true);
  await core.close();
});

test("a streamed answer: the reader's piece is decoded as soon as its bytes are in, the rest of its span once all of it is", async () => {
  const { remote } = layerRemote(64);
  const { core, blob } = open("streamed", remote);
  await blob.ensure(0, 1);
  await blob.settled();
  assert.ok(blob.complete);
  // Piece 0 (the reader's) on its own, then each span in one pass (piece 0's again).
  assert.equal(blob.stats().inflatedBytes, ONCE + inflatedBy(TABLE, 0));
  cacheHoldsOnlyTar(core, () => true);
  await core.close();
});

test("corrupt answers of a run of pieces are retried; after the attempts the read fails and no wrong byte is cached", async () => {
  const { remote, s } = layerRemote(4);
  const { core, blob } = open("corrupt", remote, { verifyAttempts: 3 });
  s.corrupt = 2;
  await blob.ensure(0, TAR.length); // the third answer is clean
  assert.equal(blob.stats().corrupt, 2);
  assert.ok(blob.complete);
  cacheHoldsOnlyTar(core, () => true);
  await core.close();

  const again = open("corrupt-always", remote, { verifyAttempts: 3 });
  s.corrupt = 3;
  await assert.rejects(again.blob.ensure(0, TAR.length), { code: "DIGEST_MISMATCH" });
  await again.blob.settled();
  assert.equal(again.blob.stats().corrupt, 3);
  assert.ok(!again.blob.complete, "the corrupt pieces never became present");
  cacheHoldsOnlyTar(again.core, (i) => again.blob.isPresent(TABLE.entries[i].plainOffset, TABLE.entries[i].plainSize));
  await again.blob.ensure(0, TAR.length); // healthy again
  assert.ok(again.blob.complete);
  cacheHoldsOnlyTar(again.core, () => true);
  await again.core.close();
});

test("a prefetched piece brings the earlier pieces of its span along (the same request decodes them), not the later ones", async () => {
  const third = TABLE.entries.findIndex((e, i) => i >= 2 && sameCheckpoint(e, TABLE.entries[i - 1]) && sameCheckpoint(TABLE.entries[i - 1], TABLE.entries[i - 2]));
  assert.ok(third > 0 && !lastOfSpan(third), "a span of four pieces or more");
  const { remote, s } = layerRemote();
  const { core, blob } = open("prefetch", remote);
  await core.prefetch(BLOB, [third]);
  await blob.settled();
  assert.equal(s.ranges, 1);
  assert.equal(blob.stats().inflatedBytes, inflatedBy(TABLE, third));
  const inSpan = (i: number) => i <= third && TABLE.entries.slice(i + 1, third + 1).every((e, k) => sameCheckpoint(e, TABLE.entries[i + k]));
  TABLE.entries.forEach((_, i) => assert.equal(blob.presence.has(i), inSpan(i), `piece ${i}`));
  cacheHoldsOnlyTar(core, inSpan);
  await core.close();
});
