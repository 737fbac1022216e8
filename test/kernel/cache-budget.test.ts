// Culling under a size budget on the real kernel (fanotify frontend): a working set larger than the budget
// is read through a mount while `eod status` and the cache files' allocated ranges (SEEK_DATA) are watched;
// two images share a small budget and neither's bytes are ever wrong; an ext4 cache directory on a small loop
// device fills up and reads keep succeeding.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { eodOk } from "../helpers/cli.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { cleanup, eodAsync, readInChild, serve, type Served } from "../helpers/lazy.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { dataRanges } from "../../src/sys/seek.ts";
import { unavailable } from "../helpers/skip.ts";

const support = haveRoot() ? kernelSupportsPreContent() : { ok: false, missing: ["root"] };
const skip = unavailable(!haveRoot() ? "needs root to mount" : !support.ok ? `kernel lacks: ${support.missing.join("; ")}` : false);

const MiB = 1 << 20;
const FETCH = MiB; // EOD_MAX_FETCH: the largest fetch unit
const env = { EOD_REMOTE_TIMEOUT_MS: "5000", EOD_MAX_FETCH: String(FETCH), EOD_CULL_GRACE_MS: "100" };

let work = "";
const srcs: string[] = [];
const servers: Served[] = [];
let loop: { image: string; dev: string; mnt: string } | null = null;

/** A tree of incompressible files (so cached bytes are what a reader pulls through). */
function makeTree(dir: string, files: number, size: number): void {
  fs.mkdirSync(dir, { recursive: true });
  for (let f = 0; f < files; f++) fs.writeFileSync(path.join(dir, `f${String(f).padStart(3, "0")}`), randomBytes(size - f * 4099));
}

before(async () => {
  if (skip) return;
  work = tempDir("eod-budget-");
  for (const [k, files, size] of [[0, 16, 3 * MiB], [1, 12, 2 * MiB], [2, 3, MiB]] as const) {
    const src = path.join(work, `src${k}`);
    makeTree(src, files, size);
    srcs.push(src);
    const img = path.join(work, `img${k}`);
    eodOk("build", src, "-o", img, "--chunk-size", "128K");
    servers.push(await serve(img, "--rate", "24M")); // slow enough that culling keeps up with the reader
  }
});

