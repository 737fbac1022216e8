// `eod unpack`: turns each blob's remote form into its kernel form (the bytes a cache file holds when
// complete), verifying every chunk, so the bootstrap can be mounted with device= options and no daemon.
import fs from "node:fs";
import path from "node:path";
import { EodError } from "../errors.ts";
import { decodeGroups, type ChunkTable } from "./chunk-table.ts";
import { openBlobFile } from "./blob-source.ts";
import { openImage } from "./open.ts";
import { plainOf, unitsOf, verifiedChunks } from "./verified-chunk.ts";
import { sha256Stream } from "../util/sha256.ts";

export interface Unpacked {
  bootstrapPath: string;
  blobPaths: string[];
  /** The mount(2) data string: "device=<blob1>,device=<blob2>". */
  mountData: string;
}

export function unpackImage(imageDir: string, blobsTo: string): Unpacked {
  const opened = openImage(imageDir); // verifies the manifest, tables and bootstrap against each other
  opened.close();
  const img = opened.imageDir;
  if (!img) {
    throw new EodError("USAGE", `${imageDir} is an EROFS file, not an image directory: it has no blobs to unpack and mounts as it is (mount -t erofs -o ro ${imageDir} <mnt>, with device= for its extra devices)`);
  }
  mkdirOut(blobsTo);
  const blobPaths = img.manifest.blobs.map((b, k) => {
    const out = path.resolve(blobsTo, b.id);
    const tmp = `${out}.tmp-${process.pid}`;
    let fd: number;
    try {
      fd = fs.openSync(tmp, "w", 0o644);
    } catch (err) {
      throw new EodError("USAGE", `Cannot create ${tmp}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
    }
    try {
      writeKernelForm(path.join(imageDir, b.remote.path), b.remote.digest, img.tables[k], b.id, fd);
      fs.closeSync(fd);
      fs.renameSync(tmp, out);
    } catch (err) {
      try { fs.closeSync(fd); } catch { /* closed */ }
      fs.rmSync(tmp, { force: true });
      if (err instanceof EodError) throw err;
      throw new EodError("SYS", `Cannot write the kernel form of blob ${b.id} to ${out}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
    }
    return out;
  });
  return {
    bootstrapPath: path.resolve(img.bootstrapPath),
    blobPaths,
    mountData: blobPaths.map((p) => `device=${p}`).join(","),
  };
}

/** Decodes, verifies and writes every chunk of one blob at its kernel-form offset into `fd`. */
export function writeKernelForm(remotePath: string, remoteDigest: string, table: ChunkTable, id: string, fd: number): void {
  const src = openBlobFile(remotePath, id);
  try {
    const size = fs.fstatSync(src).size;
    if (size !== table.remoteSize) throw new EodError("DIGEST_MISMATCH", `Blob ${id}: remote form has ${size} bytes, expected ${table.remoteSize}`);
    const whole = sha256Stream();
    let expectRemote = 0;
    for (const { first, last } of decodeGroups(table)) {
      const e = table.entries[last]; // its remote bytes hold the group's
      const remote = Buffer.allocUnsafe(e.remoteSize);
      fs.readSync(src, remote, 0, e.remoteSize, e.remoteOffset);
      if (e.remoteOffset === expectRemote) { whole.update(remote); expectRemote += e.remoteSize; }
      verifiedChunks(table, first, last, remote, unitsOf("chunk", id)).forEach((v, k) => {
        const plain = plainOf(v);
        fs.writeSync(fd, plain, 0, plain.length, table.entries[first + k].plainOffset);
      });
    }
    if (expectRemote === table.remoteSize && `sha256:${whole.digest("hex")}` !== remoteDigest) {
      throw new EodError("DIGEST_MISMATCH", `Blob ${id}: remote form digest differs from the manifest`);
    }
    fs.ftruncateSync(fd, table.kernelSize);
  } finally {
    fs.closeSync(src);
  }
}

function mkdirOut(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new EodError("USAGE", `Cannot create ${dir}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
}
