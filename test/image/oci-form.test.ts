// The OCI form's pure parts (src/image/oci-form.ts): layers containerd hands to a snapshotter (media types,
// titles, the eod.manifest annotation), the config rewritten for our layers (one diff_id each, history that
// pairs with them, the rest of the source config kept, same bytes for the same input), and the reader taking
// both the current and the old media types.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EodError } from "../../src/errors.ts";
import { MANIFEST_MEDIA_TYPE, type Manifest } from "../../src/image/manifest.ts";
import {
  ANNOTATIONS, EOD_MANIFEST_ANNOTATION, filesOfOciManifest, isOurLayerType, OCI_CONFIG_TYPE, OCI_FORM_TYPES, OLD_OCI_FORM_TYPES,
  ociConfigOf, ociLayersOf, ociManifestOf, type OciDescriptor,
} from "../../src/image/oci-form.ts";
import { sha256Digest } from "../../src/util/sha256.ts";

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const ref = (path: string, c: string, size: number) => ({ path, digest: digest(c), size });
const blob = (id: string, c: string) => ({ id: id.repeat(64), kernelSize: 1 << 20, chunks: 8, table: ref(`blobs/${id.repeat(64)}.ctab`, c, 64), remote: ref(`blobs/${id.repeat(64)}`, String(Number(c) + 1), 4096) });
const image: Manifest = {
  schemaVersion: 1, mediaType: MANIFEST_MEDIA_TYPE, blockSize: 4096, chunkSize: 131072, compression: "zstd",
  bootstrap: ref("bootstrap.erofs", "1", 8192), bootstrapZstd: ref("bootstrap.erofs.zst", "2", 2048),
  blobs: [blob("a", "3"), blob("b", "5")],
};
const manifestJson = { digest: digest("9"), size: 1000 };

/** A docker-built image's config: every field a container runtime reads, and history with an empty layer. */
const source = {
  architecture: "arm", os: "linux", variant: "v7", created: "2026-01-02T03:04:05Z",
  config: {
    User: "app", Env: ["PATH=/usr/bin", "LANG=C.UTF-8"], Entrypoint: ["/entry.sh"], Cmd: ["serve", "--port", "80"], WorkingDir: "/srv",
    Labels: { team: "x" }, ExposedPorts: { "80/tcp": {} }, Volumes: { "/data": {} }, StopSignal: "SIGINT",
  },
  rootfs: { type: "layers", diff_ids: [digest("c"), digest("d")] },
  history: [{ created_by: "ADD rootfs.tar /" }, { created_by: "ENV LANG=C.UTF-8", empty_layer: true }, { created_by: "COPY app /srv" }],
};

test("ociLayersOf(): manifest.json, the bootstrap's wire form, per blob its table and blob; containerd layer types, title, eod.manifest", () => {
  const layers = ociLayersOf(manifestJson, image);
  assert.deepEqual(layers.map((l) => [l.mediaType, l.annotations?.[ANNOTATIONS.title], l.digest]), [
    [OCI_FORM_TYPES.manifest, "manifest.json", digest("9")],
    [OCI_FORM_TYPES.bootstrapZstd, "bootstrap.erofs.zst", digest("2")],
    [OCI_FORM_TYPES.chunkTable, `blobs/${"a".repeat(64)}.ctab`, digest("3")],
    [OCI_FORM_TYPES.blob, `blobs/${"a".repeat(64)}`, digest("4")],
    [OCI_FORM_TYPES.chunkTable, `blobs/${"b".repeat(64)}.ctab`, digest("5")],
    [OCI_FORM_TYPES.blob, `blobs/${"b".repeat(64)}`, digest("6")],
  ]);
  // containerd 1.6 images.IsLayerType: the unpacker hands these to the snapshotter instead of skipping them.
  for (const l of layers) assert.ok(l.mediaType.startsWith("application/vnd.oci.image.layer.erofs-ondemand."), l.mediaType);
  assert.deepEqual(new Set(layers.map((l) => l.annotations?.[EOD_MANIFEST_ANNOTATION])), new Set([manifestJson.digest]));
  assert.equal(EOD_MANIFEST_ANNOTATION, "containerd.io/snapshot/eod.manifest", "under containerd.io/snapshot/: passed to Prepare as a label");
  const { bootstrapZstd: _, ...plain } = image;
  assert.equal(ociLayersOf(manifestJson, plain)[1].mediaType, OCI_FORM_TYPES.bootstrap, "no wire form: the plain bootstrap");
});

