// DaemonImageMounts with indexed images, against the real registry, cache daemon and kernel: lookup() (the
// daemon's POST /resolve with form) says ordinary for an image nobody indexed, indexed once `eod index --push`
// ran, converted for eod convert's output; an indexed image is mounted by its registry manifest digest and reads
// right; one whose layers name another manifest than the daemon resolved is refused and left unmounted.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { cleanup, eodAsync } from "../helpers/lazy.ts";
import { busyboxLayer, gzipLayer, pushRunnableImage } from "../helpers/push-image.ts";
import { startRegistry, type RunningRegistry } from "../helpers/registry.ts";
import { unavailable } from "../helpers/skip.ts";
import { tarArchive } from "../helpers/tar-layer.ts";
import { loadConfig } from "../../src/config/config.ts";
import { mounts } from "../../src/daemon/mountinfo.ts";
import { RegistryClient, staticCredentials } from "../../src/remote/registry/index.ts";
import { DaemonImageMounts } from "../../src/snapshotter/daemon-image-mounts.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";

const skip = unavailable(!haveRoot() ? "needs root to mount" : kernelSupportsPreContent().ok ? false : "kernel lacks fanotify pre-content events");

let work = "";
let cache = "";
let reg: RunningRegistry | undefined;
let pushed = { digest: "", ref: "" };
const env = () => ({ DOCKER_CONFIG: path.join(work, "no-docker-config") });

before(async () => {
  if (skip) return;
  work = tempDir("eod-index-lookup-");
  cache = path.join(work, "cache");
  reg = await startRegistry();
  const client = new RegistryClient({ credentials: staticCredentials({}) });
  try {
    const data = gzipLayer(tarArchive([{ path: "data/", type: "dir" }, { path: "data/hello", data: Buffer.from("hello from an indexed image\n") }]));
    pushed = await pushRunnableImage(client, { registry: reg.host, repository: "idx/app" }, "1", [gzipLayer(busyboxLayer()), data], { Cmd: ["sh"] });
  } finally {
    await client.close();
  }
});

after(async () => {
  if (work) cleanup(path.join(work, "root"), cache);
  await reg?.stop();
});

test("lookup: ordinary, then indexed once eod index --push ran, converted for eod convert's output; an indexed image mounts by its manifest digest", { skip, timeout: 180_000 }, async () => {
  const root = path.join(work, "root");
  const images = new DaemonImageMounts({ root, config: loadConfig({ "cache-dir": cache }) });
  const pinned = `${pushed.ref}@${pushed.digest}`;
  assert.equal(await images.lookup(pinned), "ordinary");
  const indexed = await eodAsync(["index", pushed.ref, "--push"], env());
  assert.equal(indexed.status, 0, indexed.stderr);
  assert.equal(await images.lookup(pinned), "indexed", "asked again, the daemon finds the index (no answer kept)");
  const converted = await eodAsync(["convert", pushed.ref, `${reg!.host}/idx/app:eod`], env());
  assert.equal(converted.status, 0, converted.stderr);
  assert.equal(await images.lookup(`${reg!.host}/idx/app:eod`), "converted");

  const image = { manifest: pushed.digest, ref: pinned, indexed: true };
  const mnt = await images.acquire(image);
  assert.equal(mnt, path.join(root, "images", pushed.digest.slice(7), "mnt"));
  assert.equal(fs.readFileSync(path.join(mnt, "data/hello"), "utf8"), "hello from an indexed image\n");
  assert.ok(fs.statSync(path.join(mnt, "bin/busybox")).size > 0);
  await images.release(image);
  assert.ok(!mounts().some((m) => m.mountPoint === mnt));

  // layers that name another manifest than the one the reference resolves to: refused, nothing left mounted
  const other = { manifest: `sha256:${"0".repeat(64)}`, ref: pinned, indexed: true };
  await assert.rejects(images.acquire(other), { code: "DIGEST_MISMATCH" });
  assert.ok(!mounts().some((m) => m.mountPoint.startsWith(path.join(root, "images"))), "the wrong image is not left mounted");
  await images.release(other);
});

test("indexLocally: an image nobody indexed is indexed into the cache directory once, then mounted through that index", { skip, timeout: 180_000 }, async () => {
  const client = new RegistryClient({ credentials: staticCredentials({}) });
  let plain;
  try {
    const data = gzipLayer(tarArchive([{ path: "data/", type: "dir" }, { path: "data/local", data: Buffer.from("indexed on this node\n") }]));
    plain = await pushRunnableImage(client, { registry: reg!.host, repository: "plain/app" }, "1", [gzipLayer(busyboxLayer()), data], { Cmd: ["sh"] });
  } finally {
    await client.close();
  }
  const root = path.join(work, "root");
  const images = new DaemonImageMounts({ root, config: loadConfig({ "cache-dir": cache }) });
  const pinned = `${plain.ref}@${plain.digest}`;
  assert.equal(await images.lookup(pinned), "ordinary");
  assert.equal(await images.indexLocally(pinned), true);
  assert.ok(fs.existsSync(path.join(cache, "indexes", plain.digest.slice(7), "manifest.json")), "kept in the cache directory");
  assert.equal(await images.indexLocally(pinned), true, "found there the next time");
  const image = { manifest: plain.digest, ref: pinned, indexed: true };
  const mnt = await images.acquire(image);
  assert.equal(fs.readFileSync(path.join(mnt, "data/local"), "utf8"), "indexed on this node\n");
  await images.release(image);
  assert.equal(await images.indexLocally(`${reg!.host}/idx/app:eod`), false, "an eod image needs no index");
});
