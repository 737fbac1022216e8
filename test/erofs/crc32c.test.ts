// The superblock's crc32c (seed ~0, no final XOR): the standard check value, and a value mkfs.erofs wrote.
import assert from "node:assert/strict";
import { test } from "node:test";
import { erofsCrc32c } from "../../src/erofs/crc32c.ts";

test("crc32c of \"123456789\" is the standard 0xE3069283 once XORed, and empty input is the seed", () => {
  assert.equal(~erofsCrc32c(Buffer.from("123456789")) >>> 0, 0xe3069283);
  assert.equal(erofsCrc32c(new Uint8Array(0)), 0xffffffff);
  assert.equal(~erofsCrc32c(Buffer.alloc(32)) >>> 0, 0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
  assert.equal(~erofsCrc32c(Buffer.alloc(32, 0xff)) >>> 0, 0x62a8ab43); // 32 bytes of ones
  const view = Buffer.from("xx123456789").subarray(2); // a view at a nonzero offset
  assert.equal(~erofsCrc32c(view) >>> 0, 0xe3069283);
});
