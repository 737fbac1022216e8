// Restart without loss, fanotify frontend on the real kernel: `eod daemon` is a holder that keeps the pre-content
// group open and runs the daemon as its child. kill -9 of the daemon while readers are blocked on cold ranges
// (the remote stalls) must not let them through to zeros: they wait, the holder starts a new daemon, which
// answers the events its predecessor took (journal) once their ranges are filled; cached bytes are not fetched
// again. `eod daemon restart` hands over on purpose, with the same guarantees.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import { spawn, spawnSync } from "node:child_process";
import path from "node:path";
import { REPO } from "../helpers/cli.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { blobBytes, cleanup, eodAsync, lazyWorkspace, readInChild, serveRandomFiles, type Served } from "../helpers/lazy.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { unavailable } from "../helpers/skip.ts";

const support = haveRoot() ? kernelSupportsPreContent() : { ok: false, missing: ["root"] };
const skip = unavailable(!haveRoot() ? "needs root to mount" : !support.ok ? `kernel lacks: ${support.missing.join("; ")}` : false);

let work = "";
let src = "";
let server: Served;
let ws: ReturnType<typeof lazyWorkspace>;
// A stalled request times out after 3 s and is tried again (3 times): the faults are lifted well before.
const env = { EOD_REMOTE_TIMEOUT_MS: "3000", EOD_REMOTE_RETRIES: "3" };
const FILES: Record<string, number> = { "warm.bin": 3 << 20, "recent.bin": 1 << 20, "last.bin": 2 << 20, "cold1.bin": 3 << 20, "cold2.bin": 2 << 20, "cold3.bin": 2 << 20, "small.txt": 5000 };

before(async () => {
  if (skip) return;
  work = tempDir("eod-restart-");
  ws = lazyWorkspace(work);
  ({ src, server } = await serveRandomFiles(work, FILES));
});

after(() => {
  if (work) ws.teardown(server);
});

const fresh = () => ws.fresh();

const sha = (name: string) => createHash("sha256").update(fs.readFileSync(path.join(src, name))).digest("hex");
const pidOf = (cache: string, what: "daemon" | "holder") => { try { return Number(fs.readFileSync(path.join(cache, `${what}.pid`), "utf8")); } catch { return null; } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function status(cache: string) {
  const r = await eodAsync(["status", "--cache-dir", cache, "--json"]);
  return r.status === 0 ? JSON.parse(r.stdout) : null;
}

/** Waits until a daemon other than `old` answers on the cache dir's socket. */
async function newDaemon(cache: string, old: number, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const pid = pidOf(cache, "daemon");
    if (pid && pid !== old && (await status(cache))?.pid === pid) return pid;
    await sleep(100);
  }
  throw new Error(`no new daemon within ${timeoutMs} ms`);
}

/** A read in a child process whose outcome can be checked without waiting for it. */
function watchedRead(file: string) {
  const w = { settled: false, result: null as Awaited<ReturnType<typeof readInChild>> | null, promise: readInChild(file, 120_000) };
  w.promise.then((r) => { w.settled = true; w.result = r; }, () => { w.settled = true; });
  return w;
}

async function dropCaches(): Promise<void> {
  fs.writeFileSync("/proc/sys/vm/drop_caches", "1"); // the next read goes to the cache file (and raises events)
}

