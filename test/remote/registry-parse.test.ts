// The pure parts of the registry client: references, loopback detection and scheme choice, challenges,
// platforms and choosing one from an index, manifests as untrusted input.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  checkRepository, formatReference, hostPlatform, indexPlatforms, isLoopback, MEDIA_TYPES, parseChallenges, parseManifest, parsePlatform, parseReference, selectPlatform,
  type ImageIndex,
} from "../../src/remote/registry/index.ts";
import { Transport } from "../../src/remote/registry/transport.ts";

const D = `sha256:${"ab".repeat(32)}`;

test("parseReference: registries, docker.io defaults, tags and digests", () => {
  assert.deepEqual(parseReference("127.0.0.1:5000/team/app:v1"), { registry: "127.0.0.1:5000", repository: "team/app", tag: "v1" });
  assert.deepEqual(parseReference("localhost/app"), { registry: "localhost", repository: "app", tag: "latest" });
  assert.deepEqual(parseReference("[::1]:5000/a/b@" + D), { registry: "[::1]:5000", repository: "a/b", digest: D });
  assert.deepEqual(parseReference("debian"), { registry: "docker.io", repository: "library/debian", tag: "latest" });
  assert.deepEqual(parseReference("user/app:1.0"), { registry: "docker.io", repository: "user/app", tag: "1.0" });
  assert.deepEqual(parseReference(`ghcr.io/o/r:t@${D}`), { registry: "ghcr.io", repository: "o/r", tag: "t", digest: D });
  assert.equal(formatReference(parseReference("debian:12")), "docker.io/library/debian:12");
  assert.equal(checkRepository("a/b-c/d_e"), "a/b-c/d_e");
  for (const bad of ["../x", "a/../b", "A", "a?b", ""]) assert.throws(() => checkRepository(bad), TypeError, bad);
  // docker's normalisation (distribution/reference ParseNormalizedNamed)
  assert.deepEqual(parseReference("index.docker.io/alpine"), { registry: "docker.io", repository: "library/alpine", tag: "latest" });
  assert.deepEqual(parseReference("docker.io/alpine:3.20"), { registry: "docker.io", repository: "library/alpine", tag: "3.20" });
  assert.deepEqual(parseReference("localhost:5000/x"), { registry: "localhost:5000", repository: "x", tag: "latest" });
  assert.deepEqual(parseReference("[::1]/x"), { registry: "[::1]", repository: "x", tag: "latest" });
  assert.deepEqual(parseReference(`alpine:3@${D}`), { registry: "docker.io", repository: "library/alpine", tag: "3", digest: D });
  assert.equal(formatReference(parseReference(`alpine@${D}`)), `docker.io/library/alpine@${D}`);
  for (const bad of ["", "UPPER/case", "a//b", "host:99999/a", "a:b:c", `a@sha256:${"0".repeat(10)}`, "a:-tag", "with space", "127.0.0.1:5000/"]) {
    assert.throws(() => parseReference(bad), { code: "USAGE" }, bad);
  }
});

test("loopback registries are plain HTTP; others HTTPS", async () => {
  for (const h of ["127.0.0.1:5000", "127.1.2.3", "localhost:80", "[::1]:5000"]) assert.ok(isLoopback(h), h);
  for (const h of ["128.0.0.1", "example.com", "localhost.example.com:5000", "[::2]"]) assert.ok(!isLoopback(h), h);
  const t = new Transport({ timeoutMs: 1000, concurrency: 1, insecureRegistries: [] });
  try {
    assert.equal(await t.origin("127.0.0.1:5000"), "http://127.0.0.1:5000");
    assert.equal(await t.origin("[::1]:5000"), "http://[::1]:5000");
    assert.equal(await t.origin("registry.example.com"), "https://registry.example.com");
    assert.equal(await t.origin("docker.io"), "https://registry-1.docker.io");
  } finally {
    await t.close();
  }
});

test("parseChallenges: several schemes, quoted values, escapes", () => {
  assert.deepEqual(parseChallenges('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"'), [
    { scheme: "bearer", params: { realm: "https://auth.example/token", service: "reg", scope: "repository:a/b:pull,push" } },
  ]);
  assert.deepEqual(parseChallenges('Basic realm="a \\"b\\"", Bearer realm=x, error="insufficient_scope"'), [
    { scheme: "basic", params: { realm: 'a "b"' } },
    { scheme: "bearer", params: { realm: "x", error: "insufficient_scope" } },
  ]);
  assert.deepEqual(parseChallenges(""), []);
});

