// `eod convert` of images as docker and buildx push them, against the real registry: a Docker manifest
// list (linux/amd64, linux/arm64/v8 and a buildx attestation manifest, unknown/unknown) of Docker schema 2
// manifests whose layers are rootfs.diff.tar.gzip, an "empty" layer (docker's gzipped 1024 zero bytes),
// rootfs.diff.tar.zstd and a plain rootfs.diff.tar, and a config without `history`; references by tag,
// by digest and by tag+digest; a non-distributable (foreign) layer with `urls`.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { eodAsync } from "../helpers/lazy.ts";
import { startRegistry, type RunningRegistry } from "../helpers/registry.ts";
import { tarArchive, type TarSpec } from "../helpers/tar-layer.ts";
import { MEDIA_TYPES, RegistryClient, staticCredentials, type Repo } from "../../src/remote/registry/index.ts";

const DOCKER_LAYER = {
  gzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  zstd: "application/vnd.docker.image.rootfs.diff.tar.zstd",
  tar: "application/vnd.docker.image.rootfs.diff.tar",
};
const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

let reg: RunningRegistry;
let client: RegistryClient;
let work = "";
let repo: Repo;
const noCreds = () => ({ DOCKER_CONFIG: path.join(work, "no-docker-config") });
/** Per platform: the manifest digest and the layer files as stored (for a local build to compare with). */
const pushed: Record<string, { digest: string; files: string[] }> = {};
let listDigest = "";

async function pushDockerImage(arch: string, layers: Array<{ tar: Buffer; stored: Buffer; mediaType: string }>): Promise<{ mediaType: string; digest: string; size: number }> {
  const descs = [];
  for (const l of layers) {
    const d = await client.pushBlob(repo, l.stored, { mediaType: l.mediaType });
    descs.push({ mediaType: l.mediaType, size: d.size, digest: d.digest });
  }
  // No history (tools other than docker build leave it out): only rootfs.diff_ids matters.
  const config = Buffer.from(JSON.stringify({ architecture: arch, os: "linux", config: { Cmd: ["/bin/sh"] }, rootfs: { type: "layers", diff_ids: layers.map((l) => sha(l.tar)) } }));
  const c = await client.pushBlob(repo, config, { mediaType: MEDIA_TYPES.dockerConfig });
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MEDIA_TYPES.dockerManifest,
    config: { mediaType: MEDIA_TYPES.dockerConfig, size: c.size, digest: c.digest }, layers: descs,
  }, null, 3)); // docker's indentation: the digest is of these bytes, whatever they look like
  const m = await client.pushManifest(repo, sha(manifest), manifest, MEDIA_TYPES.dockerManifest);
  return { mediaType: MEDIA_TYPES.dockerManifest, digest: m.digest, size: m.size };
}

function layerFiles(name: string, layers: Array<{ stored: Buffer }>): string[] {
  return layers.map((l, i) => {
    const f = path.join(work, `${name}-${i}.layer`);
    fs.writeFileSync(f, l.stored);
    return f;
  });
}

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-convert-docker-"));
  reg = await startRegistry({ allowLayerUrls: true });
  client = new RegistryClient({ credentials: staticCredentials({}) });
  repo = { registry: reg.host, repository: "eod/docker" };
  const file = (p: string, data: Buffer | string): TarSpec => ({ path: p, data: Buffer.from(data) });
  const base = tarArchive([{ path: "etc/", type: "dir" }, file("etc/os-release", "ID=dockerish\n"), { path: "bin/", type: "dir" }, file("bin/app", randomBytes(300_000))]);
  const empty = Buffer.alloc(1024); // what docker stores for a layer with no change
  const zst = tarArchive([{ path: "srv/", type: "dir" }, file("srv/data", randomBytes(100_000))]);
  const plain = tarArchive([file("etc/.wh.os-release", ""), file("marker", "amd64\n")]);
  const amd = [
    { tar: base, stored: zlib.gzipSync(base), mediaType: DOCKER_LAYER.gzip },
    { tar: empty, stored: zlib.gzipSync(empty), mediaType: DOCKER_LAYER.gzip },
    { tar: zst, stored: zlib.zstdCompressSync(zst), mediaType: DOCKER_LAYER.zstd },
    { tar: plain, stored: plain, mediaType: DOCKER_LAYER.tar },
  ];
  const armTar = tarArchive([file("marker", "arm64\n")]);
  const arm = [amd[0], { tar: armTar, stored: zlib.gzipSync(armTar), mediaType: DOCKER_LAYER.gzip }];
  const amdDesc = await pushDockerImage("amd64", amd);
  const armDesc = await pushDockerImage("arm64", arm);
  pushed["linux/amd64"] = { digest: amdDesc.digest, files: layerFiles("amd64", amd) };
  pushed["linux/arm64/v8"] = { digest: armDesc.digest, files: layerFiles("arm64", arm) };

  // buildx's attestation manifest: an OCI manifest of in-toto layers, listed as unknown/unknown.
  const statement = Buffer.from(JSON.stringify({ _type: "https://in-toto.io/Statement/v0.1" }));
  const st = await client.pushBlob(repo, statement, { mediaType: "application/vnd.in-toto+json" });
  const attCfg = await client.pushBlob(repo, Buffer.from("{}"), { mediaType: MEDIA_TYPES.ociConfig });
  const att = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: MEDIA_TYPES.ociConfig, digest: attCfg.digest, size: attCfg.size },
    layers: [{ mediaType: "application/vnd.in-toto+json", digest: st.digest, size: st.size, annotations: { "in-toto.io/predicate-type": "https://spdx.dev/Document" } }],
  }));
  const attDesc = await client.pushManifest(repo, sha(att), att, MEDIA_TYPES.ociManifest);
  const list = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MEDIA_TYPES.dockerManifestList,
    manifests: [
      { ...attDesc, platform: { architecture: "unknown", os: "unknown" }, annotations: { "vnd.docker.reference.digest": amdDesc.digest, "vnd.docker.reference.type": "attestation-manifest" } },
      { ...amdDesc, platform: { architecture: "amd64", os: "linux" } },
      { ...armDesc, platform: { architecture: "arm64", os: "linux", variant: "v8" } },
    ],
  }));
  listDigest = (await client.pushManifest(repo, "v1", list, MEDIA_TYPES.dockerManifestList)).digest;
});

