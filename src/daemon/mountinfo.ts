// Reading /proc/self/mountinfo: whether a path is a mount point, and which erofs mounts use which files.
import fs from "node:fs";
import path from "node:path";

export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
  options: string;
}

/** Octal escapes (\040 for a space, …) as the kernel writes them in mountinfo. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const [left, right] = line.split(" - ");
    if (!right) continue;
    const l = left.split(" ");
    const r = right.split(" ");
    out.push({ mountPoint: unescape(l[4]), fsType: r[0], source: unescape(r[1]), options: r[2] ?? "" });
  }
  return out;
}

export function mounts(): MountEntry[] {
  return parseMountInfo(fs.readFileSync("/proc/self/mountinfo", "utf8"));
}

/** The mount at exactly `dir` (the last one, if several are stacked) in `table`, or undefined. */
export function mountAt(dir: string, table: readonly MountEntry[] = mounts()): MountEntry | undefined {
  const abs = path.resolve(dir);
  return table.filter((m) => m.mountPoint === abs).pop();
}
