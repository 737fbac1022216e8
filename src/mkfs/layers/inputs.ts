// What `eod build <source...>` was given: a directory to scan, or layers (an OCI layout directory, a
// `docker save` archive, or layer tarballs in order). Decided by content, not by file names.
import fs from "node:fs";
import { EodError } from "../../errors.ts";
import { EROFS_SUPER_MAGIC_V1, EROFS_SUPER_OFFSET } from "../../erofs/constants.ts";
import { isDockerArchive, layersOfDockerArchive } from "./docker-archive.ts";
import type { LayerInput } from "./layer-stream.ts";
import { isOciLayout, layersOfOciLayout, type ImageChoice } from "./oci-layout.ts";
import { layerFromFile } from "./sources.ts";

export type BuildInput =
  | { kind: "dir"; dir: string }
  | { kind: "layers"; from: "oci-layout" | "docker-archive" | "tarballs"; layers: LayerInput[] };

/**
 * `sources` are the positional arguments, `layerFiles` the --layer options (explicit tarballs; then no
 * positional may be given). One directory is an OCI layout if it holds oci-layout and index.json, else a
 * tree to scan; one file is a docker-save archive if it is a tar whose manifest.json names a config and
 * layers, else a layer; several files are layers, lowest first. `choice` picks one image of a layout or
 * archive holding several (by name, and platform for a layout).
 */
export function resolveInputs(sources: string[], layerFiles: string[], choice: ImageChoice = {}): BuildInput {
  if (layerFiles.length && sources.length) throw new EodError("USAGE", "Give layers either as --layer options or as arguments, not both");
  const files = layerFiles.length ? layerFiles : sources;
  if (!files.length) throw new EodError("USAGE", "Give a source: a directory, an OCI layout, a docker save archive or layer tarballs");
  if (!layerFiles.length && files.length === 1) {
    const st = statOrNull(files[0]);
    if (!st || st.isDirectory()) {
      return st && isOciLayout(files[0]) ? { kind: "layers", from: "oci-layout", layers: layersOfOciLayout(files[0], choice) } : { kind: "dir", dir: files[0] };
    }
    const other = notALayer(files[0]);
    if (other) throw new EodError("SOURCE_UNSUPPORTED", `${files[0]} ${isNot(other)} a directory or a layer archive (tar, tar.gz or tar.zst layer, OCI layout, docker save archive)`);
    if (isDockerArchive(files[0])) return { kind: "layers", from: "docker-archive", layers: layersOfDockerArchive(files[0], choice.image) };
  }
  return {
    kind: "layers", from: "tarballs",
    layers: files.map((f, i) => {
      const st = statOrNull(f);
      if (!st) throw new EodError("SOURCE_UNREADABLE", `Cannot read layer ${f}: no such file`);
      if (!st.isFile()) throw new EodError("SOURCE_UNSUPPORTED", `Layer ${f} is not a regular file`);
      const other = notALayer(f);
      if (other) throw new EodError("SOURCE_UNSUPPORTED", `Layer ${f} ${isNot(other)} a tar, tar.gz or tar.zst layer`);
      return layerFromFile(f, `layer ${i + 1} (${f})`);
    }),
  };
}

/** Enough of a file's start to tell its kind: ISO 9660 has its mark at 32 KiB, and tar blocking factors pad
 * an empty archive up to 10 KiB and more. */
const HEAD_BYTES = 64 << 10;

/**
 * Null when the content can be a layer: compressed (gzip, zstd, xz, bzip2: the layer reader names the
 * unsupported ones), a ustar header, or an empty tar (only zero bytes: a file whose first block is zeros and
 * that holds anything else is not one, e.g. an EROFS image, whose superblock is at byte 1024). Else what it
 * is, named when it is a well-known kind.
 */
function notALayer(file: string): { kind?: string } | null {
  const head = Buffer.alloc(HEAD_BYTES);
  let n = 0;
  try {
    const fd = fs.openSync(file, "r");
    try {
      for (let got; n < head.length && (got = fs.readSync(fd, head, n, head.length - n, n)) > 0;) n += got;
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw new EodError("SOURCE_UNREADABLE", `Cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
  const at = (pos: number, text: string) => n >= pos + text.length && head.toString("latin1", pos, pos + text.length) === text;
  if (n >= 2 && head[0] === 0x1f && head[1] === 0x8b) return null;
  if (n >= 4 && [0xfd2fb528, 0x587a37fd].includes(head.readUInt32LE(0))) return null;
  if (at(0, "BZh") || at(257, "ustar")) return null;
  if (n >= 512 && head.subarray(0, n).every((b) => b === 0)) return null;
  if (n === 0) return { kind: "an empty file" };
  if (n >= EROFS_SUPER_OFFSET + 4 && head.readUInt32LE(EROFS_SUPER_OFFSET) === EROFS_SUPER_MAGIC_V1) return { kind: "an EROFS image" };
  if (n >= 1082 && head.readUInt16LE(1080) === 0xef53) return { kind: "an ext2/3/4 file system image" };
  if (at(0, "hsqs")) return { kind: "a SquashFS image" };
  if (at(32769, "CD001")) return { kind: "an ISO 9660 image" };
  if (at(0, "PK\x03\x04")) return { kind: "a zip archive" };
  if (at(0, "\x7fELF")) return { kind: "an ELF executable" };
  return {};
}

function isNot(other: { kind?: string }): string {
  return other.kind ? `is ${other.kind}, not` : "is not";
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}
