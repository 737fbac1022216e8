// Registry authentication against the real registry: htpasswd basic auth, a token server (bearer tokens,
// written for the test in test/helpers/registry.ts), credentials from a DOCKER_CONFIG config.json (auths,
// identitytoken) and from a docker-credential-* helper, and a redirect to another host that must not
// carry the Authorization header.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { freePort, pushTestImage, registryProxy, startRegistry, startTokenServer, type RunningRegistry, type TokenServer } from "../helpers/registry.ts";
import { dockerCredentials, RegistryClient, RegistryRemote, sha256Digest, staticCredentials, type Credentials, type Repo } from "../../src/remote/registry/index.ts";

let tmp: string;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "eod-registry-auth-")); });
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const authError = (re: RegExp) => (err: Error & { code?: string }) => {
  assert.equal(err.code, "REGISTRY_AUTH", err.message);
  assert.match(err.message, re);
  return true;
};

/** A client with the given credentials for `host`, closed by the caller. */
function clientFor(host: string, creds?: Credentials): RegistryClient {
  return new RegistryClient({ credentials: staticCredentials(creds ? { [host]: creds } : {}), retries: 1 });
}

/** Writes $DOCKER_CONFIG/config.json in a fresh directory and returns the directory. */
function dockerConfig(config: object): string {
  const dir = fs.mkdtempSync(path.join(tmp, "docker-"));
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config));
  return dir;
}

