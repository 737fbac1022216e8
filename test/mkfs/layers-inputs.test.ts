// The three ways to give layers: tarballs, an OCI image layout directory and a `docker save` archive (both
// built here by hand, in the formats of the image spec and of docker). The same layers give the same image
// whichever way they come. Layer digests and diff_ids are checked while the layers stream: a mismatch is
// refused with DIGEST_MISMATCH's message and leaves no output.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { eod, eodOk } from "../helpers/cli.ts";
import { tarArchive, type TarSpec } from "../helpers/tar-layer.ts";

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const hex = (d: string) => d.slice("sha256:".length);

function setup(t: { after(fn: () => void): void }): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "eod-inputs-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  return root;
}

/** Two layers: the first gzip-compressed as stored, the second a plain tar. */
function twoLayers(): { tars: Buffer[]; stored: Buffer[]; mediaTypes: string[] } {
  const l1: TarSpec[] = [{ path: "etc/", type: "dir" }, { path: "etc/os-release", data: Buffer.from("ID=test\n") }, { path: "bin/", type: "dir" }, { path: "bin/app", data: randomBytes(200_000), mode: 0o755 }];
  const l2: TarSpec[] = [{ path: "etc/", type: "dir" }, { path: "etc/.wh.os-release", data: Buffer.alloc(0) }, { path: "data", data: randomBytes(50_000) }];
  const tars = [tarArchive(l1), tarArchive(l2)];
  return { tars, stored: [zlib.gzipSync(tars[0]), tars[1]], mediaTypes: ["application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar"] };
}

function writeBlob(layout: string, bytes: Buffer): { digest: string; size: number } {
  const digest = sha(bytes);
  fs.mkdirSync(path.join(layout, "blobs", "sha256"), { recursive: true });
  fs.writeFileSync(path.join(layout, "blobs", "sha256", hex(digest)), bytes);
  return { digest, size: bytes.length };
}

/** An OCI image layout; with `index`, index.json points at an image index with two platforms. */
function ociLayout(dir: string, l: ReturnType<typeof twoLayers>, opts: { index?: boolean; diffIds?: string[] } = {}): void {
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: opts.diffIds ?? l.tars.map(sha) } }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...writeBlob(dir, config) },
    layers: l.stored.map((b, i) => ({ mediaType: l.mediaTypes[i], ...writeBlob(dir, b) })),
  }));
  const m = { mediaType: "application/vnd.oci.image.manifest.v1+json", ...writeBlob(dir, manifest) };
  let top = [m];
  if (opts.index) {
    // The other platform's manifest is never read: it need not exist.
    const other = { mediaType: m.mediaType, digest: sha(Buffer.from("other")), size: 5, platform: { os: "linux", architecture: "s390x" } };
    const arch = { x64: "amd64", arm64: "arm64" }[process.arch as "x64"] ?? process.arch;
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [other, { ...m, platform: { os: "linux", architecture: arch } }] }));
    top = [{ mediaType: "application/vnd.oci.image.index.v1+json", ...writeBlob(dir, index) }];
  }
  fs.writeFileSync(path.join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: top }));
}

/** A docker save archive: layer 1 as <id>/layer.tar (classic), layer 2 as blobs/sha256/<hex> (Docker 25+), manifest.json last. */
function dockerArchive(file: string, l: ReturnType<typeof twoLayers>, diffIds = l.tars.map(sha)): void {
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: diffIds } }));
  const configName = `${hex(sha(config))}.json`;
  const layerNames = [`${"a".repeat(64)}/layer.tar`, `blobs/sha256/${hex(sha(l.tars[1]))}`];
  const manifest = [{ Config: configName, RepoTags: ["test:latest"], Layers: layerNames }];
  fs.writeFileSync(file, tarArchive([
    { path: `${"a".repeat(64)}/`, type: "dir" }, { path: layerNames[0], data: l.tars[0] },
    { path: "blobs/", type: "dir" }, { path: "blobs/sha256/", type: "dir" }, { path: layerNames[1], data: l.tars[1] },
    { path: configName, data: config },
    { path: "manifest.json", data: Buffer.from(JSON.stringify(manifest)) },
  ]));
}

function refused(args: string[], out: string, pattern: RegExp): void {
  const r = eod("build", ...args, "-o", out);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, pattern);
  assert.ok(!fs.existsSync(out), "no output after a refused build");
}

