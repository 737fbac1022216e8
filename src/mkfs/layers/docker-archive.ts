// A `docker save` archive: an uncompressed tar holding manifest.json ([{Config, RepoTags, Layers}]), the
// config and one tar per layer (<id>/layer.tar, or blobs/sha256/<hex> since Docker 25). Its members may
// come in any order, so the archive is indexed first by walking its headers (seeking over bodies), then
// each layer is streamed from its byte range, checked against the config's diff_ids.
import fs from "node:fs";
import { EodError } from "../../errors.ts";
import { formatReference, parseReference } from "../../remote/registry/reference.ts";
import type { LayerInput } from "./layer-stream.ts";
import { diffIdsOf, layerFromRange, parseJson } from "./sources.ts";
import { BLOCK } from "./tar-header.ts";
import { TarHeaders } from "./tar-reader.ts";

interface Member {
  offset: number;
  size: number;
}

/** Members of an uncompressed tar file: normalised name ("./a/b" -> "a/b") -> body range. */
export function indexTar(file: string): Map<string, Member> {
  const members = new Map<string, Member>();
  const headers = new TarHeaders(file);
  const fd = fs.openSync(file, "r");
  try {
    const size = fs.fstatSync(fd).size;
    const block = Buffer.alloc(BLOCK);
    for (let pos = 0; ; ) {
      if (pos + BLOCK > size) throw new EodError("SOURCE_INVALID", `${file}: truncated tar (no end-of-archive block after ${pos} bytes)`);
      readExact(fd, block, pos);
      const c = headers.header(block, pos);
      if (c.kind === "eof") break;
      const bodySize = c.kind === "meta" ? c.size : c.bodySize;
      if (pos + BLOCK + bodySize > size) throw new EodError("SOURCE_INVALID", `${file}: truncated tar (a member at byte ${pos} runs past the end)`);
      if (c.kind === "meta") {
        const body = Buffer.alloc(c.size);
        readExact(fd, body, pos + BLOCK);
        headers.meta(c.type, body);
      } else if (c.entry.type === "file") {
        members.set(c.entry.path.toString().replace(/^(\.\/|\/)+/, ""), { offset: pos + BLOCK, size: bodySize });
      }
      pos += BLOCK + Math.ceil(bodySize / BLOCK) * BLOCK;
    }
  } finally {
    fs.closeSync(fd);
  }
  return members;
}

interface SaveManifest {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** The docker-save manifest.json of an indexed archive, or null when it is not such an archive. */
function saveManifest(file: string, members: Map<string, Member>): SaveManifest[] | null {
  const m = members.get("manifest.json");
  if (!m || m.size > 4 << 20) return null;
  let list: unknown;
  try {
    list = parseJson(readRange(file, m).toString("utf8"), `${file}: manifest.json`);
  } catch {
    return null;
  }
  const ok = Array.isArray(list) && list.length > 0 && list.every((e) =>
    typeof e?.Config === "string" && Array.isArray(e.Layers) && e.Layers.every((l: unknown) => typeof l === "string"));
  return ok ? (list as SaveManifest[]) : null;
}

/** Whether `file` is a `docker save` archive (a tar whose manifest.json names a config and layers). */
export function isDockerArchive(file: string): boolean {
  let members: Map<string, Member>;
  try {
    members = indexTar(file);
  } catch {
    return false; // not a readable plain tar: let the layer reader say what it is
  }
  return saveManifest(file, members) !== null;
}

/**
 * The layers of an image in a `docker save` archive, lowest first: the only one, or the one tagged `image`
 * (docker's normalisation: "alpine" is "docker.io/library/alpine:latest").
 */
export function layersOfDockerArchive(file: string, image?: string): LayerInput[] {
  const members = indexTar(file);
  const list = saveManifest(file, members);
  if (!list) throw new EodError("SOURCE_INVALID", `${file}: not a docker save archive (no usable manifest.json)`);
  const tags = () => list.map((e) => e.RepoTags?.join(" ") || `${e.Config} (untagged)`).join(", ");
  let chosen = list;
  if (image !== undefined) {
    const norm = (n: string) => { try { return formatReference(parseReference(n)); } catch { return n; } };
    chosen = list.filter((e) => (e.RepoTags ?? []).some((t) => t === image || norm(t) === norm(image)));
    if (!chosen.length) throw new EodError("SOURCE_UNSUPPORTED", `${file} has no image tagged ${JSON.stringify(image)} (it has ${tags()})`);
  }
  if (chosen.length !== 1) {
    throw new EodError("SOURCE_UNSUPPORTED", `${file} holds ${list.length} images (${tags()}): choose one with --image <repo:tag>`);
  }
  const img = chosen[0];
  const member = (name: string, what: string): Member => {
    const m = members.get(name.replace(/^(\.\/|\/)+/, ""));
    if (!m) throw new EodError("SOURCE_INVALID", `${file}: ${what} ${JSON.stringify(name)} is not in the archive`);
    return m;
  };
  const config = parseJson(readRange(file, member(img.Config, "config")).toString("utf8"), `${file}: ${img.Config}`);
  const diffIds = diffIdsOf(config, img.Layers.length, `${file}: ${img.Config}`);
  return img.Layers.map((name, i) => {
    const m = member(name, "layer");
    const hex = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(name)?.[1];
    return layerFromRange(file, m.offset, m.size, `layer ${i + 1} (${name})`, { digest: hex ? `sha256:${hex}` : undefined, diffId: diffIds[i] });
  });
}

function readRange(file: string, m: Member): Buffer {
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.alloc(m.size);
    readExact(fd, buf, m.offset);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

function readExact(fd: number, buf: Buffer, pos: number): void {
  for (let done = 0; done < buf.length; ) {
    const n = fs.readSync(fd, buf, done, buf.length - done, pos + done);
    if (n === 0) throw new EodError("SOURCE_INVALID", `truncated tar: ends inside a member at byte ${pos + done}`);
    done += n;
  }
}