describe("htpasswd basic auth", () => {
  let reg: RunningRegistry;
  before(async () => { reg = await startRegistry({ htpasswd: { alice: "s3cret", bob: "pw:with:colons" } }); });
  after(() => reg?.stop());

  test("the right credentials push and pull; wrong ones and none give a clear auth error", async () => {
    const repo: Repo = { registry: reg.host, repository: "team/app" };
    const good = clientFor(reg.host, { username: "alice", password: "s3cret" });
    try {
      const img = await pushTestImage(good, repo, "v1", 50_000);
      const got = await good.resolve(`${reg.host}/team/app:v1`);
      assert.equal(got.digest, img.platforms["linux/amd64"].digest);
    } finally { await good.close(); }

    const wrong = clientFor(reg.host, { username: "alice", password: "nope" });
    try {
      await assert.rejects(wrong.resolve(`${reg.host}/team/app:v1`), authError(new RegExp(`^authentication failed for ${reg.host.replace(/\./g, "\\.")}: user name or password refused`)));
      assert.equal(wrong.stats().retries, 0);
    } finally { await wrong.close(); }

    const none = clientFor(reg.host);
    try {
      await assert.rejects(none.resolve(`${reg.host}/team/app:v1`), authError(/authentication required for 127\.0\.0\.1:\d+: .*none is configured/));
    } finally { await none.close(); }
  });

  test("challenges in several WWW-Authenticate lines are all read (an unknown scheme first, Basic second)", async (t) => {
    const proxy = await registryProxy(reg.host, {
      head(_req, answer) {
        if (answer.status === 401) answer.headers["www-authenticate"] = ['Negotiate', `${answer.headers["www-authenticate"]}`] as unknown as string;
      },
    });
    t.after(() => proxy.close());
    const c = clientFor(proxy.host, { username: "alice", password: "s3cret" });
    t.after(() => c.close());
    assert.ok((await c.resolve(`${proxy.host}/team/app:v1`)).digest);
  });

  test("credentials from $DOCKER_CONFIG/config.json: base64 auth, username/password; a malformed file is named", async () => {
    const saved = process.env.DOCKER_CONFIG;
    try {
      process.env.DOCKER_CONFIG = dockerConfig({ auths: { [reg.host]: { auth: Buffer.from("bob:pw:with:colons").toString("base64") } } });
      const c1 = new RegistryClient(); // default credentials: docker's config, found through DOCKER_CONFIG
      try { await pushTestImage(c1, { registry: reg.host, repository: "team/cfg" }, "v1", 10_000); } finally { await c1.close(); }

      const c2 = new RegistryClient({ credentials: dockerCredentials({ env: { DOCKER_CONFIG: dockerConfig({ auths: { [`http://${reg.host}/v1/`]: { username: "alice", password: "s3cret" } } }) } }) });
      try { assert.ok(await c2.resolve(`${reg.host}/team/cfg:v1`)); } finally { await c2.close(); }

      const bad = dockerConfig({});
      fs.writeFileSync(path.join(bad, "config.json"), "{ not json");
      const c3 = new RegistryClient({ credentials: dockerCredentials({ env: { DOCKER_CONFIG: bad } }) });
      try { await assert.rejects(c3.resolve(`${reg.host}/team/cfg:v1`), authError(/Cannot read docker config .*config\.json/)); } finally { await c3.close(); }
    } finally {
      if (saved === undefined) delete process.env.DOCKER_CONFIG; else process.env.DOCKER_CONFIG = saved;
    }
  });

  test("credentials from a docker-credential helper (credHelpers and credsStore), server URL on stdin", async () => {
    const bin = fs.mkdtempSync(path.join(tmp, "bin-"));
    const log = path.join(bin, "asked");
    // A helper as docker runs it: `get`, the server URL on stdin, JSON on stdout; "not found" for others.
    fs.writeFileSync(path.join(bin, "docker-credential-eodtest"), `#!/bin/sh
[ "$1" = get ] || exit 2
read -r url
echo "$url" >> "${log}"
if [ "$url" = "${reg.host}" ]; then printf '{"ServerURL":"%s","Username":"alice","Secret":"s3cret"}' "$url"; exit 0; fi
echo "credentials not found in native keychain"; exit 1
`, { mode: 0o755 });
    const savedPath = process.env.PATH;
    process.env.PATH = `${bin}:${savedPath}`;
    try {
      for (const config of [{ credHelpers: { [reg.host]: "eodtest" } }, { credsStore: "eodtest" }]) {
        const c = new RegistryClient({ credentials: dockerCredentials({ env: { DOCKER_CONFIG: dockerConfig(config) } }) });
        try { await pushTestImage(c, { registry: reg.host, repository: "team/helper" }, "v1", 10_000); } finally { await c.close(); }
      }
      assert.deepEqual(fs.readFileSync(log, "utf8").trim().split("\n"), [reg.host, reg.host]); // asked once per store
      // A helper that is not installed: anonymous, so the registry's demand is the error.
      const c = new RegistryClient({ credentials: dockerCredentials({ env: { DOCKER_CONFIG: dockerConfig({ credsStore: "eod-not-installed" }) } }) });
      try { await assert.rejects(c.resolve(`${reg.host}/team/helper:v1`), authError(/authentication required/)); } finally { await c.close(); }
    } finally {
      process.env.PATH = savedPath;
    }
  });
});

