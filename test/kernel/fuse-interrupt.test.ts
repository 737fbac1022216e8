// A reader blocked on a stalled remote can be killed, FUSE frontend on the real kernel. A process whose
// synchronous READ is in the daemon (direct I/O of a blob file, or erofs reading again a page whose first read
// failed) waits for the answer alone, SIGKILL or not (fs/fuse/dev.c request_wait_answer); the kernel sends
// FUSE_INTERRUPT and the daemon answers that READ EINTR at once, so the reader exits, while the fill goes on in
// the cache core: once the stall ends the file reads right. A caught signal ends nothing (erofs would turn the
// EINTR into EIO): that reader gets the right bytes, and a SIGKILL after it still ends a reader at once.
// Readers of cold erofs pages wait on the page lock instead (their READs are readahead, background requests
// that are never interrupted): they exit on SIGKILL as they did before. The daemon serves on throughout;
// nothing is left. On a held connection (as the holder keeps it) a READ answered EINTR leaves the request
// journal, and a reader killed while no daemon runs is answered EINTR by the next one (resent READ, or from
// the journal).
import { after, before, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { startFuseDaemon } from "../helpers/fuse.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { cleanup, eodAsync, lazyWorkspace, readInChild, serveRandomFiles, type Served } from "../helpers/lazy.ts";
import { unavailable } from "../helpers/skip.ts";
import { fuseMountAt, openFuseDevice } from "../../src/sys/fuse.ts";
import { fuseMountDir } from "../../src/frontend/fuse/nodes.ts";

const skip = unavailable(!haveRoot() ? "needs root to mount" : !fs.existsSync("/dev/fuse") && "needs /dev/fuse");

/** A stalled fetch ends (times out, then the one retry succeeds) this long after it started. */
const STALL_MS = 15_000;
/** A killed reader must be gone this soon: well before the stall ends. */
const EXIT_MS = 2_000;
const env = { EOD_REMOTE_TIMEOUT_MS: String(STALL_MS), EOD_REMOTE_RETRIES: "1", EOD_FILE_FETCH: "0" };
const FILES: Record<string, number> = { "cold.bin": 3 << 20, "cold2.bin": 2 << 20, "small.txt": 5000 };

let work = "";
let src = "";
let server: Served;
let ws: ReturnType<typeof lazyWorkspace>;
const started = new Set<ChildProcess>();

before(async () => {
  if (skip) return;
  work = tempDir("eod-fuse-interrupt-");
  ws = lazyWorkspace(work);
  ({ src, server } = await serveRandomFiles(work, FILES));
});

after(() => {
  for (const c of started) c.kill("SIGKILL");
  if (work) ws.teardown(server);
});

const sha = (name: string) => createHash("sha256").update(fs.readFileSync(path.join(src, name))).digest("hex");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function frontendStats(cache: string) {
  const r = await eodAsync(["status", "--cache-dir", cache, "--json"]);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout).frontend;
}

/** A reader in a process of its own; resolves with its exit code or signal. */
function startReader(cmd: string, args: string[]): { child: ChildProcess; exited: Promise<number | string | null> } {
  const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
  started.add(child);
  const exited = new Promise<number | string | null>((resolve) => child.once("exit", (code, sig) => { started.delete(child); resolve(sig ?? code); }));
  return { child, exited };
}

interface ReaderCase {
  name: string;
  /** Whether its READ is one the kernel interrupts (a synchronous one). */
  interrupted: boolean;
  /** Before the stall. */
  prepare?(mnt: string): Promise<void>;
  reader(cache: string, mnt: string): ReturnType<typeof startReader>;
}

/** A read of `files` that fails (the remote answers 404): their pages are left in error, so the next read of them is a synchronous READ (fuse_read_folio). */
async function failOnce(mnt: string, ...files: string[]): Promise<void> {
  await server.setFaults({ mode: "status", status: 404, match: "blobs/" });
  for (const f of files) assert.equal((await readInChild(path.join(mnt, f))).error, "EIO", `${f}: the remote's 404 fails the read`);
  await server.setFaults(null);
}

