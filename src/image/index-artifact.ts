// The index image of an ordinary registry image (issue 14) as an OCI artifact: an image manifest with
// artifactType INDEX_ARTIFACT_TYPE whose `subject` is the image's manifest, so registries list it as a
// referrer of the image. Its config is the OCI empty descriptor (image-spec: what an artifact without a
// config gives). Its layers are the index image's own files (manifest.json, the bootstrap's wire form, the
// seek indexes), typed as in the OCI form (oci-form.ts) and titled with their paths, then the IMAGE'S OWN
// layer descriptors (same digest, size, media type), titled with the path manifest.json gives each blob's
// remote form (`blobs/<id>`, id = the layer's diff_id hex): nothing is uploaded twice, a reader maps every
// path of the index image from the artifact alone, and registry GC keeps the layers as long as the artifact.
// A reader checks the artifact against the image before anything is mounted: its subject is the image, and
// its blobs are exactly the image's layers. Pure: descriptors in, descriptors out.
import { EodError } from "../errors.ts";
import { MANIFEST_NAME, type FileRef, type Manifest } from "./manifest.ts";
import { addTitled, ANNOTATIONS, isOurLayerType, OCI_FORM_TYPES, OCI_MANIFEST_TYPE, type OciDescriptor } from "./oci-form.ts";

export const INDEX_ARTIFACT_TYPE = "application/vnd.erofs-ondemand.index.v1";

/** The image-spec's empty descriptor: the config of an artifact that needs none (its blob is `{}`). */
export const OCI_EMPTY = {
  mediaType: "application/vnd.oci.empty.v1+json",
  digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
  size: 2,
} as const;
export const OCI_EMPTY_BYTES = Uint8Array.of(0x7b, 0x7d); // "{}"

/** When the artifact was made (RFC 3339): copied into the referrers list, it orders the candidates. */
export const CREATED_ANNOTATION = "org.opencontainers.image.created";

/** The image an index is for: its manifest's descriptor and its layers. */
export interface IndexedImage {
  digest: string;
  mediaType: string;
  size: number;
  layers: readonly OciDescriptor[];
}

export interface IndexArtifact {
  schemaVersion: 2;
  mediaType: typeof OCI_MANIFEST_TYPE;
  artifactType: typeof INDEX_ARTIFACT_TYPE;
  config: OciDescriptor;
  layers: OciDescriptor[];
  subject: OciDescriptor;
  annotations: Record<string, string>;
}

/** The files of an index image the artifact uploads, with their media types: the bootstrap's wire form, the seek indexes. */
export function indexUploads(m: Manifest): Array<{ ref: FileRef; mediaType: string }> {
  return [
    m.bootstrapZstd ? { ref: m.bootstrapZstd, mediaType: OCI_FORM_TYPES.bootstrapZstd } : { ref: m.bootstrap, mediaType: OCI_FORM_TYPES.bootstrap },
    ...m.blobs.map((b) => ({ ref: b.table, mediaType: OCI_FORM_TYPES.chunkTable })),
  ];
}

/**
 * Checks an index image's manifest.json against the image: every blob's remote form is one of the image's
 * layers (digest and size), and every layer of the image has a blob. IMAGE_INVALID "index built for another
 * image" otherwise.
 */
export function checkIndexAgainstImage(m: Manifest, image: IndexedImage, where: string): void {
  const bad = (why: string) => new EodError("IMAGE_INVALID", `${where}: index built for another image: ${why}`);
  const remotes = new Set<string>();
  for (const b of m.blobs) {
    if (!image.layers.some((l) => l.digest === b.remote.digest && l.size === b.remote.size)) {
      throw bad(`its blob ${b.remote.path} is ${b.remote.digest} (${b.remote.size} bytes), not a layer of image ${image.digest}`);
    }
    remotes.add(b.remote.digest);
  }
  const missing = image.layers.find((l) => !remotes.has(l.digest));
  if (missing) throw bad(`layer ${missing.digest} of image ${image.digest} has no blob in it`);
}

/**
 * The artifact manifest of an index image for `image` (checked against it first). `manifestJson` is the
 * descriptor of the manifest.json bytes; `created` (RFC 3339) goes into the annotations.
 */
export function indexArtifactOf(manifestJson: { digest: string; size: number }, m: Manifest, image: IndexedImage, created: string, where: string): IndexArtifact {
  checkIndexAgainstImage(m, image, where);
  const titled = (d: { mediaType: string; digest: string; size: number }, title: string): OciDescriptor =>
    ({ mediaType: d.mediaType, digest: d.digest, size: d.size, annotations: { [ANNOTATIONS.title]: title } });
  const bootstrap = indexUploads(m)[0];
  const layers = [titled({ ...manifestJson, mediaType: OCI_FORM_TYPES.manifest }, MANIFEST_NAME), titled({ ...bootstrap.ref, mediaType: bootstrap.mediaType }, bootstrap.ref.path)];
  for (const b of m.blobs) {
    const layer = image.layers.find((l) => l.digest === b.remote.digest && l.size === b.remote.size)!;
    layers.push(titled({ ...b.table, mediaType: OCI_FORM_TYPES.chunkTable }, b.table.path), titled(layer, b.remote.path));
  }
  return {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_TYPE,
    artifactType: INDEX_ARTIFACT_TYPE,
    config: { ...OCI_EMPTY },
    layers,
    subject: { mediaType: image.mediaType, digest: image.digest, size: image.size },
    annotations: { [CREATED_ANNOTATION]: created },
  };
}

/**
 * The index image's files an artifact carries, by path, for `image`; refused (IMAGE_INVALID) before anything
 * is read when it is not an index artifact, when its subject is not the image, or when its layers that are
 * not our files are not exactly the image's layers ("index built for another image"). Once manifest.json is
 * read (verified by its layer's digest), `checkOciAgainstManifest(files, …)` and `checkIndexAgainstImage`
 * tie the rest to it.
 */
export function filesOfIndexArtifact(artifact: { artifactType?: string; subject?: OciDescriptor; layers: readonly OciDescriptor[] }, image: IndexedImage, where: string): Map<string, OciDescriptor> {
  if (artifact.artifactType !== INDEX_ARTIFACT_TYPE) throw new EodError("IMAGE_INVALID", `${where} is not an erofs-ondemand index (artifactType ${JSON.stringify(artifact.artifactType)})`);
  const bad = (why: string) => new EodError("IMAGE_INVALID", `${where}: index built for another image: ${why}`);
  if (artifact.subject?.digest !== image.digest) throw bad(`its subject is ${artifact.subject?.digest ?? "missing"}, the image is ${image.digest}`);
  const files = new Map<string, OciDescriptor>();
  const layersSeen = new Set<string>();
  for (const [i, d] of artifact.layers.entries()) {
    addTitled(files, d, i, where);
    if (isOurLayerType(d.mediaType)) continue; // one of our files: checked against manifest.json when it is read
    if (!image.layers.some((l) => l.digest === d.digest && l.size === d.size)) {
      throw bad(`its ${d.annotations?.[ANNOTATIONS.title]} is ${d.digest} (${d.size} bytes), not a layer of the image`);
    }
    layersSeen.add(d.digest);
  }
  const missing = image.layers.find((l) => !layersSeen.has(l.digest));
  if (missing) throw bad(`layer ${missing.digest} of the image is not in it`);
  if (files.get(MANIFEST_NAME)?.mediaType !== OCI_FORM_TYPES.manifest) {
    throw new EodError("IMAGE_INVALID", `${where} has no layer titled ${MANIFEST_NAME} of type ${OCI_FORM_TYPES.manifest}`);
  }
  return files;
}
