// A small image directory for remote/serve tests: files of random bytes (or given text), built with 64 KiB
// chunks, so that blobs are incompressible and stored as is.
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildImage } from "../../src/mkfs/image.ts";

export interface RandomImage {
  /** Temp dir holding src/ and img/; remove it when done. */
  work: string;
  img: string;
  /** "blobs/<id>": the path of the (only) blob's remote form. */
  blob: string;
}

/** files: relative path → size of random content, or the content itself. */
export async function randomImage(prefix: string, files: Record<string, number | string>): Promise<RandomImage> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const src = path.join(work, "src");
  for (const [rel, what] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(src, rel)), { recursive: true });
    fs.writeFileSync(path.join(src, rel), typeof what === "number" ? randomBytes(what) : what);
  }
  const img = path.join(work, "img");
  const blob = (await buildImage(src, img, { chunkSize: 64 * 1024 })).manifest.blobs[0].remote.path;
  return { work, img, blob };
}
