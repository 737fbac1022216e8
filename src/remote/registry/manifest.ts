// OCI and Docker v2 manifests and indexes: media types, validation of what a registry sent (a manifest is
// untrusted input until checked), and choosing the manifest of one platform from an index.
import { EodError } from "../../errors.ts";
import { checkDigest } from "./digest.ts";

export const MEDIA_TYPES = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayerTar: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerLayerForeign: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  ociLayerNondistributableGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  dockerManifestV1: "application/vnd.docker.distribution.manifest.v1+json",
  dockerManifestV1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
} as const;

/** Annotation buildx puts on the attestation manifests (SBOM, provenance) of an index. */
export const REFERENCE_TYPE_ANNOTATION = "vnd.docker.reference.type";

const INDEX_TYPES = new Set<string>([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList]);
const MANIFEST_TYPES = new Set<string>([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);
/** The Accept header for manifest GETs: every kind we can read. */
export const MANIFEST_ACCEPT = [...MANIFEST_TYPES, ...INDEX_TYPES].join(", ");
/** Manifests bigger than this are refused (containerd uses the same 4 MiB limit). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  "os.version"?: string;
  "os.features"?: string[];
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export function isIndexType(mediaType: string): boolean {
  return INDEX_TYPES.has(mediaType);
}

export function isManifestType(mediaType: string): boolean {
  return MANIFEST_TYPES.has(mediaType);
}

/**
 * Parses manifest bytes. The media type is the body's `mediaType` when it has one, else the Content-Type
 * the registry sent, else guessed from the shape (`manifests` → index). IMAGE_INVALID for anything else.
 */
export function parseManifest(bytes: Uint8Array, contentType: string | undefined, what: string): { mediaType: string; manifest: ImageManifest | ImageIndex } {
  const bad = (why: string) => new EodError("IMAGE_INVALID", `${what}: ${why}`);
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw bad(`not JSON (${(err as Error).message})`);
  }
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) throw bad("not a JSON object");
  const header = contentType?.split(";")[0].trim();
  if (doc.schemaVersion === 1 || header?.startsWith("application/vnd.docker.distribution.manifest.v1")) {
    // Schema 1 (signed JWS, v1 image JSON per layer): deprecated since Docker 20.10, current docker refuses it too.
    throw bad("a Docker schema 1 manifest (deprecated, not supported): push the image again with a current docker, or convert it with `skopeo copy --format v2s2`");
  }
  if (doc.schemaVersion !== 2) throw bad(`schemaVersion ${JSON.stringify(doc.schemaVersion)} is not supported (only 2)`);
  const declared = typeof doc.mediaType === "string" ? doc.mediaType : undefined;
  const mediaType = declared ?? (header && (isIndexType(header) || isManifestType(header)) ? header : Array.isArray(doc.manifests) ? MEDIA_TYPES.ociIndex : MEDIA_TYPES.ociManifest);
  if (isIndexType(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw bad("index has no manifests list");
    doc.manifests.forEach((d, i) => checkDescriptor(d, `${what}: manifests[${i}]`));
  } else if (isManifestType(mediaType)) {
    checkDescriptor(doc.config, `${what}: config`);
    if (!Array.isArray(doc.layers)) throw bad("manifest has no layers list");
    doc.layers.forEach((d, i) => checkDescriptor(d, `${what}: layers[${i}]`));
  } else {
    throw bad(`media type ${mediaType} is not a manifest or index we can read`);
  }
  return { mediaType, manifest: doc as unknown as ImageManifest | ImageIndex };
}

/** IMAGE_INVALID unless `d` has a media type, a valid digest and a non-negative integer size. */
export function checkDescriptor(d: unknown, what: string): asserts d is Descriptor {
  const o = d as Partial<Descriptor> | null;
  if (!o || typeof o !== "object") throw new EodError("IMAGE_INVALID", `${what}: not a descriptor`);
  if (typeof o.mediaType !== "string" || o.mediaType === "") throw new EodError("IMAGE_INVALID", `${what}: no mediaType`);
  try {
    checkDigest(o.digest as string);
  } catch (err) {
    throw new EodError("IMAGE_INVALID", `${what}: ${(err as Error).message}`);
  }
  if (!Number.isSafeInteger(o.size) || (o.size as number) < 0) throw new EodError("IMAGE_INVALID", `${what}: size ${JSON.stringify(o.size)} is not a byte count`);
}

// Node's process.arch → GOARCH, the names OCI platforms use.
const GOARCH: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64", loong64: "loong64", mips: "mips", mipsel: "mipsle" };

/** The platform of this machine ("linux/amd64" here), the default of `--platform`. */
export function hostPlatform(): Platform {
  const architecture = GOARCH[process.arch] ?? process.arch;
  return { os: process.platform === "win32" ? "windows" : process.platform, architecture, ...(architecture === "arm64" ? { variant: "v8" } : {}) };
}

/** Parses `os/arch[/variant]` ("linux/arm64/v8"); a bad one is EodError("USAGE"). */
export function parsePlatform(text: string): Platform {
  const parts = String(text).split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) {
    throw new EodError("USAGE", `Invalid platform ${JSON.stringify(text)}: expected os/arch[/variant], e.g. linux/amd64`);
  }
  return { os: parts[0], architecture: parts[1], ...(parts[2] ? { variant: parts[2] } : {}) };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

/** arm64 without a variant means v8, as containerd normalises it. */
function variantOf(p: Platform): string {
  return p.variant ?? (p.architecture === "arm64" ? "v8" : "");
}

/** A layer that registries need not serve (Docker "foreign", OCI "nondistributable"), or one with `urls`. */
export function isNonDistributable(d: Descriptor): boolean {
  return /\.(?:foreign|nondistributable)\./.test(d.mediaType) || (Array.isArray(d.urls) && d.urls.length > 0);
}

/** An attestation (SBOM, provenance) that buildx lists in an index next to the images: never an image. */
export function isAttestation(d: Descriptor): boolean {
  return d.annotations?.[REFERENCE_TYPE_ANNOTATION] !== undefined || (d.platform?.os === "unknown" && d.platform?.architecture === "unknown");
}

/**
 * The index entry for `want`: same os and architecture, and the same variant when the wanted platform has
 * one (so "linux/arm/v7" does not take a v6 image, while "linux/amd64" takes any amd64 entry; the first
 * one without a variant preferred). Entries that are not manifests or indexes (in-toto…) and attestations
 * are skipped. An entry without a platform matches any (as in containerd), after those that name one.
 */
export function selectPlatform(index: ImageIndex, want: Platform): Descriptor | undefined {
  const usable = index.manifests.filter((d) => (isManifestType(d.mediaType) || isIndexType(d.mediaType)) && !isAttestation(d));
  const candidates = usable.filter((d) =>
    d.platform && d.platform.os === want.os && d.platform.architecture === want.architecture &&
    (want.variant === undefined || variantOf(d.platform) === variantOf(want)));
  return candidates.find((d) => !d.platform!.variant) ?? candidates[0] ?? usable.find((d) => !d.platform);
}

/** The platforms an index offers, for messages ("linux/amd64, linux/arm64/v8"); attestations left out. */
export function indexPlatforms(index: ImageIndex): string[] {
  return index.manifests.filter((d) => d.platform && !isAttestation(d)).map((d) => formatPlatform(d.platform!));
}
