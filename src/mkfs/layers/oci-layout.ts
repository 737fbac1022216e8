// An OCI image layout directory (image-spec image-layout.md): oci-layout, index.json, blobs/<alg>/<hex>.
// index.json leads (possibly through an image index) to one image manifest: the one named by --image (its
// ref.name annotation) when several images are listed, for the host platform or --platform; its config
// gives the diff_ids. Manifests and config are read whole (they are small) and checked against
// their descriptors; layers are checked while they stream (layer-stream.ts).
import fs from "node:fs";
import path from "node:path";
import { EodError } from "../../errors.ts";
import { formatPlatform, hostPlatform, isAttestation, parsePlatform, selectPlatform, type Platform } from "../../remote/registry/manifest.ts";
import { formatReference, parseReference } from "../../remote/registry/reference.ts";
import type { LayerInput } from "./layer-stream.ts";
import { diffIdsOf, joinInside, parseJson, readJson } from "./sources.ts";
import { sha256Digest } from "../../util/sha256.ts";

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

/** Which image of a layout holding several: by name (`org.opencontainers.image.ref.name`), by platform. */
export interface ImageChoice {
  /** A ref name ("v1", or a full reference as containerd writes it); docker's normalisation applies. */
  image?: string;
  /** os/arch[/variant]; default the host's. */
  platform?: string;
}

const INDEX_TYPES = new Set(["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"]);
const MAX_JSON = 4 << 20;
const REF_NAME = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME = "io.containerd.image.name";

/** Whether `dir` looks like an OCI image layout (it has the oci-layout marker file). */
export function isOciLayout(dir: string): boolean {
  return fs.existsSync(path.join(dir, "oci-layout")) && fs.existsSync(path.join(dir, "index.json"));
}

/** The layers of the image in an OCI layout directory, lowest first. */
export function layersOfOciLayout(dir: string, choice: ImageChoice = {}): LayerInput[] {
  const what = `OCI layout ${dir}`;
  const want = choice.platform ? parsePlatform(choice.platform) : hostPlatform();
  const layout = readJson(path.join(dir, "oci-layout"), `${what}: oci-layout`) as { imageLayoutVersion?: unknown };
  if (typeof layout?.imageLayoutVersion !== "string") throw new EodError("SOURCE_INVALID", `${what}: oci-layout has no imageLayoutVersion`);
  const index = readJson(path.join(dir, "index.json"), `${what}: index.json`);
  let desc = pick(byName(manifestsOf(index, `${what}: index.json`), choice.image, `${what}: index.json`), `${what}: index.json`, want);
  for (let depth = 0; INDEX_TYPES.has(desc.mediaType ?? ""); depth++) {
    if (depth > 4) throw new EodError("SOURCE_INVALID", `${what}: image indexes nested too deep`);
    const sub = parseJson(readBlob(dir, desc, what).toString("utf8"), `${what}: index ${desc.digest}`);
    desc = pick(manifestsOf(sub, `${what}: index ${desc.digest}`), `${what}: index ${desc.digest}`, want);
  }
  const manifest = parseJson(readBlob(dir, desc, what).toString("utf8"), `${what}: manifest ${desc.digest}`) as { config?: unknown; layers?: unknown };
  const config = checkDescriptor(manifest?.config, `${what}: manifest config`);
  if (!Array.isArray(manifest.layers)) throw new EodError("SOURCE_INVALID", `${what}: manifest ${desc.digest} has no layers`);
  const layers = manifest.layers.map((l, i) => checkDescriptor(l, `${what}: layers[${i}]`));
  const diffIds = diffIdsOf(parseJson(readBlob(dir, config, what).toString("utf8"), `${what}: config`), layers.length, `${what}: config ${config.digest}`);
  return layers.map((l, i) => {
    const file = blobPath(dir, l, what);
    return {
      name: `layer ${i + 1} (${l.digest.slice(0, 19)}…)`, digest: l.digest, size: l.size, diffId: diffIds[i],
      open: () => fs.createReadStream(file),
    };
  });
}