const READERS: ReaderCase[] = [
  {
    name: "a synchronous READ (O_DIRECT of the blob's FUSE file), which only the daemon's answer ends",
    interrupted: true,
    reader: (cache) => {
      const [blob] = fs.readdirSync(fuseMountDir(cache));
      return startReader("dd", [`if=${path.join(fuseMountDir(cache), blob)}`, "of=/dev/null", "bs=1M", "count=2", "iflag=direct"]);
    },
  },
  {
    name: "cat of an erofs file whose first read failed (erofs reads it again: a synchronous READ)",
    interrupted: true,
    prepare: (mnt) => failOnce(mnt, "cold.bin"),
    reader: (_cache, mnt) => startReader("cat", [path.join(mnt, "cold.bin")]),
  },
  {
    name: "cat of a cold erofs file (readahead: background READs, the reader waits on the page lock)",
    interrupted: false,
    reader: (_cache, mnt) => startReader("cat", [path.join(mnt, "cold.bin")]),
  },
];

/**
 * Stalls the remote, starts `reader` and SIGKILLs it once its READ is in the daemon: it must be gone within
 * EXIT_MS, well before the stall ends, and the daemon must serve on. Returns the frontend's stats then.
 */
async function killBlockedReader(t: TestContext, cache: string, mnt: string, reader: () => ReturnType<typeof startReader>) {
  await server.setFaults({ mode: "stall", match: "blobs/" });
  const stallStarted = Date.now();
  const r = reader();
  for (const until = Date.now() + 20_000; (await frontendStats(cache)).inFlight < 1; await sleep(50)) {
    assert.ok(Date.now() < until, "the reader's READ reached the daemon");
  }
  await sleep(200); // the reader is asleep in the kernel
  const killedAt = Date.now();
  r.child.kill("SIGKILL");
  const gone = await Promise.race([r.exited, sleep(EXIT_MS).then(() => "still there")]);
  t.diagnostic(`reader exited ${Date.now() - killedAt} ms after SIGKILL (${gone}); the stall ends ${STALL_MS - (Date.now() - stallStarted)} ms later`);
  assert.equal(gone, "SIGKILL", `the killed reader is gone within ${EXIT_MS} ms`);
  assert.ok(Date.now() - stallStarted < STALL_MS - 5_000, "well before the stall ends");
  const during = await frontendStats(cache);
  t.diagnostic(`frontend during the stall: ${JSON.stringify({ interrupted: during.interrupted, inFlight: during.inFlight, byOp: during.byOp })}`);
  assert.equal((await readInChild(path.join(mnt, "small.txt"))).sha256, sha("small.txt"), "the daemon serves on during the stall");
  return during;
}

/** The stall ends: the file reads right (no READ failed since `failedReads`); then the last umount leaves no FUSE mount behind. */
async function rightBytesThenUmount(cache: string, mnt: string, failedReads = 0): Promise<void> {
  await server.setFaults(null);
  assert.equal((await readInChild(path.join(mnt, "cold.bin"), 60_000)).sha256, sha("cold.bin"), "once the stall ends: the right bytes");
  const s = await frontendStats(cache);
  assert.equal(s.failedReads, failedReads, "no READ failed");
  assert.equal(s.interruptsRequeued, 0, "no INTERRUPT of a request the daemon did not hold");
  const u = await eodAsync(["umount", mnt, "--cache-dir", cache]);
  assert.equal(u.status, 0, u.stderr);
  for (const until = Date.now() + 20_000; fuseMountAt(fuseMountDir(cache)); await sleep(100)) {
    assert.ok(Date.now() < until, "the idle daemon unmounts its FUSE filesystem");
  }
}

