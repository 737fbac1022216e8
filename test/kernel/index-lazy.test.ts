// Issue 14's must-shows, end to end (real kernel, fanotify frontend, the real CNCF registry on 127.0.0.1
// behind a counting proxy): an ordinary image as a third-party tool pushes it (a plain gzip OCI layout, GNU
// gzip, pushed byte for byte; three layers with whiteouts, an opaque directory, hard links, xattrs, PAX and
// GNU long names) is indexed with `eod index --push`, then mounted lazily from the registry with a fresh cache
// directory: the tree is identical to the layers extracted in order by GNU tar (computed without our code);
// the mount fetched no layer byte; reading one small file fetched about one span; a corrupted layer byte fails
// the read of its span with EIO, never wrong bytes; an index made for another image is refused before
// mounting; another cache directory with no local state finds the index again in the registry; the fuse
// frontend serves the same image; eod pull fills the cache through the spans; --index-locally indexes an image
// with no index once, a second mount downloads no layer whole, and a restarted daemon reads through that index.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import type http from "node:http";
import { compareTrees } from "../helpers/compare-trees.ts";
import { pushLayoutAsIs, writeGzipLayout, type GzipLayout } from "../helpers/gzip-oci-layout.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { eodAsync, lazyWorkspace, readInChild } from "../helpers/lazy.ts";
import { extractLayers } from "../helpers/overlay-extract.ts";
import { registryProxy, startRegistry, type RegistryProxy, type RunningRegistry } from "../helpers/registry.ts";
import { unavailable } from "../helpers/skip.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { ensureDaemon } from "../../src/daemon/spawn.ts";
import { decodeChunkTable, findChunk, type ChunkTable } from "../../src/image/chunk-table.ts";
import { parseManifest } from "../../src/image/manifest.ts";
import { RegistryClient, staticCredentials } from "../../src/remote/registry/index.ts";
import { pushReferrer } from "../../src/remote/registry/referrers.ts";
import { testLayers } from "../helpers/oci-image.ts";
import { openImageMetadata } from "../../src/image/open.ts";
import { parsePath } from "../../src/erofs/printable-name.ts";

const skip = unavailable(!haveRoot() ? "needs root to mount" : kernelSupportsPreContent().ok ? false : "kernel lacks fanotify pre-content events");

const SPAN = 256 << 10; // several spans per layer with the test layers' few MiB
let work = "";
let reg: RunningRegistry;
let proxy: RegistryProxy;
let client: RegistryClient;
let image: GzipLayout;
let expected = "";
let indexDir = "";
let ws: ReturnType<typeof lazyWorkspace>;
const env = () => ({ DOCKER_CONFIG: path.join(work, "no-docker-config") });

/** Blob GETs seen by the proxy: digest, whether a Range was asked, bytes answered. */
const seen: Array<{ digest: string; range: boolean; bytes: number }> = [];
/** A byte the proxy flips in every answer that carries it: layer digest and offset in the blob. */
let corrupt: { digest: string; offset: number } | null = null;

before(async () => {
  if (skip) return;
  work = tempDir("eod-index-lazy-");
  ws = lazyWorkspace(work);
  reg = await startRegistry();
  const ranges = new WeakMap<http.IncomingMessage, string>(); // the Content-Range of each answer
  proxy = await registryProxy(reg.host, {
    head(req, answer) { ranges.set(req, String(answer.headers["content-range"] ?? "")); },
    body(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) {
      const digest = /\/blobs\/(sha256:[0-9a-f]{64})/.exec(req.url ?? "")?.[1];
      if (req.method === "GET" && digest && res.statusCode < 300) {
        const start = Number(/bytes (\d+)-/.exec(ranges.get(req) ?? "")?.[1] ?? 0);
        seen.push({ digest, range: req.headers.range !== undefined, bytes: body.length });
        if (corrupt?.digest === digest && corrupt.offset >= start && corrupt.offset < start + body.length) body[corrupt.offset - start] ^= 0x5a;
      }
      res.end(body);
    },
  });
  client = new RegistryClient({ credentials: staticCredentials({}) });
  image = writeGzipLayout(work, "plain");
  await pushLayoutAsIs(client, { registry: reg.host, repository: "eod/plain" }, "v1", image);
  expected = path.join(work, "expected");
  extractLayers(image.tarFiles, expected, work);
  indexDir = path.join(work, "index");
  const r = await eodAsync(["index", `${reg.host}/eod/plain:v1`, "--push", "-o", indexDir, "--span", String(SPAN)], env());
  assert.equal(r.status, 0, r.stderr);
});