after(async () => {
  await client?.close();
  await reg?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** Converts `src` and checks the result is what `eod build` makes of the platform's layer files. */
async function convertAndCompare(src: string, platform: string, extra: string[] = []): Promise<void> {
  const out = path.join(work, `conv-${Math.random().toString(36).slice(2)}`);
  const r = await eodAsync(["convert", src, `${reg.host}/eod/docker-eod:${path.basename(out)}`, "--json", "-o", out, ...extra], noCreds());
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.source.digest, pushed[platform].digest, src);
  const built = path.join(work, `built-${path.basename(out)}`);
  const b = await eodAsync(["build", ...pushed[platform].files, "-o", built]);
  assert.equal(b.status, 0, b.stderr);
  assert.deepEqual(fs.readFileSync(path.join(out, "manifest.json")), fs.readFileSync(path.join(built, "manifest.json")), `${src}: the same image as a local build`);
}

test("a Docker manifest list: the host's platform past the attestation; schema 2 layers gzip, empty, zstd, plain tar", { timeout: 120_000 }, async (t) => {
  if (process.arch !== "x64") t.skip("the default platform is the host's");
  await convertAndCompare(`${reg.host}/eod/docker:v1`, "linux/amd64");
});

test("--platform linux/arm64/v8 and linux/arm64 choose the arm64 entry; by digest and by tag+digest", { timeout: 120_000 }, async () => {
  await convertAndCompare(`${reg.host}/eod/docker:v1`, "linux/arm64/v8", ["--platform", "linux/arm64/v8"]);
  await convertAndCompare(`${reg.host}/eod/docker:v1@${listDigest}`, "linux/arm64/v8", ["--platform", "linux/arm64"]);
  await convertAndCompare(`${reg.host}/eod/docker@${pushed["linux/amd64"].digest}`, "linux/amd64", ["--platform", "linux/arm64"]); // a manifest: no choice
  const r = await eodAsync(["convert", `${reg.host}/eod/docker:v1`, `${reg.host}/eod/docker-eod:x`, "--platform", "linux/arm/v7"], noCreds());
  assert.equal(r.status, 1);
  assert.match(r.stderr, /eod\/docker:v1 has no image for linux\/arm\/v7 \(it has linux\/amd64, linux\/arm64\/v8\); choose one with --platform/);
});

test("a non-distributable (foreign) layer the registry does not have is a clear error naming its URLs", { timeout: 60_000 }, async () => {
  const base = tarArchive([{ path: "a", data: Buffer.from("a") }]);
  const b = await client.pushBlob(repo, zlib.gzipSync(base), { mediaType: DOCKER_LAYER.gzip });
  const foreignTar = tarArchive([{ path: "Files/", type: "dir" }]);
  const foreign = { mediaType: MEDIA_TYPES.dockerLayerForeign, digest: sha(zlib.gzipSync(foreignTar)), size: zlib.gzipSync(foreignTar).length, urls: ["https://mcr.example/foreign-layer"] };
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [sha(foreignTar), sha(base)] } }));
  const c = await client.pushBlob(repo, config, { mediaType: MEDIA_TYPES.dockerConfig });
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MEDIA_TYPES.dockerManifest,
    config: { mediaType: MEDIA_TYPES.dockerConfig, size: c.size, digest: c.digest },
    layers: [foreign, { mediaType: DOCKER_LAYER.gzip, digest: b.digest, size: b.size }],
  }));
  await client.pushManifest(repo, "foreign", manifest, MEDIA_TYPES.dockerManifest);
  const r = await eodAsync(["convert", `${reg.host}/eod/docker:foreign`, `${reg.host}/eod/docker-eod:foreign`], noCreds());
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /is a non-distributable layer \(application\/vnd\.docker\.image\.rootfs\.foreign\.diff\.tar\.gzip\) that 127\.0\.0\.1:\d+\/eod\/docker does not serve; its data is at https:\/\/mcr\.example\/foreign-layer, which eod does not fetch/);
});
