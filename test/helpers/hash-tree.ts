// sha256 of every regular file under a directory, by relative path: what tests compare a mount with.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";

export function hashTree(root: string, rel = "", out: Record<string, string> = {}): Record<string, string> {
  for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) hashTree(root, r, out);
    else if (e.isFile()) out[r] = crypto.createHash("sha256").update(fs.readFileSync(path.join(root, r))).digest("hex");
  }
  return out;
}
