// snapshotter.mount_on_pull end to end with Debian's containerd + runc: `eod snapshotter --mount-on-pull`, a
// CRI pull of an `eod convert`ed busybox image mounts it before any container exists (eod status: held by its
// pull); the container then runs on that mount (no second mount) and its removal unmounts it; an image pulled
// and never run is unmounted when its hold ends (--mount-on-pull-idle).
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
import { freePort, startRegistry, type RunningRegistry } from "../helpers/registry.ts";
import { unavailable } from "../helpers/skip.ts";
import { mounts } from "../../src/daemon/mountinfo.ts";
import { snapshotterStatus } from "../../src/snapshotter/status.ts";
import { RegistryClient, staticCredentials } from "../../src/remote/registry/index.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { startEodContainerd, stopInOrder, type EodContainerd } from "./stack.ts";

const missing = containerdMissing();
const skip = unavailable(missing || (kernelSupportsPreContent().ok ? false : "kernel lacks fanotify pre-content events or file-backed EROFS"));

/** How long a mount made at a pull waits for a container here: long enough for `ctr run` on a loaded machine. */
const IDLE_S = 15;
const DATA = randomBytes(200_000);
const C1 = `eod-mop-${process.pid}-c1`;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

let work = "";
let reg: RunningRegistry | undefined;
let stack: EodContainerd | undefined;
let metricsUrl = "";
/** The converted images: one run, one only pulled. */
let [runRef, idleRef] = ["", ""];

before(async () => {
  if (skip) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-ctd-mop-"));
  reg = await startRegistry();
  const client = new RegistryClient({ credentials: staticCredentials({}) });
  try {
    for (const [tag, data] of [["run", DATA], ["idle", randomBytes(100_000)]] as const) {
      await pushBusyboxImage(client, { registry: reg.host, repository: "eod/mop" }, `${tag}-src`, [{ path: "data/", type: "dir" }, { path: "data/file", data }]);
      const conv = await eodAsync(["convert", `${reg.host}/eod/mop:${tag}-src`, `${reg.host}/eod/mop:${tag}`], { DOCKER_CONFIG: path.join(work, "no-docker-config") });
      assert.equal(conv.status, 0, conv.stderr);
    }
  } finally {
    await client.close();
  }
  [runRef, idleRef] = [`${reg.host}/eod/mop:run`, `${reg.host}/eod/mop:idle`];
  const metrics = `127.0.0.1:${await freePort()}`;
  metricsUrl = `http://${metrics}/metrics`;
  stack = await startEodContainerd(work, { registryMirrors: [reg.host], snapshotterArgs: ["--metrics-listen", metrics, "--mount-on-pull", "--mount-on-pull-idle", `${IDLE_S}s`] });
});

after(() => stopInOrder(work, [() => stack?.containerd.stop(), () => stack?.snapshotter.stop(), () => reg?.stop()]));

const imageMounts = () => mounts().filter((m) => m.fsType === "erofs" && m.mountPoint.startsWith(`${stack!.root}/images/`)).map((m) => m.mountPoint);
const why = () => stack?.why() ?? "";

async function eventually(what: string, done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(done(), `${what}${why()}`);
}

async function ctrOk(args: string[]): Promise<string> {
  const r = await stack!.containerd.ctr(args);
  assert.equal(r.code, 0, `ctr ${args.join(" ")}: ${r.stderr}${why()}`);
  return r.stdout;
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line, `no ${name} in:\n${text}`);
  return Number(line.split(" ")[1]);
}

test("a CRI pull mounts the image; its container runs on that mount, and its removal unmounts it", { skip, timeout: 300_000 }, async () => {
  await criPullImage(stack!.containerd.address, runRef);
  await eventually("the image is mounted after its pull, with no container", () => imageMounts().length === 1);
  const held = snapshotterStatus(stack!.root)!.images;
  assert.equal(held.length, 1, `${JSON.stringify(held)}${why()}`);
  assert.ok(held[0].heldUntil !== undefined && held[0].snapshots.length === 0, JSON.stringify(held));
  assert.equal(await metric("eod_snapshotter_image_mounts_held"), 1);
  const mountPoint = imageMounts()[0];

  const out = await ctrOk(["run", "--snapshotter", "eod", runRef, C1, "sha256sum", "/data/file"]);
  assert.equal(out.replace(/\r/g, ""), `${sha(DATA)}  /data/file\n`);
  assert.equal(await metric("eod_snapshotter_pull_mounts_total"), 1);
  assert.equal(await metric("eod_snapshotter_image_acquires_total"), 1, "the container took the pull's mount: no second acquire");
  assert.equal(await metric('eod_snapshotter_errors_total{kind="mount_on_pull"}'), 0);
  assert.deepEqual(imageMounts(), [mountPoint]);

  // containerd's garbage collection removes the deleted container's snapshot, and the mount with it
  await ctrOk(["containers", "delete", C1]);
  const lease = `eod-mop-${process.pid}-gc`;
  await ctrOk(["leases", "create", "--id", lease]);
  await ctrOk(["leases", "delete", "--sync", lease]);
  await eventually("unmounted with its last container", () => imageMounts().length === 0);
  assert.equal(snapshotterStatus(stack!.root)!.images.length, 0);
});

test("an image pulled and never run is unmounted when its hold ends", { skip, timeout: 300_000 }, async () => {
  const expiredBefore = await metric("eod_snapshotter_pull_mounts_expired_total");
  await criPullImage(stack!.containerd.address, idleRef);
  await eventually("the image is mounted after its pull", () => imageMounts().length === 1);
  await eventually("unmounted when its hold ended", () => imageMounts().length === 0, (IDLE_S + 20) * 1000);
  assert.equal(await metric("eod_snapshotter_pull_mounts_expired_total"), expiredBefore + 1);
  assert.equal(snapshotterStatus(stack!.root)!.images.length, 0, "no hold left");
  assert.ok((await stack!.containerd.ctr(["-n", "k8s.io", "images", "ls", "-q"])).stdout.includes(idleRef), "the image stays pulled");
});
