// Restart without loss, FUSE frontend on the real kernel: this test holds the /dev/fuse fd, as the holder does,
// and runs the daemon on it (test/helpers/fuse-daemon.ts). kill -9 of the daemon while readers are blocked on
// cold ranges (the remote stalls) leaves the requests it had read on the held connection's processing list; the
// next daemon finds the filesystem mounted (no INIT), re-attaches and asks the kernel to resend them
// (FUSE_NOTIFY_RESEND), or, as on a kernel before 6.9, handles them again from its journal: the readers get the
// right bytes, never an error or zeros. An idle daemon then unmounts.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { eodOk } from "../helpers/cli.ts";
import { startFuseDaemon } from "../helpers/fuse.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { cleanup, eodAsync, lazyWorkspace, readInChild, serve, type Served } from "../helpers/lazy.ts";
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
  src = path.join(work, "src");
  fs.mkdirSync(src);
  for (const [name, size] of Object.entries(FILES)) fs.writeFileSync(path.join(src, name), randomBytes(size));
  const img = path.join(work, "img");
  eodOk("build", src, "-o", img, "--chunk-size", "256K");
  server = await serve(img);
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

for (const resend of [true, false]) {
  const how = resend ? "resent by the kernel (FUSE_NOTIFY_RESEND)" : "handled again from the journal (as on a kernel before 6.9)";
  test(`kill -9 of the daemon while readers are blocked: the next daemon on the held connection answers them with the right bytes; taken requests ${how}`, { skip, timeout: 180_000 }, async (t) => {
    const { cache, mnt } = ws.fresh();
    const held = openFuseDevice();
    t.after(() => { cleanup(work, cache); fs.closeSync(held); }); // cleanup first: closing the last fd of a mounted connection aborts it
    const daemonEnv = { ...env, FUSE_TEST_RESEND: resend ? "1" : "0" };
    const first = await startFuseDaemon(cache, held, daemonEnv);
    assert.ok(first);
    const m = await eodAsync(["mount", server.url, mnt, "--cache-dir", cache], env);
    assert.equal(m.status, 0, m.stderr);
    assert.equal((await readInChild(path.join(mnt, "small.txt"))).sha256, sha("small.txt"));

    await server.setFaults({ mode: "stall", match: "blobs/" });
    const readers = ["cold1.bin", "cold2.bin", "cold1.bin"].map((f) => ({ f, r: readInChild(path.join(mnt, f), 120_000) }));
    const deadline = Date.now() + 20_000;
    while ((await status(cache)).frontend.inFlight < 2) {
      assert.ok(Date.now() < deadline, "the readers' READs reached the daemon");
      await new Promise((r) => setTimeout(r, 100));
    }
    first.child.kill("SIGKILL");
    assert.equal(await first.exited, "SIGKILL");
    assert.ok(fuseMountAt(fuseMountDir(cache)), "the FUSE filesystem stays mounted on the held connection");
    await new Promise((r) => setTimeout(r, 500));
    await server.setFaults(null);

    const second = await startFuseDaemon(cache, held, daemonEnv);
    assert.ok(second);
    for (const { f, r } of readers) assert.equal((await r).sha256, sha(f), `${f}: the right bytes after the restart`);
    const s = await status(cache);
    t.diagnostic(`second daemon: ${JSON.stringify(s.frontend)}`);
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
    await second.exited;
    assert.equal(fuseMountAt(fuseMountDir(cache)), null, "the idle daemon unmounted its FUSE filesystem");
  });
}
