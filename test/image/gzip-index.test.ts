// The seek index of a gzip layer (src/image/gzip-index.ts) from real gzip output: every span decodes from
// exactly its remote range to its tar bytes; spans, skips, bits and windows as docs/format.md says.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import zlib from "node:zlib";
import { encodeChunkTable, sameCheckpoint, SPAN_ALIGN, WINDOW_MAX_COMPRESSED } from "../../src/image/chunk-table.ts";
import { layerIndexer } from "../../src/image/layer-indexer.ts";
import { checkSpans, hasTool, indexLayer, noise } from "../helpers/layer-spans.ts";
import { unavailable } from "../helpers/skip.ts";

const K = 1024;

/** Text of words picked by noise: compressible, with many short deflate blocks. */
function words(n: number, seed: number): Buffer {
  const vocab = ["usr", "lib", "share", "doc", "copyright", "GPL-2+", "x86_64-linux-gnu", "python3", "\n", "0644", "root", ".so.6"];
  const r = noise(n, seed);
  const out: string[] = [];
  for (let i = 0, len = 0; len < n; i++) {
    const w = vocab[r[i % n] % vocab.length] + (r[(i * 7) % n] & 3 ? " " : "/");
    out.push(w);
    len += w.length;
  }
  return Buffer.from(out.join("")).subarray(0, n);
}

/** Tar-like bytes: text, incompressible runs (zlib stores them) and long repeats (blocks of megabytes). */
function tarLike(n: number, seed = 1): Buffer {
  const parts: Buffer[] = [];
  for (let k = 0; parts.reduce((s, p) => s + p.length, 0) < n; k++) parts.push(k % 3 === 0 ? words(400 * K, seed + k) : k % 3 === 1 ? noise(60 * K + k, seed + k) : Buffer.alloc(300 * K + k, k));
  return Buffer.concat(parts).subarray(0, n);
}

const TAR = tarLike(3 * 1024 * K + 777);
/** Base64 of noise: mostly literals, so deflate blocks of some 20 KiB, starting at every bit offset. */
const WORDS = Buffer.from(noise(1536 * K, 3).toString("base64"));

test("gzip spans from node:zlib at levels 1, 6 and 9 decode from exactly their remote ranges", async () => {
  for (const level of [1, 6, 9]) {
    const layer = zlib.gzipSync(TAR, { level });
    const r = indexLayer("gzip", layer, TAR, 128 * K, 10_007);
    assert.equal(r.table.version, 2);
    assert.equal(r.table.compression, "gzip");
    assert.equal(r.table.blkSzBits, 9);
    assert.equal(r.table.kernelSize, Math.ceil(TAR.length / 512) * 512);
    assert.ok(r.table.entries.length >= 8, `${r.table.entries.length} spans at level ${level}`);
    await checkSpans(r.table, layer, TAR);
  }
});

test("gzip spans: aligned starts, skips below 4096, a span's worth of output, windows only after a member's start", () => {
  const layer = zlib.gzipSync(TAR, { level: 6 });
  const span = 128 * K;
  const { table } = indexLayer("gzip", layer, TAR, span);
  const [first, ...rest] = table.entries;
  assert.deepEqual([first.plainOffset, first.skip, first.bits, first.remoteOffset, table.windows?.[0].length], [0, 0, 0, 10, 0]);
  for (const [k, e] of rest.entries()) {
    assert.equal(e.plainOffset % SPAN_ALIGN, 0);
    assert.ok((e.skip ?? 0) < SPAN_ALIGN);
    assert.ok((e.bits ?? 0) <= 7);
    assert.ok(table.entries[k].plainSize >= span - SPAN_ALIGN, "a span holds at least its worth (less the rounding)");
    assert.ok(e.remoteOffset >= table.entries[k].remoteOffset);
    assert.ok(table.windows![k + 1].length <= WINDOW_MAX_COMPRESSED);
  }
  // Neighbours share the bytes around a checkpoint: span k's range runs past span k+1's start.
  assert.ok(rest.some((e, k) => table.entries[k].remoteOffset + table.entries[k].remoteSize > e.remoteOffset));
});

test("gzip pieces: a span's pieces share its checkpoint and window; each decodes from the checkpoint through its own end", async () => {
  const layer = zlib.gzipSync(TAR, { level: 6 });
  const span = 256 * K;
  const pieceSize = 32 * K;
  const { table } = indexLayer("gzip", layer, TAR, span, 9_973, pieceSize);
  await checkSpans(table, layer, TAR);
  const spans = indexLayer("gzip", layer, TAR, span).table;
  const firsts = table.entries.filter((e, i) => !sameCheckpoint(e, table.entries[i - 1]));
  assert.deepEqual(firsts.map((e) => [e.plainOffset, e.remoteOffset, e.bits, e.skip]), spans.entries.map((e) => [e.plainOffset, e.remoteOffset, e.bits, e.skip]), "the same checkpoints as without pieces");
  assert.ok(table.entries.length >= 4 * spans.entries.length, `${table.entries.length} pieces, ${spans.entries.length} spans`);
  for (let i = 1; i < table.entries.length; i++) {
    const [prev, e] = [table.entries[i - 1], table.entries[i]];
    if (!sameCheckpoint(e, prev)) continue;
    assert.equal(e.skip, prev.skip! + prev.plainSize, `piece ${i} skips the pieces before it`);
    assert.ok(e.remoteSize >= prev.remoteSize, `piece ${i} needs at least the bytes of the one before`);
    assert.equal(table.windows![i], table.windows![i - 1], `piece ${i} shares its span's window`);
  }
  table.entries.forEach((e, i) => {
    if (i + 1 < table.entries.length && sameCheckpoint(table.entries[i + 1], e)) assert.equal(e.plainSize, pieceSize, `piece ${i} is a whole piece`);
    else if (i + 1 < table.entries.length) assert.ok(e.plainSize >= pieceSize, `the last piece of a span runs to the next span (piece ${i})`);
  });
  // The encoding stores each window once: about the size of the span table's plus 64 + 4 bytes per piece.
  const extra = encodeChunkTable(table).length - encodeChunkTable(spans).length;
  assert.equal(extra, (table.entries.length - spans.entries.length) * 68);
});

