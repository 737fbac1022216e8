// The snapshotter's metadata store: one transaction per change (rolled back when it throws, refused when it
// would await), and the read-only view `eod status` and the metrics take while the snapshotter writes.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { SnapshotStore } from "../../src/snapshotter/store.ts";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eod-snap-store-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const M = `sha256:${"ab".repeat(32)}`;
const M2 = `sha256:${"cd".repeat(32)}`;

test("the read-only view sees what the writer committed: images in use with their keys, counts by kind, lazy layers", () => {
  const root = path.join(dir, "view");
  assert.equal(SnapshotStore.openReadOnly(root), null, "no database yet");
  const w = SnapshotStore.open(root);
  const r = SnapshotStore.openReadOnly(root)!;
  try {
    assert.deepEqual(r.countsByKind(), { active: 0, view: 0, committed: 0 });
    w.transaction(() => {
      w.putImage({ manifest: M, ref: "reg/app:1" });
      const t1 = w.insert({ name: "sha256:t1", parentId: null, kind: "committed", labels: {}, layerOf: M });
      w.insert({ name: "k8s.io/2/c1", parentId: t1, kind: "active", labels: {}, uses: M });
      w.insert({ name: "k8s.io/3/v1", parentId: t1, kind: "view", labels: {}, uses: M });
      w.insert({ name: "plain", parentId: null, kind: "active", labels: {} });
    });
    assert.deepEqual(r.imagesInUse(), [{ image: { manifest: M, ref: "reg/app:1" }, keys: ["k8s.io/2/c1", "k8s.io/3/v1"] }]);
    assert.deepEqual(r.countsByKind(), { active: 2, view: 1, committed: 1 });
    assert.equal(r.lazyLayers(), 1);
    assert.throws(() => r.transaction(() => r.delete(1)), /readonly/i, "the view cannot write");
  } finally {
    r.close();
    w.close();
  }
});

test("a transaction that throws changes nothing; one that would await is refused", () => {
  const s = SnapshotStore.open(path.join(dir, "tx"));
  try {
    assert.throws(() => s.transaction(() => {
      s.insert({ name: "a", parentId: null, kind: "active", labels: {} });
      throw new Error("boom");
    }), /boom/);
    assert.equal(s.get("a"), undefined);
    assert.throws(() => s.transaction(async () => { s.insert({ name: "b", parentId: null, kind: "active", labels: {} }); }), TypeError);
    assert.equal(s.get("b"), undefined);
    assert.throws(() => s.transaction(() => { s.insert({ name: "c", parentId: null, kind: "active", labels: {} }); s.insert({ name: "c", parentId: null, kind: "active", labels: {} }); }), /UNIQUE/);
    assert.deepEqual(s.all(), []);
  } finally {
    s.close();
  }
});

test("a database of another schema version is refused, naming the file", () => {
  const root = path.join(dir, "future");
  fs.mkdirSync(root);
  const db = new DatabaseSync(path.join(root, "metadata.db"));
  db.exec("PRAGMA user_version = 99");
  db.close();
  assert.throws(() => SnapshotStore.open(root), (err: Error) => err.message.includes(path.join(root, "metadata.db")) && /99/.test(err.message));
});

test("a version 1 database (before mount_on_pull's holds): read as holding nothing, migrated by the snapshotter's open", () => {
  const root = path.join(dir, "v1");
  fs.mkdirSync(root);
  const db = new DatabaseSync(path.join(root, "metadata.db"));
  db.exec(`CREATE TABLE images (manifest TEXT PRIMARY KEY, ref TEXT NOT NULL, mountpoint TEXT);
    CREATE TABLE snapshots (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, parent_id INTEGER REFERENCES snapshots(id),
      kind TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, labels TEXT NOT NULL, size INTEGER NOT NULL DEFAULT 0,
      inodes INTEGER NOT NULL DEFAULT 0, layer_of TEXT REFERENCES images(manifest), uses TEXT REFERENCES images(manifest));
    INSERT INTO images VALUES ('${M}', 'reg/app:1', NULL);
    PRAGMA user_version = 1;`);
  db.close();
  const r = SnapshotStore.openReadOnly(root)!;
  assert.deepEqual(r.image(M), { manifest: M, ref: "reg/app:1", mountpoint: null, heldUntil: null, top: null });
  assert.deepEqual(r.heldImages(), []);
  r.close();
  const w = SnapshotStore.open(root);
  w.transaction(() => { w.setHold(M, 1234); });
  assert.deepEqual(w.heldImages(), [{ manifest: M, ref: "reg/app:1", mountpoint: null, heldUntil: 1234, top: null }]);
  // version 3's indexed images: the migration added their columns
  w.transaction(() => { w.putImage({ manifest: M2, ref: "reg/plain:1@x", indexed: true }); w.setTop(M2, "sha256:top"); });
  assert.deepEqual(w.image(M2), { manifest: M2, ref: "reg/plain:1@x", indexed: true, mountpoint: null, heldUntil: null, top: "sha256:top" });
  w.close();
});
