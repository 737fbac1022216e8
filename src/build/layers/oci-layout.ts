// An OCI image layout directory (image-spec image-layout.md): oci-layout, index.json, blobs/<alg>/<hex>.
// index.json leads (possibly through an image index) to one image manifest for the host platform; its
// config gives the diff_ids. Manifests and config are read whole (they are small) and checked against
// their descriptors; layers are checked while they stream (layer-stream.ts).
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { EodError } from "../../errors.ts";
import type { LayerInput } from "./layer-stream.ts";
import { diffIdsOf, joinInside, parseJson, readJson } from "./sources.ts";

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

const INDEX_TYPES = new Set(["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"]);
const MAX_JSON = 4 << 20;

/** Whether `dir` looks like an OCI image layout (it has the oci-layout marker file). */
export function isOciLayout(dir: string): boolean {
  return fs.existsSync(path.join(dir, "oci-layout")) && fs.existsSync(path.join(dir, "index.json"));
}

/** The docker/OCI name of the host platform, e.g. linux/amd64. */
export function hostPlatform(): { os: string; architecture: string } {
  const arch: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };
  return { os: "linux", architecture: arch[process.arch] ?? process.arch };
}

/** The layers of the image in an OCI layout directory, lowest first. */
export function layersOfOciLayout(dir: string): LayerInput[] {
  const what = `OCI layout ${dir}`;
  const layout = readJson(path.join(dir, "oci-layout"), `${what}: oci-layout`) as { imageLayoutVersion?: unknown };
  if (typeof layout?.imageLayoutVersion !== "string") throw new EodError("SOURCE_INVALID", `${what}: oci-layout has no imageLayoutVersion`);
  const index = readJson(path.join(dir, "index.json"), `${what}: index.json`);
  let desc = pick(manifestsOf(index, `${what}: index.json`), `${what}: index.json`);
  for (let depth = 0; INDEX_TYPES.has(desc.mediaType ?? ""); depth++) {
    if (depth > 4) throw new EodError("SOURCE_INVALID", `${what}: image indexes nested too deep`);
    const sub = parseJson(readBlob(dir, desc, what).toString("utf8"), `${what}: index ${desc.digest}`);
    desc = pick(manifestsOf(sub, `${what}: index ${desc.digest}`), `${what}: index ${desc.digest}`);
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

/** The only manifest, or the only one for the host platform. */
function pick(list: Descriptor[], what: string): Descriptor {
  if (list.length === 1) return list[0];
  const host = hostPlatform();
  const mine = list.filter((d) => d.platform?.os === host.os && d.platform?.architecture === host.architecture);
  if (mine.length === 1) return mine[0];
  const names = list.map((d) => d.annotations?.["org.opencontainers.image.ref.name"] ?? (d.platform ? `${d.platform.os}/${d.platform.architecture}` : d.digest));
  throw new EodError("SOURCE_UNSUPPORTED", `${what} lists ${list.length} manifests (${names.join(", ")}) and ${mine.length ? "several" : "none"} for ${host.os}/${host.architecture}: cannot choose one`);
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
  const got = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  if (bytes.length !== d.size || got !== d.digest) {
    throw new EodError("DIGEST_MISMATCH", `${what}: blob ${d.digest} holds ${bytes.length} bytes with sha256 ${got} (descriptor: ${d.size} bytes)`);
  }
  return bytes;
}
