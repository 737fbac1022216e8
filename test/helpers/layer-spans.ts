// Checks a layer's seek index the way a lazy mount uses it: every span decoded from EXACTLY its remote
// range, cut out of the whole layer, through verifiedChunk() and verifiedChunkAsync() (the cache fill's
// paths), equals its tar bytes; the table round-trips through its encoding. And the inputs such tests share.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { decodeChunkTable, encodeChunkTable, type ChunkTable } from "../../src/image/chunk-table.ts";
import { layerIndexer, type LayerIndex, type LayerKind } from "../../src/image/layer-indexer.ts";
import { verifiedChunk, verifiedChunkAsync } from "../../src/image/verified-chunk.ts";
import { sha256Digest } from "../../src/util/sha256.ts";

/** Indexes `layer` pushed in pieces of `step` bytes; checks the tar bytes handed back and the diff_id. */
export function indexLayer(kind: LayerKind, layer: Uint8Array, tar: Uint8Array, spanSize: number, step = 65536, pieceSize = spanSize): LayerIndex {
  const ix = layerIndexer(kind, { spanSize, pieceSize });
  const out: Uint8Array[] = [];
  for (let at = 0; at < layer.length; at += step) out.push(...ix.push(layer.subarray(at, at + step)));
  const r = ix.finish();
  assert.ok(Buffer.concat(out).equals(tar), "the indexer hands back the tar");
  assert.equal(r.diffId, sha256Digest(tar));
  assert.equal(r.tarSize, tar.length);
  assert.equal(r.remoteSize, layer.length);
  return r;
}

/** Every span of `table` decoded from its remote range of `layer` equals `tar`'s bytes there. */
export async function checkSpans(table: ChunkTable, layer: Uint8Array, tar: Uint8Array): Promise<void> {
  const t = decodeChunkTable(encodeChunkTable(table), "layer");
  assert.deepEqual(t, table);
  let end = 0;
  for (let i = 0; i < t.entries.length; i++) {
    const e = t.entries[i];
    const remote = layer.slice(e.remoteOffset, e.remoteOffset + e.remoteSize); // a copy: nothing past the range
    const want = tar.subarray(e.plainOffset, e.plainOffset + e.plainSize);
    assert.ok(Buffer.from(verifiedChunk(t, i, remote, `span ${i}`)).equals(want), `span ${i}`);
    assert.ok(Buffer.from(await verifiedChunkAsync(t, i, remote, `span ${i}`)).equals(want), `span ${i} async`);
    end = e.plainOffset + e.plainSize;
  }
  assert.equal(end, tar.length, "the spans cover the tar");
}

/** Deterministic noise (xorshift32): the same layers, so the same checkpoints, on every run. */
export function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** Whether a command-line tool (gzip, zstd) runs here. */
export function hasTool(name: string): boolean {
  try {
    execFileSync(name, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
