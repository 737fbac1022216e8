import { test } from "node:test";
import assert from "node:assert/strict";
import { blobIdOf, decodeChunkTable, encodeChunkTable, findChunk, type ChunkTable } from "../../src/image/chunk-table.ts";
import { parseManifest } from "../../src/image/manifest.ts";

const table: ChunkTable = {
  compression: "zstd", blkSzBits: 12, kernelSize: 3 * 4096, remoteSize: 150,
  entries: [
    { plainOffset: 0, remoteOffset: 0, plainSize: 5000, remoteSize: 100, flags: 0, digest: new Uint8Array(32).fill(1) },
    { plainOffset: 8192, remoteOffset: 100, plainSize: 50, remoteSize: 50, flags: 1, digest: new Uint8Array(32).fill(2) },
  ],
};

test("chunk tables round-trip and findChunk() locates plain offsets", () => {
  const back = decodeChunkTable(encodeChunkTable(table), "t");
  assert.deepEqual(back, table);
  assert.equal(findChunk(back.entries, 4999), 0);
  assert.equal(findChunk(back.entries, 5000), -1); // block padding
  assert.equal(findChunk(back.entries, 8192 + 49), 1);
  assert.equal(findChunk(back.entries, 8192 + 50), -1);
});

test("decodeChunkTable() refuses overlap, misalignment, truncation and bad magic", () => {
  const enc = encodeChunkTable(table);
  assert.throws(() => decodeChunkTable(enc.subarray(0, enc.length - 1), "t"), { code: "IMAGE_INVALID" });
  const bad = Buffer.from(enc); bad[0] ^= 1;
  assert.throws(() => decodeChunkTable(bad, "t"), { code: "IMAGE_INVALID" });
  const overlap = encodeChunkTable({ ...table, entries: [table.entries[0], { ...table.entries[1], plainOffset: 4096 }] });
  assert.throws(() => decodeChunkTable(overlap, "t"), { code: "IMAGE_INVALID", message: /overlaps/ });
  const mis = encodeChunkTable({ ...table, entries: [{ ...table.entries[0], plainOffset: 100 }] });
  assert.throws(() => decodeChunkTable(mis, "t"), { code: "IMAGE_INVALID", message: /aligned/ });
});

test("blobIdOf() names plain content: compression does not change it, content does", () => {
  const id = blobIdOf(table);
  assert.match(id, /^[0-9a-f]{64}$/);
  assert.equal(blobIdOf({ ...table, entries: table.entries.map((e) => ({ ...e, remoteSize: 1 })) }), id);
  assert.notEqual(blobIdOf({ ...table, entries: [table.entries[0]] }), id);
});

test("parseManifest() refuses paths that leave the image and malformed digests", () => {
  const good = {
    schemaVersion: 1, mediaType: "application/vnd.erofs-ondemand.image.v1+json", blockSize: 4096, chunkSize: 1048576, compression: "zstd",
    bootstrap: { path: "bootstrap.erofs", digest: `sha256:${"a".repeat(64)}`, size: 4096 }, blobs: [],
  };
  assert.equal(parseManifest(JSON.stringify(good), "m").blockSize, 4096);
  assert.throws(() => parseManifest(JSON.stringify({ ...good, bootstrap: { ...good.bootstrap, path: "../x" } }), "m"), { code: "IMAGE_INVALID" });
  assert.throws(() => parseManifest(JSON.stringify({ ...good, bootstrap: { ...good.bootstrap, digest: "sha256:xyz" } }), "m"), { code: "IMAGE_INVALID" });
  assert.throws(() => parseManifest("{", "m"), { code: "IMAGE_INVALID" });
});