test("ociConfigOf(): the source config kept, one diff_id per layer (its digest, in order), history paired with them", () => {
  const layers = ociLayersOf(manifestJson, image);
  const config = JSON.parse(Buffer.from(ociConfigOf(source, layers, "config")).toString("utf8"));
  assert.deepEqual(config.config, source.config, "entrypoint, cmd, env, user, workdir, labels, ports, volumes, stop signal");
  assert.deepEqual([config.os, config.architecture, config.variant, config.created], ["linux", "arm", "v7", source.created]);
  assert.deepEqual(config.rootfs, { type: "layers", diff_ids: layers.map((l) => l.digest) });
  assert.equal(config.rootfs.diff_ids.length, layers.length, "containerd's unpacker needs len(layers) == len(diff_ids)");
  assert.deepEqual(config.history.slice(0, 3), source.history.map((h) => ({ ...h, empty_layer: true })), "the source's history kept, none of it a layer here");
  const ours = config.history.slice(3);
  assert.equal(ours.length, layers.length);
  assert.ok(ours.every((h: { empty_layer?: boolean; created?: string }) => h.empty_layer === undefined && h.created === source.created));
  assert.match(ours[0].created_by, /manifest\.json/);
  assert.deepEqual(Object.keys(config), Object.keys(source), "the source's keys in the source's order");
});

test("ociConfigOf() is deterministic; a config without history gets one entry per layer", () => {
  const layers = ociLayersOf(manifestJson, image);
  const a = ociConfigOf(source, layers, "config");
  assert.deepEqual(ociConfigOf(structuredClone(source), layers, "config"), a, "same source and layers, same bytes");
  const { history: _, created: __, ...bare } = source;
  const config = JSON.parse(Buffer.from(ociConfigOf(bare, layers, "config")).toString("utf8"));
  assert.equal(config.history.length, layers.length);
  assert.ok(config.history.every((h: { created?: string }) => h.created === undefined));
});

test("ociConfigOf() refuses a config that is not an object, or a history entry that is not one", () => {
  for (const bad of [null, [], "x", { ...source, history: [{ created_by: "a" }, 3] }]) {
    assert.throws(() => ociConfigOf(bad, [], "config sha256:x"), (e) => e instanceof EodError && e.code === "SOURCE_INVALID" && /config sha256:x/.test(e.message), JSON.stringify(bad));
  }
});

test("ociManifestOf(): the config descriptor is the OCI image config of those bytes", () => {
  const layers = ociLayersOf(manifestJson, image);
  const bytes = ociConfigOf(source, layers, "config");
  const m = ociManifestOf(layers, bytes, { a: "b" });
  assert.deepEqual(m.config, { mediaType: OCI_CONFIG_TYPE, digest: sha256Digest(bytes), size: bytes.byteLength });
  assert.equal(m.layers, layers);
  assert.deepEqual(m.annotations, { a: "b" });
});

test("filesOfOciManifest() reads the current and the old media types, and ignores layers not ours", () => {
  const current = ociLayersOf(manifestJson, image);
  const back = new Map<string, string>(Object.entries(OCI_FORM_TYPES).map(([k, t]) => [t, OLD_OCI_FORM_TYPES[k as keyof typeof OLD_OCI_FORM_TYPES]]));
  const old: OciDescriptor[] = current.map((l) => ({ ...l, mediaType: back.get(l.mediaType)!, annotations: { [ANNOTATIONS.title]: l.annotations![ANNOTATIONS.title] } }));
  const foreign = { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: digest("e"), size: 1, annotations: { [ANNOTATIONS.title]: "x" } };
  for (const layers of [current, old]) {
    const { manifest, files } = filesOfOciManifest({ layers: [...layers, foreign] }, "img");
    assert.equal(manifest.digest, manifestJson.digest);
    assert.deepEqual([...files.keys()], layers.map((l) => l.annotations![ANNOTATIONS.title]));
  }
  assert.ok(old.every((l) => isOurLayerType(l.mediaType)) && current.every((l) => isOurLayerType(l.mediaType)) && !isOurLayerType(foreign.mediaType));
  assert.throws(() => filesOfOciManifest({ layers: [foreign] }, "img"), /img is not an erofs-ondemand image/);
});