test("kill -9 of the daemon while readers are blocked: they wait, the holder restarts it, they get the right bytes, nothing cached is fetched again", { skip, timeout: 180_000 }, async (t) => {
  const { cache, mnt } = fresh();
  try {
    const m = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache], env);
    assert.equal(m.status, 0, m.stderr);
    const holder = pidOf(cache, "holder");
    assert.ok(holder, "eod mount started a holder");
    const s0 = await status(cache);
    assert.equal(s0.frontend.name, "fanotify");
    assert.equal(s0.frontend.heldGroup, true, "the daemon serves the holder's group");
    assert.notEqual(s0.pid, holder, "the daemon is the holder's child");

    await server.resetStats();
    assert.equal((await readInChild(path.join(mnt, "warm.bin"))).sha256, sha("warm.bin"));
    const warmBytes = blobBytes(await server.stats());
    await sleep(1500); // presence maps are persisted once a second, after an fdatasync
    // Filled less than a second before the kill: its presence may not be persisted yet (measured below).
    assert.equal((await readInChild(path.join(mnt, "recent.bin"))).sha256, sha("recent.bin"));
    const recentBytes = blobBytes(await server.stats()) - warmBytes;

    await server.setFaults({ mode: "stall", match: "blobs/" });
    const readers = ["cold1.bin", "cold2.bin"].map((f) => ({ f, w: watchedRead(path.join(mnt, f)) }));
    await sleep(800);
    const before = await status(cache);
    assert.ok(before.frontend.inFlight > 0, `the daemon holds events for the blocked readers (${JSON.stringify(before.frontend)})`);
    const old = before.pid;
    process.kill(old, "SIGKILL");
    const killedAt = Date.now();
    // A read that starts while no daemon runs: the marks belong to the held group, so it raises an event that
    // waits in the queue for the next daemon (without the holder it would read zeros).
    readers.push({ f: "cold3.bin", w: watchedRead(path.join(mnt, "cold3.bin")) });

    const pid = await newDaemon(cache, old);
    t.diagnostic(`holder ${holder} restarted the daemon: ${old} → ${pid} in ${Date.now() - killedAt} ms`);
    assert.equal(pidOf(cache, "holder"), holder, "the same holder");
    await sleep(1000);
    for (const r of readers) assert.equal(r.w.settled, false, `${r.f}: the reader still waits (no zeros, no error) while the remote stalls: ${JSON.stringify(r.w.result)}`);
    const s1 = await status(cache);
    assert.equal(s1.mounts.length, 1, "re-attached to the mount");
    assert.ok(s1.frontend.recovered >= 1, `the new daemon took over the events its predecessor had read (${s1.frontend.recovered})`);
    t.diagnostic(`events left by the killed daemon and answered by the new one: ${s1.frontend.recovered}`);

    await server.resetStats();
    await server.setFaults(null);
    for (const r of readers) {
      const got = await r.w.promise;
      assert.deepEqual({ f: r.f, sha256: got.sha256, error: got.error }, { f: r.f, sha256: sha(r.f), error: undefined }, "the right bytes after the restart");
    }
    const coldBytes = blobBytes(await server.stats());
    t.diagnostic(`after the restart the cold files took ${coldBytes} bytes (${FILES["cold1.bin"] + FILES["cold2.bin"] + FILES["cold3.bin"]} plain bytes of them)`);

    // Nothing cached before the kill is fetched again: the warm file, persisted, costs 0 bytes.
    await server.resetStats();
    await dropCaches();
    assert.equal((await readInChild(path.join(mnt, "warm.bin"))).sha256, sha("warm.bin"));
    assert.equal(blobBytes(await server.stats()), 0, "the warm file was not fetched again");
    await dropCaches();
    assert.equal((await readInChild(path.join(mnt, "recent.bin"))).sha256, sha("recent.bin"));
    const refetched = blobBytes(await server.stats());
    t.diagnostic(`warm file: ${warmBytes} bytes fetched once, 0 again; file filled <1 s before the kill: ${recentBytes} bytes, ${refetched} fetched again`);
    assert.ok(refetched <= recentBytes, "at most the last second of fills is fetched again");

    // The mount keeps working.
    assert.equal((await readInChild(path.join(mnt, "small.txt"))).sha256, sha("small.txt"));
    const u = await eodAsync(["umount", mnt, "--cache-dir", cache]);
    assert.equal(u.status, 0, u.stderr);
    for (let i = 0; i < 100 && pidOf(cache, "holder"); i++) await sleep(100);
    assert.equal(pidOf(cache, "holder"), null, "the holder exits with its daemon once the last mount is gone");
  } finally {
    cleanup(work, cache);
  }
});

