// Restart without loss, FUSE frontend on the real kernel: `eod mount --frontend fuse`'s holder keeps the
// /dev/fuse fd (or this test holds it and runs test/helpers/fuse-daemon.ts on it, to make it journal). kill -9 of
// the daemon while readers are blocked on cold ranges (the remote stalls) leaves the requests it had read on the
// held connection's processing list; the next daemon finds the filesystem mounted (no INIT), re-attaches and asks
// the kernel to resend them (FUSE_NOTIFY_RESEND), or, as on a kernel before 6.9, handles them again from its
// journal: the readers get the right bytes, never an error or zeros. An idle daemon then unmounts.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
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

let work = "";
let src = "";
let server: Served;
let ws: ReturnType<typeof lazyWorkspace>;
// Long enough that the readers are still blocked on the stalled remote when the daemon is killed.
const env = { EOD_REMOTE_TIMEOUT_MS: "20000", EOD_REMOTE_RETRIES: "1", EOD_FILE_FETCH: "0" };
const FILES: Record<string, number> = { "cold1.bin": 3 << 20, "cold2.bin": 2 << 20, "small.txt": 5000 };

before(async () => {
  if (skip) return;
  work = tempDir("eod-fuse-restart-");
  ws = lazyWorkspace(work);
  ({ src, server } = await serveRandomFiles(work, FILES));
});

after(() => {
  if (work) ws.teardown(server);
});

const sha = (name: string) => createHash("sha256").update(fs.readFileSync(path.join(src, name))).digest("hex");

async function status(cache: string) {
  const r = await eodAsync(["status", "--cache-dir", cache, "--json"]);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pidIn = (cache: string, what: "daemon" | "holder") => { try { return Number(fs.readFileSync(path.join(cache, `${what}.pid`), "utf8")); } catch { return null; } };

/** How the daemon runs, is killed and comes back. */
interface Rig {
  /** Starts the first daemon and mounts the image. */
  mount(): Promise<void>;
  killDaemon(): Promise<void>;
  /** Waits for (or starts) the next daemon on the same connection. */
  nextDaemon(): Promise<void>;
  /** After the last umount: the daemon (and a holder) exit. */
  gone(): Promise<void>;
}

/** `eod mount --frontend fuse`: its holder opens /dev/fuse and restarts a killed daemon on it. */
function holderRig(cache: string, mnt: string): Rig {
  let killed = 0;
  const exited = async (pid: number) => {
    for (const until = Date.now() + 20_000; fs.existsSync(`/proc/${pid}`); await sleep(50)) assert.ok(Date.now() < until, `pid ${pid} exits`);
  };
  return {
    async mount() {
      const r = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache, "--frontend", "fuse"], env);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(pidIn(cache, "holder"), "a holder keeps /dev/fuse");
    },
    async killDaemon() {
      killed = pidIn(cache, "daemon")!;
      process.kill(killed, "SIGKILL");
      await exited(killed);
    },
    async nextDaemon() {
      for (const until = Date.now() + 30_000; ; await sleep(100)) {
        assert.ok(Date.now() < until, "the holder restarted the daemon");
        const pid = pidIn(cache, "daemon");
        if (pid && pid !== killed && (await eodAsync(["status", "--cache-dir", cache, "--json"])).status === 0) return;
      }
    },
    async gone() {
      const holder = pidIn(cache, "holder");
      if (holder) await exited(holder);
    },
  };
}

/** This test holds /dev/fuse as the holder would and runs test/helpers/fuse-daemon.ts on it, which can be told to journal. */
function testHeldRig(cache: string, mnt: string, held: number, daemonEnv: Record<string, string>): Rig {
  let daemon: Awaited<ReturnType<typeof startFuseDaemon>> = null;
  return {
    async mount() {
      daemon = await startFuseDaemon(cache, held, daemonEnv);
      const r = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache], env);
      assert.equal(r.status, 0, r.stderr);
    },
    async killDaemon() {
      daemon!.child.kill("SIGKILL");
      assert.equal(await daemon!.exited, "SIGKILL");
    },
    async nextDaemon() {
      daemon = await startFuseDaemon(cache, held, daemonEnv);
    },
    async gone() {
      await daemon!.exited;
    },
  };
}

const CASES = [
  { name: "eod mount's holder; taken requests resent by the kernel (FUSE_NOTIFY_RESEND)", resend: true, holder: true },
  { name: "taken requests handled again from the journal (as on a kernel before 6.9)", resend: false, holder: false },
];

