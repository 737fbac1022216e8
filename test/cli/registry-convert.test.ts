// `eod convert` against the real CNCF registry (Debian's docker-registry) on 127.0.0.1: a three-layer OCI
// image (whiteouts, opaque directory, hard links, xattrs, long names) converted to another repository; the
// pushed OCI form (containerd layer media types, titles, the eod.manifest annotation, source annotation, the
// source config with diff_ids naming our layers); the files are exactly
// what `eod build` makes of the same layers; a second convert pushes nothing; missing tag; htpasswd basic
// auth through DOCKER_CONFIG (right and wrong password; a destination refusing our pushes is found out before
// any layer is read); a layer whose bytes change on the way is refused.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import dns from "node:dns/promises";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { eodAsync } from "../helpers/lazy.ts";
import { pushOciImage, writeTestLayers, type TestImageFiles } from "../helpers/oci-image.ts";
import { registryProxy, startRegistry, startTokenServer, type RunningRegistry } from "../helpers/registry.ts";
import { tarArchive } from "../helpers/tar-layer.ts";
import { isLoopback, RegistryClient, staticCredentials } from "../../src/remote/registry/index.ts";
import { ANNOTATIONS, EOD_MANIFEST_ANNOTATION, OCI_ARTIFACT_TYPE, OCI_CONFIG_TYPE, OCI_FORM_TYPES } from "../../src/image/oci-form.ts";
import { sha256Digest } from "../../src/util/sha256.ts";
import { skipTest } from "../helpers/skip.ts";

let reg: RunningRegistry;
let client: RegistryClient;
let work = "";
let layers: TestImageFiles;
let source: { digest: string; config: Buffer };
const noCreds = () => ({ DOCKER_CONFIG: path.join(work, "no-docker-config") });

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-convert-"));
  reg = await startRegistry();
  client = new RegistryClient({ credentials: staticCredentials({}) });
  layers = writeTestLayers(work);
  source = await pushOciImage(client, { registry: reg.host, repository: "eod/src" }, "v1", layers);
});

