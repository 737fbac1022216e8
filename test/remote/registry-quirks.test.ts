// Registries that behave unlike distribution but are out there (object stores behind CDNs, proxies,
// registries of other vendors), imitated by the fault proxy in front of the real registry: Range ignored
// (200 with the whole blob), no Content-Length (chunked answers), no Docker-Content-Digest, HEAD refused
// (405), 429/503 with Retry-After; and a non-distributable layer the registry does not serve.
import { after, before, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import http from "node:http";
import { pushTestImage, registryProxy, startRegistry, type PushedTestImage, type RegistryProxy, type RunningRegistry } from "../helpers/registry.ts";
import { MEDIA_TYPES, RegistryClient, RegistryRemote, sha256Digest, staticCredentials, type Repo } from "../../src/remote/registry/index.ts";

interface Quirks {
  /** Drop the Range header of blob GETs (the registry then answers 200 with the whole blob). */
  ignoreRange?: boolean;
  /** Headers removed from every answer. */
  strip?: string[];
  /** HEAD answered 405 Method Not Allowed. */
  noHead?: boolean;
  /** The next requests matching are answered with this status and Retry-After. */
  busy?: { status: number; retryAfter: string; count: number; match: (req: http.IncomingMessage) => boolean };
}

let reg: RunningRegistry;
let proxy: RegistryProxy | undefined;
let quirks: Quirks = {};
const seen: Array<{ method: string; url: string; range?: string; at: number }> = [];
let client: RegistryClient;
let repo: Repo;
let image: PushedTestImage;

before(async () => {
  reg = await startRegistry();
  proxy = await registryProxy(reg.host, {
    before(req, res) {
      seen.push({ method: req.method!, url: req.url!, range: req.headers.range, at: Date.now() });
      const busy = quirks.busy;
      if (busy && busy.count > 0 && busy.match(req)) {
        busy.count--;
        req.resume();
        res.writeHead(busy.status, { "retry-after": busy.retryAfter, "content-type": "application/json" });
        res.end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
        return true;
      }
      if (quirks.noHead && req.method === "HEAD") {
        req.resume();
        res.writeHead(405, { allow: "GET" }).end();
        return true;
      }
      if (quirks.ignoreRange && req.method === "GET" && /\/blobs\/sha256:/.test(req.url!)) delete req.headers.range;
      return false;
    },
    head(_req, answer) {
      for (const h of quirks.strip ?? []) delete answer.headers[h];
    },
  });
  client = new RegistryClient({ credentials: staticCredentials({}), backoff: { baseMs: 5, capMs: 20 } });
  repo = { registry: proxy.host, repository: "eod/quirks" };
  image = await pushTestImage(client, repo, "v1", 300_000);
});

after(async () => {
  await client?.close();
  await proxy?.close();
  await reg?.stop();
});

beforeEach(() => { quirks = {}; seen.length = 0; });

test("a registry that ignores Range (200 with the whole blob): a range from 0 is cut from it, others are refused at once", async () => {
  quirks.ignoreRange = true;
  const layer = image.platforms["linux/amd64"].layers[0];
  const digest = sha256Digest(layer);
  assert.deepEqual(Buffer.from(await client.readBlobRange(repo, digest, 0, 100)), layer.subarray(0, 100));
  await assert.rejects(client.readBlobRange(repo, digest, 0, layer.length + 10), { code: "IMAGE_INVALID", message: /past the end of the file/ });
  // Anywhere else the blob up to the range would be downloaded for one chunk: the same policy as the HTTP remote.
  seen.length = 0;
  await assert.rejects(client.readBlobRange(repo, digest, 1000, 5000), { code: "REMOTE_STATUS", status: 200, message: /ignored the range/ });
  const remote = new RegistryRemote(client, repo);
  await assert.rejects(remote.readRange(digest, 200_000, 100_000), { code: "REMOTE_STATUS", status: 200 });
  assert.equal(seen.filter((s) => s.method === "GET").length, 2, "a refused answer is not retried");
  assert.ok(seen.every((s) => s.range?.startsWith("bytes=")), "ranges were asked for");
});

test("answers without Content-Length (chunked) and without Docker-Content-Digest", async () => {
  quirks.strip = ["content-length", "docker-content-digest"];
  const amd = image.platforms["linux/amd64"];
  const img = await client.resolve(`${proxy!.host}/eod/quirks:v1`);
  assert.equal(img.digest, amd.digest, "the digest is computed from the bytes");
  assert.equal(img.index?.digest, image.index.digest);
  assert.deepEqual(Buffer.from(await client.fetchBlob(repo, img.manifest.layers[1])), amd.layers[1]);
  assert.deepEqual(Buffer.from(await client.readBlobRange(repo, img.manifest.layers[0].digest, 10, 20)), amd.layers[0].subarray(10, 30));
  assert.equal(await client.blobSize(repo, img.manifest.layers[0].digest), amd.layers[0].length, "a HEAD without Content-Length: asked by GET");
  assert.equal(await client.blobSize(repo, sha256Digest(Buffer.from("absent"))), undefined);
});

test("HEAD refused (405): sizes and existence checks fall back to a one-byte GET; pushes still work", async () => {
  quirks.noHead = true;
  const amd = image.platforms["linux/amd64"];
  assert.equal(await client.blobSize(repo, sha256Digest(amd.layers[0])), amd.layers[0].length);
  assert.equal(await client.blobSize(repo, sha256Digest(Buffer.from("absent"))), undefined);
  assert.equal((await client.pushBlob(repo, amd.config)).how, "exists");
  const fresh = randomBytes(20_000);
  assert.equal((await client.pushBlob(repo, fresh)).how, "uploaded");
  assert.equal(await client.blobSize(repo, sha256Digest(fresh)), fresh.length);
  const empty = await client.pushBlob(repo, new Uint8Array(0));
  assert.equal(await client.blobSize(repo, empty.digest), 0, "an empty blob (416 to bytes=0-0) has size 0");
  assert.ok(seen.some((s) => s.method === "GET" && s.range === "bytes=0-0"));
});

test("429 and 503 with Retry-After are waited for; a Retry-After longer than 30 s fails at once naming it", async () => {
  const amd = image.platforms["linux/amd64"];
  const isManifest = (req: http.IncomingMessage) => req.method === "GET" && /\/manifests\//.test(req.url!);
  quirks.busy = { status: 429, retryAfter: "1", count: 1, match: isManifest };
  const t0 = Date.now();
  assert.equal((await client.resolve(`${proxy!.host}/eod/quirks:v1`)).digest, amd.digest);
  const gets = seen.filter((s) => isManifest(s as unknown as http.IncomingMessage));
  assert.ok(gets[1].at - gets[0].at >= 950, `waited ${gets[1].at - gets[0].at} ms for Retry-After: 1`);
  assert.ok(Date.now() - t0 < 5000);

  const when = new Date(Date.now() + 1500).toUTCString(); // an HTTP date, rounded down to the second
  quirks.busy = { status: 503, retryAfter: when, count: 1, match: (req) => req.method === "GET" && /\/blobs\//.test(req.url!) };
  assert.deepEqual(Buffer.from(await client.fetchBlob(repo, sha256Digest(amd.config))), amd.config);

  seen.length = 0;
  quirks.busy = { status: 429, retryAfter: "3600", count: 10, match: isManifest };
  const retries = client.stats().retries;
  await assert.rejects(client.resolve(`${proxy!.host}/eod/quirks:v1`), (err: Error & { code?: string }) => {
    assert.equal(err.code, "REMOTE_STATUS");
    assert.match(err.message, /HTTP 429: TOOMANYREQUESTS: slow down; the registry asks to wait 3600 s \(Retry-After\)/);
    return true;
  });
  assert.equal(seen.length, 1, "not retried");
  assert.equal(client.stats().retries, retries);
});

test("a non-distributable (foreign) layer the registry does not serve is a clear error naming its URLs", async () => {
  const digest = sha256Digest(Buffer.from("a windows base layer"));
  const foreign = { mediaType: MEDIA_TYPES.dockerLayerForeign, digest, size: 20, urls: ["https://mcr.example/layer.tar.gz"] };
  await assert.rejects(client.fetchBlob(repo, foreign), (err: Error & { code?: string }) => {
    assert.equal(err.code, "SOURCE_UNSUPPORTED");
    assert.match(err.message, /is a non-distributable layer \(application\/vnd\.docker\.image\.rootfs\.foreign\.diff\.tar\.gzip\) that 127\.0\.0\.1:\d+\/eod\/quirks does not serve; its data is at https:\/\/mcr\.example\/layer\.tar\.gz, which eod does not fetch/);
    return true;
  });
  // An ordinary missing blob stays REGISTRY_NOT_FOUND.
  await assert.rejects(client.fetchBlob(repo, { ...foreign, mediaType: MEDIA_TYPES.ociLayerGzip, urls: undefined }), { code: "REGISTRY_NOT_FOUND" });
});
