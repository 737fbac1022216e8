// The index artifact in a real registry (Debian's docker-registry, distribution 2.8): it has no referrers API,
// so everything here goes through the referrers tag (`sha256-<hex>`); the API path is covered by the pure tests
// in referrers-parse.test.ts. An ordinary image is pushed, an index image directory (small, fake files in
// the shape `eod index` writes) pushed as its referrer, then found again by clients with no local state, and
// read through RegistryImageRemote like a converted image.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startRegistry, type RunningRegistry } from "../../helpers/registry.ts";
import { pushOciImage, writeTestLayers } from "../../helpers/oci-image.ts";
import { MEDIA_TYPES, RegistryClient, staticCredentials, type Descriptor, type Repo } from "../../../src/remote/registry/index.ts";
import { listReferrers, pushReferrer, referrersTag } from "../../../src/remote/registry/referrers.ts";
import { pushIndexArtifact } from "../../../src/remote/registry/push-index.ts";
import { RegistryImageRemote } from "../../../src/remote/registry/image-remote.ts";
import { CREATED_ANNOTATION, INDEX_ARTIFACT_TYPE, indexArtifactOf } from "../../../src/image/index-artifact.ts";
import { MANIFEST_MEDIA_TYPE, parseManifest, type Manifest } from "../../../src/image/manifest.ts";

const sha = (b: Uint8Array | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const T1 = "2026-12-07T10:00:00Z";
const T2 = "2026-12-07T11:00:00Z";

let reg: RunningRegistry;
let client: RegistryClient;
let repo: Repo;
let tmp: string;

interface TestImage { ref: string; digest: string; layers: Descriptor[]; stored: Buffer[]; dir: string }
let app: TestImage;

/** Pushes a fresh ordinary image (three layers: gzip, zstd, plain tar) under `tag` and writes a fake index directory for it. */
async function pushImage(tag: string): Promise<TestImage> {
  const layerDir = fs.mkdtempSync(path.join(tmp, "layers-"));
  const files = writeTestLayers(layerDir);
  const { digest } = await pushOciImage(client, repo, tag, files);
  const ref = `${repo.registry}/${repo.repository}:${tag}`;
  const layers = (await client.resolve(ref)).manifest.layers;
  const dir = path.join(tmp, `index-${tag}`);
  writeIndexDir(dir, layers, files.tars.map((t) => sha(t).slice(7)));
  return { ref, digest, layers, stored: files.stored, dir };
}

/** An index image directory in the shape `eod index` writes: manifest.json, the bootstrap (both forms), a seek index per layer. */
function writeIndexDir(dir: string, layers: Descriptor[], ids: string[]): Manifest {
  fs.mkdirSync(path.join(dir, "blobs"), { recursive: true });
  const file = (rel: string, bytes: Buffer) => {
    fs.writeFileSync(path.join(dir, rel), bytes);
    return { path: rel, digest: sha(bytes), size: bytes.length };
  };
  const m: Manifest = {
    schemaVersion: 1, mediaType: MANIFEST_MEDIA_TYPE, blockSize: 512, chunkSize: 4096, compression: "none",
    bootstrap: file("bootstrap.erofs", randomBytes(8192)),
    bootstrapZstd: file("bootstrap.erofs.zst", randomBytes(700)),
    blobs: layers.map((l, i) => ({
      id: ids[i], kernelSize: 4096, chunks: 1,
      table: file(`blobs/${ids[i]}.ctab`, randomBytes(300 + i)),
      remote: { path: `blobs/${ids[i]}`, digest: l.digest, size: l.size },
    })),
  };
  fs.writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(m));
  parseManifest(JSON.stringify(m), "test index"); // the shape the readers accept
  return m;
}

const fresh = () => new RegistryClient({ credentials: staticCredentials({}) });
const read = (dir: string, rel: string) => fs.readFileSync(path.join(dir, rel));

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "eod-referrers-"));
  reg = await startRegistry();
  client = fresh();
  repo = { registry: reg.host, repository: "eod/plain" };
  app = await pushImage("app");
});

