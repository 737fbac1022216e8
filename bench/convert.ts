// Convert benchmark: `eod convert` of the Debian rootfs corpus (bench/corpus.ts) as a one-layer image from a
// local registry (Debian's docker-registry on 127.0.0.1, started and stopped here), against what the
// reference tools need for the same result from the same layer file: `tar -xzf` + `mkfs.erofs --chunksize
// --blobdev` (same chunk size). And cold starts with the registry as the remote. A benchmark, not a test;
// needs root (mounts, chroot), docker-registry, mkfs.erofs and a kernel with fanotify pre-content events.
//
//   node bench/convert.ts [--runs=3] [--chunk=128K] [--parts=convert,cold]      (npm run bench:convert)
//
// convert: best of N, interleaved with the reference, page caches dropped before each. eod convert pulls the
//   layer blob (tar.gz) from the registry, builds (zstd by default; also --compress none, the reference's
//   form) and pushes the image to a new repository each run (so every blob is uploaded); the reference
//   extracts the same tar.gz with GNU tar (xattrs kept) and runs mkfs.erofs on the tree. mkfs.erofs stores a
//   --blobdev's chunks uncompressed (EROFS compresses no chunked file), so the ratio held to the target is
//   --compress none's (like with like); zstd's is reported beside it.
// cold: the converted image (defaults: 128 KiB chunks, zstd, inline 1 KiB) behind a proxy that throttles the
//   registry to 20 MB/s and adds 20 ms per request (bench:lazy's link): lazy = `eod mount <ref>` + `chroot
//   <mnt> python3 -c 'import json'`, fresh cache each run (best of N); full = `eod pull <ref>` into a fresh
//   cache + the same mount and chroot (best of N, as lazy); the same lazy cold start from `eod serve` of the same image
//   directory behind the same proxy, for comparison with bench:lazy (and to see what the registry adds).
// Results are printed and written to bench/results/convert-<UTC timestamp>.json.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { debianCorpus } from "./corpus.ts";
import { corpusLayer, pushCorpusImage } from "./lib/corpus-image.ts";
import { option, runsOption } from "./lib/args.ts";
import { COLD_CMD } from "./lib/cold-start.ts";
import { EOD, NODE, REPO as repo } from "./lib/paths.ts";
import { writeResults } from "./lib/results.ts";
import { startServer } from "./lib/serve.ts";
import { throttledProxy } from "./lib/throttled-proxy.ts";
import { dropCaches } from "./lib/system.ts";
import { startRegistry, type RunningRegistry } from "../test/helpers/registry.ts";
import { kernelSupportsPreContent } from "../src/sys/fanotify.ts";

const RUNS = runsOption();
const CHUNK = option("chunk", "128K");
const CHUNK_BYTES = Number(/^(\d+)K$/i.exec(CHUNK)?.[1] ?? NaN) * 1024 || Number(CHUNK);
const PARTS = option("parts", "convert,cold").split(",");

interface Result { code: number | null; stdout: string; stderr: string; seconds: number; cpuSeconds: number; otherCpuSeconds: number }

/** Busy CPU seconds of the whole machine so far (/proc/stat: all but idle and iowait; USER_HZ = 100). */
function machineBusy(): number {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return (f.reduce((a, b) => a + b, 0) - f[3] - (f[4] ?? 0)) / 100;
}

/** CPU seconds of a process (the registry: its work for our pushes is ours, not foreign load). */
function processCpu(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}
let registryPid: number | undefined;

/**
 * Runs a command; with its wall time, the CPU time it and its children used (GNU time), and what the rest of
 * the machine used meanwhile (other processes on a shared machine skew timings: reported, not hidden).
 */
