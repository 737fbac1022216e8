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

// A batch of jobs: the digests first (the main thread waits for them to decide what to store), answered
// together; then the compressions, answered together.
port.on("message", (jobs: ChunkJob[] | "close") => {
  if (jobs === "close") process.exit(0); // ChunkWorkers.close(): ends this thread (only), never while it loads
  for (const op of ["digest", "zstd"] as const) {
    const results: ChunkResult[] = [];
    const moved: ArrayBuffer[] = [];
    for (const job of jobs) {
      if (job.op !== op) continue;
      try {
        const out = run(job);
        results.push({ id: job.id, out });
        if (job.op === "zstd") moved.push(out.buffer as ArrayBuffer);
      } catch (err) {
        results.push({ id: job.id, error: (err as Error).message });
      }
    }
    if (results.length) port.postMessage(results, moved);
  }
});

function run(job: ChunkJob): Uint8Array {
  if (job.op === "digest") return new Uint8Array(hash("sha256", job.buf, "buffer") as unknown as Buffer);
  zstd ??= new ZstdCompressor();
  const bound = zstdCompressBound(job.buf.byteLength);
  if (dst.byteLength < bound) dst = new Uint8Array(bound);
  const n = zstd.compress(job.buf, dst, job.level);
  return dst.slice(0, n); // its own memory of exactly the frame's size: moved to the main thread, not copied
}

port.postMessage("ready"); // modules loaded: the pool may let the process exit while this thread idles
