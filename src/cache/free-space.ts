// Free space of the filesystem that holds a cache, as the kernel's cachefiles judges it: culling for low space
// goes on while free blocks or free files are below their "run" level (percent of the filesystem's total).
import fs from "node:fs";

/** Free space of a filesystem (f_blocks, f_bavail, f_files, f_ffree). */
export interface SpaceState {
  blocks: number;
  bavail: number;
  files: number;
  ffree: number;
}

/** The levels free space must be back at before culling for low space stops (cachefiles' brun/frun). */
export interface RunLevels {
  blocksPct: number;
  filesPct: number;
}

export function spaceOf(dir: string): SpaceState {
  const s = fs.statfsSync(dir);
  return { blocks: s.blocks, bavail: s.bavail, files: s.files, ffree: s.ffree };
}

/**
 * Whether culling should go on: free blocks or files below their run level (cachefiles_has_space clears the
 * CULLING state only at or above both). A filesystem that reports no inode count (files = 0) is judged on
 * blocks alone.
 */
export function belowRun(s: SpaceState, l: RunLevels): boolean {
  const blocksLow = s.bavail < Math.floor((s.blocks * l.blocksPct) / 100);
  const filesLow = s.files > 0 && s.ffree < Math.floor((s.files * l.filesPct) / 100);
  return blocksLow || filesLow;
}

/** Free blocks and files in percent, for messages. */
export function freePct(s: SpaceState): { freeBlocksPct: number; freeFilesPct: number | null } {
  return { freeBlocksPct: +((100 * s.bavail) / s.blocks).toFixed(1), freeFilesPct: s.files ? +((100 * s.ffree) / s.files).toFixed(1) : null };
}
