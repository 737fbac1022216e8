// The fscache frontend end to end through eod itself, in the kernel lab's VM (the host kernel lacks
// cachefiles on-demand): cold and warm mounts, two images sharing a blob in one domain, a corrupting
// remote, daemon failover through the holder + `restore`, culling by hand, culling when the kernel reports
// the cache low on space (POLLOUT) on a small cache filesystem, and culling under a --cache-size budget. See test/vm/fscache-e2e.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { eodOk } from "../helpers/cli.ts";
import { tempDir } from "../helpers/kernel.ts";
import { runGuestScript, vmAvailable } from "../helpers/vm.ts";
import { hashTree } from "../helpers/hash-tree.ts";
import { unavailable } from "../helpers/skip.ts";

const vm = vmAvailable();

function tree(root: string, seed: string, extra: Record<string, string | Buffer> = {}): void {
  const rnd = (n: number, s: string) => {
    const out = Buffer.alloc(n);
    let h = crypto.createHash("sha256").update(seed + s).digest();
    for (let at = 0; at < n; at += 32) { h = crypto.createHash("sha256").update(h).digest(); h.copy(out, at); }
    return out;
  };
  fs.mkdirSync(path.join(root, "many"), { recursive: true });
  fs.writeFileSync(path.join(root, "big"), rnd(2 * 1024 * 1024 + 77, "big"));
  fs.writeFileSync(path.join(root, "hello"), `hello ${seed}\n`);
  for (let i = 1; i <= 40; i++) fs.writeFileSync(path.join(root, `many/f${i}`), rnd(i * 997, `f${i}`));
  for (const [k, v] of Object.entries(extra)) fs.writeFileSync(path.join(root, k), v);
}


