// Several pieces of one checkpoint of a gzip layer's seek index decoded in one inflate (verifiedChunks(), the
// cache fill's path for a run that brings a whole span): the same bytes as piece by piece, each piece verified
// on its own, and never a wrong byte when the remote bytes or a digest lie.
import { test } from "node:test";
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { decodeGroups, type ChunkTable } from "../../src/image/chunk-table.ts";
import { verifiedChunk, verifiedChunks, verifiedChunksAsync, verifiedEach, verifiedEachAsync, type VerifiedChunk } from "../../src/image/verified-chunk.ts";
import { indexLayer, noise } from "../helpers/layer-spans.ts";

const K = 1024;

/** Text then noise, repeated: zlib codes the text in Huffman blocks and stores the noise. */
const TAR = Buffer.concat(Array.from({ length: 6 }, (_, k) => [Buffer.from(noise(40 * K, k + 1).toString("base64")), noise(70 * K, k + 100)]).flat());

/** Spans of 64 KiB cut into pieces of 16 KiB. */
function indexed(layer: Uint8Array): ChunkTable {
  return indexLayer("gzip", layer, TAR, 64 * K, 65536, 16 * K).table;
}

/** The checkpoints' pieces: [first, last] of each group sharing one. */
function groups(t: ChunkTable): Array<[number, number]> {
  return [...decodeGroups(t)].map(({ first, last }) => [first, last]);
}

/** A copy (Buffer's slice() is a view: a test that corrupts it must not corrupt the layer). */
const remoteOf = (t: ChunkTable, layer: Uint8Array, i: number) => Uint8Array.prototype.slice.call(layer, t.entries[i].remoteOffset, t.entries[i].remoteOffset + t.entries[i].remoteSize);
const tarOf = (t: ChunkTable, i: number) => TAR.subarray(t.entries[i].plainOffset, t.entries[i].plainOffset + t.entries[i].plainSize);
const name = (a: number, b: number) => (a === b ? `piece ${a}` : `pieces ${a}..${b}`);

/** No piece came out with bytes other than the tar's. */
function neverWrong(t: ChunkTable, first: number, got: VerifiedChunk[]): void {
  got.forEach((v, k) => {
    if (v.plain) assert.ok(Buffer.from(v.plain).equals(tarOf(t, first + k)), `piece ${first + k} has wrong bytes`);
    else assert.equal(v.error.code, "DIGEST_MISMATCH");
  });
}

test("pieces of one checkpoint decoded in one pass, from any first to any last piece, are the pieces decoded one by one", async () => {
  // One member, and three (a span crossing a member's end decodes on in the next member).
  const parts = [TAR.subarray(0, 150 * K), TAR.subarray(150 * K, 151 * K), TAR.subarray(151 * K)];
  for (const layer of [zlib.gzipSync(TAR, { level: 6 }), Buffer.concat(parts.map((p) => zlib.gzipSync(p, { level: 9 })))]) {
    const t = indexed(layer);
    const spans = groups(t);
    assert.ok(spans.filter(([a, b]) => b - a === 3).length >= 8, "most spans have 4 pieces");
    for (const [a, b] of spans) {
      for (let first = a; first <= b; first++) {
        for (let last = first; last <= b; last++) {
          const remote = remoteOf(t, layer, last);
          for (const got of [verifiedChunks(t, first, last, remote, name), await verifiedChunksAsync(t, first, last, remote, name)]) {
            assert.equal(got.length, last - first + 1);
            got.forEach((v, k) => assert.ok(v.plain && Buffer.from(v.plain).equals(Buffer.from(verifiedChunk(t, first + k, remoteOf(t, layer, first + k), "one"))), `${first + k} of ${first}..${last}`));
          }
        }
      }
    }
  }
});

test("a piece whose digest does not match fails alone; the others of the pass are had", async () => {
  const layer = zlib.gzipSync(TAR, { level: 6 });
  const t = indexed(layer);
  const [a, b] = groups(t).find(([x, y]) => y - x === 3)!;
  const lying: ChunkTable = { ...t, entries: t.entries.map((e, i) => (i === a + 1 ? { ...e, digest: Buffer.alloc(32, 7) } : e)) };
  const remote = remoteOf(t, layer, b);
  const sync = verifiedChunks(lying, a, b, remote, name, "here");
  neverWrong(t, a, sync);
  assert.deepEqual(sync.map((v) => v.error?.message ?? "ok"), ["ok", `Digest mismatch in piece ${a + 1} from here`, "ok", "ok"]);
  const async = await verifiedChunksAsync(lying, a, b, remote, name);
  neverWrong(t, a, async);
  assert.deepEqual(async.map((v) => v.error?.message ?? "ok"), ["ok", `Digest mismatch in piece ${a + 1}`, "ok", "ok"]);
});

