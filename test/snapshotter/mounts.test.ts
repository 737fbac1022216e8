// The mounts of a snapshot from its chain, as containerd 1.6.20's overlay snapshotter returns them, with a lazy
// image's mountpoint as the lowest layer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { snapshotMounts } from "../../src/snapshotter/mounts.ts";

const base = { fs: "/r/snapshots/9/fs", work: "/r/snapshots/9/work", indexOff: true };

test("no parent: a bind of the snapshot's own directory, rw for active, ro for a view", () => {
  assert.deepEqual(snapshotMounts({ ...base, kind: "active", lowers: [] }), [{ type: "bind", source: "/r/snapshots/9/fs", target: "", options: ["rw", "rbind"] }]);
  assert.deepEqual(snapshotMounts({ ...base, kind: "view", lowers: [] }), [{ type: "bind", source: "/r/snapshots/9/fs", target: "", options: ["ro", "rbind"] }]);
});

test("active over layers: one overlay, upper and work in its directory, lowers nearest first", () => {
  assert.deepEqual(snapshotMounts({ ...base, kind: "active", lowers: ["/r/snapshots/2/fs", "/r/snapshots/1/fs"] }), [{
    type: "overlay", source: "overlay", target: "",
    options: ["index=off", "workdir=/r/snapshots/9/work", "upperdir=/r/snapshots/9/fs", "lowerdir=/r/snapshots/2/fs:/r/snapshots/1/fs"],
  }]);
  assert.deepEqual(snapshotMounts({ ...base, indexOff: false, kind: "active", lowers: ["/r/images/ab/mnt"] })[0].options,
    ["workdir=/r/snapshots/9/work", "upperdir=/r/snapshots/9/fs", "lowerdir=/r/images/ab/mnt"]);
});

test("a view of one layer (or of just a lazy image) is a read-only bind of it; of several, a read-only overlay", () => {
  assert.deepEqual(snapshotMounts({ ...base, kind: "view", lowers: ["/r/images/ab/mnt"] }), [{ type: "bind", source: "/r/images/ab/mnt", target: "", options: ["ro", "rbind"] }]);
  assert.deepEqual(snapshotMounts({ ...base, kind: "view", lowers: ["/r/snapshots/3/fs", "/r/images/ab/mnt"] }), [{
    type: "overlay", source: "overlay", target: "", options: ["index=off", "lowerdir=/r/snapshots/3/fs:/r/images/ab/mnt"],
  }]);
});