after(async () => {
  await client?.close();
  await reg?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test("this registry has no referrers API: the index is pushed through the referrers tag, and found by another client", async (t) => {
  assert.equal(await client.referrers(repo, app.digest), undefined); // 404: no API
  const pushed = await pushIndexArtifact(client, app.ref, app.dir, { created: T1 });
  assert.equal(pushed.via, "tag");
  assert.equal(pushed.subject, app.digest);

  const other = fresh();
  t.after(() => other.close());
  const listed = await listReferrers(other, repo, app.digest, INDEX_ARTIFACT_TYPE);
  assert.deepEqual(listed, [{ mediaType: MEDIA_TYPES.ociManifest, digest: pushed.digest, size: pushed.size, artifactType: INDEX_ARTIFACT_TYPE, annotations: { [CREATED_ANNOTATION]: T1 } }]);
  const tag = await other.getManifest(repo, referrersTag(app.digest));
  assert.equal(tag.mediaType, MEDIA_TYPES.ociIndex);
  // The artifact names the image's own layers: nothing of them was uploaded again, and it refers to the image.
  const artifact = (await other.getManifest(repo, pushed.digest)).manifest as { subject: Descriptor; layers: Descriptor[] };
  assert.equal(artifact.subject.digest, app.digest);
  for (const l of app.layers) assert.ok(artifact.layers.some((a) => a.digest === l.digest && a.mediaType === l.mediaType && a.size === l.size));
});

test("a second artifact joins the tag's index, others' referrers are kept, the same one twice is listed once", async () => {
  // Another tool's referrer of the same image (an SBOM), pushed first through the same fallback.
  const sbom = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, artifactType: "application/vnd.example.sbom.v1",
    config: { mediaType: "application/vnd.oci.empty.v1+json", digest: sha("{}"), size: 2 }, layers: [{ mediaType: "application/vnd.oci.empty.v1+json", digest: sha("{}"), size: 2 }],
    subject: { mediaType: MEDIA_TYPES.ociManifest, digest: app.digest, size: (await client.getManifest(repo, app.digest)).size },
  }));
  const s = await pushReferrer(client, repo, sbom, MEDIA_TYPES.ociManifest);
  const second = await pushIndexArtifact(client, app.ref, app.dir, { created: T2 });
  const again = await pushIndexArtifact(client, app.ref, app.dir, { created: T2 });
  assert.equal(again.digest, second.digest);
  const other = fresh();
  try {
    const all = await listReferrers(other, repo, app.digest);
    assert.deepEqual(all.map((d) => d.digest).slice(1), [s.digest, second.digest]);
    assert.equal(all.length, 3);
    const ours = await listReferrers(other, repo, app.digest, INDEX_ARTIFACT_TYPE);
    assert.deepEqual(ours.map((d) => d.annotations?.[CREATED_ANNOTATION]), [T1, T2]);
  } finally {
    await other.close();
  }
});

test("the remote reads an indexed image from its newest artifact: our files from it, blobs/<id> are the layers' bytes", async (t) => {
  const newest = (await listReferrers(client, repo, app.digest, INDEX_ARTIFACT_TYPE)).find((d) => d.annotations?.[CREATED_ANNOTATION] === T2)!;
  const remote = new RegistryImageRemote(`docker://${app.ref}`);
  t.after(() => remote.close());
  assert.deepEqual(Buffer.from(await remote.readFile("manifest.json")), read(app.dir, "manifest.json"));
  assert.deepEqual(remote.index, { artifact: newest.digest });
  assert.equal(await remote.pin(), `docker://${app.ref}@${app.digest}`);
  const m = parseManifest(read(app.dir, "manifest.json").toString(), "m");
  assert.deepEqual(Buffer.from(await remote.readFile("bootstrap.erofs.zst")), read(app.dir, "bootstrap.erofs.zst"));
  for (const [i, b] of m.blobs.entries()) {
    assert.deepEqual(Buffer.from(await remote.readFile(b.table.path)), read(app.dir, b.table.path));
    assert.equal(await remote.size(b.remote.path), app.stored[i].length);
    assert.deepEqual(Buffer.from(await remote.readRange(b.remote.path, 10, 100)), app.stored[i].subarray(10, 110));
    assert.deepEqual(Buffer.from(await remote.readFile(b.remote.path)), app.stored[i]); // verified against the layer digest
  }
  // Pinned to the older artifact (a restarted daemon keeps the index it mounted): that one, not the newest.
  const older = (await listReferrers(client, repo, app.digest, INDEX_ARTIFACT_TYPE)).find((d) => d.annotations?.[CREATED_ANNOTATION] === T1)!;
  const pinned = new RegistryImageRemote(`docker://${app.ref}`, { indexArtifact: older.digest });
  t.after(() => pinned.close());
  assert.deepEqual(Buffer.from(await pinned.readFile("manifest.json")), read(app.dir, "manifest.json"));
  assert.deepEqual(pinned.index, { artifact: older.digest });
});