after(() => {
  if (!work) return;
  for (const d of fs.readdirSync(work).filter((n) => n.startsWith("cache"))) cleanup(work, path.join(work, d));
  if (loop) {
    for (const d of fs.readdirSync(loop.mnt).filter((n) => n.startsWith("cache"))) cleanup(work, path.join(loop.mnt, d));
    cleanup(work);
    spawnSync("umount", ["-l", loop.mnt]);
    spawnSync("losetup", ["-d", loop.dev]);
  }
  cleanup(work);
  for (const s of servers) s.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

async function eod(args: string[], extra: Record<string, string> = {}) {
  const r = await eodAsync(args, { ...env, ...extra });
  assert.equal(r.status, 0, `eod ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

async function status(cache: string) {
  return JSON.parse(await eod(["status", "--cache-dir", cache, "--json"]));
}

/** Bytes allocated to the blobs' cache files (their data ranges). */
function allocated(cache: string): number {
  const dir = path.join(cache, "blobs");
  let n = 0;
  for (const name of fs.readdirSync(dir).filter((f) => /^[0-9a-f]{64}$/.test(f))) {
    const fd = fs.openSync(path.join(dir, name), "r");
    try { n += dataRanges(fd, fs.fstatSync(fd).size).reduce((s, r) => s + r.length, 0); } finally { fs.closeSync(fd); }
  }
  return n;
}

function sha(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/** Reads every file of the mount (in a child: a stuck read never blocks the test) and compares with the source. */
async function readAll(mnt: string, src: string): Promise<void> {
  for (const name of fs.readdirSync(src).sort()) {
    const got = await readInChild(path.join(mnt, name));
    assert.equal(got.error, undefined, `${name}: ${got.error}`);
    assert.equal(got.sha256, sha(path.join(src, name)), `${name}: wrong bytes`);
  }
}

/** Runs `fn` while sampling the cache every 20 ms; returns the largest cachedBytes and allocated bytes seen. */
async function watching(cache: string, fn: () => Promise<void>): Promise<{ cached: number; allocated: number; samples: number }> {
  const worst = { cached: 0, allocated: 0, samples: 0 };
  let done = false;
  const sampler = (async () => {
    while (!done) {
      worst.allocated = Math.max(worst.allocated, allocated(cache));
      const s = await status(cache);
      worst.cached = Math.max(worst.cached, s.cache.cachedBytes);
      worst.samples++;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  try { await fn(); } finally { done = true; await sampler; }
  worst.allocated = Math.max(worst.allocated, allocated(cache));
  return worst;
}

function dirs(name: string, root = work): { cache: string; mnt: string[] } {
  const cache = path.join(root, `cache-${name}`);
  const mnt = [0, 1, 2].map((k) => path.join(work, `mnt-${name}-${k}`));
  for (const m of mnt) fs.mkdirSync(m);
  return { cache, mnt };
}

test("a budget smaller than the working set: the cache never exceeds it by more than one fetch unit, every byte is right", { skip, timeout: 300_000 }, async () => {
  const budget = 12 * MiB; // the image holds ~46 MiB
  const { cache, mnt } = dirs("budget");
  await eod(["mount", servers[0].url, mnt[0], "--cache-dir", cache, "--frontend", "fanotify", "--cache-size", "12M"]);
  const seen = await watching(cache, () => readAll(mnt[0], srcs[0]));
  const s = await status(cache);
  assert.equal(s.cache.budget, budget);
  assert.ok(s.cache.evictions > 0 && s.cache.evictedBytes > 20 * MiB, JSON.stringify(s.cache));
  assert.ok(seen.cached <= budget + FETCH, `eod status showed ${seen.cached} B cached (budget ${budget})`);
  assert.ok(seen.allocated <= budget + FETCH, `the cache files held ${seen.allocated} B (budget ${budget})`);
  assert.equal(s.cache.cachedBytes, s.blobs.reduce((n: number, b: { cachedBytes: number }) => n + b.cachedBytes, 0));
  const text = (await eodAsync(["status", "--cache-dir", cache])).stdout;
  assert.match(text, /budget 12582912 B/);
  // Culled chunks are fetched again: drop the kernel's pages and read everything once more.
  fs.writeFileSync("/proc/sys/vm/drop_caches", "3");
  const again = await watching(cache, () => readAll(mnt[0], srcs[0]));
  assert.ok(again.allocated <= budget + FETCH, `${again.allocated} B`);
  console.log(`budget ${budget} B: worst ${seen.cached} B cached (status), ${seen.allocated} B allocated (SEEK_DATA) over ${seen.samples} samples; culled ${s.cache.evictedBytes} B`);
  await eod(["umount", mnt[0], "--cache-dir", cache]);
});

test("two images under one small budget: culling one blob never corrupts the other, mounted or not", { skip, timeout: 300_000 }, async () => {
  const { cache, mnt } = dirs("two");
  const opts = ["--cache-dir", cache, "--frontend", "fanotify", "--cache-size", "10M"];
  await eod(["mount", servers[0].url, mnt[0], ...opts]);
  await eod(["mount", servers[1].url, mnt[1], ...opts]);
  for (let pass = 0; pass < 2; pass++) {
    await readAll(mnt[1], srcs[1]);
    await readAll(mnt[0], srcs[0]);
    await readAll(mnt[1], srcs[1]);
    fs.writeFileSync("/proc/sys/vm/drop_caches", "3");
  }
  // Unmounted, image 1's blob rests; reading image 0 culls it further; mounted again it reads right.
  await eod(["umount", mnt[1], "--cache-dir", cache]);
  const before = (await status(cache)).cache;
  await readAll(mnt[0], srcs[0]);
  const mid = (await status(cache)).cache;
  assert.ok(mid.evictions > before.evictions, JSON.stringify(mid));
  await eod(["mount", servers[1].url, mnt[1], ...opts]);
  await readAll(mnt[1], srcs[1]);
  const s = (await status(cache)).cache;
  assert.ok(s.cachedBytes <= 10 * MiB + FETCH, JSON.stringify(s));
  for (const m of mnt.slice(0, 2)) await eod(["umount", m, "--cache-dir", cache]);
});

test("a complete blob (its fanotify mark removed) is watched again before culling punches it: re-read after culling, its bytes are right", { skip, timeout: 300_000 }, async () => {
  const { cache, mnt } = dirs("complete");
  const opts = ["--cache-dir", cache, "--frontend", "fanotify", "--cache-size", "8M"];
  await eod(["mount", servers[2].url, mnt[2], ...opts]);
  await readAll(mnt[2], srcs[2]);
  let s = await status(cache);
  const small = s.blobs.find((b: { presentChunks: number; chunks: number }) => b.presentChunks === b.chunks);
  assert.ok(small, "the small image's blob is complete");
  assert.equal(s.frontend.markedBlobs, 0, "a complete blob is not marked");
  await new Promise((r) => setTimeout(r, 300)); // older than the grace
  await eod(["mount", servers[0].url, mnt[0], ...opts]);
  await readAll(mnt[0], srcs[0]);
  s = await status(cache);
  const after = s.blobs.find((b: { id: string }) => b.id === small.id);
  assert.ok(after.evictions > 0, `the complete blob was culled: ${JSON.stringify(after)}`);
  fs.writeFileSync("/proc/sys/vm/drop_caches", "3");
  await readAll(mnt[2], srcs[2]); // holes are refetched, never read as zeros
  for (const k of [0, 2]) await eod(["umount", mnt[k], "--cache-dir", cache]);
});

test("an ext4 cache directory on a small loop device fills up and keeps serving reads", { skip, timeout: 300_000 }, async () => {
  const image = path.join(work, "ext4.img");
  fs.writeFileSync(image, "");
  fs.truncateSync(image, 40 * MiB);
  let r = spawnSync("mkfs.ext4", ["-q", "-F", "-m", "0", image], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  r = spawnSync("losetup", ["--find", "--show", image], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const mntFs = path.join(work, "ext4");
  fs.mkdirSync(mntFs);
  loop = { image, dev: r.stdout.trim(), mnt: mntFs };
  r = spawnSync("mount", [loop.dev, mntFs], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const { cache, mnt } = dirs("full", mntFs); // no budget: only the full filesystem makes room
  await eod(["mount", servers[0].url, mnt[0], "--cache-dir", cache, "--frontend", "fanotify"]);
  await readAll(mnt[0], srcs[0]); // ~46 MiB through a ~36 MiB filesystem
  fs.writeFileSync("/proc/sys/vm/drop_caches", "3");
  await readAll(mnt[0], srcs[0]);
  const s = await status(cache);
  assert.ok(s.cache.noSpaceCulls > 0 && s.cache.evictions > 0, JSON.stringify(s.cache));
  const retries = s.blobs.reduce((n: number, b: { noSpaceRetries: number }) => n + b.noSpaceRetries, 0);
  assert.ok(retries > 0);
  console.log(`full ext4 (${fs.statfsSync(mntFs).blocks * fs.statfsSync(mntFs).bsize} B): ${s.cache.noSpaceCulls} cull(s) on ENOSPC, ${retries} write(s) retried, ${s.cache.evictedBytes} B culled`);
  await eod(["umount", mnt[0], "--cache-dir", cache]);
});
