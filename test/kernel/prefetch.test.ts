// Prefetch lists and access traces on the real kernel (fanotify frontend): `eod trace` records what a command
// touches, `eod build --prefetch-from` turns it into the image's prefetch list, and a mount then fetches those
// files before anything asks; demand misses do not wait behind prefetch traffic.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { eodOk } from "../helpers/cli.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { eodAsync, lazyWorkspace, readInChild, serve, type Served } from "../helpers/lazy.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { parseTrace } from "../../src/image/prefetch.ts";
import { unavailable } from "../helpers/skip.ts";

const support = haveRoot() ? kernelSupportsPreContent() : { ok: false, missing: ["root"] };
const skip = unavailable(!haveRoot() ? "needs root to mount" : !support.ok ? `kernel lacks: ${support.missing.join("; ")}` : false);

let work = "";
let src = "";
let fast: Served;
let slow: Served;
let ws: ReturnType<typeof lazyWorkspace>;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

before(async () => {
  if (skip) return;
  work = tempDir("eod-prefetch-");
  ws = lazyWorkspace(work);
  src = path.join(work, "src");
  for (const d of ["app/bin", "app/lib", "data", "etc"]) fs.mkdirSync(path.join(src, d), { recursive: true });
  fs.writeFileSync(path.join(src, "app/bin/tool"), randomBytes(300_000));
  fs.writeFileSync(path.join(src, "app/lib/a.so"), randomBytes(128 << 10));
  fs.writeFileSync(path.join(src, "app/lib/b.so"), randomBytes(2 << 20));
  fs.writeFileSync(path.join(src, "data/big.bin"), randomBytes(16 << 20));
  for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(src, "etc", `conf${i}`), randomBytes(5000 + i * 100));
  fs.symlinkSync("bin/tool", path.join(src, "app/tool"));
  eodOk("build", src, "-o", path.join(work, "images/plain"), "--chunk-size", "64K");
  fast = await serve(path.join(work, "images"));
  slow = await serve(path.join(work, "images"), "--rate", "2000000");
});

after(() => {
  if (work) ws.teardown(fast, slow);
});

async function eod(...args: string[]) {
  const r = await eodAsync(args);
  assert.equal(r.status, 0, `eod ${args.join(" ")}: ${r.stderr}`);
  return r;
}

async function blobStats(cache: string) {
  const s = JSON.parse((await eodAsync(["status", "--cache-dir", cache, "--json"])).stdout);
  return s.blobs[0] as { fetches: number; misses: number; prefetches: number; inFlight: number; cachedBytes: number; totalBytes: number };
}

test("eod trace records the files a command touches, in first-touch order, with the ranges touched", { skip, timeout: 120_000 }, async () => {
  const { cache, mnt } = ws.fresh();
  await eod("mount", new URL("plain/", fast.url).href, mnt, "--cache-dir", cache);
  const traceFile = path.join(work, "trace.json");
  try {
    // the symlink is read through: the trace names the file, not the link
    await eod("trace", mnt, "-o", traceFile, "--cache-dir", cache, "--", "sh", "-c",
      `cat ${mnt}/app/tool > /dev/null && dd if=${mnt}/app/lib/b.so of=/dev/null bs=4096 skip=300 count=1 status=none`);
  } finally {
    await eod("umount", mnt, "--cache-dir", cache);
  }
  const trace = parseTrace(fs.readFileSync(traceFile, "utf8"), traceFile);
  assert.deepEqual(trace.files.map((f) => f.path), ["/app/bin/tool", "/app/lib/b.so"]);
  assert.deepEqual(trace.files[0].ranges, [[0, 303104]], "all of tool (300,000 bytes, block-rounded)");
  const b = trace.files[1].ranges!;
  const touched = b.reduce((n, [, l]) => n + l, 0);
  assert.ok(b.some(([o, l]) => o <= 300 * 4096 && 301 * 4096 <= o + l), `b.so ranges cover the page read: ${JSON.stringify(b)}`);
  assert.ok(touched < 1 << 20, `only part of b.so is in the trace: ${touched} bytes`);
});

