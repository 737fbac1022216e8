// A chunk worker thread (chunk-workers.ts starts them): SHA-256 digests and zstd compression of chunks that
// live in shared memory. Synchronous here, with one reused zstd context per thread, so the main thread never
// copies a chunk, and no chunk pays for a compression stream (node:zlib's async zstd makes one per chunk and
// returns its output in 16 KiB steps: about twice the CPU of the compression itself).
import { hash } from "node:crypto";
import { parentPort } from "node:worker_threads";
import { ZstdCompressor, zstdCompressBound } from "../sys/zstd.ts";

export type ChunkJob = { id: number; op: "digest"; buf: Uint8Array } | { id: number; op: "zstd"; buf: Uint8Array; level: number };
export type ChunkResult = { id: number; out: Uint8Array } | { id: number; error: string };

const port = parentPort!;
let zstd: ZstdCompressor | null = null;
let dst = new Uint8Array(0);

port.on("message", (job: ChunkJob) => {
  try {
    if (job.op === "digest") {
      port.postMessage({ id: job.id, out: new Uint8Array(hash("sha256", job.buf, "buffer") as unknown as Buffer) } satisfies ChunkResult);
      return;
    }
    zstd ??= new ZstdCompressor();
    const bound = zstdCompressBound(job.buf.byteLength);
    if (dst.byteLength < bound) dst = new Uint8Array(bound);
    const n = zstd.compress(job.buf, dst, job.level);
    const out = dst.slice(0, n); // its own memory of exactly the frame's size: moved to the main thread, not copied
    port.postMessage({ id: job.id, out } satisfies ChunkResult, [out.buffer]);
  } catch (err) {
    port.postMessage({ id: job.id, error: (err as Error).message } satisfies ChunkResult);
  }
});
