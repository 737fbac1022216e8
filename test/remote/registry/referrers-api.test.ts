// The referrers API path (GET /v2/<name>/referrers/<digest>, the OCI-Subject answer to a push), which the
// distribution registry our other tests run (2.8) does not have: a small node:http server stands in for a
// registry that has it, answering only those requests. What it checks is our client: pages followed through
// Link, the artifactType filter applied by us when the registry did not, a 404 or a non-index answer taken
// as "no API", and a push the registry acknowledged with OCI-Subject leaving the referrers tag alone.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { RegistryClient, staticCredentials, type Repo } from "../../../src/remote/registry/index.ts";
import { listReferrers, pushReferrer } from "../../../src/remote/registry/referrers.ts";

const sha = (b: Uint8Array | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const d = (c: string) => `sha256:${c.repeat(64)}`;
const INDEX = "application/vnd.oci.image.index.v1+json";
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const ref = (digest: string, artifactType: string) => ({ mediaType: MANIFEST, digest, size: 10, artifactType });

const SUBJECT = d("5");
const NO_API = d("6");
const HTML = d("7");
let server: http.Server;
let client: RegistryClient;
let repo: Repo;
const seen: string[] = [];

before(async () => {
  server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const url = new URL(req.url!, "http://x");
    const m = /^\/v2\/app\/referrers\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    if (req.method === "GET" && m) {
      if (m[1] === NO_API) return res.writeHead(404, { "content-type": "text/plain" }).end("404 page not found");
      if (m[1] === HTML) return res.writeHead(200, { "content-type": "text/html" }).end("<html></html>");
      const filter = url.searchParams.get("artifactType");
      const page = url.searchParams.get("page") ?? "1";
      // Page 1 applies a filter when asked (and says so), page 2 ignores it: the client must filter itself.
      let manifests = page === "1" ? [ref(d("a"), "t/one"), ref(d("b"), "t/two")] : [ref(d("c"), "t/one"), ref(d("e"), "t/two")];
      const headers: Record<string, string> = { "content-type": INDEX };
      if (filter && page === "1") { manifests = manifests.filter((x) => x.artifactType === filter); headers["oci-filters-applied"] = "artifactType"; }
      if (page === "1") headers.link = `</v2/app/referrers/${m[1]}?page=2${filter ? `&artifactType=${encodeURIComponent(filter)}` : ""}>; rel="next"`;
      return res.writeHead(200, headers).end(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests }));
    }
    if (req.method === "GET" && url.pathname === `/v2/app/manifests/sha256-${"5".repeat(64)}`) {
      // The subject's referrers tag too (left by a client before the registry had the API): not what the API says.
      const body = JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [ref(d("f"), "t/one")] });
      return res.writeHead(200, { "content-type": INDEX, "docker-content-digest": sha(body) }).end(body);
    }
    const put = /^\/v2\/app\/manifests\/(.+)$/.exec(url.pathname);
    if (req.method === "PUT" && put) {
      const parts: Buffer[] = [];
      req.on("data", (c: Buffer) => parts.push(c));
      req.on("end", () => {
        const body = Buffer.concat(parts);
        const subject = (JSON.parse(body.toString()) as { subject?: { digest: string } }).subject?.digest;
        res.writeHead(201, { "docker-content-digest": sha(body), ...(subject ? { "oci-subject": subject } : {}) }).end();
      });
      return;
    }
    res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN", message: "not here" }] }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  repo = { registry: `127.0.0.1:${(server.address() as AddressInfo).port}`, repository: "app" };
  client = new RegistryClient({ credentials: staticCredentials({}) });
});

after(async () => {
  await client?.close();
  server?.close();
});

test("the referrers API: pages followed through Link; the artifactType filter applied where the registry did not; the API wins over the tag", async () => {
  assert.deepEqual((await client.referrers(repo, SUBJECT))?.map((x) => x.digest), [d("a"), d("b"), d("c"), d("e")]);
  assert.deepEqual((await listReferrers(client, repo, SUBJECT, "t/one")).map((x) => x.digest), [d("a"), d("c")]);
});

test("a 404 or an answer that is not an OCI index: no referrers API, the referrers tag is read instead", async () => {
  assert.equal(await client.referrers(repo, NO_API), undefined);
  assert.equal(await client.referrers(repo, HTML), undefined);
  seen.length = 0;
  assert.deepEqual(await listReferrers(client, repo, NO_API), []); // and the tag is missing too: none
  assert.deepEqual(seen.sort(), [`GET /v2/app/manifests/sha256-${"6".repeat(64)}`, `GET /v2/app/referrers/${NO_API}`]);
});

test("a push the registry acknowledges with OCI-Subject: recorded by the registry, the referrers tag untouched", async () => {
  seen.length = 0;
  const m = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MANIFEST, artifactType: "t/one",
    config: { mediaType: "application/vnd.oci.empty.v1+json", digest: sha("{}"), size: 2 }, layers: [],
    subject: { mediaType: MANIFEST, digest: SUBJECT, size: 10 },
  }));
  const pushed = await pushReferrer(client, repo, m, MANIFEST);
  assert.equal(pushed.via, "api");
  assert.equal(pushed.digest, sha(m));
  assert.deepEqual(seen, [`PUT /v2/app/manifests/${sha(m)}`]);
});