after(async () => {
  await client?.close();
  await reg?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test("convert pushes the OCI form: containerd layer types, titles, eod.manifest, the source digest, the source config with our diff_ids", { timeout: 120_000 }, async () => {
  const r = await eodAsync(["convert", `${reg.host}/eod/src:v1`, `${reg.host}/eod/conv:v1`, "--json", "-o", path.join(work, "converted")], noCreds());
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.source.digest, source.digest);
  assert.equal(summary.build.layers.length, 3);
  assert.equal(summary.build.manifest.blobs.length, 3, "one blob per layer");
  assert.equal(summary.pushed.find((p: { path: string }) => p.path === "(config)").how, "uploaded", "the config is ours");

  const got = await client.resolve(`${reg.host}/eod/conv:v1`);
  assert.equal(got.digest, summary.target.digest);
  const m = got.manifest;
  assert.equal(m.mediaType, "application/vnd.oci.image.manifest.v1+json");
  assert.equal(m.artifactType, OCI_ARTIFACT_TYPE);
  // The config: the source's, with one diff_id per layer of ours (its digest), in layer order.
  assert.equal(m.config.mediaType, OCI_CONFIG_TYPE);
  const config = JSON.parse(Buffer.from(await client.fetchBlob({ registry: reg.host, repository: "eod/conv" }, m.config)).toString("utf8"));
  assert.deepEqual(config.config, JSON.parse(source.config.toString("utf8")).config, "Env and the rest of the source's config kept");
  assert.deepEqual([config.os, config.architecture], ["linux", "amd64"]);
  assert.deepEqual(config.rootfs, { type: "layers", diff_ids: m.layers.map((l) => l.digest) });
  assert.equal(config.history.filter((h: { empty_layer?: boolean }) => !h.empty_layer).length, m.layers.length, "one history entry per layer");
  assert.equal(m.annotations?.[ANNOTATIONS.sourceDigest], source.digest);
  const titles = m.layers.map((l) => l.annotations?.[ANNOTATIONS.title]);
  const ours = JSON.parse(fs.readFileSync(path.join(work, "converted/manifest.json"), "utf8"));
  assert.deepEqual(titles, ["manifest.json", "bootstrap.erofs.zst", ...ours.blobs.flatMap((b: { id: string }) => [`blobs/${b.id}.ctab`, `blobs/${b.id}`])]);
  assert.deepEqual(m.layers.map((l) => l.mediaType), [OCI_FORM_TYPES.manifest, OCI_FORM_TYPES.bootstrapZstd, ...ours.blobs.flatMap(() => [OCI_FORM_TYPES.chunkTable, OCI_FORM_TYPES.blob])]);
  assert.ok(m.layers.every((l) => l.mediaType.startsWith("application/vnd.oci.image.layer.")), "containerd's images.IsLayerType takes every layer");
  const manifestDigest = sha256Digest(fs.readFileSync(path.join(work, "converted/manifest.json")));
  assert.deepEqual(m.layers.map((l) => l.annotations?.[EOD_MANIFEST_ANNOTATION]), m.layers.map(() => manifestDigest));
  // Every layer is the file of that title, byte for byte.
  for (const l of m.layers) {
    const bytes = await client.fetchBlob({ registry: reg.host, repository: "eod/conv" }, l);
    assert.deepEqual(Buffer.from(bytes), fs.readFileSync(path.join(work, "converted", l.annotations![ANNOTATIONS.title])));
  }
  // The same layers built locally make the same image (convert streams them; build reads files).
  const built = await eodAsync(["build", ...layers.files, "-o", path.join(work, "built")]);
  assert.equal(built.status, 0, built.stderr);
  assert.deepEqual(fs.readFileSync(path.join(work, "built/manifest.json")), fs.readFileSync(path.join(work, "converted/manifest.json")));
  const check = await eodAsync(["check", path.join(work, "converted")]);
  assert.equal(check.status, 0, check.stderr);

  // Again: everything is there already, nothing is uploaded, and the manifest is the same.
  const again = await eodAsync(["convert", `${reg.host}/eod/src:v1`, `${reg.host}/eod/conv:v2`, "--json"], noCreds());
  assert.equal(again.status, 0, again.stderr);
  const s2 = JSON.parse(again.stdout);
  assert.deepEqual(s2.pushed.map((p: { how: string }) => p.how).filter((h: string) => h === "uploaded"), []);
  assert.equal(s2.target.digest, summary.target.digest, "conversion is deterministic");
});

test("a missing tag, a missing repository and a missing layer blob are clear errors", async () => {
  const r = await eodAsync(["convert", `${reg.host}/eod/src:nope`, `${reg.host}/eod/conv:x`], noCreds());
  assert.equal(r.status, 1);
  assert.match(r.stderr, /tag "nope" not found in 127\.0\.0\.1:\d+\/eod\/src/);
  const r2 = await eodAsync(["convert", `${reg.host}/eod/nothing:v1`, `${reg.host}/eod/conv:x`], noCreds());
  assert.equal(r2.status, 1);
  assert.match(r2.stderr, /not found/);
  // A layer blob deleted from the registry after the manifest was pushed.
  const holey = { registry: reg.host, repository: "eod/holey" };
  await pushOciImage(client, holey, "v1", layers);
  const layer = (await client.resolve(`${reg.host}/eod/holey:v1`)).manifest.layers[1];
  assert.equal((await fetch(`${reg.url}/v2/eod/holey/blobs/${layer.digest}`, { method: "DELETE" })).status, 202);
  const r3 = await eodAsync(["convert", `${reg.host}/eod/holey:v1`, `${reg.host}/eod/conv:x`], noCreds());
  assert.equal(r3.status, 1);
  assert.match(r3.stderr, new RegExp(`blob ${layer.digest} not found in 127\\.0\\.0\\.1:\\d+/eod/holey`));
  const bad = await eodAsync(["convert", "Not A Ref", `${reg.host}/eod/conv:x`]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /Invalid image reference/);
});

test("htpasswd basic auth through DOCKER_CONFIG: the right password converts, a wrong one is an auth error", { timeout: 120_000 }, async () => {
  const auth = await startRegistry({ htpasswd: { alice: "s3cret" } });
  const c = new RegistryClient({ credentials: staticCredentials({ [auth.host]: { username: "alice", password: "s3cret" } }) });
  try {
    await pushOciImage(c, { registry: auth.host, repository: "eod/src" }, "v1", layers);
    const config = (pass: string) => {
      const dir = fs.mkdtempSync(path.join(work, "docker-"));
      fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ auths: { [auth.host]: { auth: Buffer.from(`alice:${pass}`).toString("base64") } } }));
      return { DOCKER_CONFIG: dir };
    };
    const ok = await eodAsync(["convert", `${auth.host}/eod/src:v1`, `${auth.host}/eod/conv:v1`], config("s3cret"));
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /eod\/conv:v1@sha256:/);
    const wrong = await eodAsync(["convert", `${auth.host}/eod/src:v1`, `${auth.host}/eod/conv:v2`], config("wrong"));
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /authentication failed for 127\.0\.0\.1:\d+: user name or password refused/);
    const none = await eodAsync(["convert", `${auth.host}/eod/src:v1`, `${auth.host}/eod/conv:v3`], noCreds());
    assert.equal(none.status, 1);
    assert.match(none.stderr, /authentication required for 127\.0\.0\.1:\d+: .*none is configured/);
    // A destination that refuses our pushes is found out before any layer is read.
    let layerGets = 0;
    const proxy = await registryProxy(reg.host, {
      body(req, res, body) {
        if (req.method === "GET" && /\/blobs\//.test(req.url!) && body[0] === 0x1f && body[1] === 0x8b) layerGets++;
        res.end(body);
      },
    });
    try {
      const refused = await eodAsync(["convert", `${proxy.host}/eod/src:v1`, `${auth.host}/eod/conv:v4`], noCreds());
      assert.equal(refused.status, 1);
      assert.match(refused.stderr, /authentication required for 127\.0\.0\.1:\d+/);
      assert.equal(layerGets, 0, "no layer fetched");
    } finally {
      await proxy.close();
    }
  } finally {
    await c.close();
    await auth.stop();
  }
});

