// The lazy path end to end with Debian's containerd + runc: a busybox-static image `eod convert`ed in the local
// registry, pulled through CRI (kubelet's call) with the eod snapshotter: the registry serves the manifest and
// the config and no layer blob. Then `ctr run --snapshotter eod`: the command's output is right and a write
// lands in the container's upper dir, not in the image; two containers share one image mount, removed with the
// last of them; a kill -9 of the snapshotter leaves a running container reading its (cold) files, and after a
// restart the snapshots are intact and a new container starts; after a kill -9 of the cache daemon and its
// holder too, the restarted snapshotter has the mount served again before a container reads from it.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { containerdMissing } from "../helpers/containerd.ts";
import { criPullImage } from "../helpers/cri.ts";
import { eodAsync } from "../helpers/lazy.ts";
import { pushBusyboxImage } from "../helpers/push-image.ts";
import { freePort, registryProxy, startRegistry, type RegistryProxy, type RunningRegistry } from "../helpers/registry.ts";
import { unavailable } from "../helpers/skip.ts";
import { daemonServing } from "../../src/daemon/locate.ts";
import { mounts } from "../../src/daemon/mountinfo.ts";
import { snapshotterStatus, type ImageMountStatus } from "../../src/snapshotter/status.ts";
import { RegistryClient, staticCredentials } from "../../src/remote/registry/index.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { startEodContainerd, stopInOrder, type EodContainerd } from "./stack.ts";

const missing = containerdMissing();
const skip = unavailable(missing || (kernelSupportsPreContent().ok ? false : "kernel lacks fanotify pre-content events or file-backed EROFS"));

/** Files of the image's second layer: one read by the first container, one read only after the snapshotter is killed. */
const WARM = randomBytes(300_000);
const COLD = randomBytes(700_000);
/** Read only after the cache daemon and its holder were killed -9 and the snapshotter restarted. */
const COLD2 = randomBytes(500_000);
/** runc keeps its state by container id in one directory for every containerd on the machine: ids unique to this run. */
const [C1, C2, C3, C4, C5, C6] = [1, 2, 3, 4, 5, 6].map((n) => `eod-lazy-${process.pid}-c${n}`);
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

let work = "";
/** The converted image, through the counting proxy. */
let ref = "";
/** The requests the proxy passed to the registry: "GET /v2/…". */
const requests: string[] = [];
let reg: RunningRegistry | undefined;
let proxy: RegistryProxy | undefined;
/** The snapshotter and containerd, once started. */
let stack: EodContainerd | undefined;
let metricsUrl = "";

before(async () => {
  if (skip) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-ctd-lazy-"));
  reg = await startRegistry();
  proxy = await registryProxy(reg.host, { before: (req) => { requests.push(`${req.method} ${new URL(req.url ?? "/", "http://x").pathname}`); return false; } });
  const client = new RegistryClient({ credentials: staticCredentials({}) });
  try {
    await pushBusyboxImage(client, { registry: reg.host, repository: "eod/busybox" }, "src", [
      { path: "data/", type: "dir" }, { path: "data/warm", data: WARM }, { path: "data/cold", data: COLD }, { path: "data/cold2", data: COLD2 },
    ]);
  } finally {
    await client.close();
  }
  const conv = await eodAsync(["convert", `${reg.host}/eod/busybox:src`, `${reg.host}/eod/busybox:eod`], { DOCKER_CONFIG: path.join(work, "no-docker-config") });
  assert.equal(conv.status, 0, conv.stderr);
  ref = `${proxy.host}/eod/busybox:eod`; // through the counting proxy: what CRI and the snapshotter fetch
  const metrics = `127.0.0.1:${await freePort()}`;
  metricsUrl = `http://${metrics}/metrics`;
  stack = await startEodContainerd(work, { registryMirrors: [proxy.host], snapshotterArgs: ["--metrics-listen", metrics] });
});