after(async () => {
  ws?.teardown(); // unmounts, stops the daemons, removes work
  await client?.close();
  await proxy?.close();
  await reg?.stop();
});

/** Another image of image A's shape whose third layer holds only `file` (`text`), written to <work>/<dirName> and pushed as repository:tag. */
async function pushVariant(dirName: string, repository: string, tag: string, file: string, text: string): Promise<GzipLayout> {
  const specs = testLayers();
  specs[2] = [{ path: "./", type: "dir" }, { path: file, data: Buffer.from(text) }];
  const l = writeGzipLayout(work, dirName, specs);
  await pushLayoutAsIs(client, { registry: reg.host, repository }, tag, l);
  return l;
}

/** A fresh cache directory and mount point (lazyWorkspace: every daemon and mount goes in after()). */
const freshCache = () => ws.fresh();

async function eod(args: string[], extraEnv: Record<string, string> = {}): Promise<string> {
  const r = await eodAsync(args, { ...env(), ...extraEnv });
  assert.equal(r.status, 0, `eod ${args.join(" ")}: ${r.stderr}`);
  return r.stdout + r.stderr;
}

/** Bytes of the image's layers the proxy answered since the last reset (range and whole GETs). */
function layerBytes(): number {
  return seen.filter((s) => image.layerDigests.includes(s.digest)).reduce((n, s) => n + s.bytes, 0);
}

/** The seek index of layer k (0-based) from the index directory `eod index -o` wrote. */
function seekIndex(k: number): ChunkTable {
  const m = parseManifest(fs.readFileSync(path.join(indexDir, "manifest.json"), "utf8"), "index manifest.json");
  const b = m.blobs[k];
  assert.equal(b.remote.digest, image.layerDigests[k], "blob k is layer k");
  return decodeChunkTable(fs.readFileSync(path.join(indexDir, b.table.path)), `layer ${k + 1}`);
}

/** Byte offset of a file's body in its layer's tar, and the layer's device (1-based), from the index's bootstrap. */
function bodyOffset(rel: string): { device: number; offset: number } {
  const img = openImageMetadata(indexDir);
  try {
    const c = [...img.reader.chunks(img.reader.lookup(parsePath(rel)))][0];
    assert.ok(c.addr, `${rel} has data`);
    return { device: c.addr.deviceId, offset: c.addr.startBlk * img.reader.blkSz };
  } finally {
    img.close();
  }
}

test("an indexed ordinary gzip image mounts lazily from the registry: identical tree, no layer byte at mount, one small file ≈ one span", { skip, timeout: 240_000 }, async () => {
  const { cache, mnt } = freshCache();
  seen.length = 0;
  await eod(["mount", `${proxy.host}/eod/plain:v1`, mnt, "--cache-dir", cache]);
  assert.equal(layerBytes(), 0, "mounting fetches no layer byte");

  // etc/hosts of layer 2: a small file, read through the kernel.
  const { device, offset } = bodyOffset("etc/hosts");
  const table = seekIndex(device - 1);
  const span = table.entries[findChunk(table.entries, offset)];
  assert.equal(await fs.promises.readFile(path.join(mnt, "etc/hosts"), "utf8"), "10.0.0.1 other\n"); // async: the proxy is in this process
  const fetched = layerBytes();
  assert.ok(fetched > 0, "the read fetched from the layer");
  assert.ok(fetched <= span.remoteSize + 64 * 1024, `one small file fetched ${fetched} bytes, its span's remote size is ${span.remoteSize}`);

  assert.deepEqual(await compareTrees(expected, mnt, { ignoreRootAttrs: true }), []);
  assert.ok(!fs.existsSync(path.join(mnt, "etc/passwd")), "whiteout applied");
  assert.deepEqual(fs.readdirSync(path.join(mnt, "var/cache")), ["new"], "opaque directory");
  assert.equal(fs.statSync(path.join(mnt, "etc/hosts")).nlink, 2, "hard link");
  assert.ok(seen.every((s) => !image.layerDigests.includes(s.digest) || s.range), "layers are read by Range only");
  await eod(["umount", mnt, "--cache-dir", cache]);
});

