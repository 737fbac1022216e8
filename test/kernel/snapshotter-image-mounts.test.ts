// DaemonImageMounts (the snapshotter's lazy image mounts) against the real kernel, the real registry and the
// real cache daemon: a converted image is mounted at <root>/images/<hex>/mnt, concurrent acquires share one
// mount, a manifest digest that is not the image's is refused and leaves nothing mounted, reattach unmounts
// what nothing uses and remounts what is in use, release removes the mount and its directory (twice is fine);
// after a kill -9 of the daemon and its holder, a mount is served again (or refused in use), never read as zeros.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { cleanup, eodAsync, readInChild } from "../helpers/lazy.ts";
import { pushOciImage, writeTestLayers } from "../helpers/oci-image.ts";
import { startRegistry, type RunningRegistry } from "../helpers/registry.ts";
import { unavailable } from "../helpers/skip.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { loadConfig } from "../../src/config/config.ts";
import { callDaemon, daemonAlive } from "../../src/daemon/client.ts";
import { daemonServing } from "../../src/daemon/locate.ts";
import { mounts } from "../../src/daemon/mountinfo.ts";
import { RegistryClient, staticCredentials } from "../../src/remote/registry/index.ts";
import { DaemonImageMounts } from "../../src/snapshotter/daemon-image-mounts.ts";
import type { LazyImage } from "../../src/snapshotter/image-mounts.ts";
import { checkServed, type SnapshotterStatus } from "../../src/snapshotter/status.ts";
import { EodError } from "../../src/errors.ts";

const skip = unavailable(!haveRoot() ? "needs root to mount" : kernelSupportsPreContent().ok ? false : "kernel lacks fanotify pre-content events");

let work = "";
let cache = "";
let reg: RunningRegistry;
let image: LazyImage;

before(async () => {
  if (skip) return;
  work = tempDir("eod-imgmounts-");
  cache = path.join(work, "cache");
  reg = await startRegistry();
  const client = new RegistryClient({ credentials: staticCredentials({}) });
  try {
    const file = (p: string, data: string) => ({ path: p, data: Buffer.from(data) });
    const layers = writeTestLayers(work, [[{ path: "etc/", type: "dir" }, file("etc/hello", "hello from the image\n")], [file("a", "a".repeat(5000))], [file("b", "b")]]);
    await pushOciImage(client, { registry: reg.host, repository: "eod/src" }, "v1", layers);
  } finally {
    await client.close();
  }
  const r = await eodAsync(["convert", `${reg.host}/eod/src:v1`, `${reg.host}/eod/conv:v1`, "-o", path.join(work, "img")], { DOCKER_CONFIG: path.join(work, "no-docker-config") });
  assert.equal(r.status, 0, r.stderr);
  const manifest = `sha256:${createHash("sha256").update(fs.readFileSync(path.join(work, "img/manifest.json"))).digest("hex")}`;
  image = { manifest, ref: `${reg.host}/eod/conv:v1` };
});

after(async () => {
  if (work) cleanup(work, cache);
  await reg?.stop();
});

const mountsUnder = (dir: string) => mounts().filter((m) => m.mountPoint.startsWith(`${dir}/`));

test("DaemonImageMounts: one shared mount per image, checked digest, reattach and release", { skip, timeout: 120_000 }, async () => {
  const root = path.join(work, "root");
  const images = new DaemonImageMounts({ root, config: loadConfig({ "cache-dir": cache }) });
  const mnt = images.mountPointOf(image);
  assert.equal(mnt, path.join(root, "images", image.manifest.slice("sha256:".length), "mnt"));

  const got = await Promise.all([images.acquire(image), images.acquire(image), images.acquire(image)]);
  assert.deepEqual(got, [mnt, mnt, mnt]);
  assert.equal(mountsUnder(root).length, 1, "concurrent acquires share one mount");
  assert.equal(fs.readFileSync(path.join(mnt, "etc/hello"), "utf8"), "hello from the image\n");
  assert.equal(fs.readFileSync(path.join(mnt, "a"), "utf8"), "a".repeat(5000));

  // Layers naming another manifest.json than the one the reference mounts: refused, nothing left mounted.
  const other = { manifest: `sha256:${"0".repeat(64)}`, ref: image.ref };
  await assert.rejects(images.acquire(other), (err: EodError) => err.code === "DIGEST_MISMATCH" && err.message.includes(image.manifest));
  assert.equal(mountsUnder(root).length, 1);
  assert.equal(images.counters.acquireFailures, 1);

  // Start-up with nothing in use: the mount goes; with the image in use: it comes back (reused when there).
  await images.reattach([]);
  assert.equal(mountsUnder(root).length, 0);
  assert.ok(!fs.existsSync(path.dirname(mnt)), "its directory went with it");
  await images.reattach([image]);
  await images.reattach([image]);
  assert.equal(mountsUnder(root).length, 1);
  assert.equal(fs.readFileSync(path.join(mnt, "b"), "utf8"), "b");

  // A second snapshotter on the same root (a restart) reuses the mount it finds.
  const restarted = new DaemonImageMounts({ root, config: loadConfig({ "cache-dir": cache }) });
  assert.equal(await restarted.acquire(image), mnt);
  assert.equal(mountsUnder(root).length, 1);

  await restarted.release(image);
  assert.equal(mountsUnder(root).length, 0);
  assert.ok(!fs.existsSync(path.dirname(mnt)));
  await restarted.release(image); // not mounted: no error
  assert.deepEqual(restarted.counters, { acquires: 1, acquireFailures: 0, releases: 2, releaseFailures: 0, unserved: 0 });

  // No daemon serves the mount any more (it and its holder were killed): release unmounts it itself.
  await images.acquire(image);
  cleanup(path.join(work, "nothing-here"), cache); // kills the holder and the daemon (nothing is under the root given)
  for (let i = 0; i < 100 && fs.existsSync(path.join(cache, "daemon.sock")) && await daemonAlive(path.join(cache, "daemon.sock")); i++) await new Promise((r) => setTimeout(r, 50));
  await images.release(image);
  assert.equal(mountsUnder(root).length, 0);
  assert.ok(!fs.existsSync(path.dirname(mnt)));
});

