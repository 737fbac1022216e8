// Ordinary images an eod index refers to, at the gRPC level with the stand-in ImageMounts (its lookup() answers
// what the cache daemon's POST /resolve would): asked once per image at its first layer, an indexed image's
// layers are recorded lazily and its containers sit on its mount (pinned to the registry manifest digest); an
// unindexed one, or one whose lookup fails or is slow, is unpacked as before; a chain that reaches an indexed
// image's lower lazy layer from another image is refused, never given the indexed image's whole tree.
import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { codeOf, type SnapshotsClient } from "./client.ts";
import { renderMetrics } from "../../src/snapshotter/metrics.ts";
import { describeSnapshotter } from "../../src/snapshotter/status.ts";
import { rejects, serve, type Served } from "./lazy-image.ts";

const D1 = `sha256:${"d1".repeat(32)}`; // registry manifest digests
const D2 = `sha256:${"d2".repeat(32)}`;
const D3 = `sha256:${"d3".repeat(32)}`;
const pinned = (repo: string, digest: string) => `127.0.0.1:5000/${repo}:1@${digest}`;
const layerDigest = (chain: string) => `sha256:${chain.slice(-2).padStart(2, "0").repeat(32)}`;

/** The labels the CRI plugin passes with an ordinary layer's Prepare: `chain[i]` of an image of those layers. */
function criLabels(chain: readonly string[], i: number, repo: string, digest: string): Record<string, string> {
  return {
    "containerd.io/snapshot.ref": chain[i],
    "containerd.io/snapshot/cri.image-ref": `127.0.0.1:5000/${repo}:1`,
    "containerd.io/snapshot/cri.manifest-digest": digest,
    "containerd.io/snapshot/cri.layer-digest": layerDigest(chain[i]),
    "containerd.io/snapshot/cri.image-layers": chain.slice(i).map(layerDigest).join(","),
  };
}

/**
 * containerd's unpack of an image through CRI, from layer `from` (the ones below exist in its namespace): a lazy
 * layer answers ALREADY_EXISTS and is found by List; an ordinary one is prepared, "applied" (a file) and
 * committed as `<ns>/<n>/<chain>`. Returns the backend name of each layer.
 */
async function unpack(c: SnapshotsClient, chain: string[], repo: string, digest: string, opts: { ns?: string; from?: number; below?: string } = {}): Promise<string[]> {
  const ns = opts.ns ?? "k8s.io";
  const names: string[] = [];
  let parent = opts.below ?? "";
  for (let i = opts.from ?? 0; i < chain.length; i++) {
    const key = `${ns}/extract-${i}-${chain[i]}`;
    let name: string;
    try {
      const mounts = await c.prepare(key, parent, criLabels(chain, i, repo, digest));
      const dir = mounts[0].type === "bind" ? mounts[0].source : mounts[0].options.find((o) => o.startsWith("upperdir="))!.slice("upperdir=".length);
      fs.writeFileSync(path.join(dir, `layer-${chain[i].slice(-2)}`), repo);
      name = `${ns}/${i}/${chain[i]}`;
      await c.commit(name, key, { "containerd.io/snapshot.ref": chain[i] });
    } catch (err) {
      if (codeOf(err) !== grpc.status.ALREADY_EXISTS) throw err;
      const found = await c.list([`labels."containerd.io/snapshot.ref"==${chain[i]},parent==${JSON.stringify(parent)}`]);
      assert.equal(found.length, 1, chain[i]);
      name = found[0].name;
    }
    names.push(name);
    parent = name;
  }
  return names;
}

const lowerdir = (mounts: Array<{ options: string[] }>) => mounts[0].options.find((o) => o.startsWith("lowerdir="))?.slice("lowerdir=".length) ?? "";
const isLazy = (names: string[], chain: string[]) => names.every((n, i) => n === chain[i]);

let s: Served;
beforeEach(async () => {
  s = await serve({ lookupTimeoutMs: 500 });
});
afterEach(() => s.stop());