function manifestsOf(index: unknown, what: string): Descriptor[] {
  const list = (index as { manifests?: unknown })?.manifests;
  if (!Array.isArray(list) || list.length === 0) throw new EodError("SOURCE_INVALID", `${what} lists no manifests`);
  return list.map((d, i) => checkDescriptor(d, `${what}: manifests[${i}]`));
}

const nameOf = (d: Descriptor) => d.annotations?.[REF_NAME] ?? d.annotations?.[CONTAINERD_NAME];
const label = (d: Descriptor) => nameOf(d) ?? (d.platform ? formatPlatform(d.platform) : d.digest);

/** The entries named `image` (ref name or containerd's image name; "alpine" is "docker.io/library/alpine:latest"). */
function byName(list: Descriptor[], image: string | undefined, what: string): Descriptor[] {
  if (image === undefined) return list;
  const norm = (n: string) => { try { return formatReference(parseReference(n)); } catch { return n; } };
  const named = list.filter((d) => [d.annotations?.[REF_NAME], d.annotations?.[CONTAINERD_NAME]].some((n) => n !== undefined && (n === image || norm(n) === norm(image))));
  if (named.length) return named;
  const names = [...new Set(list.map(nameOf).filter((n) => n !== undefined))];
  throw new EodError("SOURCE_UNSUPPORTED", `${what} has no image named ${JSON.stringify(image)} (${names.length ? `it has ${names.join(", ")}` : "its images have no names"})`);
}

/**
 * The only entry, or the one for `want` (variants as in registry indexes; attestations skipped; an entry
 * without a platform fits any), else an error listing the choices.
 */
function pick(list: Descriptor[], what: string, want: Platform): Descriptor {
  const typed = list.map((d) => ({ ...d, mediaType: d.mediaType ?? "application/vnd.oci.image.manifest.v1+json" }));
  const usable = typed.filter((d) => !isAttestation(d));
  if (usable.length === 1) return usable[0];
  const names = new Set(usable.map(nameOf));
  if (names.size <= 1) { // one image (or none named): choose its platform; two without one are ambiguous
    const d = selectPlatform({ schemaVersion: 2, manifests: usable }, want);
    if (d && (d.platform || usable.filter((u) => !u.platform).length === 1)) return d;
  }
  const why = names.size > 1 ? "choose one with --image <name>" : `none for ${formatPlatform(want)}; choose one with --platform`;
  throw new EodError("SOURCE_UNSUPPORTED", `${what} lists ${usable.length} images (${usable.map(label).join(", ")}): ${why}`);
}

function checkDescriptor(d: unknown, what: string): Descriptor {
  const o = d as Descriptor;
  if (typeof o !== "object" || o === null || typeof o.digest !== "string" || !Number.isSafeInteger(o.size) || o.size < 0) {
    throw new EodError("SOURCE_INVALID", `${what} is not a descriptor with a digest and a size`);
  }
  if (!/^sha256:[0-9a-f]{64}$/.test(o.digest)) throw new EodError("SOURCE_UNSUPPORTED", `${what}: digest ${JSON.stringify(o.digest)} is not sha256:<64 hex>`);
  return o;
}

function blobPath(dir: string, d: Descriptor, what: string): string {
  return joinInside(dir, `blobs/sha256/${d.digest.slice("sha256:".length)}`, what);
}

function readBlob(dir: string, d: Descriptor, what: string): Buffer {
  if (d.size > MAX_JSON) throw new EodError("SOURCE_INVALID", `${what}: ${d.digest} is ${d.size} bytes, too big for a manifest or config`);
  const file = blobPath(dir, d, what);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new EodError("SOURCE_UNREADABLE", `Cannot read ${what}: blob ${d.digest}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
  const got = sha256Digest(bytes);
  if (bytes.length !== d.size || got !== d.digest) {
    throw new EodError("DIGEST_MISMATCH", `${what}: blob ${d.digest} holds ${bytes.length} bytes with sha256 ${got} (descriptor: ${d.size} bytes)`);
  }
  return bytes;
}
