// Runs INSIDE the kernel-lab VM (Linux 6.12 with cachefiles on-demand), driven by test/kernel/fscache.test.ts.
// It uses eod itself, as a user would: `eod serve` for three images, `eod mount --frontend fscache`, reads,
// `eod status`, `eod cull`, and kills the daemon to exercise the holder + `restore` failover; then a small cache
// filesystem runs low on space and the daemon culls on the kernel's signal (POLLOUT); last, a --cache-size budget
// is kept by culling. It prints its report (Guest.finish); the host test checks it.
//   argv: <imgA> <imgB> <imgC> <expected.json> <imgD> <imgE> <imgF>
//   (B shares A's blob; C is unrelated; D, E, F: one big incompressible file each, for the low-space and budget steps)
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { diff, Guest, hashFile, hashTree, killDaemonUnderReaders, sleep, until } from "./guest.ts";

const CACHE = "/var/cache/fscache/eod"; // ext4: cachefiles refuses tmpfs
// A remote request may take 30 s: under TCG on a loaded host a healthy answer of the guest's eod serve can take
// seconds, and a mount whose image load times out twice fails the run (4 s was the limit). Only the stalled
// requests of the hand-over step (6b) wait that long before their retry.
// Fetch unit = chunk size (64K), so that reading one file does not pull its neighbours in: the failover
// readers must really be blocked on a cold chunk when the daemon is killed.
const guest = new Guest({
  name: "fscache-e2e", // test/kernel/fscache.test.ts looks for its report
  env: { ...process.env, EOD_REMOTE_TIMEOUT_MS: "30000", EOD_REMOTE_RETRIES: "1", EOD_DAEMON_START_TIMEOUT_MS: "300000", EOD_MIN_FETCH: "65536" },
  eodTimeoutMs: 420_000,
});
const { report } = guest;
const [imgA, imgB, imgC, expectedPath, imgD, imgE, imgF] = process.argv.slice(2);
const expected = JSON.parse(fs.readFileSync(expectedPath, "utf8")) as Record<"A" | "B" | "C" | "D" | "E" | "F", Record<string, string>>;

// Waits below are deadlines, not fixed pauses: under TCG on a loaded host a holder's exit, the kernel's release
// of an unmounted object or a cull can take seconds (a fixed 500 ms pause once failed "the holder exits").
const WAIT_MS = 120_000;


/** The holder of `cache` is gone (it exits with its daemon once nothing is mounted): /dev/cachefiles is free. */
function holderGone(cache: string): Promise<boolean> {
  return until(() => !fs.existsSync(path.join(cache, "holder.pid")), WAIT_MS);
}

async function status(cache = CACHE): Promise<{ frontend: Record<string, number>; cache: Record<string, number>; blobs: Array<{ id: string; corrupt: number; fetchedBytes: number }>; mounts: unknown[] }> {
  return JSON.parse(await guest.must(["status", "--cache-dir", cache, "--json"]));
}