describe("token server (bearer)", () => {
  let ts: TokenServer;
  let reg: RunningRegistry;
  before(async () => {
    ts = await startTokenServer({ alice: "s3cret" }, { refreshTokens: { "refresh-abc": "alice" } });
    reg = await startRegistry({ token: ts });
  });
  after(async () => { await reg?.stop(); await ts?.close(); });

  test("the right credentials get tokens (cached per scope) to push and pull; wrong ones a clear auth error", async () => {
    const good = clientFor(reg.host, { username: "alice", password: "s3cret" });
    try {
      const repo: Repo = { registry: reg.host, repository: "team/app" };
      const img = await pushTestImage(good, repo, "v1", 50_000);
      const got = await good.resolve(`${reg.host}/team/app:v1`, { platform: "linux/arm64" });
      assert.equal(got.digest, img.platforms["linux/arm64"].digest);
      await good.fetchBlob(repo, got.manifest.layers[0]);
      // one token for pull (the HEAD before the first push) and one for push: every other request reused them
      assert.deepEqual(ts.requests.map((r) => [r.user, r.scope.join(" ")]), [
        ["alice", "repository:team/app:pull"],
        ["alice", "repository:team/app:pull,push"],
      ]);
      // mount scope names both repositories
      assert.equal((await good.pushBlob({ registry: reg.host, repository: "team/b" }, img.platforms["linux/amd64"].config, { mountFrom: "team/app" })).how, "mounted");
      assert.deepEqual(ts.requests.at(-1)!.scope, ["repository:team/b:pull,push", "repository:team/app:pull"]);
    } finally { await good.close(); }

    const wrong = clientFor(reg.host, { username: "alice", password: "wrong" });
    try {
      await assert.rejects(wrong.resolve(`${reg.host}/team/app:v1`),
        authError(/^authentication failed for 127\.0\.0\.1:\d+: token server http:\/\/127\.0\.0\.1:\d+\/token refused user alice for repository:team\/app:pull \(HTTP 401: invalid username or password\)/));
    } finally { await wrong.close(); }

    const anon = clientFor(reg.host);
    try {
      await assert.rejects(anon.resolve(`${reg.host}/team/app:v1`), authError(/refused anonymous/));
    } finally { await anon.close(); }
  });

  test("concurrent first requests share one token; an expired token is fetched again", async () => {
    const c = clientFor(reg.host, { username: "alice", password: "s3cret" });
    try {
      const repo: Repo = { registry: reg.host, repository: "team/app" };
      const img = await c.resolve(`${reg.host}/team/app:v1`); // pushed by the test above
      const layer = img.manifest.layers[0];
      ts.requests.length = 0;
      ts.expiresIn = 11; // cached for 1 s (10 s margin)
      const remote = new RegistryRemote(c, repo);
      await Promise.all(Array.from({ length: 12 }, (_, i) => remote.readRange(layer.digest, i * 1000, 1000)));
      assert.equal(ts.requests.length, 0, "the resolve's pull token is reused");
      const c2 = clientFor(reg.host, { username: "alice", password: "s3cret" });
      try {
        const r2 = new RegistryRemote(c2, repo);
        await Promise.all(Array.from({ length: 12 }, (_, i) => r2.readRange(layer.digest, i * 1000, 1000)));
        assert.equal(ts.requests.length, 1, "one token for twelve concurrent cold reads");
        await new Promise((r) => setTimeout(r, 1100));
        await r2.readRange(layer.digest, 0, 10);
        assert.equal(ts.requests.length, 2, "a new token after expiry");
      } finally { await c2.close(); }
    } finally {
      ts.expiresIn = 300;
      await c.close();
    }
  });

  test("anonymous pull tokens for a public repository (push still refused); a token server answering only access_token", async () => {
    const repo: Repo = { registry: reg.host, repository: "team/app" }; // pushed by the first test
    ts.anonymousPull = true;
    const anon = clientFor(reg.host);
    try {
      const img = await anon.resolve(`${reg.host}/team/app:v1`);
      await anon.fetchBlob(repo, img.manifest.layers[0]);
      assert.deepEqual(ts.requests.at(-1), { method: "GET", scope: ["repository:team/app:pull"], user: undefined });
      await assert.rejects(anon.pushBlob(repo, randomBytes(100)), authError(/authentication failed for 127\.0\.0\.1:\d+: .*HTTP 401/));
    } finally {
      ts.anonymousPull = false;
      await anon.close();
    }
    ts.field = "access_token";
    const c = clientFor(reg.host, { username: "alice", password: "s3cret" });
    try {
      const img = await c.resolve(`${reg.host}/team/app:v1`);
      await c.fetchBlob(repo, img.manifest.config);
    } finally {
      ts.field = "both";
      await c.close();
    }
  });

  test("an identitytoken from config.json is traded at the realm by POST (OAuth2 refresh token)", async () => {
    const c = new RegistryClient({ credentials: dockerCredentials({ env: { DOCKER_CONFIG: dockerConfig({ auths: { [reg.host]: { identitytoken: "refresh-abc" } } }) } }) });
    try {
      await pushTestImage(c, { registry: reg.host, repository: "team/idtoken" }, "v1", 10_000);
      assert.equal(ts.requests.at(-1)!.method, "POST");
    } finally { await c.close(); }
  });
});

