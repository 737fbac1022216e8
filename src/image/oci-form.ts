// Our image as an OCI image manifest ("OCI form", docs/format.md section 7): each file of the image directory
// is one layer, typed `application/vnd.oci.image.layer.erofs-ondemand.<kind>.v1…` (containerd's unpacker
// hands every `application/vnd.oci.image.layer.` type to the snapshotter, so the eod snapshotter can take the
// image lazily), titled with its path and annotated with the digest of manifest.json (the snapshotter's label
// for the image). The config is the source image's with `rootfs.diff_ids` naming our layers. A reader finds
// manifest.json by its title and media type, verifies it by the layer's digest, and from then on trusts only
// manifest.json's digests (the OCI descriptors must agree). Pure: descriptors in, descriptors out.
import { EodError } from "../errors.ts";
import { sha256Digest } from "../util/sha256.ts";
import { MANIFEST_MEDIA_TYPE, MANIFEST_NAME, type FileRef, type Manifest } from "./manifest.ts";

export const OCI_MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json";
export const OCI_CONFIG_TYPE = "application/vnd.oci.image.config.v1+json";

/** Media types of the layers of the OCI form, one per kind of file. */
export const OCI_FORM_TYPES = {
  manifest: "application/vnd.oci.image.layer.erofs-ondemand.manifest.v1+json",
  bootstrap: "application/vnd.oci.image.layer.erofs-ondemand.bootstrap.v1.erofs",
  bootstrapZstd: "application/vnd.oci.image.layer.erofs-ondemand.bootstrap.v1.erofs+zstd",
  chunkTable: "application/vnd.oci.image.layer.erofs-ondemand.chunk-table.v1",
  blob: "application/vnd.oci.image.layer.erofs-ondemand.blob.v1",
} as const;

/** The media types `eod convert` gave the layers before they were containerd layers: still read. */
export const OLD_OCI_FORM_TYPES = {
  manifest: MANIFEST_MEDIA_TYPE,
  bootstrap: "application/vnd.erofs-ondemand.bootstrap.v1.erofs",
  bootstrapZstd: "application/vnd.erofs-ondemand.bootstrap.v1.erofs+zstd",
  chunkTable: "application/vnd.erofs-ondemand.chunk-table.v1",
  blob: "application/vnd.erofs-ondemand.blob.v1",
} as const;

const OUR_PREFIXES = ["application/vnd.oci.image.layer.erofs-ondemand.", "application/vnd.erofs-ondemand."];

/** Whether a layer media type is one of ours (either generation). */
export function isOurLayerType(mediaType: string): boolean {
  return OUR_PREFIXES.some((p) => mediaType.startsWith(p));
}

/** The manifest's artifactType: says what the layers are without reading them. */
export const OCI_ARTIFACT_TYPE = "application/vnd.erofs-ondemand.image.v1";

/**
 * The layer annotation naming the image: "sha256:<hex>" of manifest.json, on every layer. containerd passes
 * layer annotations under `containerd.io/snapshot/` to the snapshotter as labels of each layer's Prepare.
 */
export const EOD_MANIFEST_ANNOTATION = "containerd.io/snapshot/eod.manifest";

export const ANNOTATIONS = {
  title: "org.opencontainers.image.title",
  /** The digest of the source image manifest this image was converted from. */
  sourceDigest: "io.erofs-ondemand.source.digest",
  /** The source reference as the user named it (informational). */
  sourceRef: "io.erofs-ondemand.source.ref",
} as const;

export interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface OciManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: OciDescriptor;
  layers: OciDescriptor[];
  annotations?: Record<string, string>;
}

/** Titles are image paths: plain relative names, as manifest.json allows them. */
const SAFE_PATH = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

/** A file of the image that the OCI form carries, besides manifest.json. */
export interface FormFile {
  ref: FileRef;
  mediaType: string;
}

/**
 * The files of an image that go into its OCI form, after manifest.json: the bootstrap's wire form when the
 * manifest has one (what mounts fetch), else the plain bootstrap; then per blob its chunk table and remote form.
 */
export function formFiles(m: Manifest): FormFile[] {
  const files: FormFile[] = [m.bootstrapZstd ? { ref: m.bootstrapZstd, mediaType: OCI_FORM_TYPES.bootstrapZstd } : { ref: m.bootstrap, mediaType: OCI_FORM_TYPES.bootstrap }];
  for (const b of m.blobs) {
    files.push({ ref: b.table, mediaType: OCI_FORM_TYPES.chunkTable }, { ref: b.remote, mediaType: OCI_FORM_TYPES.blob });
  }
  return files;
}

/**
 * The layers of an image's OCI form: manifest.json first, then formFiles(); each titled with its path and
 * annotated with manifest.json's digest.
 */
export function ociLayersOf(manifestJson: { digest: string; size: number }, m: Manifest): OciDescriptor[] {
  const layer = (mediaType: string, ref: { digest: string; size: number }, title: string): OciDescriptor =>
    ({ mediaType, digest: ref.digest, size: ref.size, annotations: { [ANNOTATIONS.title]: title, [EOD_MANIFEST_ANNOTATION]: manifestJson.digest } });
  return [layer(OCI_FORM_TYPES.manifest, manifestJson, MANIFEST_NAME), ...formFiles(m).map((f) => layer(f.mediaType, f.ref, f.ref.path))];
}

