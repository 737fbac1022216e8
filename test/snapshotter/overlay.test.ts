// Ordinary layers through real overlay mounts, as containerd uses them: mount what Prepare/View return, let
// the "diff" land in the upper dir, commit, and a child sees the layers merged (deletions included); a view is
// read-only.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { MountMsg } from "./client.ts";
import { skip, useSnapshotterProcess } from "./process.ts";

const running = useSnapshotterProcess("eod-snap-overlay-");

/** Mounts the snapshot's mounts on a new directory, runs `fn` there, unmounts (also when fn throws). */
async function withMounted<T>(mounts: MountMsg[], fn: (target: string) => T): Promise<T> {
  assert.equal(mounts.length, 1);
  const [m] = mounts;
  const target = fs.mkdtempSync(path.join(running().dir, "mnt-"));
  const args = m.type === "bind" ? ["-o", m.options.join(","), m.source, target] : ["-t", m.type, "-o", m.options.join(","), m.source, target];
  const r = spawnSync("mount", args, { encoding: "utf8" });
  assert.equal(r.status, 0, `mount ${args.join(" ")}: ${r.stderr}`);
  try {
    return fn(target);
  } finally {
    assert.equal(spawnSync("umount", [target]).status, 0, `umount ${target}`);
    fs.rmdirSync(target);
  }
}

test("a layer written through its mount, committed, then a child over it sees it; deletions hide lower files", { skip }, async () => {
  const { c } = running();
  await withMounted(await c.prepare("k/1"), (t) => {
    fs.writeFileSync(path.join(t, "a"), "from layer 1");
    fs.mkdirSync(path.join(t, "dir"));
    fs.writeFileSync(path.join(t, "dir", "b"), "b1");
    fs.chmodSync(t, 0o755);
  });
  await c.commit("L1", "k/1");
  await withMounted(await c.prepare("k/2", "L1"), (t) => {
    assert.equal(fs.readFileSync(path.join(t, "a"), "utf8"), "from layer 1");
    fs.rmSync(path.join(t, "a"));
    fs.writeFileSync(path.join(t, "dir", "b"), "b2");
    fs.writeFileSync(path.join(t, "c"), "from layer 2");
  });
  assert.ok((await c.usage("k/2")).size > 0);
  await c.commit("L2", "k/2");

  await withMounted(await c.view("view", "L2"), (t) => {
    assert.deepEqual(fs.readdirSync(t).sort(), ["c", "dir"]);
    assert.equal(fs.readFileSync(path.join(t, "dir", "b"), "utf8"), "b2");
    assert.throws(() => fs.writeFileSync(path.join(t, "x"), "no"), { code: "EROFS" });
  });
  await withMounted(await c.view("view1", "L1"), (t) => {
    assert.deepEqual(fs.readdirSync(t).sort(), ["a", "dir"], "the lower layer is unchanged");
    assert.throws(() => fs.writeFileSync(path.join(t, "x"), "no"), { code: "EROFS" });
  });
  const container = await c.prepare("container", "L2");
  await withMounted(container, (t) => {
    assert.equal(fs.readFileSync(path.join(t, "c"), "utf8"), "from layer 2");
    fs.writeFileSync(path.join(t, "written"), "by the container");
  });
  const upper = container[0].options.find((o) => o.startsWith("upperdir="))!.slice("upperdir=".length);
  assert.deepEqual(fs.readdirSync(upper), ["written"], "the container's writes land in its upper dir only");
  await withMounted(await c.mounts("container"), (t) => assert.equal(fs.readFileSync(path.join(t, "written"), "utf8"), "by the container"));
  for (const k of ["container", "view", "view1", "L2", "L1"]) await c.remove(k);
});
