// Many-blobs benchmark: one daemon serves 100 mounts over 1,000 blobs. A benchmark, not a test; needs root
// and a kernel with fanotify pre-content events (6.14+) and file-backed erofs (6.12+).
//
//   node bench/many-blobs.ts [--images=100] [--blobs=10] [--remote=dir|http]       (npm run bench:many)
//
// Builds `images` images of `blobs` layers each (one blob per layer, 16 KiB of random bytes per layer, so
// every blob is distinct), starts one daemon (`eod daemon`, another process), mounts every image through its
// control socket (directory remote, or `eod serve` on 127.0.0.1 for --remote=http), reads every file of every
// mount (so every blob takes a fill and its fanotify write fd), and reports the daemon's RSS (VmRSS, VmHWM)
// and open fds (/proc/<pid>/status, /proc/<pid>/fd) after the mounts, after the reads, and its CPU time over
// 5 s idle (the presence flusher runs once a second over every open blob). Then unmounts all and checks that
// the daemon exits. Results are printed and written to bench/results/many-blobs-<UTC timestamp>.json.
// Exit status is non-zero if a read was wrong or RSS went over 150 MB.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { buildFromLayers } from "../src/mkfs/layers/build-layers.ts";
import { callDaemon, daemonAlive, socketPathOf } from "../src/daemon/client.ts";
import { kernelSupportsPreContent } from "../src/sys/fanotify.ts";
import { MNT_DETACH, umount } from "../src/sys/mount.ts";
import { tarArchive } from "../test/helpers/tar-layer.ts";
import { option } from "./lib/args.ts";
import { EOD, REPO } from "./lib/paths.ts";
import { writeResults } from "./lib/results.ts";
import { startServer } from "./lib/serve.ts";

const IMAGES = Number(option("images", "100"));
const BLOBS = Number(option("blobs", "10"));
const REMOTE = option("remote", "dir");
const FILE_BYTES = 16 * 1024;
const RSS_LIMIT_MB = 150;

if (process.getuid?.() !== 0) throw new Error("bench:many needs root (mounts)");
const support = kernelSupportsPreContent();
if (!support.ok) throw new Error(`kernel lacks: ${support.missing.join("; ")}`);

const work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-bench-many-"));
const cache = path.join(work, "cache");
const children: ChildProcess[] = [];
let stopServer = (): void => {};
const mounted: string[] = [];
let daemonPid = 0;
let holderPidForCleanup = 0;

function cleanupAll(): void {
  for (const m of mounted.splice(0).reverse()) { try { umount(m, MNT_DETACH); } catch { /* gone */ } }
  for (const pid of [holderPidForCleanup, daemonPid]) if (pid) { try { process.kill(pid, "SIGKILL"); } catch { /* exited */ } }
  for (const c of children) c.kill("SIGKILL");
  stopServer();
  fs.rmSync(work, { recursive: true, force: true });
}
process.once("SIGINT", () => { cleanupAll(); process.exit(130); });
process.once("SIGTERM", () => { cleanupAll(); process.exit(143); });

interface ProcSample { rssMB: number; hwmMB: number; rssAnonMB: number; rssFileMB: number; fds: number; threads: number; fdKinds: Record<string, number> }
function sample(pid: number): ProcSample {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);
  const fdKinds: Record<string, number> = {};
  const fds = fs.readdirSync(`/proc/${pid}/fd`);
  for (const fd of fds) {
    let target = "?";
    try { target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { /* closed meanwhile */ }
    const kind = target.startsWith(cache) ? `cache:${path.basename(path.dirname(target))}` : target.startsWith(work) ? "images" : target.replace(/:\[?\d+\]?$/, "").replace(/\[\w+\]$/, "");
    fdKinds[kind] = (fdKinds[kind] ?? 0) + 1;
  }
  // VmRSS counts the node binary's text pages (RssFile, ~50 MB, shared with every node process); RssAnon is the daemon's own.
  return { rssMB: +(kb("VmRSS") / 1024).toFixed(1), hwmMB: +(kb("VmHWM") / 1024).toFixed(1), rssAnonMB: +(kb("RssAnon") / 1024).toFixed(1), rssFileMB: +(kb("RssFile") / 1024).toFixed(1), fds: fds.length, threads: kb("Threads"), fdKinds };
}
/** The daemon's memory as it sees it (GET /metrics on the control socket): V8 heap and Buffers, MB. */
function memory(sock: string): Promise<{ heapMB: number; externalMB: number }> {
  return new Promise((resolve, reject) => {
    http.get({ socketPath: sock, path: "/metrics" }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => { text += c; });
      res.on("end", () => {
        const v = (name: string) => +(Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? NaN) / 2 ** 20).toFixed(1);
        resolve({ heapMB: v("nodejs_heap_used_bytes"), externalMB: v("nodejs_external_memory_bytes") });
      });
    }).on("error", reject);
  });
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").slice(fs.readFileSync(`/proc/${pid}/stat`, "utf8").lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // fields 14 and 15, clock ticks (USER_HZ = 100)
}

