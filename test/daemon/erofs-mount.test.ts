// ErofsMounter on the real kernel: an image (bootstrap + a blob as device=) mounted through loop devices is
// identical to its source, and its loop devices go with the mount: at umount, and at once when mount(2) fails.
// `auto` is tested too: on a kernel without file-backed erofs (the 6.1 kernel lab, test/vm/fuse-e2e.ts runs
// this file there) it must fall back to loop devices by itself.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { ErofsMounter } from "../../src/daemon/erofs-mount.ts";
import { boundLoops } from "../../src/sys/loop.ts";
import { umount } from "../../src/sys/mount.ts";
import { eodOk } from "../helpers/cli.ts";
import { compareTrees } from "../helpers/compare-trees.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { unavailable } from "../helpers/skip.ts";

const skip = unavailable(!haveRoot() ? "needs root to mount" : !fs.existsSync("/dev/loop-control") && "needs loop devices (CONFIG_BLK_DEV_LOOP)");
const quiet = () => {};

let work = "";
let src = "";
let bootstrap = "";
let data = "";

before(() => {
  if (skip) return;
  work = tempDir("eod-erofs-mount-");
  src = path.join(work, "src");
  fs.mkdirSync(path.join(src, "d"), { recursive: true });
  fs.writeFileSync(path.join(src, "d/random.bin"), crypto.randomBytes(300_000));
  fs.writeFileSync(path.join(src, "hello"), "hello\n");
  eodOk("build", src, "-o", path.join(work, "img"), "--chunk-size", "64K", "--compress", "lz4");
  [bootstrap, data] = eodOk("unpack", path.join(work, "img"), "--blobs-to", path.join(work, "blobs")).trim().split(" ");
});

after(() => {
  if (!work) return;
  for (const m of fs.readFileSync("/proc/self/mounts", "utf8").split("\n").map((l) => l.split(" ")[1]).filter((m) => m?.startsWith(`${work}/`))) umount(m, 2);
});

/** Loop devices bound to a file under the test's directory. */
function ourLoops(): number[] {
  return [...boundLoops()].filter(([, file]) => file.startsWith(`${work}/`)).map(([n]) => n);
}

/** Autoclear runs as erofs lets go: after umount2 returns, give the kernel a moment. */
async function loopsGone(): Promise<number[]> {
  for (let i = 0; i < 50 && ourLoops().length; i++) await new Promise((r) => setTimeout(r, 20));
  return ourLoops();
}

test("always: mounted from loop devices (the source and each device=), identical; the devices go at umount", { skip, timeout: 120_000 }, async () => {
  const mnt = fs.mkdtempSync(path.join(work, "mnt-"));
  const m = new ErofsMounter("always", quiet);
  const mounted = await m.mount({ source: bootstrap, data }, mnt);
  assert.equal(mounted.loopDevices.length, 2);
  assert.equal(mounted.source, mounted.loopDevices[0]);
  const bound = boundLoops();
  assert.deepEqual(mounted.loopDevices.map((d) => bound.get(Number(d.slice("/dev/loop".length)))), [bootstrap, data.slice("device=".length)]);
  assert.deepEqual(await compareTrees(src, mnt, { ignoreRootAttrs: true }), []);
  umount(mnt);
  assert.deepEqual(await loopsGone(), [], "no loop device left after umount");
});

test("always: a mount that fails (a corrupt bootstrap, a mount point that is no directory) leaves no loop device", { skip, timeout: 60_000 }, async () => {
  const m = new ErofsMounter("always", quiet);
  const corrupt = path.join(work, "corrupt.erofs");
  const bytes = fs.readFileSync(bootstrap);
  bytes.fill(0x5a, 1024, 1024 + 128); // the superblock
  fs.writeFileSync(corrupt, bytes);
  const mnt = fs.mkdtempSync(path.join(work, "mnt-"));
  await assert.rejects(m.mount({ source: corrupt, data }, mnt), { code: "SYS" });
  assert.deepEqual(await loopsGone(), []);
  const notDir = path.join(work, "file");
  fs.writeFileSync(notDir, "");
  await assert.rejects(m.mount({ source: bootstrap, data }, notDir), { errno: "ENOTDIR" });
  assert.deepEqual(await loopsGone(), []);
  await assert.rejects(m.mount({ source: bootstrap, data: `${data},device=${path.join(work, "missing")}` }, mnt), { code: "ENOENT" });
  assert.deepEqual(await loopsGone(), [], "the devices attached before the missing one are gone too");
});

test("auto: mounts the files themselves where the kernel can, else loop devices (ENOTBLK), and says which", { skip, timeout: 120_000 }, async () => {
  const m = new ErofsMounter("auto", quiet);
  assert.equal(m.status().fileBackedMounts, null, "not known before the first mount");
  for (let i = 0; i < 2; i++) { // the second mount goes the learnt way at once
    const mnt = fs.mkdtempSync(path.join(work, "mnt-"));
    const mounted = await m.mount({ source: bootstrap, data }, mnt);
    const fileBacked = m.status().fileBackedMounts;
    assert.equal(typeof fileBacked, "boolean");
    assert.equal(mounted.loopDevices.length, fileBacked ? 0 : 2);
    assert.equal(mounted.source, fileBacked ? bootstrap : mounted.loopDevices[0]);
    assert.deepEqual(await compareTrees(src, mnt, { ignoreRootAttrs: true }), []);
    umount(mnt);
    assert.deepEqual(await loopsGone(), []);
  }
});

test("a source that is not a file (fscache's none) is never put on a loop device", { skip }, async () => {
  const m = new ErofsMounter("always", quiet);
  const mnt = fs.mkdtempSync(path.join(work, "mnt-"));
  await assert.rejects(m.mount({ source: "none", data: "fsid=eod-test-absent" }, mnt), (err: { errno?: string }) => err.errno !== undefined);
  assert.deepEqual(ourLoops(), []);
});

test("a frontend whose files do not serve loop reads (fanotify) is refused loop devices, before any is attached", { skip }, async () => {
  const m = new ErofsMounter("always", quiet, { loopsServed: false, frontend: "fanotify" });
  const mnt = fs.mkdtempSync(path.join(work, "mnt-"));
  await assert.rejects(m.mount({ source: bootstrap, data }, mnt), { code: "USAGE", message: /mount\.loop_devices is always, and the fanotify frontend cannot serve reads through loop devices/ });
  assert.deepEqual(ourLoops(), []);
});