test("an indexed image: one lookup, every layer recorded without a fetch, its container on its mount pinned to the manifest digest", async () => {
  s.images.forms.set(pinned("app", D1), "indexed");
  const chain = ["sha256:11", "sha256:12", "sha256:13"];
  const names = await unpack(s.c, chain, "app", D1);
  assert.ok(isLazy(names, chain), `lazy records named by chain ID: ${names.join(" ")}`);
  assert.deepEqual(s.images.lookups, [pinned("app", D1)], "asked once for the image, not once per layer");
  assert.equal(fs.readdirSync(path.join(s.root, "snapshots")).length, 0, "no directory for a lazy layer");
  assert.equal((await s.c.stat("sha256:13")).labels["containerd.io/snapshot/cri.manifest-digest"], D1);
  const ctr = await s.c.prepare("k8s.io/1/ctr", "sha256:13");
  assert.deepEqual(s.images.calls.filter((c) => c.startsWith("acquire")), [`acquire ${D1} ${pinned("app", D1)}`]);
  assert.equal(lowerdir(ctr), path.join(path.dirname(s.root), "images", D1.slice(7, 15)));
  // the same image pulled again (another namespace): the database knows it, no lookup
  await unpack(s.c, chain, "app", D1, { ns: "default" });
  assert.equal(s.images.lookups.length, 1);
  await s.c.remove("k8s.io/1/ctr");
  assert.deepEqual(s.images.calls.filter((c) => c.startsWith("release")), [`release ${D1}`]);
});

test("an unindexed image is unpacked as before, after one lookup; a lookup that fails or is slow unpacks too, and the pull goes on", async () => {
  const chain = ["sha256:21", "sha256:22"];
  const names = await unpack(s.c, chain, "plain", D1);
  assert.ok(!isLazy(names, chain));
  assert.deepEqual(s.images.lookups, [pinned("plain", D1)]);
  const ctr = await s.c.prepare("k8s.io/1/ctr", names[1]);
  assert.equal(lowerdir(ctr).split(":").length, 2, "two unpacked layers under the container");
  assert.equal(s.images.calls.filter((c) => c.startsWith("acquire")).length, 0);

  s.images.lookupFail = new Error("daemon unreachable");
  assert.ok(!isLazy(await unpack(s.c, ["sha256:31", "sha256:32"], "broken", D2), ["sha256:31", "sha256:32"]));
  s.images.lookupFail = null;
  s.images.forms.set(pinned("slow", D3), "indexed");
  s.images.lookupDelayMs = 1500; // beyond the 500 ms this snapshotter waits
  const slow = ["sha256:41", "sha256:42"];
  const started = Date.now();
  assert.ok(!isLazy(await unpack(s.c, slow, "slow", D3), slow), "an answer too late: unpacked");
  assert.ok(Date.now() - started < 1400, "the pull waited for the lookup once, not once per layer");
  assert.deepEqual(s.images.lookups, [pinned("plain", D1), pinned("broken", D2), pinned("slow", D3)]);
  assert.deepEqual(s.snapshotter().lookups.counters, { indexed: 0, ordinary: 1, failed: 2, builtLocally: 0 });
});

test("without the CRI labels (ctr images pull) nothing is asked: the layer is unpacked", async () => {
  await s.c.prepare("default/extract-1", "", { "containerd.io/snapshot.ref": "sha256:51" });
  const labels = criLabels(["sha256:52"], 0, "app", D1);
  delete labels["containerd.io/snapshot/cri.image-layers"];
  await s.c.prepare("default/extract-2", "", labels);
  await s.c.prepare("default/extract-3", "", { ...criLabels(["sha256:53"], 0, "app", D1), "containerd.io/snapshot/cri.manifest-digest": "sha256:short" });
  assert.deepEqual(s.images.lookups, []);
});

test("an indexed image's lower lazy layer reused by an unindexed image: refused, never its whole tree; over its top layer another image is fine", async () => {
  s.images.forms.set(pinned("indexed", D1), "indexed");
  const b = ["sha256:61", "sha256:62"];
  await unpack(s.c, b, "indexed", D1);
  // A shares the first layer (same chain ID: containerd's namespace has it and asks nothing for it), then differs
  const a = ["sha256:61", "sha256:a2"];
  await assert.rejects(unpack(s.c, a, "plain", D2, { from: 1, below: "sha256:61" }),
    (err: grpc.ServiceError) => err.code === grpc.status.FAILED_PRECONDITION && /lower layer of the indexed image/.test(err.details) && err.details.includes("Indexed images"));
  await rejects(s.c.prepare("k8s.io/9/ctr", "sha256:61"), grpc.status.FAILED_PRECONDITION);
  await rejects(s.c.view("k8s.io/9/view", "sha256:61"), grpc.status.FAILED_PRECONDITION);
  // C's layers go on over B's top layer: its mount is exactly that chain
  const c = ["sha256:61", "sha256:62", "sha256:c3"];
  const names = await unpack(s.c, c, "derived", D3, { from: 2, below: "sha256:62" });
  const ctr = await s.c.prepare("k8s.io/3/ctr", names[0]);
  assert.match(lowerdir(ctr), new RegExp(`/snapshots/\\d+/fs:.*/images/${D1.slice(7, 15)}$`), "C's unpacked layer over B's mount");
  assert.ok(fs.existsSync(path.join(lowerdir(ctr).split(":")[0], "layer-c3")));
  // B itself still runs
  await s.c.prepare("k8s.io/2/ctr", "sha256:62");
  assert.deepEqual(new Set(s.images.calls.filter((x) => x.startsWith("acquire"))), new Set([`acquire ${D1} ${pinned("indexed", D1)}`]), "only B's mount, ever");
});