test("eod daemon restart hands over without unmounting: a blocked reader completes, the cache is kept", { skip, timeout: 180_000 }, async (t) => {
  const { cache, mnt } = fresh();
  try {
    const m = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache], env);
    assert.equal(m.status, 0, m.stderr);
    assert.equal((await readInChild(path.join(mnt, "warm.bin"))).sha256, sha("warm.bin"));
    await server.setFaults({ mode: "stall", match: "blobs/" });
    const reader = watchedRead(path.join(mnt, "cold1.bin"));
    await sleep(800);
    const old = pidOf(cache, "daemon")!;
    const restarting = eodAsync(["daemon", "restart", "--cache-dir", cache]);
    await sleep(1000);
    assert.equal(reader.settled, false, "the reader waits");
    await server.setFaults(null); // the old daemon's stalled fetch is retried, answered, and only then it exits
    const r = await restarting;
    assert.equal(r.status, 0, r.stderr);
    t.diagnostic(r.stdout.trim());
    const now = pidOf(cache, "daemon");
    assert.notEqual(now, old, "a new daemon");
    assert.equal((await reader.promise).sha256, sha("cold1.bin"));
    await server.resetStats();
    await dropCaches();
    assert.equal((await readInChild(path.join(mnt, "warm.bin"))).sha256, sha("warm.bin"));
    assert.equal((await readInChild(path.join(mnt, "cold1.bin"))).sha256, sha("cold1.bin"));
    assert.equal(blobBytes(await server.stats()), 0, "nothing cached is fetched again after a hand-over");
    assert.equal((await readInChild(path.join(mnt, "cold2.bin"))).sha256, sha("cold2.bin"));
    assert.equal((await status(cache)).mounts.length, 1);
    const u = await eodAsync(["umount", mnt, "--cache-dir", cache]);
    assert.equal(u.status, 0, u.stderr);
  } finally {
    cleanup(work, cache);
  }
});

test("kill -9 right after a fill: only fills not yet made durable (the last second) are fetched again", { skip, timeout: 120_000 }, async (t) => {
  const { cache, mnt } = fresh();
  // One chunk per fetch: a sequential stream's growing fetch unit and read-ahead window depend on timing, and
  // would make the bytes fetched before and after the kill incomparable.
  const chunk = String(256 << 10);
  try {
    const m = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache], { ...env, EOD_MIN_FETCH: chunk, EOD_MAX_FETCH: chunk });
    assert.equal(m.status, 0, m.stderr);
    assert.equal((await readInChild(path.join(mnt, "warm.bin"))).sha256, sha("warm.bin"));
    await sleep(1500);
    await server.resetStats();
    assert.equal((await readInChild(path.join(mnt, "last.bin"))).sha256, sha("last.bin"));
    // A read returns once its own chunks are in; read-ahead started by it may still be arriving: count it too.
    for (let i = 0; i < 100 && (await status(cache))?.blobs.some((b: { inFlight: number }) => b.inFlight > 0); i++) await sleep(20);
    const lastBytes = blobBytes(await server.stats());
    const old = pidOf(cache, "daemon")!;
    process.kill(old, "SIGKILL"); // at once: its presence map may not hold last.bin yet
    await newDaemon(cache, old);
    await server.resetStats();
    await dropCaches();
    assert.equal((await readInChild(path.join(mnt, "warm.bin"))).sha256, sha("warm.bin"));
    assert.equal(blobBytes(await server.stats()), 0, "fills older than a second are durable: not fetched again");
    assert.equal((await readInChild(path.join(mnt, "last.bin"))).sha256, sha("last.bin"));
    const again = blobBytes(await server.stats());
    t.diagnostic(`filled just before the kill: ${lastBytes} bytes; fetched again after the restart: ${again}`);
    // Its read-ahead window (one chunk past the file) may have been in flight or not when counted before the kill.
    assert.ok(again <= lastBytes + Number(chunk), "at most the last fills are fetched again");
    const u = await eodAsync(["umount", mnt, "--cache-dir", cache]);
    assert.equal(u.status, 0, u.stderr);
  } finally {
    cleanup(work, cache);
  }
});