const refused = (code: string, re: RegExp) => (err: Error & { code?: string }) => {
  assert.equal(err.code, code, err.message);
  assert.match(err.message, re);
  return true;
};

test("an index built for another image is refused: at the push, and when found as a referrer", async (t) => {
  const other = await pushImage("other");
  await assert.rejects(pushIndexArtifact(client, other.ref, app.dir), refused("IMAGE_INVALID", /index built for another image: its blob blobs\/\w+ is sha256:\w+ \(\d+ bytes\), not a layer of image sha256:/));
  // A lying artifact: app's index with other's manifest as subject (pushed by hand: our push refuses it).
  const mBytes = read(app.dir, "manifest.json");
  const image = { digest: app.digest, mediaType: MEDIA_TYPES.ociManifest, size: (await client.getManifest(repo, app.digest)).size, layers: app.layers };
  const lie = indexArtifactOf({ digest: sha(mBytes), size: mBytes.length }, parseManifest(mBytes.toString(), "m"), image, T2, "test");
  lie.subject = { ...lie.subject, digest: other.digest };
  await pushReferrer(client, repo, Buffer.from(JSON.stringify(lie)), MEDIA_TYPES.ociManifest);
  const remote = new RegistryImageRemote(`docker://${other.ref}`);
  t.after(() => remote.close());
  const lieDigest = sha(JSON.stringify(lie));
  const pinned = new RegistryImageRemote(`docker://${other.ref}`, { indexArtifact: lieDigest });
  t.after(() => pinned.close());
  await assert.rejects(pinned.readFile("manifest.json"), refused("IMAGE_INVALID", /index sha256:\w+: index built for another image/));
  await assert.rejects(remote.readFile("manifest.json"), refused("IMAGE_INVALID", /eod\/plain:other .* has no usable erofs-ondemand index \(index sha256:\w+: index built for another image: its blobs\/\w+ is sha256:\w+ \(\d+ bytes\), not a layer of the image\): make one with `eod index/));
});

test("no index: the error names the reference and the fix", async (t) => {
  const bare = await pushImage("bare");
  const remote = new RegistryImageRemote(`docker://${bare.ref}`);
  t.after(() => remote.close());
  await assert.rejects(remote.readFile("manifest.json"), refused("REGISTRY_NOT_FOUND", /docker:\/\/127\.0\.0\.1:\d+\/eod\/plain:bare \(manifest sha256:\w+\) is not an erofs-ondemand image and has no erofs-ondemand index: make one with `eod index 127\.0\.0\.1:\d+\/eod\/plain:bare --push`, or mount with --index-locally/));
});

test("indexDir (--index-locally): the index image's files from the local directory, its blobs from the registry's layers", async (t) => {
  const local = await pushImage("local");
  const remote = new RegistryImageRemote(`docker://${local.ref}`, { indexDir: local.dir });
  t.after(() => remote.close());
  assert.deepEqual(Buffer.from(await remote.readFile("manifest.json")), read(local.dir, "manifest.json"));
  assert.deepEqual(remote.index, { dir: local.dir });
  const m = parseManifest(read(local.dir, "manifest.json").toString(), "m");
  assert.deepEqual(Buffer.from(await remote.readFile("bootstrap.erofs")), read(local.dir, "bootstrap.erofs"));
  assert.deepEqual(Buffer.from(await remote.readFile(m.blobs[0].table.path)), read(local.dir, m.blobs[0].table.path));
  for (const [i, b] of m.blobs.entries()) assert.deepEqual(Buffer.from(await remote.readRange(b.remote.path, 1, 64)), local.stored[i].subarray(1, 65));
  const before = remote.stats().requests;
  await remote.readFile(m.blobs[1].table.path);
  assert.equal(remote.stats().requests, before, "a local file costs no request");

  const wrong = new RegistryImageRemote(`docker://${local.ref}`, { indexDir: app.dir });
  t.after(() => wrong.close());
  await assert.rejects(wrong.readFile("manifest.json"), refused("IMAGE_INVALID", /index built for another image/));
});

test("a referrers tag that holds something else is not overwritten", async () => {
  const subject = sha("some manifest nobody pushed");
  await client.pushManifest(repo, referrersTag(subject), (await client.getManifest(repo, app.digest)).bytes, MEDIA_TYPES.ociManifest);
  const m = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, artifactType: "application/vnd.example.x",
    config: { mediaType: "application/vnd.oci.empty.v1+json", digest: sha("{}"), size: 2 }, layers: [],
    subject: { mediaType: MEDIA_TYPES.ociManifest, digest: subject, size: 10 },
  }));
  await assert.rejects(pushReferrer(client, repo, m, MEDIA_TYPES.ociManifest), refused("IMAGE_INVALID", /sha256-\w+ should hold the referrers of sha256:\w+ \(an OCI image index\) but holds a application\/vnd\.oci\.image\.manifest\.v1\+json: not overwritten/));
  assert.equal((await client.getManifest(repo, referrersTag(subject))).digest, app.digest);
});

