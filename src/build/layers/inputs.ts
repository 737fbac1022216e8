// What `eod build <source...>` was given: a directory to scan, or layers (an OCI layout directory, a
// `docker save` archive, or layer tarballs in order). Decided by content, not by file names.
import fs from "node:fs";
import { EodError } from "../../errors.ts";
import { isDockerArchive, layersOfDockerArchive } from "./docker-archive.ts";
import type { LayerInput } from "./layer-stream.ts";
import { isOciLayout, layersOfOciLayout } from "./oci-layout.ts";
import { layerFromFile } from "./sources.ts";

export type BuildInput =
  | { kind: "dir"; dir: string }
  | { kind: "layers"; from: "oci-layout" | "docker-archive" | "tarballs"; layers: LayerInput[] };

/**
 * `sources` are the positional arguments, `layerFiles` the --layer options (explicit tarballs; then no
 * positional may be given). One directory is an OCI layout if it holds oci-layout and index.json, else a
 * tree to scan; one file is a docker-save archive if it is a tar whose manifest.json names a config and
 * layers, else a layer; several files are layers, lowest first.
 */
export function resolveInputs(sources: string[], layerFiles: string[]): BuildInput {
  if (layerFiles.length && sources.length) throw new EodError("USAGE", "Give layers either as --layer options or as arguments, not both");
  const files = layerFiles.length ? layerFiles : sources;
  if (!files.length) throw new EodError("USAGE", "Give a source: a directory, an OCI layout, a docker save archive or layer tarballs");
  if (!layerFiles.length && files.length === 1) {
    const st = statOrNull(files[0]);
    if (!st || st.isDirectory()) {
      return st && isOciLayout(files[0]) ? { kind: "layers", from: "oci-layout", layers: layersOfOciLayout(files[0]) } : { kind: "dir", dir: files[0] };
    }
    if (isDockerArchive(files[0])) return { kind: "layers", from: "docker-archive", layers: layersOfDockerArchive(files[0]) };
  }
  return {
    kind: "layers", from: "tarballs",
    layers: files.map((f, i) => {
      const st = statOrNull(f);
      if (!st) throw new EodError("SOURCE_UNREADABLE", `Cannot read layer ${f}: no such file`);
      if (!st.isFile()) throw new EodError("SOURCE_UNSUPPORTED", `Layer ${f} is not a regular file`);
      return layerFromFile(f, `layer ${i + 1} (${f})`);
    }),
  };
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}
