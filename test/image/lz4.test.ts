// The TypeScript LZ4 block codec against liblz4 (the lz4 command, which made the lz4 images of earlier
// versions): each reads the other's blocks, for every level; and hostile blocks are refused, never read or
// written out of bounds.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import { test } from "node:test";
import { lz4Bound, lz4CompressBlock, lz4DecompressBlock } from "../../src/image/lz4.ts";
import { unavailable } from "../helpers/skip.ts";

const haveLz4 = spawnSync("lz4", ["--version"]).status === 0;
const text = Buffer.from(Array.from({ length: 30000 }, (_, i) => `entry ${i % 211}: ${"abcdefgh".repeat(i % 5)}\n`).join(""));
const binary = fs.readFileSync(process.execPath).subarray(0, 3 << 20);
const inputs: Array<[string, Buffer]> = [
  ["random", randomBytes(200_000)], ["text", text], ["node's binary", binary], ["zeros", Buffer.alloc(1 << 20)],
  ["tiny", Buffer.from("abc")], ["empty", Buffer.alloc(0)], ["13 bytes", Buffer.from("aaaaaaaaaaaaa")],
];

function decode(block: Uint8Array, size: number): Buffer {
  const out = Buffer.alloc(size);
  assert.equal(lz4DecompressBlock(block, out), size);
  return out;
}

/** The blocks of an LZ4 frame (independent blocks, no checksums), as `lz4 -c` writes them. */
function frameBlocks(frame: Buffer): Array<{ stored: boolean; bytes: Buffer }> {
  assert.equal(frame.readUInt32LE(0), 0x184d2204);
  const flg = frame[4];
  let at = 6 + (flg & 0x08 ? 8 : 0) + 1;
  const blocks: Array<{ stored: boolean; bytes: Buffer }> = [];
  for (;;) {
    const word = frame.readUInt32LE(at);
    const size = word & 0x7fffffff;
    at += 4;
    if (word === 0) return blocks;
    blocks.push({ stored: size !== word, bytes: frame.subarray(at, at + size) }); // stored: did not compress

    at += size + (flg & 0x10 ? 4 : 0);
  }
}

/** One of our blocks in a frame of its own, for `lz4 -d`. */
function frameOf(block: Uint8Array): Buffer {
  const header = Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x60, 0x70, 0x73]); // v1, independent blocks, 4 MiB max; HC byte
  const size = Buffer.alloc(4);
  size.writeUInt32LE(block.length);
  return Buffer.concat([header, size, block, Buffer.alloc(4)]);
}

for (const level of [0, 1, 9, 12]) {
  test(`level ${level}: round trips; liblz4 decodes our blocks`, { skip: unavailable(!haveLz4 && "no lz4 command") }, () => {
    for (const [name, data] of inputs) {
      const block = lz4CompressBlock(data, level);
      assert.ok(block.length <= lz4Bound(data.length), name);
      assert.ok(decode(block, data.length).equals(data), name);
      if (!data.length) continue; // lz4 writes no block for empty input
      const r = spawnSync("lz4", ["-d", "-c"], { input: frameOf(block), maxBuffer: 64 << 20 });
      assert.equal(r.status, 0, `${name}: ${r.stderr}`);
      assert.ok(r.stdout.equals(data), name);
    }
  });
}

test("blocks liblz4 made (fast and HC levels, as images of earlier versions hold) decode", { skip: unavailable(!haveLz4 && "no lz4 command") }, () => {
  for (const flag of ["-1", "-9", "-12"]) {
    for (const [name, data] of inputs) {
      if (data.length < 16) continue;
      const r = spawnSync("lz4", [flag, "-B7", "--no-frame-crc", "-c"], { input: data, maxBuffer: 64 << 20 });
      assert.equal(r.status, 0, String(r.stderr));
      const blocks = frameBlocks(r.stdout);
      let at = 0;
      for (const b of blocks) {
        const part = data.subarray(at, at + Math.min(4 << 20, data.length - at));
        assert.ok((b.stored ? b.bytes : decode(b.bytes, part.length)).equals(part), `${name} ${flag}`);
        at += part.length;
      }
      assert.equal(at, data.length);
    }
  }
});

test("hostile blocks throw a RangeError naming the input position, and never write past the output", () => {
  const good = lz4CompressBlock(text);
  const cases: Array<[Uint8Array, number]> = [
    [Buffer.alloc(0), 10], // no token
    [Buffer.from([0xf0]), 100], // a literal length that ends early
    [Buffer.from([0x40, 1, 2]), 10], // 4 literals, 2 present
    [Buffer.from([0x11, 0x61, 0x05, 0x00]), 100], // offset 5 with 1 byte written
    [Buffer.from([0x11, 0x61, 0x00, 0x00, 0x00]), 100], // offset 0
    [Buffer.from([0x10, 0x61, 0x01]), 100], // ends inside an offset
    [good, text.length - 1], // expands past the output
    [good.subarray(0, good.length - 3), text.length], // truncated
  ];
  for (const [block, size] of cases) {
    const backing = Buffer.alloc(size + 32, 0xee);
    const out = backing.subarray(16, 16 + size);
    assert.throws(() => lz4DecompressBlock(block, out), (e) => e instanceof RangeError && /malformed LZ4 block at input byte \d+/.test(e.message));
    assert.ok(backing.subarray(0, 16).every((b) => b === 0xee) && backing.subarray(16 + size).every((b) => b === 0xee));
  }
  for (let i = 0; i < 300; i++) { // random mutations: a RangeError or some bytes, never a crash
    const bad = Buffer.from(good);
    bad[Math.floor(Math.random() * bad.length)] = Math.floor(Math.random() * 256);
    try { lz4DecompressBlock(bad, Buffer.alloc(text.length)); } catch (e) { assert.ok(e instanceof RangeError); }
  }
  assert.throws(() => lz4CompressBlock(text, 13), RangeError);
  assert.throws(() => lz4CompressBlock(text, 0, new Uint8Array(10)), RangeError);
});
