// Replacing a small file so that a crash leaves the old or the new content, never a torn or empty one: write
// a temporary file, fsync it, rename it over the target, fsync the directory (the rename itself).
import fs from "node:fs";
import path from "node:path";

/** Writes `data` to `file` durably and atomically; errors are thrown, never swallowed. */
export function writeFileDurably(file: string, data: string | Uint8Array, mode = 0o600): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, "w", mode);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  const dir = fs.openSync(path.dirname(file), "r");
  try {
    fs.fsyncSync(dir);
  } finally {
    fs.closeSync(dir);
  }
}