test("an indexed image whose layers another indexed image has as lower ones: its top takes that record over", async () => {
  s.images.forms.set(pinned("big", D1), "indexed");
  s.images.forms.set(pinned("base", D2), "indexed");
  await unpack(s.c, ["sha256:71", "sha256:72", "sha256:73"], "big", D1);
  // the base image (the big one's first two layers) in another namespace: both chains exist already
  await unpack(s.c, ["sha256:71", "sha256:72"], "base", D2, { ns: "default" });
  await s.c.prepare("default/1/base-ctr", "sha256:72");
  await s.c.prepare("k8s.io/1/big-ctr", "sha256:73");
  assert.deepEqual(s.images.calls.filter((x) => x.startsWith("acquire")).sort(), [`acquire ${D1} ${pinned("big", D1)}`, `acquire ${D2} ${pinned("base", D2)}`].sort());
});

test("an indexed image recorded before a restart is not asked about again for its remaining layers", async () => {
  s.images.forms.set(pinned("app", D1), "indexed");
  const chain = ["sha256:81", "sha256:82"];
  await unpack(s.c, chain.slice(0, 1), "app", D1);
  await s.restart();
  s.images.lookupFail = new Error("daemon down after the restart");
  const names = await unpack(s.c, chain, "app", D1, { from: 1, below: "sha256:81" });
  assert.deepEqual(names, ["sha256:82"], "still lazy: the database says the image is indexed");
  assert.equal(s.images.lookups.length, 1);
  s.images.lookupFail = null;
  await s.c.prepare("k8s.io/1/ctr", "sha256:82");
});

test("/metrics counts the lookups by answer, the indexes built on the node and the shared layers unpacked", () => {
  const text = renderMetrics({
    snapshots: {}, lazyLayers: 0, imagesInUse: 0, imagesHeld: 0, imageMounts: { acquires: 0, acquireFailures: 0, releases: 0, releaseFailures: 0, unserved: 0 },
    pullMounts: { mounts: 0, failures: 0, expired: 0 }, indexLookups: { indexed: 1, ordinary: 2, failed: 3, builtLocally: 4 }, layersUnpacked: 5,
  });
  const samples = text.split("\n").filter((l) => /^eod_snapshotter_(index|layers_unpacked)/.test(l));
  assert.deepEqual(samples, ['eod_snapshotter_index_lookups_total{answer="indexed"} 1', 'eod_snapshotter_index_lookups_total{answer="ordinary"} 2', 'eod_snapshotter_index_lookups_total{answer="failed"} 3',
    "eod_snapshotter_indexes_built_total 4", "eod_snapshotter_layers_unpacked_total 5"]);
});

/** A stand-in LayerContent: "unpacks" a layer as one file naming it; can fail. */
class FakeLayerContent {
  calls: string[] = [];
  fail: Error | null = null;
  async unpack(ref: string, layerDigest: string, dir: string): Promise<void> {
    this.calls.push(`${ref} ${layerDigest}`);
    if (this.fail) throw this.fail;
    fs.writeFileSync(path.join(dir, `unpacked-${layerDigest.slice(7, 9)}`), ref);
  }
  async close(): Promise<void> {}
}

test("with a LayerContent, an indexed image's lower layers another image needs are unpacked into ordinary layers; the indexed image still runs lazily", async (t) => {
  const content = new FakeLayerContent();
  const m = await serve({ layerContent: content });
  t.after(() => m.stop());
  m.images.forms.set(pinned("indexed", D1), "indexed");
  const b = ["sha256:91", "sha256:92", "sha256:93"];
  await unpack(m.c, b, "indexed", D1);
  content.fail = new Error("registry unreachable");
  await assert.rejects(unpack(m.c, [...b.slice(0, 2), "sha256:a3"], "plain", D2, { from: 2, below: "sha256:92" }),
    (err: grpc.ServiceError) => err.code === grpc.status.FAILED_PRECONDITION && err.details.includes("registry unreachable"));
  assert.deepEqual(fs.readdirSync(path.join(m.root, "snapshots")), [], "nothing left of the failed unpack");
  content.fail = null;
  // A shares B's first two layers, then differs: both of them are unpacked (once), A's layer goes over them
  const a = [...b.slice(0, 2), "sha256:a3"];
  const names = await unpack(m.c, a, "plain", D2, { from: 2, below: "sha256:92" });
  const call = (chain: string) => `${pinned("indexed", D1)} ${layerDigest(chain)}`;
  assert.deepEqual(content.calls, [call("sha256:92"), call("sha256:92"), call("sha256:91")], "the failed try, then each shared layer once, nearest first");
  const ctr = await m.c.prepare("k8s.io/1/a", names[0]);
  const lowers = lowerdir(ctr).split(":");
  assert.equal(lowers.length, 3, `A's layer over the two unpacked ones: ${lowers.join(" ")}`);
  assert.ok(fs.existsSync(path.join(lowers[1], `unpacked-${"92"}`)) && fs.existsSync(path.join(lowers[2], `unpacked-${"91"}`)));
  assert.equal(m.snapshotter().layersUnpacked, 2);
  assert.equal((await m.c.usage("sha256:91")).inodes, 2, "an unpacked layer's usage is stored");
  // B: its top still stands for its mount
  const bc = await m.c.prepare("k8s.io/2/b", "sha256:93");
  assert.equal(lowerdir(bc), path.join(path.dirname(m.root), "images", D1.slice(7, 15)));
  // a view over B's first layer now sees the unpacked layer, not B's tree
  assert.deepEqual((await m.c.view("k8s.io/3/v", "sha256:91"))[0].source, lowers[2]);
});

