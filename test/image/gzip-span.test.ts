// Serving one span of a gzip layer (src/image/gzip-span.ts) with node:zlib: a checkpoint in the middle of a
// byte followed by stored blocks (which align to the layer's bytes), the end of a member inside a span,
// and remote bytes that lie (a decompression bomb, a wrong length, a bad window).
import { test } from "node:test";
import assert from "node:assert/strict";
import zlib from "node:zlib";
import type { ChunkTable } from "../../src/image/chunk-table.ts";
import { decodeGzipSpan, decodeGzipSpanAsync } from "../../src/image/gzip-span.ts";
import { Inflater } from "../../src/image/inflate.ts";
import { checkSpans, indexLayer, noise } from "../helpers/layer-spans.ts";

const K = 1024;

/** Text then noise, repeated: zlib codes the text in Huffman blocks and stores the noise. */
const TAR = Buffer.concat(Array.from({ length: 6 }, (_, k) => [Buffer.from(noise(40 * K, k + 1).toString("base64")), noise(70 * K, k + 100)]).flat());

/** The type (BTYPE) of every block of a gzip layer, with where it starts. */
function blocks(layer: Uint8Array): { bit: number; type: number }[] {
  const starts: number[] = [];
  const inf = new Inflater({ format: "gzip", onBlock: (b) => starts.push(b.bit) });
  inf.push(layer);
  inf.finish();
  const bitAt = (bit: number) => (layer[bit >> 3] >> (bit & 7)) & 1;
  return starts.map((bit) => ({ bit, type: bitAt(bit + 1) | (bitAt(bit + 2) << 1) }));
}

test("a span whose checkpoint is inside a byte and whose bytes hold stored blocks decodes (they align to the layer's bytes)", async () => {
  const layer = zlib.gzipSync(TAR, { level: 6 });
  const types = blocks(layer);
  for (const span of [8 * K, 20 * K, 36 * K]) {
    const { table } = indexLayer("gzip", layer, TAR, span);
    const hard = table.entries.filter((e, i) => e.bits && types.some((b) => b.type === 0 && b.bit > e.remoteOffset * 8 + (e.bits ?? 0) && b.bit < (table.entries[i].remoteOffset + table.entries[i].remoteSize) * 8));
    assert.ok(hard.length > 0, `span ${span}: some unaligned span holds a stored block`);
    await checkSpans(table, layer, TAR);
  }
});

test("a span over the end of a member: from a checkpoint inside a byte, through the trailer and the next header", async () => {
  const parts = [TAR.subarray(0, 150 * K), TAR.subarray(150 * K, 151 * K), TAR.subarray(151 * K)];
  const layer = Buffer.concat(parts.map((p) => zlib.gzipSync(p, { level: 9 })));
  const members = [0, ...parts.map((_, k) => parts.slice(0, k + 1).reduce((n, p) => n + zlib.gzipSync(p, { level: 9 }).length, 0))];
  let crossing = 0;
  for (const span of [8 * K, 12 * K, 28 * K]) {
    const { table } = indexLayer("gzip", layer, TAR, span);
    crossing += table.entries.filter((e) => e.bits && members.some((m) => m > e.remoteOffset && m < e.remoteOffset + e.remoteSize)).length;
    await checkSpans(table, layer, TAR);
  }
  assert.ok(crossing > 0, "some unaligned span crosses a member's end");
});

function oneSpan(): { table: ChunkTable; layer: Buffer } {
  const layer = zlib.gzipSync(TAR, { level: 6 });
  return { table: indexLayer("gzip", layer, TAR, 64 * K).table, layer };
}

test("remote bytes that inflate to far more than the span (a bomb) stop at the span's size: DIGEST_MISMATCH", async () => {
  const { table } = oneSpan();
  const i = 1;
  const e = table.entries[i];
  // A raw deflate stream of zeros, 1000:1, cut to the span's remote size: gigabytes if decoded to its end.
  const bomb = zlib.deflateRawSync(Buffer.alloc(64 * 1024 * K), { level: 9 }).subarray(0, e.remoteSize);
  const zeroWindow: ChunkTable = { ...table, windows: table.windows!.map(() => new Uint8Array(0)), entries: table.entries.map((x) => ({ ...x, bits: 0 })) };
  const before = process.memoryUsage().rss;
  assert.throws(() => decodeGzipSpan(zeroWindow, i, bomb, "span"), { code: "DIGEST_MISMATCH" });
  await assert.rejects(decodeGzipSpanAsync(zeroWindow, i, bomb, "span"), { code: "DIGEST_MISMATCH" });
  assert.ok(process.memoryUsage().rss - before < 256 * 1024 * K, "no gigabytes of output");
});

test("remote bytes of the wrong length, a truncated stream and a corrupt window are refused", async () => {
  const { table, layer } = oneSpan();
  const e = table.entries[2];
  const remote = layer.subarray(e.remoteOffset, e.remoteOffset + e.remoteSize);
  assert.throws(() => decodeGzipSpan(table, 2, remote.subarray(1), "span 2"), { code: "DIGEST_MISMATCH", message: /remote bytes/ });
  await assert.rejects(decodeGzipSpanAsync(table, 2, Buffer.concat([remote, Buffer.alloc(1)]), "span 2"), { code: "DIGEST_MISMATCH" });
  const k = table.windows!.findIndex((w) => w.length > 0);
  const badWindow: ChunkTable = { ...table, windows: table.windows!.map((w, j) => (j === k ? Uint8Array.from([0xff, 0xff, 0xff]) : w)) };
  const ek = table.entries[k];
  assert.throws(() => decodeGzipSpan(badWindow, k, layer.subarray(ek.remoteOffset, ek.remoteOffset + ek.remoteSize), "span"), { code: "IMAGE_INVALID", message: /window/ });
});
