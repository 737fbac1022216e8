// The pid files of a cache directory (daemon.pid, holder.pid) and whether the process they name runs.
import fs from "node:fs";

/** The pid in `file`, or null if there is none (no file, or not a pid). */
export function readPid(file: string): number | null {
  try {
    const pid = Number(fs.readFileSync(file, "utf8"));
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

/** Whether a process with this pid exists (signal 0). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
