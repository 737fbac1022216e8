// RegistryClient against the real CNCF distribution registry (Debian's docker-registry) on 127.0.0.1,
// anonymous: pushes (monolithic, chunked, mounts), an index with two platforms, resolving and pulling by
// tag and digest, streams, Range reads, RegistryRemote, and the errors for what is missing.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { pushTestImage, startRegistry, type PushedTestImage, type RunningRegistry } from "../helpers/registry.ts";
import { MEDIA_TYPES, RegistryClient, RegistryRemote, sha256Digest, staticCredentials, type Repo } from "../../src/remote/registry/index.ts";

let reg: RunningRegistry;
let client: RegistryClient;
let repo: Repo;
let image: PushedTestImage;

before(async () => {
  reg = await startRegistry();
  client = new RegistryClient({ credentials: staticCredentials({}) });
  repo = { registry: reg.host, repository: "eod/test-app" };
  image = await pushTestImage(client, repo, "v1");
});

after(async () => {
  await client?.close();
  await reg?.stop();
});

test("resolve by tag goes through the index to the host's platform (linux/amd64), or the one asked for", async () => {
  const amd = await client.resolve(`${reg.host}/eod/test-app:v1`);
  assert.equal(amd.digest, image.platforms["linux/amd64"].digest);
  assert.deepEqual(Buffer.from(amd.bytes), Buffer.from(image.platforms["linux/amd64"].bytes));
  assert.equal(amd.index?.digest, image.index.digest);
  assert.equal(amd.platform?.architecture, "amd64");
  assert.equal(amd.manifest.layers.length, 2);

  const arm = await client.resolve(`${reg.host}/eod/test-app:v1`, { platform: "linux/arm64" });
  assert.equal(arm.digest, image.platforms["linux/arm64"].digest);

  await assert.rejects(client.resolve(`${reg.host}/eod/test-app:v1`, { platform: "linux/s390x" }), (err: Error & { code?: string }) => {
    assert.equal(err.code, "REGISTRY_NOT_FOUND");
    assert.match(err.message, /no image for linux\/s390x \(it has linux\/amd64, linux\/arm64\)/);
    return true;
  });
});

test("resolve and pull by digest: the manifest, the config and the layers, verified", async () => {
  const want = image.platforms["linux/amd64"];
  const img = await client.resolve(`${reg.host}/eod/test-app@${want.digest}`);
  assert.equal(img.digest, want.digest);
  assert.equal(img.index, undefined);
  assert.deepEqual(Buffer.from(await client.fetchBlob(repo, img.manifest.config)), want.config);
  for (const [i, layer] of img.manifest.layers.entries()) {
    assert.deepEqual(Buffer.from(await client.fetchBlob(repo, layer)), want.layers[i]);
  }
  // the index itself, by digest
  const index = await client.getManifest(repo, image.index.digest);
  assert.equal(index.mediaType, MEDIA_TYPES.ociIndex);
});

test("blobStream() yields the blob in pieces; readBlobRange() gives exact ranges", async () => {
  const layer = image.platforms["linux/arm64"].layers[0];
  const d = { mediaType: MEDIA_TYPES.ociLayerGzip, digest: sha256Digest(layer), size: layer.length };
  const parts: Uint8Array[] = [];
  for await (const p of client.blobStream(repo, d)) parts.push(p);
  assert.deepEqual(Buffer.concat(parts), layer);
  assert.deepEqual(Buffer.from(await client.readBlobRange(repo, d.digest, 1000, 5000)), layer.subarray(1000, 6000));
  assert.deepEqual(Buffer.from(await client.readBlobRange(repo, d.digest, layer.length - 7, 7)), layer.subarray(layer.length - 7));
  assert.equal((await client.readBlobRange(repo, d.digest, 5, 0)).length, 0);
  await assert.rejects(client.readBlobRange(repo, d.digest, layer.length + 10, 5), { code: "IMAGE_INVALID" });
  assert.equal(await client.blobSize(repo, d.digest), layer.length);
});

test("a descriptor whose size is wrong is refused", async () => {
  const layer = image.platforms["linux/amd64"].layers[1];
  await assert.rejects(client.fetchBlob(repo, { mediaType: "x", digest: sha256Digest(layer), size: layer.length - 1 }), { code: "DIGEST_MISMATCH" });
});