function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Result> {
  const timeFile = path.join(os.tmpdir(), `eod-bench-time-${process.pid}`);
  const busy0 = machineBusy();
  const reg0 = processCpu(registryPid);
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn("/usr/bin/time", ["-f", "%U %S", "-o", timeFile, cmd, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => { stdout += c; });
    child.stderr.on("data", (c: Buffer) => { stderr = (stderr + c).slice(-8192); });
    child.on("close", (code) => {
      const seconds = (performance.now() - t0) / 1000;
      let cpuSeconds = 0;
      try { cpuSeconds = fs.readFileSync(timeFile, "utf8").trim().split("\n").at(-1)!.split(" ").map(Number).reduce((a, b) => a + b, 0); } catch { /* no time output */ }
      fs.rmSync(timeFile, { force: true });
      const otherCpuSeconds = Math.max(0, machineBusy() - busy0 - cpuSeconds - (processCpu(registryPid) - reg0));
      resolve({ code, stdout, stderr, seconds, cpuSeconds, otherCpuSeconds });
    });
  });
}

async function ok(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Result> {
  const r = await run(cmd, args, env);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
  return r;
}

const eod = (args: string[]) => ok(NODE, [EOD, ...args], { DOCKER_CONFIG: path.join(os.tmpdir(), "eod-bench-no-docker-config") });

/** Kills what serves `cache` by pid: its holder first (or it starts a new daemon), then the daemon. */
function killDaemon(cache: string): void {
  for (const f of ["holder.pid", "daemon.pid"]) {
    try {
      const pid = Number(fs.readFileSync(path.join(cache, f), "utf8"));
      // Only if that pid is still an eod daemon of this cache (a stale pid file may name another process now).
      if (pid > 1 && fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(cache)) process.kill(pid, "SIGKILL");
    } catch { /* none */ }
  }
}

function unmountAll(root: string): void {
  const mounts = fs.readFileSync("/proc/self/mounts", "utf8").split("\n").map((l) => l.split(" ")[1]).filter((m) => m?.startsWith(root)).reverse();
  for (const m of mounts) spawnSync("umount", ["-l", m]);
}

const best = (v: number[]) => Math.min(...v);

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error("needs root");
  const corpus = await debianCorpus();
  const layer = await corpusLayer(corpus);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-bench-convert-"));
  const reg = await startRegistry();
  registryPid = reg.pid;
  const result: Record<string, unknown> = {
    date: new Date().toISOString(), commit: spawnSync("git", ["-C", repo, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).stdout.trim(),
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), kernel: os.release(), node: process.version },
    corpus, layer: { bytes: layer.size, diffId: layer.diffId }, chunk: CHUNK, runs: RUNS,
  };
  let ref = "";
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    ref = await pushCorpusImage(reg.host, "bench/debian", "v1", layer);
    if (PARTS.includes("convert")) result.convert = await convertPart(ref, reg, layer.file, work);
    if (PARTS.includes("cold")) {
      if (!kernelSupportsPreContent().ok) throw new Error("cold starts need fanotify pre-content events (Linux 6.14+)");
      result.cold = await coldPart(ref, reg, work, cleanups);
    }
  } finally {
    for (const c of cleanups.reverse()) await c();
    unmountAll(work);
    await reg.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
  const out = writeResults("convert", result);
  console.log(`results: ${path.relative(repo, out)}`);
  const ratio = (result.convert as { ratioNone?: number } | undefined)?.ratioNone;
  return ratio !== undefined && ratio > 1 ? 1 : 0;
}