for (const { name, interrupted, prepare, reader } of READERS) {
  test(`SIGKILL of a reader blocked on a stalled remote: it exits at once, the fill goes on, the right bytes after the stall; ${name}`, { skip, timeout: 120_000 }, async (t) => {
    const { cache, mnt } = ws.fresh();
    t.after(() => cleanup(work, cache));
    const m = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache, "--frontend", "fuse"], env);
    assert.equal(m.status, 0, m.stderr);
    assert.equal((await readInChild(path.join(mnt, "small.txt"))).sha256, sha("small.txt"), "an ordinary cold read: no spurious EINTR");
    await prepare?.(mnt);
    const during = await killBlockedReader(t, cache, mnt, () => reader(cache, mnt));
    assert.equal(during.interrupted, interrupted ? 1 : 0, interrupted ? "its READ was answered EINTR" : "no READ of the erofs reader was interrupted");
    await rightBytesThenUmount(cache, mnt, during.failedReads);
  });
}

test("a READ answered EINTR leaves the request journal: after kill -9 the next daemon on the held connection has nothing of it to answer (journaling, as before 6.9)", { skip, timeout: 120_000 }, async (t) => {
  const { cache, mnt } = ws.fresh();
  const held = openFuseDevice(); // held here as the holder would: the test daemon can be told to journal
  t.after(() => { cleanup(work, cache); fs.closeSync(held); }); // cleanup first: closing the last fd of a mounted connection aborts it
  const daemonEnv = { ...env, FUSE_TEST_RESEND: "0" };
  let daemon = await startFuseDaemon(cache, held, daemonEnv);
  const m = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache], env);
  assert.equal(m.status, 0, m.stderr);
  assert.equal((await readInChild(path.join(mnt, "small.txt"))).sha256, sha("small.txt"));
  const during = await killBlockedReader(t, cache, mnt, () => READERS[0].reader(cache, mnt));
  assert.equal(during.journaling, true);
  assert.equal(during.interrupted, 1);

  daemon!.child.kill("SIGKILL");
  assert.equal(await daemon!.exited, "SIGKILL");
  daemon = await startFuseDaemon(cache, held, daemonEnv);
  const next = await frontendStats(cache);
  assert.equal(next.heldConnection, true);
  assert.equal(next.recovered, 0, "the READ answered EINTR was not in the journal any more");
  await rightBytesThenUmount(cache, mnt);
  await daemon!.exited;
});

for (const resend of [true, false]) {
  test(`a reader SIGKILLed while no daemon runs (between kill -9 and the restart) is answered EINTR by the next daemon on the held connection, its fill still stalled; ${resend ? "the kernel resends the READ (FUSE_NOTIFY_RESEND)" : "the READ from the journal (as before 6.9)"}`, { skip, timeout: 120_000 }, async (t) => {
    const { cache, mnt } = ws.fresh();
    const held = openFuseDevice();
    t.after(() => { cleanup(work, cache); fs.closeSync(held); });
    const daemonEnv = { ...env, FUSE_TEST_RESEND: resend ? "1" : "0" };
    let daemon = await startFuseDaemon(cache, held, daemonEnv);
    const m = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache], env);
    assert.equal(m.status, 0, m.stderr);
    assert.equal((await readInChild(path.join(mnt, "small.txt"))).sha256, sha("small.txt"));

    await server.setFaults({ mode: "stall", match: "blobs/" });
    const r = READERS[0].reader(cache, mnt);
    for (const until = Date.now() + 20_000; (await frontendStats(cache)).inFlight < 1; await sleep(50)) {
      assert.ok(Date.now() < until, "the reader's READ reached the daemon");
    }
    daemon!.child.kill("SIGKILL");
    assert.equal(await daemon!.exited, "SIGKILL");
    r.child.kill("SIGKILL");
    assert.equal(await Promise.race([r.exited, sleep(500).then(() => "still there")]), "still there", "nobody answers its READ yet");

    const restarted = Date.now();
    daemon = await startFuseDaemon(cache, held, daemonEnv);
    const gone = await Promise.race([r.exited, sleep(EXIT_MS).then(() => "still there")]);
    t.diagnostic(`reader exited ${Date.now() - restarted} ms after the restart began (${gone})`);
    assert.equal(gone, "SIGKILL", `the killed reader is gone within ${EXIT_MS} ms of the next daemon`);
    const s = await frontendStats(cache);
    t.diagnostic(`next daemon: ${JSON.stringify({ interrupted: s.interrupted, resent: s.resent, recovered: s.recovered, byOp: s.byOp })}`);
    assert.equal(s.interrupted, 1, "its READ was answered EINTR");
    if (resend) assert.equal(s.resent, true);
    else assert.equal(s.recovered, 1, "the READ came from the journal");
    await rightBytesThenUmount(cache, mnt);
    await daemon!.exited;
  });
}

