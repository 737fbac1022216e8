// Opens whatever the CLI is given as an image: an image directory (manifest.json + bootstrap + blobs) or an
// EROFS file (ours or mkfs.erofs's, with --device files for its extra devices).
import fs from "node:fs";
import path from "node:path";
import { EodError } from "../errors.ts";
import { ErofsReader, type ByteSource } from "../erofs/reader.ts";
import { remoteBlobSource } from "./blob-source.ts";
import { isImageDir, openImageDir, type ImageDir } from "./image-dir.ts";

export interface OpenedImage {
  reader: ErofsReader;
  /** Set for image directories. */
  imageDir?: ImageDir;
  close(): void;
}

/** A ByteSource over a local file, read with positional reads. */
export function fileSource(p: string): ByteSource & { close(): void } {
  let fd: number;
  try {
    fd = fs.openSync(p, "r");
  } catch (err) {
    throw new EodError("IMAGE_INVALID", `Cannot open ${p}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
  const size = fs.fstatSync(fd).size;
  return {
    size,
    read(pos, length) {
      const buf = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const n = fs.readSync(fd, buf, done, length - done, pos + done);
        if (n === 0) break;
        done += n;
      }
      return buf;
    },
    close: () => fs.closeSync(fd),
  };
}

export function openImage(target: string, devices: readonly string[] = []): OpenedImage {
  if (fs.existsSync(target) && fs.statSync(target).isDirectory()) {
    if (!isImageDir(target)) throw new EodError("USAGE", `${target} is a directory but not an image directory (no manifest.json)`);
    const imageDir = openImageDir(target);
    const primary = fileSource(imageDir.bootstrapPath);
    const blobs = imageDir.manifest.blobs.map((b, k) => remoteBlobSource(path.join(target, b.remote.path), imageDir.tables[k], b.id));
    const close = () => { primary.close(); blobs.forEach((b) => b.close()); };
    try {
      return { reader: new ErofsReader(primary, blobs), imageDir, close };
    } catch (err) {
      close();
      throw err;
    }
  }
  const primary = fileSource(target);
  const extra = devices.map(fileSource);
  const close = () => { primary.close(); extra.forEach((d) => d.close()); };
  try {
    return { reader: new ErofsReader(primary, extra), close };
  } catch (err) {
    close();
    throw err;
  }
}
