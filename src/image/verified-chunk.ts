// The one decode-and-verify path of a chunk's remote bytes, shared by the cache fill, `eod check` and
// `eod unpack`: decoded with the blob's codec (codec.ts; a span of a layer's seek index, version 2, with its
// decoder there), then its sha256 compared with the chunk table's.
// Nothing returned from here has not matched.
import { EodError } from "../errors.ts";
import { sha256, sha256OffThread } from "../util/sha256.ts";
import { CHUNK_FLAG_RAW, type ChunkTable, type Compression } from "./chunk-table.ts";
import { decompressChunk, decompressChunkAsync, decompressSpan, decompressSpanAsync } from "./codec.ts";

/**
 * The plain bytes of chunk `i` of `table` from its remote bytes `remote`, decoded and verified on this thread.
 * `what` names the chunk in messages, `from` where its bytes came from (a mismatch names it).
 * @throws EodError DIGEST_MISMATCH when the bytes do not decode to the chunk, or not to its digest
 */
export function verifiedChunk(table: ChunkTable, i: number, remote: Uint8Array, what: string, from?: string): Uint8Array {
  const e = table.entries[i];
  const plain = table.version === 2 ? decompressSpan(table, i, remote, what) : decompressChunk(codecOf(table, i), remote, e.plainSize, what);
  if (!sha256(plain).equals(e.digest)) throw mismatch(what, from);
  return plain;
}

/** verifiedChunk() with the decoding and the digest on the thread pool (for large chunks: the event loop stays free). */
export async function verifiedChunkAsync(table: ChunkTable, i: number, remote: Uint8Array, what: string, from?: string): Promise<Uint8Array> {
  const e = table.entries[i];
  const plain = table.version === 2 ? await decompressSpanAsync(table, i, remote, what) : await decompressChunkAsync(codecOf(table, i), remote, e.plainSize, what);
  if (!Buffer.from(await sha256OffThread(plain)).equals(e.digest)) throw mismatch(what, from);
  return plain;
}

/** A chunk stored as is (compression did not pay) decodes as `none`: its bytes are the plain bytes. */
function codecOf(table: ChunkTable, i: number): Compression {
  if (table.compression === "gzip") throw new EodError("IMAGE_INVALID", "gzip is only a version 2 table's compression");
  return table.entries[i].flags & CHUNK_FLAG_RAW ? "none" : table.compression;
}

function mismatch(what: string, from: string | undefined): EodError {
  return new EodError("DIGEST_MISMATCH", `Digest mismatch in ${what}${from ? ` from ${from}` : ""}`);
}