/** A node reader of `file` that catches SIGUSR2 (and goes on); resolves with its sha256 or error code. */
function catchingReader(file: string) {
  const script = `process.on("SIGUSR2", () => {}); const fs = require("node:fs"); const c = require("node:crypto");
    try { console.log(JSON.stringify({ sha256: c.createHash("sha256").update(fs.readFileSync(process.argv[1])).digest("hex") })); }
    catch (e) { console.log(JSON.stringify({ error: e.code ?? e.message })); }`;
  const child = spawn(process.execPath, ["-e", script, file], { stdio: ["ignore", "pipe", "inherit"] });
  started.add(child);
  let out = "";
  child.stdout!.on("data", (c: Buffer) => { out += c; });
  const result = new Promise<{ sha256?: string; error?: string; exit: number | string | null }>((resolve) => child.on("close", (code, sig) => {
    started.delete(child);
    let parsed = {};
    try { parsed = JSON.parse(out); } catch { /* killed: nothing printed */ }
    resolve({ ...parsed, exit: sig ?? code });
  }));
  return { child, result };
}

test("a caught signal does not fail a synchronous READ (erofs would turn an EINTR into EIO): it reads the right bytes once the stall ends; a SIGKILL after such a signal still ends its reader at once", { skip, timeout: 120_000 }, async (t) => {
  const { cache, mnt } = ws.fresh();
  t.after(() => cleanup(work, cache));
  const m = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache, "--frontend", "fuse"], env);
  assert.equal(m.status, 0, m.stderr);
  await failOnce(mnt, "cold.bin", "cold2.bin");
  const failedBefore = (await frontendStats(cache)).failedReads;
  await server.setFaults({ mode: "stall", match: "blobs/" });
  const a = catchingReader(path.join(mnt, "cold.bin"));
  const b = catchingReader(path.join(mnt, "cold2.bin"));
  for (const until = Date.now() + 20_000; (await frontendStats(cache)).inFlight < 2; await sleep(50)) {
    assert.ok(Date.now() < until, "both readers' READs reached the daemon");
  }
  await sleep(200);
  a.child.kill("SIGUSR2");
  b.child.kill("SIGUSR2");
  for (const until = Date.now() + 5_000; ((await frontendStats(cache)).byOp.INTERRUPT ?? 0) < 2; await sleep(50)) {
    assert.ok(Date.now() < until, "the kernel interrupted both READs");
  }
  await sleep(300);
  assert.equal(a.child.exitCode ?? a.child.signalCode, null, "a caught signal: the reader still waits");
  assert.equal(b.child.exitCode ?? b.child.signalCode, null);
  assert.equal((await frontendStats(cache)).interrupted, 0, "no READ ended for a caught signal");

  const killedAt = Date.now();
  a.child.kill("SIGKILL");
  const gone = await Promise.race([a.result, sleep(EXIT_MS).then(() => null)]);
  t.diagnostic(`reader exited ${Date.now() - killedAt} ms after SIGKILL (its READ interrupted before, by SIGUSR2)`);
  assert.equal(gone?.exit, "SIGKILL", `the killed reader is gone within ${EXIT_MS} ms`);
  assert.equal((await frontendStats(cache)).interrupted, 1);

  await server.setFaults(null);
  assert.deepEqual(await b.result, { sha256: sha("cold2.bin"), exit: 0 }, "the reader that caught a signal reads the right bytes");
  await rightBytesThenUmount(cache, mnt, failedBefore);
});
