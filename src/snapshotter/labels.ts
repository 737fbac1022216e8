// The snapshot labels the snapshotter reads. containerd's unpacker passes `containerd.io/snapshot.ref` (the
// layer's chain ID) and every layer annotation starting with `containerd.io/snapshot/`; the CRI plugin adds the
// `cri.*` ones when `disable_snapshot_annotations = false`.
import { EOD_MANIFEST_ANNOTATION } from "../image/oci-form.ts";

/** The chain ID a Prepare of an image layer commits to (containerd's labelSnapshotRef). */
export const SNAPSHOT_REF = "containerd.io/snapshot.ref";
/** On each layer of an image converted by eod: "sha256:<hex>" of the image's manifest.json. */
export const EOD_MANIFEST = EOD_MANIFEST_ANNOTATION;
/** The image reference the CRI plugin pulls (`host/repo:tag`). */
export const CRI_IMAGE_REF = "containerd.io/snapshot/cri.image-ref";
/** The digest of the registry manifest the CRI plugin resolved (pins the mount to it). */
export const CRI_MANIFEST_DIGEST = "containerd.io/snapshot/cri.manifest-digest";
/** The digest of the layer being unpacked. */
export const CRI_LAYER_DIGEST = "containerd.io/snapshot/cri.layer-digest";
/**
 * The digests of this layer and of every layer above it, comma-separated (the CRI plugin cuts the list to fit a
 * label, keeping the first): one digest means the image's top layer.
 */
export const CRI_IMAGE_LAYERS = "containerd.io/snapshot/cri.image-layers";

/** Labels as containerd stores them: an empty value removes the label. */
export function withoutEmpty(labels: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).filter(([, v]) => v !== ""));
}