async function main(): Promise<void> {
  guest.step("0. Start: eod --help, eod serve");
  // Fill Node's compile cache with one process first: many processes starting at once on an empty cache
  // race on it (a V8 fatal error was seen under TCG).
  await guest.must(["--help"]);
  const a = await guest.serve(imgA);
  const b = await guest.serve(imgB);
  const c = await guest.serve(imgC);
  for (const d of ["/mnt/a", "/mnt/b", "/mnt/c"]) fs.mkdirSync(d, { recursive: true });
  const mount = (url: string, mnt: string) => guest.must(["mount", url, mnt, "--cache-dir", CACHE, "--frontend", "fscache"]);
  const umount = (mnt: string) => guest.must(["umount", mnt, "--cache-dir", CACHE]);

  guest.step("1. Cold mount");
  // 1. Cold mount over HTTP: every byte through READs, identical to the source.
  let t = Date.now();
  await mount(a.url, "/mnt/a");
  report.coldMountMs = Date.now() - t;
  t = Date.now();
  report.coldDiff = diff(expected.A, await hashTree("/mnt/a"));
  report.coldReadMs = Date.now() - t;
  const s1 = await status();
  report.afterA = s1.frontend;

  guest.step("2. B shares");
  // 2. B shares A's blob in the same domain: one more OPEN (B's bootstrap), none for the shared blob.
  await mount(b.url, "/mnt/b");
  report.bDiff = diff(expected.B, await hashTree("/mnt/b"));
  report.afterB = (await status()).frontend;

  guest.step("3. Warm:");
  // 3. Warm: unmount both (the daemon and its holder exit), mount A again: no READ at all.
  await umount("/mnt/b");
  await umount("/mnt/a");
  report.holderGone = await holderGone(CACHE);
  await mount(a.url, "/mnt/a");
  report.warmDiff = diff(expected.A, await hashTree("/mnt/a"));
  report.warm = (await status()).frontend;

  guest.step("4. A corrupting");
  // 4. A corrupting remote: EIO, nothing cached, the daemon stays up; healthy again: the right bytes.
  await mount(c.url, "/mnt/c");
  await c.faults({ mode: "corrupt", match: "blobs/" });
  report.corruptRead = await hashFile("/mnt/c/big");
  const sc = await status();
  report.corruptCounts = sc.blobs.map((x) => ({ id: x.id, corrupt: x.corrupt }));
  await c.faults(null);
  report.corruptThenOk = (await hashFile("/mnt/c/big")) === expected.C["big"];

  guest.step("5. Failover:");
  // 5. Failover: readers blocked on a stalled remote, the daemon is killed; the holder restarts it, `restore`
  //    re-delivers the pending READs, and every reader completes with the right bytes.
  const fo = await killDaemonUnderReaders(c, CACHE, "/mnt/c", expected.C);
  report.failover = fo.readers;
  report.restartedPid = fo.newPid;
  report.afterFailoverDiff = diff(expected.C, await hashTree("/mnt/c"));

  guest.step("6. Culling:");
  // 6. Culling: refused while C is mounted, done once it is not (A keeps the daemon alive).
  const cBlob = JSON.parse(fs.readFileSync(path.join(imgC, "manifest.json"), "utf8")).blobs[0].id as string;
  report.cullInUse = (await guest.eod(["cull", cBlob, "--cache-dir", CACHE])).code;
  await umount("/mnt/c");
  // The kernel releases the unmounted object in the background (fscache withdraws cookies on a work queue):
  // until then the blob is still in use or its file not yet linked in. Asked again until the deadline.
  let cull = await guest.eod(["cull", cBlob, "--cache-dir", CACHE]);
  for (const end = Date.now() + WAIT_MS; cull.code !== 0 && /in use|no cache file/.test(cull.stderr) && Date.now() < end;) {
    await sleep(500);
    cull = await guest.eod(["cull", cBlob, "--cache-dir", CACHE]);
  }
  report.cullUnused = { code: cull.code, stderr: cull.stderr.trim() };
  report.cullFileGone = !findCacheFile(cBlob);

  guest.step("6b. Hand-over:");
  // 6b. `eod daemon restart` (a planned hand-over): a reader blocked on a stalled cold READ of D completes with the
  //     right bytes; the old daemon finishes what it has in flight, the new one sends `restore` and serves the rest.
  const d = await guest.serve(imgD);
  fs.mkdirSync("/mnt/d", { recursive: true });
  await mount(d.url, "/mnt/d");
  await d.faults({ mode: "stall", match: "blobs/" });
  const handoverRead = hashFile("/mnt/d/big");
  await sleep(1500);
  const pidBefore = Number(fs.readFileSync(path.join(CACHE, "daemon.pid"), "utf8"));
  const restart = guest.eod(["daemon", "restart", "--cache-dir", CACHE]); // a second SIGHUP would only hand over again
  await sleep(500);
  await d.faults(null); // the old daemon's stalled request times out and its retry gets the bytes
  const restarted = await restart;
  report.handover = {
    code: restarted.code, stderr: restarted.stderr.trim().slice(-500),
    newPid: Number(fs.readFileSync(path.join(CACHE, "daemon.pid"), "utf8")) !== pidBefore,
    readOk: (await handoverRead) === expected.D["big"],
  };
  report.handoverDiff = diff(expected.D, await hashTree("/mnt/d"));
  report.handoverLog = fs.readFileSync(path.join(CACHE, "daemon.log"), "utf8").split("\n").filter((l) => /restore|SIGHUP|handing over|restarted/.test(l)).slice(-4);
  await umount("/mnt/d");
  await umount("/mnt/a");

  guest.step("7. Low space:");
  await lowSpace();

  guest.step("8. Cache budget:");
  await budget();
}