test("pushBlob: already there, chunked from a big source, cross-repository mount", async () => {
  const layer = image.platforms["linux/amd64"].layers[0];
  const again = await client.pushBlob(repo, layer);
  assert.equal(again.how, "exists");

  const other: Repo = { registry: reg.host, repository: "eod/other" };
  const mounted = await client.pushBlob(other, layer, { mountFrom: repo.repository });
  assert.equal(mounted.how, "mounted");
  assert.deepEqual(Buffer.from(await client.fetchBlob(other, mounted)), layer);

  const fresh = randomBytes(100_001);
  const up = await client.pushBlob(other, fresh, { chunkSize: 10_000 });
  assert.equal(up.how, "uploaded");
  assert.deepEqual(Buffer.from(await client.fetchBlob(other, up)), fresh);

  // A mount of a blob the source repository does not have is declined, not an error.
  assert.equal(await client.mountBlob({ registry: reg.host, repository: "eod/third" }, sha256Digest(randomBytes(10)), repo.repository), false);
  assert.equal(await client.mountBlob({ registry: reg.host, repository: "eod/third" }, up.digest, other.repository), true);

  // An empty blob, monolithic and chunked paths both
  const empty = await client.pushBlob({ registry: reg.host, repository: "eod/empty" }, new Uint8Array(0), { chunkSize: 10 });
  assert.equal(empty.size, 0);
  assert.equal((await client.fetchBlob({ registry: reg.host, repository: "eod/empty" }, empty)).length, 0);
});

test("missing tag, missing repository, missing blob: REGISTRY_NOT_FOUND naming what is missing", async () => {
  await assert.rejects(client.resolve(`${reg.host}/eod/test-app:nope`), (err: Error & { code?: string }) => {
    assert.equal(err.code, "REGISTRY_NOT_FOUND");
    assert.match(err.message, /tag "nope" not found in 127\.0\.0\.1:\d+\/eod\/test-app/);
    return true;
  });
  await assert.rejects(client.resolve(`${reg.host}/eod/no-such-repo:v1`), { code: "REGISTRY_NOT_FOUND" });
  const missing = sha256Digest(randomBytes(16));
  await assert.rejects(client.fetchBlob(repo, missing), (err: Error & { code?: string }) => {
    assert.equal(err.code, "REGISTRY_NOT_FOUND");
    assert.match(err.message, new RegExp(`blob ${missing} not found`));
    return true;
  });
  await assert.rejects(client.readBlobRange(repo, missing, 0, 10), { code: "REGISTRY_NOT_FOUND" });
  assert.equal(await client.blobSize(repo, missing), undefined);
  assert.equal(client.stats().retries, 0); // none of these is worth repeating
});

test("pushManifest refuses a manifest it could not read back, and a digest reference that does not match", async () => {
  await assert.rejects(client.pushManifest(repo, "bad", Buffer.from("{}"), MEDIA_TYPES.ociManifest), { code: "IMAGE_INVALID" });
  const m = image.platforms["linux/amd64"].bytes;
  await assert.rejects(client.pushManifest(repo, sha256Digest(Buffer.from("x")), m, MEDIA_TYPES.ociManifest), { code: "DIGEST_MISMATCH" });
});

test("RegistryRemote: readFile (verified), readRange and size of blobs by mapped path or digest", async () => {
  const want = image.platforms["linux/amd64"];
  const layer = want.layers[0];
  const digest = sha256Digest(layer);
  const remote = new RegistryRemote(client, repo, { files: { "bootstrap.erofs": digest, "blobs/x.ctab": { mediaType: "x", digest: sha256Digest(want.config), size: want.config.length } } });
  assert.equal(remote.location, `${reg.host}/eod/test-app`);
  assert.deepEqual(Buffer.from(await remote.readFile("bootstrap.erofs")), layer);
  assert.deepEqual(Buffer.from(await remote.readFile("blobs/x.ctab")), want.config);
  assert.deepEqual(Buffer.from(await remote.readRange(digest, 10, 100)), layer.subarray(10, 110));
  assert.deepEqual(Buffer.from(await remote.readRange(`blobs/sha256/${digest.slice(7)}`, 0, 4)), layer.subarray(0, 4));
  assert.equal(await remote.size("bootstrap.erofs"), layer.length);
  assert.equal(await remote.size("blobs/x.ctab"), want.config.length);
  await assert.rejects(remote.readFile("other.file"), { code: "REMOTE_STATUS", status: 404 });
  await assert.rejects(remote.readFile("bootstrap.erofs", { maxBytes: 10 }), { code: "IMAGE_INVALID" });
  const s = remote.stats();
  assert.equal(s.bytes, layer.length + want.config.length + 100 + 4);
  await remote.close();
});
