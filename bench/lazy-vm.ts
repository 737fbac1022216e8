// Lazy-mount benchmark with the fscache frontend, inside the kernel lab's VM (shared/kernel-lab/run-vm: Linux 6.12
// with cachefiles on-demand; the host kernel lacks it). Under qemu's TCG absolute times are meaningless (the guest
// runs several times slower than the host), so every number is a ratio of two measurements in the same VM run.
// A benchmark, not a test; needs root on the host only for the corpus (bench/corpus.ts builds it once).
//
//   node bench/lazy-vm.ts [--runs=3] [--parts=a,b] [--warm-ra=KB]            (npm run bench:lazy-vm)
//
// --warm-ra=KB: part (b) runs once more with read_ahead_kb = KB on every erofs bdi (/sys/class/bdi/erofs-*),
// both mounts alike, to see how much of the fscache ÷ local gap is readahead.
//
// The host builds one image of the Debian corpus (bench/corpus.ts) with the default options of `eod build`,
// boots one VM (run-vm, 4 GiB, 2 GiB ext4 scratch) and runs this file in it with --guest. In the guest:
//  (a) cold start, the workload of `bench:lazy`'s part (a), behind `eod serve --rate 20000000 --latency 20`:
//      lazy = `eod mount --frontend fscache` (fresh cache, fresh daemon) + `chroot <mnt> python3 -c 'import json'`
//      (best of N); full = GET every file of the image (manifest first, then the others concurrently), `eod
//      unpack`, a daemon-less mount(2) of the unpacked image, the same chroot (best of N). Ratios: server bytes
//      (lazy) ÷ image bytes, and lazy time ÷ full time.
//  (b) warm sequential read: `tar -cf - . | cat > /dev/null` of the whole tree through an fscache mount whose cache
//      holds every byte (a first full read filled it), vs the same on the daemon-less mount of the unpacked image;
//      the unpacked files and the fscache cache files are on the same ext4 scratch fs; page caches dropped before
//      each timed run, the two alternated, best of N each. Ratio: throughput fscache ÷ local (target ≥ 0.95: hits
//      never leave the kernel). The tar streams of both mounts are also compared (sha256) once, untimed.
//      Where a gap comes from, measured the same way: metadata alone (`find -ls`) and the data of the files of at
//      least 1 MiB alone (`cat`), and, once unmounted, the extents of the cache files and of the unpacked blobs.
// Results: printed, and written to bench/results/lazy-vm-<UTC timestamp>.json. Exit status non-zero if a run
// failed or the warm-read target was missed.
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { debianCorpus } from "./corpus.ts";
import { option, runsOption } from "./lib/args.ts";
import { COLD_CMD, LATENCY_MS, RATE, runColdCommand } from "./lib/cold-start.ts";
import { dirBytes } from "./lib/dir-bytes.ts";
import { downloadImage } from "./lib/download.ts";
import { mountUnpacked } from "./lib/local-mount.ts";
import { gitState, writeResults } from "./lib/results.ts";
import { eodOk as eodMustSucceed, run } from "./lib/run.ts";
import { resetStats, serverStats, startServer } from "./lib/serve.ts";
import { fastestOk } from "./lib/stats.ts";
import { dropCaches, progressLine as progress, sleep } from "./lib/system.ts";
import { umount } from "../src/sys/mount.ts";
import { runInVm, vmAvailable } from "../test/helpers/vm.ts";

const WARM_TARGET = 0.95;
const RUNS = runsOption();
const SCRATCH = "/var/cache/fscache"; // the guest's ext4 scratch fs (cachefiles refuses tmpfs)
const PARTS = new Set(option("parts", "a,b").split(",").map((p) => p.trim()));
const raOption = option("warm-ra", "");
const WARM_RA = raOption ? Math.max(4, Number(raOption) | 0) : null;

/** `eod <args>` that must succeed, once more if V8 died while starting (under TCG now and then: the emulator, not eod). */
const eodOk = (args: string[], timeoutMs = 600_000): Promise<string> => eodMustSucceed(args, timeoutMs, (r) => r.stderr.includes("# Fatal error in"));

// ------------------------------------------------------------------------------------------------ guest

/** Thrown to skip the rest of the guest's parts (--parts). */
class Skip extends Error {}

