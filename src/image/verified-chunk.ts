// The one decode-and-verify path of a chunk's remote bytes, shared by the cache fill, `eod check` and
// `eod unpack`: decoded with the blob's codec (codec.ts; a span of a layer's seek index, version 2, with its
// decoder there), then its sha256 compared with the chunk table's. The pieces of one checkpoint of a gzip
// layer's seek index may be decoded in one pass (verifiedChunks), each still verified on its own.
// Nothing returned from here has not matched.
import { EodError } from "../errors.ts";
import { sha256, sha256OffThread } from "../util/sha256.ts";
import { CHUNK_FLAG_RAW, type ChunkTable, type Compression } from "./chunk-table.ts";
import { decompressChunk, decompressChunkAsync, decompressSpans, decompressSpansAsync } from "./codec.ts";

/** One chunk's outcome of verifiedChunks(): its plain bytes, which matched its digest, or why it has none. */
export type VerifiedChunk = { plain: Uint8Array; error?: undefined } | { plain?: undefined; error: EodError };

/**
 * The plain bytes of chunk `i` of `table` from its remote bytes `remote`, decoded and verified on this thread.
 * `what` names the chunk in messages, `from` where its bytes came from (a mismatch names it).
 * @throws EodError DIGEST_MISMATCH when the bytes do not decode to the chunk, or not to its digest
 */
export function verifiedChunk(table: ChunkTable, i: number, remote: Uint8Array, what: string, from?: string): Uint8Array {
  return plainOf(verifiedChunks(table, i, i, remote, () => what, from)[0]);
}

/** verifiedChunk() with the decoding and the digest on the thread pool (for large chunks: the event loop stays free). */
export async function verifiedChunkAsync(table: ChunkTable, i: number, remote: Uint8Array, what: string, from?: string): Promise<Uint8Array> {
  return plainOf((await verifiedChunksAsync(table, i, i, remote, () => what, from))[0]);
}

/**
 * Chunks first..last from the remote bytes of `last`, decoded in one pass on this thread: pieces of one
 * checkpoint of a gzip layer's seek index (chunk-table.ts sameCheckpoint; the last one's bytes hold the
 * others'), else one chunk (first = last). Each is verified against its own digest: one that does not match
 * fails alone (the bytes after a corrupt one may still decode right; a digest says whether they did).
 * `what(a, b)` names chunks a..b in messages.
 * @throws EodError DIGEST_MISMATCH when the bytes do not decode at all: none of the chunks is had
 */
export function verifiedChunks(table: ChunkTable, first: number, last: number, remote: Uint8Array, what: Naming, from?: string): VerifiedChunk[] {
  const plains = table.version === 2 ? decompressSpans(table, first, last, remote, what(first, last)) : [decompressChunk(codecOf(table, first, last), remote, table.entries[first].plainSize, what(first, first))];
  return plains.map((plain, k) => (sha256(plain).equals(table.entries[first + k].digest) ? { plain } : { error: mismatch(what(first + k, first + k), from) }));
}

/** verifiedChunks() with the decoding and the digests on the thread pool. */
export async function verifiedChunksAsync(table: ChunkTable, first: number, last: number, remote: Uint8Array, what: Naming, from?: string): Promise<VerifiedChunk[]> {
  const plains = table.version === 2 ? await decompressSpansAsync(table, first, last, remote, what(first, last)) : [await decompressChunkAsync(codecOf(table, first, last), remote, table.entries[first].plainSize, what(first, first))];
  const digests = await Promise.all(plains.map((plain) => sha256OffThread(plain)));
  return plains.map((plain, k) => (Buffer.from(digests[k]).equals(table.entries[first + k].digest) ? { plain } : { error: mismatch(what(first + k, first + k), from) }));
}

/**
 * verifiedChunks(), but when the one pass fails, the chunks are decoded one by one (each from the checkpoint,
 * its bytes a prefix of the group's), so each has its own outcome: for `eod check`, which names every bad one.
 */
export function verifiedEach(table: ChunkTable, first: number, last: number, remote: Uint8Array, what: Naming, from?: string): VerifiedChunk[] {
  try {
    return verifiedChunks(table, first, last, remote, what, from);
  } catch (err) {
    if (first === last || !(err instanceof EodError)) throw err;
  }
  const out: VerifiedChunk[] = [];
  for (let i = first; i <= last; i++) {
    try {
      out.push(verifiedChunks(table, i, i, remote.subarray(0, table.entries[i].remoteSize), what, from)[0]);
    } catch (err) {
      out.push(outcomeOf(err));
    }
  }
  return out;
}

/** verifiedEach() with the decoding and the digests on the thread pool. */
export async function verifiedEachAsync(table: ChunkTable, first: number, last: number, remote: Uint8Array, what: Naming, from?: string): Promise<VerifiedChunk[]> {
  try {
    return await verifiedChunksAsync(table, first, last, remote, what, from);
  } catch (err) {
    if (first === last || !(err instanceof EodError)) throw err;
  }
  const out: VerifiedChunk[] = [];
  for (let i = first; i <= last; i++) {
    try {
      out.push((await verifiedChunksAsync(table, i, i, remote.subarray(0, table.entries[i].remoteSize), what, from))[0]);
    } catch (err) {
      out.push(outcomeOf(err));
    }
  }
  return out;
}

/** A chunk's failed decode as its outcome; anything but an EodError is a bug, thrown on. */
function outcomeOf(err: unknown): VerifiedChunk {
  if (err instanceof EodError) return { error: err };
  throw err;
}

/** Names chunks a..b (a = b: one chunk) in messages. */
export type Naming = (a: number, b: number) => string;

/** The units of a blob in messages: "chunk 3", "chunks 3..5" (or spans); with the blob, "… of blob <id>". */
export function unitsOf(unit: string, blobId?: string): Naming {
  return (a, b) => `${a === b ? `${unit} ${a}` : `${unit}s ${a}..${b}`}${blobId === undefined ? "" : ` of blob ${blobId}`}`;
}

/** A verified chunk's plain bytes, or its error thrown. */
export function plainOf(v: VerifiedChunk): Uint8Array {
  if (v.error) throw v.error;
  return v.plain;
}

/** A chunk stored as is (compression did not pay) decodes as `none`: its bytes are the plain bytes. */
function codecOf(table: ChunkTable, first: number, last: number): Compression {
  if (table.compression === "gzip") throw new EodError("IMAGE_INVALID", "gzip is only a version 2 table's compression");
  if (first !== last) throw new RangeError(`internal: chunks ${first}..${last} of a version 1 table decoded together`);
  return table.entries[first].flags & CHUNK_FLAG_RAW ? "none" : table.compression;
}

function mismatch(what: string, from: string | undefined): EodError {
  return new EodError("DIGEST_MISMATCH", `Digest mismatch in ${what}${from ? ` from ${from}` : ""}`);
}
