import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { EodError } from "../../src/errors.ts";
import { lz4Compress, lz4CompressAsync, lz4CompressBound, lz4Decompress } from "../../src/sys/index.ts";

const random = crypto.randomBytes(64 * 1024);
const compressible = Buffer.alloc(1024 * 1024);
for (let i = 0; i < compressible.length; i++) compressible[i] = "erofs-ondemand ".charCodeAt(i % 15);

test("lz4CompressBound() is a little more than the input", () => {
  assert.ok(lz4CompressBound(65536) > 65536);
  assert.ok(lz4CompressBound(0) > 0);
  assert.throws(() => lz4CompressBound(-1), RangeError);
});

for (const level of [undefined, 0, 1, 9, 12]) {
  test(`lz4Compress(level ${level}) round-trips random and compressible data`, () => {
    for (const data of [random, compressible]) {
      const block = lz4Compress(data, level);
      assert.deepEqual(lz4Decompress(block, data.length), data);
    }
    assert.ok(lz4Compress(compressible, level).length < compressible.length / 50);
  });
}

test("lz4Compress() compresses a view at a nonzero byteOffset, and empty input", () => {
  const view = compressible.subarray(1000, 5000);
  assert.deepEqual(lz4Decompress(lz4Compress(view), view.length), Buffer.from(view));
  assert.equal(lz4Decompress(lz4Compress(new Uint8Array(0)), 0).length, 0);
});

test("lz4CompressAsync() round-trips, many blocks in parallel, same bytes as sync", async () => {
  const inputs = Array.from({ length: 32 }, (_, i) => (i % 2 ? random : compressible.subarray(i * 1000)));
  const levels = [undefined, 9];
  for (const level of levels) {
    const blocks = await Promise.all(inputs.map((d) => lz4CompressAsync(d, level)));
    blocks.forEach((b, i) => {
      assert.deepEqual(b, lz4Compress(inputs[i]!, level));
      assert.deepEqual(lz4Decompress(b, inputs[i]!.length), Buffer.from(inputs[i]!));
    });
  }
});

test("lz4Compress() rejects a negative or fractional level", async () => {
  assert.throws(() => lz4Compress(random, -1), RangeError);
  await assert.rejects(lz4CompressAsync(random, 1.5), RangeError);
});

test("lz4Decompress() of garbage throws EodError IMAGE_INVALID", () => {
  const garbage = Buffer.from([0xf0, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02]);
  assert.throws(() => lz4Decompress(garbage, 4096), (err: unknown) => {
    assert.ok(err instanceof EodError);
    assert.equal(err.code, "IMAGE_INVALID");
    assert.match(err.message, /Cannot decompress LZ4 block of 7 bytes/);
    return true;
  });
  assert.throws(() => lz4Decompress(new Uint8Array(0), 10), { code: "IMAGE_INVALID" });
});

test("lz4Decompress() with the wrong plain size throws IMAGE_INVALID", () => {
  const block = lz4Compress(compressible);
  assert.throws(() => lz4Decompress(block, compressible.length - 1), { code: "IMAGE_INVALID" }); // too small
  assert.throws(() => lz4Decompress(block, compressible.length + 1), { code: "IMAGE_INVALID" }); // too big
});