test("an image whose layer the repository lost: the push refuses before uploading anything", async () => {
  const lost = await pushImage("lost");
  const res = await fetch(`${reg.url}/v2/${repo.repository}/blobs/${lost.layers[2].digest}`, { method: "DELETE" });
  assert.equal(res.status, 202);
  await assert.rejects(pushIndexArtifact(client, lost.ref, lost.dir), refused("REGISTRY_NOT_FOUND", /its layer sha256:\w+ is not in 127\.0\.0\.1:\d+\/eod\/plain; push the image again, then the index/));
  assert.deepEqual(await listReferrers(client, repo, lost.digest), []);
});

test("another writer overwrites the referrers tag between our write and our read-back: ours is written again, theirs kept", async () => {
  const subject = { mediaType: MEDIA_TYPES.ociManifest, digest: sha("a subject two clients refer to"), size: 10 };
  const referrer = (artifactType: string) => Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, artifactType,
    config: { mediaType: "application/vnd.oci.empty.v1+json", digest: sha("{}"), size: 2 }, layers: [], subject,
  }));
  const theirs = referrer("application/vnd.example.theirs");
  await client.pushManifest(repo, sha(theirs), theirs, MEDIA_TYPES.ociManifest);
  // The other client read the tag before our write (empty) and puts its list right after ours: only its entry.
  const theirList = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [{ mediaType: MEDIA_TYPES.ociManifest, digest: sha(theirs), size: theirs.length, artifactType: "application/vnd.example.theirs" }] }));
  let raced = 0;
  const racing = {
    getManifest: client.getManifest.bind(client),
    referrers: client.referrers.bind(client),
    async pushManifest(r: Repo, reference: string, bytes: Uint8Array, mediaType: string) {
      const out = await client.pushManifest(r, reference, bytes, mediaType);
      if (reference === referrersTag(subject.digest) && raced++ === 0) await client.pushManifest(r, reference, theirList, MEDIA_TYPES.ociIndex);
      return out;
    },
  };
  const ours = referrer("application/vnd.example.ours");
  const pushed = await pushReferrer(racing, repo, ours, MEDIA_TYPES.ociManifest);
  assert.equal(pushed.via, "tag");
  assert.equal(raced, 2, "the tag was written twice: once lost to the other writer, once after the read-back");
  assert.deepEqual((await listReferrers(client, repo, subject.digest)).map((d) => d.digest), [sha(theirs), sha(ours)]);
});