test("a build with --prefetch-from fetches the traced ranges at mount: the traced reads are then hits", { skip, timeout: 120_000 }, async () => {
  const traceFile = path.join(work, "trace.json");
  const img = path.join(work, "images/traced");
  eodOk("build", src, "-o", img, "--chunk-size", "64K", "--prefetch-from", traceFile);
  const manifest = JSON.parse(fs.readFileSync(path.join(img, "manifest.json"), "utf8"));
  assert.deepEqual(manifest.prefetch.map((e: { path: string }) => e.path), ["/app/bin/tool", "/app/lib/b.so"]);
  const { cache, mnt } = ws.fresh();
  await eod("mount", new URL("traced/", fast.url).href, mnt, "--cache-dir", cache);
  try {
    let s = await blobStats(cache);
    for (let i = 0; i < 100 && (s.prefetches === 0 || s.inFlight > 0); i++) {
      await new Promise((r) => setTimeout(r, 50));
      s = await blobStats(cache);
    }
    assert.ok(s.prefetches > 0 && s.inFlight === 0, `prefetch ran and finished: ${JSON.stringify(s)}`);
    assert.ok(s.prefetches <= 3, `the traced files sit together in the blob: ${s.prefetches} request(s)`);
    const before = s.fetches;
    const tool = await readInChild(path.join(mnt, "app/tool"));
    assert.equal(tool.sha256, sha(fs.readFileSync(path.join(src, "app/bin/tool"))));
    const after = await blobStats(cache);
    assert.equal(after.fetches, before, "reading the prefetched file fetched nothing");
    assert.ok(after.cachedBytes < after.totalBytes / 4, "only the listed ranges were prefetched");
  } finally {
    await eod("umount", mnt, "--cache-dir", cache);
  }
});

test("a demand miss during a long prefetch is served without waiting for it", { skip, timeout: 120_000 }, async () => {
  const list = path.join(work, "prefetch.list");
  fs.writeFileSync(list, "# the whole data directory, 16 MiB: ~8 s at 2 MB/s\n/data\n");
  eodOk("build", src, "-o", path.join(work, "images/bigprefetch"), "--chunk-size", "64K", "--prefetch", list);
  const { cache, mnt } = ws.fresh();
  await eod("mount", new URL("bigprefetch/", slow.url).href, mnt, "--cache-dir", cache);
  try {
    await new Promise((r) => setTimeout(r, 300));
    const t0 = performance.now();
    const a = await readInChild(path.join(mnt, "app/lib/a.so"), 30_000);
    const ms = performance.now() - t0;
    assert.equal(a.sha256, sha(fs.readFileSync(path.join(src, "app/lib/a.so"))));
    const s = await blobStats(cache);
    assert.ok(s.cachedBytes < (16 << 20), `the prefetch is still running (${s.cachedBytes} bytes cached)`);
    assert.ok(ms < 4000, `a 128 KiB demand read took ${ms.toFixed(0)} ms while 16 MiB were being prefetched at 2 MB/s`);
  } finally {
    await eod("umount", mnt, "--cache-dir", cache);
  }
});

test("--background-fetch fills the whole image at the capped rate while demand misses are served at once", { skip, timeout: 120_000 }, async () => {
  const { cache, mnt } = ws.fresh();
  const rate = 8_000_000;
  const t0 = performance.now();
  await eod("mount", new URL("plain/", fast.url).href, mnt, "--cache-dir", cache, "--background-fetch", "--background-rate", String(rate));
  try {
    const d0 = performance.now();
    const conf = await readInChild(path.join(mnt, "etc/conf49"), 30_000);
    const demandMs = performance.now() - d0;
    assert.equal(conf.sha256, sha(fs.readFileSync(path.join(src, "etc/conf49"))));
    let s = await blobStats(cache);
    assert.ok(s.cachedBytes < s.totalBytes, "still filling when the demand read finished");
    assert.ok(demandMs < 1500, `a demand read during the background fill took ${demandMs.toFixed(0)} ms`);
    while (s.cachedBytes < s.totalBytes && performance.now() - t0 < 60_000) {
      await new Promise((r) => setTimeout(r, 100));
      s = await blobStats(cache);
    }
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(s.cachedBytes, s.totalBytes, "the whole image is local");
    assert.ok(seconds > (0.7 * s.totalBytes) / rate, `${s.totalBytes} bytes in ${seconds.toFixed(1)} s: the ${rate} B/s cap holds`);
    const fetches = s.fetches;
    const big = await readInChild(path.join(mnt, "data/big.bin"));
    assert.equal(big.sha256, sha(fs.readFileSync(path.join(src, "data/big.bin"))));
    assert.equal((await blobStats(cache)).fetches, fetches, "nothing left to fetch");
  } finally {
    await eod("umount", mnt, "--cache-dir", cache);
  }
});
