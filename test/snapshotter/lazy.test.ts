// The layers of eod images at the gRPC level, with a stand-in ImageMounts whose "mount" is an ordinary
// directory (what the real one does through the cache daemon is tested in daemon-image-mounts.test.ts and the
// containerd tests): Prepare answers ALREADY_EXISTS and containerd's List/Stat find the layer; containers over
// the image share one acquire; the last one removed or committed releases it; a restart re-attaches.
import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { DIGEST, layerLabels, M, M2, pullLayers, REF, rejects, serve, type Served } from "./lazy-image.ts";

let s: Served;
beforeEach(async () => {
  s = await serve();
});
afterEach(() => s.stop());

test("a layer of an eod image: ALREADY_EXISTS, a committed snapshot containerd's List and Stat find, nothing acquired", async () => {
  await pullLayers(s.c, ["sha256:c1", "sha256:c2"], M, { "containerd.io/snapshot/cri.manifest-digest": DIGEST });
  assert.deepEqual(s.images.calls, [`reattach `, "reattached"]);
  assert.deepEqual(s.images.warmed, [`warm ${M} ${REF}@${DIGEST}`], "the daemon got ready once, at the image's first layer");
  const info = await s.c.stat("sha256:c2");
  assert.equal(info.labels["containerd.io/snapshot/eod.manifest"], M);
  await rejects(s.c.stat("k8s.io/1/extract-sha256:c1"), grpc.status.NOT_FOUND);
  // the same layer again (another namespace, a re-pull): still there, still ALREADY_EXISTS
  await pullLayers(s.c, ["sha256:c1"]);
  assert.equal(fs.readdirSync(path.join(s.root, "snapshots")).length, 0, "no directory for a lazy layer");
  await s.c.prepare("k8s.io/2/ctr", "sha256:c2");
  assert.deepEqual(s.images.calls.slice(2), [`acquire ${M} ${REF}@${DIGEST}`], "the mount is pinned to the manifest digest CRI resolved");
});

test("without cri.image-ref the layer cannot be mounted: FAILED_PRECONDITION pointing at CRI", async () => {
  await assert.rejects(s.c.prepare("k", "", { "containerd.io/snapshot.ref": "sha256:c1", "containerd.io/snapshot/eod.manifest": M }),
    (err: grpc.ServiceError) => err.code === grpc.status.FAILED_PRECONDITION && /CRI/.test(err.details) && /containerd\.md/.test(err.details));
  await rejects(s.c.prepare("k", "", layerLabels("sha256:c1", "sha256:nothex")), grpc.status.INVALID_ARGUMENT);
  await rejects(s.c.prepare("k", "missing", layerLabels("sha256:c1")), grpc.status.NOT_FOUND);
  assert.deepEqual(await s.c.list(), []);
});

test("containers of one image share one acquire; views are read-only binds; the last one removed releases it", async () => {
  await pullLayers(s.c, ["sha256:c1", "sha256:c2"]);
  s.images.delayMs = 50;
  const mounts = await Promise.all(Array.from({ length: 6 }, (_, i) => s.c.prepare(`k8s.io/${i}/ctr`, "sha256:c2")));
  assert.deepEqual(s.images.calls.filter((c) => c.startsWith("acquire")), [`acquire ${M} ${REF}`]);
  const mnt = path.join(path.dirname(s.root), "images", M.slice(7, 15));
  for (const [i, m] of mounts.entries()) {
    assert.equal(m.length, 1);
    assert.equal(m[0].type, "overlay");
    assert.ok(m[0].options.includes(`lowerdir=${mnt}`), m[0].options.join(" "));
    assert.ok(m[0].options.some((o) => o.startsWith("upperdir=") && o.endsWith("/fs")), `${i}`);
  }
  assert.deepEqual(await s.c.view("k8s.io/9/view", "sha256:c1"), [{ type: "bind", source: mnt, target: "", options: ["ro", "rbind"] }]);
  assert.deepEqual(await s.c.mounts("k8s.io/0/ctr"), mounts[0]);
  await Promise.all(Array.from({ length: 5 }, (_, i) => s.c.remove(`k8s.io/${i}/ctr`)));
  await s.c.remove("k8s.io/9/view");
  assert.equal(s.images.calls.filter((c) => c.startsWith("release")).length, 0, "one container still uses it");
  await s.c.commit("k8s.io/5/committed", "k8s.io/5/ctr");
  assert.deepEqual(s.images.calls.filter((c) => c.startsWith("release")), [`release ${M}`], "Commit of the last user releases");
  // a committed layer over the image: its children see both
  const child = await s.c.prepare("k8s.io/6/child", "k8s.io/5/committed");
  assert.ok(child[0].options.some((o) => new RegExp(`^lowerdir=.*/snapshots/\\d+/fs:${mnt}$`).test(o)), child[0].options.join(" "));
  assert.equal(s.images.calls.filter((c) => c.startsWith("acquire")).length, 2);
  await rejects(s.c.remove("sha256:c2"), grpc.status.FAILED_PRECONDITION);
  await s.c.remove("k8s.io/6/child");
  assert.equal(s.images.calls.filter((c) => c.startsWith("release")).length, 2);
  await s.c.remove("k8s.io/5/committed");
  await s.c.remove("sha256:c2");
  await s.c.remove("sha256:c1");
  assert.deepEqual(await s.c.list(), []);
});

