// Where layers come from on the local disk: plain layer tarballs, an OCI image layout directory, or a
// `docker save` archive. Each gives LayerInputs, lowest layer first, with the digests to check when known.
import fs from "node:fs";
import path from "node:path";
import { EodError } from "../../errors.ts";
import type { LayerInput } from "./layer-stream.ts";

/** A layer tarball file (tar, tar.gz or tar.zst, recognised by content). */
export function layerFromFile(file: string, name = file): LayerInput {
  return { name, open: () => fs.createReadStream(file) };
}

/** A byte range [start, start + size) of a file (a layer inside an uncompressed archive). */
export function layerFromRange(file: string, start: number, size: number, name: string, digests: { digest?: string; diffId?: string } = {}): LayerInput {
  return {
    name, size, ...digests,
    // end is inclusive; an empty range still needs a stream that ends at once
    open: () => (size ? fs.createReadStream(file, { start, end: start + size - 1 }) : fs.createReadStream(file, { start: 0, end: -1 })),
  };
}

/** Reads a small JSON file (manifest, index, config) of at most `max` bytes. */
export function readJson(file: string, what: string, max = 4 << 20): unknown {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (st.size > max) throw new EodError("SOURCE_INVALID", `${what} (${file}) is ${st.size} bytes, more than ${max}`);
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if (err instanceof EodError) throw err;
    throw new EodError("SOURCE_UNREADABLE", `Cannot read ${what} (${file}): ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
  return parseJson(text, `${what} (${file})`);
}

export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new EodError("SOURCE_INVALID", `Cannot parse ${what}: ${(err as Error).message}`);
  }
}

/** The image config's rootfs.diff_ids (one per layer), validated. */
export function diffIdsOf(config: unknown, layers: number, what: string): string[] {
  const ids = (config as { rootfs?: { diff_ids?: unknown } })?.rootfs?.diff_ids;
  if (!Array.isArray(ids) || ids.some((d) => typeof d !== "string" || !/^sha256:[0-9a-f]{64}$/.test(d))) {
    throw new EodError("SOURCE_INVALID", `${what}: rootfs.diff_ids is missing or not a list of sha256 digests`);
  }
  if (ids.length !== layers) throw new EodError("SOURCE_INVALID", `${what}: ${ids.length} diff_ids for ${layers} layers`);
  return ids as string[];
}

export function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export function joinInside(root: string, rel: string, what: string): string {
  const parts = rel.split("/");
  if (rel.startsWith("/") || parts.some((c) => c === ".." || c === "")) {
    throw new EodError("SOURCE_INVALID", `${what}: path ${JSON.stringify(rel)} leaves the image`);
  }
  return path.join(root, ...parts);
}
