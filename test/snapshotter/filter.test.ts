// containerd's filter syntax as List receives it: selectors, operators, quoting, AND within a filter, OR across
// filters, and the exact filter containerd 1.6 sends after a lazy layer's ALREADY_EXISTS.
import { test } from "node:test";
import assert from "node:assert/strict";
import { matchFilter, parseFilters, snapshotFields } from "../../src/snapshotter/filter.ts";
import { SnapshotError } from "../../src/snapshotter/errors.ts";
import type { SnapshotRow } from "../../src/snapshotter/store.ts";

function row(name: string, parent: string, kind: SnapshotRow["kind"], labels: Record<string, string> = {}): SnapshotRow {
  return { id: 1, name, parent, parentId: null, kind, createdMs: 0, updatedMs: 0, labels, size: 0, inodes: 0, layerOf: null, uses: null };
}

const ROWS = [
  row("sha256:t1", "", "committed", { "containerd.io/snapshot.ref": "sha256:t1", "containerd.io/gc.root": "x" }),
  row("sha256:t2", "sha256:t1", "committed", { "containerd.io/snapshot.ref": "sha256:t2" }),
  row("k8s.io/3/c1", "sha256:t2", "active", { team: "a b", "a.b": "dotted" }),
  row("k8s.io/4/v1", "sha256:t2", "view"),
];

function names(...filters: string[]): string[] {
  const f = parseFilters(filters);
  return ROWS.filter((r) => matchFilter(f, snapshotFields(r))).map((r) => r.name);
}

test("no filter, or an empty one, matches everything", () => {
  assert.equal(names().length, 4);
  assert.equal(names("").length, 4);
});

test("the fields containerd's snapshot storage adapts: kind, name, parent, labels", () => {
  assert.deepEqual(names("kind==committed"), ["sha256:t1", "sha256:t2"]);
  assert.deepEqual(names("kind==view"), ["k8s.io/4/v1"]);
  assert.deepEqual(names("name==k8s.io/3/c1"), ["k8s.io/3/c1"]);
  assert.deepEqual(names('parent=="sha256:t2"'), ["k8s.io/3/c1", "k8s.io/4/v1"]);
  assert.deepEqual(names('labels."a.b"==dotted'), ["k8s.io/3/c1"]);
  assert.deepEqual(names("labels.a.b==dotted"), ["k8s.io/3/c1"], "unquoted dots join the label key");
  assert.deepEqual(names('labels.team=="a b"'), ["k8s.io/3/c1"]);
  assert.deepEqual(names("nosuchfield==x"), []);
});

test("operators: == needs the field, != matches an absent one, ~= is a regular expression, none tests presence", () => {
  assert.deepEqual(names("kind!=committed"), ["k8s.io/3/c1", "k8s.io/4/v1"]);
  assert.deepEqual(names("labels.team!=x"), ROWS.map((r) => r.name));
  assert.deepEqual(names("name~=^k8s"), ["k8s.io/3/c1", "k8s.io/4/v1"]);
  assert.deepEqual(names("name~=/t[12]$/"), ["sha256:t1", "sha256:t2"]);
  assert.deepEqual(names("name~=|^sha256:t1|"), ["sha256:t1"]);
  assert.deepEqual(names('labels."containerd.io/gc.root"'), ["sha256:t1"]);
});

test("comma is AND, several filters are OR", () => {
  assert.deepEqual(names("kind==committed,parent==sha256:t1"), ["sha256:t2"]);
  assert.deepEqual(names("kind==view", "name==sha256:t1"), ["sha256:t1", "k8s.io/4/v1"]);
});

test("the filter containerd 1.6 walks with after a target's ALREADY_EXISTS", () => {
  // fmt.Sprintf(`labels."containerd.io/snapshot.ref"==%s,parent==%q`, target, bparent)
  assert.deepEqual(names('labels."containerd.io/snapshot.ref"==sha256:t2,parent=="sha256:t1"'), ["sha256:t2"]);
  assert.deepEqual(names('labels."containerd.io/snapshot.ref"==sha256:t1,parent==""'), ["sha256:t1"]);
  assert.deepEqual(names('labels."containerd.io/snapshot.ref"==sha256:t2,parent=="other"'), []);
});

test("quoted strings take Go's escapes", () => {
  assert.deepEqual(names('name=="k8s\\x2eio/3/c1"'), ["k8s.io/3/c1"]);
  assert.deepEqual(names('name=="k8s\\u002eio/3/c1"'), ["k8s.io/3/c1"]);
  assert.deepEqual(names('name=="k8s\\056io/3/c1"'), ["k8s.io/3/c1"]);
  assert.deepEqual(names('labels.team=="a\\x20b"'), ["k8s.io/3/c1"]);
});

test("bad filters are INVALID_ARGUMENT naming the filter", () => {
  for (const bad of ["==x", "name==", "name=x", "name===x", 'name=="open', "name==/x/", "name~=/(/", "name==a,", "a b", 'name=="\\q"', "labels.=x", ",name==x"]) {
    assert.throws(() => parseFilters([bad]), (err: unknown) => err instanceof SnapshotError && err.status === "INVALID_ARGUMENT" && err.message.includes(JSON.stringify(bad)), bad);
  }
});