async function convertPart(ref: string, reg: RunningRegistry, layerFile: string, work: string) {
  const times: Record<string, number[]> = { convert: [], convertNone: [], tar: [], mkfs: [], reference: [] };
  const cpu: Record<string, number[]> = { convert: [], convertNone: [], reference: [] };
  const foreign: number[] = []; // CPU seconds other processes used during each run's four commands
  let summary: { build: { manifest: { blobs: Array<{ remote: { size: number } }>; bootstrap: { size: number } } }; seconds: { pull: number; push: number } } | null = null;
  for (let i = 0; i < RUNS; i++) {
    dropCaches();
    const c = await eod(["convert", ref, `${reg.host}/bench/conv-${i}:v1`, "--chunk-size", CHUNK, "--json"]);
    times.convert.push(c.seconds);
    summary = JSON.parse(c.stdout);
    dropCaches();
    const n = await eod(["convert", ref, `${reg.host}/bench/conv-none-${i}:v1`, "--chunk-size", CHUNK, "--compress", "none", "--json"]);
    times.convertNone.push(n.seconds);
    dropCaches();
    const tree = path.join(work, "tree");
    fs.mkdirSync(tree);
    const t = await ok("tar", ["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpzf", layerFile, "-C", tree]);
    const m = await ok("mkfs.erofs", [`--chunksize=${CHUNK_BYTES}`, `--blobdev=${path.join(work, "blob")}`, path.join(work, "boot.erofs"), tree]);
    times.tar.push(t.seconds);
    times.mkfs.push(m.seconds);
    times.reference.push(t.seconds + m.seconds);
    fs.rmSync(tree, { recursive: true, force: true });
    fs.rmSync(path.join(work, "blob"), { force: true });
    fs.rmSync(path.join(work, "boot.erofs"), { force: true });
    cpu.convert.push(c.cpuSeconds);
    cpu.convertNone.push(n.cpuSeconds);
    cpu.reference.push(t.cpuSeconds + m.cpuSeconds);
    foreign.push(c.otherCpuSeconds + n.otherCpuSeconds + t.otherCpuSeconds + m.otherCpuSeconds);
    process.stderr.write(`convert run ${i + 1}: eod ${c.seconds.toFixed(2)} s (none ${n.seconds.toFixed(2)} s), tar ${t.seconds.toFixed(2)} + mkfs ${m.seconds.toFixed(2)} s; other processes used ${foreign.at(-1)!.toFixed(1)} CPU s meanwhile\n`);
  }
  const r = {
    seconds: Object.fromEntries(Object.entries(times).map(([k, v]) => [k, best(v)])),
    all: times,
    cpuSeconds: cpu,
    foreignCpuSeconds: foreign,
    ratio: best(times.convert) / best(times.reference),
    ratioNone: best(times.convertNone) / best(times.reference),
    lastRun: summary ? { pullAndBuild: summary.seconds.pull, push: summary.seconds.push, blobBytes: summary.build.manifest.blobs.reduce((n, b) => n + b.remote.size, 0), bootstrapBytes: summary.build.manifest.bootstrap.size } : null,
  };
  console.log(`convert (best of ${RUNS}): eod convert ${r.seconds.convert.toFixed(2)} s (zstd), ${r.seconds.convertNone.toFixed(2)} s (--compress none); tar -xzf + mkfs.erofs --chunksize=${CHUNK_BYTES} --blobdev ${r.seconds.reference.toFixed(2)} s (tar ${r.seconds.tar.toFixed(2)}, mkfs ${r.seconds.mkfs.toFixed(2)}); ratio ${r.ratioNone.toFixed(2)} with --compress none, target <= 1.0 (zstd: ${r.ratio.toFixed(2)})`);
  return r;
}

