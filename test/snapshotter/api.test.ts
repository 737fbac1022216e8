// The Snapshots API of `eod snapshotter` over its unix socket, as containerd's proxy plugin calls it, for
// ordinary layers: the semantics of containerd 1.6.20's overlay snapshotter (kinds, parents, errors, labels,
// usage, List's filters and blocks, Remove with children, Cleanup) and many calls at once.
import { beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { codeOf, type SnapshotsClient } from "./client.ts";
import { skip, useSnapshotterProcess } from "./process.ts";

const running = useSnapshotterProcess("eod-snap-api-");
let root: string;
let c: SnapshotsClient;
beforeEach(() => {
  if (skip) return;
  ({ root, c } = running());
});

const rejects = (p: Promise<unknown>, code: grpc.status) => assert.rejects(p, (err: unknown) => codeOf(err) === code);

test("Prepare, Commit, View and Mounts through a chain; keys are opaque", { skip }, async () => {
  const k1 = "k8s.io/1/extract-1 sha256:ä/../x";
  assert.deepEqual(await c.prepare(k1), [{ type: "bind", source: path.join(root, "snapshots/1/fs"), target: "", options: ["rw", "rbind"] }]);
  assert.equal((await c.stat(k1)).kind, "ACTIVE");
  await c.commit("base", k1, { "containerd.io/snapshot.ref": "sha256:base" });
  await rejects(c.stat(k1), grpc.status.NOT_FOUND);
  const base = await c.stat("base");
  assert.deepEqual({ ...base, created_at: undefined, updated_at: undefined }, { name: "base", parent: "", kind: "COMMITTED", labels: { "containerd.io/snapshot.ref": "sha256:base" }, created_at: undefined, updated_at: undefined });

  const m = await c.prepare("top-active", "base", { keep: "me", empty: "" });
  assert.equal(m[0].type, "overlay");
  assert.deepEqual(m[0].options.filter((o) => o !== "index=off"), [`workdir=${path.join(root, "snapshots/2/work")}`, `upperdir=${path.join(root, "snapshots/2/fs")}`, `lowerdir=${path.join(root, "snapshots/1/fs")}`]);
  assert.deepEqual(await c.mounts("top-active"), m);
  assert.deepEqual((await c.stat("top-active")).labels, { keep: "me" }, "an empty label value is no label");
  await c.commit("middle", "top-active");
  assert.deepEqual((await c.stat("middle")).labels, {}, "Commit replaces the labels");

  assert.deepEqual(await c.view("v1", "base"), [{ type: "bind", source: path.join(root, "snapshots/1/fs"), target: "", options: ["ro", "rbind"] }]);
  const v2 = await c.view("v2", "middle");
  assert.deepEqual(v2[0].options.filter((o) => o !== "index=off"), [`lowerdir=${path.join(root, "snapshots/2/fs")}:${path.join(root, "snapshots/1/fs")}`]);
  assert.equal((await c.stat("v2")).kind, "VIEW");
  assert.equal(fs.existsSync(path.join(root, "snapshots/4/work")), false, "a view has no work dir");
  for (const k of ["v1", "v2", "middle", "base"]) await c.remove(k);
});

test("refusals carry containerd's gRPC statuses", { skip }, async () => {
  await c.prepare("e-a");
  await rejects(c.prepare("e-a"), grpc.status.ALREADY_EXISTS);
  await rejects(c.prepare("e-a", "missing"), grpc.status.NOT_FOUND); // the parent is checked first, as containerd's storage does
  await rejects(c.prepare("e-b", "missing"), grpc.status.NOT_FOUND);
  await rejects(c.prepare("e-b", "e-a"), grpc.status.INVALID_ARGUMENT);
  await rejects(c.prepare(""), grpc.status.INVALID_ARGUMENT);
  await rejects(c.mounts("missing"), grpc.status.NOT_FOUND);
  await c.commit("e-A", "e-a");
  await rejects(c.mounts("e-A"), grpc.status.FAILED_PRECONDITION);
  await rejects(c.commit("x", "e-A"), grpc.status.FAILED_PRECONDITION);
  await c.view("e-v", "e-A");
  await rejects(c.commit("y", "e-v"), grpc.status.FAILED_PRECONDITION);
  await c.prepare("e-c", "e-A");
  await rejects(c.commit("e-A", "e-c"), grpc.status.ALREADY_EXISTS);
  // as containerd's storage.CommitActive: the name is checked before the key exists or is active
  await rejects(c.commit("e-A", "missing"), grpc.status.ALREADY_EXISTS);
  await rejects(c.commit("e-A", "e-v"), grpc.status.ALREADY_EXISTS);
  await rejects(c.remove("e-A"), grpc.status.FAILED_PRECONDITION);
  await rejects(c.remove("missing"), grpc.status.NOT_FOUND);
  await rejects(c.stat("missing"), grpc.status.NOT_FOUND);
  await rejects(c.usage("missing"), grpc.status.NOT_FOUND);
  await rejects(c.update({ name: "missing", labels: {} }), grpc.status.NOT_FOUND);
  await rejects(c.list(["kind=="]), grpc.status.INVALID_ARGUMENT);
  await c.remove("e-c");
  await c.remove("e-v");
  await c.remove("e-A");
  assert.deepEqual(await c.list(['name~="^e-"']), []);
});

test("Update: all labels, labels.<key> (set or, empty, remove), other fields refused", { skip }, async () => {
  await c.prepare("u-a", "", { a: "1", b: "2" });
  const before = await c.stat("u-a");
  await new Promise((r) => setTimeout(r, 5));
  const one = await c.update({ name: "u-a", labels: { b: "3", c: "ignored" } }, ["labels.b"]);
  assert.deepEqual(one.labels, { a: "1", b: "3" });
  assert.ok(one.updated_at.seconds * 1e9 + one.updated_at.nanos > before.updated_at.seconds * 1e9 + before.updated_at.nanos);
  assert.deepEqual(one.created_at, before.created_at);
  assert.deepEqual((await c.update({ name: "u-a", labels: {} }, ["labels.a"])).labels, { b: "3" });
  assert.deepEqual((await c.update({ name: "u-a", labels: { z: "9" } }, ["labels"])).labels, { z: "9" });
  assert.deepEqual((await c.update({ name: "u-a", labels: { y: "8" } })).labels, { y: "8" }, "no mask: every mutable field");
  await rejects(c.update({ name: "u-a", labels: {} }, ["parent"]), grpc.status.INVALID_ARGUMENT);
  assert.equal((await c.stat("u-a")).kind, "ACTIVE");
  await c.remove("u-a");
});

test("Usage: the active snapshot's directory now, what was measured at commit after", { skip }, async () => {
  await c.prepare("us-a");
  const empty = await c.usage("us-a");
  assert.equal(empty.inodes, 1);
  fs.writeFileSync(path.join(root, "snapshots", String(await idOf("us-a")), "fs", "f"), Buffer.alloc(64 * 1024, 1));
  fs.linkSync(path.join(root, "snapshots", String(await idOf("us-a")), "fs", "f"), path.join(root, "snapshots", String(await idOf("us-a")), "fs", "hardlink"));
  const full = await c.usage("us-a");
  assert.equal(full.inodes, 2, "a hard link counts once");
  assert.ok(full.size >= empty.size + 64 * 1024, `${full.size}`);
  await c.commit("us-A", "us-a");
  assert.deepEqual(await c.usage("us-A"), full);
  await c.remove("us-A");
});

test("List: filters as containerd writes them, answers in blocks of 100", { skip }, async () => {
  await c.prepare("l-base");
  await c.commit("l-Base", "l-base", { "containerd.io/snapshot.ref": "sha256:lb" });
  await Promise.all(Array.from({ length: 250 }, (_, i) => c.prepare(`l-${i}`, "l-Base", { n: String(i % 3) })));
  const blocks = await c.listBlocks(['name~="^l-"']);
  assert.deepEqual(blocks.map((b) => b.length), [100, 100, 51]);
  assert.equal((await c.list(["labels.n==1,parent==l-Base"])).length, 83);
  assert.equal((await c.list(["labels.n==1", "labels.n==2"])).length, 166);
  assert.deepEqual((await c.list(['labels."containerd.io/snapshot.ref"==sha256:lb,parent==""'])).map((i) => i.name), ["l-Base"]);
  assert.equal((await c.list(["kind==active,name~=^l-"])).length, 250);
  await Promise.all(Array.from({ length: 250 }, (_, i) => c.remove(`l-${i}`)));
  await c.remove("l-Base");
});

test("many calls at once: one key wins, every snapshot gets its own directory", { skip }, async () => {
  const same = await Promise.allSettled(Array.from({ length: 10 }, () => c.prepare("c-same")));
  assert.equal(same.filter((r) => r.status === "fulfilled").length, 1);
  assert.ok(same.filter((r) => r.status === "rejected").every((r) => codeOf(r.reason) === grpc.status.ALREADY_EXISTS));
  const mounts = await Promise.all(Array.from({ length: 40 }, (_, i) => c.prepare(`c-${i}`)));
  assert.equal(new Set(mounts.map((m) => m[0].source)).size, 40);
  // Cleanup in the middle of creations removes none of their directories
  const during = await Promise.all([...Array.from({ length: 20 }, (_, i) => c.prepare(`c-x${i}`)), c.cleanup()]);
  for (const m of during.slice(0, 20) as { source: string }[][]) assert.ok(fs.existsSync(m[0].source), m[0].source);
  await Promise.all(Array.from({ length: 20 }, (_, i) => c.remove(`c-x${i}`)));
  await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? c.commit(`c-C${i}`, `c-${i}`) : c.remove(`c-${i}`))));
  await Promise.all(Array.from({ length: 20 }, (_, i) => c.remove(`c-C${2 * i + 1}`)));
  await c.remove("c-same");
  assert.deepEqual(await c.list(['name~="^c-"']), []);
});

test("Remove frees the directory; Cleanup removes directories nothing refers to", { skip }, async () => {
  await c.prepare("r-a");
  const id = await idOf("r-a");
  await c.remove("r-a");
  assert.equal(fs.existsSync(path.join(root, "snapshots", String(id))), false);
  await c.prepare("r-keep");
  for (const orphan of ["99999", "new-abc123"]) fs.mkdirSync(path.join(root, "snapshots", orphan, "fs"), { recursive: true });
  await c.cleanup();
  assert.deepEqual(fs.readdirSync(path.join(root, "snapshots")), [String(await idOf("r-keep"))]);
  await c.remove("r-keep");
});

/** The id behind a key: the directory its Mounts name. */
async function idOf(key: string): Promise<number> {
  const m = await c.mounts(key);
  const src = m[0].type === "bind" ? m[0].source : m[0].options.find((o) => o.startsWith("upperdir="))!.slice("upperdir=".length);
  return Number(path.basename(path.dirname(src)));
}
