// Lazy mounts straight from a registry (real kernel, fanotify frontend, the real CNCF registry on 127.0.0.1
// behind a small counting proxy): a three-layer OCI image is converted with `eod convert`, mounted by its
// reference, and compared with the layers extracted in order by GNU tar with whiteouts applied (computed
// without our code); the mount is pinned to the manifest digest and survives a daemon restart; a second
// mount on the same cache and a mount after `eod pull` fetch no blob byte; an OCI manifest that disagrees
// with manifest.json, and manifest.json bytes changed on the way, are refused; the old OCI form still mounts.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import dns from "node:dns/promises";
import fs from "node:fs";
import os from "node:os";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { compareTrees } from "../helpers/compare-trees.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { cleanup, eodAsync } from "../helpers/lazy.ts";
import { pushOciImage, writeTestLayers } from "../helpers/oci-image.ts";
import { extractLayers } from "../helpers/overlay-extract.ts";
import { startRegistry, type RunningRegistry } from "../helpers/registry.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { ensureDaemon } from "../../src/daemon/spawn.ts";
import { isLoopback, MEDIA_TYPES, RegistryClient, sha256Digest, staticCredentials } from "../../src/remote/registry/index.ts";
import { ANNOTATIONS, OCI_FORM_TYPES, OLD_OCI_FORM_TYPES } from "../../src/image/oci-form.ts";
import { unavailable, skipTest } from "../helpers/skip.ts";

const skip = unavailable(!haveRoot() ? "needs root to mount" : kernelSupportsPreContent().ok ? false : "kernel lacks fanotify pre-content events");

let work = "";
let reg: RunningRegistry;
let client: RegistryClient;
let proxy: http.Server;
let host = ""; // the proxy: what mounts talk to
let expected = "";
const caches: string[] = [];
/** Bytes of blob GETs with a Range header (chunk fetches) and of whole-blob GETs, by digest. */
const seen = { rangeBytes: 0, wholeBytes: new Map<string, number>() };
let flip: string | null = null; // digest whose bytes the proxy changes
const env = () => ({ DOCKER_CONFIG: path.join(work, "no-docker-config") });

before(async () => {
  if (skip) return;
  work = tempDir("eod-regmount-");
  reg = await startRegistry();
  const [, port] = reg.host.split(":");
  proxy = http.createServer((req, res) => {
    const up = http.request({ host: "127.0.0.1", port: Number(port), method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode!, ur.headers);
      const digest = /\/blobs\/(sha256:[0-9a-f]{64})/.exec(req.url!)?.[1];
      ur.on("data", (d: Buffer) => {
        if (req.method === "GET" && digest && ur.statusCode! < 300) {
          if (req.headers.range) seen.rangeBytes += d.length;
          else seen.wholeBytes.set(digest, (seen.wholeBytes.get(digest) ?? 0) + d.length);
          if (digest === flip) d[0] ^= 0x20;
        }
        res.write(d);
      });
      ur.on("end", () => res.end());
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  host = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  client = new RegistryClient({ credentials: staticCredentials({}) });
  const layers = writeTestLayers(work);
  await pushOciImage(client, { registry: reg.host, repository: "eod/src" }, "v1", layers);
  expected = path.join(work, "expected");
  extractLayers(layers.files, expected, work);
  const r = await eodAsync(["convert", `${reg.host}/eod/src:v1`, `${reg.host}/eod/conv:v1`, "-o", path.join(work, "img")], env());
  assert.equal(r.status, 0, r.stderr);
});

after(async () => {
  if (work) for (const c of caches) cleanup(work, c);
  await client?.close();
  if (proxy) await new Promise<void>((resolve) => { proxy.close(() => resolve()); proxy.closeAllConnections(); });
  await reg?.stop();
});

function freshCache(name: string): { cache: string; mnt: string } {
  const cache = path.join(work, `cache-${name}`);
  const mnt = path.join(work, `mnt-${name}`);
  fs.mkdirSync(mnt);
  caches.push(cache);
  return { cache, mnt };
}

async function eod(args: string[]): Promise<string> {
  const r = await eodAsync(args, env());
  assert.equal(r.status, 0, `eod ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function reset(): void {
  seen.rangeBytes = 0;
  seen.wholeBytes.clear();
}

test("mount a converted image by reference: lazy, identical to the extracted layers, pinned, re-attached after a restart; a second mount fetches nothing", { skip, timeout: 180_000 }, async () => {
  const { cache, mnt } = freshCache("a");
  reset();
  await eod(["mount", `${host}/eod/conv:v1`, mnt, "--cache-dir", cache]);
  assert.equal(seen.rangeBytes, 0, "mounting fetches no blob range");
  const status = JSON.parse(await eod(["status", "--cache-dir", cache, "--json"]));
  assert.match(status.mounts[0].source, new RegExp(`^docker://${host.replace(/\./g, "\\.")}/eod/conv:v1@sha256:[0-9a-f]{64}$`), "recorded pinned to the manifest digest");

  // The tag moves on: the mount (and a restarted daemon) stays on the image it mounted.
  const conv = await client.resolve(`${reg.host}/eod/conv:v1`);
  try {
    await movedTag(cache, mnt, status.mounts[0].source);
  } finally {
    // Put the tag back for the tests that follow.
    await client.pushManifest({ registry: reg.host, repository: "eod/conv" }, "v1", conv.bytes, MEDIA_TYPES.ociManifest);
  }
});

/** The rest of the first test, run while the tag names another manifest. */
async function movedTag(cache: string, mnt: string, recorded: string): Promise<void> {
  const other = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: (await client.resolve(`${reg.host}/eod/conv:v1`)).manifest.config, layers: [] }));
  await client.pushManifest({ registry: reg.host, repository: "eod/conv" }, "v1", other, MEDIA_TYPES.ociManifest);
  const pid = Number(fs.readFileSync(path.join(cache, "daemon.pid"), "utf8"));
  process.kill(pid, "SIGTERM"); // leaves the mount for a restarted daemon
  for (let i = 0; i < 200 && fs.existsSync(path.join(cache, "daemon.pid")); i++) await new Promise((r) => setTimeout(r, 25));
  await ensureDaemon(cache, "auto");
  const s2 = JSON.parse(await eod(["status", "--cache-dir", cache, "--json"]));
  assert.equal(s2.mounts.length, 1, "re-attached");

  assert.deepEqual(await compareTrees(expected, mnt, { ignoreRootAttrs: true }), []);
  assert.ok(seen.rangeBytes > 0, "file data came by Range requests");
  assert.ok(!fs.existsSync(path.join(mnt, "etc/passwd")), "whiteout applied");
  assert.deepEqual(fs.readdirSync(path.join(mnt, "var/cache")), ["new"], "opaque directory");
  assert.equal(fs.statSync(path.join(mnt, "etc/hosts")).nlink, 2, "hard link");
  await eod(["umount", mnt, "--cache-dir", cache]);

  // Same image again on the same cache (by the pinned digest: the tag has moved): no blob byte fetched.
  const pinned = recorded.slice("docker://".length);
  reset();
  await eod(["mount", pinned, mnt, "--cache-dir", cache]);
  assert.deepEqual(await compareTrees(expected, mnt, { ignoreRootAttrs: true }), []);
  assert.equal(seen.rangeBytes, 0, "a second mount on the same cache fetches no blob byte");
  await eod(["umount", mnt, "--cache-dir", cache]);
}

