// A chunk worker thread (chunk-workers.ts starts them): SHA-256 digests and compression of chunks that
// live in shared memory, synchronous here (node:crypto, node:zlib through codec.ts), so the main thread never
// copies a chunk and keeps only the tar reader, dedup decisions and writes.
import { parentPort } from "node:worker_threads";
import type { Compression } from "../image/chunk-table.ts";
import { compressChunkSync } from "../image/codec.ts";
import { sha256 } from "../util/sha256.ts";

export type ChunkJob = { id: number; op: "digest"; buf: Uint8Array } | { id: number; op: "compress"; buf: Uint8Array; kind: Compression; level?: number };
export type ChunkResult = { id: number; out: Uint8Array } | { id: number; error: string };

const port = parentPort!;
let scratch = new Uint8Array(0);

// A batch of jobs: the digests first (the main thread waits for them to decide what to store), answered
// together; then the compressions, answered together.
port.on("message", (jobs: ChunkJob[] | "close") => {
  if (jobs === "close") process.exit(0); // ChunkWorkers.close(): ends this thread (only), never while it loads
  for (const op of ["digest", "compress"] as const) {
    const results: ChunkResult[] = [];
    const moved: ArrayBuffer[] = [];
    for (const job of jobs) {
      if (job.op !== op) continue;
      try {
        const out = run(job);
        results.push({ id: job.id, out });
        if (job.op === "compress") moved.push(out.buffer as ArrayBuffer);
      } catch (err) {
        results.push({ id: job.id, error: (err as Error).message });
      }
    }
    if (results.length) port.postMessage(results, moved);
  }
});

function run(job: ChunkJob): Uint8Array {
  if (job.op === "digest") return new Uint8Array(sha256(job.buf));
  // Its own memory of exactly the block's size, moved to the main thread, not copied (a codec's output may be
  // a view of a larger buffer, or the shared input itself for `none`).
  if (scratch.length < job.buf.length * 2) scratch = new Uint8Array(job.buf.length * 2); // room for any LZ4 block
  return new Uint8Array(compressChunkSync(job.kind, job.buf, job.level, scratch));
}

port.postMessage("ready"); // modules loaded: the pool may let the process exit while this thread idles
