// One layer's bytes: opened, recognised by magic (tar, gzip, zstd), decompressed as a stream (node:zlib, on
// the thread pool), and checked while they pass: the sha256 of the stored
// bytes (OCI layer digest) and of the tar (diff_id), and the expansion ratio, so a decompression bomb stops
// early instead of running for hours.
import type { Hash } from "node:crypto";
import { Readable, pipeline } from "node:stream";
import zlib from "node:zlib";
import { EodError } from "../../errors.ts";
import { sha256Stream } from "../../util/sha256.ts";
import { piecesOf } from "./stream-pieces.ts";

/** A layer to read: the `build` side of layers; registry and archive readers produce these. */
export interface LayerInput {
  /** Names the layer in messages, e.g. `layer 2 (blobs/sha256/ab12…)`. */
  name: string;
  /**
   * Opens the stored bytes (tar, tar.gz or tar.zst) from the start: a file stream, an HTTP body, any async
   * iterable of buffers (a registry client may resolve it asynchronously). Read once, in order.
   */
  open(): Readable | AsyncIterable<Uint8Array> | Promise<Readable | AsyncIterable<Uint8Array>>;
  /** Expected "sha256:<hex>" of the stored bytes and their size (OCI descriptor), when known. */
  digest?: string;
  size?: number;
  /** Expected "sha256:<hex>" of the uncompressed tar (the image config's diff_id), when known. */
  diffId?: string;
}

export interface LayerStreamOptions {
  /** Largest accepted ratio of tar bytes to stored bytes (0 = no limit). */
  maxRatio?: number;
}

export interface LayerStreamStats {
  compression: "none" | "gzip" | "zstd";
  storedBytes: number;
  tarBytes: number;
}

/** node-tar's default limit; gzip cannot exceed ~1030:1, so this stops gzip bombs of zeros and every zstd bomb. */
export const DEFAULT_MAX_RATIO = 1000;
/** Below this many tar bytes the ratio is not checked (small, very compressible layers are fine). */
const RATIO_FLOOR = 64 << 20;
/**
 * Decompression (node:zlib) runs ahead of the tar reader by up to 8 MiB (the defaults, 16 KiB, keep the thread-pool
 * decompressor and the main thread taking turns instead of working at once), in 1 MiB pieces (a quarter of
 * the thread-pool round trips of 256 KiB: ~80 ms less main-thread time for a 270 MB layer), and takes up
 * to 4 MiB of stored bytes ahead of that, so a download does not wait for the decompressor or vice versa.
 */
const DECOMPRESS_OPTS = { chunkSize: 1 << 20, readableHighWaterMark: 8 << 20, writableHighWaterMark: 4 << 20 };
/** Bytes detect() looks at (the xz magic is the longest). */
const LONGEST_MAGIC = 6;
/** Stored pieces (an HTTP body's are ~64 KiB) read ahead into the decompressor's input. */
const STORED_AHEAD = 64;

/**
 * The layer's tar bytes as a stream. Digests are compared when the stream ends (DIGEST_MISMATCH), so a
 * consumer must read it to the end; the build does (the tar reader drains what follows the archive).
 */
