// What `eod build <source...>` was given: a directory to scan, or layers (an OCI layout directory, a
// `docker save` archive, or layer tarballs in order). Decided by content, not by file names.
import fs from "node:fs";
import { EodError } from "../../errors.ts";
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
    if (!looksLikeLayer(files[0])) {
      throw new EodError("SOURCE_UNSUPPORTED", `Cannot build from ${files[0]}: not a directory, and not a tar, tar.gz or tar.zst layer, OCI layout or docker save archive`);
    }
    if (isDockerArchive(files[0])) return { kind: "layers", from: "docker-archive", layers: layersOfDockerArchive(files[0], choice.image) };
  }
  return {
    kind: "layers", from: "tarballs",
    layers: files.map((f, i) => {
      const st = statOrNull(f);
      if (!st) throw new EodError("SOURCE_UNREADABLE", `Cannot read layer ${f}: no such file`);
      if (!st.isFile()) throw new EodError("SOURCE_UNSUPPORTED", `Layer ${f} is not a regular file`);
      if (!looksLikeLayer(f)) throw new EodError("SOURCE_UNSUPPORTED", `Layer ${f} is not a tar, tar.gz or tar.zst file`);
      return layerFromFile(f, `layer ${i + 1} (${f})`);
    }),
  };
}

/** By the first block: compressed (gzip, zstd, xz, bzip2: the layer reader names the unsupported ones), a ustar header, or an empty tar. */
function looksLikeLayer(file: string): boolean {
  const head = Buffer.alloc(512);
  let n = 0;
  try {
    const fd = fs.openSync(file, "r");
    try { n = fs.readSync(fd, head, 0, 512, 0); } finally { fs.closeSync(fd); }
  } catch (err) {
    throw new EodError("SOURCE_UNREADABLE", `Cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
  if (n >= 2 && head[0] === 0x1f && head[1] === 0x8b) return true;
  if (n >= 4 && [0xfd2fb528, 0x587a37fd].includes(head.readUInt32LE(0))) return true;
  if (n >= 3 && head.toString("latin1", 0, 3) === "BZh") return true;
  if (n === 512 && head.toString("latin1", 257, 262) === "ustar") return true;
  return n === 512 && head.every((b) => b === 0);
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}
