// snapshotterStatus(): what eod status reads of a snapshotter root (its database, opened read-only, and the
// mount table): snapshots by kind, lazy layers, and per image in use its mount and the containers over it.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { eod } from "../helpers/cli.ts";
import { describeSnapshotter, snapshotterStatus, snapshotUser } from "../../src/snapshotter/status.ts";
import { SnapshotStore } from "../../src/snapshotter/store.ts";

const M = `sha256:${"ab".repeat(32)}`;

test("snapshotterStatus() is null without a database, else counts and the images in use with their containers", (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "eod-snapstatus-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  assert.equal(snapshotterStatus(root), null);
  const store = SnapshotStore.open(root);
  store.transaction(() => {
    store.putImage({ manifest: M, ref: "127.0.0.1:5000/bb:v1" });
    const layer = store.insert({ name: "k8s.io/1/sha256:layer", parentId: null, kind: "committed", labels: {}, layerOf: M });
    store.insert({ name: "k8s.io/7/c1", parentId: layer, kind: "active", labels: {}, uses: M });
    store.insert({ name: "view-x", parentId: layer, kind: "view", labels: {}, uses: M });
    store.insert({ name: "default/9/plain", parentId: null, kind: "active", labels: {} });
  });
  store.close();
  const s = snapshotterStatus(root)!;
  assert.deepEqual(s, {
    root, snapshots: { active: 2, view: 1, committed: 1 }, lazyLayers: 1,
    images: [{
      manifest: M, ref: "127.0.0.1:5000/bb:v1", mountPoint: path.join(root, "images", "ab".repeat(32), "mnt"), mounted: false,
      snapshots: [{ key: "k8s.io/7/c1", namespace: "k8s.io", container: "c1" }, { key: "view-x" }],
    }],
  });
  const text = describeSnapshotter(s).join("\n");
  assert.match(text, /snapshots 2 active, 1 view, 1 committed; 1 lazy layer\(s\); 1 image mount\(s\) in use/);
  assert.match(text, /image 127\.0\.0\.1:5000\/bb:v1 \(sha256:abababababab\) on .*\/mnt \(NOT MOUNTED\), used by container c1 \(k8s\.io\), snapshot view-x/);
  const unserved = describeSnapshotter({ ...s, images: [{ ...s.images[0], mounted: true, served: false }] }).join("\n");
  assert.match(unserved, /on .*\/mnt \(NOT SERVED: no cache daemon answers its reads\), used by container c1/);
  assert.doesNotMatch(describeSnapshotter({ ...s, images: [{ ...s.images[0], mounted: true, served: true }] }).join("\n"), /NOT/);
});

test("snapshotUser() takes containerd's <namespace>/<n>/<key> apart, keys with slashes too", () => {
  assert.deepEqual(snapshotUser("k8s.io/12/abc/def"), { key: "k8s.io/12/abc/def", namespace: "k8s.io", container: "abc/def" });
  assert.deepEqual(snapshotUser("plain"), { key: "plain" });
});

test("eod status --snapshotter-root shows the snapshotter with no daemon running, in text and in --json", (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "eod-snapstatus-cli-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const cache = path.join(root, "cache");
  const store = SnapshotStore.open(root);
  store.transaction(() => {
    store.putImage({ manifest: M, ref: "127.0.0.1:5000/bb:v1" });
    const layer = store.insert({ name: "k8s.io/1/sha256:layer", parentId: null, kind: "committed", labels: {}, layerOf: M });
    store.insert({ name: "k8s.io/7/web-1", parentId: layer, kind: "active", labels: {}, uses: M });
  });
  store.close();
  const json = eod("status", "--cache-dir", cache, "--snapshotter-root", root, "--json");
  assert.equal(json.status, 0, json.stderr);
  const s = JSON.parse(json.stdout);
  assert.equal(s.running, false);
  assert.deepEqual(s.snapshotter.images[0].snapshots, [{ key: "k8s.io/7/web-1", namespace: "k8s.io", container: "web-1" }]);
  const text = eod("status", "--cache-dir", cache, "--snapshotter-root", root);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^snapshotter .*: snapshots 1 active, 0 view, 1 committed; 1 lazy layer\(s\); 1 image mount\(s\) in use\nimage 127\.0\.0\.1:5000\/bb:v1 .* used by container web-1 \(k8s\.io\)\nno daemon running for /);
  const none = eod("status", "--cache-dir", cache, "--snapshotter-root", path.join(root, "nothing-here"), "--json");
  assert.equal(JSON.parse(none.stdout).snapshotter, undefined, "no database: no snapshotter part");
});

test("an image a pull holds mounted (mount_on_pull) shows with when its hold ends", (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "eod-snapstatus-held-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const store = SnapshotStore.open(root);
  const until = Date.parse("2026-12-07T12:00:00Z");
  store.transaction(() => {
    store.putImage({ manifest: M, ref: "127.0.0.1:5000/bb:v1" });
    store.insert({ name: "k8s.io/1/sha256:layer", parentId: null, kind: "committed", labels: {}, layerOf: M });
    store.setHold(M, until);
  });
  store.close();
  const s = snapshotterStatus(root)!;
  assert.deepEqual(s.images.map((i) => [i.manifest, i.heldUntil, i.snapshots]), [[M, "2026-12-07T12:00:00.000Z", []]]);
  const text = describeSnapshotter(s).join("\n");
  assert.match(text, /; 0 image mount\(s\) in use, 1 held by a pull\n/);
  assert.match(text, /\(NOT MOUNTED\), held by its pull for a container until 2026-12-07T12:00:00\.000Z$/);
});
