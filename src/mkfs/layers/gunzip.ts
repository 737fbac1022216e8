// A gzip layer's tar bytes: inflated by libz (src/sys/zlib.ts) on the thread pool into 1 MiB buffers that are
// reused once the tar reader is past them (piece-loans.ts), instead of node:zlib's fresh buffer per piece
// (for a 270 MB tar, ~30 full garbage collections on the main thread). Up to AHEAD pieces are inflated ahead
// of the reader and up to STORED_AHEAD stored bytes read ahead of the inflater, so the download, the inflater
// and the reader work at once. Behaves as node:zlib's Gunzip: concatenated members are read, zero padding
// after the last one is ignored, and a stream that ends inside a member is an error (code Z_BUF_ERROR).
import type { PooledSha256 } from "../../sys/sha256.ts";
import { GzipInflater } from "../../sys/zlib.ts";
import { lend } from "./piece-loans.ts";

const PIECE = 1 << 20;
const AHEAD = 8;
const STORED_AHEAD = 4 << 20;

/**
 * The inflated bytes of `stored`, which is read to its end (a digest check there still runs). With `hash`,
 * every piece is hashed into it (on the thread pool, while the next one inflates) before it is handed out.
 */
export async function* gunzipPieces(stored: AsyncIterable<Buffer>, hash?: PooledSha256): AsyncGenerator<Buffer> {
  const input = readAhead(stored, STORED_AHEAD);
  const ready: Buffer[] = [];
  const free: Buffer[] = [];
  let done = false;
  let failure: { err: unknown } | null = null;
  let stopped = false;
  let wakeReader: (() => void) | null = null;
  let wakeInflater: (() => void) | null = null;
  const poke = (which: "reader" | "inflater") => {
    const w = which === "reader" ? wakeReader : wakeInflater;
    if (which === "reader") wakeReader = null; else wakeInflater = null;
    w?.();
  };
  // The piece being hashed, handed out once that is done (and the next one is on its way).
  let hashing: { buf: Buffer; length: number; done: Promise<void> } | null = null;
  const emit = async (buf: Buffer, length: number) => {
    if (!hash) return handOut(buf, length);
    const prev = hashing;
    const piece = buf.subarray(0, length);
    hashing = { buf, length, done: prev ? prev.done.then(() => hash.update(piece)) : hash.update(piece) };
    if (prev) {
      await prev.done;
      await handOut(prev.buf, prev.length);
    }
  };
  const flush = async () => {
    const last = hashing;
    hashing = null;
    if (last) {
      await last.done;
      await handOut(last.buf, last.length);
    }
  };
  const handOut = async (buf: Buffer, length: number) => {
    ready.push(lend(length === buf.length ? buf : buf.subarray(0, length), () => { if (free.length < AHEAD) free.push(buf); }));
    poke("reader");
    while (ready.length >= AHEAD && !stopped) await new Promise<void>((r) => { wakeInflater = r; });
  };

  const inflating = (async () => {
    const z = new GzipInflater();
    try {
      let inBuf: Buffer | null = null;
      let inAt = 0;
      let ended = false; // the current member ended (its trailer checked)
      let out: Buffer = Buffer.allocUnsafeSlow(PIECE);
      let fill = 0;
      while (!stopped) {
        if (!inBuf || inAt === inBuf.length) {
          inBuf = await input.next();
          inAt = 0;
          if (!inBuf) break;
          continue;
        }
        if (ended) {
          while (inAt < inBuf.length && inBuf[inAt] === 0) inAt++; // zero padding after a member: ignored
          if (inAt === inBuf.length) continue;
          z.reset(); // anything else starts another member (or fails as one)
          ended = false;
        }
        const step = await z.inflate(inBuf.subarray(inAt), out.subarray(fill));
        if (step.used === 0 && step.made === 0 && !step.end) throw Object.assign(new Error("inflate made no progress"), { code: "Z_BUF_ERROR" });
        inAt += step.used;
        fill += step.made;
        ended = step.end;
        if (fill === out.length) {
          await emit(out, fill);
          out = free.pop() ?? Buffer.allocUnsafeSlow(PIECE);
          fill = 0;
        }
      }
      if (stopped) return;
      if (fill) await emit(out, fill);
      await flush();
      if (!ended) throw Object.assign(new Error("unexpected end of file"), { code: "Z_BUF_ERROR" });
    } finally {
      await (hashing as { done: Promise<void> } | null)?.done.catch(() => {}); // its buffer is not freed under it
      z.close();
    }
  })();
  inflating.then(() => { done = true; poke("reader"); }, (err) => { failure ??= { err }; poke("reader"); });

  try {
    for (;;) {
      const piece = ready.shift();
      if (piece) {
        poke("inflater");
        yield piece;
      } else if (failure) {
        throw (failure as { err: unknown }).err;
      } else if (done) {
        return;
      } else {
        await new Promise<void>((r) => { wakeReader = r; });
      }
    }
  } finally {
    stopped = true;
    poke("inflater");
    await inflating.catch(() => {}); // the inflater is never freed under a running inflate()
    await input.close();
  }
}

/** Reads `source` ahead into a queue of up to `maxBytes`; next() gives null at its end, or throws its error. */
function readAhead(source: AsyncIterable<Buffer>, maxBytes: number): { next(): Promise<Buffer | null>; close(): Promise<void> } {
  const it = source[Symbol.asyncIterator]();
  const queue: Buffer[] = [];
  let bytes = 0;
  let ended = false;
  let failure: { err: unknown } | null = null;
  let closed = false;
  let wakeTaker: (() => void) | null = null;
  let wakePump: (() => void) | null = null;
  const pokeTaker = () => { const w = wakeTaker; wakeTaker = null; w?.(); };
  const pokePump = () => { const w = wakePump; wakePump = null; w?.(); };
  const pump = (async () => {
    try {
      while (!closed) {
        if (bytes >= maxBytes) {
          await new Promise<void>((r) => { wakePump = r; });
          continue;
        }
        const r = await it.next();
        if (r.done) break;
        queue.push(r.value);
        bytes += r.value.length;
        pokeTaker();
      }
    } catch (err) {
      failure = { err };
    } finally {
      ended = true;
      pokeTaker();
    }
  })();
  return {
    async next() {
      for (;;) {
        const c = queue.shift();
        if (c) {
          bytes -= c.length;
          pokePump();
          return c;
        }
        if (failure) throw (failure as { err: unknown }).err;
        if (ended) return null;
        await new Promise<void>((r) => { wakeTaker = r; });
      }
    },
    async close() {
      closed = true;
      pokePump();
      await pump;
      if (!failure) await it.return?.(undefined); // closes the source if we stopped early (no-op at its end)
    },
  };
}