const ms = (t0: number) => Math.round(performance.now() - t0);

try {
  // 1. Images: IMAGES × BLOBS layers, each adding one file of random bytes (so each layer is one new blob).
  let t0 = performance.now();
  const expected = new Map<string, Buffer>(); // mount-relative file → bytes
  const images: string[] = [];
  for (let i = 0; i < IMAGES; i++) {
    const layers = [];
    for (let k = 0; k < BLOBS; k++) {
      const data = randomBytes(FILE_BYTES);
      expected.set(`${i}/f${k}`, data);
      const tar = tarArchive([{ path: "d/", type: "dir" }, { path: `d/f${k}`, data }]);
      layers.push({ name: `image ${i} layer ${k}`, open: async function* () { yield tar; } });
    }
    const img = path.join(work, "images", `img${i}`);
    fs.mkdirSync(path.dirname(img), { recursive: true });
    const summary = await buildFromLayers(layers, img);
    if (summary.layers.filter((l) => l.blobId).length !== BLOBS) throw new Error(`image ${i}: expected ${BLOBS} blobs`);
    images.push(img);
  }
  const buildMs = ms(t0);
  console.log(`built ${IMAGES} images of ${BLOBS} blobs in ${buildMs} ms`);

  // 2. Remote: the image directories, or one `eod serve` of their parent over loopback HTTP.
  let sources = images;
  if (REMOTE === "http") {
    const srv = await startServer(path.join(work, "images"));
    stopServer = srv.stop;
    sources = images.map((_, i) => new URL(`img${i}/`, srv.url).href);
  }

  // 3. One daemon, in its own process (its RSS and fds are what we measure).
  const sock = socketPathOf(cache);
  fs.mkdirSync(cache, { recursive: true });
  const daemon = spawn(process.execPath, [EOD, "daemon", "--cache-dir", cache, "--frontend", "fanotify", "--log-file", path.join(cache, "daemon.log")], { stdio: "ignore" });
  const spawnedPid = daemon.pid!;
  daemonPid = spawnedPid;
  t0 = performance.now();
  while (!(await daemonAlive(sock))) {
    if (daemon.exitCode !== null) throw new Error(`daemon exited ${daemon.exitCode}`);
    if (performance.now() - t0 > 30_000) throw new Error("daemon did not start");
    await new Promise((r) => setTimeout(r, 20));
  }
  // `eod daemon` may be a holder process running the daemon as its child: measure the one that answers.
  daemonPid = (await callDaemon<{ pid: number }>(sock, "GET", "/status")).pid;
  const holderPid = daemonPid !== spawnedPid ? spawnedPid : 0;
  holderPidForCleanup = holderPid;
  const atStart = { ...sample(daemonPid), ...(await memory(sock)) };

  // 4. Mount all.
  t0 = performance.now();
  const mountMs: number[] = [];
  for (let i = 0; i < IMAGES; i++) {
    const mnt = path.join(work, "mnt", `m${i}`);
    fs.mkdirSync(mnt, { recursive: true });
    const t = performance.now();
    await callDaemon(sock, "POST", "/mounts", { source: sources[i], mountPoint: mnt });
    mountMs.push(performance.now() - t);
    mounted.push(mnt);
  }
  const mountAllMs = ms(t0);
  const afterMount = { ...sample(daemonPid), ...(await memory(sock)) };
  console.log(`mounted ${IMAGES} images in ${mountAllMs} ms; daemon ${JSON.stringify(afterMount)}`);

  // 5. Read every file of every mount (every blob gets a miss, a fill and a kept write fd).
  t0 = performance.now();
  let wrong = 0;
  for (const [rel, data] of expected) {
    const [i, f] = rel.split("/");
    if (!fs.readFileSync(path.join(work, "mnt", `m${i}`, "d", f)).equals(data)) wrong++;
  }
  const readMs = ms(t0);
  const afterRead = { ...sample(daemonPid), ...(await memory(sock)) };
  const status = await callDaemon<{ blobs: Array<{ cachedBytes: number }> }>(sock, "GET", "/status");
  const blobsOpen = status.blobs.length;
  const blobsFilled = status.blobs.filter((b) => b.cachedBytes > 0).length;
  console.log(`read ${expected.size} files in ${readMs} ms (${wrong} wrong); ${blobsFilled}/${blobsOpen} blobs filled; daemon ${JSON.stringify(afterRead)}`);

  // 6. The first presence flush after the reads (every filled blob is dirty): how long the daemon's event loop
  // stalls, seen as the worst latency of GET /status polled every 20 ms for 3 s. Then idle: CPU time of the
  // daemon over 5 s (the flusher still runs once a second over every open blob, all clean now).
  let flushStallMs = 0;
  for (const end = performance.now() + 3000; performance.now() < end;) {
    const t = performance.now();
    await callDaemon(sock, "GET", "/status");
    flushStallMs = Math.max(flushStallMs, performance.now() - t);
    await new Promise((r) => setTimeout(r, 20));
  }
  flushStallMs = Math.round(flushStallMs);
  console.log(`first flush: worst control-socket latency ${flushStallMs} ms`);
  await new Promise((r) => setTimeout(r, 2000));
  const cpu0 = cpuSeconds(daemonPid);
  await new Promise((r) => setTimeout(r, 5000));
  const idleCpuPct = +((100 * (cpuSeconds(daemonPid) - cpu0)) / 5).toFixed(2);
  const idle = { ...sample(daemonPid), ...(await memory(sock)) };
  const holder = holderPid ? sample(holderPid) : null;
  console.log(`idle 5 s: ${idleCpuPct}% of a CPU; daemon ${JSON.stringify(idle)}`);

  const hold = Number(option("hold-s", "0")); // time to look at the daemon (/proc/<pid>/smaps) by hand
  if (hold > 0) { console.log(`holding ${hold} s; daemon pid ${daemonPid}`); await new Promise((r) => setTimeout(r, hold * 1000)); }

  // 7. Unmount all; the daemon exits after the last.
  t0 = performance.now();
  for (const mnt of [...mounted]) {
    await callDaemon(sock, "POST", "/umount", { mountPoint: mnt });
    mounted.splice(mounted.indexOf(mnt), 1);
  }
  const umountAllMs = ms(t0);
  const exited = await new Promise<boolean>((resolve) => {
    if (daemon.exitCode !== null) return resolve(true);
    const timer = setTimeout(() => resolve(false), 10_000);
    daemon.once("exit", () => { clearTimeout(timer); resolve(true); });
  });
  if (exited) { daemonPid = 0; holderPidForCleanup = 0; }
  console.log(`unmounted all in ${umountAllMs} ms; daemon exited: ${exited}`);

  const sorted = mountMs.sort((a, b) => a - b);
  const result = {
    when: new Date().toISOString(), kernel: os.release(), cpus: os.cpus().length, node: process.version,
    images: IMAGES, blobsPerImage: BLOBS, blobs: IMAGES * BLOBS, fileBytes: FILE_BYTES, remote: REMOTE,
    buildMs, mountAllMs, mountMsP50: +sorted[Math.floor(sorted.length / 2)].toFixed(1), mountMsMax: +sorted.at(-1)!.toFixed(1),
    readMs, filesRead: expected.size, wrong, blobsOpen, blobsFilled, umountAllMs, daemonExited: exited, flushStallMs, idleCpuPct,
    daemon: { atStart, afterMount, afterRead, idle }, holder,
    rssLimitMB: RSS_LIMIT_MB,
  };
  const out = writeResults("many-blobs", result);
  console.log(`written ${path.relative(REPO, out)}`);
  const peak = Math.max(afterMount.hwmMB, afterRead.hwmMB, idle.hwmMB);
  if (wrong || peak > RSS_LIMIT_MB || blobsFilled !== IMAGES * BLOBS) {
    console.error(`FAILED: wrong=${wrong} peak RSS ${peak} MB (limit ${RSS_LIMIT_MB}) filled ${blobsFilled}/${IMAGES * BLOBS}`);
    process.exitCode = 1;
  }
} finally {
  cleanupAll();
}