after(() => stopInOrder(work, [() => stack?.containerd.stop(), () => stack?.snapshotter.stop(), () => proxy?.close(), () => reg?.stop()]));

/** The lazy image mounts (erofs under <root>/images). */
const imageMounts = () => mounts().filter((m) => m.fsType === "erofs" && m.mountPoint.startsWith(`${stack!.root}/images/`));

/** The containers over the image mount, as eod status reads them from the snapshotter's database. */
function containersOverImage(): string[] {
  return snapshotterStatus(stack!.root)?.images.flatMap((i) => i.snapshots.map((u) => u.container ?? u.key)) ?? [];
}

function why(): string {
  return stack?.why() ?? "";
}

async function ctrOk(args: string[]): Promise<string> {
  const r = await stack!.containerd.ctr(args);
  assert.equal(r.code, 0, `ctr ${args.join(" ")}: ${r.stderr}${why()}`);
  return r.stdout;
}

/** Polls `done` for up to 10 s. */
async function eventually(what: string, done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(done(), `${what}${why()}`);
}

let leases = 0;
/**
 * containerd removes a deleted container's snapshot in its garbage collection, which runs when its scheduler
 * decides (up to 50 times the last collection's pause later). Deleting a lease with --sync runs one now and
 * returns when it is over, the snapshotter's Removes (hence their unmounts) included.
 */
async function collectGarbage(): Promise<void> {
  const id = `eod-lazy-${process.pid}-gc${leases++}`;
  await ctrOk(["leases", "create", "--id", id]);
  await ctrOk(["leases", "delete", "--sync", id]);
}

/** Kills and deletes the task and deletes the container (its snapshot with it). */
async function removeContainer(id: string): Promise<void> {
  await stack!.containerd.ctr(["tasks", "kill", "-s", "SIGKILL", id]);
  await ctrOk(["tasks", "delete", "-f", id]);
  await ctrOk(["containers", "delete", id]);
  await collectGarbage();
}

test("CRI pull fetches the manifest and the config only; ctr run prints the right output and writes into the upper dir", { skip, timeout: 300_000 }, async () => {
  const client = new RegistryClient({ credentials: staticCredentials({}) });
  let manifest;
  try { ({ manifest } = await client.resolve(ref)); } finally { await client.close(); }
  requests.length = 0;
  await criPullImage(stack!.containerd.address, ref);
  const blobs = requests.filter((r) => r.includes("/blobs/"));
  assert.deepEqual(blobs.map((r) => r.split("/").pop()), [manifest.config.digest], `only the config blob was fetched: ${requests.join(", ")}`);
  assert.ok(requests.every((r) => r.startsWith("GET ") || r.startsWith("HEAD ")), requests.join(", "));
  const layers = new Set(manifest.layers.map((l) => l.digest));
  assert.ok(!requests.some((r) => layers.has(r.split("/").pop()!)), "no layer blob");

  const out = await ctrOk(["run", "--snapshotter", "eod", ref, C1, "sh", "-c", "sha256sum /data/warm; echo written > /data/new; cat /data/new"]);
  assert.equal(out.replace(/\r/g, ""), `${sha(WARM)}  /data/warm\nwritten\n`);
  const [image] = imageMounts();
  assert.ok(image, `the image is mounted under ${stack!.root}/images${why()}`);
  const uppers = fs.readdirSync(path.join(stack!.root, "snapshots")).map((id) => path.join(stack!.root, "snapshots", id, "fs", "data/new")).filter((f) => fs.existsSync(f));
  assert.equal(uppers.length, 1, "the write is in one snapshot's upper dir");
  assert.equal(fs.readFileSync(uppers[0], "utf8"), "written\n");
  assert.ok(!fs.existsSync(path.join(image.mountPoint, "data/new")), "and not in the image");
  await ctrOk(["containers", "delete", C1]);
  await collectGarbage();
  assert.equal(imageMounts().length, 0, `its last snapshot removed, the image is unmounted${why()}`);
});