test("a failed warm-up at the pull fails nothing", async () => {
  s.images.fail = new Error("daemon unreachable");
  await pullLayers(s.c, ["sha256:c1"]);
  s.images.fail = null;
  assert.equal(s.images.warmed.length, 1);
  await s.c.prepare("ctr", "sha256:c1");
  await s.c.remove("ctr");
});

test("a failed acquire fails the Prepare and records nothing", async () => {
  await pullLayers(s.c, ["sha256:c1"]);
  s.images.fail = new Error("daemon unreachable");
  await assert.rejects(s.c.prepare("ctr", "sha256:c1"), (err: grpc.ServiceError) => err.code === grpc.status.UNKNOWN && err.details.includes("daemon unreachable"));
  await rejects(s.c.stat("ctr"), grpc.status.NOT_FOUND);
  s.images.fail = null;
  await s.c.prepare("ctr", "sha256:c1");
  await s.c.remove("ctr");
});

test("two images: each mounted once, released on its own", async () => {
  await pullLayers(s.c, ["sha256:a1"], M);
  await pullLayers(s.c, ["sha256:b1"], M2);
  await Promise.all([s.c.prepare("a", "sha256:a1"), s.c.prepare("b", "sha256:b1"), s.c.prepare("a2", "sha256:a1")]);
  assert.deepEqual(s.images.calls.filter((c) => c.startsWith("acquire")).sort(), [`acquire ${M} ${REF}`, `acquire ${M2} ${REF}`]);
  await s.c.remove("b");
  assert.deepEqual(s.images.calls.filter((c) => c.startsWith("release")), [`release ${M2}`]);
  await s.c.remove("a");
  await s.c.remove("a2");
});

test("a restart re-attaches the images in use, and Cleanup does it again", async () => {
  await pullLayers(s.c, ["sha256:a1"], M);
  await pullLayers(s.c, ["sha256:b1"], M2);
  const before = await s.c.prepare("a", "sha256:a1");
  await s.restart();
  assert.deepEqual(s.images.calls.filter((c) => c.startsWith("reattach ")), ["reattach ", `reattach ${M}`]);
  assert.deepEqual(await s.c.mounts("a"), before);
  await s.c.cleanup();
  assert.equal(s.images.calls.at(-1), "reattached");
  await s.c.prepare("a-shared", "sha256:a1");
  assert.equal(s.images.calls.filter((c) => c.startsWith("acquire")).length, 1, "re-attached: shared without acquiring again");
  s.images.fail = new Error("daemon down");
  await s.restart();
  s.images.fail = null;
  await s.c.prepare("a-after-failed-reattach", "sha256:a1");
  assert.equal(s.images.calls.filter((c) => c.startsWith("acquire")).length, 2, "a failed re-attach: the next container acquires again");
  for (const k of ["a", "a-shared", "a-after-failed-reattach"]) await s.c.remove(k);
  await s.c.cleanup();
  assert.deepEqual(s.images.calls.slice(-2), ["reattach ", "reattached"]);
});

test("an image in use whose mount no daemon serves after a restart: its Mounts and new containers fail saying why, until its last snapshot goes", async () => {
  await pullLayers(s.c, ["sha256:a1"], M);
  await s.c.prepare("a", "sha256:a1");
  await s.c.view("a-view", "sha256:a1");
  s.images.unserved.add(M);
  await s.restart();
  await s.c.cleanup(); // waits for the re-attach (both run alone)
  for (const key of ["a", "a-view"]) {
    await assert.rejects(s.c.mounts(key), (err: grpc.ServiceError) => err.code === grpc.status.FAILED_PRECONDITION && err.details.includes(`no daemon serves ${M}`));
  }
  await assert.rejects(s.c.prepare("a2", "sha256:a1"), (err: grpc.ServiceError) => err.details.includes(`no daemon serves ${M}`));
  await rejects(s.c.stat("a2"), grpc.status.NOT_FOUND);
  await s.c.remove("a");
  await s.c.remove("a-view");
  assert.equal(s.images.calls.at(-1), `release ${M}`);
  const fresh = await s.c.prepare("a3", "sha256:a1");
  assert.ok(fresh[0].options.some((o) => o.startsWith("lowerdir=")), "nothing uses it any more: mounted afresh");
  await s.c.remove("a3");
});

test("a slow re-attach at start: ordinary snapshots are served meanwhile, containers of an image wait for it", async () => {
  await pullLayers(s.c, ["sha256:a1"], M);
  await s.c.prepare("a", "sha256:a1");
  s.images.delayMs = 300;
  await s.restart();
  const ordinary = s.c.prepare("plain").then(() => [...s.images.calls]);
  const overImage = s.c.prepare("a2", "sha256:a1").then(() => [...s.images.calls]);
  const mountsOfExisting = s.c.mounts("a").then(() => [...s.images.calls]);
  assert.notEqual((await ordinary).at(-1), "reattached", "the ordinary Prepare did not wait for the re-attach");
  assert.equal((await overImage).filter((c) => c === "reattached").length, 2, "the container of the image waited for it");
  assert.equal((await mountsOfExisting).filter((c) => c === "reattached").length, 2, "Mounts of a container over the image waited for it too");
  for (const k of ["a", "a2", "plain"]) await s.c.remove(k);
});