/** Waits until the fscache daemon and its holder of `cache` are gone (/dev/cachefiles takes one cache at a time). */
async function holderGone(cache: string): Promise<void> {
  for (let i = 0; i < 600 && fs.existsSync(path.join(cache, "holder.pid")); i++) await sleep(100);
  if (fs.existsSync(path.join(cache, "holder.pid"))) throw new Error(`the holder of ${cache} did not exit`);
  await sleep(300);
}

/** The settings of the guest's `eod mount`s (docs/configuration.md). */
const GUEST_CONFIG = "/var/tmp/eod-bench.json";

async function lazyMount(url: string, mnt: string, cache: string): Promise<void> {
  fs.mkdirSync(mnt, { recursive: true });
  try {
    try {
      await eodOk(["mount", url, mnt, "--cache-dir", cache, "--frontend", "fscache", "--config", GUEST_CONFIG], 300_000);
    } catch (err) {
      // Under TCG, V8 now and then crashes while starting (SIGSEGV, "Fatal error"): the emulator. Once more.
      if (!/did not start/.test((err as Error).message)) throw err;
      progress(`!! ${(err as Error).message.split("\n")[0]}; trying once more`);
      await holderGone(cache);
      await eodOk(["mount", url, mnt, "--cache-dir", cache, "--frontend", "fscache", "--config", GUEST_CONFIG], 300_000);
    }
  } catch (err) {
    const log = path.join(cache, "daemon.log");
    throw new Error(`${(err as Error).message}\ndaemon.log: ${fs.existsSync(log) ? fs.readFileSync(log, "utf8").slice(-2000) : "-"}`);
  }
}

async function lazyUnmount(mnt: string, cache: string): Promise<void> {
  await eodOk(["umount", mnt, "--cache-dir", cache], 120_000);
  await holderGone(cache);
}

/** `eod unpack` + a daemon-less mount(2) of the unpacked image (its blobs as device= files). */
async function localMount(img: string, blobsDir: string, mnt: string): Promise<void> {
  fs.mkdirSync(mnt, { recursive: true });
  await mountUnpacked(await eodOk(["unpack", img, "--blobs-to", blobsDir]), mnt);
}

/** Sequential read of the whole tree, timed: tar to a pipe (tar skips reading files when writing to /dev/null). */
async function tarRead(mnt: string): Promise<number> {
  const r = await run("sh", ["-c", `tar -cf - -C '${mnt}' . | cat > /dev/null`], { timeoutMs: 900_000 });
  if (r.code !== 0) throw new Error(`tar ${mnt}: exit ${r.code} ${r.stderr.trim().slice(-500)}`);
  return r.seconds;
}

/** Metadata only, timed: every inode and directory of the tree (`find -ls`), no file data. */
async function metaWalk(mnt: string): Promise<number> {
  const r = await run("sh", ["-c", `find '${mnt}' -ls > /dev/null`], { timeoutMs: 900_000 });
  if (r.code !== 0) throw new Error(`find ${mnt}: exit ${r.code} ${r.stderr.trim().slice(-500)}`);
  return r.seconds;
}

/** Data of the given files (relative paths), timed: one `cat` to a pipe, few requests per file. */
async function catRead(mnt: string, files: string[]): Promise<number> {
  const list = path.join(os.tmpdir(), "big-files.txt");
  fs.writeFileSync(list, files.map((f) => path.join(mnt, f)).join("\0"));
  const r = await run("sh", ["-c", `xargs -0 cat < '${list}' | cat > /dev/null`], { timeoutMs: 900_000 });
  if (r.code !== 0) throw new Error(`cat ${mnt}: exit ${r.code} ${r.stderr.trim().slice(-500)}`);
  return r.seconds;
}

/** Regular files of at least `min` bytes under `root`, relative paths. */
function filesAtLeast(root: string, min: number): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else if (e.isFile() && fs.statSync(path.join(root, r)).size >= min) out.push(r);
    }
  };
  walk("");
  return out;
}

/** Extents of each regular file under `dir` (filefrag), by file name: how fragmented the data is on disk. */
function extentsOf(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && fs.statSync(p).size > 1 << 20) {
        const m = /: (\d+) extents? found/.exec(execFileSync("filefrag", [p]).toString());
        if (m) out[path.relative(dir, p).slice(0, 60)] = Number(m[1]);
      }
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}