test("eod pull fetches every chunk; a mount after it fetches nothing", { skip, timeout: 120_000 }, async () => {
  const { cache, mnt } = freshCache("pull");
  reset();
  const out = JSON.parse(await eod(["pull", `${host}/eod/conv:v1`, "--cache-dir", cache, "--json"]));
  assert.equal(out.cachedBytes, out.totalBytes);
  assert.ok(out.fetchedBytes > 0 && seen.rangeBytes > 0);
  // The daemon exits once the pull is done and nothing is mounted.
  for (let i = 0; i < 200 && fs.existsSync(path.join(cache, "daemon.pid")); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(!fs.existsSync(path.join(cache, "daemon.pid")), "the daemon went idle and exited");
  reset();
  await eod(["mount", `${host}/eod/conv:v1`, mnt, "--cache-dir", cache]);
  assert.deepEqual(await compareTrees(expected, mnt, { ignoreRootAttrs: true }), []);
  assert.equal(seen.rangeBytes, 0, "nothing fetched after eod pull");
  await eod(["umount", mnt, "--cache-dir", cache]);
});

test("eod pull of an image directory: a mount after it fetches nothing from it", { skip, timeout: 60_000 }, async () => {
  const { cache, mnt } = freshCache("pull-dir");
  const img = path.join(work, "img");
  const out = JSON.parse(await eod(["pull", img, "--cache-dir", cache, "--json"]));
  assert.equal(out.source, img);
  assert.equal(out.cachedBytes, out.totalBytes);
  await eod(["mount", img, mnt, "--cache-dir", cache]);
  assert.deepEqual(await compareTrees(expected, mnt, { ignoreRootAttrs: true }), []);
  const s = JSON.parse(await eod(["status", "--cache-dir", cache, "--json"]));
  assert.deepEqual(s.blobs.map((b: { fetchedBytes: number }) => b.fetchedBytes), s.blobs.map(() => 0), "no blob byte read from the image directory");
  await eod(["umount", mnt, "--cache-dir", cache]);
});

test("an OCI manifest that disagrees with manifest.json, or manifest.json changed on the way, is refused", { skip, timeout: 60_000 }, async () => {
  const conv = await client.resolve(`${reg.host}/eod/conv:v1`);
  const m = conv.manifest;
  // The bootstrap layer made to point at another blob of the image (one the registry has: the push succeeds).
  const table = m.layers.find((l) => l.mediaType.includes("chunk-table"))!;
  const lying = { ...m, layers: m.layers.map((l) => (l.annotations?.[ANNOTATIONS.title] === "bootstrap.erofs.zst" ? { ...l, digest: table.digest, size: table.size } : l)) };
  const bytes = Buffer.from(JSON.stringify(lying));
  await client.pushManifest({ registry: reg.host, repository: "eod/conv" }, "lying", bytes, MEDIA_TYPES.ociManifest);
  const { cache, mnt } = freshCache("lie");
  const r = await eodAsync(["mount", `${host}/eod/conv:lying`, mnt, "--cache-dir", cache], env());
  assert.equal(r.status, 1);
  assert.match(r.stderr, /bootstrap\.erofs\.zst.*manifest\.json says.*refused/);

  // manifest.json's bytes changed between the registry and us: refused by its layer digest.
  const manifestLayer = m.layers.find((l) => l.annotations?.[ANNOTATIONS.title] === "manifest.json")!;
  flip = manifestLayer.digest;
  try {
    const r2 = await eodAsync(["mount", `${host}/eod/conv:v1`, mnt, "--cache-dir", cache], env());
    assert.equal(r2.status, 1);
    assert.match(r2.stderr, /sha256|digest/i);
  } finally {
    flip = null;
  }
  assert.ok(!fs.readFileSync("/proc/self/mounts", "utf8").includes(mnt), "nothing mounted");
  assert.equal(sha256Digest(bytes) !== conv.digest, true);
});

test("an image as an older eod convert pushed it (our own media types, the source config unchanged) still mounts", { skip, timeout: 60_000 }, async () => {
  const conv = (await client.resolve(`${reg.host}/eod/conv:v1`)).manifest;
  const src = (await client.resolve(`${reg.host}/eod/src:v1`)).manifest;
  const repo = { registry: reg.host, repository: "eod/conv" };
  await client.pushBlob(repo, await client.fetchBlob({ registry: reg.host, repository: "eod/src" }, src.config), { digest: src.config.digest, mediaType: src.config.mediaType });
  const oldType = new Map<string, string>(Object.entries(OCI_FORM_TYPES).map(([k, t]) => [t, OLD_OCI_FORM_TYPES[k as keyof typeof OLD_OCI_FORM_TYPES]]));
  const layers = conv.layers.map((l) => ({ mediaType: oldType.get(l.mediaType)!, digest: l.digest, size: l.size, annotations: { [ANNOTATIONS.title]: l.annotations![ANNOTATIONS.title] } }));
  const old = Buffer.from(JSON.stringify({ ...conv, config: src.config, layers }));
  await client.pushManifest(repo, "old", old, MEDIA_TYPES.ociManifest);
  const { cache, mnt } = freshCache("old");
  await eod(["mount", `${host}/eod/conv:old`, mnt, "--cache-dir", cache]);
  assert.deepEqual(await compareTrees(expected, mnt, { ignoreRootAttrs: true }), []);
  await eod(["umount", mnt, "--cache-dir", cache]);
});

test("a registry image that is not ours, and a missing tag, are clear errors", { skip, timeout: 60_000 }, async () => {
  const { cache, mnt } = freshCache("err");
  const r = await eodAsync(["mount", `${host}/eod/src:v1`, mnt, "--cache-dir", cache], env());
  assert.equal(r.status, 1);
  assert.match(r.stderr, /is not an erofs-ondemand image .*eod convert/);
  const r2 = await eodAsync(["mount", `${host}/eod/conv:nope`, mnt, "--cache-dir", cache], env());
  assert.equal(r2.status, 1);
  assert.match(r2.stderr, /tag "nope" not found/);
});

test("--insecure-registry reaches the daemon: mount and pull from a self-signed HTTPS registry", { skip, timeout: 120_000 }, async (t) => {
  const name = os.hostname().toLowerCase();
  const ip = await dns.lookup(name, { family: 4 }).then((a) => a.address, () => "");
  if (!ip || !isLoopback(ip) || isLoopback(name)) return skipTest(t, `host name ${name} does not resolve to a loopback address`);
  const tls = await startRegistry({ ip, tls: true });
  const tlsHost = `${name}:${tls.port}`;
  try {
    const c = await eodAsync(["convert", `${reg.host}/eod/src:v1`, `${tlsHost}/eod/conv:v1`, "--insecure-registry", tlsHost], env());
    assert.equal(c.status, 0, c.stderr);
    const { cache, mnt } = freshCache("tls");
    const refused = await eodAsync(["mount", `${tlsHost}/eod/conv:v1`, mnt, "--cache-dir", cache], env());
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /TLS failed: self-signed certificate.*--insecure-registry/);
    // With the flag, the name reaches the daemon (in the request, and in the environment of one it starts).
    await eod(["pull", `${tlsHost}/eod/conv:v1`, "--cache-dir", cache, "--insecure-registry", tlsHost]);
    await eod(["mount", `${tlsHost}/eod/conv:v1`, mnt, "--cache-dir", cache, "--insecure-registry", tlsHost]);
    assert.deepEqual(await compareTrees(expected, mnt, { ignoreRootAttrs: true }), []);
    await eod(["umount", mnt, "--cache-dir", cache]);
  } finally {
    await tls.stop();
  }
});