async function coldPart(ref: string, reg: RunningRegistry, work: string, cleanups: Array<() => Promise<void> | void>) {
  const imageDir = path.join(work, "image");
  await eod(["convert", ref, `${reg.host}/bench/cold:v1`, "-o", imageDir]);
  const imageBytes = fs.readdirSync(imageDir, { recursive: true }).map((f) => path.join(imageDir, String(f))).filter((f) => fs.statSync(f).isFile()).reduce((n, f) => n + fs.statSync(f).size, 0);
  const proxy = await throttledProxy(reg.host);
  cleanups.push(() => proxy.close());
  let k = 0;
  const coldStart = async (source: string, bytes: () => number, reset: () => void) => {
    const cache = path.join(work, `cache-${k}`);
    const mnt = path.join(work, `mnt-${k++}`);
    fs.mkdirSync(mnt);
    dropCaches();
    reset();
    try {
      const t0 = performance.now();
      await eod(["mount", source, mnt, "--cache-dir", cache, "--frontend", "fanotify"]);
      const mounted = performance.now();
      await ok("chroot", [mnt, ...COLD_CMD]);
      const s = { seconds: (performance.now() - t0) / 1000, mountSeconds: (mounted - t0) / 1000, bytes: bytes() };
      await eod(["umount", mnt, "--cache-dir", cache]);
      return s;
    } finally {
      unmountAll(mnt);
      killDaemon(cache);
      fs.rmSync(cache, { recursive: true, force: true });
    }
  };
  const lazy = [];
  for (let i = 0; i < RUNS; i++) lazy.push(await coldStart(`${proxy.host}/bench/cold:v1`, proxy.bytes, proxy.reset));
  // full: everything pulled into a fresh cache, then the same mount and command; best of N as lazy.
  const fullRuns: Array<{ seconds: number; bytes: number }> = [];
  for (let i = 0; i < RUNS; i++) {
    const cache = path.join(work, `cache-full-${i}`);
    const mnt = path.join(work, `mnt-full-${i}`);
    fs.mkdirSync(mnt);
    dropCaches();
    proxy.reset();
    try {
      const t0 = performance.now();
      await eod(["pull", `${proxy.host}/bench/cold:v1`, "--cache-dir", cache, "--frontend", "fanotify"]);
      await eod(["mount", `${proxy.host}/bench/cold:v1`, mnt, "--cache-dir", cache, "--frontend", "fanotify"]);
      await ok("chroot", [mnt, ...COLD_CMD]);
      fullRuns.push({ seconds: (performance.now() - t0) / 1000, bytes: proxy.bytes() });
      await eod(["umount", mnt, "--cache-dir", cache]);
    } finally {
      unmountAll(mnt);
      killDaemon(cache);
      fs.rmSync(cache, { recursive: true, force: true });
    }
  }
  const full = fullRuns.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  // The same image directory from eod serve behind the same proxy (the same link), for comparison with bench:lazy.
  const serve = await startServer(imageDir);
  cleanups.push(() => serve.stop());
  const serveProxy = await throttledProxy(new URL(serve.url).host);
  cleanups.push(() => serveProxy.close());
  const served = [];
  for (let i = 0; i < RUNS; i++) served.push(await coldStart(`http://${serveProxy.host}/`, serveProxy.bytes, serveProxy.reset));
  const bestLazy = lazy.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  const r = {
    imageBytes, lazy: bestLazy, lazyAll: lazy, full, servedLazy: served.reduce((a, b) => (b.seconds < a.seconds ? b : a)),
    bytesRatio: bestLazy.bytes / imageBytes, timeRatio: bestLazy.seconds / full.seconds,
  };
  console.log(`cold start from the registry (20 MB/s, 20 ms): lazy ${r.lazy.seconds.toFixed(2)} s (mount ${r.lazy.mountSeconds.toFixed(2)} s), ${(r.lazy.bytes / 1e6).toFixed(1)} MB; full (eod pull + mount + run) ${full.seconds.toFixed(2)} s, ${(full.bytes / 1e6).toFixed(1)} MB; image ${(imageBytes / 1e6).toFixed(1)} MB; bytes ratio ${r.bytesRatio.toFixed(3)}, time ratio ${r.timeRatio.toFixed(2)}; same image from eod serve: lazy ${r.servedLazy.seconds.toFixed(2)} s (mount ${r.servedLazy.mountSeconds.toFixed(2)} s), ${(r.servedLazy.bytes / 1e6).toFixed(1)} MB`);
  return r;
}

main().then((code) => { process.exitCode = code; }, (err: unknown) => { console.error(err); process.exitCode = 1; });