test("platforms: the host's, parsing, and the choice from an index", () => {
  if (process.arch === "x64") assert.deepEqual(hostPlatform(), { os: "linux", architecture: "amd64" });
  assert.deepEqual(parsePlatform("linux/arm/v7"), { os: "linux", architecture: "arm", variant: "v7" });
  assert.throws(() => parsePlatform("linux"), { code: "USAGE" });
  const d = (architecture: string, variant?: string, mediaType: string = MEDIA_TYPES.ociManifest) =>
    ({ mediaType, digest: D, size: 1, platform: { os: "linux", architecture, ...(variant ? { variant } : {}) }, annotations: { n: `${architecture}${variant ?? ""}` } });
  const index: ImageIndex = { schemaVersion: 2, manifests: [d("arm", "v6"), d("arm", "v7"), d("arm64"), d("amd64", undefined, "application/vnd.in-toto+json"), d("amd64")] };
  const pick = (p: string) => selectPlatform(index, parsePlatform(p))?.annotations?.n;
  assert.equal(pick("linux/amd64"), "amd64");
  assert.equal(pick("linux/arm/v7"), "armv7");
  assert.equal(pick("linux/arm64/v8"), "arm64"); // arm64 without variant is v8
  assert.equal(pick("linux/arm/v5"), undefined);
  assert.equal(pick("windows/amd64"), undefined);

  // A buildx index: attestations (unknown/unknown, vnd.docker.reference.type) are never chosen nor listed.
  const att = { mediaType: MEDIA_TYPES.ociManifest, digest: D, size: 1, platform: { os: "unknown", architecture: "unknown" }, annotations: { "vnd.docker.reference.type": "attestation-manifest", n: "att" } };
  const buildx: ImageIndex = { schemaVersion: 2, manifests: [att, d("arm64", "v8"), { ...att, platform: { os: "linux", architecture: "amd64" } }] };
  assert.equal(selectPlatform(buildx, parsePlatform("linux/amd64")), undefined, "an attestation that claims a platform is still skipped");
  assert.equal(selectPlatform(buildx, parsePlatform("linux/arm64"))?.annotations?.n, "arm64v8");
  assert.equal(selectPlatform(buildx, { os: "unknown", architecture: "unknown" }), undefined);
  assert.deepEqual(indexPlatforms(buildx), ["linux/arm64/v8"]);
  // Entries without a platform (a nested index, single-image indexes of some tools) match any, after those that name one.
  const bare = { mediaType: MEDIA_TYPES.ociIndex, digest: D, size: 1, annotations: { n: "nested" } };
  assert.equal(selectPlatform({ schemaVersion: 2, manifests: [bare] }, parsePlatform("linux/amd64"))?.annotations?.n, "nested");
  assert.equal(selectPlatform({ schemaVersion: 2, manifests: [bare, d("amd64")] }, parsePlatform("linux/amd64"))?.annotations?.n, "amd64");
  assert.equal(selectPlatform({ schemaVersion: 2, manifests: [bare, d("amd64")] }, parsePlatform("linux/s390x"))?.annotations?.n, "nested");
});

test("parseManifest: what a registry sends is checked before use", () => {
  const good = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { mediaType: MEDIA_TYPES.ociConfig, digest: D, size: 2 }, layers: [] };
  assert.equal(parseManifest(Buffer.from(JSON.stringify(good)), undefined, "m").mediaType, MEDIA_TYPES.ociManifest);
  const { mediaType: _m, ...noType } = good;
  assert.equal(parseManifest(Buffer.from(JSON.stringify(noType)), MEDIA_TYPES.dockerManifest, "m").mediaType, MEDIA_TYPES.dockerManifest);
  const bad: unknown[] = [
    "not json", [], { ...good, schemaVersion: 1 }, { ...good, layers: "x" }, { ...good, config: { ...good.config, digest: "sha256:zz" } },
    { ...good, config: { ...good.config, size: -1 } }, { ...good, mediaType: "text/plain" }, { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex },
  ];
  for (const b of bad) {
    assert.throws(() => parseManifest(Buffer.from(typeof b === "string" ? b : JSON.stringify(b)), undefined, "m"), { code: "IMAGE_INVALID" }, JSON.stringify(b));
  }
  // Docker schema 1 (signed): refused by name, whether the body or the Content-Type says so.
  const schema1 = { schemaVersion: 1, name: "library/x", tag: "latest", architecture: "amd64", fsLayers: [{ blobSum: D }], history: [{ v1Compatibility: "{}" }], signatures: [] };
  for (const ct of [MEDIA_TYPES.dockerManifestV1Signed, undefined]) {
    assert.throws(() => parseManifest(Buffer.from(JSON.stringify(schema1)), ct, "m"), { code: "IMAGE_INVALID", message: /m: a Docker schema 1 manifest \(deprecated, not supported\)/ });
  }
  assert.throws(() => parseManifest(Buffer.from(JSON.stringify({ ...good, schemaVersion: 2 })), MEDIA_TYPES.dockerManifestV1, "m"), /schema 1/);
});
