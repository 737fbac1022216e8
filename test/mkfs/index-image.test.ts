// buildIndexImage (src/mkfs/index-image.ts): the index image directory of ordinary layers. Its manifest names
// one blob per distinct tar (id = diff_id hex, kernel size = the tar rounded up to 512, remote = the original
// layer: its digest and size), each with its seek index (chunk table version 2) and no blob file; the layers'
// digests and diff_ids are checked while they are read; a sparse entry is refused by name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { EodError } from "../../src/errors.ts";
import { bufferSource, ErofsReader } from "../../src/erofs/reader.ts";
import { decodeChunkTable } from "../../src/image/chunk-table.ts";
import { parseManifest } from "../../src/image/manifest.ts";
import { openImageMetadata } from "../../src/image/open.ts";
import { buildIndexImage } from "../../src/mkfs/index-image.ts";
import type { LayerInput } from "../../src/mkfs/layers/layer-stream.ts";
import { tempDir } from "../helpers/kernel.ts";
import { testLayers } from "../helpers/oci-image.ts";
import { header, tarArchive } from "../helpers/tar-layer.ts";

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** A layer whose stored bytes are `stored`, with the descriptor's digests given or not. */
function layer(name: string, stored: Buffer, known: { digest?: string; diffId?: string; size?: number } = {}): LayerInput {
  return { name, ...known, open: () => (async function* () { for (let at = 0; at < stored.length; at += 100_000) yield stored.subarray(at, at + 100_000); })() };
}

test("the index image of uncompressed layers: one blob per tar named by its diff_id, remote = the layer, no blob files", async () => {
  const out = path.join(tempDir("eod-index-img-"), "img");
  const tars = testLayers().map((s) => tarArchive(s));
  const r = await buildIndexImage(tars.map((t, k) => layer(`layer ${k + 1}`, t, { digest: sha(t), diffId: sha(t), size: t.length })), out, { spanSize: 64 << 10 });

  const m = parseManifest(fs.readFileSync(path.join(out, "manifest.json"), "utf8"), "manifest.json");
  assert.equal(m.blockSize, 512);
  assert.deepEqual(m.blobs.map((b) => b.id), tars.map((t) => sha(t).slice(7)));
  assert.deepEqual(m.blobs.map((b) => b.kernelSize), tars.map((t) => Math.ceil(t.length / 512) * 512));
  assert.deepEqual(m.blobs.map((b) => b.remote), tars.map((t) => ({ path: `blobs/${sha(t).slice(7)}`, digest: sha(t), size: t.length })));
  assert.deepEqual(fs.readdirSync(path.join(out, "blobs")).sort(), m.blobs.map((b) => `${b.id}.ctab`).sort(), "seek indexes only, no blob file");
  for (const [k, b] of m.blobs.entries()) {
    const t = decodeChunkTable(fs.readFileSync(path.join(out, b.table.path)), b.id);
    assert.equal(t.version, 2);
    assert.equal(t.compression, "none");
    assert.equal(t.kernelSize, b.kernelSize);
    assert.equal(b.chunks, t.entries.length);
    assert.ok(t.entries.every((e) => e.plainSize <= m.chunkSize), "no span is larger than the manifest's chunk size");
    assert.equal(r.layers[k].spans, t.entries.length);
  }
  assert.deepEqual(r.layers.map((l) => [l.compression, l.storedBytes, l.tarBytes, l.digest, l.blobId]), tars.map((t) => ["none", t.length, t.length, sha(t), sha(t).slice(7)]));

  // Our readers take it: the bootstrap's devices are the blobs, every file reads back from the tars.
  const img = openImageMetadata(out);
  try {
    assert.deepEqual(img.reader.devices.map((d) => d.tag), m.blobs.map((b) => b.id));
  } finally {
    img.close();
  }
  const reader = new ErofsReader(bufferSource(fs.readFileSync(path.join(out, "bootstrap.erofs"))), tars.map(bufferSource));
  const tool = [...reader.walk()].find((e) => Buffer.concat(e.path.flatMap((c) => [c, Buffer.from("/")])).toString() === "usr/bin/tool/")!;
  const [chunk] = reader.chunks(tool.inode);
  assert.equal(chunk.addr!.deviceId, 1);
  assert.deepEqual(Buffer.from(reader.read(tool.inode, 0, tool.inode.size)), tars[0].subarray(chunk.addr!.startBlk * 512, chunk.addr!.startBlk * 512 + tool.inode.size));
});

test("layers with the same tar share one blob (device)", async () => {
  const out = path.join(tempDir("eod-index-img-"), "img");
  const a = tarArchive([{ path: "a", data: Buffer.from("aaa") }]);
  const b = tarArchive([{ path: "b", data: Buffer.from("bbb") }]);
  const r = await buildIndexImage([layer("l1", a), layer("l2", b), layer("l3", a)], out);
  assert.deepEqual(r.manifest.blobs.map((x) => x.id), [sha(a).slice(7), sha(b).slice(7)]);
  assert.deepEqual(r.layers.map((l) => l.blobId), [sha(a), sha(b), sha(a)].map((d) => d.slice(7)));
  const reader = new ErofsReader(bufferSource(fs.readFileSync(path.join(out, "bootstrap.erofs"))), [a, b].map(bufferSource));
  assert.equal(reader.devices.length, 2);
  const byName = new Map([...reader.walk()].map((e) => [Buffer.concat(e.path).toString(), e.inode]));
  assert.equal(reader.chunks(byName.get("a")!)[0].addr!.deviceId, 1, "layer 3's copy of a lives in blob 1");
  assert.equal(Buffer.from(reader.read(byName.get("b")!, 0, 3)).toString(), "bbb");
});