/**
 * The config of the OCI form, as bytes (the same source and layers give the same bytes): the source image's
 * config (entrypoint, env, user, platform, …) with `rootfs.diff_ids` naming our layers, one each, by their
 * digest (they are not tars: containerd only needs one diff_id per layer to chain the snapshots, and nydus
 * does the same), and a history whose source entries are all empty layers, followed by one entry per layer
 * of ours, so history still pairs with diff_ids. SOURCE_INVALID if the source config is not a JSON object.
 */
export function ociConfigOf(source: unknown, layers: readonly OciDescriptor[], where: string): Uint8Array {
  if (typeof source !== "object" || source === null || Array.isArray(source)) throw new EodError("SOURCE_INVALID", `${where} is not a JSON object`);
  const src = source as Record<string, unknown>;
  const sourceHistory: unknown[] = Array.isArray(src.history) ? src.history : [];
  sourceHistory.forEach((h, i) => {
    if (typeof h !== "object" || h === null || Array.isArray(h)) throw new EodError("SOURCE_INVALID", `${where}: history[${i}] is not an object`);
  });
  const created = typeof src.created === "string" ? { created: src.created } : {};
  const history = [
    ...sourceHistory.map((h) => ({ ...(h as object), empty_layer: true })),
    ...layers.map((l) => ({ ...created, created_by: `eod convert: ${l.annotations?.[ANNOTATIONS.title] ?? l.digest}`, comment: l.mediaType })),
  ];
  // Keys the source has keep their place (the spread overwrites in place): the bytes follow the source's.
  const config = { ...src, rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) }, history };
  return Buffer.from(JSON.stringify(config));
}

/** The OCI image manifest of an image from its layers (ociLayersOf) and config (ociConfigOf, pushed). */
export function ociManifestOf(layers: OciDescriptor[], config: Uint8Array, annotations: Record<string, string>): OciManifest {
  return {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_TYPE,
    artifactType: OCI_ARTIFACT_TYPE,
    config: { mediaType: OCI_CONFIG_TYPE, digest: sha256Digest(config), size: config.byteLength },
    layers,
    annotations,
  };
}

/**
 * The image files an OCI manifest carries, by path (from the title annotations), with the descriptor of
 * manifest.json. IMAGE_INVALID if it is not our form: no manifest.json layer of our media type, a title
 * twice, or a title that is not a safe relative path.
 */
export function filesOfOciManifest(oci: { layers: OciDescriptor[] }, where: string): { manifest: OciDescriptor; files: Map<string, OciDescriptor> } {
  const files = new Map<string, OciDescriptor>();
  for (const [i, d] of oci.layers.entries()) {
    if (d.annotations?.[ANNOTATIONS.title] === undefined || !isOurLayerType(d.mediaType)) continue; // not ours: ignored
    addTitled(files, d, i, where);
  }
  const manifest = files.get(MANIFEST_NAME);
  if (!manifest || (manifest.mediaType !== OCI_FORM_TYPES.manifest && manifest.mediaType !== OLD_OCI_FORM_TYPES.manifest)) {
    throw new EodError("IMAGE_INVALID", `${where} is not an erofs-ondemand image (no layer titled ${MANIFEST_NAME} of type ${OCI_FORM_TYPES.manifest}); make one with eod convert`);
  }
  return { manifest, files };
}

/**
 * Adds layer `i` to `files` under its title: IMAGE_INVALID when the title is not a safe relative path inside
 * the image, or is taken already. The index artifact's reader (index-artifact.ts) files its layers the same way.
 */
export function addTitled(files: Map<string, OciDescriptor>, d: OciDescriptor, i: number, where: string): void {
  const title = d.annotations?.[ANNOTATIONS.title];
  if (title === undefined || !SAFE_PATH.test(title) || title.split("/").some((c) => c === "." || c === "..")) {
    throw new EodError("IMAGE_INVALID", `${where}: layers[${i}] title ${JSON.stringify(title)} is not a relative path inside the image`);
  }
  if (files.has(title)) throw new EodError("IMAGE_INVALID", `${where}: two layers are titled ${JSON.stringify(title)}`);
  files.set(title, d);
}

/**
 * Checks that the OCI layers agree with manifest.json (verified by then): every file a mount reads is
 * there with the same digest and size. A disagreement means the OCI manifest lies: DIGEST_MISMATCH.
 */
export function checkOciAgainstManifest(files: ReadonlyMap<string, OciDescriptor>, m: Manifest, where: string): void {
  for (const f of formFiles(m)) {
    const d = files.get(f.ref.path);
    if (!d) throw new EodError("IMAGE_INVALID", `${where}: no layer titled ${JSON.stringify(f.ref.path)}, which ${MANIFEST_NAME} names`);
    if (d.digest !== f.ref.digest || d.size !== f.ref.size) {
      throw new EodError("DIGEST_MISMATCH", `${where}: layer ${JSON.stringify(f.ref.path)} is ${d.digest} (${d.size} bytes), ${MANIFEST_NAME} says ${f.ref.digest} (${f.ref.size} bytes): refused`);
    }
  }
}
