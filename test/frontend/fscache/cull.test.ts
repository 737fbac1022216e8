// Culling in the fscache frontend, without a kernel: the limit syntax and its command order, the low-space
// test, and the least-recently-used order of cache files as the core's object eviction sees them. (The kernel
// side runs in test/kernel/fscache.test.ts.)
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { cacheFiles, DEFAULT_LIMITS, parseLimits } from "../../../src/frontend/fscache/cull.ts";
import { belowRun } from "../../../src/cache/free-space.ts";
import { ObjectEviction } from "../../../src/cache/object-eviction.ts";
import { cachefilesLimitCommands, type CachefilesLimits } from "../../../src/sys/cachefiles.ts";

test("parseLimits: subsets over the defaults, % optional; bad names, numbers and orders refused", () => {
  assert.deepEqual(parseLimits(undefined), DEFAULT_LIMITS);
  assert.deepEqual(parseLimits("bcull=20%,brun=30"), { ...DEFAULT_LIMITS, bcull: 20, brun: 30 });
  assert.deepEqual(parseLimits("fstop=1% fcull=2% frun=4%"), { ...DEFAULT_LIMITS, fstop: 1, fcull: 2, frun: 4 });
  for (const bad of ["bcull=10", "brun=5%", "bstop=7%", "xrun=3%", "brun=100%", "brun=-1", "bcull=a"]) {
    assert.throws(() => parseLimits(bad), { code: "USAGE" }, bad);
  }
});

// The kernel checks stop < cull < run < 100 after every single command (fs/cachefiles/daemon.c).
function simulate(start: CachefilesLimits, commands: string[]): CachefilesLimits {
  const l = { ...start };
  for (const c of commands) {
    const m = /^([bf])(run|cull|stop) (\d+)%$/.exec(c)!;
    const [p, k, v] = [m[1], m[2], Number(m[3])];
    const run = l[`${p}run` as keyof CachefilesLimits], cull = l[`${p}cull` as keyof CachefilesLimits], stop = l[`${p}stop` as keyof CachefilesLimits];
    const ok = k === "run" ? v > cull && v < 100 : k === "cull" ? v > stop && v < run : v < cull;
    assert.ok(ok, `kernel refuses "${c}" with ${JSON.stringify(l)}`);
    l[`${p}${k}` as keyof CachefilesLimits] = v;
  }
  return l;
}

test("cachefilesLimitCommands: an order the kernel accepts from any valid start", () => {
  const kernelDefaults = { brun: 7, bcull: 5, bstop: 1, frun: 7, fcull: 5, fstop: 1 };
  const targets = [DEFAULT_LIMITS, { brun: 3, bcull: 2, bstop: 1, frun: 3, fcull: 2, fstop: 0 }, { brun: 99, bcull: 98, bstop: 97, frun: 60, fcull: 50, fstop: 40 }];
  for (const start of [kernelDefaults, ...targets]) {
    for (const want of targets) assert.deepEqual(simulate(start, cachefilesLimitCommands(want)), want);
  }
  assert.throws(() => cachefilesLimitCommands({ ...DEFAULT_LIMITS, bcull: 10 }), RangeError);
});

test("belowRun: free blocks or files under the run level", () => {
  const l = { blocksPct: DEFAULT_LIMITS.brun, filesPct: DEFAULT_LIMITS.frun }; // 10, 10
  assert.equal(belowRun({ blocks: 1000, bavail: 100, files: 100, ffree: 10 }, l), false);
  assert.equal(belowRun({ blocks: 1000, bavail: 99, files: 100, ffree: 50 }, l), true);
  assert.equal(belowRun({ blocks: 1000, bavail: 500, files: 100, ffree: 9 }, l), true);
  assert.equal(belowRun({ blocks: 1000, bavail: 500, files: 0, ffree: 0 }, l), false);
});

test("cacheFiles + ObjectEviction: every volume's files, least recently used first (daemon's times over mtimes)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eod-cull-"));
  try {
    const put = (rel: string, mtimeS: number) => {
      const p = path.join(dir, "cache", rel);
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, "x");
      fs.utimesSync(p, mtimeS, mtimeS);
    };
    put("Ierofs,eod/@1a/Daaa", 1000);
    put("Ierofs,eod/@2b/Dbbb", 3000);
    put("Ierofs,other/@3c/Dccc", 2000);
    put("Ierofs,eod/@1a/Sxyz", 500);
    fs.mkdirSync(path.join(dir, "graveyard"), { recursive: true });
    const names = (m: Map<string, number>) => {
      const e = new ObjectEviction({ dir, runLevels: { blocksPct: 10, filesPct: 10 }, list: () => cacheFiles(dir), openBytes: () => new Map(), cull: () => "gone" }, () => {});
      for (const [key, ms] of m) e.used(key, ms);
      return e.ordered().map((c) => c.name);
    };
    assert.deepEqual(names(new Map()), ["Sxyz", "Daaa", "Dccc", "Dbbb"]);
    // aaa was used (read) just now: it goes last; bbb's file is newer than the daemon's old record of it.
    assert.deepEqual(names(new Map([["aaa", 4_000_000], ["bbb", 10]])), ["Sxyz", "Dccc", "Dbbb", "Daaa"]);
    const c = cacheFiles(dir).find((x) => x.name === "Daaa")!;
    assert.equal(c.key, "aaa");
    assert.equal(c.dir, path.join(dir, "cache", "Ierofs,eod", "@1a"));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
