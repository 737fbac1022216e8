// A layer's tar bytes from its stored form (node:zlib's gunzip and zstd): the same bytes for any piece size,
// gzip members and zero padding read as gzip(1) and node:zlib read them, truncated, corrupt and trailing
// garbage refused as SOURCE_INVALID, a stored stream's own error passed through, and the digests checked.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import test from "node:test";
import zlib from "node:zlib";
import { layerTarStream, type LayerInput, type LayerStreamStats } from "../../src/mkfs/layers/layer-stream.ts";

const data = Buffer.concat([randomBytes(3 << 20), Buffer.alloc(5 << 20, 7), randomBytes(12345)]);
const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function* pieces(buf: Buffer, size = 65536): AsyncGenerator<Buffer> {
  for (let at = 0; at < buf.length; at += size) yield buf.subarray(at, at + size);
}

async function tarOf(stored: Buffer, size?: number, more: Partial<LayerInput> = {}): Promise<{ tar: Buffer; stats: LayerStreamStats }> {
  const stats: LayerStreamStats = { compression: "none", storedBytes: 0, tarBytes: 0 };
  const out: Buffer[] = [];
  for await (const p of layerTarStream({ name: "layer 1", open: () => pieces(stored, size), ...more }, {}, stats)) out.push(Buffer.from(p));
  return { tar: Buffer.concat(out), stats };
}

test("gzip and zstd layers: the same bytes for any input piece size, and the stats", async () => {
  const gz = zlib.gzipSync(data);
  for (const size of [4096, 65536, 1 << 22]) assert.ok((await tarOf(gz, size)).tar.equals(data), `gzip pieces of ${size}`);
  assert.ok((await tarOf(zlib.gzipSync(data.subarray(0, 20000)), 7)).tar.equals(data.subarray(0, 20000)));
  const { tar, stats } = await tarOf(zlib.zstdCompressSync(data));
  assert.ok(tar.equals(data));
  assert.equal(stats.compression, "zstd");
  assert.equal(stats.tarBytes, data.length);
});

test("concatenated gzip members and zero padding after them are read as node:zlib reads them", async () => {
  const a = zlib.gzipSync(data.subarray(0, 1 << 20));
  const b = zlib.gzipSync(data.subarray(1 << 20, 3 << 20));
  const gz = Buffer.concat([a, b, Buffer.alloc(1000)]);
  assert.ok((await tarOf(gz)).tar.equals(zlib.gunzipSync(gz)));
  assert.ok((await tarOf(Buffer.concat([a, b]))).tar.equals(data.subarray(0, 3 << 20)));
});

test("truncated, corrupt and trailing garbage are SOURCE_INVALID naming the layer", async () => {
  const gz = zlib.gzipSync(data);
  const invalid = { code: "SOURCE_INVALID", message: /^layer 1: corrupt or truncated gzip stream/ };
  await assert.rejects(tarOf(gz.subarray(0, gz.length - 100)), invalid);
  const bad = Buffer.from(gz);
  bad[5000] ^= 0xff;
  await assert.rejects(tarOf(bad), invalid);
  await assert.rejects(tarOf(Buffer.concat([gz, Buffer.from("garbage")])), invalid);
  const zst = zlib.zstdCompressSync(data);
  await assert.rejects(tarOf(zst.subarray(0, zst.length - 100)), { code: "SOURCE_INVALID", message: /zstd stream/ });
});

test("an error of the stored stream comes through", async () => {
  const gz = zlib.gzipSync(data);
  async function* failing() { yield* pieces(gz); throw Object.assign(new Error("connection reset"), { code: "ECONNRESET" }); }
  const stats: LayerStreamStats = { compression: "none", storedBytes: 0, tarBytes: 0 };
  await assert.rejects(async () => { for await (const _ of layerTarStream({ name: "layer 1", open: failing }, {}, stats)); }, { code: "SOURCE_UNREADABLE", message: /ECONNRESET/ });
});

test("the layer digest and the diff_id are checked at the end", async () => {
  const gz = zlib.gzipSync(data);
  await tarOf(gz, undefined, { digest: sha(gz), diffId: sha(data), size: gz.length });
  await assert.rejects(tarOf(gz, undefined, { diffId: sha(gz) }), { code: "DIGEST_MISMATCH", message: /diff_id/ });
  await assert.rejects(tarOf(gz, undefined, { digest: sha(data) }), { code: "DIGEST_MISMATCH", message: /content/ });
});

test("a layer whose first piece is shorter than its magic is still recognised", async () => {
  for (const [compression, stored] of [["gzip", zlib.gzipSync(data)], ["zstd", zlib.zstdCompressSync(data)]] as const) {
    const stats: LayerStreamStats = { compression: "none", storedBytes: 0, tarBytes: 0 };
    async function* oneByteFirst() { yield stored.subarray(0, 1); yield* pieces(stored.subarray(1)); }
    const out: Buffer[] = [];
    for await (const p of layerTarStream({ name: "layer 1", open: oneByteFirst }, {}, stats)) out.push(Buffer.from(p));
    assert.equal(stats.compression, compression);
    assert.ok(Buffer.concat(out).equals(data), compression);
  }
});
