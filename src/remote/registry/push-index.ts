// `eod index <ref> --push`: an index image directory pushed as the referrer artifact of the image it indexes
// (src/image/index-artifact.ts). The image is resolved (the platform's manifest is the subject), the index is
// checked against it, the image's layers must be in the repository (the artifact names them, nothing is
// uploaded again), then our files and the empty config are pushed (skipped when present) and the artifact
// last, through pushReferrer (the referrers API, or the referrers tag).
import fs from "node:fs";
import path from "node:path";
import { EodError } from "../../errors.ts";
import { indexArtifactOf, indexUploads, OCI_EMPTY, OCI_EMPTY_BYTES } from "../../image/index-artifact.ts";
import { MANIFEST_NAME, parseManifest } from "../../image/manifest.ts";
import { isOurLayerType, OCI_FORM_TYPES, OCI_MANIFEST_TYPE } from "../../image/oci-form.ts";
import { sha256Digest } from "../../util/sha256.ts";
import { fileSource } from "./blob-source.ts";
import type { RegistryClient } from "./client.ts";
import { formatReference, parseReference, type Reference } from "./reference.ts";
import { pushReferrer, type PushedReferrer } from "./referrers.ts";

export interface PushIndexOptions {
  /** os/arch[/variant] when the reference names an index (default the host's). */
  platform?: string;
  /** The artifact's `org.opencontainers.image.created` (RFC 3339); default now. */
  created?: string;
  signal?: AbortSignal;
}

export interface PushedIndex extends PushedReferrer {
  /** The image manifest the artifact refers to. */
  subject: string;
}

/** Pushes the index image directory `indexDir` as the referrer artifact of the image `ref` names. */
export async function pushIndexArtifact(client: RegistryClient, ref: string | Reference, indexDir: string, opts: PushIndexOptions = {}): Promise<PushedIndex> {
  const repo = typeof ref === "string" ? parseReference(ref) : ref;
  const manifestPath = path.join(indexDir, MANIFEST_NAME);
  const manifestBytes = await fs.promises.readFile(manifestPath);
  const m = parseManifest(manifestBytes.toString("utf8"), manifestPath);
  const img = await client.resolve(repo, { platform: opts.platform, signal: opts.signal });
  const where = `${formatReference(repo)} (manifest ${img.digest})`;
  if (img.manifest.layers.some((l) => isOurLayerType(l.mediaType))) {
    throw new EodError("SOURCE_UNSUPPORTED", `${where} is an erofs-ondemand image already: it needs no index`);
  }
  const image = { digest: img.digest, mediaType: img.mediaType, size: img.size, layers: img.manifest.layers };
  const artifact = indexArtifactOf({ digest: sha256Digest(manifestBytes), size: manifestBytes.length }, m, image, opts.created ?? new Date().toISOString(), `${indexDir} for ${where}`);
  // The artifact names the image's layers: they must be there (a registry refuses a manifest whose blobs
  // it lacks, with a message that would not say why).
  for (const l of img.manifest.layers) {
    if ((await client.blobSize(repo, l.digest, opts)) === undefined) {
      throw new EodError("REGISTRY_NOT_FOUND", `${where}: its layer ${l.digest} is not in ${repo.registry}/${repo.repository}; push the image again, then the index`);
    }
  }
  await client.pushBlob(repo, OCI_EMPTY_BYTES, { digest: OCI_EMPTY.digest, mediaType: OCI_EMPTY.mediaType, signal: opts.signal });
  await client.pushBlob(repo, manifestBytes, { mediaType: OCI_FORM_TYPES.manifest, signal: opts.signal });
  for (const f of indexUploads(m)) {
    await client.pushBlob(repo, await fileSource(path.join(indexDir, f.ref.path)), { digest: f.ref.digest, mediaType: f.mediaType, signal: opts.signal });
  }
  const pushed = await pushReferrer(client, repo, Buffer.from(JSON.stringify(artifact)), OCI_MANIFEST_TYPE, opts);
  return { ...pushed, subject: img.digest };
}