test("another cache directory with no local state finds the index in the registry again", { skip, timeout: 120_000 }, async () => {
  const { cache, mnt } = freshCache();
  await eod(["mount", `${proxy.host}/eod/plain:v1`, mnt, "--cache-dir", cache]);
  assert.deepEqual(await compareTrees(expected, mnt, { ignoreRootAttrs: true }), []);
  await eod(["umount", mnt, "--cache-dir", cache]);
});

test("the fuse frontend serves the same indexed image", { skip: skip || (!fs.existsSync("/dev/fuse") && "needs /dev/fuse"), timeout: 120_000 }, async () => {
  const { cache, mnt } = freshCache();
  seen.length = 0;
  await eod(["mount", `${proxy.host}/eod/plain:v1`, mnt, "--cache-dir", cache, "--frontend", "fuse"]);
  assert.equal(layerBytes(), 0, "mounting fetches no layer byte");
  assert.deepEqual(await compareTrees(expected, mnt, { ignoreRootAttrs: true }), []);
  await eod(["umount", mnt, "--cache-dir", cache]);
});

test("a corrupted layer byte in the registry: the read of that span fails with EIO, never wrong bytes", { skip, timeout: 120_000 }, async () => {
  const { cache, mnt } = freshCache();
  await eod(["mount", `${proxy.host}/eod/plain:v1`, mnt, "--cache-dir", cache]);
  // A byte in the middle of the span holding usr/bin/tool's body (layer 1, 2 MiB of random bytes).
  const { offset } = bodyOffset("usr/bin/tool");
  const table = seekIndex(0);
  const span = table.entries[findChunk(table.entries, offset + SPAN)];
  corrupt = { digest: image.layerDigests[0], offset: span.remoteOffset + (span.remoteSize >> 1) };
  try {
    const r = await readInChild(path.join(mnt, "usr/bin/tool"));
    assert.equal(r.error, "EIO", `reading over the corrupted span: ${JSON.stringify(r)}`);
    // Another layer's file is unaffected.
    assert.equal(await fs.promises.readFile(path.join(mnt, "etc/hosts"), "utf8"), "10.0.0.1 other\n"); // async: the proxy is in this process
  } finally {
    corrupt = null;
  }
  // The bad bytes never entered the cache: the same read now succeeds with the right bytes.
  const again = await readInChild(path.join(mnt, "usr/bin/tool"));
  const want = await readInChild(path.join(expected, "usr/bin/tool"));
  assert.equal(again.sha256, want.sha256);
  await eod(["umount", mnt, "--cache-dir", cache]);
});

test("an index made for another image is refused before mounting", { skip, timeout: 180_000 }, async () => {
  // Image B; its index made locally.
  await pushVariant("other", "eod/plain", "other", "other", "another image\n");
  const otherIndex = path.join(work, "index-other");
  await eod(["index", `${reg.host}/eod/plain:other`, "-o", otherIndex]);

  // Its index put where --index-locally keeps the index of image A: refused, nothing mounted.
  const { cache, mnt } = freshCache();
  fs.mkdirSync(path.join(cache, "indexes"), { recursive: true });
  fs.cpSync(otherIndex, path.join(cache, "indexes", image.manifestDigest.slice("sha256:".length)), { recursive: true });
  const r = await eodAsync(["mount", `${proxy.host}/eod/plain:v1`, mnt, "--cache-dir", cache, "--index-locally"], env());
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /index built for another image/);
  assert.ok(!fs.readFileSync("/proc/self/mounts", "utf8").includes(mnt), "nothing mounted");

  // Its index pushed as a referrer of image C (the subject rewritten; C has no other index): refused too.
  const c = await pushVariant("forged", "eod/plain", "c", "c", "c\n");
  const repo = { registry: reg.host, repository: "eod/plain" };
  const pushed = JSON.parse(await eod(["index", `${reg.host}/eod/plain:other`, "--push", "--json"]).then((o) => o.slice(0, o.lastIndexOf("}") + 1))) as { artifact: { digest: string } };
  const artifact = JSON.parse(Buffer.from((await client.getManifest(repo, pushed.artifact.digest)).bytes).toString("utf8"));
  artifact.subject = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: c.manifestDigest, size: c.manifestBytes.length };
  await pushReferrer(client, repo, Buffer.from(JSON.stringify(artifact)), "application/vnd.oci.image.manifest.v1+json");
  const forged = await eodAsync(["mount", `${proxy.host}/eod/plain:c`, mnt, "--cache-dir", cache], env());
  assert.equal(forged.status, 1, forged.stdout + forged.stderr);
  assert.match(forged.stderr, /index built for another image/);
  assert.ok(!fs.readFileSync("/proc/self/mounts", "utf8").includes(mnt), "nothing mounted");
});