// 8. --cache-size of 2.5 blobs: D is read and unmounted, E and F are read while mounted. The files E and F fill
//    are unlinked tmpfiles until they are closed (cachefiles links them at withdrawal), so the daemon must count
//    them through its object fds: over the high watermark it culls D (cold, unused), never E or F.
async function budget(): Promise<void> {
  const cache = "/var/cache/fscache/budget";
  // The low-space step's daemon and holder are gone once its images are unmounted (lowSpace() waited for it).
  const size = Math.floor(2.5 * JSON.parse(fs.readFileSync(path.join(imgD, "manifest.json"), "utf8")).blobs[0].kernelSize);
  const [d, e, f] = [await guest.serve(imgD), await guest.serve(imgE), await guest.serve(imgF)];
  const mountBudget = (url: string, mnt: string) => {
    fs.mkdirSync(mnt, { recursive: true });
    return guest.must(["mount", url, mnt, "--cache-dir", cache, "--frontend", "fscache", "--cache-size", String(size)]);
  };
  await mountBudget(d.url, "/mnt/bd");
  report.budgetD = diff(expected.D, await hashTree("/mnt/bd"));
  await mountBudget(e.url, "/mnt/be");
  report.budgetE = diff(expected.E, await hashTree("/mnt/be"));
  await umount2("/mnt/bd", cache);
  await mountBudget(f.url, "/mnt/bf");
  report.budgetF = diff(expected.F, await hashTree("/mnt/bf"));
  // The check runs after READs, at most once a second: wait for its trailing run.
  await until(() => !findCacheFile(blobId(imgD), cache), 30_000);
  report.budgetSize = size;
  report.budgetStats = (await status(cache)).cache;
  report.budgetDGone = !findCacheFile(blobId(imgD), cache);
  report.budgetERereadDiff = diff(expected.E, await hashTree("/mnt/be"));
  await umount2("/mnt/be", cache);
  await umount2("/mnt/bf", cache);
  await until(() => findCacheFile(blobId(imgE), cache) !== null && findCacheFile(blobId(imgF), cache) !== null, 30_000);
  report.budgetEKept = findCacheFile(blobId(imgE), cache) !== null;
  report.budgetFKept = findCacheFile(blobId(imgF), cache) !== null;
  report.budgetLog = fs.readFileSync(path.join(cache, "daemon.log"), "utf8").split("\n").filter((l) => /cull/.test(l)).slice(-6);
}

