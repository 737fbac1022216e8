// Where the index of an ordinary registry image comes from (issue 14), for image-remote.ts: the referrer
// artifact `eod index <ref> --push` made (src/image/index-artifact.ts), found through the referrers API or the
// referrers tag, or an index image directory built on this node (`--index-locally`). Either is checked
// against the image before anything is read from it: an index built for another image is refused.
import fs from "node:fs";
import path from "node:path";
import { EodError } from "../../errors.ts";
import { checkIndexAgainstImage, CREATED_ANNOTATION, filesOfIndexArtifact, INDEX_ARTIFACT_TYPE, type IndexedImage } from "../../image/index-artifact.ts";
import { MANIFEST_NAME, parseManifest, type Manifest } from "../../image/manifest.ts";
import type { OciDescriptor } from "../../image/oci-form.ts";
import type { CallOptions, RegistryClient } from "./client.ts";
import { isManifestType, type ImageManifest } from "./manifest.ts";
import { listReferrers, type Referrer } from "./referrers.ts";
import { formatReference, type Reference } from "./reference.ts";

/** What to do when an ordinary image has no index: the end of every such message. */
export function noIndexFix(ref: Reference): string {
  return `make one with \`eod index ${formatReference(ref)} --push\`, or mount with --index-locally (or convert the image with eod convert)`;
}

/** Referrer artifacts fetched at most while looking for one that fits the image. */
const MAX_CANDIDATES = 16;

/**
 * Newest first: by the `org.opencontainers.image.created` annotation the referrers list copies from each
 * artifact (RFC 3339, compared as times; entries without a readable one after those with one), ties by
 * list order, later first (the referrers tag appends).
 */
export function newestFirst(list: readonly Referrer[]): Referrer[] {
  const time = (d: Referrer) => Date.parse(d.annotations?.[CREATED_ANNOTATION] ?? "");
  return list.map((d, i) => ({ d, i, t: time(d) }))
    .sort((a, b) => (Number.isNaN(b.t) ? -Infinity : b.t) - (Number.isNaN(a.t) ? -Infinity : a.t) || b.i - a.i)
    .map((x) => x.d);
}

/**
 * The newest index artifact of `image` that passes the checks (its subject is the image, its layers exactly
 * the image's), as the image paths it carries. None: REGISTRY_NOT_FOUND naming the reference and the fix;
 * only refused ones: IMAGE_INVALID with their reasons.
 */
export async function findIndexArtifact(client: RegistryClient, ref: Reference, image: IndexedImage, where: string, opts: CallOptions = {}): Promise<{ digest: string; files: Map<string, OciDescriptor> }> {
  const listed = await listReferrers(client, ref, image.digest, INDEX_ARTIFACT_TYPE, opts);
  const refused: string[] = [];
  for (const d of newestFirst(listed).slice(0, MAX_CANDIDATES)) {
    try {
      return { digest: d.digest, files: await indexArtifactFiles(client, ref, d.digest, image, opts) };
    } catch (err) {
      // A referrer deleted since it was listed, or one that does not fit: the next one may.
      const code = (err as EodError).code;
      if (code !== "IMAGE_INVALID" && code !== "REGISTRY_NOT_FOUND") throw err;
      refused.push((err as Error).message);
    }
  }
  if (refused.length > 0) throw new EodError("IMAGE_INVALID", `${where} has no usable erofs-ondemand index (${refused.join("; ")}): ${noIndexFix(ref)}`);
  throw new EodError("REGISTRY_NOT_FOUND", `${where} is not an erofs-ondemand image and has no erofs-ondemand index: ${noIndexFix(ref)}`);
}

/** The files of the index artifact `digest` for `image` (fetched by digest, verified, checked: filesOfIndexArtifact). */
export async function indexArtifactFiles(client: RegistryClient, ref: Reference, digest: string, image: IndexedImage, opts: CallOptions = {}): Promise<Map<string, OciDescriptor>> {
  const got = await client.getManifest(ref, digest, opts);
  if (!isManifestType(got.mediaType)) throw new EodError("IMAGE_INVALID", `index ${digest} is a ${got.mediaType}, not an image manifest`);
  return filesOfIndexArtifact(got.manifest as ImageManifest, image, `index ${digest}`);
}

/** A locally built index image directory for `image`: its manifest.json (read once), checked against the image. */
export async function openLocalIndex(dir: string, image: IndexedImage, where: string): Promise<{ manifestBytes: Uint8Array; manifest: Manifest }> {
  const file = path.join(dir, MANIFEST_NAME);
  const manifestBytes = await fs.promises.readFile(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT" || err.code === "ENOTDIR") throw new EodError("USAGE", `${dir} is not an index image directory: it has no ${MANIFEST_NAME}`);
    throw err;
  });
  const manifest = parseManifest(manifestBytes.toString("utf8"), file);
  checkIndexAgainstImage(manifest, image, `${dir} (for ${where})`);
  return { manifestBytes, manifest };
}