test("two containers of the image share one lazy mount; removing both unmounts it", { skip, timeout: 300_000 }, async () => {
  for (const id of [C2, C3]) await ctrOk(["run", "-d", "--snapshotter", "eod", ref, id, "sleep", "1000"]);
  try {
    assert.equal(imageMounts().length, 1, `one image mount for two containers${why()}`);
    const status = await eodAsync(["status", "--cache-dir", path.join(work, "cache"), "--snapshotter-root", stack!.root, "--json"]);
    const { running, snapshotter } = JSON.parse(status.stdout);
    assert.ok(running, "the cache daemon serves the image mount");
    assert.deepEqual(snapshotter.images.map((i: ImageMountStatus) => [i.mounted, i.snapshots.map((u) => u.container)]), [[true, [C2, C3]]], "eod status names both containers");
    const metrics = await (await fetch(metricsUrl)).text();
    for (const line of ['eod_snapshotter_snapshots{kind="active"} 2', "eod_snapshotter_image_mounts_in_use 1", 'eod_snapshotter_errors_total{kind="acquire"} 0']) {
      assert.ok(metrics.split("\n").includes(line), `metrics have ${line}:\n${metrics}`);
    }
    await removeContainer(C2);
    assert.equal(containersOverImage().join(), C3, "only c3 uses the image once c2's snapshot is removed");
    assert.equal(imageMounts().length, 1, "still used by c3");
  } finally {
    await removeContainer(C3);
  }
  // The snapshotter answers the Remove of the last snapshot once the mount and its directory are gone.
  assert.equal(imageMounts().length, 0, `both removed: unmounted${why()}`);
  assert.deepEqual(fs.readdirSync(path.join(stack!.root, "images")), [], "its directory is gone too");
});

test("kill -9 of the snapshotter: a running container reads its cold files; after a restart the snapshots are intact and a new container starts", { skip, timeout: 300_000 }, async () => {
  // Waits for /tmp/go, then reads a file nothing has read yet (its bytes come from the registry then).
  await ctrOk(["run", "-d", "--snapshotter", "eod", ref, C4, "sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.1; done; sha256sum /data/cold > /tmp/out; sleep 1000"]);
  try {
    const before = await ctrOk(["snapshots", "--snapshotter", "eod", "ls"]);
    await stack!.snapshotter.kill("SIGKILL");
    requests.length = 0;
    await ctrOk(["tasks", "exec", "--exec-id", "go", C4, "touch", "/tmp/go"]);
    let out = "";
    for (let i = 0; i < 300 && !out; i++) {
      out = (await stack!.containerd.ctr(["tasks", "exec", "--exec-id", `read${i}`, C4, "cat", "/tmp/out"])).stdout;
      if (!out) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(out.replace(/\r/g, ""), `${sha(COLD)}  /data/cold\n`, `the container read its cold file with the snapshotter down${why()}`);
    assert.ok(requests.some((r) => r.includes("/blobs/")), "its bytes came from the registry through the cache daemon meanwhile");

    await stack!.snapshotter.restart();
    // containerd's gRPC connection to the snapshotter comes back with its reconnect backoff: the first calls may fail.
    let after = await stack!.containerd.ctr(["snapshots", "--snapshotter", "eod", "ls"]);
    for (let i = 0; i < 60 && after.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 500));
      after = await stack!.containerd.ctr(["snapshots", "--snapshotter", "eod", "ls"]);
    }
    assert.equal(after.code, 0, after.stderr);
    assert.equal(after.stdout, before, "the snapshots are intact");
    assert.equal(imageMounts().length, 1, "the image mount was kept and is reused");
    const again = await ctrOk(["run", "--rm", "--snapshotter", "eod", ref, C5, "sha256sum", "/data/warm"]);
    assert.equal(again.replace(/\r/g, ""), `${sha(WARM)}  /data/warm\n`);
  } finally {
    await removeContainer(C4);
  }
  assert.equal(imageMounts().length, 0, `the last container removed: unmounted${why()}`);
});

