import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import zlib from "node:zlib";
import { EodError } from "../../src/errors.ts";
import { zstdDecompressInto, zstdDecompressIntoAsync } from "../../src/sys/zstd.ts";

const plain = Buffer.concat([randomBytes(50_000), Buffer.alloc(70_000, 7)]);
const frame = zlib.zstdCompressSync(plain);

test("zstdDecompressInto() fills a view at a nonzero byteOffset with exactly the plain bytes", async () => {
  const backing = Buffer.alloc(plain.length + 100, 0xee);
  const dst = backing.subarray(50, 50 + plain.length);
  zstdDecompressInto(frame, dst);
  assert.ok(dst.equals(plain));
  assert.equal(backing[49], 0xee);
  assert.equal(backing[50 + plain.length], 0xee);
  const dst2 = Buffer.alloc(plain.length);
  await zstdDecompressIntoAsync(frame, dst2);
  assert.ok(dst2.equals(plain));
});

test("zstdDecompressInto() refuses garbage, a truncated frame and a wrong plain size with IMAGE_INVALID", async () => {
  const bad = (f: () => unknown) => assert.throws(f, (e) => e instanceof EodError && e.code === "IMAGE_INVALID");
  bad(() => zstdDecompressInto(randomBytes(1000), Buffer.alloc(plain.length)));
  bad(() => zstdDecompressInto(frame.subarray(0, frame.length - 10), Buffer.alloc(plain.length)));
  bad(() => zstdDecompressInto(frame, Buffer.alloc(plain.length - 1)));
  bad(() => zstdDecompressInto(frame, Buffer.alloc(plain.length + 1)));
  await assert.rejects(zstdDecompressIntoAsync(frame, Buffer.alloc(10)), (e) => e instanceof EodError && e.code === "IMAGE_INVALID");
});

test("zstdDecompressIntoAsync() takes any number of calls at once (koffi allows 256 in flight)", async () => {
  const outs = Array.from({ length: 600 }, () => Buffer.alloc(plain.length));
  await Promise.all(outs.map((o) => zstdDecompressIntoAsync(frame, o)));
  assert.ok(outs.every((o) => o.equals(plain)));
});

test("ZstdCompressor makes the frame zlib.zstdCompressSync() makes (content size, no checksum), context reused", async () => {
  const { ZstdCompressor, zstdCompressBound } = await import("../../src/sys/zstd.ts");
  const c = new ZstdCompressor();
  try {
    for (const [input, level] of [[plain, 3], [Buffer.alloc(4096, 1), 3], [randomBytes(1000), 1], [plain, 9]] as const) {
      const dst = Buffer.alloc(zstdCompressBound(input.length));
      const n = c.compress(input, dst, level);
      const z = zlib.zstdCompressSync(input, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level, [zlib.constants.ZSTD_c_checksumFlag]: 0 }, pledgedSrcSize: input.length });
      assert.ok(dst.subarray(0, n).equals(z), `level ${level}, ${input.length} bytes`);
      const back = Buffer.alloc(input.length);
      zstdDecompressInto(dst.subarray(0, n), back);
      assert.ok(back.equals(input));
    }
    assert.throws(() => c.compress(plain, Buffer.alloc(10), 3), /Cannot compress/);
  } finally {
    c.close();
  }
});