export async function* layerTarStream(input: LayerInput, opts: LayerStreamOptions, stats: LayerStreamStats): AsyncGenerator<Buffer> {
  const maxRatio = opts.maxRatio ?? DEFAULT_MAX_RATIO;
  const storedHash = input.digest ? sha256Of(input.digest, input.name) : null;
  const stored = await openStored(input, stats, storedHash);
  const wantTarHash = input.diffId && (stats.compression !== "none" || input.diffId !== input.digest);
  const tarHash = wantTarHash ? sha256Of(input.diffId!, input.name) : null;

  let tar: AsyncIterable<Buffer> = stored.pieces;
  let z: zlib.Gunzip | zlib.ZstdDecompress | null = null;
  if (stats.compression !== "none") {
    z = stats.compression === "gzip" ? zlib.createGunzip(DECOMPRESS_OPTS) : zlib.createZstdDecompress(DECOMPRESS_OPTS);
    // Errors surface through the iteration below; up to 4 pieces wait here, more in the decompressor.
    tar = piecesOf(pipeline(Readable.from(stored.pieces, { highWaterMark: STORED_AHEAD }), z, () => {}), 4);
  }
  try {
    for await (const c of tar) {
      stats.tarBytes += c.length;
      tarHash?.update(c);
      checkExpansion(input.name, maxRatio, stats);
      yield c;
    }
  } catch (err) {
    if (err instanceof EodError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? "";
    if (code.startsWith("Z_") || code.startsWith("ERR_ZSTD") || code === "ERR__ZSTD") {
      throw corruptStream(input.name, stats, err);
    }
    throw unreadable(input.name, err);
  } finally {
    z?.destroy();
    await stored.close();
  }
  checkStored(input, stats.storedBytes, storedHash?.digest("hex"));
  check(tarHash?.digest("hex"), input.diffId, `${input.name}: uncompressed tar (diff_id)`);
}

/** A layer's stored bytes, opened and counted (and hashed into `storedHash`) as they pass. */
export interface StoredStream {
  /** Every stored byte, in order, once. */
  pieces: AsyncGenerator<Buffer>;
  /** Closes the source (also before its end). */
  close(): Promise<void>;
}

/** Opens the stored bytes and sets `stats.compression` from their first bytes (xz and bzip2 are refused by name). */
export async function openStored(input: LayerInput, stats: LayerStreamStats, storedHash: Hash | null): Promise<StoredStream> {
  let raw: Readable | AsyncIterable<Uint8Array>;
  try {
    raw = await input.open();
  } catch (err) {
    throw err instanceof EodError ? err : unreadable(input.name, err);
  }
  const stored = (async function* () {
    try {
      for await (const piece of raw) {
        const c = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
        storedHash?.update(c);
        stats.storedBytes += c.length;
        yield c;
      }
    } catch (err) {
      throw err instanceof EodError ? err : unreadable(input.name, err);
    }
  })();
  // A piece can be shorter than a magic (chunked transfer can deliver one byte): gather enough first.
  const headPieces: Buffer[] = [];
  let headBytes = 0;
  while (headBytes < LONGEST_MAGIC) {
    const next = await stored.next();
    if (next.done) break;
    headPieces.push(next.value);
    headBytes += next.value.length;
  }
  stats.compression = detect(Buffer.concat(headPieces, headBytes), input.name);
  return {
    pieces: (async function* () {
      yield* headPieces;
      yield* stored;
    })(),
    close: async () => {
      if (raw instanceof Readable) raw.destroy();
      else await stored.return(undefined); // ends the source iterator, if it is still open
    },
  };
}

/** After the last stored byte: its count and sha256 (hex) against the descriptor's, when it gave them. */
export function checkStored(input: LayerInput, storedBytes: number, hex: string | undefined): void {
  if (input.size !== undefined && storedBytes !== input.size) {
    throw new EodError("DIGEST_MISMATCH", `${input.name}: ${storedBytes} bytes, but its descriptor says ${input.size}`);
  }
  check(hex, input.digest, `${input.name}: content`);
}

/** Stops a decompression bomb early: more than `maxRatio` tar bytes per stored byte (past 64 MiB of tar). */
export function checkExpansion(name: string, maxRatio: number, stats: LayerStreamStats): void {
  if (maxRatio > 0 && stats.tarBytes > RATIO_FLOOR && stats.tarBytes > maxRatio * stats.storedBytes) {
    throw new EodError("SOURCE_INVALID", `${name}: expands more than ${maxRatio} times (${stats.tarBytes} tar bytes from ${stats.storedBytes} stored bytes so far): a decompression bomb? (--max-ratio 0 turns this check off)`);
  }
}

function corruptStream(name: string, stats: LayerStreamStats, err: unknown): EodError {
  return new EodError("SOURCE_INVALID", `${name}: corrupt or truncated ${stats.compression} stream after ${stats.storedBytes} bytes (${(err as Error).message})`, { cause: err });
}

function detect(head: Buffer, name: string): LayerStreamStats["compression"] {
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return "zstd";
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) {
    throw new EodError("SOURCE_UNSUPPORTED", `${name}: xz-compressed layers are not supported (tar, tar.gz and tar.zst are)`);
  }
  if (head.subarray(0, 3).toString("latin1") === "BZh") {
    throw new EodError("SOURCE_UNSUPPORTED", `${name}: bzip2-compressed layers are not supported (tar, tar.gz and tar.zst are)`);
  }
  return "none"; // the tar reader says so if it is not a tar either
}

export function sha256Of(digest: string, name: string): Hash {
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) {
    throw new EodError("SOURCE_UNSUPPORTED", `${name}: digest ${JSON.stringify(digest)} is not sha256:<64 hex> (the only algorithm supported)`);
  }
  return sha256Stream();
}

export function check(hex: string | undefined, expected: string | undefined, what: string): void {
  if (!hex || !expected) return;
  const got = `sha256:${hex}`;
  if (got !== expected) throw new EodError("DIGEST_MISMATCH", `${what} is ${got}, expected ${expected}`);
}

export function unreadable(name: string, err: unknown): EodError {
  const why = err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.message) : String(err);
  return new EodError("SOURCE_UNREADABLE", `Cannot read ${name}: ${why}`, { cause: err });
}
