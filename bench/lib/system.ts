// Machine-wide steps every benchmark takes between timed runs, and its progress lines.
import { spawnSync } from "node:child_process";
import fs from "node:fs";

/** Syncs, then drops the page, dentry and inode caches (needs root): each timed run starts cold. */
export function dropCaches(): void {
  spawnSync("sync");
  fs.writeFileSync("/proc/sys/vm/drop_caches", "3");
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One timestamped progress line on stderr (stdout is the report). */
export function progressLine(s: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
}
