// An ordinary image as a third-party tool makes it, for the seek-index tests (issue 14): the layers of
// oci-image.ts (whiteouts, an opaque directory, hard links, xattrs, PAX and GNU long names), each compressed by
// GNU gzip (not node:zlib: another deflate encoder than the one our tests use elsewhere), in an OCI image
// layout; and that layout pushed to a registry byte for byte (blobs, config, manifest as written), so the
// image's manifest digest in the registry is the layout's.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import type { RegistryClient } from "../../src/remote/registry/index.ts";
import { testLayers } from "./oci-image.ts";
import { tarArchive, type TarSpec } from "./tar-layer.ts";

const CONFIG = "application/vnd.oci.image.config.v1+json";
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";

export interface GzipLayout {
  /** The OCI layout directory. */
  dir: string;
  /** The layers' uncompressed tars written as files (for the reference extraction), lowest first. */
  tarFiles: string[];
  /** sha256:<hex> of each stored (gzip) layer, lowest first; and of each tar (the diff_ids). */
  layerDigests: string[];
  diffIds: string[];
  /** Stored bytes of each layer. */
  layerSizes: number[];
  manifestDigest: string;
  manifestBytes: Buffer;
}

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

function gzipFile(file: string): Buffer {
  const r = spawnSync("gzip", ["-n", "-6", "-c", file], { maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`gzip ${file} failed: ${r.stderr?.toString() ?? r.error}`);
  return r.stdout;
}

function writeBlob(dir: string, bytes: Buffer): { digest: string; size: number } {
  const digest = sha(bytes);
  fs.mkdirSync(path.join(dir, "blobs", "sha256"), { recursive: true });
  fs.writeFileSync(path.join(dir, "blobs", "sha256", digest.slice(7)), bytes);
  return { digest, size: bytes.length };
}

/** How the layers are stored: GNU gzip, as they are, one zstd frame, or zstd frames of 64 KiB of tar each (as zstd --adapt/seekable writers cut them). */
export type LayerStore = "gzip" | "none" | "zstd" | "zstd-frames";
const MEDIA_TYPES: Record<LayerStore, string> = {
  gzip: "application/vnd.oci.image.layer.v1.tar+gzip", none: "application/vnd.oci.image.layer.v1.tar",
  zstd: "application/vnd.oci.image.layer.v1.tar+zstd", "zstd-frames": "application/vnd.oci.image.layer.v1.tar+zstd",
};

function store(file: string, tar: Buffer, how: LayerStore): Buffer {
  if (how === "gzip") return gzipFile(file);
  if (how === "zstd") return zlib.zstdCompressSync(tar);
  if (how === "zstd-frames") {
    const frames: Buffer[] = [];
    for (let at = 0; at < tar.length; at += 64 << 10) frames.push(zlib.zstdCompressSync(tar.subarray(at, at + (64 << 10))));
    return Buffer.concat(frames);
  }
  return tar;
}

/**
 * Writes `<work>/<name>` (the layout) and `<work>/<name>-tars/l<i>.tar`; `specs` default to oci-image.ts's
 * layers; `compress` says how the layers are stored (default GNU gzip).
 */
export function writeGzipLayout(work: string, name: string, specs: TarSpec[][] = testLayers(), opts: { compress?: LayerStore } = {}): GzipLayout {
  const how = opts.compress ?? "gzip";
  const dir = path.join(work, name);
  const tarsDir = path.join(work, `${name}-tars`);
  fs.mkdirSync(dir);
  fs.mkdirSync(tarsDir);
  fs.writeFileSync(path.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const tarFiles: string[] = [];
  const layers = specs.map((s, i) => {
    const tar = tarArchive(s);
    const file = path.join(tarsDir, `l${i + 1}.tar`);
    fs.writeFileSync(file, tar);
    tarFiles.push(file);
    return { tar, stored: store(file, tar, how) };
  });
  const diffIds = layers.map((l) => sha(l.tar));
  const config = Buffer.from(JSON.stringify({
    architecture: "amd64", os: "linux", config: { Env: ["PATH=/usr/bin"] },
    rootfs: { type: "layers", diff_ids: diffIds },
    history: layers.map(() => ({ created_by: "gzip -n (erofs-ondemand test)" })),
  }));
  const descs = layers.map((l) => ({ mediaType: MEDIA_TYPES[how], ...writeBlob(dir, l.stored) }));
  const manifestBytes = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MANIFEST, config: { mediaType: CONFIG, ...writeBlob(dir, config) }, layers: descs,
  }));
  const m = writeBlob(dir, manifestBytes);
  fs.writeFileSync(path.join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MANIFEST, ...m, platform: { os: "linux", architecture: "amd64" } }] }));
  return {
    dir, tarFiles, diffIds, layerDigests: descs.map((d) => d.digest), layerSizes: descs.map((d) => d.size),
    manifestDigest: m.digest, manifestBytes,
  };
}

/** Pushes the layout's blobs and manifest unchanged (as `skopeo copy oci:… docker://…` would) under `tag`. */
export async function pushLayoutAsIs(client: RegistryClient, repo: { registry: string; repository: string }, tag: string, layout: GzipLayout): Promise<string> {
  const m = JSON.parse(layout.manifestBytes.toString("utf8")) as { config: { digest: string; mediaType: string }; layers: Array<{ digest: string; mediaType: string }> };
  for (const d of [m.config, ...m.layers]) {
    const bytes = fs.readFileSync(path.join(layout.dir, "blobs", "sha256", d.digest.slice(7)));
    await client.pushBlob(repo, bytes, { digest: d.digest, mediaType: d.mediaType });
  }
  const pushed = await client.pushManifest(repo, tag, layout.manifestBytes, MANIFEST);
  if (pushed.digest !== layout.manifestDigest) throw new Error(`pushed manifest digest ${pushed.digest} != the layout's ${layout.manifestDigest}`);
  return pushed.digest;
}

/** The layout as a `docker save` archive (Docker 25+: the OCI layout plus docker's manifest.json), by GNU tar. */
export function dockerSaveOf(layout: GzipLayout, file: string): void {
  const m = JSON.parse(layout.manifestBytes.toString("utf8")) as { config: { digest: string }; layers: Array<{ digest: string }> };
  const blob = (d: string) => `blobs/sha256/${d.slice("sha256:".length)}`;
  fs.writeFileSync(path.join(layout.dir, "manifest.json"), JSON.stringify([{ Config: blob(m.config.digest), RepoTags: ["test:v1"], Layers: m.layers.map((l) => blob(l.digest)) }]));
  try {
    const r = spawnSync("tar", ["-cf", file, "-C", layout.dir, "."]);
    if (r.status !== 0) throw new Error(`tar -cf ${file} failed: ${r.stderr?.toString() ?? r.error}`);
  } finally {
    fs.rmSync(path.join(layout.dir, "manifest.json"));
  }
}