test("snapshotter.index_locally: an image the daemon says is ordinary is indexed on the node and recorded lazily; a failed build unpacks it", async (t) => {
  const built: string[] = [];
  let fail = false;
  const m = await serve({ lookupTimeoutMs: 200, indexLocally: async (ref) => {
    built.push(ref);
    await new Promise((r) => setTimeout(r, 400)); // longer than the lookup's bound: a build is not cut by it
    if (fail) throw new Error("registry gone");
    return true;
  } });
  t.after(() => m.stop());
  const chain = ["sha256:b1", "sha256:b2"];
  assert.ok(isLazy(await unpack(m.c, chain, "local", D1), chain));
  assert.deepEqual(built, [pinned("local", D1)], "built once for the image");
  await m.c.prepare("k8s.io/1/ctr", "sha256:b2");
  assert.deepEqual(m.images.calls.filter((c) => c.startsWith("acquire")), [`acquire ${D1} ${pinned("local", D1)}`]);
  fail = true;
  const other = ["sha256:c1", "sha256:c2"];
  assert.ok(!isLazy(await unpack(m.c, other, "other", D2), other), "the build failed: containerd unpacks it");
  m.images.lookupFail = new Error("daemon down");
  await unpack(m.c, ["sha256:d1"], "third", D3);
  assert.equal(built.length, 2, "no build when the daemon did not answer");
  assert.deepEqual(m.snapshotter().lookups.counters, { indexed: 1, ordinary: 1, failed: 1, builtLocally: 1 });
});

test("an indexed image in use after a restart is re-attached as indexed; with mount_on_pull its pull mounts it as indexed", async (t) => {
  s.images.forms.set(pinned("app", D1), "indexed");
  await unpack(s.c, ["sha256:e1", "sha256:e2"], "app", D1);
  await s.c.prepare("k8s.io/1/ctr", "sha256:e2");
  await s.restart();
  await s.c.cleanup(); // waits for the re-attach
  assert.deepEqual(s.snapshotter().store.imagesInUse().map((u) => u.image), [{ manifest: D1, ref: pinned("app", D1), indexed: true }]);
  assert.deepEqual(await s.c.mounts("k8s.io/1/ctr").then((m) => lowerdir(m)), path.join(path.dirname(s.root), "images", D1.slice(7, 15)));

  const m = await serve({ mountOnPullIdleMs: 60_000 });
  t.after(() => m.stop());
  m.images.forms.set(pinned("held", D2), "indexed");
  await unpack(m.c, ["sha256:f1", "sha256:f2"], "held", D2);
  for (let i = 0; i < 50 && !m.images.calls.some((c) => c.startsWith("acquire")); i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(m.images.calls.filter((c) => c.startsWith("acquire")), [`acquire ${D2} ${pinned("held", D2)}`], "mounted once at the pull");
  assert.deepEqual(m.images.acquired.map((i) => i.indexed), [true]);
});

test("eod status names an indexed image as such", () => {
  const lines = describeSnapshotter({ root: "/r", snapshots: { active: 1, view: 0, committed: 2 }, lazyLayers: 2, images: [
    { manifest: D1, ref: pinned("app", D1), indexed: true, mountPoint: "/r/images/x/mnt", mounted: true, snapshots: [{ key: "k8s.io/1/web", namespace: "k8s.io", container: "web" }] },
  ] });
  assert.equal(lines[1], `image ${pinned("app", D1)} (${D1.slice(0, 19)}, indexed) on /r/images/x/mnt, used by container web (k8s.io)`);
});
