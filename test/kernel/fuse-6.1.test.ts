// Linux 6.1 in the kernel lab (no fanotify pre-content events, no file-backed erofs; cachefiles on-demand
// present): erofs mounts through loop devices there. First the loop mount step alone (test/daemon/
// erofs-mount.test.ts run in the guest: `auto` must find ENOTBLK and fall back to loop devices; failed mounts
// leave none). Then eod end to end (test/vm/fuse-e2e.ts): `--frontend auto` picks fscache and says why,
// `--frontend fuse` mounts through loop devices, identical trees, no loop device after umount or failed mounts.
import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { eodOk, REPO } from "../helpers/cli.ts";
import { hashTree } from "../helpers/hash-tree.ts";
import { tempDir } from "../helpers/kernel.ts";
import { runGuestScript, runTestFileInVm, vmAvailable, type VmResult } from "../helpers/vm.ts";
import { unavailable } from "../helpers/skip.ts";

const vm = vmAvailable();
const skip = unavailable(vm.ok ? false : vm.why);
const fuseBuilt = fs.existsSync(path.join(REPO, "src/frontend/fuse/service.ts"));

test("erofs on loop devices on Linux 6.1: ErofsMounter auto falls back on ENOTBLK; no device left after umount or a failed mount (kernel-lab VM)", { skip, timeout: 900_000 }, async (t) => {
  const res = await runTestFileInVm("test/daemon/erofs-mount.test.ts", { kernel: "6.1", timeoutS: 780, scratchMb: 0 }, (s) => t.diagnostic(s));
  t.diagnostic(`VM run ${res.seconds.toFixed(0)} s`);
  const summary = res.stdout.split("\n").filter((l) => /^(✔|✖|ℹ (tests|pass|fail|skipped))/.test(l));
  assert.equal(res.status, 0, `${summary.join("\n")}\n${res.stdout.slice(-3000)}\n${res.stderr.slice(-2000)}`);
  assert.ok(summary.some((l) => /^ℹ pass [1-9]/.test(l)) && summary.some((l) => l === "ℹ fail 0") && summary.some((l) => l === "ℹ skipped 0"), summary.join("\n"));
});

/** One VM run of test/vm/fuse-e2e.ts for both tests below (the fuse steps only once the fuse frontend exists). */
let e2e: Promise<{ r: Record<string, any>; res: VmResult }> | null = null;
function runE2e(note: (s: string) => void): Promise<{ r: Record<string, any>; res: VmResult }> {
  e2e ??= (async () => {
    const work = tempDir("eod-fuse-61-");
    const src = path.join(work, "src");
    fs.mkdirSync(path.join(src, "many"), { recursive: true });
    fs.writeFileSync(path.join(src, "big"), crypto.randomBytes(3 * 1024 * 1024 + 77));
    fs.writeFileSync(path.join(src, "hello"), "hello from 6.1\n");
    for (let i = 1; i <= 30; i++) fs.writeFileSync(path.join(src, `many/f${i}`), crypto.randomBytes(i * 997));
    const img = path.join(work, "img");
    eodOk("build", src, "-o", img, "--chunk-size", "64K");
    const expected = path.join(work, "expected.json");
    fs.writeFileSync(expected, JSON.stringify(hashTree(src)));
    const { report: r, res } = await runGuestScript("fuse-e2e", [img, expected, fuseBuilt ? "fuse" : "no-fuse"], { kernel: "6.1", timeoutS: 780, share: [work] }, note);
    if (r === undefined) assert.fail(`guest printed no report (status ${res.status}):\n${res.stderr.slice(-3000)}\n${res.stdout.slice(-2000)}`);
    assert.equal(r.error, undefined, `at step ${r.step}: ${r.error}\n${res.stderr.slice(-3000)}`);
    assert.equal(res.status, 0, res.stderr.slice(-2000));
    return { r, res };
  })();
  return e2e;
}