test("kill -9 of the cache daemon, its holder and the snapshotter: after the snapshotter's restart the image mount is served again, a running container reads a cold file right (never zeros)", { skip, timeout: 300_000 }, async () => {
  await ctrOk(["run", "-d", "--snapshotter", "eod", ref, C6, "sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.1; done; sha256sum /data/cold2 > /tmp/out; sleep 1000"]);
  try {
    const [mount] = imageMounts();
    assert.ok(mount, `the image is mounted${why()}`);
    const cache = path.join(work, "cache");
    await stack!.snapshotter.kill("SIGKILL");
    for (const f of ["holder.pid", "daemon.pid"]) process.kill(Number(fs.readFileSync(path.join(cache, f), "utf8")), "SIGKILL"); // the holder first, or it starts a new daemon
    await eventually("no daemon serves the image mount", () => !fs.existsSync(path.join(cache, "daemon.pid")) || !pidAlive(Number(fs.readFileSync(path.join(cache, "daemon.pid"), "utf8"))));
    assert.equal(await daemonServing(mount.mountPoint), null);

    await stack!.snapshotter.restart(); // its re-attach starts the cache dir's daemon, which re-adopts the mount
    let served: string | null = null;
    for (let i = 0; i < 200 && served === null; i++) {
      served = await daemonServing(mount.mountPoint);
      if (served === null) await new Promise((r) => setTimeout(r, 100));
    }
    assert.notEqual(served, null, `a daemon serves the image mount again${why()}`);
    assert.equal(imageMounts().length, 1, "the same mount, kept");
    await ctrOk(["tasks", "exec", "--exec-id", "go", C6, "touch", "/tmp/go"]);
    let out = "";
    for (let i = 0; i < 300 && !out; i++) {
      out = (await stack!.containerd.ctr(["tasks", "exec", "--exec-id", `read${i}`, C6, "cat", "/tmp/out"])).stdout;
      if (!out) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(out.replace(/\r/g, ""), `${sha(COLD2)}  /data/cold2\n`, `the container read its cold file through the re-adopted mount${why()}`);
  } finally {
    await removeContainer(C6);
  }
  assert.equal(imageMounts().length, 0, `the last container removed: unmounted${why()}`);
  assert.deepEqual(fs.readdirSync(path.join(stack!.root, "images")), [], "its directory is gone too");
});

test("ctr images pull --snapshotter eod (containerd 1.6: content.Fetch of every blob, then an unpack without the layers' labels): the whole image is downloaded, then the first layer fails with no processor for its media type", { skip, timeout: 120_000 }, async () => {
  const client = new RegistryClient({ credentials: staticCredentials({}) });
  let manifest;
  try { ({ manifest } = await client.resolve(ref)); } finally { await client.close(); }
  requests.length = 0;
  const r = await stack!.containerd.ctr(["images", "pull", "--plain-http", "--snapshotter", "eod", ref], { namespace: "ctr-pull" });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /ctr: failed to extract layer sha256:[0-9a-f]{64}: failed to get stream processor for application\/vnd\.oci\.image\.layer\.erofs-ondemand\.manifest\.v1\+json: no processor for media-type: unknown/, r.stderr);
  // (the config is in containerd's content store from the CRI pull: its "shared" content policy fetches it no more)
  const fetched = new Set(requests.filter((q) => q.startsWith("GET ") && q.includes("/blobs/")).map((q) => q.split("/").pop()!));
  assert.deepEqual(manifest.layers.filter((l) => !fetched.has(l.digest)), [], "every layer fetched, data blobs included");
  assert.equal((await stack!.containerd.ctrOk(["snapshots", "--snapshotter", "eod", "ls"], { namespace: "ctr-pull" })).trim().split("\n").length, 1, "no snapshot left in that namespace (the header line only): the failed extraction was removed");
});

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
