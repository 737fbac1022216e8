// A blob's kernel form read through its remote form: each read decompresses and verifies the chunks it
// touches. Lets `eod inspect`/`eod check` read file data of an image directory without unpacking it.
import fs from "node:fs";
import { EodError } from "../errors.ts";
import type { ByteSource } from "../erofs/reader.ts";
import { findChunk, type ChunkTable } from "./chunk-table.ts";
import { plainOf, unitsOf, verifiedEach, type VerifiedChunk } from "./verified-chunk.ts";

/** Decodes and verifies chunk `i` of `table` from the remote form open as `fd`. */
export function readChunk(fd: number, table: ChunkTable, i: number, id: string): Uint8Array {
  return plainOf(readChunks(fd, table, i, i, id)[0]);
}

/**
 * Chunks first..last of `table` (one decode group: chunk-table.ts decodeGroups) from the remote form open as
 * `fd`, decoded in one pass, each verified on its own (verified-chunk.ts verifiedEach).
 * @throws EodError DIGEST_MISMATCH when the remote form is truncated there, or a lone chunk does not decode
 */
export function readChunks(fd: number, table: ChunkTable, first: number, last: number, id: string): VerifiedChunk[] {
  const e = table.entries[last];
  const remote = Buffer.allocUnsafe(e.remoteSize);
  const n = fs.readSync(fd, remote, 0, e.remoteSize, e.remoteOffset);
  const what = unitsOf("chunk", id);
  if (n !== e.remoteSize) throw new EodError("DIGEST_MISMATCH", `Cannot read ${what(first, last)}: remote form is truncated`);
  return verifiedEach(table, first, last, remote, what);
}

export function remoteBlobSource(remotePath: string, table: ChunkTable, id: string): ByteSource & { close(): void } {
  const fd = openBlobFile(remotePath, id);
  let cached: { index: number; bytes: Uint8Array } | null = null;
  const chunk = (i: number) => {
    if (cached?.index !== i) cached = { index: i, bytes: readChunk(fd, table, i, id) };
    return cached.bytes;
  };
  return {
    size: table.kernelSize,
    read(pos, length) {
      const out = new Uint8Array(length);
      let at = pos;
      while (at < pos + length) {
        const i = findChunk(table.entries, at);
        if (i < 0) { // gap between chunks (block padding): zeros up to the next chunk
          const next = table.entries.find((e) => e.plainOffset > at)?.plainOffset ?? pos + length;
          at = Math.min(next, pos + length);
          continue;
        }
        const e = table.entries[i];
        const bytes = chunk(i);
        const n = Math.min(e.plainOffset + e.plainSize, pos + length) - at;
        out.set(bytes.subarray(at - e.plainOffset, at - e.plainOffset + n), at - pos);
        at += n;
      }
      return out;
    },
    close: () => fs.closeSync(fd),
  };
}

/** Opens a blob's remote form for reading; a missing or unreadable file is an invalid image, named. */
export function openBlobFile(remotePath: string, id: string): number {
  let fd: number;
  try {
    fd = fs.openSync(remotePath, "r");
  } catch (err) {
    throw new EodError("IMAGE_INVALID", `Cannot open blob ${id} at ${remotePath}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
  if (!fs.fstatSync(fd).isFile()) {
    fs.closeSync(fd);
    throw new EodError("IMAGE_INVALID", `Blob ${id} at ${remotePath} is not a regular file`);
  }
  return fd;
}
