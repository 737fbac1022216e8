// The image an ordinary layer's Prepare may belong to lazily, from the labels the CRI plugin passes: the image
// reference, the manifest digest it resolved (the image's identity, and the subject an eod index artifact
// refers to) and the layers from this one up (one: the top layer). Without them the layer is unpacked as before.
import { formatReference, parseReference } from "../remote/registry/reference.ts";
import type { LazyImage } from "./image-mounts.ts";
import { CRI_IMAGE_LAYERS, CRI_IMAGE_REF, CRI_MANIFEST_DIGEST } from "./labels.ts";

const MANIFEST_DIGEST = /^sha256:[0-9a-f]{64}$/;

export interface IndexedCandidate extends LazyImage {
  indexed: true;
  /** The image's top layer (its lazy mount is this layer's chain). */
  top: boolean;
}

/**
 * The image `labels` name, pinned to its platform manifest (`host/repo[:tag]@<cri.manifest-digest>`: an
 * image-ref by an index's digest is replaced, the index artifact refers to the platform manifest); null when a
 * label is missing or malformed.
 */
export function indexedImageOf(labels: Readonly<Record<string, string>>): IndexedCandidate | null {
  const imageRef = labels[CRI_IMAGE_REF];
  const manifest = labels[CRI_MANIFEST_DIGEST];
  const layers = labels[CRI_IMAGE_LAYERS];
  if (!imageRef || !manifest || !MANIFEST_DIGEST.test(manifest) || !layers) return null;
  let ref: string;
  try {
    ref = formatReference({ ...parseReference(imageRef), digest: manifest });
  } catch {
    return null; // not a reference eod can resolve: containerd unpacks the layer
  }
  return { manifest, ref, indexed: true, top: layers.split(",").length === 1 };
}
