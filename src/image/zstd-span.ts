// Decoding one span of a zstd layer's seek index (zstd-frames.ts) from its remote bytes: whole frames,
// each decoded on its own (node:zlib stops at a frame's end), skippable ones passed over, until the span's
// skip and plain bytes are there. The output is bounded by what the table allows: the span's frames end
// before the next span does, so a lying remote cannot make a decompression bomb of it.
import zlib from "node:zlib";
import { EodError } from "../errors.ts";
import type { ChunkTable } from "./chunk-table.ts";
import { frameBound, scanFrame } from "./zstd-frames.ts";

/** The plain bytes of span `i` from its remote bytes, on this thread; anything else is a DIGEST_MISMATCH. */
export function decodeZstdSpan(table: ChunkTable, i: number, remote: Uint8Array, what: string): Uint8Array {
  const frames = framesOf(table, i, remote, what);
  const outs: Uint8Array[] = [];
  for (const f of frames.list) {
    if (frames.got(outs) >= frames.need) break;
    try {
      outs.push(zlib.zstdDecompressSync(f.bytes, f.options(frames.got(outs))));
    } catch (err) {
      throw corrupt(err, what);
    }
  }
  return frames.span(outs);
}

/** decodeZstdSpan() with the frames decoded on the thread pool. */
export async function decodeZstdSpanAsync(table: ChunkTable, i: number, remote: Uint8Array, what: string): Promise<Uint8Array> {
  const frames = framesOf(table, i, remote, what);
  const outs: Uint8Array[] = [];
  for (const f of frames.list) {
    if (frames.got(outs) >= frames.need) break;
    try {
      outs.push(await new Promise<Buffer>((resolve, reject) => zlib.zstdDecompress(f.bytes, f.options(frames.got(outs)), (err, out) => (err ? reject(err) : resolve(out)))));
    } catch (err) {
      throw corrupt(err, what);
    }
  }
  return frames.span(outs);
}

function framesOf(table: ChunkTable, i: number, remote: Uint8Array, what: string) {
  const e = table.entries[i];
  const skip = e.skip ?? 0;
  const need = skip + e.plainSize;
  // The frame holding the span's last byte ends before the next span's end (zstd-frames.ts).
  const most = need + (table.entries[i + 1]?.plainSize ?? 0);
  const list: { bytes: Uint8Array; options: (got: number) => zlib.ZstdOptions }[] = [];
  for (let at = 0; at < remote.length;) {
    let s;
    try {
      s = scanFrame(remote.subarray(at), null, e.remoteOffset + at);
    } catch (err) {
      throw corrupt(err, what);
    }
    if (!s || s.end < 0) throw new EodError("DIGEST_MISMATCH", `Cannot decode ${what}: its remote bytes end inside a zstd frame at byte ${at}`);
    const bound = frameBound(s);
    if (!s.skippable) list.push({ bytes: remote.subarray(at, at + s.end), options: (got) => ({ maxOutputLength: Math.max(1, Math.min(bound, most - got)), chunkSize: Math.max(64, Math.min(bound, most - got) + 64) }) });
    at += s.end;
  }
  return {
    list, need,
    got: (outs: Uint8Array[]) => outs.reduce((n, o) => n + o.length, 0),
    span: (outs: Uint8Array[]): Uint8Array => {
      const plain = Buffer.concat(outs);
      if (plain.length < need) throw new EodError("DIGEST_MISMATCH", `Cannot decode ${what}: got ${Math.max(0, plain.length - skip)} bytes, expected ${e.plainSize}`);
      return plain.subarray(skip, need);
    },
  };
}

function corrupt(err: unknown, what: string): EodError {
  return new EodError("DIGEST_MISMATCH", `Cannot decode ${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
