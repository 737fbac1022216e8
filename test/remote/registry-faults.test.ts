// Faults between the client and the real registry, injected by a small loopback proxy in front of it:
// a connection dropped mid-blob (retried, resumed with Range), a 503 (retried), a manifest whose bytes
// were changed on the way (refused), a blob whose bytes were changed (refused, not retried).
import { after, before, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import http from "node:http";
import { pushTestImage, registryProxy, startRegistry, type PushedTestImage, type RegistryProxy, type RunningRegistry } from "../helpers/registry.ts";
import { RegistryClient, RegistryRemote, sha256Digest, staticCredentials, type Repo } from "../../src/remote/registry/index.ts";

type What = "drop" | "503" | "flip" | "stall";
type Fault = (req: http.IncomingMessage) => What | undefined;

let reg: RunningRegistry;
let proxy: RegistryProxy | undefined;
/** The fault chosen for each request when it came in (its body is written later). */
const what = new WeakMap<http.IncomingMessage, string | undefined>();
let proxyHost: string;
let fault: Fault | undefined;
const seen: Array<{ method: string; url: string; range?: string }> = [];
let image: PushedTestImage;
let client: RegistryClient;
let repo: Repo;

before(async () => {
  reg = await startRegistry();
  proxy = await registryProxy(reg.host, {
    before(req, res) {
      seen.push({ method: req.method!, url: req.url!, range: req.headers.range });
      what.set(req, fault?.(req));
      if (what.get(req) !== "503") return false;
      req.resume();
      res.writeHead(503, { "content-type": "application/json" }).end('{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}');
      return true;
    },
    body(req, res, body) {
      const f = what.get(req);
      if (f === "stall") {
        res.write(body.subarray(0, body.length >> 1)); // and nothing more, connection left open
      } else if (f === "drop" && body.length > 1) {
        // Half the body, then the connection goes away.
        res.write(body.subarray(0, body.length >> 1), () => res.socket?.destroy());
      } else if (f === "flip" && body.length > 0) {
        const i = body.indexOf("sha256:") >= 0 ? body.indexOf("sha256:") + 20 : body.length >> 1;
        body[i] = body[i] === 0x61 ? 0x62 : 0x61; // one byte, same length, still JSON for a manifest
        res.end(body);
      } else {
        res.end(body);
      }
    },
  });
  proxyHost = proxy.host;
  client = new RegistryClient({ credentials: staticCredentials({}), backoff: { baseMs: 5, capMs: 20 } });
  repo = { registry: proxyHost, repository: "eod/faults" };
  image = await pushTestImage(client, repo, "v1", 300_000);
});

after(async () => {
  await client?.close();
  await proxy?.close();
  await reg?.stop();
});

beforeEach(() => { fault = undefined; seen.length = 0; });

const isBlobGet = (req: http.IncomingMessage) => req.method === "GET" && /\/blobs\/sha256:/.test(req.url!);
const isManifestGet = (req: http.IncomingMessage) => req.method === "GET" && /\/manifests\//.test(req.url!);

/** A fault for the first `n` requests that match. */
function firstN(n: number, match: (req: http.IncomingMessage) => boolean, what: What): Fault {
  return (req) => (match(req) && n-- > 0 ? what : undefined);
}

test("a connection dropped mid-blob is retried, resuming with a Range request, and the blob verifies", async () => {
  const layer = image.platforms["linux/amd64"].layers[0];
  const d = { mediaType: "x", digest: sha256Digest(layer), size: layer.length };
  fault = firstN(2, isBlobGet, "drop");
  const before = client.stats().retries;
  assert.deepEqual(Buffer.from(await client.fetchBlob(repo, d)), layer);
  assert.equal(client.stats().retries - before, 2);
  const gets = seen.filter((s) => s.method === "GET");
  assert.equal(gets.length, 3);
  assert.equal(gets[0].range, undefined);
  assert.match(gets[1].range!, /^bytes=\d+-$/); // resumed where the data stopped
  assert.ok(Number(/\d+/.exec(gets[1].range!)![0]) > 0);
});

test("a dropped Range read and a 503 are retried; a registry that keeps failing gives the last error", async () => {
  const layer = image.platforms["linux/arm64"].layers[0];
  const digest = sha256Digest(layer);
  const remote = new RegistryRemote(client, repo);
  fault = firstN(1, isBlobGet, "drop");
  assert.deepEqual(Buffer.from(await remote.readRange(digest, 1000, 100_000)), layer.subarray(1000, 101_000));
  fault = firstN(2, isManifestGet, "503");
  assert.equal((await client.resolve(`${proxyHost}/eod/faults:v1`)).digest, image.platforms["linux/amd64"].digest);
  fault = (req) => (isBlobGet(req) ? "503" : undefined);
  await assert.rejects(remote.readRange(digest, 0, 10), { code: "REMOTE_STATUS", status: 503 });
  assert.equal(seen.filter((s) => s.method === "GET" && /blobs/.test(s.url)).length, 1 + 1 + 4); // 4 = first try + 3 retries
});

test("an upload that fails with 503 is retried from a new session", async () => {
  const blob = randomBytes(50_000);
  fault = firstN(1, (req) => req.method === "PATCH", "503");
  const d = await client.pushBlob(repo, blob, { chunkSize: 20_000 });
  assert.equal(d.how, "uploaded");
  assert.equal(seen.filter((s) => s.method === "POST").length, 2);
  assert.deepEqual(Buffer.from(await client.fetchBlob(repo, d)), blob);
});

test("a manifest changed on the way is refused: by tag (Docker-Content-Digest) and by digest", async () => {
  fault = firstN(100, isManifestGet, "flip");
  await assert.rejects(client.resolve(`${proxyHost}/eod/faults:v1`), (err: Error & { code?: string }) => {
    assert.equal(err.code, "DIGEST_MISMATCH");
    assert.match(err.message, /refused, content does not match Docker-Content-Digest/);
    return true;
  });
  const digest = image.platforms["linux/amd64"].digest;
  await assert.rejects(client.resolve(`${proxyHost}/eod/faults@${digest}`), (err: Error & { code?: string }) => {
    assert.equal(err.code, "DIGEST_MISMATCH");
    assert.match(err.message, new RegExp(`manifest 127\\.0\\.0\\.1:\\d+/eod/faults@${digest}: refused: content has digest sha256:[0-9a-f]+, expected ${digest}`));
    return true;
  });
  assert.equal(seen.length, 2, "a digest mismatch is not retried");
});

test("a blob changed on the way is refused and not retried", async () => {
  const layer = image.platforms["linux/amd64"].layers[1];
  fault = firstN(100, isBlobGet, "flip");
  await assert.rejects(client.fetchBlob(repo, { mediaType: "x", digest: sha256Digest(layer), size: layer.length }), { code: "DIGEST_MISMATCH" });
  assert.equal(seen.length, 1);
});

test("a body that stalls times out (REMOTE_TIMEOUT) and is retried; the caller's abort is final", async (t) => {
  const quick = new RegistryClient({ credentials: staticCredentials({}), timeoutMs: 300, backoff: { baseMs: 5, capMs: 20 } });
  t.after(() => quick.close());
  const layer = image.platforms["linux/amd64"].layers[0];
  const digest = sha256Digest(layer);
  fault = firstN(1, isBlobGet, "stall");
  assert.deepEqual(Buffer.from(await quick.readBlobRange(repo, digest, 0, 200_000)), layer.subarray(0, 200_000));
  assert.equal(quick.stats().retries, 1);
  fault = (req) => (isBlobGet(req) ? "stall" : undefined);
  await assert.rejects(quick.readBlobRange(repo, digest, 0, 200_000), { code: "REMOTE_TIMEOUT" });

  // Abort while a stream is stalled: the reason comes back at once, nothing is retried.
  const ac = new AbortController();
  const retriesBefore = client.stats().retries;
  const started = Date.now();
  await assert.rejects((async () => {
    for await (const _ of client.blobStream(repo, digest, { signal: ac.signal })) ac.abort(new Error("user gave up"));
  })(), /user gave up/);
  assert.ok(Date.now() - started < 2000);
  assert.equal(client.stats().retries, retriesBefore);
});