test("eod pull of an indexed ordinary image fills the cache through its spans; a mount after it fetches no layer byte", { skip, timeout: 120_000 }, async () => {
  const { cache, mnt } = freshCache();
  const out = JSON.parse(await eod(["pull", `${proxy.host}/eod/plain:v1`, "--cache-dir", cache, "--json"]).then((o) => o.slice(0, o.lastIndexOf("}") + 1)));
  assert.equal(out.cachedBytes, out.totalBytes);
  for (let i = 0; i < 200 && fs.existsSync(path.join(cache, "daemon.pid")); i++) await new Promise((r) => setTimeout(r, 25));
  seen.length = 0;
  await eod(["mount", `${proxy.host}/eod/plain:v1`, mnt, "--cache-dir", cache]);
  assert.deepEqual(await compareTrees(expected, mnt, { ignoreRootAttrs: true }), []);
  assert.equal(layerBytes(), 0, "nothing fetched after eod pull");
  await eod(["umount", mnt, "--cache-dir", cache]);
});

test("--index-locally: an image with no index is indexed on this node once; a second mount downloads no layer again, a restarted daemon reads through the same index, and so does eod pull", { skip, timeout: 240_000 }, async () => {
  const plain = await pushVariant("unindexed", "eod/unindexed", "v1", "third", "not indexed anywhere\n");
  const ref = `${proxy.host}/eod/unindexed:v1`;
  const { cache, mnt } = freshCache();
  const layerGets = () => seen.filter((s) => plain.layerDigests.includes(s.digest));

  const refused = await eodAsync(["mount", ref, mnt, "--cache-dir", cache], env());
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /eod index .*--push|--index-locally/);

  seen.length = 0;
  const out = await eod(["mount", ref, mnt, "--cache-dir", cache, "--index-locally"]);
  assert.match(out, /no index in its registry: indexing it on this node \(downloads its 3 layer\(s\) once in full/);
  const whole = layerGets().reduce((n, s) => n + s.bytes, 0);
  assert.ok(whole >= plain.layerSizes.reduce((a, b) => a + b, 0), "every layer downloaded once to index it");
  assert.ok(fs.existsSync(path.join(cache, "indexes", plain.manifestDigest.slice("sha256:".length), "manifest.json")), "kept in the cache directory");
  assert.equal(await fs.promises.readFile(path.join(mnt, "third"), "utf8"), "not indexed anywhere\n");
  await eod(["umount", mnt, "--cache-dir", cache]);

  // Again with the same cache directory: the local index is found, nothing is downloaded whole.
  seen.length = 0;
  const out2 = await eod(["mount", ref, mnt, "--cache-dir", cache, "--index-locally"]);
  assert.doesNotMatch(out2, /indexing/i);
  assert.equal(layerGets().length, 0, "the mount fetched no layer byte");

  // A restarted daemon re-attaches the mount through the same local index (kept in its mount record): the
  // files not read yet come as spans, by Range.
  const pid = Number(fs.readFileSync(path.join(cache, "daemon.pid"), "utf8"));
  process.kill(pid, "SIGTERM"); // leaves the mount for a restarted daemon
  for (let i = 0; i < 200 && fs.existsSync(path.join(cache, "daemon.pid")); i++) await new Promise((r) => setTimeout(r, 25));
  await ensureDaemon(cache, "auto");
  const want = path.join(work, "expected-unindexed");
  fs.mkdirSync(path.join(work, "x-unindexed"));
  extractLayers(plain.tarFiles, want, path.join(work, "x-unindexed"));
  assert.deepEqual(await compareTrees(want, mnt, { ignoreRootAttrs: true }), [], "read through the re-attached mount");
  assert.ok(layerGets().length > 0 && layerGets().every((s) => s.range), "spans by Range, no layer downloaded whole again");
  await eod(["umount", mnt, "--cache-dir", cache]);

  // eod pull --index-locally goes through the same local index.
  seen.length = 0;
  const pulled = JSON.parse(await eod(["pull", ref, "--cache-dir", cache, "--index-locally", "--json"]).then((o) => o.slice(0, o.lastIndexOf("}") + 1)));
  assert.equal(pulled.cachedBytes, pulled.totalBytes);
  assert.ok(layerGets().every((s) => s.range), "no layer downloaded whole by the pull");
});