for (const { name, resend, holder } of CASES) {
  test(`kill -9 of the daemon while readers are blocked: the next daemon on the held connection answers them with the right bytes; ${name}`, { skip, timeout: 180_000 }, async (t) => {
    const { cache, mnt } = ws.fresh();
    const held = holder ? null : openFuseDevice();
    t.after(() => { cleanup(work, cache); if (held !== null) fs.closeSync(held); }); // cleanup first: closing the last fd of a mounted connection aborts it
    const rig = held === null ? holderRig(cache, mnt) : testHeldRig(cache, mnt, held, { ...env, FUSE_TEST_RESEND: resend ? "1" : "0" });
    await rig.mount();
    assert.equal((await readInChild(path.join(mnt, "small.txt"))).sha256, sha("small.txt"));

    await server.setFaults({ mode: "stall", match: "blobs/" });
    const readers = ["cold1.bin", "cold2.bin", "cold1.bin"].map((f) => ({ f, r: readInChild(path.join(mnt, f), 120_000) }));
    const deadline = Date.now() + 20_000;
    while ((await status(cache)).frontend.inFlight < 2) {
      assert.ok(Date.now() < deadline, "the readers' READs reached the daemon");
      await sleep(100);
    }
    await rig.killDaemon();
    assert.ok(fuseMountAt(fuseMountDir(cache)), "the FUSE filesystem stays mounted on the held connection");
    await sleep(500);
    await server.setFaults(null);

    await rig.nextDaemon();
    for (const { f, r } of readers) assert.equal((await r).sha256, sha(f), `${f}: the right bytes after the restart`);
    const s = await status(cache);
    t.diagnostic(`next daemon: ${JSON.stringify(s.frontend)}`);
    assert.equal(s.frontend.heldConnection, true);
    if (resend) {
      assert.equal(s.frontend.resent, true, "it asked the kernel to resend the taken requests");
      assert.equal(s.frontend.journaling, false, "nothing journaled where the kernel resends");
    } else {
      assert.equal(s.frontend.journaling, true);
      assert.ok(s.frontend.recovered >= 2, `the new daemon answered the requests its predecessor had journaled (${s.frontend.recovered})`);
    }
    assert.equal(s.mounts.length, 1, "re-attached to the mount");
    assert.equal(s.frontend.byOp.INIT, undefined, "no INIT on a connection already mounted");

    const u = await eodAsync(["umount", mnt, "--cache-dir", cache]);
    assert.equal(u.status, 0, u.stderr);
    await rig.gone();
    assert.equal(fuseMountAt(fuseMountDir(cache)), null, "the idle daemon unmounted its FUSE filesystem");
  });
}

test("eod daemon restart (a planned hand-over) with the fuse frontend: the next daemon serves the held connection without INIT; reads before, during and after it are right", { skip, timeout: 180_000 }, async (t) => {
  const { cache, mnt } = ws.fresh();
  t.after(() => cleanup(work, cache));
  const r = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache, "--frontend", "fuse"], env);
  assert.equal(r.status, 0, r.stderr);
  assert.equal((await readInChild(path.join(mnt, "small.txt"))).sha256, sha("small.txt"));
  const before = pidIn(cache, "daemon");
  const during = readInChild(path.join(mnt, "cold1.bin"), 120_000);
  const restart = await eodAsync(["daemon", "restart", "--cache-dir", cache]);
  assert.equal(restart.status, 0, restart.stderr);
  assert.notEqual(pidIn(cache, "daemon"), before, "another daemon");
  assert.equal((await during).sha256, sha("cold1.bin"), "a read across the hand-over");
  assert.equal((await readInChild(path.join(mnt, "cold2.bin"))).sha256, sha("cold2.bin"), "a cold read after it");
  const s = await status(cache);
  assert.equal(s.frontend.heldConnection, true);
  assert.equal(s.frontend.byOp.INIT, undefined, "no INIT on a connection already mounted");
  const u = await eodAsync(["umount", mnt, "--cache-dir", cache]);
  assert.equal(u.status, 0, u.stderr);
  const holder = pidIn(cache, "holder");
  for (const until = Date.now() + 20_000; holder && fs.existsSync(`/proc/${holder}`); await sleep(50)) assert.ok(Date.now() < until, "the holder exits after the last umount");
  assert.equal(fuseMountAt(fuseMountDir(cache)), null, "the idle daemon unmounted its FUSE filesystem");
});