test("a blob redirected to another host (storage) is fetched without the registry's Authorization", async (t) => {
  // A storage server on 127.0.0.2 (another host) serving the registry's files, as S3 would.
  let dataDir = "";
  const seen: Array<string | undefined> = [];
  let deny = false;
  const stolen: string[] = [];
  const storage = http.createServer((req, res) => {
    if (req.url!.startsWith("/steal")) { stolen.push(req.headers.authorization ?? "(none)"); res.writeHead(200).end('{"token":"x"}'); return; }
    seen.push(req.headers.authorization);
    if (deny) {
      // An expired signed URL, with challenges that must not be answered with the registry's credentials.
      res.writeHead(401, { "www-authenticate": `Bearer realm="http://127.0.0.2:${port}/steal",service="s3", Basic realm="storage"` }).end("<Error>ExpiredToken</Error>");
      return;
    }
    const file = path.join(dataDir, decodeURIComponent(new URL(req.url!, "http://x").pathname));
    if (!file.startsWith(dataDir) || !fs.existsSync(file)) { res.writeHead(404).end(); return; }
    const all = fs.readFileSync(file);
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    if (m) {
      const end = m[2] ? Number(m[2]) : all.length - 1;
      res.writeHead(206, { "content-range": `bytes ${m[1]}-${end}/${all.length}`, "content-length": end - Number(m[1]) + 1 });
      res.end(all.subarray(Number(m[1]), end + 1));
    } else {
      res.writeHead(200, { "content-length": all.length }).end(all);
    }
  });
  const port = await freePort("127.0.0.2");
  await new Promise<void>((resolve) => storage.listen(port, "127.0.0.2", resolve));
  t.after(() => new Promise<void>((resolve) => { storage.close(() => resolve()); storage.closeAllConnections(); }));
  const reg = await startRegistry({ htpasswd: { alice: "s3cret" }, redirectBaseUrl: `http://127.0.0.2:${port}/` });
  t.after(() => reg.stop());
  dataDir = reg.dataDir;
  const client = clientFor(reg.host, { username: "alice", password: "s3cret" });
  t.after(() => client.close());
  const repo: Repo = { registry: reg.host, repository: "team/redirect" };
  const blob = randomBytes(70_000);
  const d = await client.pushBlob(repo, blob);
  assert.deepEqual(Buffer.from(await client.fetchBlob(repo, d)), blob);
  assert.deepEqual(Buffer.from(await client.readBlobRange(repo, d.digest, 100, 50)), blob.subarray(100, 150));
  assert.equal(seen.length, 2, "both reads went through the storage host");
  assert.deepEqual(seen, [undefined, undefined]);
  assert.equal(sha256Digest(blob), d.digest);

  // The storage host refuses (401 with its own challenges): an error naming it, retried (a new redirect
  // brings a new signed URL), and nothing of ours sent to it or to the realm it names.
  deny = true;
  seen.length = 0;
  await assert.rejects(client.fetchBlob(repo, d), (err: Error & { code?: string }) => {
    assert.equal(err.code, "REMOTE_IO");
    assert.match(err.message, /redirected to http:\/\/127\.0\.0\.2:\d+, which refused it \(HTTP 401: <Error>ExpiredToken<\/Error>\); credentials are never sent there/);
    return true;
  });
  assert.deepEqual(stolen, []);
  assert.deepEqual(seen, [undefined, undefined], "tried twice (retries: 1), never with credentials");
});