// 7. A 40 MB cache filesystem and limits set so that the third image's fill crosses bcull: the kernel signals
//    POLLOUT, the daemon culls the cold unused image D (least recently used), never E or F (mounted), and every
//    read completes with the right bytes.
async function lowSpace(): Promise<void> {
  const sizeMiB = 40;
  const small = "/var/cache/small";
  const cache = path.join(small, "eod");
  // The previous daemon and its holder are gone once A is unmounted: /dev/cachefiles is free for a new cache.
  if (!(await holderGone(CACHE))) throw new Error(`the holder of ${CACHE} did not exit after its last umount`);
  fs.mkdirSync(small, { recursive: true });
  execFileSync("/bin/busybox", ["truncate", "-s", `${sizeMiB}M`, "/run/small-ext4.img"]);
  execFileSync("/sbin/mkfs.ext4", ["-q", "-F", "-O", "^has_journal", "/run/small-ext4.img"]);
  execFileSync("/bin/busybox", ["mount", "-o", "loop", "-t", "ext4", "/run/small-ext4.img", small]);
  try {
    // Limits from the fresh filesystem: cull once ~2.5 blobs are cached, run again at ~2.1 (one blob culled).
    const st = fs.statfsSync(small);
    const blobBytes = (img: string) => JSON.parse(fs.readFileSync(path.join(img, "manifest.json"), "utf8")).blobs[0].kernelSize as number;
    const freePct = (100 * st.bavail) / st.blocks;
    const blobPct = (100 * blobBytes(imgD)) / (st.blocks * st.bsize);
    const bcull = Math.floor(freePct - 2.5 * blobPct);
    const brun = bcull + Math.max(2, Math.floor(0.4 * blobPct));
    const limits = `bstop=1%,bcull=${bcull}%,brun=${brun}%`;
    report.lowSpaceSetup = { freePct: +freePct.toFixed(1), blobPct: +blobPct.toFixed(1), limits };
    const d = await guest.serve(imgD);
    const e = await guest.serve(imgE);
    const f = await guest.serve(imgF);
    const mountSmall = (url: string, mnt: string) => {
      fs.mkdirSync(mnt, { recursive: true });
      return guest.must(["mount", url, mnt, "--cache-dir", cache, "--frontend", "fscache", "--fscache-limits", limits]);
    };
    await mountSmall(d.url, "/mnt/d");
    report.lowD = diff(expected.D, await hashTree("/mnt/d"));
    await mountSmall(e.url, "/mnt/e"); // keeps the daemon up while D goes
    await umount2("/mnt/d", cache);
    report.lowE = diff(expected.E, await hashTree("/mnt/e"));
    const before = (await status(cache)).frontend;
    await mountSmall(f.url, "/mnt/f");
    report.lowF = diff(expected.F, await hashTree("/mnt/f"));
    // The cull runs on the daemon's event loop when POLLOUT comes: give it a moment.
    const dBlob = blobId(imgD);
    await until(() => !findCacheFile(dBlob, cache), 30_000);
    const s = await status(cache);
    report.lowStats = { before, after: { ...s.frontend, ...s.cache } }; // the kernel's signals are the frontend's, culling the core's
    report.lowDGone = !findCacheFile(dBlob, cache);
    report.lowERereadDiff = diff(expected.E, await hashTree("/mnt/e"));
    await umount2("/mnt/e", cache);
    await umount2("/mnt/f", cache);
    // E and F were in use during the cull: the daemon never culled them (its log names every file it culled),
    // and their files, linked by the kernel once unmounted, are still there.
    const log = fs.readFileSync(path.join(cache, "daemon.log"), "utf8").split("\n").filter((l) => /cull/.test(l));
    report.lowLog = log.slice(-8);
    report.lowCulledCookies = log.filter((l) => l.includes("culled a cold cache file")).map((l) => JSON.parse(l).key as string);
    await until(() => findCacheFile(blobId(imgE), cache) !== null && findCacheFile(blobId(imgF), cache) !== null, 30_000);
    report.lowEKept = findCacheFile(blobId(imgE), cache) !== null;
    report.lowFKept = findCacheFile(blobId(imgF), cache) !== null;
    report.lowFiles = listCacheFiles(cache);
  } finally {
    await holderGone(cache);
    try { execFileSync("/bin/busybox", ["umount", small]); } catch { /* busy: the VM goes away anyway */ }
  }
}

function listCacheFiles(cache: string): string[] {
  const vol = path.join(cache, "fscache/cache/Ierofs,eod");
  if (!fs.existsSync(vol)) return [];
  return fs.readdirSync(vol).flatMap((d) => fs.readdirSync(path.join(vol, d)).map((f) => `${d}/${f.slice(0, 20)} ${fs.statSync(path.join(vol, d, f)).blocks * 512}`));
}

function blobId(img: string): string {
  return JSON.parse(fs.readFileSync(path.join(img, "manifest.json"), "utf8")).blobs[0].id as string;
}

function umount2(mnt: string, cache: string): Promise<string> {
  return guest.must(["umount", mnt, "--cache-dir", cache]);
}

function findCacheFile(id: string, cache = CACHE): string | null {
  const vol = path.join(cache, "fscache/cache/Ierofs,eod");
  if (!fs.existsSync(vol)) return null;
  for (const d of fs.readdirSync(vol)) if (fs.existsSync(path.join(vol, d, `D${id}`))) return path.join(vol, d, `D${id}`);
  return null;
}

/** The last lines of every daemon log of the run, for a failure's report. */
function daemonLogs(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const cache of [CACHE, "/var/cache/small/eod", "/var/cache/fscache/budget"]) {
    const log = path.join(cache, "daemon.log");
    if (fs.existsSync(log)) out[log] = fs.readFileSync(log, "utf8").split("\n").slice(-30).join("\n");
  }
  return out;
}

guest.finish(main, (r) => {
  r.daemonLogs = daemonLogs();
});