/** sha256 of the tar stream of the tree (untimed correctness check: both mounts must give the same bytes). */
async function tarHash(mnt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("tar", ["-cf", "-", "--sort=name", "-C", mnt, "."], { stdio: ["ignore", "pipe", "inherit"] });
    const h = createHash("sha256");
    child.stdout.on("data", (c: Buffer) => h.update(c));
    child.on("close", (code) => (code === 0 ? resolve(h.digest("hex")) : reject(new Error(`tar ${mnt}: exit ${code}`))));
  });
}

async function guest(imageShared: string): Promise<void> {
  // Under TCG a daemon (holder + daemon: two Node starts) takes far longer than `eod mount`'s default 30 s wait.
  fs.writeFileSync(GUEST_CONFIG, JSON.stringify({ daemon: { start_timeout_ms: 180_000 } }));
  const report: Record<string, unknown> = { kernel: os.release(), cpus: os.cpus().length, node: process.version, runs: RUNS };
  const failures: string[] = [];
  await eodOk(["--help"]); // fill Node's compile cache once
  // The image in guest RAM (tmpfs), not read over 9p while timing.
  const images = "/var/tmp/images";
  const img = path.join(images, "debian");
  fs.cpSync(imageShared, img, { recursive: true });
  const imageBytes = dirBytes(img);
  report.imageBytes = imageBytes;
  const slow = await startServer(images, ["--rate", String(RATE), "--latency", String(LATENCY_MS)]);
  const fast = await startServer(images, []);
  const mounted: string[] = [];
  try {
    // ---------------------------------------------------------------- (a) cold start
    const lazyRuns: Array<{ seconds: number; mountS: number; runS: number; bytes: number; requests: number; ok: boolean }> = [];
    const fullRuns: Array<{ seconds: number; downloadS: number; unpackMountS: number; runS: number; bytes: number; ok: boolean }> = [];
    report.coldStart = { lazy: lazyRuns, full: fullRuns }; // filled as runs complete: a later failure keeps them
    for (let i = 0; i < (PARTS.has("a") ? RUNS : 0); i++) {
      progress(`(a) lazy cold start, fscache, run ${i + 1}/${RUNS}`);
      const cache = path.join(SCRATCH, `cold-${i}`);
      const mnt = `/mnt/cold-${i}`;
      dropCaches();
      await resetStats(slow.url);
      const t0 = process.hrtime.bigint();
      await lazyMount(new URL("debian/", slow.url).href, mnt, cache);
      const mountS = Number(process.hrtime.bigint() - t0) / 1e9;
      const r = await runColdCommand(mnt, 600_000);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const st = await serverStats(slow.url);
      if (r.code !== 0) failures.push(`(a) lazy run ${i + 1}: chroot exit ${r.code}: ${r.stderr.slice(-300)}`);
      lazyRuns.push({ seconds, mountS, runS: r.seconds, bytes: st.bytes, requests: st.requests, ok: r.code === 0 });
      await lazyUnmount(mnt, cache);
      fs.rmSync(cache, { recursive: true, force: true });
    }
    for (let i = 0; i < (PARTS.has("a") ? RUNS : 0); i++) {
      progress(`(a) full download + unpack + mount + run, run ${i + 1}/${RUNS}`);
      const dl = path.join(SCRATCH, "full-dl");
      const blobs = path.join(SCRATCH, "full-blobs");
      const mnt = "/mnt/full";
      dropCaches();
      await resetStats(slow.url);
      const t0 = process.hrtime.bigint();
      await downloadImage(new URL("debian/", slow.url).href, dl);
      const t1 = process.hrtime.bigint();
      await localMount(dl, blobs, mnt);
      mounted.push(mnt);
      const t2 = process.hrtime.bigint();
      const r = await runColdCommand(mnt, 600_000);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const st = await serverStats(slow.url);
      if (r.code !== 0) failures.push(`(a) full run ${i + 1}: chroot exit ${r.code}: ${r.stderr.slice(-300)}`);
      fullRuns.push({ seconds, downloadS: Number(t1 - t0) / 1e9, unpackMountS: Number(t2 - t1) / 1e9, runS: r.seconds, bytes: st.bytes, ok: r.code === 0 });
      umount(mnt);
      mounted.pop();
      fs.rmSync(dl, { recursive: true, force: true });
      if (i < RUNS - 1) fs.rmSync(blobs, { recursive: true, force: true }); // the last unpack stays for (b)
    }
    const bestLazy = fastestOk(lazyRuns, (x) => x.seconds);
    const bestFull = fastestOk(fullRuns, (x) => x.seconds);
    report.coldStart = {
      lazy: lazyRuns, full: fullRuns,
      bytesRatio: bestLazy ? bestLazy.bytes / imageBytes : null,
      timeRatio: bestLazy && bestFull ? bestLazy.seconds / bestFull.seconds : null,
    };

    // ---------------------------------------------------------------- (b) warm sequential read
    if (!PARTS.has("b")) throw new Skip();
    progress("(b) warm: filling an fscache cache by one full read");
    const warmCache = path.join(SCRATCH, "warm");
    const fsMnt = "/mnt/warm-fscache";
    const localMnt = "/mnt/warm-local";
    await lazyMount(new URL("debian/", fast.url).href, fsMnt, warmCache);
    mounted.push(fsMnt);
    const fillS = await tarRead(fsMnt);
    const dl = path.join(SCRATCH, "local-img");
    await downloadImage(new URL("debian/", fast.url).href, dl);
    const blobs = path.join(SCRATCH, "full-blobs");
    fs.rmSync(blobs, { recursive: true, force: true });
    await localMount(dl, blobs, localMnt);
    mounted.push(localMnt);
    progress("(b) warm: comparing the trees (tar streams)");
    const [hf, hl] = [await tarHash(fsMnt), await tarHash(localMnt)];
    if (hf !== hl) failures.push(`(b) the fscache mount and the local mount give different tar streams`);
    const before = JSON.parse(await eodOk(["status", "--cache-dir", warmCache, "--json"])) as { frontend: { reads: number } };
    const fscacheS: number[] = [];
    const localS: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      progress(`(b) warm sequential read, run ${i + 1}/${RUNS}`);
      dropCaches();
      fscacheS.push(await tarRead(fsMnt));
      dropCaches();
      localS.push(await tarRead(localMnt));
    }
    const after = JSON.parse(await eodOk(["status", "--cache-dir", warmCache, "--json"])) as { frontend: { reads: number } };
    const treeBytes = Number(execFileSync("du", ["-sb", "--apparent-size", localMnt]).toString().split("\t")[0]);
    const ratio = Math.min(...localS) / Math.min(...fscacheS);
    if (ratio < WARM_TARGET) failures.push(`(b) warm read fscache ÷ local ${ratio.toFixed(3)} < ${WARM_TARGET}`);
    // Where the gap is: metadata alone (the bootstrap: erofs reads it block by block through fscache), and the
    // data of large files alone (few requests per MB: the per-byte cost of the path).
    const big = filesAtLeast(localMnt, 1 << 20);
    const metaFscacheS: number[] = [];
    const metaLocalS: number[] = [];
    const bigFscacheS: number[] = [];
    const bigLocalS: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      progress(`(b) metadata walk and large files, run ${i + 1}/${RUNS}`);
      dropCaches();
      metaFscacheS.push(await metaWalk(fsMnt));
      dropCaches();
      metaLocalS.push(await metaWalk(localMnt));
      dropCaches();
      bigFscacheS.push(await catRead(fsMnt, big));
      dropCaches();
      bigLocalS.push(await catRead(localMnt, big));
    }
    const bigBytes = big.reduce((n, f) => n + fs.statSync(path.join(localMnt, f)).size, 0);
    const breakdown = {
      metaWalk: { fscacheS: metaFscacheS, localS: metaLocalS, ratio: Math.min(...metaLocalS) / Math.min(...metaFscacheS) },
      largeFiles: { files: big.length, bytes: bigBytes, fscacheS: bigFscacheS, localS: bigLocalS, throughputRatio: Math.min(...bigLocalS) / Math.min(...bigFscacheS) },
    };
    let readahead: Record<string, unknown> | null = null;
    if (WARM_RA !== null) {
      const bdis = fs.readdirSync("/sys/class/bdi").filter((b) => b.startsWith("erofs-"));
      const old = Object.fromEntries(bdis.map((b) => [b, Number(fs.readFileSync(`/sys/class/bdi/${b}/read_ahead_kb`, "utf8"))]));
      for (const b of bdis) fs.writeFileSync(`/sys/class/bdi/${b}/read_ahead_kb`, String(WARM_RA));
      const raFscacheS: number[] = [];
      const raLocalS: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        progress(`(b) warm sequential read, read_ahead_kb ${WARM_RA}, run ${i + 1}/${RUNS}`);
        dropCaches();
        raFscacheS.push(await tarRead(fsMnt));
        dropCaches();
        raLocalS.push(await tarRead(localMnt));
      }
      for (const b of bdis) fs.writeFileSync(`/sys/class/bdi/${b}/read_ahead_kb`, String(old[b]));
      readahead = { readAheadKb: WARM_RA, defaults: old, allBdis: fs.readdirSync("/sys/class/bdi"), fscacheS: raFscacheS, localS: raLocalS, throughputRatio: Math.min(...raLocalS) / Math.min(...raFscacheS) };
    }
    report.warmRead = {
      treeBytes, fillS, fscacheS, localS, sameBytes: hf === hl, readahead, breakdown,
      readsDuringTimedRuns: after.frontend.reads - before.frontend.reads,
      throughputRatio: ratio,
    };
  } catch (err) {
    if (!(err instanceof Skip)) failures.push(`error: ${(err as Error).stack ?? err}`);
  } finally {
    for (const m of mounted.reverse()) {
      try {
        if (m === "/mnt/warm-fscache") await eodOk(["umount", m, "--cache-dir", path.join(SCRATCH, "warm")]);
        else umount(m);
      } catch (e) { progress(`!! umount ${m}: ${(e as Error).message}`); }
    }
    slow.stop();
    fast.stop();
  }
  // Fragmentation of the data on the scratch fs: cache files (linked by cachefiles once unmounted) vs unpacked blobs.
  if (report.warmRead) {
    await holderGone(path.join(SCRATCH, "warm"));
    (report.warmRead as Record<string, unknown>).extents = { fscache: extentsOf(path.join(SCRATCH, "warm/fscache/cache")), local: extentsOf(path.join(SCRATCH, "full-blobs")) };
  }
  report.failures = failures;
  console.log(JSON.stringify(report));
}

