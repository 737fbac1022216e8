// `eod mount --background-fetch`: after the prefetch list, fill every blob of the mount completely, in blob
// order, at a bandwidth cap, so the image ends up local while the container runs. It goes through the core's
// prefetch lane (demand misses never queue behind it) one window at a time, and stops when the mount goes.
import type { CacheCore } from "../cache/core.ts";
import { createThrottle } from "../remote/throttle.ts";

/** Chunks asked for per step: small enough that the cap is smooth and a stop is quick. */
const WINDOW_CHUNKS = 32;

/**
 * Fills the blobs `ids` (already open in `core`) until complete or until `signal` aborts; `bytesPerS` caps
 * the remote bytes per second (0: no cap). Resolves with the remote bytes it asked for.
 */
export async function fillInBackground(core: CacheCore, ids: readonly string[], bytesPerS: number, signal: AbortSignal): Promise<number> {
  const throttle = createThrottle(bytesPerS);
  let asked = 0;
  for (const id of ids) {
    for (let next = 0; ; next += WINDOW_CHUNKS) {
      const blob = core.blob(id);
      if (signal.aborted || !blob || next >= blob.table.entries.length) break;
      const window: number[] = [];
      let bytes = 0;
      for (let i = next; i < Math.min(next + WINDOW_CHUNKS, blob.table.entries.length); i++) {
        if (blob.presence.has(i)) continue;
        window.push(i);
        bytes += blob.table.entries[i].remoteSize;
      }
      if (!window.length) continue;
      await throttle.take(bytes);
      if (signal.aborted) break;
      await core.prefetch(id, window);
      asked += bytes;
    }
  }
  return asked;
}
