import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { ChunkWorkers } from "../../src/mkfs/chunk-workers.ts";
import { compressChunkSync } from "../../src/image/codec.ts";

test("ChunkWorkers: digests and zstd frames of shared chunks, as the main thread would make them", async () => {
  const w = new ChunkWorkers(1 << 20, 2);
  try {
    const chunks = [randomBytes(131_072), Buffer.alloc(131_072, 3), Buffer.concat([randomBytes(3000), Buffer.alloc(2000)])].map((b) => {
      const c = w.pool.take(b.length);
      b.copy(c);
      return c;
    });
    const digests = await Promise.all(chunks.map((c) => w.digest(c)));
    const frames = await Promise.all(chunks.map((c) => w.compress(c, "zstd", 3)));
    for (const [i, c] of chunks.entries()) {
      assert.deepEqual(Buffer.from(digests[i]), createHash("sha256").update(c).digest());
      assert.deepEqual(Buffer.from(frames[i]), Buffer.from(compressChunkSync("zstd", c, 3)));
    }
    await assert.rejects(w.digest(Buffer.alloc(10)), /not from the shared pool/);
  } finally {
    await w.close();
  }
  await assert.rejects(w.digest(w.pool.take(10)), /closed/);
});
