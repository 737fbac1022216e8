// The seek index of a zstd layer (src/image/zstd-frames.ts, zstd-span.ts): spans of whole frames, from
// node:zlib and zstd(1) output (checksums, content sizes or none, skippable frames); one frame is refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import zlib from "node:zlib";
import { layerIndexer } from "../../src/image/layer-indexer.ts";
import { decodeZstdSpan } from "../../src/image/zstd-span.ts";
import { scanFrame } from "../../src/image/zstd-frames.ts";
import { checkSpans, hasTool, indexLayer, noise } from "../helpers/layer-spans.ts";
import { unavailable } from "../helpers/skip.ts";

const K = 1024;

const TAR = Buffer.concat([Buffer.from(noise(300 * K, 1).toString("base64")), noise(100 * K, 2), Buffer.alloc(500 * K, 7), Buffer.from(noise(200 * K, 3).toString("hex"))]);
/** Frame boundaries in the tar: tiny frames, one of one byte, big ones. */
const CUTS = [0, 5000, 9000, 150_000, 150_001, 400_000, 777_777, 800_000, 1_300_000, TAR.length];

function skippable(n: number): Buffer {
  const b = Buffer.alloc(8 + n, 0x55);
  b.writeUInt32LE(0x184d2a5e, 0);
  b.writeUInt32LE(n, 4);
  return b;
}

function framesOf(compress: (piece: Buffer) => Buffer): Buffer {
  return Buffer.concat(CUTS.slice(1).flatMap((end, k) => [compress(TAR.subarray(CUTS[k], end)), ...(k === 3 ? [skippable(20)] : [])]));
}

test("zstd spans of node:zlib frames (content sizes, a skippable frame) decode from exactly their remote ranges", async () => {
  const layer = Buffer.concat([skippable(4), framesOf((p) => zlib.zstdCompressSync(p))]);
  assert.equal(scanFrame(layer.subarray(12), null, 12)?.contentSize, 5000, "node:zlib's frames say their content size");
  for (const span of [4 * K, 64 * K, 256 * K, 4096 * K]) {
    const r = indexLayer("zstd", layer, TAR, span, 1000);
    assert.equal(r.table.compression, "zstd");
    for (const e of r.table.entries) {
      assert.equal(e.bits, 0);
      assert.ok((e.skip ?? 0) < 4096);
      assert.equal(scanFrame(layer.subarray(e.remoteOffset), null, e.remoteOffset)?.skippable, false, "a span starts at a frame");
    }
    assert.ok(r.table.windows!.every((w) => w.length === 0));
    await checkSpans(r.table, layer, TAR);
  }
});

test("zstd spans of zstd(1) frames from a pipe: with and without checksums, no content sizes", { skip: unavailable(!hasTool("zstd") && "needs zstd(1)") }, async () => {
  const cli = (args: string[]) => (p: Buffer) => execFileSync("zstd", ["-q", "-c", ...args], { input: p, maxBuffer: 64 << 20 });
  for (const args of [["-3"], ["-9", "--no-check"]]) {
    const layer = framesOf(cli(args));
    assert.equal(scanFrame(layer, null, 0)?.contentSize, -1);
    await checkSpans(indexLayer("zstd", layer, TAR, 64 * K).table, layer, TAR);
  }
});

test("a zstd layer of one frame larger than a span needs conversion; one within a span is one span", () => {
  const one = layerIndexer("zstd", { spanSize: 64 * K });
  one.push(zlib.zstdCompressSync(TAR));
  assert.throws(() => one.finish(), { code: "SOURCE_UNSUPPORTED", message: /needs conversion \(one zstd frame: no place to start decoding but the beginning\)/ });
  const small = TAR.subarray(0, 60 * K);
  const r = indexLayer("zstd", zlib.zstdCompressSync(small), small, 64 * K);
  assert.equal(r.table.entries.length, 1);
});

test("a truncated or corrupt zstd layer is refused at indexing; a frame needing a dictionary is unsupported", () => {
  const layer = framesOf((p) => zlib.zstdCompressSync(p));
  const run = (bytes: Uint8Array) => {
    const ix = layerIndexer("zstd", { spanSize: 64 * K });
    ix.push(bytes);
    return ix.finish();
  };
  assert.throws(() => run(layer.subarray(0, layer.length - 5)), { code: "SOURCE_INVALID", message: /ends inside a frame/ });
  assert.throws(() => run(Buffer.concat([layer, Buffer.from("junk after the frames")])), { code: "SOURCE_INVALID", message: /not a zstd frame/ });
  const withDict = Buffer.from(zlib.zstdCompressSync(Buffer.from("x")));
  const at = 5 + (withDict[4] & 0x20 ? 0 : 1); // after the Window_Descriptor, absent in a single-segment frame
  withDict[4] |= 1; // Dictionary_ID_flag: one byte of dictionary id follows
  assert.throws(() => run(Buffer.concat([withDict.subarray(0, at), Buffer.from([9]), withDict.subarray(at)])), { code: "SOURCE_UNSUPPORTED", message: /dictionary 9/ });
});

test("a zstd span from lying remote bytes is a DIGEST_MISMATCH, and never decodes past what the table allows", () => {
  const layer = framesOf((p) => zlib.zstdCompressSync(p));
  const { table } = indexLayer("zstd", layer, TAR, 64 * K);
  const e = table.entries[1];
  const remote = layer.subarray(e.remoteOffset, e.remoteOffset + e.remoteSize);
  const bad = Buffer.from(remote);
  bad[bad.length >> 1] ^= 0x20;
  assert.throws(() => decodeZstdSpan(table, 1, remote.subarray(0, remote.length - 1), "span 1"), { code: "DIGEST_MISMATCH" });
  // 64 MiB of zeros in a frame of a few hundred bytes, in place of the span's frames.
  const bomb = zlib.zstdCompressSync(Buffer.alloc(64 * 1024 * K));
  assert.throws(() => decodeZstdSpan(table, 1, bomb, "span 1"), { code: "DIGEST_MISMATCH" });
  try {
    const plain = decodeZstdSpan(table, 1, bad, "span 1");
    assert.notDeepEqual(Buffer.from(plain), TAR.subarray(e.plainOffset, e.plainOffset + e.plainSize));
  } catch (err) {
    assert.equal((err as { code?: string }).code, "DIGEST_MISMATCH");
  }
});
