// A byte stream's pieces as they were pushed. A Readable's own async iterator calls read(), which joins
// everything buffered into one new Buffer: with a decompressor running megabytes ahead of the tar reader,
// that copied most of the tar once more (and the large joined buffers made the GC busy).
import type { Readable } from "node:stream";

/** Iterates `s` in flowing mode, pausing it while `maxQueued` pieces wait; its errors are thrown here. */
export async function* piecesOf(s: Readable, maxQueued: number): AsyncGenerator<Buffer> {
  const queue: Buffer[] = [];
  let ended = false;
  let failure: { err: unknown } | null = null;
  let wake: (() => void) | null = null;
  const poke = () => { const w = wake; wake = null; w?.(); };
  const onData = (c: Buffer) => { queue.push(c); if (queue.length >= maxQueued) s.pause(); poke(); };
  const onEnd = () => { ended = true; poke(); };
  const onError = (err: unknown) => { failure ??= { err }; poke(); };
  const onClose = () => { if (!ended) failure ??= { err: Object.assign(new Error("Premature close"), { code: "ERR_STREAM_PREMATURE_CLOSE" }) }; poke(); };
  s.on("data", onData).on("end", onEnd).on("error", onError).on("close", onClose);
  try {
    for (;;) {
      const c = queue.shift();
      if (c) {
        if (s.isPaused() && queue.length < maxQueued / 2) s.resume();
        yield c;
      } else if (failure) {
        throw (failure as { err: unknown }).err;
      } else if (ended) {
        return;
      } else {
        await new Promise<void>((r) => { wake = r; });
      }
    }
  } finally {
    s.off("data", onData).off("end", onEnd).off("error", onError).off("close", onClose);
  }
}
