// What the daemon watches outside itself: the mount table (a mount removed behind its back, by `umount -l`
// or another tool) and its cache directory (removed or renamed: nothing it serves can be kept any more).
import fs from "node:fs";
import { watchMountTable, type MountTableWatch } from "../sys/mount-watch.ts";
import type { Log } from "../util/log.ts";
import type { MountRecord } from "./state.ts";
import { mountAt, type MountEntry } from "./mountinfo.ts";

export interface WorldWatch {
  stop(): void;
}

/**
 * Calls `onMountsChanged` after the mount table changed, `onCacheDirGone` once if `cacheDir` is no longer the
 * directory it was. A watch that cannot be set up (no inotify watch left, say) is logged, and the daemon
 * serves on without it.
 */
export function watchWorld(cacheDir: string, cb: { onMountsChanged(): void; onCacheDirGone(): void }, log: Log): WorldWatch {
  let table: MountTableWatch | null = null;
  try {
    table = watchMountTable(cb.onMountsChanged, (err) => log("error", "cannot follow the mount table", { err }));
  } catch (err) {
    log("warn", "cannot watch the mount table: mounts removed behind the daemon's back go unnoticed", { err });
  }
  const { dev, ino } = fs.statSync(cacheDir);
  let dir: fs.FSWatcher | null = null;
  const check = () => {
    let st: fs.Stats | undefined;
    try { st = fs.statSync(cacheDir); } catch { /* removed */ }
    if (!dir || (st?.dev === dev && st.ino === ino)) return;
    dir.close();
    dir = null;
    cb.onCacheDirGone();
  };
  try {
    // inotify on the directory: its own removal or rename. Writes into its files ("change": the daemon's own
    // log lines, state.json) cannot be it, so they cost no stat.
    dir = fs.watch(cacheDir, { persistent: false }, (event) => { if (event === "rename") check(); }).on("error", check);
  } catch (err) {
    log("warn", "cannot watch the cache directory: its removal goes unnoticed", { cacheDir, err });
  }
  return {
    stop(): void {
      table?.stop();
      dir?.close();
      dir = null;
    },
  };
}

/** Whether a recorded mount is still the one we made: an erofs mount of the same source at its mount point. */
export function stillMounted(m: MountRecord, table: readonly MountEntry[]): boolean {
  const live = mountAt(m.mountPoint, table);
  return live !== undefined && live.fsType === "erofs" && live.source === (m.mountSource ?? m.bootstrapPath);
}