// Under TCG on a loaded 2-CPU host one run took 700 s (cold mount 80–165 s): generous deadlines, a failure says where.
test("eod mount --frontend fscache: cold/warm, shared blob, corrupt remote, failover, hand-over, cull, low-space cull, budget cull (kernel-lab VM)", { skip: unavailable(vm.ok ? false : vm.why), timeout: 1_680_000 }, async (t) => {
  const work = tempDir("eod-fscache-e2e-");
  const srcs = { A: path.join(work, "A"), B: path.join(work, "B"), C: path.join(work, "C") };
  tree(srcs.A, "A");
  tree(srcs.B, "A", { "only-in-b": "" }); // an empty file: B's bootstrap differs, its blob is A's
  tree(srcs.C, "C");
  const imgs = { A: path.join(work, "imgA"), B: path.join(work, "imgB"), C: path.join(work, "imgC") };
  for (const k of ["A", "B", "C"] as const) eodOk("build", srcs[k], "-o", imgs[k], "--chunk-size", "64K", "--inline-max", "0");
  const blobOf = (img: string) => JSON.parse(fs.readFileSync(path.join(img, "manifest.json"), "utf8")).blobs[0].id;
  assert.equal(blobOf(imgs.A), blobOf(imgs.B), "A and B share their blob");
  // Low space: three images of one 6 MiB incompressible file each (plus small ones), for a 40 MB cache fs.
  const low = { D: path.join(work, "D"), E: path.join(work, "E"), F: path.join(work, "F") };
  const lowImgs = { D: path.join(work, "imgD"), E: path.join(work, "imgE"), F: path.join(work, "imgF") };
  for (const k of ["D", "E", "F"] as const) {
    fs.mkdirSync(low[k], { recursive: true });
    fs.writeFileSync(path.join(low[k], "big"), crypto.randomBytes(6 * 1024 * 1024));
    fs.writeFileSync(path.join(low[k], "name"), `image ${k}\n`);
    eodOk("build", low[k], "-o", lowImgs[k], "--chunk-size", "64K", "--inline-max", "0");
  }
  const expected = path.join(work, "expected.json");
  fs.writeFileSync(expected, JSON.stringify({
    A: hashTree(srcs.A), B: hashTree(srcs.B), C: hashTree(srcs.C), D: hashTree(low.D), E: hashTree(low.E), F: hashTree(low.F),
  }));

  const { report: r, res } = await runGuestScript("fscache-e2e", [imgs.A, imgs.B, imgs.C, expected, lowImgs.D, lowImgs.E, lowImgs.F], { timeoutS: 1500, share: [work] }, (s) => t.diagnostic(s));
  if (r === undefined) assert.fail(`guest printed no report (status ${res.status}):\n${res.stderr.slice(-3000)}\n${res.stdout.slice(-2000)}`);
  t.diagnostic(`VM run ${res.seconds.toFixed(0)} s; cold mount ${r.coldMountMs} ms, cold read ${r.coldReadMs} ms`);
  const logs = Object.entries(r.daemonLogs ?? {}).map(([k, v]) => `${k}:\n${v}`).join("\n");
  assert.equal(r.error, undefined, `at step ${r.step}: ${r.error}\nguest stderr:\n${res.stderr.slice(-3000)}\n${logs}`);
  assert.equal(res.status, 0, res.stderr.slice(-2000));
  assert.deepEqual(r.coldDiff, [], "cold mount: every file identical");
  assert.ok(r.afterA.opens >= 2 && r.afterA.reads > 0, `cold mount served by READs: ${JSON.stringify(r.afterA)}`);
  assert.deepEqual(r.bDiff, []);
  assert.equal(r.afterB.opens - r.afterA.opens, 1, "B's bootstrap is the only new OPEN: the shared blob is opened once");
  assert.ok(r.holderGone, "the holder exits with the daemon");
  assert.deepEqual(r.warmDiff, []);
  assert.equal(r.warm.reads, 0, `a second mount on the same cache sends no READ: ${JSON.stringify(r.warm)}`);
  assert.equal(r.corruptRead, "error:EIO");
  assert.ok(r.corruptCounts.some((b: { corrupt: number }) => b.corrupt > 0));
  assert.equal(r.corruptThenOk, true);
  for (const f of r.failover) assert.ok(f.ok, `failover: ${f.name} read ${f.got}`);
  assert.equal(r.restartedPid, true, "the holder started a new daemon");
  assert.deepEqual(r.afterFailoverDiff, []);
  assert.notEqual(r.cullInUse, 0, "culling a blob in use is refused");
  assert.equal(r.cullUnused.code, 0, r.cullUnused.stderr);
  assert.equal(r.cullFileGone, true);
  // Hand-over (eod daemon restart): the reader across it gets the right bytes, a new daemon serves the mount.
  assert.deepEqual({ code: r.handover?.code, newPid: r.handover?.newPid, readOk: r.handover?.readOk }, { code: 0, newPid: true, readOk: true }, JSON.stringify(r.handover));
  assert.deepEqual(r.handoverDiff, []);
  assert.ok(r.handoverLog.some((l: string) => l.includes("restore")), `the new daemon sent restore: ${r.handoverLog.join("\n")}`);
  // Low space: the kernel signalled, the cold unused image's blob was culled, the mounted ones never; reads right.
  t.diagnostic(`low space: ${JSON.stringify(r.lowSpaceSetup)} ${JSON.stringify(r.lowStats?.after)}`);
  assert.deepEqual(r.lowD, []);
  assert.deepEqual(r.lowE, []);
  assert.deepEqual(r.lowF, [], "every read during the low-space cull has the right bytes");
  assert.deepEqual(r.lowERereadDiff, []);
  assert.ok(r.lowStats.after.lowSpaceSignals > 0, `the kernel signalled low space (POLLOUT): ${JSON.stringify(r.lowStats)}\n${(r.lowLog ?? []).join("\n")}`);
  assert.ok(r.lowStats.after.objectEvictions > 0, `the daemon culled: ${JSON.stringify(r.lowStats)}`);
  assert.equal(r.lowDGone, true, `the cold unused blob D was culled: ${(r.lowLog ?? []).join("\n")}`);
  const blobOfImg = (img: string) => JSON.parse(fs.readFileSync(path.join(img, "manifest.json"), "utf8")).blobs[0].id as string;
  assert.ok(r.lowCulledCookies.includes(blobOfImg(lowImgs.D)), `D's blob culled: ${r.lowCulledCookies}`);
  for (const k of ["E", "F"] as const) {
    assert.ok(!r.lowCulledCookies.includes(blobOfImg(lowImgs[k])), `blob ${k}, mounted during the cull, was never culled: ${r.lowLog.join("\n")}`);
  }
  t.diagnostic(`cache files after the low-space step: ${JSON.stringify(r.lowFiles)} (E kept ${r.lowEKept}, F kept ${r.lowFKept})`);
  assert.equal(r.lowEKept, true, `blob E's cache file is still there: ${JSON.stringify(r.lowFiles)}`);
  // Budget: over 2.5 blobs, the unmounted D is culled; E and F, in use (unlinked tmpfiles), are kept; reads right.
  t.diagnostic(`budget: ${JSON.stringify(r.budgetStats)}`);
  assert.deepEqual([r.budgetD, r.budgetE, r.budgetF, r.budgetERereadDiff], [[], [], [], []]);
  assert.equal(r.budgetDGone, true, `D culled for the budget: ${(r.budgetLog ?? []).join("\n")}`);
  assert.ok(r.budgetStats.objectEvictions >= 1 && r.budgetStats.lowSpaceCulls === 0 && r.budgetStats.noSpaceCulls === 0, `culled for the budget: ${JSON.stringify(r.budgetStats)}`);
  assert.ok(r.budgetStats.cachedBytes <= r.budgetSize, `cache within its budget: ${JSON.stringify(r.budgetStats)}`);
  assert.deepEqual([r.budgetEKept, r.budgetFKept], [true, true], "E and F, mounted, never culled");
});
