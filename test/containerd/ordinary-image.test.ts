// An ordinary (unconverted) image with `--snapshotter eod` works like containerd's own overlayfs snapshotter:
// `ctr images pull` unpacks its layers into the eod snapshotter's directories (whiteouts included), `ctr run`
// gives the same output as under overlayfs, a container's writes land in its upper dir under the eod root, and
// removing the container removes its snapshot. A CRI pull (labels on) unpacks it the same way.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { containerdMissing } from "../helpers/containerd.ts";
import { criPullImage } from "../helpers/cri.ts";
import { pushBusyboxImage } from "../helpers/push-image.ts";
import { startRegistry, type RunningRegistry } from "../helpers/registry.ts";
import { unavailable } from "../helpers/skip.ts";
import { RegistryClient, staticCredentials } from "../../src/remote/registry/index.ts";
import { startEodContainerd, stopInOrder, type EodContainerd } from "./stack.ts";

const skip = unavailable(containerdMissing());

let work = "";
let ref = "";
let reg: RunningRegistry | undefined;
let stack: EodContainerd | undefined;

before(async () => {
  if (skip) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-ctd-ordinary-"));
  reg = await startRegistry();
  const client = new RegistryClient({ credentials: staticCredentials({}) });
  try {
    // a second layer that adds files and deletes one of the first layer's (a whiteout)
    ({ ref } = await pushBusyboxImage(client, { registry: reg.host, repository: "plain/busybox" }, "1", [
      { path: "data/", type: "dir" }, { path: "data/hello", data: Buffer.from("hello from layer 2\n") },
      { path: "bin/.wh.false", data: Buffer.alloc(0) },
    ]));
  } finally {
    await client.close();
  }
  stack = await startEodContainerd(work, { registryMirrors: [reg.host] });
});

after(() => stopInOrder(work, [() => stack?.containerd.stop(), () => stack?.snapshotter.stop(), () => reg?.stop()]));

const why = () => stack!.why();

async function ctrOk(args: string[]): Promise<string> {
  const r = await stack!.containerd.ctr(args);
  assert.equal(r.code, 0, `ctr ${args.join(" ")}: ${r.stderr}${why()}`);
  return r.stdout;
}

const SCRIPT = "cat /data/hello; ls /bin | wc -l; test -e /bin/false && echo false-present || echo false-deleted; echo w > /tmp/w; cat /tmp/w; id -u; ls /";

/** The upper dirs under the eod root that hold the container's write. */
const uppersWith = (file: string) => {
  const snapshots = path.join(stack!.root, "snapshots");
  return fs.readdirSync(snapshots).filter((id) => fs.existsSync(path.join(snapshots, id, "fs", file)));
};

test("pulled and run with --snapshotter eod, an ordinary image behaves as under overlayfs", { skip, timeout: 300_000 }, async () => {
  const outputs: Record<string, string> = {};
  for (const sn of ["overlayfs", "eod"]) {
    await ctrOk(["images", "pull", "--plain-http", "--snapshotter", sn, ref]);
    outputs[sn] = await ctrOk(["run", "--snapshotter", sn, ref, `c-${sn}`, "sh", "-c", SCRIPT]);
  }
  assert.equal(outputs.eod, outputs.overlayfs);
  assert.match(outputs.eod, /^hello from layer 2\n\s*\d+\nfalse-deleted\nw\n0\n/);

  const snapshots = await ctrOk(["snapshots", "--snapshotter", "eod", "ls"]);
  assert.equal(snapshots.trim().split("\n").slice(1).filter((l) => /Committed/.test(l)).length, 2, `two committed layers:\n${snapshots}`);
  assert.equal(snapshots.trim().split("\n").slice(1).filter((l) => /Active/.test(l)).length, 1, `the container's snapshot:\n${snapshots}`);
  assert.equal(uppersWith("tmp/w").length, 1, "the container's write is in its upper dir under the eod root");
  assert.equal(uppersWith("data/hello").length, 1, "layer 2 was unpacked into an eod snapshot directory");

  await ctrOk(["containers", "delete", "c-eod"]);
  await stack!.containerd.collectGarbage();
  assert.equal(uppersWith("tmp/w").length, 0, `the container's snapshot is removed with it${why()}`);
  await ctrOk(["containers", "delete", "c-overlayfs"]);
});

test("a CRI pull (with the snapshot labels) of an ordinary image unpacks it into eod snapshots too", { skip, timeout: 300_000 }, async () => {
  // the CRI plugin keeps the image under its id too
  const names = (await ctrOk(["images", "ls", "-q"])).split("\n").filter(Boolean);
  await ctrOk(["images", "rm", "--sync", ...names]);
  assert.equal(uppersWith("data/hello").length, 0, `the image's layers went with it${why()}`);
  await criPullImage(stack!.containerd.address, ref);
  assert.equal(uppersWith("data/hello").length, 1, `layer 2 unpacked again, by CRI${why()}`);
  const out = await ctrOk(["run", "--rm", "--snapshotter", "eod", ref, "c-cri", "sh", "-c", "cat /data/hello"]);
  assert.equal(out, "hello from layer 2\n");
});

test("ctr snapshots through containerd's proxy: prepare, commit, view, info, label, usage, tree, rm", { skip, timeout: 120_000 }, async () => {
  const ctr = (...args: string[]) => ctrOk(["snapshots", "--snapshotter", "eod", ...args]);
  await ctr("prepare", "s-a", "");
  await ctr("commit", "s-A", "s-a");
  assert.match(await ctr("mounts", "/mnt", "s-b-missing").catch((e: Error) => e.message), /not found/);
  await ctr("prepare", "s-b", "s-A");
  assert.match(await ctr("mounts", "/mnt", "s-b"), /mount -t overlay overlay .*upperdir=.*lowerdir=/);
  // ctr snapshots view, unlike prepare and commit, adds no containerd.io/gc.root label: containerd's garbage
  // collection may remove the view before the next command, so it is labelled at once (again if it went first).
  for (let attempt = 1; ; attempt++) {
    await ctr("view", "s-v", "s-A");
    const kept = await stack!.containerd.ctr(["snapshots", "--snapshotter", "eod", "label", "s-v", `containerd.io/gc.root=${new Date().toISOString()}`]);
    if (kept.code === 0) break;
    assert.ok(attempt < 5 && /not found/.test(kept.stderr), `label s-v: ${kept.stderr}${why()}`);
  }
  const info = JSON.parse(await ctr("info", "s-b")) as { Kind: string; Parent: string };
  assert.equal(info.Parent, "s-A");
  assert.equal(info.Kind, "Active");
  await ctr("label", "s-A", "team=eod");
  assert.equal((JSON.parse(await ctr("info", "s-A")) as { Labels: Record<string, string> }).Labels.team, "eod");
  await ctr("label", "s-A", "team=");
  assert.equal((JSON.parse(await ctr("info", "s-A")) as { Labels?: Record<string, string> }).Labels?.team, undefined);
  assert.match(await ctr("usage", "s-b"), /s-b\s+\S+ \S+\s+1\b/);
  assert.match(await ctr("tree"), /s-A\n\s+\\_ s-(b|v)\n\s+\\_ s-(b|v)/);
  const refused = await stack!.containerd.ctr(["snapshots", "--snapshotter", "eod", "rm", "s-A"]);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /child|precondition/i);
  await ctr("rm", "s-b", "s-v", "s-A");
  assert.doesNotMatch(await ctr("ls"), /s-/);
});