/** kill -9 of the holder and the daemon of `cacheDir` (the holder first, or it starts a new daemon); waits until both are gone. */
async function killDaemonAndHolder(cacheDir: string): Promise<void> {
  const pids = ["holder.pid", "daemon.pid"].map((f) => Number(fs.readFileSync(path.join(cacheDir, f), "utf8")));
  for (const pid of pids) process.kill(pid, "SIGKILL");
  const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
  for (let i = 0; i < 200 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(!pids.some(alive), "the holder and the daemon are gone");
}

test("DaemonImageMounts after the cache daemon AND its holder were killed -9: a restarted daemon serves the mount again, never zeros; a mount none serves is refused in use and replaced when unused", { skip, timeout: 120_000 }, async (t) => {
  const root = path.join(work, "root-dead");
  const cache2 = path.join(work, "cache-dead"); // its own cache: every file of the image is cold
  t.after(() => cleanup(root, cache2));
  const config = loadConfig({ "cache-dir": cache2 });
  const mnt = await new DaemonImageMounts({ root, config }).acquire(image);

  // Both killed: nothing listens to the mount's fanotify marks; a read now would see the cache file's holes.
  await killDaemonAndHolder(cache2);
  assert.equal(await daemonServing(mnt), null);
  const restarted = new DaemonImageMounts({ root, config });
  assert.deepEqual(await restarted.reattach([image]), new Map(), "re-attached");
  assert.equal(mountsUnder(root).length, 1, "the same mount, kept");
  assert.notEqual(await daemonServing(mnt), null, "the daemon started for it re-adopted the mount from its state.json");
  assert.deepEqual(await readInChild(path.join(mnt, "a")), { sha256: createHash("sha256").update("a".repeat(5000)).digest("hex"), zeros: 0 }, "a cold file read through the re-adopted mount is the image's");

  // Killed again, and the new daemon cannot re-adopt it (its state.json lost the mount): in use, it is an error.
  await killDaemonAndHolder(cache2);
  fs.writeFileSync(path.join(cache2, "state.json"), JSON.stringify({ version: 1, mounts: [] }));
  const third = new DaemonImageMounts({ root, config });
  const failed = await third.reattach([image]);
  assert.deepEqual([...failed.keys()], [image.manifest]);
  assert.ok(failed.get(image.manifest) instanceof EodError && /no cache daemon serves/.test(failed.get(image.manifest)!.message), String(failed.get(image.manifest)));
  assert.equal(third.counters.unserved, 1);
  assert.equal(mountsUnder(root).length, 1, "left for its containers to be removed");
  const status: SnapshotterStatus = { root, snapshots: { active: 1, view: 0, committed: 1 }, lazyLayers: 1, images: [{ ...image, mountPoint: mnt, mounted: true, snapshots: [] }] };
  await checkServed(status);
  assert.equal(status.images[0].served, false, "eod status marks it NOT SERVED");
  await assert.rejects(third.acquire(image, true), /no cache daemon serves/);

  // Nothing uses it: an acquire replaces it with a mount the daemon serves.
  assert.equal(await third.acquire(image), mnt);
  assert.equal(mountsUnder(root).length, 1);
  assert.notEqual(await daemonServing(mnt), null);
  assert.deepEqual(await readInChild(path.join(mnt, "b")), { sha256: createHash("sha256").update("b").digest("hex"), zeros: 0 });
  await third.release(image);
  assert.equal(mountsUnder(root).length, 0);
});

test("DaemonImageMounts refuses a manifest digest that is not sha256:<hex> (it names a directory)", () => {
  const images = new DaemonImageMounts({ root: "/nonexistent", config: loadConfig({}) });
  assert.throws(() => images.mountPointOf({ manifest: "sha256:../../etc" }), (err: EodError) => err.code === "IMAGE_INVALID");
});

test("DaemonImageMounts.warmUp starts no daemon; warm gets one ready for the image (reference resolved, nothing mounted) and its mount reuses that", { skip, timeout: 120_000 }, async (t) => {
  const root = path.join(work, "root-warm");
  const warmCache = path.join(work, "cache-warm");
  t.after(() => cleanup(root, warmCache));
  const images = new DaemonImageMounts({ root, config: loadConfig({ "cache-dir": warmCache }) });
  await images.warmUp();
  assert.ok(!fs.existsSync(path.join(warmCache, "daemon.sock")), "no daemon runs: none is started for a warm-up");
  await images.warm(image);
  const status = async () => callDaemon<{ mounts: unknown[]; remotes: Array<{ location: string; requests: number }> }>(path.join(warmCache, "daemon.sock"), "GET", "/status");
  const before = await status();
  assert.equal(before.mounts.length, 0);
  assert.equal(before.remotes.length, 1);
  assert.match(before.remotes[0].location, new RegExp(`^docker://${reg.host}/eod/conv:v1@sha256:[0-9a-f]{64}$`), "pinned to the manifest digest");
  assert.equal(before.remotes[0].requests, 0, "no blob fetched");
  await images.warmUp(); // now a daemon runs: it loads the registry client (already there)
  const mnt = await images.acquire(image);
  assert.equal(fs.readFileSync(path.join(mnt, "etc/hello"), "utf8"), "hello from the image\n");
  assert.equal((await status()).remotes.length, 1, "the mount used the resolved remote");
  await images.release(image);
});
