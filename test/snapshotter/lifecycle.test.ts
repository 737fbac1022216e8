// The snapshotter process's life: its socket is 0660, a second one on the same socket is refused, SIGTERM
// stops it leaving every mount in place and removing its socket, and the next start serves the same snapshots.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { eod } from "../helpers/cli.ts";
import { mountsUnder } from "../helpers/containerd.ts";
import { snapshotsClient } from "./client.ts";
import { skip, useSnapshotterProcess } from "./process.ts";

const running = useSnapshotterProcess("eod-snap-life-");

test("the socket is 0660, and a second snapshotter on it is refused", { skip }, () => {
  const { address, dir } = running();
  assert.equal(fs.statSync(address).mode & 0o777, 0o660);
  const r = eod("snapshotter", "--address", address, "--root", path.join(dir, "other-root"));
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /another process is listening/);
  assert.ok(fs.existsSync(address), "the running one keeps its socket");
});

test("SIGTERM leaves the mounts in place; the next start serves the same snapshots", { skip }, async () => {
  const { address, dir, sn, c } = running();
  await c.prepare("base");
  await c.commit("Base", "base");
  const mounts = await c.prepare("container", "Base");
  const target = fs.mkdtempSync(path.join(dir, "rootfs-"));
  const m = spawnSync("mount", ["-t", "overlay", "overlay", "-o", mounts[0].options.join(","), target], { encoding: "utf8" });
  assert.equal(m.status, 0, m.stderr);
  try {
    fs.writeFileSync(path.join(target, "kept"), "x");
    await sn.kill("SIGTERM");
    assert.equal(fs.existsSync(address), false, "the socket is removed");
    assert.deepEqual(mountsUnder(target), [target], "the container's overlay is still mounted");
    assert.equal(fs.readFileSync(path.join(target, "kept"), "utf8"), "x");
    await sn.restart();
    const again = snapshotsClient(address);
    try {
      assert.deepEqual(await again.mounts("container"), mounts);
      assert.deepEqual((await again.list()).map((i) => `${i.name} ${i.kind}`).sort(), ["Base COMMITTED", "container ACTIVE"]);
    } finally {
      again.close();
    }
  } finally {
    spawnSync("umount", [target]);
  }
});

test("eod snapshotter --help, and bad arguments are usage errors naming them", () => {
  const help = eod("snapshotter", "--help");
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--address <socket>/);
  const bad = eod("snapshotter", "--metrics-listen", "nope");
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--metrics-listen/);
  assert.equal(eod("snapshotter", "extra").status, 2);
});

test("a metrics port already taken fails the start and leaves no socket behind", { skip }, async () => {
  const { dir } = running();
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
  try {
    const address = path.join(dir, "metrics-taken.sock");
    const r = eod("snapshotter", "--address", address, "--root", path.join(dir, "metrics-taken-root"), "--metrics-listen", `127.0.0.1:${(taken.address() as net.AddressInfo).port}`);
    assert.notEqual(r.status, 0, r.stderr);
    assert.match(r.stderr, /EADDRINUSE/);
    assert.ok(!fs.existsSync(address), "the gRPC socket is closed and removed with the failed start");
  } finally {
    await new Promise<void>((resolve) => taken.close(() => resolve()));
  }
});
