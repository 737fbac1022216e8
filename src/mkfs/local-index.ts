// `--index-locally` (config mount.index_locally): an ordinary registry image that nobody indexed is indexed on
// this node, once: every layer is downloaded in full (the one full download), the index image is kept in the
// cache directory under the image's manifest digest, and the daemon's registry remote takes it from there
// (the daemon checks it against the image like an index found in the registry). Later mounts and pulls of the
// image with this cache directory find it and fetch only the spans they read.
import fs from "node:fs";
import path from "node:path";
import type { EodError } from "../errors.ts";
import { isOurLayerType } from "../image/oci-form.ts";
import { formatReference, parseReference, RegistryClient, type Reference, type ResolvedImage } from "../remote/registry/index.ts";
import { REGISTRY_SCHEME } from "../remote/registry/image-remote.ts";
import { findIndexArtifact } from "../remote/registry/index-discovery.ts";
import { makeIndex, type MakeIndexSummary } from "./make-index.ts";

/** The cache directory's folder of locally built indexes, one directory per image manifest digest's hex. */
export const LOCAL_INDEXES = "indexes";

export function localIndexDir(cacheDir: string, manifestDigest: string): string {
  return path.join(cacheDir, LOCAL_INDEXES, manifestDigest.slice(manifestDigest.indexOf(":") + 1));
}

export interface LocalIndexOptions {
  platform?: string;
  insecureRegistries?: string[];
  /** Called before the full download starts: what it will cost. */
  onIndexing?: (what: { reference: string; digest: string; layers: number; bytes: number; dir: string }) => void;
  onLayer?: (index: number, name: string, done: number, total: number) => void;
}

export type LocalIndex =
  | { kind: "not-needed"; why: "ours" | "in-registry" }
  | { kind: "kept"; dir: string }
  | { kind: "built"; dir: string; summary: MakeIndexSummary };

/**
 * Makes sure the image `source` (`docker://…` or a reference) can be mounted: nothing to do for an image of
 * ours or one whose index is in the registry; else the index kept in `cacheDir`, built now if missing.
 */
export async function ensureLocalIndex(source: string, cacheDir: string, opts: LocalIndexOptions = {}): Promise<LocalIndex> {
  const ref = parseReference(source.startsWith(REGISTRY_SCHEME) ? source.slice(REGISTRY_SCHEME.length) : source);
  const client = new RegistryClient({ insecureRegistries: opts.insecureRegistries ?? [] });
  try {
    const img = await client.resolve(ref, { platform: opts.platform });
    if (img.manifest.layers.some((l) => isOurLayerType(l.mediaType))) return { kind: "not-needed", why: "ours" };
    const dir = localIndexDir(cacheDir, img.digest);
    if (fs.existsSync(path.join(dir, "manifest.json"))) return { kind: "kept", dir };
    if (await hasIndexArtifact(client, ref, img)) return { kind: "not-needed", why: "in-registry" };
    const pinned = formatReference({ ...ref, digest: img.digest });
    opts.onIndexing?.({ reference: pinned, digest: img.digest, layers: img.manifest.layers.length, bytes: img.manifest.layers.reduce((n, l) => n + l.size, 0), dir });
    // Built beside its place and renamed into it: a reader never sees half an index, and a crash leaves
    // only a temporary directory, removed by the next build.
    const tmp = `${dir}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o700 });
    try {
      const summary = await makeIndex(pinned, { output: tmp, client, onLayer: opts.onLayer });
      try {
        fs.renameSync(tmp, dir);
      } catch (err) {
        // Another mount built it meanwhile: theirs is as good as ours.
        if (!fs.existsSync(path.join(dir, "manifest.json"))) throw err;
      }
      return { kind: "built", dir, summary: { ...summary, dir } };
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  } finally {
    await client.close();
  }
}

/** Whether the registry has an index artifact that fits the image (one made for another image does not). */
async function hasIndexArtifact(client: RegistryClient, ref: Reference, img: ResolvedImage): Promise<boolean> {
  const image = { digest: img.digest, mediaType: img.mediaType, size: img.size, layers: img.manifest.layers };
  try {
    await findIndexArtifact(client, ref, image, formatReference(ref));
    return true;
  } catch (err) {
    if ((err as EodError).code === "REGISTRY_NOT_FOUND" || (err as EodError).code === "IMAGE_INVALID") return false;
    throw err;
  }
}