test("a layer whose digest, size or diff_id is not the descriptor's is refused (DIGEST_MISMATCH), and nothing is written", async () => {
  const dir = tempDir("eod-index-img-");
  const t = tarArchive([{ path: "a", data: Buffer.from("aaa") }]);
  const other = sha(Buffer.from("other"));
  for (const known of [{ digest: other }, { diffId: other }, { size: t.length + 1 }]) {
    const out = path.join(dir, "img");
    await assert.rejects(buildIndexImage([layer("layer 1", t, known)], out), (err: EodError) => {
      assert.equal(err.code, "DIGEST_MISMATCH", err.message);
      assert.match(err.message, /layer 1/);
      return true;
    });
    assert.ok(!fs.existsSync(out));
  }
});

test("a sparse entry is refused naming the file: its tar body is not the file's bytes", async () => {
  const out = path.join(tempDir("eod-index-img-"), "img");
  const sparse = header({ name: Buffer.from("holes.img"), mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, typeflag: "S", linkname: Buffer.alloc(0), devMajor: 0, devMinor: 0, gnu: true });
  const t = Buffer.concat([tarArchive([{ path: "ok", data: Buffer.from("ok") }]).subarray(0, 1024), sparse, Buffer.alloc(1024)]);
  await assert.rejects(buildIndexImage([layer("layer 1", t)], out), (err: EodError) => {
    assert.equal(err.code, "SOURCE_UNSUPPORTED");
    assert.match(err.message, /layer 1: entry "holes\.img": GNU sparse/);
    assert.match(err.message, /needs conversion/);
    return true;
  });
});

test("the bootstrap and the blob ids do not depend on how the layers are compressed; the remote forms do", async () => {
  const dir = tempDir("eod-index-img-");
  const tars = testLayers().map((s) => tarArchive(s));
  const plain = await buildIndexImage(tars.map((t, k) => layer(`layer ${k + 1}`, t)), path.join(dir, "plain"));
  const gz = tars.map((t) => zlib.gzipSync(t));
  const zipped = await buildIndexImage(gz.map((g, k) => layer(`layer ${k + 1}`, g)), path.join(dir, "gzip"));
  assert.deepEqual(fs.readFileSync(path.join(dir, "gzip", "bootstrap.erofs")), fs.readFileSync(path.join(dir, "plain", "bootstrap.erofs")));
  assert.deepEqual(zipped.manifest.blobs.map((b) => b.id), plain.manifest.blobs.map((b) => b.id));
  assert.deepEqual(zipped.manifest.blobs.map((b) => b.remote), gz.map((g, k) => ({ path: `blobs/${plain.manifest.blobs[k].id}`, digest: sha(g), size: g.length })));
  assert.deepEqual(zipped.layers.map((l) => l.compression), ["gzip", "gzip", "gzip"]);
});

test("a layer the indexer refuses is refused naming the layer: one zstd frame (needs conversion), a truncated gzip", async () => {
  const dir = tempDir("eod-index-img-");
  const t = tarArchive([{ path: "big", data: randomBytes(3 << 20) }]);
  const cases: Array<[Buffer, string, RegExp]> = [
    [zlib.zstdCompressSync(t), "SOURCE_UNSUPPORTED", /^layer 1: .*needs conversion/],
    [zlib.gzipSync(t).subarray(0, 5000), "SOURCE_INVALID", /^layer 1: /],
  ];
  for (const [stored, code, message] of cases) {
    const out = path.join(dir, "img");
    await assert.rejects(buildIndexImage([layer("layer 1", stored)], out, { spanSize: 1 << 20 }), (err: EodError) => {
      assert.equal(err.code, code, err.message);
      assert.match(err.message, message);
      return true;
    });
    assert.ok(!fs.existsSync(out));
  }
});

test("a layer with no bytes is an empty blob (its tar is empty: kernel size 0, no span)", async () => {
  const out = path.join(tempDir("eod-index-img-"), "img");
  const a = tarArchive([{ path: "a", data: Buffer.from("aaa") }]);
  const r = await buildIndexImage([layer("empty", Buffer.alloc(0)), layer("l2", a)], out);
  const empty = sha(Buffer.alloc(0));
  assert.deepEqual(r.manifest.blobs[0], { ...r.manifest.blobs[0], id: empty.slice(7), kernelSize: 0, chunks: 0, remote: { path: `blobs/${empty.slice(7)}`, digest: empty, size: 0 } });
  const reader = new ErofsReader(bufferSource(fs.readFileSync(path.join(out, "bootstrap.erofs"))), [bufferSource(Buffer.alloc(0)), bufferSource(a)]);
  const [, file] = [...reader.walk()];
  assert.equal(Buffer.from(reader.read(file.inode, 0, 3)).toString(), "aaa");
  assert.equal(reader.chunks(file.inode)[0].addr!.deviceId, 2);
});
