// The daemon's mount table, persisted in <cache-dir>/state.json (replaced atomically) so that a restarted
// daemon can re-attach to the mounts that are still there. A corrupt table is an error, never "no mounts".
import fs from "node:fs";
import path from "node:path";
import { EodError } from "../errors.ts";
import { writeFileDurably } from "../util/durable-write.ts";

export interface MountRecord {
  mountPoint: string;
  /** What the user mounted: an image directory or a base URL. */
  source: string;
  frontend: string;
  bootstrapPath: string;
  /** The mount(2) source: the bootstrap file (fanotify), /dev/loopN, or "none" (fscache); how a live mount is recognised. */
  mountSource?: string;
  /** The loop devices erofs was mounted from (kernels without file-backed mounts); they go with the mount (autoclear). */
  loopDevices?: string[];
  manifestDigest: string;
  /** The image's blobs in device order, with where each one's remote form is. */
  blobs: Array<{ id: string; remotePath: string }>;
  mountedAt: string;
  /** `--background-fetch`: bytes/s (0: no cap), resumed by a restarted daemon. */
  backgroundFetch?: number;
  /** `--index-locally`: the index image directory (in the cache directory) the registry image is read through. */
  indexDir?: string;
}

export interface DaemonState {
  version: 1;
  mounts: MountRecord[];
}

/** `<cache-dir>/state.json`. */
export function stateFile(cacheDir: string): string {
  return path.join(cacheDir, "state.json");
}

/**
 * The recorded mounts; none when there is no state.json yet.
 * @throws EodError DAEMON for a state.json that cannot be read, or is not a mount table (a
 *   corrupt one is first renamed to state.json.corrupt-<time>, so the next start begins empty and nothing is lost)
 */
export function loadState(cacheDir: string): DaemonState {
  const file = stateFile(cacheDir);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { version: 1, mounts: [] };
    throw new EodError("DAEMON", `Cannot read the mount table ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  let why: string | null = null;
  try {
    const s = JSON.parse(text) as DaemonState;
    if (s?.version === 1 && Array.isArray(s.mounts) && s.mounts.every(isRecord)) return s;
    why = s?.version !== 1 ? `unknown version ${JSON.stringify(s?.version)}` : "its mounts are not mount records";
  } catch (err) {
    why = `not JSON (${(err as Error).message})`;
  }
  const kept = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, "-")}`;
  fs.renameSync(file, kept);
  throw new EodError("DAEMON", `The mount table ${file} is corrupt: ${why}. It was moved to ${kept}; the mounts it recorded are not re-attached (unmount them with umount(8)); the next start begins with none`);
}

function isRecord(m: unknown): m is MountRecord {
  const r = m as MountRecord;
  return typeof r === "object" && r !== null && typeof r.mountPoint === "string" && typeof r.source === "string" && typeof r.bootstrapPath === "string" && Array.isArray(r.blobs);
}

/** Replaces state.json durably (fsync, rename, fsync of the directory); a failure is thrown. */
export function saveState(cacheDir: string, state: DaemonState): void {
  writeFileDurably(stateFile(cacheDir), `${JSON.stringify(state, null, 2)}\n`);
}