test("a registry using a token server: the right password converts, a wrong one is an auth error", { timeout: 120_000 }, async () => {
  const ts = await startTokenServer({ bob: "pa55" });
  const auth = await startRegistry({ token: ts });
  const c = new RegistryClient({ credentials: staticCredentials({ [auth.host]: { username: "bob", password: "pa55" } }) });
  try {
    await pushOciImage(c, { registry: auth.host, repository: "eod/src" }, "v1", layers);
    const config = (pass: string) => {
      const dir = fs.mkdtempSync(path.join(work, "docker-"));
      fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ auths: { [auth.host]: { username: "bob", password: pass } } }));
      return { DOCKER_CONFIG: dir };
    };
    const ok = await eodAsync(["convert", `${auth.host}/eod/src:v1`, `${auth.host}/eod/conv:v1`, "--json"], config("pa55"));
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).pushed.find((p: { path: string }) => p.path === "(config)").how, "uploaded");
    const wrong = await eodAsync(["convert", `${auth.host}/eod/src:v1`, `${auth.host}/eod/conv:v2`], config("nope"));
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /^eod: .*(authentication|token).*/m);
    assert.doesNotMatch(wrong.stderr, /    at /, "an error message, not a stack");
  } finally {
    await c.close();
    await auth.stop();
    await ts.close();
  }
});

test("a layer whose bytes change on the way is refused (digest), and no manifest is pushed", { timeout: 60_000 }, async () => {
  // A proxy in front of the registry changes one byte of every gzip blob it passes on.
  const proxy = await registryProxy(reg.host, {
    body(req, res, body) {
      // In a gzip layer, a bit of the header's MTIME: it still decompresses to the same tar (diff_id
      // unchanged), so only the check of the blob's digest can catch it.
      if (req.method === "GET" && /\/blobs\/sha256:/.test(req.url!) && body[0] === 0x1f && body[1] === 0x8b) body[4] ^= 0x01;
      res.end(body);
    },
  });
  const host = proxy.host;
  try {
    const r = await eodAsync(["convert", `${host}/eod/src:v1`, `${reg.host}/eod/lied:v1`], noCreds());
    assert.equal(r.status, 1);
    assert.match(r.stderr, /blob 127\.0\.0\.1:\d+\/eod\/src@sha256:[0-9a-f]{64}: content has digest sha256:[0-9a-f]{64}, expected sha256:/);
    await assert.rejects(client.resolve(`${reg.host}/eod/lied:v1`), { code: "REGISTRY_NOT_FOUND" });
  } finally {
    await proxy.close();
  }
});

