// The frontend choice on the running kernel: the order of auto, the reason kept with it, the fuse probe.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { AUTO_ORDER, kernelSupportsFuse, resolveFrontend } from "../../src/frontend/resolve.ts";
import { chooseFrontend } from "../../src/frontend/select.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { unavailable } from "../helpers/skip.ts";

const skip = unavailable(!haveRoot() && "the kernel probes need root");

test("auto tries fanotify, then fscache, then fuse", () => {
  assert.deepEqual(AUTO_ORDER, ["fanotify", "fscache", "fuse"]);
});

test("auto picks the first possible frontend and says why the ones before it were not possible", { skip }, () => {
  const c = resolveFrontend("auto", tempDir("eod-resolve-"));
  const before = AUTO_ORDER.slice(0, AUTO_ORDER.indexOf(c.kind));
  assert.match(c.reason, /^auto: /);
  for (const k of before) assert.match(c.reason, new RegExp(`${k} not possible \\(missing `));
  if (before.length === 0) assert.match(c.reason, new RegExp(`${c.kind} is tried first`));
});

test("a frontend asked for by name is probed alone; its reason says so, or its error names what is missing", { skip }, () => {
  for (const kind of AUTO_ORDER) {
    try {
      assert.deepEqual(resolveFrontend(kind, tempDir("eod-resolve-")), { kind, reason: `asked for (--frontend ${kind})` });
    } catch (err) {
      assert.equal((err as { code?: string }).code, "KERNEL_UNSUPPORTED");
      assert.match((err as Error).message, new RegExp(`^The ${kind} frontend cannot run on this kernel: ${kind} not possible \\(missing `));
    }
  }
});

test("auto on a kernel with neither pre-content events nor fscache picks fuse and names what the others lacked; with none, the error names all three", () => {
  const lacking = (ok: string[]) => (kind: string) => (ok.includes(kind) ? { ok: true, missing: [] } : { ok: false, missing: [`${kind}-feature`] });
  assert.deepEqual(resolveFrontend("auto", "/x", lacking(["fuse"])), {
    kind: "fuse", reason: "auto: fanotify not possible (missing fanotify-feature); fscache not possible (missing fscache-feature)",
  });
  assert.deepEqual(resolveFrontend("auto", "/x", lacking(["fscache", "fuse"])).kind, "fscache");
  assert.throws(() => resolveFrontend("auto", "/x", lacking([])), {
    code: "KERNEL_UNSUPPORTED",
    message: "No frontend (fanotify, fscache, fuse) can run on this kernel: fanotify not possible (missing fanotify-feature) | fscache not possible (missing fscache-feature) | fuse not possible (missing fuse-feature)",
  });
  assert.throws(() => resolveFrontend("fuse", "/x", lacking(["fanotify"])), { message: "The fuse frontend cannot run on this kernel: fuse not possible (missing fuse-feature)" });
});

test("the fuse probe wants /dev/fuse, FUSE and erofs", () => {
  const s = kernelSupportsFuse();
  const fss = fs.readFileSync("/proc/filesystems", "utf8");
  assert.equal(s.ok, fs.existsSync("/dev/fuse") && /\tfuse$/m.test(fss) && /\terofs$/m.test(fss) && s.missing.length === 0);
  for (const m of s.missing) assert.match(m, /fuse|FUSE|erofs|loop/);
});

test("a daemon handed a kernel fd runs that fd's frontend with the holder's reason, without probing", () => {
  assert.deepEqual(chooseFrontend("auto", "/nonexistent", { fuseFd: 3, restore: false, restarted: true, reason: "auto: x" }), { kind: "fuse", reason: "auto: x" });
  assert.equal(chooseFrontend("auto", "/nonexistent", { cachefilesFd: 3, restore: false, restarted: false }).kind, "fscache");
  assert.equal(chooseFrontend("fscache", "/nonexistent", { fanotifyFd: 3, restore: false, restarted: false }).kind, "fanotify");
});
