// What the daemon watches outside itself: the mount table (a mount removed behind its back, by `umount -l`
// or another tool) and its cache directory (removed or renamed: nothing it serves can be kept any more).
import fs from "node:fs";
import { watchMountTable } from "../sys/mount-watch.ts";
import type { Log } from "../util/log.ts";
import type { MountRecord } from "./state.ts";
import { mounts, type MountEntry } from "./mountinfo.ts";

export interface WorldWatch {
  stop(): void;
}

/** Calls `onMountsChanged` after the mount table changed, `onCacheDirGone` once if `cacheDir` is no longer the directory it was. */
export function watchWorld(cacheDir: string, cb: { onMountsChanged(): void; onCacheDirGone(): void }, log: Log): WorldWatch {
  const table = watchMountTable(cb.onMountsChanged, (err) => log("error", "cannot follow the mount table", { err }));
  const { dev, ino } = fs.statSync(cacheDir);
  let gone = false;
  const check = () => {
    if (gone) return;
    let st: fs.Stats | undefined;
    try { st = fs.statSync(cacheDir); } catch { /* removed */ }
    if (st?.dev === dev && st.ino === ino) return;
    gone = true;
    dir.close();
    cb.onCacheDirGone();
  };
  // inotify on the directory: its own removal or rename (and, cheaply ignored, its entries changing).
  const dir = fs.watch(cacheDir, { persistent: false }, check);
  dir.on("error", check);
  return {
    stop(): void {
      table.stop();
      dir.close();
    },
  };
}

/** Whether a recorded mount is still the one we made: an erofs mount of the same source at its mount point. */
export function stillMounted(m: MountRecord, table: readonly MountEntry[] = mounts()): boolean {
  const live = table.filter((e) => e.mountPoint === m.mountPoint).pop();
  return live !== undefined && live.fsType === "erofs" && live.source === (m.mountSource ?? m.bootstrapPath);
}