// ------------------------------------------------------------------------------------------------ host

async function host(): Promise<number> {
  const vm = vmAvailable();
  if (!vm.ok) { console.error(`bench/lazy-vm.ts needs the kernel lab: ${vm.why}`); return 1; }
  const corpus = await debianCorpus();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "lazy-vm-bench-"));
  try {
    const img = path.join(tmp, "debian");
    progress(`building the image of ${corpus}`);
    const t0 = process.hrtime.bigint();
    await eodOk(["build", corpus, "-o", img]);
    const buildS = Number(process.hrtime.bigint() - t0) / 1e9;
    const manifest = JSON.parse(fs.readFileSync(path.join(img, "manifest.json"), "utf8")) as { chunkSize: number; compression: string; blobs: Array<{ kernelSize: number }> };
    progress("booting the VM (TCG: this takes a while)");
    const res = await runInVm(import.meta.filename, ["--guest", img, `--runs=${RUNS}`, `--parts=${[...PARTS].join(",")}`, ...(WARM_RA !== null ? [`--warm-ra=${WARM_RA}`] : [])], { share: [tmp], timeoutS: 3600, memMb: 4096, scratchMb: 2048 });
    process.stderr.write(res.stderr.split("\n").filter((l) => l.startsWith("[")).join("\n") + "\n");
    const last = res.stdout.trim().split("\n").at(-1) ?? "";
    let g: Record<string, any>;
    try { g = JSON.parse(last); } catch { console.error(`the guest printed no report (status ${res.status}):\n${res.stderr.slice(-4000)}\n${res.stdout.slice(-2000)}`); return 1; }
    const outFile = writeResults("lazy-vm", {
      bench: "lazy-vm", date: new Date().toISOString(), ...gitState(),
      host: { kernel: os.release(), cpus: os.cpus().length, node: process.version },
      vm: { seconds: res.seconds, status: res.status, accel: "see run-vm (TCG unless kvm_intel/kvm_amd)", memMb: 4096, scratchMb: 2048 },
      method: {
        coldCommand: COLD_CMD, rate: RATE, latencyMs: LATENCY_MS, runs: RUNS,
        warmRead: "tar -cf - -C <mnt> . | cat > /dev/null, page caches dropped, fscache (cache complete) and local alternated, best of N each",
        warmTarget: WARM_TARGET,
      },
      corpus, image: { buildS, chunkSize: manifest.chunkSize, compression: manifest.compression, kernelBytes: manifest.blobs.reduce((n, b) => n + b.kernelSize, 0) },
      guest: g,
    });
    const cold = g.coldStart ?? {};
    const warm = g.warmRead ?? {};
    const best = (v: number[] | undefined) => (v && v.length ? Math.min(...v).toFixed(2) : "-");
    console.log(`lazy-vm: Linux ${g.kernel} under qemu (${g.cpus} vCPUs), image ${(g.imageBytes / 1e6).toFixed(1)} MB, chunk ${manifest.chunkSize}, VM run ${res.seconds.toFixed(0)} s`);
    console.log(`(a) cold start (${COLD_CMD.join(" ")}), server ${RATE / 1e6} MB/s + ${LATENCY_MS} ms:`);
    for (const r of cold.lazy ?? []) console.log(`    lazy fscache  ${r.seconds.toFixed(2)} s  ${(r.bytes / 1e6).toFixed(2)} MB  ${r.requests} requests  (eod mount ${r.mountS.toFixed(2)}, run ${r.runS.toFixed(2)})${r.ok ? "" : "  FAILED"}`);
    for (const r of cold.full ?? []) console.log(`    full          ${r.seconds.toFixed(2)} s  ${(r.bytes / 1e6).toFixed(2)} MB  (download ${r.downloadS.toFixed(2)}, unpack+mount ${r.unpackMountS.toFixed(2)}, run ${r.runS.toFixed(2)})${r.ok ? "" : "  FAILED"}`);
    console.log(`    bytes lazy ÷ image ${cold.bytesRatio?.toFixed(3) ?? "-"}, time lazy ÷ full ${cold.timeRatio?.toFixed(3) ?? "-"}`);
    console.log(`(b) warm sequential read of ${((warm.treeBytes ?? 0) / 1e6).toFixed(1)} MB: fscache best ${best(warm.fscacheS)} s, local best ${best(warm.localS)} s, throughput fscache ÷ local ${warm.throughputRatio?.toFixed(3) ?? "-"} (target ≥ ${WARM_TARGET}); READs during the timed runs ${warm.readsDuringTimedRuns ?? "-"}; same bytes ${warm.sameBytes}`);
    const bd = warm.breakdown;
    if (bd) {
      console.log(`    metadata walk (find -ls): fscache best ${best(bd.metaWalk.fscacheS)} s, local best ${best(bd.metaWalk.localS)} s, ratio ${bd.metaWalk.ratio.toFixed(3)}`);
      console.log(`    large files (${bd.largeFiles.files} files ≥ 1 MiB, ${(bd.largeFiles.bytes / 1e6).toFixed(1)} MB, cat): fscache best ${best(bd.largeFiles.fscacheS)} s, local best ${best(bd.largeFiles.localS)} s, ratio ${bd.largeFiles.throughputRatio.toFixed(3)}`);
    }
    if (warm.extents) console.log(`    extents of the data files: fscache ${JSON.stringify(warm.extents.fscache)}, local ${JSON.stringify(warm.extents.local)}`);
    if (warm.readahead) console.log(`    with read_ahead_kb ${warm.readahead.readAheadKb} (defaults ${JSON.stringify(warm.readahead.defaults)}): fscache best ${best(warm.readahead.fscacheS)} s, local best ${best(warm.readahead.localS)} s, ratio ${warm.readahead.throughputRatio.toFixed(3)}`);
    console.log(`\nresults written to ${path.relative(process.cwd(), outFile)}`);
    const failures = (g.failures ?? []) as string[];
    if (res.status !== 0) failures.push(`the VM run ended with status ${res.status}`);
    if (failures.length) console.log(`\n${failures.length} failure(s):\n${failures.map((f) => `  - ${f}`).join("\n")}`);
    return failures.length ? 1 : 0;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--guest") {
  await guest(process.argv[3]!);
} else {
  process.exitCode = await host();
}