test("eod mount --frontend auto on Linux 6.1 picks fscache and says why (fanotify not possible); the tree is identical (kernel-lab VM)", { skip, timeout: 900_000 }, async (t) => {
  const { r, res } = await runE2e((s) => t.diagnostic(s));
  t.diagnostic(`VM run ${res.seconds.toFixed(0)} s on ${r.kernel}; auto: ${r.autoText}`);
  assert.match(r.kernel, /^6\.1\./);
  // auto: fanotify first, not possible on 6.1, so fscache (this lab kernel has cachefiles on-demand).
  assert.equal(r.auto.frontend, "fscache");
  assert.match(r.auto.reason, /^auto: fanotify not possible \(missing /);
  assert.match(r.autoText, /frontend fscache \(auto: fanotify not possible/);
  assert.deepEqual(r.auto.loopDevices, [], "fscache mounts need no loop device");
  assert.deepEqual(r.autoDiff, [], "auto: every file identical");
});

test("eod mount --frontend fuse on Linux 6.1: through loop devices, identical; none left after umount or failed mounts (kernel-lab VM)", { skip: skip || unavailable(!fuseBuilt && "the fuse frontend (src/frontend/fuse/service.ts) is not built yet"), timeout: 900_000 }, async (t) => {
  const { r } = await runE2e((s) => t.diagnostic(s));
  t.diagnostic(`fuse mount ${r.fuseMountMs} ms, cold read of the tree ${r.fuseReadMs} ms; status:\n${r.fuseText}`);
  // erofs of 6.1 cannot mount files, so the bootstrap and the blob's FUSE file are on loop devices.
  assert.equal(r.fuse.frontend, "fuse");
  assert.equal(r.fuse.reason, "asked for (--frontend fuse)");
  assert.deepEqual(r.fuse.erofsMount, { loopDevices: "auto", fileBackedMounts: false });
  assert.equal(r.fuse.loopDevices.length, 2, "one for the bootstrap, one for the blob");
  assert.equal(r.fuse.mountSource, r.fuse.loopDevices[0]);
  assert.deepEqual(r.fuseLoopsBound, [...r.fuse.loopDevices].sort(), "the devices are bound to the cache's files");
  assert.match(r.fuseText, new RegExp(`on ${r.fuse.loopDevices.join(" ")}`));
  assert.deepEqual(r.fuseDiff, [], "fuse: every file identical");
  // Failed mounts are refused and leave nothing.
  assert.notEqual(r.failed.notDir.code, 0);
  assert.match(r.failed.notDir.stderr, /not a directory/);
  assert.notEqual(r.failed.missing.code, 0);
  assert.deepEqual(r.loopsAfterFailed, [...r.fuse.loopDevices].sort(), "only the live mount's devices after the failed mounts");
  // umount: erofs lets go of the devices (autoclear), the daemon exits with its FUSE mount.
  assert.deepEqual(r.loopsAfterUmount, [], "no loop device after eod umount");
  assert.deepEqual(r.mountsAfterUmount, [], "no FUSE mount once the daemon is gone");
});

test("--frontend fuse on Linux 6.1 (no FUSE_NOTIFY_RESEND) through loop devices: kill -9 with readers blocked on a stalled remote, the holder's new daemon gives them the right bytes (kernel-lab VM)", { skip: skip || unavailable(!fuseBuilt && "the fuse frontend (src/frontend/fuse/service.ts) is not built yet"), timeout: 900_000 }, async (t) => {
  const { r } = await runE2e((s) => t.diagnostic(s));
  t.diagnostic(`failover: ${JSON.stringify(r.failoverStats)}\n${(r.failoverLog ?? []).join("\n")}`);
  for (const f of r.failover) assert.ok(f.ok, `failover: ${f.name} read ${f.got}`);
  assert.equal(r.failoverNewPid, true, "the holder started a new daemon");
  assert.deepEqual(r.failoverDiff, []);
  assert.deepEqual(r.failoverLoopsAfter, [], "no loop device after eod umount");
});
