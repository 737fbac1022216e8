import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { decodeChunkTable, encodeChunkTable } from "../../src/image/chunk-table.ts";
import { layerIndexer } from "../../src/image/layer-indexer.ts";
import { sha256, sha256Digest } from "../../src/util/sha256.ts";

test("layerIndexer('none') cuts the tar into spans of spanSize, remote = plain, whatever the pushes' sizes", () => {
  const tar = randomBytes(3 * 8192 + 1000);
  const ix = layerIndexer("none", { spanSize: 8192 });
  const out: Uint8Array[] = [];
  for (let at = 0; at < tar.length; at += 3001) out.push(...ix.push(tar.subarray(at, at + 3001)));
  const r = ix.finish();
  assert.deepEqual(Buffer.concat(out), tar);
  assert.equal(r.diffId, sha256Digest(tar));
  assert.equal(r.tarSize, tar.length);
  assert.equal(r.remoteSize, tar.length);
  assert.equal(r.table.version, 2);
  assert.equal(r.table.kernelSize, Math.ceil(tar.length / 512) * 512);
  assert.deepEqual(r.table.entries.map((e) => [e.plainOffset, e.plainSize, e.remoteOffset, e.remoteSize]), [[0, 8192, 0, 8192], [8192, 8192, 8192, 8192], [16384, 8192, 16384, 8192], [24576, 1000, 24576, 1000]]);
  for (const e of r.table.entries) assert.deepEqual(Buffer.from(e.digest), sha256(tar.subarray(e.plainOffset, e.plainOffset + e.plainSize)));
  assert.deepEqual(decodeChunkTable(encodeChunkTable(r.table), "t"), r.table);
});

test("layerIndexer('none') of an empty tar and of a tar of exactly one span", () => {
  const empty = layerIndexer("none").finish();
  assert.equal(empty.table.entries.length, 0);
  assert.equal(empty.tarSize, 0);
  const one = layerIndexer("none", { spanSize: 4096 });
  one.push(new Uint8Array(4096));
  assert.deepEqual(one.finish().table.entries.map((e) => e.plainSize), [4096]);
  assert.throws(() => layerIndexer("none", { spanSize: 1000 }), RangeError);
});
