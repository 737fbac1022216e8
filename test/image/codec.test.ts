// The one codec entry (src/image/codec.ts) and the one decode-and-verify path (verified-chunk.ts): round
// trips for zstd and raw LZ4 blocks, frames as zlib makes them, exact sizes, and bad bytes as DIGEST_MISMATCH.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { test } from "node:test";
import zlib from "node:zlib";
import type { ChunkTable, Compression } from "../../src/image/chunk-table.ts";
import { CHUNK_FLAG_RAW } from "../../src/image/chunk-table.ts";
import { compressChunk, compressChunkSync, decompressChunk, decompressChunkAsync } from "../../src/image/codec.ts";
import { verifiedChunk, verifiedChunkAsync } from "../../src/image/verified-chunk.ts";

const random = randomBytes(64 * 1024);
const compressible = Buffer.alloc(1024 * 1024);
for (let i = 0; i < compressible.length; i++) compressible[i] = "erofs-ondemand ".charCodeAt(i % 15);
const mismatch = { code: "DIGEST_MISMATCH", message: /^Cannot decompress chunk 3/ };

for (const kind of ["zstd", "lz4"] as const) {
  test(`${kind}: round trips, sync and async alike, a view at a nonzero offset and empty input too`, async () => {
    for (const data of [random, compressible, compressible.subarray(1000, 5000), Buffer.alloc(0)]) {
      // zlib's async zstd streams the input (a frame with other block boundaries than the one-shot one): both decode
      for (const block of [await compressChunk(kind, data), compressChunkSync(kind, data)]) {
        assert.deepEqual(Buffer.from(decompressChunk(kind, block, data.length, "chunk 3")), Buffer.from(data));
        assert.deepEqual(Buffer.from(await decompressChunkAsync(kind, block, data.length, "chunk 3")), Buffer.from(data));
      }
      if (kind === "lz4") assert.deepEqual(Buffer.from(compressChunkSync(kind, data)), Buffer.from(await compressChunk(kind, data)));
    }
    assert.ok((await compressChunk(kind, compressible)).length < compressible.length / 50);
  });

  test(`${kind}: garbage, a truncated block and a wrong plain size are DIGEST_MISMATCH`, async () => {
    const block = await compressChunk(kind, compressible);
    for (const [bytes, size] of [[randomBytes(1000), 4096], [block.subarray(0, block.length - 10), compressible.length], [block, compressible.length - 1], [block, compressible.length + 1]] as const) {
      assert.throws(() => decompressChunk(kind, bytes, size, "chunk 3"), mismatch);
      await assert.rejects(decompressChunkAsync(kind, bytes, size, "chunk 3"), mismatch);
    }
  });
}

test("zstd chunks are one frame with the content size and no checksum, as zlib.zstdCompressSync() makes it", async () => {
  for (const [input, level] of [[random, 1], [compressible, 3], [random, 9]] as const) {
    const z = zlib.zstdCompressSync(input, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level, [zlib.constants.ZSTD_c_checksumFlag]: 0 }, pledgedSrcSize: input.length });
    assert.ok(Buffer.from(compressChunkSync("zstd", input, level)).equals(z));
    const frame = Buffer.from(await compressChunk("zstd", input, level));
    assert.equal(frame.readUInt32LE(0), 0xfd2fb528);
    assert.equal(frame[4] & 0x04, 0, "no checksum flag");
    assert.ok(frame[4] & 0xc0 || frame[4] & 0x20, "content size present");
  }
});

test("LZ4 blocks are raw (no size or frame header): a hand-made block of literals decodes", () => {
  // token 0x50: 5 literals, no match (the last sequence of a block)
  const block = Buffer.from([0x50, 0x68, 0x65, 0x6c, 0x6c, 0x6f]);
  assert.equal(Buffer.from(decompressChunk("lz4", block, 5, "chunk 3")).toString(), "hello");
});

test("lz4 levels: higher levels make smaller blocks of the same bytes; above 12 is 12 (as liblz4 clamps)", async () => {
  const text = Buffer.from(Array.from({ length: 20000 }, (_, i) => `line ${i % 97} of ${i % 13}\n`).join(""));
  const sizes = [undefined, 1, 9, 12, 22].map((level) => compressChunkSync("lz4", text, level).length);
  assert.ok(sizes[2] < sizes[0], `level 9 ${sizes[2]} < level 0 ${sizes[0]}`);
  assert.equal(sizes[4], sizes[3]);
  for (const level of [undefined, 1, 9, 12]) {
    assert.ok(Buffer.from(decompressChunk("lz4", await compressChunk("lz4", text, level), text.length, "chunk 3")).equals(text));
  }
});

test("many decodes at once on the thread pool", async () => {
  const frame = await compressChunk("zstd", compressible);
  const outs = await Promise.all(Array.from({ length: 300 }, () => decompressChunkAsync("zstd", frame, compressible.length, "chunk 3")));
  assert.ok(outs.every((o) => Buffer.from(o).equals(compressible)));
});

test("verifiedChunk: decodes with the table's codec, raw chunks as they are, and checks the sha256", async () => {
  for (const compression of ["zstd", "lz4", "none"] as Compression[]) {
    const remote = Buffer.from(await compressChunk(compression, compressible));
    const raw = Buffer.from(random);
    const digest = (b: Buffer) => createHash("sha256").update(b).digest();
    const table: ChunkTable = {
      compression, blkSzBits: 12, kernelSize: 2 << 20, remoteSize: remote.length + raw.length,
      entries: [
        { plainOffset: 0, remoteOffset: 0, plainSize: compressible.length, remoteSize: remote.length, flags: 0, digest: digest(compressible) },
        { plainOffset: 1 << 20, remoteOffset: remote.length, plainSize: raw.length, remoteSize: raw.length, flags: CHUNK_FLAG_RAW, digest: digest(raw) },
      ],
    };
    assert.ok(Buffer.from(verifiedChunk(table, 0, remote, "chunk 0")).equals(compressible));
    assert.ok(Buffer.from(await verifiedChunkAsync(table, 0, remote, "chunk 0")).equals(compressible));
    assert.ok(Buffer.from(verifiedChunk(table, 1, raw, "chunk 1")).equals(raw));
    const other = Buffer.from(raw);
    other[100] ^= 1;
    assert.throws(() => verifiedChunk(table, 1, other, "chunk 1", "http://x/blob"), { code: "DIGEST_MISMATCH", message: "Digest mismatch in chunk 1 from http://x/blob" });
    await assert.rejects(verifiedChunkAsync(table, 1, other, "chunk 1"), { code: "DIGEST_MISMATCH", message: "Digest mismatch in chunk 1" });
    assert.throws(() => verifiedChunk(table, 1, raw.subarray(1), "chunk 1"), { code: "DIGEST_MISMATCH" });
  }
});
