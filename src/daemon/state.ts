// The daemon's mount table, persisted in <cache-dir>/state.json (replaced atomically) so that a restarted
// daemon can re-attach to the mounts that are still there.
import fs from "node:fs";
import path from "node:path";

export interface MountRecord {
  mountPoint: string;
  /** What the user mounted: an image directory or a base URL. */
  source: string;
  frontend: string;
  bootstrapPath: string;
  /** The mount(2) source: the bootstrap file (fanotify) or "none" (fscache); how a live mount is recognised. */
  mountSource?: string;
  manifestDigest: string;
  /** The image's blobs in device order, with where each one's remote form is. */
  blobs: Array<{ id: string; remotePath: string }>;
  mountedAt: string;
  /** `--background-fetch`: bytes/s (0: no cap), resumed by a restarted daemon. */
  backgroundFetch?: number;
}

export interface DaemonState {
  version: 1;
  mounts: MountRecord[];
}

export function loadState(cacheDir: string): DaemonState {
  try {
    const s = JSON.parse(fs.readFileSync(path.join(cacheDir, "state.json"), "utf8")) as DaemonState;
    if (s.version === 1 && Array.isArray(s.mounts)) return s;
  } catch {
    // missing or unreadable: start empty
  }
  return { version: 1, mounts: [] };
}

export function saveState(cacheDir: string, state: DaemonState): void {
  const p = path.join(cacheDir, "state.json");
  const tmp = `${p}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(tmp, p);
}