test("a daemon killed after its mounts went (umount -l behind its back): the restarted one finds nothing to serve, and it and the holder exit", { skip, timeout: 60_000 }, async () => {
  const { cache, mnt } = fresh();
  try {
    const m = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache], env);
    assert.equal(m.status, 0, m.stderr);
    const holder = pidOf(cache, "holder")!;
    cleanupMountsOnly(mnt);
    process.kill(pidOf(cache, "daemon")!, "SIGKILL");
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && alive(holder)) await sleep(100);
    assert.equal(alive(holder), false, "the holder exited");
    assert.equal(pidOf(cache, "holder"), null);
  } finally {
    cleanup(work, cache);
  }
});

test("a daemon killed before its first mount: the restarted one waits for that mount instead of exiting", { skip, timeout: 60_000 }, async () => {
  const { cache, mnt } = fresh();
  // What `eod mount` does on a cold start, with the daemon dying while it starts (under qemu's TCG V8 sometimes does).
  const holderProc = spawn(process.execPath, [path.join(REPO, "bin/eod.mjs"), "daemon", "--cache-dir", cache, "--log-file", path.join(cache, "daemon.log")], { detached: true, stdio: "ignore" });
  holderProc.unref();
  try {
    const first = await newDaemon(cache, -1);
    const holder = pidOf(cache, "holder")!;
    process.kill(first, "SIGKILL");
    await newDaemon(cache, first);
    await sleep(1000); // a restarted daemon with no mounts used to exit at once, its holder with it
    assert.equal(alive(holder), true, "the holder and its restarted daemon are still there");
    const m = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache], env);
    assert.equal(m.status, 0, m.stderr);
    assert.equal(pidOf(cache, "holder"), holder, "the mount went to the restarted daemon");
    assert.equal((await readInChild(path.join(mnt, "small.txt"))).sha256, sha("small.txt"));
  } finally {
    cleanup(work, cache);
    if (holderProc.pid && alive(holderProc.pid)) holderProc.kill("SIGKILL");
  }
});

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

function cleanupMountsOnly(mnt: string): void {
  const r = spawnSync("umount", ["-l", mnt]);
  assert.equal(r.status, 0, String(r.stderr));
}

test("a first daemon that cannot start: eod mount fails at once with its error, the holder does not restart it", { skip, timeout: 120_000 }, async () => {
  const { cache, mnt } = fresh();
  try {
    fs.mkdirSync(path.join(cache, "state.json"), { recursive: true }); // a mount table it cannot read: every start fails alike
    // A start timeout far beyond the test's: the failure comes from the holder's exit, not from a timeout.
    const m = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache], { ...env, EOD_DAEMON_START_TIMEOUT_MS: "600000" });
    assert.equal(m.status, 1, m.stderr);
    assert.match(m.stderr, /did not start \(it exited with code 1\)/);
    assert.match(m.stderr, /Cannot read the mount table \S*state\.json: EISDIR/, "the daemon's own error is quoted");
    const log = fs.readFileSync(path.join(cache, "daemon.log"), "utf8");
    assert.equal(log.match(/the daemon cannot start/g)?.length, 1, `one start, no restart:\n${log}`);
    assert.equal(pidOf(cache, "holder"), null, "the holder is gone");
  } finally {
    cleanup(work, cache);
  }
});

test("eod daemon restart without a holder says so", { skip, timeout: 30_000 }, async () => {
  const { cache } = fresh();
  fs.mkdirSync(cache, { recursive: true });
  const r = await eodAsync(["daemon", "restart", "--cache-dir", cache]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /No holder runs/);
});
