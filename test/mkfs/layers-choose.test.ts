// Choosing one image of a `docker save` archive or an OCI layout that holds several: --image by tag / ref
// name (docker's normalisation), --platform through an image index (variants; buildx attestations skipped);
// without a choice, or with one that matches nothing, an error listing what there is.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { eod } from "../helpers/cli.ts";
import { tarArchive } from "../helpers/tar-layer.ts";

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const hex = (d: string) => d.slice("sha256:".length);
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";

function setup(t: { after(fn: () => void): void }): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "eod-choose-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  return root;
}

/** `n` one-file layers whose file names say which image they belong to. */
function layers(tag: string, n: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => tarArchive([{ path: `${tag}-${i}`, data: Buffer.from(`${tag} layer ${i}\n`) }]));
}

/** Builds `source` with extra args; the layer count and the files of the result (from --json). */
function build(source: string, out: string, ...args: string[]): { status: number | null; stderr: string; layers?: number } {
  const r = eod("build", source, "-o", out, "--json", ...args);
  return { status: r.status, stderr: r.stderr, ...(r.status === 0 ? { layers: JSON.parse(r.stdout).layers.length } : {}) };
}

test("a docker save archive with several images: --image by tag (normalised like docker), else an error listing them", (t) => {
  const root = setup(t);
  const images = { "app:1": layers("app", 1), "docker.io/library/base:latest": layers("base", 2), "ghcr.io/o/tool:v3": layers("tool", 3) };
  const members = [];
  const manifest = [];
  for (const [tag, tars] of Object.entries(images)) {
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: tars.map(sha) } }));
    members.push({ path: `${hex(sha(config))}.json`, data: config }, ...tars.map((tar) => ({ path: `blobs/sha256/${hex(sha(tar))}`, data: tar })));
    manifest.push({ Config: `${hex(sha(config))}.json`, RepoTags: [tag], Layers: tars.map((tar) => `blobs/sha256/${hex(sha(tar))}`) });
  }
  const saved = path.join(root, "saved.tar");
  fs.writeFileSync(saved, tarArchive([...members, { path: "manifest.json", data: Buffer.from(JSON.stringify(manifest)) }]));

  assert.equal(build(saved, path.join(root, "a"), "--image", "app:1").layers, 1);
  assert.equal(build(saved, path.join(root, "b"), "--image", "base").layers, 2, "base is docker.io/library/base:latest");
  assert.equal(build(saved, path.join(root, "c"), "--image", "ghcr.io/o/tool:v3").layers, 3);
  const none = build(saved, path.join(root, "d"));
  assert.equal(none.status, 1);
  assert.match(none.stderr, /holds 3 images \(app:1, docker\.io\/library\/base:latest, ghcr\.io\/o\/tool:v3\): choose one with --image <repo:tag>/);
  const wrong = build(saved, path.join(root, "e"), "--image", "app:2");
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /has no image tagged "app:2" \(it has app:1, /);
  assert.ok(!fs.existsSync(path.join(root, "d")) && !fs.existsSync(path.join(root, "e")));
});

/** Writes a blob into a layout and returns its descriptor. */
function blob(dir: string, bytes: Buffer, mediaType: string): { mediaType: string; digest: string; size: number } {
  fs.mkdirSync(path.join(dir, "blobs/sha256"), { recursive: true });
  fs.writeFileSync(path.join(dir, "blobs/sha256", hex(sha(bytes))), bytes);
  return { mediaType, digest: sha(bytes), size: bytes.length };
}

function image(dir: string, tars: Buffer[], arch = "amd64"): { mediaType: string; digest: string; size: number } {
  const config = Buffer.from(JSON.stringify({ architecture: arch, os: "linux", rootfs: { type: "layers", diff_ids: tars.map(sha) } }));
  const m = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: blob(dir, config, "application/vnd.oci.image.config.v1+json"), layers: tars.map((tar) => blob(dir, zlib.gzipSync(tar), "application/vnd.oci.image.layer.v1.tar+gzip")) };
  return blob(dir, Buffer.from(JSON.stringify(m)), OCI_MANIFEST);
}

function layout(dir: string, manifests: object[]): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  fs.writeFileSync(path.join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));
}

test("an OCI layout with several tagged images: --image by ref name, else an error listing them", (t) => {
  const root = setup(t);
  const dir = path.join(root, "layout");
  fs.mkdirSync(dir);
  const v1 = image(dir, layers("v1", 1));
  const v2 = image(dir, layers("v2", 2));
  const full = image(dir, layers("full", 3));
  layout(dir, [
    { ...v1, annotations: { "org.opencontainers.image.ref.name": "v1" } },
    { ...v2, annotations: { "org.opencontainers.image.ref.name": "v2" } },
    // as containerd exports: the full name, the tag as ref name
    { ...full, annotations: { "io.containerd.image.name": "docker.io/library/app:3", "org.opencontainers.image.ref.name": "3" } },
  ]);
  assert.equal(build(dir, path.join(root, "a"), "--image", "v2").layers, 2);
  assert.equal(build(dir, path.join(root, "b"), "--image", "app:3").layers, 3, "containerd's image name, normalised");
  const none = build(dir, path.join(root, "c"));
  assert.equal(none.status, 1);
  assert.match(none.stderr, /index\.json lists 3 images \(v1, v2, 3\): choose one with --image <name>/);
  const wrong = build(dir, path.join(root, "d"), "--image", "v9");
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /has no image named "v9" \(it has v1, v2, 3\)/);
});

test("an OCI layout whose index has platforms and a buildx attestation: the host's, or --platform with variants", (t) => {
  const root = setup(t);
  const dir = path.join(root, "layout");
  fs.mkdirSync(dir);
  const amd = image(dir, layers("amd64", 1));
  const arm = image(dir, layers("arm64", 2), "arm64");
  const armv7 = image(dir, layers("armv7", 3), "arm");
  const att = image(dir, [], "unknown");
  const index = blob(dir, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [
    { ...att, platform: { os: "unknown", architecture: "unknown" }, annotations: { "vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": amd.digest } },
    { ...amd, platform: { os: "linux", architecture: "amd64" } },
    { ...arm, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
    { ...armv7, platform: { os: "linux", architecture: "arm", variant: "v7" } },
  ] })), OCI_INDEX);
  layout(dir, [{ ...index, annotations: { "org.opencontainers.image.ref.name": "latest" } }]);
  if (process.arch === "x64") assert.equal(build(dir, path.join(root, "a")).layers, 1);
  assert.equal(build(dir, path.join(root, "b"), "--platform", "linux/arm64").layers, 2);
  assert.equal(build(dir, path.join(root, "c"), "--platform", "linux/arm/v7", "--image", "latest").layers, 3);
  const r = build(dir, path.join(root, "d"), "--platform", "linux/s390x");
  assert.equal(r.status, 1);
  assert.match(r.stderr, /lists 3 images \(linux\/amd64, linux\/arm64\/v8, linux\/arm\/v7\): none for linux\/s390x; choose one with --platform/);
  const misuse = eod("build", root, "-o", path.join(root, "e"), "--image", "x");
  assert.equal(misuse.status, 2);
  assert.match(misuse.stderr, /--image chooses an image of an OCI layout or a docker save archive/);
});