test("tarballs, an OCI layout (direct and through an image index) and a docker save archive give the same image", (t) => {
  const root = setup(t);
  const l = twoLayers();
  const tarballs = l.stored.map((b, i) => {
    const f = path.join(root, `layer${i}.tar${i === 0 ? ".gz" : ""}`);
    fs.writeFileSync(f, b);
    return f;
  });
  ociLayout(path.join(root, "oci"), l);
  ociLayout(path.join(root, "oci-index"), l, { index: true });
  dockerArchive(path.join(root, "saved.tar"), l);
  const manifests = [
    ["--layer", tarballs[0], "--layer", tarballs[1]], [path.join(root, "oci")], [path.join(root, "oci-index")], [path.join(root, "saved.tar")],
  ].map((args, i) => {
    const out = path.join(root, `img${i}`);
    eodOk("build", ...args, "-o", out);
    eodOk("check", out);
    return fs.readFileSync(path.join(out, "manifest.json"), "utf8");
  });
  for (const m of manifests.slice(1)) assert.equal(m, manifests[0]);
  assert.equal(JSON.parse(manifests[0]).blobs.length, 2);
  const listing = eodOk("inspect", path.join(root, "img0"));
  assert.match(listing, /\/bin\/app\n/);
  assert.doesNotMatch(listing, /os-release/);
});

test("an OCI layout whose layer blob does not match its digest is refused", (t) => {
  const root = setup(t);
  const l = twoLayers();
  const oci = path.join(root, "oci");
  ociLayout(oci, l);
  // Flip a byte in the padding at the end of the plain layer: still a valid tar, but not the named bytes.
  const blob = path.join(oci, "blobs", "sha256", hex(sha(l.stored[1])));
  const bytes = fs.readFileSync(blob);
  bytes[bytes.length - 1] = 1;
  fs.writeFileSync(blob, bytes);
  refused([oci], path.join(root, "img"), /layer 2 .*: content is sha256:[0-9a-f]{64}, expected sha256:/);
});

test("an OCI layout whose config lies about a diff_id is refused", (t) => {
  const root = setup(t);
  const l = twoLayers();
  const oci = path.join(root, "oci");
  ociLayout(oci, l, { diffIds: [sha(Buffer.from("not the tar")), sha(l.tars[1])] });
  refused([oci], path.join(root, "img"), /layer 1 .*: uncompressed tar \(diff_id\) is sha256:[0-9a-f]{64}, expected sha256:/);
});

test("an OCI layout whose manifest blob was changed is refused", (t) => {
  const root = setup(t);
  const l = twoLayers();
  const oci = path.join(root, "oci");
  ociLayout(oci, l);
  const index = JSON.parse(fs.readFileSync(path.join(oci, "index.json"), "utf8"));
  const file = path.join(oci, "blobs", "sha256", hex(index.manifests[0].digest));
  fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("layers", "layers "));
  refused([oci], path.join(root, "img"), /blob sha256:[0-9a-f]{64} holds \d+ bytes with sha256/);
});

test("a docker save archive whose diff_id does not match its layer is refused", (t) => {
  const root = setup(t);
  const l = twoLayers();
  const saved = path.join(root, "saved.tar");
  dockerArchive(saved, l, [sha(l.tars[0]), sha(Buffer.from("other"))]);
  refused([saved], path.join(root, "img"), /layer 2 \(blobs\/sha256\/[0-9a-f]{64}\): uncompressed tar \(diff_id\) is sha256:/);
});

test("a docker save archive with two images asks for one", (t) => {
  const root = setup(t);
  const saved = path.join(root, "two.tar");
  const m = [{ Config: "a.json", RepoTags: ["a:1"], Layers: [] }, { Config: "b.json", RepoTags: ["b:1"], Layers: [] }];
  fs.writeFileSync(saved, tarArchive([{ path: "manifest.json", data: Buffer.from(JSON.stringify(m)) }]));
  refused([saved], path.join(root, "img"), /holds 2 images \(a:1, b:1\)/);
});

test("a gzip-compressed docker save archive is read as one layer, with a warning saying what it looks like", (t) => {
  const root = setup(t);
  const saved = path.join(root, "saved.tar");
  dockerArchive(saved, twoLayers());
  fs.writeFileSync(`${saved}.gz`, zlib.gzipSync(fs.readFileSync(saved)));
  const r = eod("build", `${saved}.gz`, "-o", path.join(root, "img"));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /warning: layer 1 .* looks like a docker save archive or OCI layout packed in a tar/);
});

test("an empty (0-byte) layer blob in an OCI layout is an empty layer, as docker and containerd read it", (t) => {
  const root = setup(t);
  const l = twoLayers();
  l.tars.splice(1, 0, Buffer.alloc(0));
  l.stored.splice(1, 0, Buffer.alloc(0));
  l.mediaTypes.splice(1, 0, "application/vnd.oci.image.layer.v1.tar");
  ociLayout(path.join(root, "layout"), l);
  const out = JSON.parse(eodOk("build", path.join(root, "layout"), "-o", path.join(root, "img"), "--json"));
  assert.deepEqual(out.layers.map((x: { entries: number }) => x.entries), [4, 0, 3]);
});
