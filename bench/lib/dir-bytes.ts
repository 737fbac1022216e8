// The size of an image directory (or any tree): what a full download of it transfers.
import fs from "node:fs";
import path from "node:path";

/** Bytes of everything below `p` that is not a directory (symlinks count as themselves). */
export function dirBytes(p: string): number {
  let n = 0;
  for (const d of fs.readdirSync(p, { withFileTypes: true })) {
    const q = path.join(p, d.name);
    n += d.isDirectory() ? dirBytes(q) : fs.lstatSync(q).size;
  }
  return n;
}