test("gzip windows hold only what the span's matches reach: none after incompressible data", async () => {
  const tar = Buffer.concat([noise(200 * K, 7), words(200 * K, 8), noise(200 * K, 9)]);
  const layer = zlib.gzipSync(tar, { level: 6 });
  const { table } = indexLayer("gzip", layer, tar, 16 * K);
  const sizes = table.windows!.map((w) => (w.length ? zlib.inflateRawSync(w).length : 0));
  assert.ok(sizes.some((n) => n === 0) && sizes.some((n) => n > 0), `window sizes ${sizes.join(" ")}`);
  assert.ok(sizes.every((n) => n <= 32768));
  await checkSpans(table, layer, tar);
});

test("gzip spans across members: a span decodes over a member's end, trailer and next header", async () => {
  const cuts = [0, 5000, 5000, 700 * K, 700 * K + 1, 2000 * K, TAR.length];
  const layer = Buffer.concat(cuts.slice(1).map((end, k) => zlib.gzipSync(TAR.subarray(cuts[k], end), { level: [1, 6, 9][k % 3] })));
  for (const span of [4 * K, 64 * K, 1024 * K]) await checkSpans(indexLayer("gzip", layer, TAR, span, 999).table, layer, TAR);
});

test("gzip spans of gzip(1) -n and with FNAME, and every bit offset 0..7 of a checkpoint", { skip: unavailable(!hasTool("gzip") && "needs gzip(1)") }, async () => {
  const bits = new Set<number>();
  for (const args of [["-6", "-n", "-c"], ["-9", "-c"], ["-1", "-c"]]) {
    const layer = execFileSync("gzip", args, { input: WORDS, maxBuffer: 64 << 20 });
    for (const span of [16 * K, 48 * K]) {
      const { table } = indexLayer("gzip", layer, WORDS, span);
      for (const e of table.entries) bits.add(e.bits ?? 0);
      await checkSpans(table, layer, WORDS);
    }
  }
  assert.deepEqual([...bits].sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
});

test("an empty tar and a tar shorter than one span", async () => {
  const empty = indexLayer("gzip", zlib.gzipSync(Buffer.alloc(0)), Buffer.alloc(0), 64 * K);
  assert.deepEqual(empty.table.entries, []);
  const small = Buffer.from("x".repeat(5000));
  const layer = zlib.gzipSync(small);
  const one = indexLayer("gzip", layer, small, 64 * K);
  assert.equal(one.table.entries.length, 1);
  assert.equal(one.table.entries[0].remoteSize, layer.length - 10);
  await checkSpans(one.table, layer, small);
});

test("a corrupt or truncated gzip layer is refused at indexing with SOURCE_INVALID", () => {
  const layer = zlib.gzipSync(TAR.subarray(0, 500 * K), { level: 6 });
  const run = (bytes: Uint8Array) => {
    const ix = layerIndexer("gzip", { spanSize: 64 * K });
    ix.push(bytes);
    return ix.finish();
  };
  assert.throws(() => run(layer.subarray(0, layer.length - 3)), { code: "SOURCE_INVALID", message: /truncated/ });
  const crc = Buffer.from(layer);
  crc[crc.length - 6] ^= 0x40;
  assert.throws(() => run(crc), { code: "SOURCE_INVALID", message: /CRC32/ });
  assert.throws(() => run(Buffer.from("plainly not gzip")), { code: "SOURCE_INVALID", message: /not gzip/ });
});

test("a span decoded from wrong bytes is a DIGEST_MISMATCH, never other bytes: flipped, short, another layer's", async () => {
  const { verifiedChunk, verifiedChunkAsync } = await import("../../src/image/verified-chunk.ts");
  const layer = zlib.gzipSync(TAR, { level: 6 });
  const { table } = indexLayer("gzip", layer, TAR, 128 * K);
  const other = zlib.gzipSync(Buffer.from(TAR).reverse(), { level: 6 });
  for (const i of [0, 3, table.entries.length - 1]) {
    const e = table.entries[i];
    const remote = layer.slice(e.remoteOffset, e.remoteOffset + e.remoteSize);
    // Bits that the span's symbols use: any in the middle, the lowest of the last (its top bits may follow the last symbol needed; the last
    // span ends with the end-of-block code and the gzip trailer: they make no byte of the span).
    const last = i === table.entries.length - 1 ? remote.length - 16 : remote.length - 1;
    for (const [at, bit] of [[remote.length >> 2, 0x01], [remote.length >> 1, 0x10], [last, 0x01]]) {
      const bad = Buffer.from(remote);
      bad[at] ^= bit;
      assert.throws(() => verifiedChunk(table, i, bad, `span ${i}`), { code: "DIGEST_MISMATCH" }, `span ${i} byte ${at}`);
      await assert.rejects(verifiedChunkAsync(table, i, bad, `span ${i}`), { code: "DIGEST_MISMATCH" });
    }
    assert.throws(() => verifiedChunk(table, i, remote.subarray(0, remote.length - 1), `span ${i}`), { code: "DIGEST_MISMATCH" });
    assert.throws(() => verifiedChunk(table, i, other.subarray(e.remoteOffset, e.remoteOffset + e.remoteSize), `span ${i}`), { code: "DIGEST_MISMATCH" });
  }
});
