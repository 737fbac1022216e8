// gunzipPieces (libz into reused buffers) against node:zlib's Gunzip: same bytes, same refusals; and the
// tar reader gives every piece back, so a long layer runs in a bounded set of buffers.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import test from "node:test";
import zlib from "node:zlib";
import { gunzipPieces } from "../../src/mkfs/layers/gunzip.ts";
import { giveBack } from "../../src/mkfs/layers/piece-loans.ts";
import { readTar } from "../../src/mkfs/layers/tar-reader.ts";
import { PooledSha256 } from "../../src/sys/sha256.ts";

async function* pieces(buf: Buffer, size = 65536): AsyncGenerator<Buffer> {
  for (let at = 0; at < buf.length; at += size) yield buf.subarray(at, at + size);
}

async function gunzipAll(gz: Buffer, size?: number): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const p of gunzipPieces(pieces(gz, size))) {
    out.push(Buffer.from(p));
    giveBack(p);
  }
  return Buffer.concat(out);
}

const data = Buffer.concat([randomBytes(3 << 20), Buffer.alloc(5 << 20, 7), randomBytes(12345)]);

test("same bytes as node:zlib, for any input piece size", async () => {
  const gz = zlib.gzipSync(data);
  for (const size of [1, 4096, 65536, 1 << 22]) {
    if (size === 1) { assert.deepEqual(await gunzipAll(zlib.gzipSync(data.subarray(0, 20000)), 1), data.subarray(0, 20000)); continue; }
    assert.deepEqual(await gunzipAll(gz, size), data, `pieces of ${size}`);
  }
});

test("with a hash, every piece is hashed before it is handed out (the thread pool's SHA-256 = node:crypto's)", async () => {
  const h = new PooledSha256();
  let n = 0;
  for await (const p of gunzipPieces(pieces(zlib.gzipSync(data)), h)) { n += p.length; giveBack(p); }
  assert.equal(n, data.length);
  assert.equal(h.digestHex(), createHash("sha256").update(data).digest("hex"));
  const small = new PooledSha256(); // small and empty updates (copied off the JS heap first)
  for (const b of [new Uint8Array(0), new Uint8Array([1, 2, 3]), Buffer.from("abc")]) await small.update(b);
  assert.equal(small.digestHex(), createHash("sha256").update(Buffer.from([1, 2, 3, 0x61, 0x62, 0x63])).digest("hex"));
});

test("concatenated members and zero padding after them are read as node:zlib reads them", async () => {
  const a = zlib.gzipSync(data.subarray(0, 1 << 20));
  const b = zlib.gzipSync(data.subarray(1 << 20, 3 << 20));
  const gz = Buffer.concat([a, b, Buffer.alloc(1000)]);
  assert.deepEqual(await gunzipAll(gz), zlib.gunzipSync(gz));
  assert.deepEqual(await gunzipAll(Buffer.concat([a, b])), data.subarray(0, 3 << 20));
});

test("truncated, corrupt and trailing garbage are refused with zlib's codes", async () => {
  const gz = zlib.gzipSync(data);
  await assert.rejects(gunzipAll(gz.subarray(0, gz.length - 100)), { code: "Z_BUF_ERROR" });
  const bad = Buffer.from(gz);
  bad[5000] ^= 0xff;
  await assert.rejects(gunzipAll(bad), (err: NodeJS.ErrnoException) => err.code!.startsWith("Z_"));
  await assert.rejects(gunzipAll(Buffer.concat([gz, Buffer.from("garbage")])), { code: "Z_DATA_ERROR" });
});

test("an error of the stored stream (a digest check at its end) comes through", async () => {
  const gz = zlib.gzipSync(data);
  async function* failing() { yield* pieces(gz); throw new Error("digest mismatch"); }
  await assert.rejects(async () => { for await (const p of gunzipPieces(failing())) giveBack(p); }, /digest mismatch/);
});

test("the tar reader gives every piece back: a 64 MiB layer runs in a few buffers", async () => {
  // A tar of 64 files of 1 MiB + 1 (so headers and bodies straddle the 1 MiB pieces).
  const parts: Buffer[] = [];
  for (let i = 0; i < 64; i++) {
    const body = Buffer.alloc((1 << 20) + 1, i);
    const h = Buffer.alloc(512);
    h.write(`f${i}`, 0);
    h.write("0000644\0", 100); h.write("0000000\0", 108); h.write("0000000\0", 116);
    h.write(body.length.toString(8).padStart(11, "0") + "\0", 124);
    h.write("00000000000\0", 136); h.write("0", 156); h.write("ustar\u000000", 257);
    h.fill(0x20, 148, 156);
    let sum = 0; for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148);
    parts.push(h, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  const gz = zlib.gzipSync(Buffer.concat(parts), { level: 1 });
  const seen = new Set<ArrayBufferLike>();
  async function* watch(src: AsyncIterable<Buffer>) { for await (const p of src) { seen.add(p.buffer); yield p; } }
  let n = 0;
  for await (const { entry, body } of readTar(watch(gunzipPieces(pieces(gz))), { where: "t" })) {
    let size = 0;
    for await (const b of body) { assert.ok(b.every((x) => x === n)); size += b.length; }
    assert.equal(size, entry.size);
    n++;
  }
  assert.equal(n, 64);
  assert.ok(seen.size <= 12, `${seen.size} buffers for 64 MiB`);
});
