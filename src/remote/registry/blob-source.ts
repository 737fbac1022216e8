// What a blob push reads from: bytes in memory or a file, read piece by piece (so a chunked upload holds
// one chunk, and a retried upload can read the content again from the start).
import fs from "node:fs";

export interface BlobSource {
  size: number;
  /** Exactly `length` bytes at `offset`. */
  read(offset: number, length: number): Promise<Uint8Array>;
}

export function bytesSource(bytes: Uint8Array): BlobSource {
  return { size: bytes.length, read: async (offset, length) => bytes.subarray(offset, offset + length) };
}

/** A file as a blob source; it must not change while it is pushed (the digest would not match). */
export async function fileSource(file: string): Promise<BlobSource> {
  const { size } = await fs.promises.stat(file);
  return {
    size,
    async read(offset, length) {
      const fh = await fs.promises.open(file, "r");
      try {
        const buf = Buffer.alloc(length);
        let done = 0;
        while (done < length) {
          const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
          if (bytesRead === 0) throw new Error(`${file} ended at ${offset + done}, expected ${offset + length} bytes`);
          done += bytesRead;
        }
        return buf;
      } finally {
        await fh.close();
      }
    },
  };
}
