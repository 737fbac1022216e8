// snapshotter.mount_on_pull with the stand-in ImageMounts: a pull's lazy Prepare starts one background acquire
// of the image (never failing the pull), held in the database until a container takes it, released when none
// does in time or when the image's layers go, and kept across a restart while its hold lasts.
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { M, pullLayers, REF, serve, type Served } from "./lazy-image.ts";

let s: Served | undefined;
afterEach(async () => { await s?.stop(); s = undefined; });

const acquires = (x: Served) => x.images.calls.filter((c) => c.startsWith("acquire"));
const releases = (x: Served) => x.images.calls.filter((c) => c.startsWith("release"));
const heldUntil = (x: Served) => x.snapshotter().store.image(M)?.heldUntil ?? null;

async function until(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("off (the default): a pull acquires nothing", async () => {
  s = await serve();
  await pullLayers(s.c, ["sha256:c1", "sha256:c2"]);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(acquires(s), []);
  assert.equal(heldUntil(s), null);
});

test("a pull mounts the image once, in the background; its first container takes that mount, the last one releases it", async () => {
  s = await serve({ mountOnPullIdleMs: 60_000 });
  s.images.delayMs = 100;
  const t0 = Date.now();
  await pullLayers(s.c, ["sha256:c1", "sha256:c2", "sha256:c3"]);
  const held = heldUntil(s);
  assert.ok(held !== null && held >= t0 + 60_000, "the database holds the mount for the pull");
  // a container comes while the mount is still being made: it waits for it instead of acquiring again
  const ctr = await s.c.prepare("k8s.io/1/ctr", "sha256:c3");
  assert.deepEqual(acquires(s), [`acquire ${M} ${REF}`]);
  assert.ok(ctr[0].options.some((o) => o.startsWith("lowerdir=")));
  assert.equal(heldUntil(s), null, "taken: its users keep it from now on");
  assert.deepEqual(s.snapshotter().pullMounts, { mounts: 1, failures: 0, expired: 0 });
  assert.deepEqual(s.images.warmed, [], "the mount does what a warm-up would");
  await s.c.prepare("k8s.io/2/ctr", "sha256:c3");
  assert.equal(acquires(s).length, 1);
  await s.c.remove("k8s.io/1/ctr");
  assert.deepEqual(releases(s), []);
  await s.c.remove("k8s.io/2/ctr");
  assert.deepEqual(releases(s), [`release ${M}`]);
});

test("a mount no container takes in time is released; the next container mounts the image again", async () => {
  s = await serve({ mountOnPullIdleMs: 200 });
  await pullLayers(s.c, ["sha256:c1"]);
  await until("the mount at the pull", () => acquires(s!).length === 1);
  await until("the hold's end", () => releases(s!).length === 1);
  assert.equal(heldUntil(s), null);
  assert.deepEqual(s.snapshotter().pullMounts, { mounts: 1, failures: 0, expired: 1 });
  await s.c.prepare("ctr", "sha256:c1");
  assert.equal(acquires(s).length, 2);
  await s.c.remove("ctr");
});

test("a failed mount at the pull fails nothing: logged, counted, the hold dropped, the first container mounts the image", async () => {
  const logged: string[] = [];
  s = await serve({ mountOnPullIdleMs: 60_000, log: (level, msg) => { logged.push(`${level} ${msg}`); } });
  s.images.fail = new Error("registry unreachable");
  await pullLayers(s.c, ["sha256:c1", "sha256:c2"]);
  await until("the failure", () => s!.snapshotter().pullMounts.failures === 1);
  await until("the hold dropped", () => heldUntil(s!) === null);
  assert.ok(logged.some((l) => l.startsWith("error image mount on pull failed")), logged.join("\n"));
  s.images.fail = null;
  await s.c.prepare("ctr", "sha256:c2");
  assert.equal(acquires(s).length, 2);
  await s.c.remove("ctr");
});

test("a restart keeps a held mount (the database says it is held) and drops one whose hold ran out", async () => {
  s = await serve({ mountOnPullIdleMs: 60_000 });
  await pullLayers(s.c, ["sha256:c1"]);
  await until("the mount at the pull", () => s!.snapshotter().pullMounts.mounts === 1);
  await s.restart();
  await s.c.cleanup(); // after the start's re-attach
  assert.ok(s.images.calls.includes(`reattach  held ${M}`), s.images.calls.join("\n"));
  await s.c.prepare("ctr", "sha256:c1");
  assert.equal(acquires(s).length, 1, "re-attached at start: the container shares it");
  assert.equal(heldUntil(s), null);
  await s.c.remove("ctr");
  assert.deepEqual(releases(s), [`release ${M}`]);

  // a hold that runs out while the snapshotter is down: the start's re-attach leaves the mount out (it unmounts it)
  await s.stop();
  s = await serve({ mountOnPullIdleMs: 100 });
  await pullLayers(s.c, ["sha256:c1"]);
  await until("the mount at the pull", () => s!.snapshotter().pullMounts.mounts === 1);
  await s.snapshotter().close(); // stops the hold's timer with the process, as a kill would
  await new Promise((r) => setTimeout(r, 150));
  await s.restart();
  await s.c.cleanup();
  assert.deepEqual(s.images.calls.filter((c) => c.startsWith("reattach ")), ["reattach ", "reattach ", "reattach "], "not re-attached: no hold, no user");
  assert.equal(heldUntil(s), null);
});

test("removing the layers of a held image (containerd's garbage collection) releases its mount with the last one", async () => {
  s = await serve({ mountOnPullIdleMs: 60_000 });
  await pullLayers(s.c, ["sha256:c1", "sha256:c2"]);
  await until("the mount at the pull", () => s!.snapshotter().pullMounts.mounts === 1);
  await s.c.remove("sha256:c2");
  assert.deepEqual(releases(s), [], "the image is still there, and still held");
  await s.c.remove("sha256:c1");
  assert.deepEqual(releases(s), [`release ${M}`]);
  assert.equal(s.snapshotter().store.image(M), undefined);
  assert.deepEqual(await s.c.list(), []);
});