test("a corrupt byte in the last piece's bytes: never a wrong byte; pieces decoded before it are had, else the pass fails as one", () => {
  const layer = zlib.gzipSync(TAR, { level: 6 });
  const t = indexed(layer);
  let kept = 0;
  let failedAsOne = 0;
  for (const [a, b] of groups(t).filter(([x, y]) => y - x === 3)) {
    const from = t.entries[b - 1].remoteOffset + t.entries[b - 1].remoteSize; // bytes only the last piece needs
    const to = t.entries[b].remoteOffset + t.entries[b].remoteSize;
    for (let at = from; at < to; at += 331) {
      const remote = remoteOf(t, layer, b);
      remote[at - t.entries[b].remoteOffset] ^= 0x5a;
      let got: VerifiedChunk[];
      try {
        got = verifiedChunks(t, a, b, remote, name);
      } catch (err) {
        // The inflate itself failed: no piece of the pass is had, and the message names them all.
        assert.equal((err as { code?: string }).code, "DIGEST_MISMATCH");
        assert.match((err as Error).message, new RegExp(`pieces ${a}\\.\\.${b}`));
        failedAsOne++;
        continue;
      }
      neverWrong(t, a, got);
      assert.ok(got.slice(0, 3).every((v) => v.plain), "the pieces whose bytes lie before the corrupt one decode right");
      if (got[3].error) kept++;
    }
  }
  assert.ok(kept > 0, "some corrupt byte made only the last piece fail");
  assert.ok(failedAsOne > 0, "some corrupt byte made the inflate fail");
});

test("verifiedEach (eod check): when the pass fails, each piece has its own outcome: those before the corrupt byte are had, the last one fails", async () => {
  const layer = zlib.gzipSync(TAR, { level: 6 });
  const t = indexed(layer);
  let fellBack = 0;
  for (const [a, b] of groups(t).filter(([x, y]) => y - x === 3)) {
    const from = t.entries[b - 1].remoteOffset + t.entries[b - 1].remoteSize;
    const to = t.entries[b].remoteOffset + t.entries[b].remoteSize;
    for (let at = from; at < to; at += 331) {
      const remote = remoteOf(t, layer, b);
      remote[at - t.entries[b].remoteOffset] ^= 0x5a;
      let passFails = false;
      try { verifiedChunks(t, a, b, remote, name); } catch { passFails = true; }
      for (const got of [verifiedEach(t, a, b, remote, name), await verifiedEachAsync(t, a, b, remote, name)]) {
        assert.equal(got.length, 4);
        neverWrong(t, a, got);
        assert.ok(got.slice(0, 3).every((v) => v.plain), `pieces ${a}..${b - 1} lie before the corrupt byte`);
        if (passFails) assert.match(got[3].error!.message, new RegExp(`piece ${b}\\b`));
      }
      if (passFails) fellBack++;
    }
  }
  assert.ok(fellBack > 0, "some corrupt byte made the one pass fail");
});

test("decodeGroups: a gzip index's pieces by checkpoint, every other table's chunks one by one", () => {
  const t = indexed(zlib.gzipSync(TAR, { level: 6 }));
  const g = groups(t);
  assert.equal(g[0][0], 0);
  assert.equal(g.at(-1)![1], t.entries.length - 1);
  g.forEach(([a, b], k) => { if (k > 0) assert.equal(a, g[k - 1][1] + 1); assert.ok(b >= a); });
  assert.ok(g.some(([a, b]) => b > a));
  const v1: ChunkTable = { ...t, version: undefined, compression: "none", windows: undefined };
  assert.ok(groups(v1).every(([a, b]) => a === b));
  assert.equal(groups(v1).length, t.entries.length);
});

test("only the pieces of one checkpoint decode together", () => {
  const layer = zlib.gzipSync(TAR, { level: 6 });
  const t = indexed(layer);
  const [a] = groups(t)[1];
  assert.throws(() => verifiedChunks(t, a - 1, a, remoteOf(t, layer, a), name), /do not share a checkpoint/);
});