test("a hostile layer (path traversal) is refused naming the entry; nothing is left behind, no manifest pushed", { timeout: 60_000 }, async () => {
  const tar = tarArchive([{ path: "a/", type: "dir" }, { path: "a/../../escape", data: Buffer.from("escape") }]);
  const img: TestImageFiles = { files: [], stored: [zlib.gzipSync(tar)], tars: [tar] };
  await pushOciImage(client, { registry: reg.host, repository: "eod/hostile" }, "v1", img);
  const out = path.join(work, "hostile-out", "img");
  fs.mkdirSync(path.dirname(out));
  const r = await eodAsync(["convert", `${reg.host}/eod/hostile:v1`, `${reg.host}/eod/hostile-conv:v1`, "-o", out], noCreds());
  assert.equal(r.status, 1);
  assert.match(r.stderr, /a\/\.\.\/\.\.\/escape/);
  assert.deepEqual(fs.readdirSync(path.dirname(out)), [], "no image, no temporary directory");
  assert.ok(!fs.existsSync(path.join(work, "escape")) && !fs.existsSync(path.join(work, "hostile-out", "escape")));
  await assert.rejects(client.resolve(`${reg.host}/eod/hostile-conv:v1`), { code: "REGISTRY_NOT_FOUND" });
});

test("a connection dropped in the middle of a layer is resumed (Range) and the conversion is the same", { timeout: 60_000 }, async () => {
  // A proxy that cuts the first GET of each layer blob after half of its body.
  const dropped = new Set<string>();
  const proxy = await registryProxy(reg.host, {
    body(req, res, body) {
      const blob = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url!)?.[1];
      if (req.method === "GET" && blob && !req.headers.range && body.length > 100_000 && !dropped.has(blob)) {
        dropped.add(blob);
        res.write(body.subarray(0, body.length >> 1), () => res.socket?.destroy());
      } else {
        res.end(body);
      }
    },
  });
  const host = proxy.host;
  try {
    const r = await eodAsync(["convert", `${host}/eod/src:v1`, `${reg.host}/eod/resumed:v1`, "--json"], noCreds());
    assert.equal(r.status, 0, r.stderr);
    assert.ok(dropped.size >= 2, "layers were cut");
    const direct = await client.resolve(`${reg.host}/eod/conv:v1`);
    const resumed = await client.resolve(`${reg.host}/eod/resumed:v1`);
    assert.deepEqual(resumed.manifest.layers.map((l) => l.digest), direct.manifest.layers.map((l) => l.digest), "the same files");
  } finally {
    await proxy.close();
  }
});

test("--insecure-registry: a registry with a self-signed certificate under a non-loopback name", { timeout: 120_000 }, async (t) => {
  // The host name resolves to a loopback address but is not one by name: spoken to over verified HTTPS.
  const name = os.hostname().toLowerCase();
  const ip = await dns.lookup(name, { family: 4 }).then((a) => a.address, () => "");
  if (!ip || !isLoopback(ip) || isLoopback(name)) return skipTest(t, `host name ${name} does not resolve to a loopback address`);
  const tls = await startRegistry({ ip, tls: true });
  const host = `${name}:${tls.port}`;
  const c = new RegistryClient({ credentials: staticCredentials({}), insecureRegistries: [host] });
  try {
    await pushOciImage(c, { registry: host, repository: "eod/src" }, "v1", layers);
    const refused = await eodAsync(["convert", `${host}/eod/src:v1`, `${host}/eod/conv:v1`], noCreds());
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /TLS failed: self-signed certificate.*--insecure-registry/);
    const ok = await eodAsync(["convert", `${host}/eod/src:v1`, `${host}/eod/conv:v1`, "--insecure-registry", host], noCreds());
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal((await c.resolve(`${host}/eod/conv:v1`)).manifest.layers[0].annotations?.[ANNOTATIONS.title], "manifest.json");
  } finally {
    await c.close();
    await tls.stop();
  }
});
